//! The egress pipeline end to end with synthetic records and a real HTTP receiver process
//! (tests/support/receiver.py) on loopback.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;
use xdpcarve_contract::{Direction, FileRecord, Proto};
use xdpcarve_egress::config::{EgressConfig, PolicyConfig};
use xdpcarve_egress::{Egress, EgressError, EgressSummary, MetricsHub, QueueMode, SubmissionItem, WebhookFormat};

struct Receiver {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Receiver {
    fn start(port: u16, log: &Path, extra: &[&str]) -> Receiver {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/support/receiver.py");
        let mut child = Command::new("python3")
            .arg(script)
            .arg(port.to_string())
            .arg(log)
            .args(extra)
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 runs");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line.trim().strip_prefix("READY ").expect("READY line").parse().unwrap();
        Receiver {
            child,
            port,
            log: log.to_path_buf(),
        }
    }

    fn requests(&self) -> Vec<serde_json::Value> {
        read_requests(&self.log)
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn read_requests(log: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn md5_of(n: u64) -> String {
    format!("{n:032x}")
}

fn record(n: u64, mime: &str, md5: Option<String>) -> FileRecord {
    let line = format!(
        r#"{{"ts":"2024-01-01T00:00:00.000000Z","fuid":"F{n}","uid":"C{n}","proto":"http","orig_h":"10.0.0.1","orig_p":40000,
        "resp_h":"10.0.0.2","resp_p":80,"direction":"download","is_orig":false,"filename":"f{n}.bin","mime_type":"{mime}",
        "declared_mime_type":null,"extension_mime_type":null,"size":{},"total_bytes":null,"missing_bytes":0,"overflow_bytes":0,
        "truncated":false,"partial":false,"depth":0,"duration":0.0,"md5":null,"sha1":null,"sha256":null,"blake3":null}}"#,
        100 + n
    );
    let mut r: FileRecord = serde_json::from_str(&line).unwrap();
    r.md5 = md5;
    assert_eq!(r.proto, Proto::new("http"));
    assert_eq!(r.direction, Direction::Download);
    r
}

fn config(dir: &Path, url: Option<String>) -> EgressConfig {
    let mut cfg = EgressConfig {
        sensor_name: "test-sensor".into(),
        ..Default::default()
    };
    cfg.files_log.path = Some(dir.join("files.log").to_string_lossy().into_owned());
    cfg.policy = PolicyConfig {
        mime_types: vec!["application/pdf".into()],
        ..Default::default()
    };
    cfg.webhook.url = url;
    cfg.webhook.token_file = Some(dir.join("token"));
    std::fs::write(dir.join("token"), "Bearer s3cret\n").unwrap();
    cfg.webhook.retry_initial_delay = Duration::from_millis(20);
    cfg.webhook.retry_max_delay = Duration::from_millis(200);
    cfg.webhook.batch_max_delay = Duration::from_millis(50);
    cfg.dedup.state_file = Some(dir.join("dedup.state"));
    cfg.spill.dir = Some(dir.join("spill"));
    cfg.metrics.addr = None;
    cfg
}

fn run(cfg: EgressConfig, records: Vec<FileRecord>, mode: QueueMode) -> (EgressSummary, Arc<MetricsHub>) {
    let hub = Arc::new(MetricsHub::new("test-sensor"));
    let mut egress = Egress::start(cfg, hub.clone(), 2, mode).unwrap();
    let mut senders = egress.take_senders();
    let (a, b) = senders.split_at_mut(1);
    for (i, r) in records.into_iter().enumerate() {
        let s = if i % 2 == 0 { &mut a[0] } else { &mut b[0] };
        assert!(s.send(r));
    }
    drop(senders);
    let summary = egress.finish().unwrap();
    egress.join();
    (summary, hub)
}

fn delivered_md5s(requests: &[serde_json::Value]) -> Vec<String> {
    let mut out = Vec::new();
    for r in requests.iter().filter(|r| r["answered"] == 200) {
        let items: Vec<SubmissionItem> = serde_json::from_str(r["body"].as_str().unwrap()).unwrap();
        out.extend(items.into_iter().map(|i| i.md5.unwrap()));
    }
    out
}

#[test]
fn batches_unique_matching_hashes_with_auth() {
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start(0, &dir.path().join("rx.log"), &[]);
    let mut cfg = config(dir.path(), Some(format!("http://127.0.0.1:{}/submit?key=x", rx.port)));
    cfg.webhook.batch_max_items = 7;
    let mut records = Vec::new();
    for n in 0..100 {
        records.push(record(n, "application/pdf", Some(md5_of(n))));
        records.push(record(1000 + n, "text/plain", Some(md5_of(1000 + n))));
    }
    for n in 0..20 {
        records.push(record(n, "application/pdf", Some(md5_of(n)))); // duplicates
    }
    for n in 0..5 {
        records.push(record(2000 + n, "application/pdf", None)); // no hash
    }
    let (s, hub) = run(cfg.clone(), records, QueueMode::Block);
    assert_eq!(s.files_logged, 225);
    assert_eq!((s.policy_matched, s.submitted, s.deduped, s.no_hash), (125, 100, 20, 5));
    assert_eq!((s.sent, s.failed, s.dropped, s.journal_pending), (100, 0, 0, 0));
    let reqs = rx.requests();
    let mut md5s = delivered_md5s(&reqs);
    md5s.sort();
    let mut want: Vec<String> = (0..100).map(md5_of).collect();
    want.sort();
    assert_eq!(md5s, want);
    for r in &reqs {
        assert_eq!(r["headers"]["authorization"], "Bearer s3cret");
        assert_eq!(r["headers"]["content-type"], "application/json");
        assert_eq!(r["path"], "/submit?key=x");
        let items: Vec<SubmissionItem> = serde_json::from_str(r["body"].as_str().unwrap()).unwrap();
        assert!(!items.is_empty() && items.len() <= 7);
        assert!(items
            .iter()
            .all(|i| i.sensor == "test-sensor" && i.resp_p == 80 && i.proto == Proto::new("http")));
    }
    let text = hub.render();
    assert!(text.contains("xdpcarve_submissions_sent_total 100\n"), "{text}");
    assert!(text.contains("xdpcarve_submissions_deduped_total 20\n"));
    let log = std::fs::read_to_string(dir.path().join("files.log")).unwrap();
    assert_eq!(log.lines().count(), 225);

    // A second run with the saved dedup state sends nothing new.
    let records = (0..100)
        .map(|n| record(n, "application/pdf", Some(md5_of(n))))
        .collect();
    let (s, _) = run(cfg, records, QueueMode::Block);
    assert_eq!((s.submitted, s.deduped, s.sent), (0, 100, 0));
    assert_eq!(rx.requests().len(), reqs.len());
}

#[test]
fn md5_mode_sends_one_object_per_request() {
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start(0, &dir.path().join("rx.log"), &[]);
    let mut cfg = config(dir.path(), Some(format!("http://127.0.0.1:{}/md5", rx.port)));
    cfg.webhook.format = WebhookFormat::Md5;
    let records = (0..5).map(|n| record(n, "application/pdf", Some(md5_of(n)))).collect();
    let (s, _) = run(cfg, records, QueueMode::Block);
    assert_eq!(s.sent, 5);
    let bodies: Vec<String> = rx
        .requests()
        .iter()
        .map(|r| r["body"].as_str().unwrap().to_string())
        .collect();
    let want: Vec<String> = (0..5).map(|n| format!("{{\"md5\":\"{}\"}}", md5_of(n))).collect();
    let mut got = bodies.clone();
    got.sort();
    assert_eq!(got, want);
}

#[test]
fn retries_on_503_and_gives_up_on_400() {
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start(0, &dir.path().join("rx.log"), &["--fail-first", "2"]);
    let cfg = config(dir.path(), Some(format!("http://127.0.0.1:{}/", rx.port)));
    let records = (0..3).map(|n| record(n, "application/pdf", Some(md5_of(n)))).collect();
    let (s, _) = run(cfg, records, QueueMode::Block);
    assert_eq!((s.sent, s.retried, s.failed), (3, 2, 0));
    let reqs = rx.requests();
    assert_eq!(reqs.iter().filter(|r| r["answered"] == 503).count(), 2);
    // The same body was sent again after the 503s.
    assert_eq!(reqs[0]["body"], reqs[2]["body"]);

    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start(0, &dir.path().join("rx.log"), &["--status", "400"]);
    let cfg = config(dir.path(), Some(format!("http://127.0.0.1:{}/", rx.port)));
    let records = (0..3).map(|n| record(n, "application/pdf", Some(md5_of(n)))).collect();
    let (s, _) = run(cfg, records, QueueMode::Block);
    assert_eq!((s.sent, s.retried, s.failed, s.journal_pending), (0, 0, 3, 0));
    assert_eq!(rx.requests().len(), 1);
}

#[test]
fn receiver_down_spills_then_replays_in_order_once() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let url = Some(format!("http://127.0.0.1:{port}/"));
    let mut cfg = config(dir.path(), url);
    cfg.webhook.batch_max_items = 3;
    cfg.webhook.memory_batches = 2;
    cfg.webhook.drain_timeout = Duration::from_millis(300);
    let records: Vec<_> = (0..50).map(|n| record(n, "application/pdf", Some(md5_of(n)))).collect();
    let (s, _) = run(cfg.clone(), records.clone(), QueueMode::Block);
    assert_eq!((s.submitted, s.sent, s.dropped), (50, 0, 0));
    assert_eq!(s.journal_pending, 50);
    assert!(s.retried > 0);

    // The receiver comes back; the next start replays the journal, and the same files again are
    // deduplicated (the state was saved), so each hash arrives exactly once.
    let rx = Receiver::start(port, &dir.path().join("rx.log"), &[]);
    cfg.webhook.drain_timeout = Duration::from_secs(60);
    let (s, _) = run(cfg, records, QueueMode::Block);
    assert_eq!((s.submitted, s.deduped, s.sent, s.journal_pending), (0, 50, 50, 0));
    let got = delivered_md5s(&rx.requests());
    // In order: the order the egress thread took the records in, which is the files log's order.
    let log = std::fs::read_to_string(dir.path().join("files.log")).unwrap();
    let taken: Vec<String> = log
        .lines()
        .take(50)
        .map(|l| serde_json::from_str::<FileRecord>(l).unwrap().md5.unwrap())
        .collect();
    assert_eq!(got, taken);
    let mut sorted = got.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), 50);
    assert_eq!(got.len(), 50);
    let left = std::fs::read_dir(dir.path().join("spill"))
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "journal"))
        .count();
    assert_eq!(left, 0, "a replayed journal leaves no segment behind");
}

#[test]
fn blocking_queue_loses_nothing_when_tiny() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), None);
    cfg.queue.capacity = 2;
    let records = (0..5000).map(|n| record(n, "text/plain", Some(md5_of(n)))).collect();
    let (s, _) = run(cfg, records, QueueMode::Block);
    assert_eq!((s.files_logged, s.queue_full), (5000, 0));
}

/// The messages of an error and its sources, outermost first; checks that no message repeats
/// the text of its source (so a chain printer shows each cause once).
fn chain(err: &EgressError) -> Vec<String> {
    let mut out = vec![err.to_string()];
    let mut src = std::error::Error::source(err);
    while let Some(e) = src {
        let text = e.to_string();
        assert!(
            !out.last().unwrap().contains(&text),
            "{:?} repeats its source {text:?}",
            out.last().unwrap()
        );
        out.push(text);
        src = e.source();
    }
    out
}

#[test]
fn bad_settings_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), Some("ftp://x/".into()));
    let hub = Arc::new(MetricsHub::new("t"));
    let start = |cfg: &EgressConfig| {
        chain(
            &Egress::start(cfg.clone(), hub.clone(), 1, QueueMode::Block)
                .err()
                .unwrap(),
        )
    };
    let err = start(&cfg);
    assert_eq!(err, ["webhook.url `ftp://x/`: must start with http:// or https://"]);
    cfg.webhook.url = Some("http://127.0.0.1:1/".into());
    cfg.webhook.token_file = Some(dir.path().join("missing"));
    let err = start(&cfg);
    assert_eq!(err.len(), 2, "{err:?}");
    assert!(err[0].contains("webhook.token_file"), "{err:?}");
    assert!(err[1].contains("No such file"), "{err:?}");
    cfg.webhook.token_file = None;
    cfg.spill.dir = Some("/proc/nope".into());
    let err = start(&cfg);
    assert_eq!(err[0], "spill.dir /proc/nope: cannot open the spill journal");
    assert_eq!(err.len(), 2, "{err:?}");
    cfg.webhook.url = None;
    cfg.spill.dir = None;
    cfg.files_log.path = Some("/nonexistent-dir/files.log".into());
    let err = start(&cfg);
    assert!(err[0].contains("files log /nonexistent-dir/files.log"), "{err:?}");
    assert_eq!(err.len(), 2, "{err:?}");
    assert!(err[1].contains("No such file"), "{err:?}");
    cfg.files_log.path = None;
    cfg.policy.mime_types = vec!["(".into()];
    let err = start(&cfg);
    assert!(
        err[0].starts_with("policy.mime_types[0] `(`: not a valid regex"),
        "{err:?}"
    );
    assert!(err[1].contains("unclosed group"), "{err:?}");
}
