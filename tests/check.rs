//! End-to-end test target `check`: `xdpcarve check` on real interfaces and configs.
//!
//! - On a veth inside a namespace the test creates, a check passes, names native XDP without
//!   zero-copy (veth has no zero-copy), and attaches nothing.
//! - A down interface, an unknown config key, an unwritable files log and an unreachable webhook
//!   each fail the check (exit 1) with a line that says what to do.
//! - A config's `[engine]`/`[live]` keys are flags: `--dump-config` shows them, the command line
//!   wins, and a `-r` reads a file even with a config that names an interface.
//!
//! Needs root and iproute2 (tests/setup.sh); without them the veth tests print SKIPPED.

mod support;

use std::process::{Command, Output};
use std::time::Duration;
use support::netns::{require_root_or_skip, run_with_timeout, Lab, TempDir};
use support::{repo_root, xdpcarve_bin};

fn sample_pcap() -> std::path::PathBuf {
    repo_root().join("bench/samples/sample.pcap")
}

fn run(cmd: &mut Command) -> (i32, String) {
    let out: Output = run_with_timeout(cmd, Duration::from_secs(60)).expect("xdpcarve runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

fn xdpcarve(args: &[&str]) -> (i32, String) {
    run(Command::new(xdpcarve_bin()).args(args))
}

#[test]
fn a_veth_passes_and_nothing_is_attached() {
    if !require_root_or_skip(&[]) {
        return;
    }
    let mut lab = Lab::new();
    let ns = lab.add_ns();
    let peer = lab.add_ns();
    let link = lab.link(Some(&ns), Some(&peer), true);
    let ifname = link.a.ifname.clone();
    let bin = xdpcarve_bin();
    let (code, text) = run(&mut lab.command(Some(&ns), &[bin.to_str().unwrap(), "check", "-i", &ifname]));
    assert_eq!(code, 0, "{text}");
    assert!(text.contains(&format!("ok    {ifname}: up")), "{text}");
    assert!(text.contains("driver veth"), "{text}");
    assert!(text.contains("native XDP"), "{text}");
    assert!(text.contains("no AF_XDP zero-copy in veth"), "{text}");
    assert!(
        text.contains(&format!(
            "run   capture {ifname} queues 0 (1 worker(s), native mode, copy mode)"
        )),
        "{text}"
    );
    assert!(text.contains("check: 0 problem(s)"), "{text}");
    let link_show = lab.exec_ok(Some(&ns), &["ip", "link", "show", "dev", &ifname]);
    assert!(
        !String::from_utf8_lossy(&link_show.stdout).contains("xdp"),
        "check attached a program"
    );

    // Down: the check fails and says how to bring it up.
    lab.exec_ok(Some(&ns), &["ip", "link", "set", &ifname, "down"]);
    let (code, text) = run(&mut lab.command(Some(&ns), &[bin.to_str().unwrap(), "check", "-i", &ifname]));
    assert_eq!(code, 1, "{text}");
    assert!(text.contains(&format!("FAIL  {ifname} is down")), "{text}");
    assert!(text.contains(&format!("ip link set dev {ifname} up")), "{text}");

    // Native mode asked of an interface without native XDP (loopback).
    let (code, text) = run(&mut lab.command(
        Some(&ns),
        &[bin.to_str().unwrap(), "check", "-i", "lo", "--xdp-mode", "native"],
    ));
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("has no native XDP, and --xdp-mode native was asked"),
        "{text}"
    );
}

#[test]
fn bad_settings_fail_the_check_and_say_what_to_do() {
    let dir = TempDir::new("check");
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "[engine]\nmax_flowz = 3\n").unwrap();
    let (code, text) = xdpcarve(&["check", "--config", bad.to_str().unwrap()]);
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("unknown key `engine.max_flowz`") && text.contains("max_flows"),
        "{text}"
    );

    let (code, text) = xdpcarve(&["check", "--files-log", "/proc/xdpcarve-nope/files.log"]);
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("FAIL  files log /proc/xdpcarve-nope/files.log: cannot write in /proc"),
        "{text}"
    );

    // Port 9 on loopback: nothing listens there.
    let state = dir.join("state");
    let (code, text) = xdpcarve(&[
        "check",
        "--webhook-url",
        "http://127.0.0.1:9/in",
        "--state-dir",
        state.to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("FAIL  webhook http://127.0.0.1:9/in: no connection"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "ok    spill journal {}: will be created",
            state.join("spill").display()
        )),
        "{text}"
    );
    assert!(!state.exists(), "check created the state directory");

    let (code, text) = xdpcarve(&["check", "-r", "/nonexistent/x.pcap"]);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("FAIL  /nonexistent/x.pcap"), "{text}");

    let (code, text) = xdpcarve(&["check", "-r", sample_pcap().to_str().unwrap(), "--files-log", "-"]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("a pcap capture of"), "{text}");
}

#[test]
fn config_keys_are_flags_and_the_command_line_wins() {
    let dir = TempDir::new("keys");
    let cfg = dir.join("x.toml");
    std::fs::write(
        &cfg,
        "[engine]\nhashes = \"md5\"\nmax_flows = 1000\nhttp_ports = [80, 3128]\n[live]\ninterface = \"xdcnosuchif0\"\npin = false\n\
         [output]\ncolor = \"never\"\n",
    )
    .unwrap();
    let c = cfg.to_str().unwrap();
    let (code, dump) = xdpcarve(&["--config", c, "--max-flows", "7", "--dump-config"]);
    assert_eq!(code, 0, "{dump}");
    for line in [
        "hashes = \"md5\"",
        "max_flows = 7",
        "http_ports = \"80,3128\"",
        "pin = false",
        "interface = \"xdcnosuchif0\"",
    ] {
        assert!(dump.lines().any(|l| l == line), "no `{line}` in\n{dump}");
    }
    // The dump is a config that gives the same dump.
    let again = dir.join("again.toml");
    std::fs::write(&again, &dump).unwrap();
    let (_, dump2) = xdpcarve(&["--config", again.to_str().unwrap(), "--dump-config"]);
    assert_eq!(dump, dump2);

    // The config names an interface, the command line reads a file: the file is read, with the
    // config's engine keys.
    let log = dir.join("files.log");
    let (code, text) = xdpcarve(&[
        "--config",
        c,
        "-r",
        sample_pcap().to_str().unwrap(),
        "--files-log",
        log.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{text}");
    let records = std::fs::read_to_string(&log).unwrap();
    let first: serde_json::Value = serde_json::from_str(records.lines().next().unwrap()).unwrap();
    assert!(
        first["md5"].is_string() && first["sha256"].is_null(),
        "hashes = \"md5\" applies: {first}"
    );
    assert!(
        text.contains("records: files log"),
        "the summary names where records went: {text}"
    );
    assert!(!text.contains('\u{1b}'), "no colour codes off a terminal: {text}");

    // Without -r, the config's interface is captured (and here does not exist).
    let (code, text) = xdpcarve(&["--config", c]);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("xdcnosuchif0"), "{text}");
}
