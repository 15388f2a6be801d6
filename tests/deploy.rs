//! End-to-end test target `deploy`: what an operator installs.
//!
//! - `deploy/install.sh` into a staging root (DESTDIR) puts binary, unit, config, NIC script and
//!   docs in place, makes the state and log directories, and keeps an edited config on a second
//!   run.
//! - The installed unit passes `systemd-analyze verify --root=DESTDIR`, and `systemd-analyze
//!   security --offline=yes` scores it no worse than the README says.
//! - `deploy/nic-setup.sh --dry-run` on a veth prints the commands and changes nothing; a real run
//!   makes the veth promiscuous and says what a veth cannot do (an RSS key); bad arguments are
//!   usage errors; `--config` reads the interface from the shipped config's `[live]` section.
//!
//! Needs root, iproute2, ethtool and systemd-analyze (tests/setup.sh); without them a test prints
//! SKIPPED (and fails under CI).

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use support::netns::{require_root_or_skip, require_tool_or_skip, run_with_timeout, Lab, TempDir};
use support::{repo_root, xdpcarve_bin};

/// The exposure score `systemd-analyze security` gives the unit, as the README states it.
const EXPOSURE_STATED: f64 = 2.3;

fn run(cmd: &mut Command) -> (i32, String, String) {
    let out = run_with_timeout(cmd, Duration::from_secs(60)).expect("command runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn install(destdir: &Path) -> (i32, String, String) {
    run(Command::new("bash")
        .arg(repo_root().join("deploy/install.sh"))
        .arg("--binary")
        .arg(xdpcarve_bin())
        .env("DESTDIR", destdir))
}

/// A staging root with the unit installed and the host's own systemd units beside it, as on a
/// real target system (verify resolves the unit's dependencies such as sysinit.target there).
fn staged_root() -> (TempDir, PathBuf) {
    let root = TempDir::new("deploy-root");
    let (code, out, err) = install(&root.path);
    assert_eq!(code, 0, "{out}{err}");
    let units = root.join("usr/lib/systemd/system");
    std::fs::create_dir_all(&units).unwrap();
    let host = ["/usr/lib/systemd/system", "/lib/systemd/system"]
        .into_iter()
        .map(Path::new)
        .find(|p| p.join("sysinit.target").exists())
        .expect("the host has systemd's units (package systemd)");
    for entry in std::fs::read_dir(host).unwrap().flatten() {
        let name = entry.file_name();
        if name.to_string_lossy().ends_with(".target") {
            std::fs::copy(entry.path(), units.join(name)).unwrap();
        }
    }
    let unit = root.join("etc/systemd/system/xdpcarve.service");
    (root, unit)
}

#[test]
fn install_puts_every_file_in_place_and_keeps_an_edited_config() {
    let root = TempDir::new("deploy-install");
    let (code, out, err) = install(&root.path);
    assert_eq!(code, 0, "{out}{err}");
    for (path, executable) in [
        ("usr/local/bin/xdpcarve", true),
        ("usr/local/lib/xdpcarve/nic-setup.sh", true),
        ("usr/local/share/doc/xdpcarve/README.md", false),
        ("etc/systemd/system/xdpcarve.service", false),
        ("etc/xdpcarve/xdpcarve.toml", false),
    ] {
        let meta = std::fs::metadata(root.join(path)).unwrap_or_else(|e| panic!("{path}: {e}\n{out}"));
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(meta.permissions().mode() & 0o111 != 0, executable, "{path} mode");
    }
    for dir in ["var/lib/xdpcarve", "var/log/xdpcarve"] {
        assert!(root.join(dir).is_dir(), "{dir}");
    }
    let unit = std::fs::read_to_string(root.join("etc/systemd/system/xdpcarve.service")).unwrap();
    assert!(
        unit.contains("ExecStart=/usr/local/bin/xdpcarve --config /etc/xdpcarve/xdpcarve.toml"),
        "{unit}"
    );
    assert!(unit.contains("LogsDirectory=xdpcarve") && unit.contains("StateDirectory=xdpcarve"));
    assert!(
        out.contains("xdpcarve check --config /etc/xdpcarve/xdpcarve.toml"),
        "{out}"
    );

    // The shipped config writes into the unit's directories, and the binary takes it.
    let config = root.join("etc/xdpcarve/xdpcarve.toml");
    let (code, dump, err) = run(Command::new(xdpcarve_bin())
        .arg("--config")
        .arg(&config)
        .arg("--dump-config"));
    assert_eq!(code, 0, "{err}");
    assert!(dump.contains("path = \"/var/log/xdpcarve/files.log\""), "{dump}");
    // state_dir resolves into the paths under it.
    assert!(
        dump.contains("state_file = \"/var/lib/xdpcarve/dedup.state\""),
        "{dump}"
    );
    assert!(dump.contains("dir = \"/var/lib/xdpcarve/spill\""), "{dump}");

    // An operator's edits survive a reinstall; the shipped config goes beside it.
    std::fs::write(&config, "[live]\ninterface = \"ens1f0\"\n").unwrap();
    let (code, out, err) = install(&root.path);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(
        std::fs::read_to_string(&config).unwrap(),
        "[live]\ninterface = \"ens1f0\"\n"
    );
    assert!(root.join("etc/xdpcarve/xdpcarve.toml.new").exists());
    assert!(out.contains("kept your /etc/xdpcarve/xdpcarve.toml"), "{out}");
}

#[test]
fn install_without_a_binary_says_to_build_it() {
    let root = TempDir::new("deploy-nobin");
    let (code, _, err) = run(Command::new("bash")
        .arg(repo_root().join("deploy/install.sh"))
        .args(["--binary", "/nonexistent/xdpcarve"])
        .env("DESTDIR", &root.path));
    assert_eq!(code, 1);
    assert!(err.contains("cargo build --release"), "{err}");
}

#[test]
fn the_installed_unit_passes_systemd_analyze_verify() {
    if !require_tool_or_skip("systemd-analyze") {
        return;
    }
    let (root, unit) = staged_root();
    let (code, out, err) = run(Command::new("systemd-analyze")
        .arg("verify")
        .arg(format!("--root={}", root.path.display()))
        .arg(&unit));
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(err.trim(), "", "verify printed warnings");
}

#[test]
fn the_unit_is_as_confined_as_the_readme_says() {
    if !require_tool_or_skip("systemd-analyze") {
        return;
    }
    let (root, _unit) = staged_root();
    let (code, out, err) = run(Command::new("systemd-analyze")
        .args(["security", "--offline=yes", "--no-pager"])
        .arg(format!("--root={}", root.path.display()))
        .arg("xdpcarve.service"));
    assert_eq!(code, 0, "{out}{err}");
    let text = format!("{out}{err}");
    let score: f64 = text
        .split("Overall exposure level for xdpcarve.service:")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no exposure score in:\n{text}"));
    assert!(
        score <= EXPOSURE_STATED,
        "exposure {score} > {EXPOSURE_STATED} stated in the README"
    );
    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    assert!(
        readme.contains(&format!("exposure level {EXPOSURE_STATED}")),
        "the README states the exposure score"
    );
}

fn nic_setup(lab: &Lab, ns: &str, args: &[&str]) -> (i32, String, String) {
    let script = repo_root().join("deploy/nic-setup.sh");
    let mut argv = vec!["sh", script.to_str().unwrap()];
    argv.extend_from_slice(args);
    run(&mut lab.command(Some(ns), &argv))
}

fn promiscuous(lab: &Lab, ns: &str, ifname: &str) -> bool {
    let out = lab.exec_ok(Some(ns), &["ip", "link", "show", ifname]);
    String::from_utf8_lossy(&out.stdout).contains("PROMISC")
}

#[test]
fn nic_setup_dry_run_on_a_veth_prints_commands_and_changes_nothing() {
    if !require_root_or_skip(&["ethtool"]) {
        return;
    }
    let mut lab = Lab::new();
    let ns = lab.add_ns();
    let peer = lab.add_ns();
    let link = lab.link(Some(&ns), Some(&peer), false);
    let ifname = link.a.ifname.clone();
    assert!(!promiscuous(&lab, &ns, &ifname));

    let (code, out, err) = nic_setup(&lab, &ns, &["--dry-run", &ifname, "2"]);
    assert_eq!(code, 0, "{out}{err}");
    for line in [
        format!("+ ip link set dev {ifname} up promisc on"),
        format!("+ ethtool -L {ifname} combined 2"),
        format!("+ ethtool -N {ifname} rx-flow-hash tcp4 sdfn"),
        format!("+ ethtool -K {ifname} gro off"),
    ] {
        assert!(out.lines().any(|l| l == line), "missing `{line}` in:\n{out}");
    }
    assert!(!promiscuous(&lab, &ns, &ifname), "a dry run changed the NIC");

    // For real: promiscuous, and what a veth cannot do is said, not hidden.
    let (code, out, err) = nic_setup(&lab, &ns, &[&ifname]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(promiscuous(&lab, &ns, &ifname));
    assert!(out.contains(&format!("nic-setup: {ifname}: up, promiscuous")), "{out}");
    assert!(err.contains("not done:") && err.contains("symmetric RSS"), "{err}");

    // The interface from a config's [live] section.
    let dir = TempDir::new("deploy-nic");
    let config = dir.join("xdpcarve.toml");
    let shipped = std::fs::read_to_string(repo_root().join("deploy/xdpcarve.toml")).unwrap();
    std::fs::write(
        &config,
        shipped.replace("interface = \"eth1\"", &format!("interface = \"{ifname}\"")),
    )
    .unwrap();
    let (code, out, err) = nic_setup(&lab, &ns, &["--dry-run", "--config", config.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains(&format!("+ ip link set dev {ifname} up promisc on")),
        "{out}"
    );
    // queues = "all" in the shipped config: channels are left alone.
    assert!(!out.contains("ethtool -L"), "{out}");
}

#[test]
fn nic_setup_rejects_bad_arguments_with_usage() {
    if !require_root_or_skip(&["ethtool"]) {
        return;
    }
    let mut lab = Lab::new();
    let ns = lab.add_ns();
    let link = lab.link(Some(&ns), None, false);
    let ifname = link.a.ifname.clone();

    let (code, out, _) = nic_setup(&lab, &ns, &["--help"]);
    assert_eq!(code, 0);
    assert!(out.starts_with("usage: nic-setup.sh"), "{out}");
    assert!(out.contains("--dry-run"), "{out}");

    for (args, says) in [
        (vec!["no-such-if0"], "no such interface no-such-if0"),
        (vec![ifname.as_str(), "zero"], "QUEUES must be a positive number"),
        (vec![ifname.as_str(), "0"], "QUEUES must be a positive number"),
        (vec!["../etc"], "is not an interface name"),
        (vec!["--bogus"], "unknown option --bogus"),
        (vec![], "usage: nic-setup.sh"),
        (vec!["--config", "/nonexistent.toml"], "cannot read config"),
    ] {
        let (code, out, err) = nic_setup(&lab, &ns, &args);
        assert_eq!(code, 2, "{args:?}: {out}{err}");
        assert!(err.contains(says), "{args:?}: {err}");
    }
    assert!(!promiscuous(&lab, &ns, &ifname), "a usage error changed the NIC");
}
