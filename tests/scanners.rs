//! End-to-end tests of the store and the scanners (issue "Scanners"): the real binary reads a
//! capture, keeps the files it carves in a store dir, hands them to real scanners (in-process
//! YARA, a clamd of the test's own over INSTREAM, command scanners from tests/scanners/), and
//! writes the verdicts to the scans log, the alerts log, the webhook (a real loopback receiver,
//! tests/support/receiver.py) and the on_malicious action. Nothing is mocked.
//!
//! Without clamd (Debian's clamav-daemon, tests/setup.sh installs it) or without YARA compiled in
//! (`--features yara`) the tests that need them print SKIPPED; with `CI` set they fail instead.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::carve::{tcp_conversation, write_pcap, TempDir};
use support::clamd::{clamd_binary, Clamd, HashSig};
use support::netns::skip;
use support::receiver::Receiver;

/// The corpus file the YARA rules and the clamd signature match: the PDF that sv-issue-3703
/// carries (tests/scanners/rules.yar names its size and strings).
const PDF_CASE: &str = "sv-issue-3703";
const PDF_SHA256: &str = "02f43016d07812f881dc1ccee724f95682016ff00c7ee6b2c856d4d693ce3fa5";
const PDF_MD5: &str = "56571cb24748d88f5a6b5d657f81193a";
const PDF_SIZE: u64 = 9952;
const PDF_NAME: &str = "467659.pdf";
const YARA_RULE: &str = "Xdpcarve_Test_Pdf3703";
const CLAM_SIG: &str = "Xdpcarve.Test.Pdf3703";

const VERDICTS: [&str; 5] = ["clean", "error", "timeout", "suspicious", "malicious"];
const SCANNER_KINDS: [&str; 4] = ["yara", "clamd", "command", "http"];

// ---------------------------------------------------------------------------------------------
// Running the binary

/// What one run left behind.
struct ScanRun {
    code: Option<i32>,
    stderr: String,
    files: Vec<Value>,
    scans: Vec<Value>,
    alerts: Vec<Value>,
    store: PathBuf,
}

impl ScanRun {
    fn describe(&self) -> String {
        let lines = |name: &str, v: &[Value]| {
            let mut s = format!("{name} ({}):\n", v.len());
            for l in v {
                s.push_str(&format!("  {l}\n"));
            }
            s
        };
        format!(
            "exit {:?}\n{}{}{}stderr:\n{}",
            self.code,
            lines("files log", &self.files),
            lines("scans log", &self.scans),
            lines("alerts log", &self.alerts),
            self.stderr
        )
    }

    fn assert_ok(&self) {
        assert!(
            self.code == Some(0) && !self.stderr.contains("panicked"),
            "the run failed\n{}",
            self.describe()
        );
    }

    /// The files-log record of the file with this SHA-256 (exactly one).
    fn record(&self, sha256: &str) -> &Value {
        let hits: Vec<&Value> = self.files.iter().filter(|r| r["sha256"] == sha256).collect();
        assert_eq!(hits.len(), 1, "records with sha256 {sha256}\n{}", self.describe());
        hits[0]
    }

    /// The scans-log line of file `fuid` (exactly one).
    fn scan_of(&self, fuid: &Value) -> &Value {
        let hits: Vec<&Value> = self.scans.iter().filter(|l| &l["fuid"] == fuid).collect();
        assert_eq!(hits.len(), 1, "scans-log lines for fuid {fuid}\n{}", self.describe());
        hits[0]
    }

    /// The alerts-log lines of file `fuid`.
    fn alerts_of(&self, fuid: &Value) -> Vec<&Value> {
        self.alerts.iter().filter(|l| &l["fuid"] == fuid).collect()
    }

    /// Validates every scans-log and alerts-log line, and checks them against the files log.
    fn check_schemas(&self) {
        let mut problems = Vec::new();
        for r in &self.files {
            problems.extend(
                check_record(r, &self.store)
                    .into_iter()
                    .map(|p| format!("files log: {p}: {r}")),
            );
        }
        for l in &self.scans {
            problems.extend(
                check_scan_line(l, &self.store)
                    .into_iter()
                    .map(|p| format!("scans log: {p}: {l}")),
            );
        }
        for a in &self.alerts {
            problems.extend(
                check_alert_line(a, &self.store)
                    .into_iter()
                    .map(|p| format!("alerts log: {p}: {a}")),
            );
        }
        // Every scans line is of a file the files log has (as queued), once.
        let mut seen = BTreeSet::new();
        for l in &self.scans {
            if !seen.insert(l["fuid"].to_string()) {
                problems.push(format!("scans log: two lines for fuid {}", l["fuid"]));
            }
            match self.files.iter().find(|r| r["fuid"] == l["fuid"]) {
                None => problems.push(format!("scans log: fuid {} is in no files-log record", l["fuid"])),
                Some(r) => {
                    if r["scan"] != "queued" {
                        problems.push(format!(
                            "scans log: fuid {}'s record says scan {}",
                            l["fuid"], r["scan"]
                        ));
                    }
                    if l["sha256"] != r["sha256"] || l["uid"] != r["uid"] {
                        problems.push(format!(
                            "scans log: fuid {}: sha256/uid differ from its record",
                            l["fuid"]
                        ));
                    }
                }
            }
        }
        // Every alert is of a flagged scan, and carries the record's fields.
        for a in &self.alerts {
            let Some(l) = self.scans.iter().find(|l| l["fuid"] == a["fuid"]) else {
                problems.push(format!("alerts log: fuid {} has no scans-log line", a["fuid"]));
                continue;
            };
            problems.extend(
                alert_matches_scan(a, l)
                    .into_iter()
                    .map(|p| format!("alerts log: {p}: {a}")),
            );
            if let Some(r) = self.files.iter().find(|r| r["fuid"] == a["fuid"]) {
                for k in [
                    "uid",
                    "sha256",
                    "md5",
                    "proto",
                    "orig_h",
                    "orig_p",
                    "resp_h",
                    "resp_p",
                    "size",
                    "filename",
                    "mime_type",
                ] {
                    if a.get(k).unwrap_or(&Value::Null) != r.get(k).unwrap_or(&Value::Null) {
                        problems.push(format!("alerts log: {k} {} != the record's {}", a[k], r[k]));
                    }
                }
            }
        }
        // Every flagged scan has its alert, once.
        for l in &self.scans {
            let flagged = l["verdict"] == "malicious" || l["verdict"] == "suspicious";
            let n = self.alerts.iter().filter(|a| a["fuid"] == l["fuid"]).count();
            if n != usize::from(flagged) {
                problems.push(format!(
                    "{n} alert lines for fuid {} with verdict {}",
                    l["fuid"], l["verdict"]
                ));
            }
        }
        assert!(problems.is_empty(), "{}\n{}", problems.join("\n"), self.describe());
    }
}

fn jsonl(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{}: bad JSON line {l:?}: {e}", path.display())))
        .collect()
}

/// Runs `xdpcarve -r capture --config <config> --files-log ... --store-dir <dir>/store
/// --scans-log ... --alerts-log ...` from `cwd` (default: `dir`), within two minutes.
fn run_scan_in(dir: &TempDir, capture: &Path, config: &str, cwd: Option<&Path>) -> ScanRun {
    let cfg = dir.path("xdpcarve.toml");
    std::fs::write(&cfg, config).unwrap();
    let store = dir.path("store");
    let (files, scans, alerts) = (
        dir.path("files.jsonl"),
        dir.path("scans.jsonl"),
        dir.path("alerts.jsonl"),
    );
    let stderr_path = dir.path("stderr.txt");
    let mut child = Command::new(support::xdpcarve_bin())
        .arg("-r")
        .arg(capture)
        .arg("--config")
        .arg(&cfg)
        .arg("--files-log")
        .arg(&files)
        .arg("--store-dir")
        .arg(&store)
        .arg("--scans-log")
        .arg(&scans)
        .arg("--alerts-log")
        .arg(&alerts)
        .current_dir(cwd.unwrap_or(&dir.0))
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&stderr_path).unwrap())
        .spawn()
        .expect("xdpcarve runs");
    let status = wait_bounded(&mut child, Duration::from_secs(120));
    ScanRun {
        code: status,
        stderr: std::fs::read_to_string(&stderr_path).unwrap_or_default(),
        files: jsonl(&files),
        scans: jsonl(&scans),
        alerts: jsonl(&alerts),
        store,
    }
}

fn run_scan(dir: &TempDir, capture: &Path, config: &str) -> ScanRun {
    run_scan_in(dir, capture, config, None)
}

/// Waits for the child; kills it and fails past `limit` (a run must end by itself).
fn wait_bounded(child: &mut Child, limit: Duration) -> Option<i32> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("wait for xdpcarve") {
            return status.code();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("xdpcarve did not end within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A path string for a config file (TOML basic string: backslashes and quotes escaped).
fn toml_str(p: impl AsRef<Path>) -> String {
    let s = p.as_ref().to_str().expect("utf-8 path");
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// A script of tests/scanners/, as a TOML string.
fn script(name: &str) -> String {
    let p = support::repo_root().join("tests/scanners").join(name);
    assert!(p.is_file(), "{} is missing", p.display());
    toml_str(p)
}

fn corpus_capture(case: &str) -> PathBuf {
    support::corpus_dir().join(case).join("trace.pcap")
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .permissions()
        .mode()
        & 0o7777
}

// ---------------------------------------------------------------------------------------------
// Captures

/// An HTTP/1.1 200 response with `headers` (each a full line without CRLF) and Content-Length.
fn http_response(content_type: &str, headers: &[&[u8]], body: &[u8]) -> Vec<u8> {
    let mut r = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n",
        body.len()
    )
    .into_bytes();
    for h in headers {
        r.extend_from_slice(h);
        r.extend_from_slice(b"\r\n");
    }
    r.extend_from_slice(b"\r\n");
    r.extend_from_slice(body);
    r
}

/// One connection per download (a GET of `path`, then `response`), 100 ms apart, in one pcap.
fn write_downloads(pcap: &Path, downloads: &[(Vec<u8>, Vec<u8>)]) {
    let mut packets = Vec::new();
    for (i, (path, response)) in downloads.iter().enumerate() {
        let mut request = b"GET ".to_vec();
        request.extend_from_slice(path);
        request.extend_from_slice(b" HTTP/1.1\r\nHost: files.example\r\nUser-Agent: scanners-test\r\n\r\n");
        let conv = tcp_conversation(40_000 + i as u16, 80, &[(true, &request[..]), (false, &response[..])]);
        let shift = i as u64 * 100_000;
        packets.extend(conv.into_iter().map(|(t, f)| (t + shift, f)));
    }
    write_pcap(pcap, 1, &packets);
}

/// A small PDF-looking file (sniffed application/pdf) holding `text`.
fn pdf_with(text: &str) -> Vec<u8> {
    format!("%PDF-1.4\n1 0 obj\n<< /Title ({text}) >>\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n").into_bytes()
}

/// A plain-text file (sniffed text/plain).
fn text_with(text: &str) -> Vec<u8> {
    format!("This is a harmless plain text file for the scanner tests.\n{text}\nThe end.\n").into_bytes()
}

// ---------------------------------------------------------------------------------------------
// Schemas (README, "Scanners")

/// A small validator: collects what is wrong with one JSON object.
struct Check<'a> {
    v: &'a Value,
    problems: Vec<String>,
}

impl<'a> Check<'a> {
    fn new(v: &'a Value) -> Check<'a> {
        let mut c = Check {
            v,
            problems: Vec::new(),
        };
        if !v.is_object() {
            c.problems.push("not a JSON object".into());
        }
        c
    }
    fn get(&self, key: &str) -> Option<&'a Value> {
        self.v.get(key)
    }
    fn bad(&mut self, key: &str, what: &str) {
        self.problems.push(format!(
            "`{key}` {what} (is {})",
            self.v.get(key).unwrap_or(&Value::Null)
        ));
    }
    /// Only these keys.
    fn only(&mut self, keys: &[&str]) {
        if let Some(o) = self.v.as_object() {
            for k in o.keys() {
                if !keys.contains(&k.as_str()) {
                    self.problems.push(format!("unknown key `{k}`"));
                }
            }
        }
    }
    fn string(&mut self, key: &str, required: bool) -> Option<&'a str> {
        match self.get(key) {
            // An optional key may be left out or be null.
            None | Some(Value::Null) if !required => None,
            Some(Value::String(s)) if !s.is_empty() => Some(s),
            _ => {
                self.bad(key, "must be a non-empty string");
                None
            }
        }
    }
    fn one_of(&mut self, key: &str, allowed: &[&str], required: bool) -> Option<&'a str> {
        let s = self.string(key, required)?;
        if !allowed.contains(&s) {
            self.bad(key, &format!("must be one of {allowed:?}"));
        }
        Some(s)
    }
    fn hex(&mut self, key: &str, len: usize, required: bool) {
        if let Some(s) = self.string(key, required) {
            if s.len() != len || !s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
                self.bad(key, &format!("must be {len} lowercase hex digits"));
            }
        }
    }
    fn uint(&mut self, key: &str, max: u64) {
        if self.get(key).and_then(Value::as_u64).is_none_or(|n| n > max) {
            self.bad(key, &format!("must be an integer 0..={max}"));
        }
    }
    fn boolean(&mut self, key: &str) -> Option<bool> {
        let b = self.get(key).and_then(Value::as_bool);
        if b.is_none() {
            self.bad(key, "must be a boolean");
        }
        b
    }
    fn strings(&mut self, key: &str, required: bool, non_empty: bool) -> Vec<&'a str> {
        match self.get(key) {
            None if !required => Vec::new(),
            Some(Value::Array(a)) if a.iter().all(|s| s.as_str().is_some_and(|s| !s.is_empty())) => {
                if non_empty && a.is_empty() {
                    self.bad(key, "must not be empty (omitted instead)");
                }
                a.iter().filter_map(Value::as_str).collect()
            }
            _ => {
                self.bad(key, "must be an array of non-empty strings");
                Vec::new()
            }
        }
    }
    /// `<store>/<sha256[0..2]>/<sha256>`.
    fn stored_path(&mut self, store: &Path, required: bool) {
        let Some(p) = self.string("stored_path", required) else {
            return;
        };
        let sha = self.get("sha256").and_then(Value::as_str).unwrap_or("");
        if sha.len() < 2 || Path::new(p) != store.join(&sha[..2]).join(sha) {
            self.bad(
                "stored_path",
                &format!("must be {}/<sha256[0..2]>/<sha256>", store.display()),
            );
        }
    }
}

fn rank(verdict: &str) -> usize {
    VERDICTS.iter().position(|v| *v == verdict).unwrap_or(0)
}

/// The files log's new fields.
fn check_record(r: &Value, store: &Path) -> Vec<String> {
    let mut c = Check::new(r);
    c.one_of("scan", &["queued", "skipped_queue_full", "skipped_not_stored"], false);
    c.stored_path(store, false);
    // Set only on what is submitted with verdicts, never in the files log.
    for k in ["verdict", "verdicts"] {
        if r.get(k).is_some() {
            c.bad(k, "must not be in the files log (written before the scanners answer)");
        }
    }
    c.problems
}

/// One scans-log line: `{"ts","fuid","uid","sha256","kind":"scan","scan","pipeline","verdict",
/// "stored_path","deleted","detail"?,"results":[{"scanner","kind","verdict","signatures"?,"detail"?,"duration"}]}`.
fn check_scan_line(l: &Value, store: &Path) -> Vec<String> {
    let mut c = Check::new(l);
    c.only(&[
        "ts",
        "fuid",
        "uid",
        "sha256",
        "kind",
        "scan",
        "pipeline",
        "verdict",
        "stored_path",
        "deleted",
        "results",
        "detail",
    ]);
    c.string("ts", true);
    c.string("fuid", true);
    c.string("uid", true);
    if c.one_of("kind", &["scan"], true).is_none() {
        c.bad("kind", "must be \"scan\"");
    }
    let scan = c.one_of(
        "scan",
        &["scanned", "skipped_drain_timeout", "skipped_not_stored"],
        true,
    );
    let scanned = scan == Some("scanned");
    c.hex("sha256", 64, scan != Some("skipped_not_stored"));
    c.string("pipeline", true);
    let verdict = c.one_of("verdict", &VERDICTS, scanned);
    c.stored_path(store, scanned);
    c.boolean("deleted");
    // Why a file was not scanned (optional).
    c.string("detail", false);
    let Some(results) = l.get("results").and_then(Value::as_array) else {
        c.bad("results", "must be an array");
        return c.problems;
    };
    if scanned && results.is_empty() {
        c.bad("results", "must not be empty for a scanned file");
    }
    let mut worst: Option<&str> = None;
    for (i, res) in results.iter().enumerate() {
        let mut rc = Check::new(res);
        rc.only(&["scanner", "kind", "verdict", "signatures", "detail", "duration"]);
        rc.string("scanner", true);
        rc.one_of("kind", &SCANNER_KINDS, true);
        if let Some(v) = rc.one_of("verdict", &VERDICTS, true) {
            if worst.is_none_or(|w| rank(v) > rank(w)) {
                worst = Some(v);
            }
        }
        rc.strings("signatures", false, true);
        rc.string("detail", false);
        if !res.get("duration").and_then(Value::as_f64).is_some_and(|d| d >= 0.0) {
            rc.bad("duration", "must be a number of seconds >= 0");
        }
        c.problems
            .extend(rc.problems.into_iter().map(|p| format!("results[{i}]: {p}")));
    }
    if scanned && worst.is_some() && verdict != worst {
        c.bad(
            "verdict",
            &format!("must be the worst of the results' verdicts ({worst:?})"),
        );
    }
    c.problems
}

/// One alerts-log line.
fn check_alert_line(a: &Value, store: &Path) -> Vec<String> {
    let mut c = Check::new(a);
    c.only(&[
        "ts",
        "fuid",
        "uid",
        "sha256",
        "md5",
        "proto",
        "orig_h",
        "orig_p",
        "resp_h",
        "resp_p",
        "filename",
        "mime_type",
        "size",
        "verdict",
        "signatures",
        "scanners",
        "stored_path",
    ]);
    for k in ["ts", "fuid", "uid", "proto", "orig_h", "resp_h"] {
        c.string(k, true);
    }
    c.hex("sha256", 64, true);
    c.hex("md5", 32, true);
    c.uint("orig_p", 65535);
    c.uint("resp_p", 65535);
    c.uint("size", u64::MAX);
    for k in ["filename", "mime_type"] {
        if !matches!(a.get(k), None | Some(Value::Null) | Some(Value::String(_))) {
            c.bad(k, "must be a string when present");
        }
    }
    c.one_of("verdict", &["malicious", "suspicious"], true);
    c.strings("signatures", true, false);
    c.strings("scanners", true, true);
    if a.get("scanners").and_then(Value::as_array).is_some_and(Vec::is_empty) {
        c.bad("scanners", "must name the scanners that flagged the file");
    }
    c.stored_path(store, false);
    c.problems
}

/// An alert agrees with its scans line: same verdict, the flagging scanners and their signatures.
fn alert_matches_scan(a: &Value, l: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    if a["verdict"] != l["verdict"] || a["sha256"] != l["sha256"] || a["uid"] != l["uid"] {
        problems.push(format!("verdict/sha256/uid differ from the scans line {l}"));
    }
    let results = l["results"].as_array().cloned().unwrap_or_default();
    let flagged: Vec<&Value> = results
        .iter()
        .filter(|r| r["verdict"] == "malicious" || r["verdict"] == "suspicious")
        .collect();
    let want: BTreeSet<&str> = flagged.iter().filter_map(|r| r["scanner"].as_str()).collect();
    let got: BTreeSet<&str> = a["scanners"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    if got != want {
        problems.push(format!("scanners {got:?} != those that flagged the file {want:?}"));
    }
    let want_sigs: BTreeSet<&str> = flagged
        .iter()
        .flat_map(|r| r["signatures"].as_array().into_iter().flatten())
        .filter_map(Value::as_str)
        .collect();
    let got_sigs: BTreeSet<&str> = a["signatures"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    if got_sigs != want_sigs {
        problems.push(format!(
            "signatures {got_sigs:?} != the flagging scanners' {want_sigs:?}"
        ));
    }
    problems
}

/// A stored file: there, its bytes hash to its name, mode 0600 in a 0700 directory.
fn assert_stored(path: &str, sha256: &str) {
    let p = Path::new(path);
    let data = std::fs::read(p).unwrap_or_else(|e| panic!("stored file {path}: {e}"));
    assert_eq!(
        support::sha256_hex(&data),
        sha256,
        "{path}: content differs from its name"
    );
    assert_eq!(mode(p), 0o600, "{path}: mode {:o}", mode(p));
    let dir = p.parent().unwrap();
    assert_eq!(mode(dir), 0o700, "{}: mode {:o}", dir.display(), mode(dir));
}

// ---------------------------------------------------------------------------------------------
// The corpus PDF flagged by YARA and by clamd

/// The corpus PDF was queued, scanned by `scanner` (of `kind`) as malicious with a signature
/// starting with `sig`, alerted, and kept (flagged) in the store.
fn assert_pdf_flagged(run: &ScanRun, scanner: &str, kind: &str, sig: &str) {
    run.assert_ok();
    run.check_schemas();
    let rec = run.record(PDF_SHA256);
    assert_eq!(rec["scan"], "queued", "{}", run.describe());
    let stored = rec["stored_path"]
        .as_str()
        .unwrap_or_else(|| panic!("no stored_path\n{}", run.describe()));
    let line = run.scan_of(&rec["fuid"]);
    assert_eq!(line["scan"], "scanned", "{line}");
    assert_eq!(line["pipeline"], "pdf", "{line}");
    assert_eq!(line["verdict"], "malicious", "{line}\n{}", run.describe());
    assert_eq!(line["deleted"], false, "{line}");
    assert_eq!(line["stored_path"], stored, "{line}");
    let results = line["results"].as_array().unwrap();
    assert_eq!(results.len(), 1, "{line}");
    assert_eq!(
        (&results[0]["scanner"], &results[0]["kind"]),
        (&scanner.into(), &kind.into()),
        "{line}"
    );
    let sigs: Vec<&str> = results[0]["signatures"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    assert!(sigs.iter().any(|s| s.starts_with(sig)), "no signature {sig}: {line}");

    let alerts = run.alerts_of(&rec["fuid"]);
    assert_eq!(alerts.len(), 1, "{}", run.describe());
    let a = alerts[0];
    assert_eq!(a["verdict"], "malicious");
    assert_eq!(a["md5"], PDF_MD5);
    assert_eq!(a["size"], PDF_SIZE);
    assert_eq!(a["filename"], PDF_NAME);
    assert_eq!(a["mime_type"], "application/pdf");
    assert_eq!(a["proto"], "http");
    assert_eq!(a["scanners"], serde_json::json!([scanner]));
    assert!(
        a["signatures"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s.as_str().is_some_and(|s| s.starts_with(sig))),
        "{a}"
    );
    assert_eq!(a["stored_path"], stored, "{a}");
    assert_stored(stored, PDF_SHA256);
}

/// The corpus case still carries the file the rules and signature were written for.
fn check_pdf_case() {
    let text = std::fs::read_to_string(support::corpus_dir().join(PDF_CASE).join("expected.json"))
        .unwrap_or_else(|e| panic!("corpus {PDF_CASE}: {e}"));
    let v: Value = serde_json::from_str(&text).unwrap();
    let f = v["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["sha256"] == PDF_SHA256);
    let f = f.unwrap_or_else(|| panic!("{PDF_CASE} no longer lists the PDF {PDF_SHA256}"));
    assert_eq!((f["md5"].as_str(), f["size"].as_u64()), (Some(PDF_MD5), Some(PDF_SIZE)));
}

fn pdf_pipeline(scanner_section: &str, scanner: &str) -> String {
    format!(
        "[store]\nkeep = \"flagged\"\n\n[scan]\nqueue = 8\ndrain_timeout = \"30s\"\n\n{scanner_section}\n\n\
         [[pipelines]]\nname = \"pdf\"\nmatch = \"application/pdf\"\nscanners = [\"{scanner}\"]\n"
    )
}

#[test]
fn yara_rules_flag_the_corpus_pdf() {
    check_pdf_case();
    let dir = TempDir::new("scan-yara");
    let cfg = pdf_pipeline(
        &format!(
            "[scanners.yara]\nkind = \"yara\"\nrules = {}\ntimeout = \"20s\"",
            script("rules.yar")
        ),
        "yara",
    );
    let run = run_scan(&dir, &corpus_capture(PDF_CASE), &cfg);
    if run.code != Some(0) && run.stderr.contains("needs a build with YARA") {
        skip("YARA is not compiled in: build with `cargo test --release --features yara`");
        return;
    }
    assert_pdf_flagged(&run, "yara", "yara", YARA_RULE);
    let sigs = &run.scan_of(&run.record(PDF_SHA256)["fuid"])["results"][0]["signatures"];
    assert_eq!(sigs, &serde_json::json!([YARA_RULE]), "only the matching rule is named");
}

#[test]
fn clamd_flags_the_corpus_pdf_over_instream() {
    check_pdf_case();
    if clamd_binary().is_none() {
        skip("clamd not found (Debian package clamav-daemon; tests/setup.sh installs it as root)");
        return;
    }
    let self_test = b"xdpcarve scanners test: a blob only the test's own signature matches\n".to_vec();
    let sigs = [
        HashSig {
            md5: PDF_MD5.into(),
            size: PDF_SIZE,
            name: CLAM_SIG.into(),
        },
        HashSig::of(&self_test, "Xdpcarve.Test.SelfCheck"),
    ];
    let clamd = Clamd::start(&sigs).unwrap_or_else(|e| panic!("{e}"));
    // clamd itself works with the test database before the sensor is asked anything.
    let answer = clamd.instream(&self_test).expect("INSTREAM");
    assert!(
        answer.starts_with("stream: Xdpcarve.Test.SelfCheck") && answer.ends_with("FOUND"),
        "{answer}\n{}",
        clamd.output()
    );
    assert_eq!(
        clamd.instream(b"nothing to see here\n").expect("INSTREAM"),
        "stream: OK"
    );

    let dir = TempDir::new("scan-clamd");
    let cfg = pdf_pipeline(
        &format!(
            "[scanners.clam]\nkind = \"clamd\"\nsocket = {}\ntimeout = \"20s\"",
            toml_str(&clamd.socket)
        ),
        "clam",
    );
    let run = run_scan(&dir, &corpus_capture(PDF_CASE), &cfg);
    assert_pdf_flagged(&run, "clam", "clamd", CLAM_SIG);
    drop(clamd);
}

#[test]
fn store_match_keeps_a_file_no_pipeline_takes() {
    let dir = TempDir::new("scan-storematch");
    let cfg = "[store]\nmatch = \"application/pdf\"\nkeep = \"flagged\"\n";
    let run = run_scan(&dir, &corpus_capture(PDF_CASE), cfg);
    run.assert_ok();
    run.check_schemas();
    let rec = run.record(PDF_SHA256);
    let stored = rec["stored_path"]
        .as_str()
        .unwrap_or_else(|| panic!("not stored\n{}", run.describe()));
    assert!(rec.get("scan").is_none(), "no pipeline took it: {rec}");
    assert!(run.scans.is_empty() && run.alerts.is_empty(), "{}", run.describe());
    // No chain ran on it, so keep = "flagged" keeps it.
    assert_stored(stored, PDF_SHA256);
    // Only what store.match names is stored.
    for r in run.files.iter().filter(|r| r["sha256"] != PDF_SHA256) {
        assert!(r.get("stored_path").is_none() && r.get("scan").is_none(), "{r}");
    }
}

// ---------------------------------------------------------------------------------------------
// Command scanners: timeout, crash, printed verdicts, exit statuses, stop_on

#[test]
fn command_scanners_time_out_crash_and_print_verdicts() {
    let dir = TempDir::new("scan-command");
    let text = text_with("command scanner verdicts");
    let pdf = pdf_with("command scanner stop_on");
    let pcap = dir.path("cmd.pcap");
    write_downloads(
        &pcap,
        &[
            (b"/notes.txt".to_vec(), http_response("text/plain", &[], &text)),
            (b"/doc.pdf".to_vec(), http_response("application/pdf", &[], &pdf)),
        ],
    );
    let trace = dir.path("trace-never-written");
    let printing = |name: &str, out: &str| {
        format!(
            "[scanners.{name}]\nkind = \"command\"\nargv = [{}, '{out}', \"{{path}}\"]\ntimeout = \"10s\"\n",
            script("print.sh")
        )
    };
    let status = |name: &str, code: u8| {
        format!(
            "[scanners.{name}]\nkind = \"command\"\nargv = [{}, \"{code}\", \"{{path}}\"]\ntimeout = \"10s\"\n",
            script("status.sh")
        )
    };
    let mut cfg = String::from("[store]\nkeep = \"flagged\"\n\n[scan]\nqueue = 8\ndrain_timeout = \"60s\"\n\n");
    cfg.push_str(&format!(
        "[scanners.slow]\nkind = \"command\"\nargv = [{}, \"30\", \"{{path}}\"]\ntimeout = \"1s\"\n",
        script("sleep.sh")
    ));
    cfg.push_str(&format!(
        "[scanners.crash]\nkind = \"command\"\nargv = [{}, \"{{path}}\"]\ntimeout = \"10s\"\n",
        script("crash.sh")
    ));
    cfg.push_str(&printing(
        "json",
        r#"{"verdict": "suspicious", "signatures": ["Xdpcarve.Test.Json"], "detail": "printed by print.sh"}"#,
    ));
    cfg.push_str(&printing("unknown_key", r#"{"verdict": "malicious", "score": 100}"#));
    cfg.push_str(&printing("bad_verdict", r#"{"verdict": "evil"}"#));
    cfg.push_str(&printing("not_allowed", r#"{"verdict": "timeout"}"#));
    cfg.push_str(&printing(
        "no_verdict",
        r#"{"signatures": ["Xdpcarve.Test.NoVerdict"]}"#,
    ));
    cfg.push_str(&printing("broken_json", r#"{"verdict": "malicious""#));
    cfg.push_str(&printing("words", "no threats found"));
    cfg.push_str(&status("exit0", 0));
    cfg.push_str(&status("exit1", 1));
    cfg.push_str(&status("exit3", 3));
    cfg.push_str(&format!(
        "[scanners.trace]\nkind = \"command\"\nargv = [{}, {}, \"{{path}}\"]\n\n",
        script("touch.sh"),
        toml_str(&trace)
    ));
    let text_chain = [
        ("slow", "timeout"),
        ("crash", "error"),
        ("json", "suspicious"),
        ("unknown_key", "error"),
        ("bad_verdict", "error"),
        ("not_allowed", "error"),
        ("no_verdict", "error"),
        ("broken_json", "error"),
        ("words", "clean"),
        ("exit0", "clean"),
        ("exit3", "error"),
    ];
    let names: Vec<String> = text_chain.iter().map(|(n, _)| format!("\"{n}\"")).collect();
    cfg.push_str(&format!(
        "[[pipelines]]\nname = \"text\"\nmatch = \"text/plain\"\nscanners = [{}]\n\n\
         [[pipelines]]\nname = \"pdf\"\nmatch = \"application/pdf\"\nscanners = [\"exit1\", \"trace\"]\n\
         stop_on = \"malicious\"\n",
        names.join(", ")
    ));
    let run = run_scan(&dir, &pcap, &cfg);
    run.assert_ok();
    run.check_schemas();

    // The text file went through every scanner of its chain, in order.
    let rec = run.record(&support::sha256_hex(&text));
    let line = run.scan_of(&rec["fuid"]);
    assert_eq!(
        (&line["scan"], &line["pipeline"]),
        (&"scanned".into(), &"text".into()),
        "{line}"
    );
    let results = line["results"].as_array().unwrap();
    let got: Vec<(&str, &str)> = results
        .iter()
        .map(|r| {
            (
                r["scanner"].as_str().unwrap_or("?"),
                r["verdict"].as_str().unwrap_or("?"),
            )
        })
        .collect();
    assert_eq!(got, text_chain, "{line}");
    assert!(results.iter().all(|r| r["kind"] == "command"), "{line}");
    let json = &results[2];
    assert_eq!(json["signatures"], serde_json::json!(["Xdpcarve.Test.Json"]), "{json}");
    assert_eq!(json["detail"], "printed by print.sh", "{json}");
    // The sleeper was stopped at its timeout, not waited for (it sleeps 30 s).
    let slept = results[0]["duration"].as_f64().unwrap();
    assert!(slept < 25.0, "the timed-out scanner ran {slept} s: {line}");
    // Worst of them: suspicious (an alert), and a flagged file stays.
    assert_eq!(line["verdict"], "suspicious", "{line}");
    assert_eq!(line["deleted"], false, "{line}");
    let alerts = run.alerts_of(&rec["fuid"]);
    assert_eq!(alerts.len(), 1, "{}", run.describe());
    assert_eq!(alerts[0]["scanners"], serde_json::json!(["json"]), "{}", alerts[0]);
    assert_eq!(
        alerts[0]["signatures"],
        serde_json::json!(["Xdpcarve.Test.Json"]),
        "{}",
        alerts[0]
    );
    assert_stored(line["stored_path"].as_str().unwrap(), rec["sha256"].as_str().unwrap());

    // The PDF: exit status 1 is malicious, and stop_on ends the chain there.
    let rec = run.record(&support::sha256_hex(&pdf));
    let line = run.scan_of(&rec["fuid"]);
    assert_eq!(
        (&line["pipeline"], &line["verdict"]),
        (&"pdf".into(), &"malicious".into()),
        "{line}"
    );
    let results = line["results"].as_array().unwrap();
    assert_eq!(results.len(), 1, "stop_on = \"malicious\" stops the chain: {line}");
    assert_eq!(
        (&results[0]["scanner"], &results[0]["verdict"]),
        (&"exit1".into(), &"malicious".into())
    );
    assert!(!trace.exists(), "the scanner after the stop ran");
    let alerts = run.alerts_of(&rec["fuid"]);
    assert_eq!(alerts.len(), 1, "{}", run.describe());
    assert_eq!(alerts[0]["scanners"], serde_json::json!(["exit1"]), "{}", alerts[0]);
}

// ---------------------------------------------------------------------------------------------
// Verdicts everywhere: scans log, alerts log, webhook, action; the store keeps flagged files only

#[test]
fn verdicts_reach_the_logs_the_webhook_and_the_action_and_clean_files_are_deleted() {
    let dir = TempDir::new("scan-verdicts");
    let rx = Receiver::start(0, &dir.path("rx.jsonl"));
    let bad = pdf_with("XDPCARVE-TEST-MARKER in a document");
    let good = text_with("nothing bad in here");
    let other = b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;".to_vec();
    let pcap = dir.path("verdicts.pcap");
    write_downloads(
        &pcap,
        &[
            (
                b"/report.pdf".to_vec(),
                http_response(
                    "application/pdf",
                    &[b"Content-Disposition: attachment; filename=\"report.pdf\""],
                    &bad,
                ),
            ),
            (b"/notes.txt".to_vec(), http_response("text/plain", &[], &good)),
            (b"/pixel.gif".to_vec(), http_response("image/gif", &[], &other)),
        ],
    );
    let action_out = dir.path("action.out");
    let cfg = format!(
        "[sensor]\nname = \"scan-e2e\"\nstate_dir = {state}\n\n\
         [policy]\nmime_types = [\"application/pdf\", \"text/plain\"]\n\n\
         [webhook]\nurl = \"http://127.0.0.1:{port}/api/submit\"\ninclude_verdicts = true\nbatch_max_items = 10\n\
         batch_max_delay = \"50ms\"\nretry_initial_delay = \"50ms\"\nretry_max_delay = \"200ms\"\n\n\
         [store]\nkeep = \"flagged\"\n\n[scan]\nqueue = 8\ndrain_timeout = \"30s\"\n\n\
         [scanners.marker]\nkind = \"command\"\nargv = [{marker}, \"{{path}}\"]\ntimeout = \"10s\"\n\n\
         [[pipelines]]\nname = \"docs\"\nmatch = \"application/pdf|text/plain\"\nscanners = [\"marker\"]\n\n\
         [actions]\non_malicious = [{action}, {out}]\ntimeout = \"10s\"\n",
        state = toml_str(dir.path("state")),
        port = rx.port,
        marker = script("marker.sh"),
        action = script("action.sh"),
        out = toml_str(&action_out),
    );
    let run = run_scan(&dir, &pcap, &cfg);
    run.assert_ok();
    run.check_schemas();
    let (bad_sha, good_sha) = (support::sha256_hex(&bad), support::sha256_hex(&good));

    // Files log: both documents queued with their store paths; the GIF neither stored nor queued.
    let bad_rec = run.record(&bad_sha);
    let good_rec = run.record(&good_sha);
    for r in [bad_rec, good_rec] {
        assert_eq!(r["scan"], "queued", "{r}");
        assert!(r["stored_path"].is_string(), "{r}");
    }
    let gif = run.record(&support::sha256_hex(&other));
    assert!(gif.get("scan").is_none() && gif.get("stored_path").is_none(), "{gif}");

    // Scans log.
    let bad_line = run.scan_of(&bad_rec["fuid"]);
    assert_eq!(
        (&bad_line["verdict"], &bad_line["deleted"]),
        (&"malicious".into(), &false.into()),
        "{bad_line}"
    );
    assert_eq!(bad_line["pipeline"], "docs");
    assert_eq!(
        bad_line["results"][0]["signatures"],
        serde_json::json!(["Xdpcarve.Test.Marker"]),
        "{bad_line}"
    );
    assert_eq!(bad_line["results"][0]["detail"], "marker found", "{bad_line}");
    let good_line = run.scan_of(&good_rec["fuid"]);
    assert_eq!(
        (&good_line["verdict"], &good_line["deleted"]),
        (&"clean".into(), &true.into()),
        "{good_line}"
    );
    assert_eq!(run.scans.len(), 2, "{}", run.describe());

    // Store: the flagged file stays (0600), the clean one is gone, nothing else is left.
    let bad_path = bad_rec["stored_path"].as_str().unwrap();
    assert_stored(bad_path, &bad_sha);
    let good_path = good_rec["stored_path"].as_str().unwrap();
    assert!(
        !Path::new(good_path).exists(),
        "the clean file {good_path} was not deleted"
    );
    let left: Vec<String> = store_files(&run.store);
    assert_eq!(
        left,
        vec![format!("{}/{bad_sha}", &bad_sha[..2])],
        "files left in the store"
    );

    // Alerts log: the malicious file only, with its flow.
    assert_eq!(run.alerts.len(), 1, "{}", run.describe());
    let a = &run.alerts[0];
    assert_eq!(
        (&a["fuid"], &a["verdict"]),
        (&bad_rec["fuid"], &"malicious".into()),
        "{a}"
    );
    assert_eq!(a["scanners"], serde_json::json!(["marker"]), "{a}");
    assert_eq!(a["signatures"], serde_json::json!(["Xdpcarve.Test.Marker"]), "{a}");
    assert_eq!(
        (&a["filename"], &a["resp_p"]),
        (&"report.pdf".into(), &80.into()),
        "{a}"
    );

    // Webhook: each document once, after its chain, with its verdicts.
    let items = rx.items();
    let mut by_sha: BTreeMap<String, Vec<&Value>> = BTreeMap::new();
    for i in &items {
        by_sha
            .entry(i["sha256"].as_str().unwrap_or("?").to_string())
            .or_default()
            .push(i);
    }
    assert_eq!(
        by_sha.keys().cloned().collect::<BTreeSet<_>>(),
        BTreeSet::from([bad_sha.clone(), good_sha.clone()]),
        "webhook items: {items:?}\n{}",
        run.describe()
    );
    for (sha, verdict, sigs) in [
        (&bad_sha, "malicious", serde_json::json!(["Xdpcarve.Test.Marker"])),
        (&good_sha, "clean", serde_json::json!([])),
    ] {
        let got = &by_sha[sha];
        assert_eq!(got.len(), 1, "{sha} sent {} times: {items:?}", got.len());
        let item = got[0];
        assert_eq!(
            (&item["scan"], &item["verdict"]),
            (&"scanned".into(), &verdict.into()),
            "{item}"
        );
        let verdicts = item["verdicts"]
            .as_array()
            .unwrap_or_else(|| panic!("no verdicts: {item}"));
        assert_eq!(verdicts.len(), 1, "{item}");
        let v = &verdicts[0];
        assert_eq!(
            (&v["scanner"], &v["verdict"]),
            (&"marker".into(), &verdict.into()),
            "{item}"
        );
        assert_eq!(
            v.get("signatures").cloned().unwrap_or(serde_json::json!([])),
            sigs,
            "{item}"
        );
        if let Some(o) = v.as_object() {
            assert!(
                o.keys()
                    .all(|k| ["scanner", "verdict", "signatures"].contains(&k.as_str())),
                "{item}"
            );
        }
    }

    // Action: run once, for the malicious file, with its record and verdicts on stdin.
    let text = std::fs::read_to_string(&action_out).unwrap_or_else(|e| panic!("the action did not run: {e}"));
    let got: Vec<Value> = serde_json::Deserializer::from_str(&text)
        .into_iter::<Value>()
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| panic!("the action's stdin is not JSON ({e}): {text:?}"));
    assert_eq!(got.len(), 1, "action runs: {text}");
    let r = &got[0];
    for k in [
        "fuid",
        "uid",
        "sha256",
        "md5",
        "size",
        "filename",
        "mime_type",
        "orig_h",
        "resp_h",
    ] {
        assert_eq!(r[k], bad_rec[k], "action stdin `{k}`: {r}");
    }
    assert_eq!(r["verdict"], "malicious", "{r}");
    assert_eq!(r["verdicts"][0]["scanner"], "marker", "{r}");
    assert_eq!(
        r["verdicts"][0]["signatures"],
        serde_json::json!(["Xdpcarve.Test.Marker"]),
        "{r}"
    );
}

/// The store's files, as `xx/<sha256>` (`.tmp/...` and anything else show as they are).
fn store_files(store: &Path) -> Vec<String> {
    let mut out: Vec<String> = listing(store)
        .into_iter()
        .filter(|(_, is_dir)| !is_dir)
        .map(|(p, _)| p)
        .collect();
    out.sort();
    out
}

/// Every path under `root` (relative, `/`-separated), with whether it is a directory.
fn listing(root: &Path) -> BTreeSet<(String, bool)> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeSet<(String, bool)>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            let is_dir = e.file_type().is_ok_and(|t| t.is_dir());
            let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            out.insert((rel, is_dir));
            if is_dir {
                walk(root, &p, out);
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(root, root, &mut out);
    out
}

// ---------------------------------------------------------------------------------------------
// Hostile names never choose where anything is written

#[test]
fn hostile_filenames_never_choose_where_files_are_written() {
    let dir = TempDir::new("scan-hostile");
    // The sensor runs deep in the temp dir (its store is <dir>/store), so a name that climbs out
    // of its working dir or of a store folder a few levels still lands inside the tree this test
    // lists; one that climbs all the way up is looked for at the root.
    let cwd = dir.path("a/b/c/cwd");
    std::fs::create_dir_all(&cwd).unwrap();
    let absolute = dir.path("absolute-target");
    let escaped = format!("xdpcarve-scanners-escaped-{}", std::process::id());
    let long = format!("attachment; filename=\"{}.txt\"", "A".repeat(10_000));
    let names: Vec<(&str, Vec<u8>)> = vec![
        (
            "dot-dot",
            b"Content-Disposition: attachment; filename=\"../../etc/passwd\"".to_vec(),
        ),
        (
            "deep dot-dot",
            format!(
                "Content-Disposition: attachment; filename=\"{}{escaped}\"",
                "../".repeat(12)
            )
            .into_bytes(),
        ),
        (
            "absolute",
            format!("Content-Disposition: attachment; filename=\"{}\"", absolute.display()).into_bytes(),
        ),
        (
            "backslashes",
            b"Content-Disposition: attachment; filename=\"..\\..\\..\\windows\\evil.dll\"".to_vec(),
        ),
        (
            "RFC 2231 with %00 and %2F",
            b"Content-Disposition: attachment; filename*=UTF-8''..%2F..%2Fnul%00byte.txt".to_vec(),
        ),
        (
            "raw NUL",
            b"Content-Disposition: attachment; filename=\"nul\0byte.txt\"".to_vec(),
        ),
        (
            "store-like",
            b"Content-Disposition: attachment; filename=\"../store/.tmp/00/0000\"".to_vec(),
        ),
        ("10 kB", format!("Content-Disposition: {long}").into_bytes()),
    ];
    let mut downloads = Vec::new();
    let mut bodies = Vec::new();
    for (i, (what, header)) in names.iter().enumerate() {
        let body = text_with(&format!("hostile name #{i}: {what}"));
        downloads.push((
            b"/../../etc/shadow".to_vec(),
            http_response("text/plain", &[&header[..]], &body),
        ));
        bodies.push((*what, support::sha256_hex(&body)));
    }
    // One more with the name in the URI only.
    let body = text_with("hostile URI");
    downloads.push((
        b"/..%2F..%2Fetc%2Fshadow%00.txt".to_vec(),
        http_response("text/plain", &[], &body),
    ));
    bodies.push(("URI", support::sha256_hex(&body)));
    let pcap = dir.path("hostile.pcap");
    write_downloads(&pcap, &downloads);
    let cfg = format!(
        "[store]\nmatch = \".*\"\nkeep = \"all\"\n\n[scan]\nqueue = 32\ndrain_timeout = \"30s\"\n\n\
         [scanners.check]\nkind = \"command\"\nargv = [{}, \"0\", \"{{path}}\"]\ntimeout = \"10s\"\n\n\
         [[pipelines]]\nmatch = \"text/plain\"\nscanners = [\"check\"]\n",
        script("status.sh")
    );
    // The config is written before the listing, so the run adds only what the sensor writes.
    std::fs::write(dir.path("xdpcarve.toml"), &cfg).unwrap();
    let passwd = std::fs::read("/etc/passwd").ok();
    let before = listing(&dir.0);
    let run = run_scan_in(&dir, &pcap, &cfg, Some(&cwd));
    run.assert_ok();
    run.check_schemas();

    // Which were carved: at least the plain climbs and the absolute path (the parser may refuse
    // some headers, e.g. with a NUL, or the 10 kB one; those still must not write anything).
    let carved: Vec<&str> = bodies
        .iter()
        .filter(|(_, sha)| run.files.iter().any(|r| &r["sha256"] == sha))
        .map(|(w, _)| *w)
        .collect();
    for must in ["dot-dot", "deep dot-dot", "absolute", "backslashes"] {
        assert!(
            carved.contains(&must),
            "the {must} file was not carved\n{}",
            run.describe()
        );
    }
    println!("carved the files with these names: {carved:?}");

    // Every record with a hash was stored under its hash, and scanned at that path (status.sh
    // says error when its file argument is not a file).
    let mut want_store = BTreeSet::new();
    for r in &run.files {
        let sha = r["sha256"].as_str().unwrap_or_else(|| panic!("no sha256: {r}"));
        let stored = r["stored_path"].as_str().unwrap_or_else(|| panic!("not stored: {r}"));
        assert_eq!(Path::new(stored), run.store.join(&sha[..2]).join(sha), "{r}");
        assert_stored(stored, sha);
        want_store.insert(format!("{}/{sha}", &sha[..2]));
    }
    for l in &run.scans {
        assert_eq!(l["verdict"], "clean", "the scanner did not get the stored file: {l}");
    }

    // Nothing else appeared anywhere in the tree: only the logs and the store's xx/<sha256>.
    let after = listing(&dir.0);
    let mut unexpected = Vec::new();
    for (p, is_dir) in after.difference(&before) {
        let expected = match p.as_str() {
            "files.jsonl" | "scans.jsonl" | "alerts.jsonl" | "stderr.txt" | "store" | "store/.tmp" => true,
            _ => match p.strip_prefix("store/") {
                Some(rest) if *is_dir => rest.len() == 2 && rest.bytes().all(|b| b.is_ascii_hexdigit()),
                Some(rest) => want_store.contains(rest),
                None => false,
            },
        };
        if !expected {
            unexpected.push(p.clone());
        }
    }
    assert!(
        unexpected.is_empty(),
        "written outside the store's xx/<sha256>: {unexpected:?}\n{}",
        run.describe()
    );
    let missing: Vec<_> = before.difference(&after).collect();
    assert!(missing.is_empty(), "removed: {missing:?}");
    assert!(!absolute.exists());
    assert!(!Path::new("/").join(&escaped).exists(), "/{escaped} was written");
    assert_eq!(std::fs::read("/etc/passwd").ok(), passwd, "/etc/passwd changed");
    assert_eq!(store_files(&run.store), want_store.into_iter().collect::<Vec<_>>());
    // The store's own directories are private.
    for (p, is_dir) in listing(&run.store) {
        if is_dir {
            assert_eq!(mode(&run.store.join(&p)), 0o700, "{p}");
        }
    }
    assert_eq!(mode(&run.store), 0o700, "the store dir");
    if run.store.join(".tmp").exists() {
        assert!(listing(&run.store.join(".tmp")).is_empty(), "temp files left in .tmp");
    }
}

// ---------------------------------------------------------------------------------------------
// A full queue skips files, loses no record

#[test]
fn a_full_queue_skips_files_but_loses_no_record() {
    const N: usize = 20;
    let dir = TempDir::new("scan-queue");
    let mut downloads = Vec::new();
    let mut shas = BTreeSet::new();
    for i in 0..N {
        let body = text_with(&format!("queued file #{i}"));
        shas.insert(support::sha256_hex(&body));
        downloads.push((
            format!("/file{i}.txt").into_bytes(),
            http_response("text/plain", &[], &body),
        ));
    }
    let pcap = dir.path("queue.pcap");
    write_downloads(&pcap, &downloads);
    let cfg = format!(
        "[store]\nkeep = \"all\"\n\n[scan]\nqueue = 4\ndrain_timeout = \"0s\"\n\n\
         [scanners.slow]\nkind = \"command\"\nargv = [{}, \"1\", \"{{path}}\"]\ntimeout = \"5s\"\nconcurrency = 1\n\n\
         [[pipelines]]\nname = \"slow\"\nmatch = \"text/plain\"\nscanners = [\"slow\"]\n",
        script("sleep.sh")
    );
    let run = run_scan(&dir, &pcap, &cfg);
    run.assert_ok();
    run.check_schemas();
    let ours: Vec<&Value> = run
        .files
        .iter()
        .filter(|r| r["sha256"].as_str().is_some_and(|s| shas.contains(s)))
        .collect();
    assert_eq!(ours.len(), N, "every file has its record\n{}", run.describe());
    let count = |s: &str| ours.iter().filter(|r| r["scan"] == s).count();
    let (queued, full) = (count("queued"), count("skipped_queue_full"));
    assert_eq!(
        queued + full,
        N,
        "each record is queued or skipped_queue_full\n{}",
        run.describe()
    );
    assert!(
        full >= 1,
        "a queue of 4 before a 1 s scanner took all {N} files\n{}",
        run.describe()
    );
    // Each queued file has its scans line (scanned, or skipped_drain_timeout at the end); the
    // skipped ones have none.
    assert_eq!(full + run.scans.len(), N, "{}", run.describe());
    let queued_fuids: BTreeSet<String> = ours
        .iter()
        .filter(|r| r["scan"] == "queued")
        .map(|r| r["fuid"].to_string())
        .collect();
    let scanned_fuids: BTreeSet<String> = run.scans.iter().map(|l| l["fuid"].to_string()).collect();
    assert_eq!(queued_fuids, scanned_fuids, "{}", run.describe());
    for l in &run.scans {
        assert!(l["scan"] == "scanned" || l["scan"] == "skipped_drain_timeout", "{l}");
    }
}
