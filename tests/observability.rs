//! End-to-end test target `observability`: the alerting rules, the Grafana dashboard and a real
//! Prometheus scraping a running xdpcarve.
//!
//! - `promtool check rules` accepts `deploy/prometheus/xdpcarve.rules.yml`, and `promtool test
//!   rules` runs its unit tests (the drop, lost-submission, down, spill and flow-pressure alerts
//!   fire on synthetic series, and not on quiet ones).
//! - Debian's `prometheus` scrapes `xdpcarve -r` (with `--metrics-linger`) and the query for files
//!   carved returns the summary's `files: N logged`.
//! - Every metric the dashboard and the rules name is one xdpcarve exports: seen in that scrape,
//!   or (the live-only ones: rings, flow gauges) registered in the egress metrics source.
//!
//! Needs promtool and prometheus (package prometheus, tests/setup.sh); without them the tests
//! print SKIPPED (and fail under CI).

mod support;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::netns::{require_tool_or_skip, run_with_timeout, TempDir};
use support::{repo_root, xdpcarve_bin};

fn promtool(args: &[&str]) -> (i32, String) {
    let out = run_with_timeout(
        Command::new("promtool")
            .args(args)
            .current_dir(repo_root().join("deploy/prometheus")),
        Duration::from_secs(60),
    )
    .expect("promtool runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn promtool_accepts_the_rules() {
    if !require_tool_or_skip("promtool") {
        return;
    }
    let (code, text) = promtool(&["check", "rules", "xdpcarve.rules.yml"]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("SUCCESS"), "{text}");
}

#[test]
fn the_rules_unit_tests_pass() {
    if !require_tool_or_skip("promtool") {
        return;
    }
    let (code, text) = promtool(&["test", "rules", "xdpcarve.rules.test.yml"]);
    assert_eq!(code, 0, "{text}");
}

/// A child process killed (and reaped) when the test ends, however it ends.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// GET `path` from 127.0.0.1:`port`: the body, or None when nothing answers yet.
fn http_get(port: u16, path: &str) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.").then(|| body.to_string())
}

fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Names of `xdpcarve_*` metrics in a text (histogram series named by their family).
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find("xdpcarve_") {
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        let mut name = &tail[..end];
        for suffix in ["_bucket", "_sum", "_count"] {
            name = name.strip_suffix(suffix).unwrap_or(name);
        }
        names.insert(name.to_string());
        rest = &tail[end..];
    }
    names
}

/// The files count of xdpcarve's summary: `files: N logged`.
fn summary_files(stderr: &str) -> u64 {
    stderr
        .lines()
        .find_map(|l| l.trim().strip_prefix("files: "))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no `files: N logged` line in the summary:\n{stderr}"))
}

#[test]
fn prometheus_scrapes_xdpcarve_and_counts_the_summarys_files() {
    if !require_tool_or_skip("prometheus") {
        return;
    }
    let dir = TempDir::new("prometheus");
    let metrics_port = free_port();
    let sensor = Command::new(xdpcarve_bin())
        .arg("-r")
        .arg(repo_root().join("bench/samples/sample.pcap"))
        .arg("--files-log")
        .arg(dir.join("files.jsonl"))
        .args([
            "--metrics-addr",
            &format!("127.0.0.1:{metrics_port}"),
            "--metrics-linger",
            "300s",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("xdpcarve starts");
    let mut sensor = Killed(sensor);
    // The summary comes when the read ends; the endpoint stays up for the linger.
    let mut stderr_pipe = sensor.0.stderr.take().unwrap();
    // The pipe is drained to its end (a sensor writing to a closed stderr could stop early); the
    // text so far is handed over once the summary's last line is in.
    let (summary_tx, summary_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut text = String::new();
        let mut buf = [0u8; 4096];
        let mut sent = false;
        loop {
            match stderr_pipe.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => text.push_str(&String::from_utf8_lossy(&buf[..n])),
            }
            if !sent && text.contains("records: ") {
                sent = summary_tx.send(text.clone()).is_ok();
            }
        }
        if !sent {
            let _ = summary_tx.send(text);
        }
    });
    let summary = summary_rx
        .recv_timeout(Duration::from_secs(60))
        .expect("xdpcarve prints its summary");
    let expected = summary_files(&summary);
    let records = std::fs::read_to_string(dir.join("files.jsonl"))
        .unwrap()
        .lines()
        .count() as u64;
    assert_eq!(expected, records, "the summary counts the records written");
    assert!(expected > 0);

    // The sensor's endpoint answers before Prometheus is pointed at it.
    wait_for("xdpcarve's /metrics", Duration::from_secs(30), || {
        http_get(metrics_port, "/metrics").filter(|m| m.contains("xdpcarve_files_logged_total"))
    });

    let prom_port = free_port();
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: xdpcarve\n    \
             static_configs:\n      - targets: ['127.0.0.1:{metrics_port}']\n"
        ),
    )
    .unwrap();
    let log_path = dir.join("prometheus.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let prometheus = Command::new("prometheus")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.tsdb.path={}", dir.join("tsdb").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"))
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("prometheus starts");
    let mut prometheus = Killed(prometheus);

    let query = "/api/v1/query?query=sum(xdpcarve_files_logged_total)";
    let started = Instant::now();
    let value = loop {
        let answer = http_get(prom_port, query).and_then(|body| {
            let json: serde_json::Value = serde_json::from_str(&body).ok()?;
            json["data"]["result"][0]["value"][1].as_str().map(str::to_string)
        });
        if let Some(v) = answer {
            break v;
        }
        let exited = prometheus.0.try_wait().ok().flatten();
        if exited.is_some() || started.elapsed() > Duration::from_secs(120) {
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            let targets = http_get(prom_port, "/api/v1/targets").unwrap_or_default();
            panic!(
                "no scrape of xdpcarve after {:?} (prometheus exited: {exited:?}); targets: {targets}\n\
                 prometheus log:\n{}",
                started.elapsed(),
                log.lines().rev().take(30).collect::<Vec<_>>().join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    assert_eq!(
        value.parse::<u64>().unwrap(),
        expected,
        "Prometheus' figure is the summary's"
    );

    // Prometheus saw the sensor as up.
    let up = http_get(prom_port, "/api/v1/query?query=up%7Bjob%3D%22xdpcarve%22%7D").unwrap();
    assert!(up.contains("\"1\""), "{up}");

    // Every metric the dashboard and the rules use exists.
    let scraped = http_get(metrics_port, "/metrics").expect("xdpcarve /metrics answers");
    let mut exported = metric_names(&scraped);
    // Metrics registered only when their part is configured (the fleet's: with fleet.redis).
    for file in ["metrics.rs", "fleet/mod.rs"] {
        let source = std::fs::read_to_string(repo_root().join("userspace/xdpcarve-egress/src").join(file)).unwrap();
        exported.extend(metric_names(&source));
    }
    for file in ["deploy/grafana/xdpcarve.json", "deploy/prometheus/xdpcarve.rules.yml"] {
        let text = std::fs::read_to_string(repo_root().join(file)).unwrap();
        let used = metric_names(&text);
        assert!(used.len() >= 10, "{file}: {used:?}");
        let unknown: Vec<_> = used.difference(&exported).collect();
        assert!(
            unknown.is_empty(),
            "{file} uses metrics xdpcarve does not export: {unknown:?}"
        );
    }
}

#[test]
fn the_dashboard_is_valid_grafana_json() {
    let text = std::fs::read_to_string(repo_root().join("deploy/grafana/xdpcarve.json")).unwrap();
    let dash: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
    let panels = dash["panels"].as_array().expect("panels");
    let titles: Vec<&str> = panels.iter().filter_map(|p| p["title"].as_str()).collect();
    for want in [
        "Packets",
        "Drops by cause",
        "Files carved by type",
        "Submission lag (webhook delivery time)",
        "Spill journal depth",
        "Scanner latency (chain time per file)",
        "Flow table",
    ] {
        assert!(titles.contains(&want), "no panel {want}: {titles:?}");
    }
    let mut ids = BTreeSet::new();
    for p in panels {
        assert!(ids.insert(p["id"].as_u64().expect("panel id")), "duplicate panel id");
        for t in p["targets"].as_array().expect("targets") {
            assert!(t["expr"].as_str().is_some_and(|e| e.contains("xdpcarve_")), "{t}");
        }
    }
}
