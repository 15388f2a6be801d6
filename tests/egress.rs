//! End-to-end tests of egress: the real binary reads corpus captures and submits to a real HTTP
//! receiver process on loopback (tests/support/receiver.py), which records every request.

mod support;

use support::receiver::Receiver;

use std::collections::{BTreeSet, HashMap};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn capture(case: &str) -> PathBuf {
    support::corpus_dir().join(case).join("trace.pcap")
}

fn tmpdir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("xdpcarve-egress-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A config file with a policy over the sniffed type and small batches; the token file beside it.
fn write_config(dir: &Path, mime_regex: &str, batch_items: usize, extra: &str) -> PathBuf {
    std::fs::write(dir.join("token"), "Bearer e2e-token-123\n").unwrap();
    let path = dir.join("xdpcarve.toml");
    std::fs::write(
        &path,
        format!(
            "[sensor]\nname = \"e2e\"\nstate_dir = \"{}\"\n\n[policy]\nmime_types = [\"{mime_regex}\"]\n\n\
             [webhook]\ntoken_file = \"{}\"\nbatch_max_items = {batch_items}\nbatch_max_delay = \"50ms\"\n\
             retry_initial_delay = \"50ms\"\nretry_max_delay = \"200ms\"\n{extra}\n",
            dir.join("state").display(),
            dir.join("token").display()
        ),
    )
    .unwrap();
    path
}

fn run(args: &[&str]) -> Output {
    let out = Command::new(support::xdpcarve_bin())
        .args(args)
        .output()
        .expect("xdpcarve runs");
    out
}

/// The `egress: key=value ...` line of the summary.
fn egress_summary(stderr: &str) -> HashMap<String, u64> {
    let line = stderr
        .lines()
        .find(|l| l.trim_start().starts_with("egress: "))
        .unwrap_or_else(|| panic!("{stderr}"));
    line.trim_start()
        .trim_start_matches("egress: ")
        .split_whitespace()
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap();
            (k.to_string(), v.parse().unwrap())
        })
        .collect()
}

fn files_log(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// md5s of the logged files whose sniffed type starts with `prefix` (what the policy should pick).
fn matching_md5s(records: &[Value], prefix: &str) -> BTreeSet<String> {
    records
        .iter()
        .filter(|r| r["mime_type"].as_str().is_some_and(|m| m.starts_with(prefix)))
        .filter(|r| r["size"].as_u64().unwrap() > 0 && r["missing_bytes"] == 0)
        .filter_map(|r| r["md5"].as_str().map(str::to_string))
        .collect()
}

/// Every item delivered (answered 200), in arrival order, as md5s.
fn delivered(rx: &Receiver) -> Vec<String> {
    let mut out = Vec::new();
    for r in rx.requests().iter().filter(|r| r["answered"] == 200) {
        let items: Vec<Value> = serde_json::from_str(r["body"].as_str().unwrap()).unwrap();
        out.extend(items.iter().map(|i| i["md5"].as_str().unwrap().to_string()));
    }
    out
}

fn corpus_md5s(case: &str) -> BTreeSet<String> {
    let text = std::fs::read_to_string(support::corpus_dir().join(case).join("expected.json")).unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    v["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["md5"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn delivers_policy_matching_unique_hashes_with_auth_in_bounded_batches() {
    let dir = tmpdir("deliver");
    let rx = Receiver::start(0, &dir.join("rx.log"));
    let cfg = write_config(&dir, "text/.*", 3, "");
    let log = dir.join("files.log");
    // sv-filestore-dont carries 5 text files, two of them the same content.
    let out = run(&[
        "-r",
        capture("sv-filestore-dont").to_str().unwrap(),
        "--config",
        cfg.to_str().unwrap(),
        "--webhook-url",
        &rx.url(),
        "--files-log",
        log.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let records = files_log(&log);
    let want = matching_md5s(&records, "text/");
    assert!(
        want.len() >= 2 && records.len() > want.len(),
        "the capture has duplicate files: {records:?}"
    );

    let got = delivered(&rx);
    assert_eq!(got.iter().cloned().collect::<BTreeSet<_>>(), want);
    assert_eq!(got.len(), want.len(), "a hash was sent twice: {got:?}");
    for r in rx.requests() {
        assert_eq!(r["headers"]["authorization"], "Bearer e2e-token-123");
        assert_eq!(r["path"], "/api/submit");
        let items: Vec<Value> = serde_json::from_str(r["body"].as_str().unwrap()).unwrap();
        assert!((1..=3).contains(&items.len()), "batch of {}", items.len());
        for i in &items {
            assert_eq!(i["sensor"], "e2e");
            assert_eq!(i["proto"], "http");
            assert_eq!(i["resp_p"], 80);
            assert!(i["sha256"].as_str().unwrap().len() == 64 && i["size"].as_u64().unwrap() > 0);
        }
    }
    let s = egress_summary(&stderr);
    assert_eq!(s["files_logged"], records.len() as u64);
    assert_eq!(s["submitted"], want.len() as u64);
    assert_eq!(s["sent"], want.len() as u64);
    assert_eq!(s["deduped"], s["policy_matched"] - s["submitted"] - s["no_hash"]);
    assert!(s["deduped"] >= 1);
    // The token is never logged.
    assert!(!stderr.contains("e2e-token-123"));

    // The same capture again, with the dedup state saved by the first run: nothing new is sent.
    let before = rx.requests().len();
    let out = run(&[
        "-r",
        capture("sv-filestore-dont").to_str().unwrap(),
        "--config",
        cfg.to_str().unwrap(),
        "--webhook-url",
        &rx.url(),
        "--files-log",
        log.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let s = egress_summary(&stderr);
    assert_eq!((s["submitted"], s["sent"]), (0, 0), "{stderr}");
    assert_eq!(s["deduped"], s["policy_matched"]);
    assert_eq!(rx.requests().len(), before);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn default_policy_submits_the_pdf_only_and_md5_mode_sends_one_object() {
    let dir = tmpdir("md5mode");
    let rx = Receiver::start(0, &dir.join("rx.log"));
    std::fs::write(dir.join("token"), "bare-api-key").unwrap();
    for case in ["sv-issue-3703", "zeek-http-get"] {
        let out = run(&[
            "-r",
            capture(case).to_str().unwrap(),
            "--files-log",
            dir.join("files.log").to_str().unwrap(),
            "--webhook-url",
            &rx.url(),
            "--webhook-format",
            "md5",
            "--webhook-token-file",
            dir.join("token").to_str().unwrap(),
            "--state-dir",
            dir.join("state").to_str().unwrap(),
        ]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    let reqs = rx.requests();
    // Only the PDF (default policy: executables, CAB, PDF, Flash, Java); the text file is logged only.
    assert_eq!(reqs.len(), 1, "{reqs:?}");
    let pdf_md5 = corpus_md5s("sv-issue-3703").into_iter().next().unwrap();
    assert_eq!(reqs[0]["body"], format!("{{\"md5\":\"{pdf_md5}\"}}"));
    assert_eq!(reqs[0]["headers"]["authorization"], "bare-api-key");
    let _ = std::fs::remove_dir_all(&dir);
}

fn spill_files(dir: &Path) -> usize {
    std::fs::read_dir(dir.join("state/spill"))
        .map(|rd| {
            rd.filter(|e| {
                let p = e.as_ref().unwrap().path();
                p.extension().is_some_and(|x| x == "journal") && std::fs::metadata(&p).unwrap().len() > 0
            })
            .count()
        })
        .unwrap_or(0)
}

#[test]
fn receiver_down_mid_run_then_back_gets_everything_once() {
    let dir = tmpdir("midrun");
    // Batches of one and one batch of memory: the second undeliverable batch goes to the journal.
    let cfg = write_config(&dir, "text/.*", 1, "memory_batches = 1\ndrain_timeout = \"120s\"");
    let port = free_port();
    let log = dir.join("files.log");
    let mut child = Command::new(support::xdpcarve_bin())
        .args([
            "-r",
            capture("sv-http-post-file").to_str().unwrap(),
            "--config",
            cfg.to_str().unwrap(),
        ])
        .args([
            "--webhook-url",
            &format!("http://127.0.0.1:{port}/api/submit"),
            "--files-log",
        ])
        .arg(&log)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait (bounded) until the run has spilled to disk, then bring the receiver up.
    let deadline = Instant::now() + Duration::from_secs(60);
    while spill_files(&dir) == 0 {
        assert!(
            Instant::now() < deadline,
            "nothing was spilled while the receiver was down"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "xdpcarve ended while the receiver was down"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let rx = Receiver::start(port, &dir.join("rx.log"));
    let status = child.wait().unwrap();
    let mut stderr = String::new();
    child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    assert!(status.success(), "{stderr}");
    let s = egress_summary(&stderr);
    assert!(s["spilled"] >= 1 && s["retried"] >= 1, "{stderr}");
    assert_eq!((s["dropped"], s["journal_pending"]), (0, 0));
    let want = matching_md5s(&files_log(&log), "text/");
    assert!(want.len() >= 3);
    let got = delivered(&rx);
    assert_eq!(got.len(), want.len(), "each hash exactly once: {got:?}");
    assert_eq!(got.into_iter().collect::<BTreeSet<_>>(), want);
    assert_eq!(spill_files(&dir), 0, "the replayed journal is removed");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn journal_replays_after_a_restart_and_nothing_is_sent_twice() {
    let dir = tmpdir("restart");
    let cfg = write_config(&dir, "text/.*", 2, "drain_timeout = \"0s\"");
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}/api/submit");
    let log = dir.join("files.log");
    let args = |log: &Path| {
        vec![
            "-r".to_string(),
            capture("sv-mime-quoted-printable").to_string_lossy().into_owned(),
            "--config".into(),
            cfg.to_string_lossy().into_owned(),
            "--webhook-url".into(),
            url.clone(),
            "--files-log".into(),
            log.to_string_lossy().into_owned(),
        ]
    };
    // Receiver down: everything ends up in the journal when the run ends.
    let out = Command::new(support::xdpcarve_bin()).args(args(&log)).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let want = matching_md5s(&files_log(&log), "text/");
    let s = egress_summary(&stderr);
    assert_eq!((s["sent"], s["journal_pending"]), (0, want.len() as u64), "{stderr}");
    assert!(spill_files(&dir) > 0);

    // Receiver up, xdpcarve started again on the same capture: the journal is replayed and the
    // files seen again are deduplicated, so each hash arrives once.
    let rx = Receiver::start(port, &dir.join("rx.log"));
    let log2 = dir.join("files2.log");
    let out = Command::new(support::xdpcarve_bin())
        .args(args(&log2))
        .args(["--webhook-drain-timeout", "60s"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let s = egress_summary(&stderr);
    assert_eq!((s["submitted"], s["deduped"]), (0, want.len() as u64), "{stderr}");
    assert_eq!((s["sent"], s["journal_pending"]), (want.len() as u64, 0), "{stderr}");
    let got = delivered(&rx);
    assert_eq!(got.len(), want.len(), "{got:?}");
    assert_eq!(got.into_iter().collect::<BTreeSet<_>>(), want);
    for r in rx.requests() {
        let items: Vec<Value> = serde_json::from_str(r["body"].as_str().unwrap()).unwrap();
        assert!(items.len() <= 2);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

fn scrape(port: u16) -> String {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let (head, body) = resp.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/plain; version=0.0.4"),
        "{head}"
    );
    body.to_string()
}

/// A per-worker counter summed over the run's workers (one per core by default).
fn all_workers(scrape: &prometheus_parse::Scrape, name: &str) -> u64 {
    let values: Vec<f64> = scrape
        .samples
        .iter()
        .filter(|s| s.metric == name && s.labels.get("worker").is_some())
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Untyped(v) => v,
            _ => panic!("{name} is not a counter"),
        })
        .collect();
    assert!(!values.is_empty(), "no sample {name}{{worker}}");
    values.iter().sum::<f64>() as u64
}

fn sample(scrape: &prometheus_parse::Scrape, name: &str, label: Option<(&str, &str)>) -> f64 {
    let s = scrape
        .samples
        .iter()
        .find(|s| s.metric == name && label.is_none_or(|(k, v)| s.labels.get(k) == Some(v)))
        .unwrap_or_else(|| panic!("no sample {name} {label:?}"));
    match s.value {
        prometheus_parse::Value::Counter(v)
        | prometheus_parse::Value::Gauge(v)
        | prometheus_parse::Value::Untyped(v) => v,
        _ => panic!("{name} is not a plain value"),
    }
}

#[test]
fn metrics_at_the_end_of_a_run_match_the_summary_and_parse() {
    let dir = tmpdir("metrics");
    let rx = Receiver::start(0, &dir.join("rx.log"));
    let cfg = write_config(&dir, "text/.*", 2, "");
    let port = free_port();
    let mut child = Command::new(support::xdpcarve_bin())
        .args([
            "-r",
            capture("sv-filestore-dont").to_str().unwrap(),
            "--config",
            cfg.to_str().unwrap(),
        ])
        .args(["--webhook-url", &rx.url(), "--files-log"])
        .arg(dir.join("files.log"))
        .args([
            "--metrics-addr",
            &format!("127.0.0.1:{port}"),
            "--metrics-linger",
            "60s",
        ])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The summary is printed when the run is over; /metrics stays up for the linger.
    let mut stderr = String::new();
    let mut lines = BufReader::new(child.stderr.take().unwrap());
    loop {
        let mut line = String::new();
        assert!(
            lines.read_line(&mut line).unwrap() > 0,
            "xdpcarve ended without a summary: {stderr}"
        );
        stderr.push_str(&line);
        if line.trim_start().starts_with("egress: ") {
            break;
        }
    }
    let body = scrape(port);
    let _ = child.kill();
    let _ = child.wait();
    let parsed = prometheus_parse::Scrape::parse(body.lines().map(|l| Ok(l.to_string()))).expect("exposition format");
    let s = egress_summary(&stderr);
    let packets: u64 = stderr
        .lines()
        .next()
        .and_then(|l| l.split("): ").nth(1))
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("packet count in {stderr}"));
    let m = |name: &str| sample(&parsed, name, None) as u64;
    assert_eq!(all_workers(&parsed, "xdpcarve_capture_packets_total"), packets);
    assert_eq!(m("xdpcarve_files_logged_total"), s["files_logged"]);
    assert_eq!(m("xdpcarve_policy_matched_total"), s["policy_matched"]);
    assert_eq!(m("xdpcarve_submissions_queued_total"), s["submitted"]);
    assert_eq!(m("xdpcarve_submissions_sent_total"), s["sent"]);
    assert_eq!(m("xdpcarve_submissions_deduped_total"), s["deduped"]);
    assert_eq!(m("xdpcarve_submissions_spilled_total"), s["spilled"]);
    assert_eq!(m("xdpcarve_submissions_failed_total"), s["failed"]);
    assert_eq!(
        sample(&parsed, "xdpcarve_egress_files_total", Some(("mime_family", "text"))) as u64,
        s["files_logged"]
    );
    assert_eq!(all_workers(&parsed, "xdpcarve_files_files_total"), s["files_logged"]);
    assert_eq!(m("xdpcarve_webhook_batch_items_count"), rx.requests().len() as u64);
    assert_eq!(m("xdpcarve_webhook_batch_items_sum"), s["sent"]);
    assert!(s["sent"] >= 2);
    assert!(parsed
        .samples
        .iter()
        .any(|x| x.metric == "xdpcarve_build_info" && x.labels.get("sensor") == Some("e2e")));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_config_is_refused_naming_the_key() {
    let dir = tmpdir("badcfg");
    let cfg = dir.join("bad.toml");
    std::fs::write(&cfg, "[webhook]\nbatch_items = 5\n").unwrap();
    let out = run(&[
        "-r",
        capture("zeek-http-get").to_str().unwrap(),
        "--config",
        cfg.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("batch_items") && stderr.contains("bad.toml"),
        "{stderr}"
    );
    std::fs::write(&cfg, "[dedup]\nttl = \"0s\"\n").unwrap();
    let out = run(&[
        "-r",
        capture("zeek-http-get").to_str().unwrap(),
        "--config",
        cfg.to_str().unwrap(),
    ]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("dedup.ttl"));
    let out = run(&[
        "-r",
        capture("zeek-http-get").to_str().unwrap(),
        "--webhook-url",
        "ftp://x/",
    ]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("webhook.url"));
    // The token never shows in a config dump.
    std::fs::write(dir.join("token"), "Bearer never-print-me").unwrap();
    let out = run(&[
        "--dump-config",
        "--webhook-url",
        "http://127.0.0.1:9/",
        "--webhook-token-file",
    ]
    .into_iter()
    .map(str::to_string)
    .chain([dir.join("token").to_string_lossy().into_owned()])
    .collect::<Vec<_>>()
    .iter()
    .map(String::as_str)
    .collect::<Vec<_>>());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("[webhook]") && !stdout.contains("never-print-me"),
        "{stdout}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn full_disk_for_the_files_log_is_counted_not_a_crash() {
    // /dev/full: every write fails with ENOSPC.
    let out = run(&[
        "-r",
        capture("sv-filestore-dont").to_str().unwrap(),
        "--files-log",
        "/dev/full",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("files log") && stderr.contains("No space left on device"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(egress_summary(&stderr)["files_log_errors"] >= 1);
}

/// The arguments of a read of `case` that submits to `url` with the test's config.
fn read_args(case: &str, cfg: &Path, url: &str, log: &Path) -> Vec<String> {
    read_args_for(&capture(case), cfg, url, log)
}

#[test]
fn a_refused_token_keeps_what_is_owed_and_the_fixed_rerun_delivers_it() {
    let dir = tmpdir("unauthorized");
    let cfg = write_config(&dir, "text/.*", 2, "drain_timeout = \"1s\"");
    let port = free_port();
    let rx = Receiver::start_with(port, &dir.join("rx401.log"), &["--status", "401"]);
    let url = rx.url();
    let log = dir.join("files.log");
    let out = Command::new(support::xdpcarve_bin())
        .args(read_args("sv-mime-quoted-printable", &cfg, &url, &log))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    // A distinct status: nothing is lost, but a cron job must see the bad token.
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    let last = stderr.lines().last().unwrap_or("");
    assert!(last.contains("refused the webhook token (401/403)"), "{stderr}");
    let want = matching_md5s(&files_log(&log), "text/");
    assert!(!want.is_empty());
    let s = egress_summary(&stderr);
    assert_eq!((s["sent"], s["failed"], s["dropped"]), (0, 0, 0), "{stderr}");
    assert_eq!(
        (s["journal_pending"], s["unauthorized"]),
        (want.len() as u64, 1),
        "{stderr}"
    );
    assert!(rx.requests().len() > 1, "refusals are retried");
    drop(rx);

    // The token fixed (the receiver now takes it), the same capture again: the journal is
    // delivered, and nothing was deduplicated away by the refused run.
    let rx = Receiver::start(port, &dir.join("rx.log"));
    let out = Command::new(support::xdpcarve_bin())
        .args(read_args(
            "sv-mime-quoted-printable",
            &cfg,
            &url,
            &dir.join("files2.log"),
        ))
        .args(["--webhook-drain-timeout", "60s"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let s = egress_summary(&stderr);
    assert_eq!((s["journal_pending"], s["unauthorized"]), (0, 0), "{stderr}");
    let got: BTreeSet<String> = delivered(&rx).into_iter().collect();
    assert_eq!(got, want, "every hash owed arrives");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_rejected_batch_goes_to_the_dead_letter_file_and_fails_the_run() {
    let dir = tmpdir("dead-letter");
    let cfg = write_config(&dir, "text/.*", 100, "");
    let rx = Receiver::start_with(0, &dir.join("rx.log"), &["--status", "422"]);
    let log = dir.join("files.log");
    let out = Command::new(support::xdpcarve_bin())
        .args(read_args("sv-mime-quoted-printable", &cfg, &rx.url(), &log))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let want = matching_md5s(&files_log(&log), "text/");
    let s = egress_summary(&stderr);
    assert_eq!(s["failed"], want.len() as u64, "{stderr}");
    let spill = dir.join("state/spill");
    let dead = std::fs::read_to_string(spill.join("dead-letter.jsonl"))
        .unwrap_or_else(|e| panic!("no dead-letter file in {}: {e}\n{stderr}", spill.display()));
    let mut kept = BTreeSet::new();
    for line in dead.lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        assert_eq!(v["status"], 422);
        for item in v["items"].as_array().unwrap() {
            kept.insert(item["md5"].as_str().unwrap().to_string());
        }
    }
    assert_eq!(kept, want, "every refused item is kept with the answer");
    assert!(
        stderr.contains("refused") && stderr.contains("dead-letter.jsonl"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// `n` downloads of distinct executables, one connection each, one after another.
fn executables_capture(path: &Path, n: u16) -> BTreeSet<String> {
    use md5::{Digest, Md5};
    use support::carve::{tcp_conversation, write_pcap};
    let mut packets = Vec::new();
    let mut md5s = BTreeSet::new();
    for i in 0..n {
        // Odd seeds: pseudo_random takes seed | 1.
        let body = support::content::pe_like(1_001 + 2 * u64::from(i), 4096);
        md5s.insert(Md5::digest(&body).iter().map(|b| format!("{b:02x}")).collect());
        let request = format!("GET /f{i}.exe HTTP/1.1\r\nHost: dl.example\r\n\r\n");
        let mut response = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        response.extend_from_slice(&body);
        let conv = tcp_conversation(20_000 + i, 80, &[(true, request.as_bytes()), (false, &response)]);
        packets.extend(conv.into_iter().map(|(t, f)| (t + u64::from(i) * 10_000_000, f)));
    }
    write_pcap(path, 1, &packets);
    md5s
}

/// A capture with one SYN and no file: a run that only delivers what the journal holds.
fn no_files_capture(path: &Path) {
    use support::carve::{eth_ipv4, tcp, write_pcap, SYN};
    let syn = eth_ipv4([10, 0, 0, 1], [10, 0, 0, 2], 6, &tcp(40_000, 80, 1, 0, SYN, b""));
    write_pcap(path, 1, &[(1_600_000_000_000_000_000, syn)]);
}

/// The write-ahead journal: the sensor is stopped at random points of a read and of the slow
/// delivery after it (`kill -9` in most trials, SIGTERM in one), then started again on a capture
/// with no file. Every policy file whose files-log line was written more than two commit windows
/// (the batch wait, then the group commit: 100 ms) before the stop arrives.
#[test]
fn a_killed_sensor_loses_nothing_older_than_the_commit_window() {
    const FILES: u16 = 1000;
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let dir0 = tmpdir("kill9-capture");
    let capture_path = dir0.join("exes.pcap");
    let want = executables_capture(&capture_path, FILES);
    let empty = dir0.join("empty.pcap");
    no_files_capture(&empty);
    for trial in 0..4 {
        let dir = tmpdir(&format!("kill9-{trial}"));
        let cfg = write_config(&dir, "application/x-dosexec", 10, "drain_timeout = \"60s\"");
        let port = free_port();
        let slow = Receiver::start_with(port, &dir.join("rx-slow.log"), &["--delay-ms", "10"]);
        let log = dir.join("files.log");
        let mut child = Command::new(support::xdpcarve_bin())
            .args(["-r".as_ref(), capture_path.as_os_str()])
            .args(["--config".as_ref(), cfg.as_os_str()])
            .args(["--webhook-url", &slow.url()])
            .args(["--files-log".as_ref(), log.as_os_str()])
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Files-log lines over time: which were written long enough before the stop.
        let started = Instant::now();
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        // Early (inside the read), in the delivery, late, and anywhere.
        let stop_at = Duration::from_millis(match trial {
            0 => 60,
            1 => 20 + seed % 100,
            2 => 100 + seed % 300,
            _ => 20 + seed % 1200,
        });
        let mut samples: Vec<(Duration, usize)> = Vec::new();
        while started.elapsed() < stop_at {
            let lines = std::fs::read_to_string(&log).unwrap_or_default().lines().count();
            samples.push((started.elapsed(), lines));
            std::thread::sleep(Duration::from_millis(2));
        }
        let sigterm = trial == 0;
        if sigterm {
            let ok = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status()
                .unwrap();
            assert!(ok.success());
        } else {
            child.kill().unwrap();
        }
        let stopped = started.elapsed();
        child.wait().unwrap();
        let before = delivered(&slow);
        drop(slow);
        let safe_lines = samples
            .iter()
            .filter(|(t, _)| *t + Duration::from_millis(100) <= stopped)
            .map(|&(_, n)| n)
            .max()
            .unwrap_or(0);
        let records = files_log(&log);
        let owed: BTreeSet<String> = matching_md5s(&records[..safe_lines.min(records.len())], "application/x-dosexec");
        assert!(owed.is_subset(&want));

        let rx = Receiver::start(port, &dir.join("rx.log"));
        let out = Command::new(support::xdpcarve_bin())
            .args(read_args_for(&empty, &cfg, &rx.url(), &dir.join("files2.log")))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stderr}");
        let got: BTreeSet<String> = before.iter().chain(delivered(&rx).iter()).cloned().collect();
        let missing = owed.difference(&got).count();
        println!(
            "trial {trial}: {} at {:.0} ms, {} lines logged ({safe_lines} before the window), {} delivered before, {} in all",
            if sigterm { "SIGTERM" } else { "kill -9" },
            stopped.as_secs_f64() * 1000.0,
            records.len(),
            before.len(),
            got.len()
        );
        assert_eq!(
            missing,
            0,
            "trial {trial}: {missing} of {} owed hashes never arrived\n{stderr}",
            owed.len()
        );
        if sigterm {
            assert!(
                got.is_superset(&matching_md5s(&records, "application/x-dosexec")),
                "SIGTERM: everything logged arrives"
            );
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
    let _ = std::fs::remove_dir_all(&dir0);
}

fn read_args_for(capture: &Path, cfg: &Path, url: &str, log: &Path) -> Vec<String> {
    vec![
        "-r".to_string(),
        capture.to_string_lossy().into_owned(),
        "--config".into(),
        cfg.to_string_lossy().into_owned(),
        "--webhook-url".into(),
        url.to_string(),
        "--files-log".into(),
        log.to_string_lossy().into_owned(),
    ]
}

/// The README's webhook example, as written (a token in the environment, no directory named):
/// with the receiver down, what is owed survives into the next run, which delivers it.
#[test]
fn the_readme_webhook_example_delivers_everything_across_a_restart() {
    let dir = tmpdir("readme-example");
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}/api/hashes");
    let example = |capture: &Path, drain: &str| {
        Command::new(support::xdpcarve_bin())
            .current_dir(&dir)
            .env("XDPCARVE_WEBHOOK_TOKEN", "Bearer abc123")
            .env_remove("XDG_STATE_HOME")
            .env_remove("STATE_DIRECTORY")
            .args(["-r".as_ref(), capture.as_os_str()])
            .args(["--webhook-url", &url, "--webhook-drain-timeout", drain])
            .output()
            .unwrap()
    };
    let exes = dir.join("exes.pcap");
    let want = executables_capture(&exes, 30);
    let out = example(&exes, "1s");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "owed and journaled is not a loss\n{stderr}");
    let s = egress_summary(&stderr);
    assert_eq!((s["sent"], s["journal_pending"]), (0, want.len() as u64), "{stderr}");
    assert!(
        dir.join(".xdpcarve/spill").is_dir(),
        "the default state directory is ./.xdpcarve"
    );

    let rx = Receiver::start(port, &dir.join("rx.log"));
    let empty = dir.join("empty.pcap");
    no_files_capture(&empty);
    let out = example(&empty, "60s");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let got: BTreeSet<String> = delivered(&rx).into_iter().collect();
    assert_eq!(got, want);
    assert!(rx
        .requests()
        .iter()
        .all(|r| r["headers"]["authorization"] == "Bearer abc123"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// Unmounts (lazily) a tmpfs the test mounted, whatever happens.
struct Mounted(PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// The spill journal on a tiny tmpfs (mounted by the test; needs root): full at start, the run
/// still starts and carves every file, the submissions it cannot journal are counted as lost to
/// a full disk and fail the run; once there is space the journal works again by itself.
#[test]
fn a_full_disk_for_the_journal_loses_submissions_loudly_and_carving_goes_on() {
    let root = std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"));
    if !root {
        assert!(std::env::var_os("CI").is_none(), "CI runs the tests as root");
        println!("SKIPPED: mounting a tmpfs needs root");
        return;
    }
    let dir = tmpdir("disk-full");
    let spill = dir.join("spill");
    std::fs::create_dir_all(&spill).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=64k", "xdpcarve-test-spill"])
        .arg(&spill)
        .status()
        .unwrap();
    assert!(mounted.success(), "mount -t tmpfs failed");
    let _unmount = Mounted(spill.clone());
    // Fill it to the last byte.
    {
        let mut f = std::fs::File::create(spill.join("fill")).unwrap();
        let block = vec![0u8; 4096];
        while f.write_all(&block).is_ok() {}
        let _ = f.write_all(&[0]);
    }
    let exes = dir.join("exes.pcap");
    let want = executables_capture(&exes, 30);
    let cfg = write_config(&dir, "application/x-dosexec", 10, "drain_timeout = \"0s\"");
    let url = format!("http://127.0.0.1:{}/", free_port());
    let run = |log: &str| {
        let out = Command::new(support::xdpcarve_bin())
            .args(read_args_for(&exes, &cfg, &url, &dir.join(log)))
            .args(["--spill-dir".as_ref(), spill.as_os_str()])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        (out.status.code(), stderr)
    };
    let (code, stderr) = run("files1.log");
    assert_eq!(code, Some(1), "{stderr}");
    assert_eq!(
        matching_md5s(&files_log(&dir.join("files1.log")), "application/x-dosexec"),
        want,
        "carving goes on"
    );
    let s = egress_summary(&stderr);
    assert_eq!(
        (s["lost_disk_full"], s["journal_pending"]),
        (want.len() as u64, 0),
        "{stderr}"
    );
    assert!(stderr.contains("disk was full"), "{stderr}");
    assert!(!spill.join("cursor.tmp").exists(), "no half-written cursor left");

    // Space comes back: the same run journals everything it owes.
    std::fs::remove_file(spill.join("fill")).unwrap();
    let (code, stderr) = run("files2.log");
    assert_eq!(code, Some(0), "{stderr}");
    let s = egress_summary(&stderr);
    assert_eq!(
        (s["lost_disk_full"], s["journal_pending"]),
        (0, want.len() as u64),
        "{stderr}"
    );
}
