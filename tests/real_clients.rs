//! End-to-end test target `real_clients`: real clients talking to real servers across a veth pair
//! between two network namespaces, captured with tcpdump, then carved with `xdpcarve --read`.
//! Every file a client sent or received must come out with the sha256 and size of the original
//! (and its name, where the protocol carried one).
//!
//! Needs root, iproute2, tcpdump, python3, curl and swaks (tests/setup.sh installs them). Without
//! them the tests print SKIPPED; with `CI` set they fail instead.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use support::content::{pe_like, pseudo_random};
use support::netns::{client, require_root_or_skip, run_with_timeout, Lab, TempDir};
use support::{sha256_hex, support_script};

const CARVE_TIMEOUT: Duration = Duration::from_secs(120);

/// A small but well-formed-looking PDF with a binary stream.
fn pdf_like(seed: u64, stream_len: usize) -> Vec<u8> {
    let mut v = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n".to_vec();
    v.extend_from_slice(format!("3 0 obj\n<< /Length {stream_len} >>\nstream\n").as_bytes());
    v.extend_from_slice(&pseudo_random(seed, stream_len));
    v.extend_from_slice(b"\nendstream\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n");
    v
}

fn text_like(lines: usize) -> Vec<u8> {
    let mut s = String::new();
    for i in 0..lines {
        s.push_str(&format!(
            "line {i}: the quick brown fox jumps over the lazy dog; äöü ß = ∑ {}\r\n",
            i * 7919
        ));
    }
    s.into_bytes()
}

fn html_like(rows: usize) -> Vec<u8> {
    let mut s = String::from("<!doctype html>\n<html><head><title>report</title></head><body><table>\n");
    for i in 0..rows {
        s.push_str(&format!(
            "<tr><td>{i}</td><td>row number {i}</td><td>{}</td></tr>\n",
            i * i
        ));
    }
    s.push_str("</table></body></html>\n");
    s.into_bytes()
}

/// A file we expect in the files log.
struct Expected {
    what: &'static str,
    sha256: String,
    size: u64,
    /// Checked when Some: the name the protocol carried.
    filename: Option<String>,
    direction: &'static str,
    proto: &'static str,
}

impl Expected {
    fn new(
        what: &'static str,
        data: &[u8],
        filename: Option<&str>,
        direction: &'static str,
        proto: &'static str,
    ) -> Self {
        Expected {
            what,
            sha256: sha256_hex(data),
            size: data.len() as u64,
            filename: filename.map(str::to_string),
            direction,
            proto,
        }
    }
}

fn write(dir: &Path, name: &str, data: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, data).unwrap_or_else(|e| panic!("write {}: {e}", p.display()));
    p
}

/// Runs the binary under test over a capture and returns the files-log records.
fn carve(pcap: &Path, out_dir: &Path) -> Vec<serde_json::Value> {
    let log = out_dir.join("files.jsonl");
    let out = run_with_timeout(
        Command::new(support::xdpcarve_bin())
            .arg("--read")
            .arg(pcap)
            .arg("--files-log")
            .arg(&log),
        CARVE_TIMEOUT,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        out.status.success(),
        "xdpcarve --read {} failed ({}):\n{}",
        pcap.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&log).unwrap_or_else(|e| panic!("read {}: {e}", log.display()));
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("files log line is not JSON ({e}): {l}")))
        .collect()
}

fn summary(records: &[serde_json::Value]) -> String {
    let mut s = String::new();
    for r in records {
        s.push_str(&format!(
            "  {} {} size={} sha256={} filename={} truncated={} missing={}\n",
            r["proto"], r["direction"], r["size"], r["sha256"], r["filename"], r["truncated"], r["missing_bytes"]
        ));
    }
    s
}

fn assert_carved(records: &[serde_json::Value], expected: &[Expected]) {
    let mut failures = Vec::new();
    for e in expected {
        let hits: Vec<&serde_json::Value> = records
            .iter()
            .filter(|r| r["sha256"].as_str() == Some(e.sha256.as_str()))
            .collect();
        let Some(r) = hits.first() else {
            failures.push(format!(
                "{}: no record with sha256 {} (size {})",
                e.what, e.sha256, e.size
            ));
            continue;
        };
        if r["size"].as_u64() != Some(e.size) {
            failures.push(format!("{}: size {} != {}", e.what, r["size"], e.size));
        }
        if r["proto"].as_str() != Some(e.proto) {
            failures.push(format!("{}: proto {} != {}", e.what, r["proto"], e.proto));
        }
        if r["direction"].as_str() != Some(e.direction) {
            failures.push(format!("{}: direction {} != {}", e.what, r["direction"], e.direction));
        }
        if r["missing_bytes"].as_u64() != Some(0) {
            failures.push(format!("{}: missing_bytes {}", e.what, r["missing_bytes"]));
        }
        if let Some(name) = &e.filename {
            if !hits.iter().any(|r| r["filename"].as_str() == Some(name.as_str())) {
                failures.push(format!("{}: filename {} != {name:?}", e.what, r["filename"]));
            }
        }
    }
    // A record that names one of our files must carry that file's content.
    for e in expected {
        let Some(name) = &e.filename else { continue };
        for r in records.iter().filter(|r| r["filename"].as_str() == Some(name.as_str())) {
            if r["sha256"].as_str() != Some(e.sha256.as_str()) {
                failures.push(format!(
                    "{}: a record named {name:?} has sha256 {} (size {})",
                    e.what, r["sha256"], r["size"]
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "carving mismatches:\n  {}\nrecords:\n{}",
        failures.join("\n  "),
        summary(records)
    );
}

/// The count tcpdump printed on the line ending in `suffix` ("packets captured", ...).
fn tcpdump_count(stderr: &str, suffix: &str) -> Option<u64> {
    stderr
        .lines()
        .find(|l| l.trim_end().ends_with(suffix))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Stops tcpdump cleanly and checks that it wrote every packet it saw. tcpdump stops reading its
/// ring buffer at SIGINT, so first wait until the capture file has stopped growing (with -U each
/// packet is written as it is read).
fn stop_capture(lab: &mut Lab, idx: usize, pcap: &Path) {
    let size = || std::fs::metadata(pcap).map(|m| m.len()).unwrap_or(0);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let (mut last, mut stable_since) = (size(), std::time::Instant::now());
    while std::time::Instant::now() < deadline && stable_since.elapsed() < Duration::from_millis(700) {
        std::thread::sleep(Duration::from_millis(100));
        let now = size();
        if now != last {
            last = now;
            stable_since = std::time::Instant::now();
        }
    }
    let bg = lab.bg(idx);
    let status = bg.interrupt_and_wait(Duration::from_secs(15));
    assert!(status.is_some(), "tcpdump did not stop on SIGINT");
    let stderr = bg.stderr();
    let captured = tcpdump_count(&stderr, "packets captured");
    let received = tcpdump_count(&stderr, "packets received by filter");
    let dropped = tcpdump_count(&stderr, "packets dropped by kernel");
    assert!(
        captured.is_some() && captured == received && dropped == Some(0),
        "tcpdump did not write every packet it saw; the capture is incomplete:\n{stderr}"
    );
}

#[test]
fn http_downloads_and_uploads_with_curl() {
    if !require_root_or_skip(&["tcpdump", "curl", "python3"]) {
        return;
    }
    let tmp = TempDir::new("real-http");
    let www = tmp.join("www");
    std::fs::create_dir_all(&www).expect("mkdir www");

    let exe = pe_like(1, 48 * 1024 + 123);
    let pdf = pdf_like(2, 150 * 1024);
    let random = pseudo_random(3, 1 << 20);
    let html = html_like(6000);
    let text = text_like(300);
    let upload_bin = pseudo_random(4, 1_300_000); // > 1 MB: curl sends Expect: 100-continue
    for (name, data) in [
        ("setup.exe", &exe),
        ("report.pdf", &pdf),
        ("random.bin", &random),
        ("page.html", &html),
        ("readme.txt", &text),
    ] {
        write(&www, name, data);
    }
    let client_files = tmp.join("client");
    std::fs::create_dir_all(&client_files).expect("mkdir client");
    let upload_path = write(&client_files, "archive.bin", &upload_bin);
    let upload_pdf = write(&client_files, "scan.pdf", &pdf_like(5, 20_000));
    let put_path = write(&client_files, "notes.txt", &text_like(40));

    let mut lab = Lab::new();
    let client_ns = lab.add_ns();
    let server_ns = lab.add_ns();
    let link = lab.link(Some(&client_ns), Some(&server_ns), true);
    let server_ip = link.b.addr.clone().expect("server address");
    let pcap = tmp.join("http.pcap");
    let cap = lab.tcpdump(Some(&server_ns), &link.b.ifname, &pcap);
    let srv = lab.spawn(
        "http_server",
        Some(&server_ns),
        &[
            "python3",
            &support_script("http_server.py"),
            &server_ip,
            "80",
            www.to_str().unwrap(),
        ],
    );
    lab.bg(srv).wait_for_line("READY", false, Duration::from_secs(15));

    let base = format!("http://{server_ip}");
    let out = |n: &str| client_files.join(n).to_str().unwrap().to_string();
    let curl = |args: &[&str]| {
        let mut argv = vec!["curl", "-sS", "--fail", "--max-time", "50", "--noproxy", "*"];
        argv.extend_from_slice(args);
        client(&lab, &client_ns, &argv);
    };
    // Two downloads on one keep-alive connection.
    let (o1, o2) = (out("got-setup.exe"), out("got-report.pdf"));
    curl(&[
        "-o",
        &o1,
        &format!("{base}/files/setup.exe"),
        "-o",
        &o2,
        &format!("{base}/named/report.pdf"),
    ]);
    // gzip Content-Encoding, decoded by curl --compressed.
    let o3 = out("got-page.html");
    curl(&["--compressed", "-o", &o3, &format!("{base}/gzip/page.html")]);
    // Chunked transfer encoding.
    let o4 = out("got-random.bin");
    curl(&["-o", &o4, &format!("{base}/chunked/random.bin")]);
    // Multipart uploads (a form field next to the file; an explicit part type).
    let up = format!("{base}/upload");
    curl(&[
        "-o",
        "/dev/null",
        "-F",
        "comment=hello there",
        "-F",
        &format!("file=@{}", upload_path.display()),
        &up,
    ]);
    curl(&[
        "-o",
        "/dev/null",
        "-F",
        &format!("doc=@{};type=application/pdf", upload_pdf.display()),
        &up,
    ]);
    // PUT.
    curl(&[
        "-o",
        "/dev/null",
        "-T",
        put_path.to_str().unwrap(),
        &format!("{base}/put/notes.txt"),
    ]);

    stop_capture(&mut lab, cap, &pcap);
    drop(lab);

    // The clients themselves got the right bytes (else the test, not the carver, is wrong).
    for (got, want) in [(&o1, &exe), (&o2, &pdf), (&o3, &html), (&o4, &random)] {
        assert_eq!(
            &std::fs::read(got).expect("client output"),
            want,
            "{got} differs from the served file"
        );
    }
    assert_eq!(
        std::fs::read(www.join("uploads/notes.txt")).expect("PUT stored"),
        text_like(40)
    );

    let records = carve(&pcap, &tmp.path);
    let expected = [
        Expected::new("GET setup.exe (Content-Length)", &exe, None, "download", "http"),
        Expected::new(
            "GET report.pdf (Content-Disposition)",
            &pdf,
            Some("report.pdf"),
            "download",
            "http",
        ),
        Expected::new("GET page.html (gzip)", &html, None, "download", "http"),
        Expected::new("GET random.bin (chunked)", &random, None, "download", "http"),
        Expected::new(
            "POST multipart archive.bin",
            &upload_bin,
            Some("archive.bin"),
            "upload",
            "http",
        ),
        Expected::new(
            "POST multipart scan.pdf",
            &pdf_like(5, 20_000),
            Some("scan.pdf"),
            "upload",
            "http",
        ),
        Expected::new("PUT notes.txt", &text_like(40), None, "upload", "http"),
    ];
    assert_carved(&records, &expected);
}

#[test]
fn smtp_attachments_with_swaks() {
    if !require_root_or_skip(&["tcpdump", "swaks", "python3"]) {
        return;
    }
    let tmp = TempDir::new("real-smtp");
    let files = tmp.join("files");
    std::fs::create_dir_all(&files).expect("mkdir");
    let tool = pe_like(11, 70_000);
    let doc = pdf_like(12, 200_000);
    let report = pdf_like(13, 30_000);
    let inner = pe_like(14, 9_000);
    let notes = text_like(50);
    let big = pseudo_random(15, 600_000);
    let tool_p = write(&files, "tool.exe", &tool);
    let doc_p = write(&files, "contract.pdf", &doc);
    let report_p = write(&files, "report-utf8.pdf", &report);
    let inner_p = write(&files, "inner.exe", &inner);
    let notes_p = write(&files, "notes.txt", &notes);
    let big_p = write(&files, "backup.bin", &big);
    let data = pseudo_random(16, 5_000);
    let data_p = write(&files, "data.bin", &data);
    let fwd_p = tmp.join("forward.eml");
    let mk = Command::new("python3")
        .arg(support_script("make_mail.py"))
        .arg(&fwd_p)
        .arg(&report_p)
        .arg("отчёт.pdf")
        .arg(&inner_p)
        .arg("invoice.exe")
        .arg(&notes_p)
        .output()
        .expect("run make_mail.py");
    assert!(
        mk.status.success(),
        "make_mail.py: {}",
        String::from_utf8_lossy(&mk.stderr)
    );

    let mut lab = Lab::new();
    let client_ns = lab.add_ns();
    let server_ns = lab.add_ns();
    let link = lab.link(Some(&client_ns), Some(&server_ns), true);
    let server_ip = link.b.addr.clone().expect("server address");
    let pcap = tmp.join("smtp.pcap");
    let cap = lab.tcpdump(Some(&server_ns), &link.b.ifname, &pcap);
    let spool = tmp.join("spool");
    for port in ["25", "587"] {
        let srv = lab.spawn(
            "smtp_sink",
            Some(&server_ns),
            &[
                "python3",
                &support_script("smtp_sink.py"),
                &server_ip,
                port,
                spool.to_str().unwrap(),
            ],
        );
        lab.bg(srv).wait_for_line("READY", false, Duration::from_secs(15));
    }

    let swaks = |port: &'static str| -> Vec<String> {
        [
            "swaks",
            "--server",
            &server_ip,
            "--port",
            port,
            "--helo",
            "client.test",
            "--from",
            "alice@client.test",
            "--to",
            "bob@sink.test",
            "--timeout",
            "30",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let run = |argv: Vec<String>| {
        let refs: Vec<&str> = argv.iter().map(String::as_str).collect();
        client(&lab, &client_ns, &refs);
    };
    let path = |p: &Path| format!("@{}", p.display());
    // 1: two attachments, swaks's own MIME (base64), port 25.
    let mut a = swaks("25");
    a.extend(
        [
            "--header",
            "Subject: tools",
            "--attach-type",
            "application/octet-stream",
            "--attach-name",
            "tool.exe",
            "--attach",
            &path(&tool_p),
            "--attach-type",
            "application/pdf",
            "--attach-name",
            "contract.pdf",
            "--attach",
            &path(&doc_p),
        ]
        .iter()
        .map(|s| s.to_string()),
    );
    run(a);
    // 2: PIPELINING on the submission port, and a raw UTF-8 attachment name as swaks writes it.
    let mut b = swaks("587");
    b.extend(
        [
            "--pipeline",
            "--header",
            "Subject: =?UTF-8?B?0L7RgtGH0ZHRgg==?=",
            "--attach-name",
            "backup.bin",
            "--attach",
            &path(&big_p),
            "--attach-name",
            "данные.bin",
            "--attach",
            &path(&data_p),
        ]
        .iter()
        .map(|s| s.to_string()),
    );
    run(b);
    // 3: a forwarded message (message/rfc822 with its own attachment), an RFC 2231-encoded
    // non-ASCII name and a quoted-printable text attachment, built by Python's email package.
    let mut c = swaks("25");
    c.extend(["--data".to_string(), path(&fwd_p)]);
    run(c);

    stop_capture(&mut lab, cap, &pcap);
    drop(lab);

    let stored = std::fs::read_dir(&spool).map(|d| d.count()).unwrap_or(0);
    assert_eq!(stored, 3, "the sink should have stored 3 messages");

    let records = carve(&pcap, &tmp.path);
    let mail = |what, data: &[u8], name| Expected::new(what, data, Some(name), "upload", "smtp");
    let expected = [
        mail("tool.exe (swaks, base64)", &tool, "tool.exe"),
        mail("contract.pdf (swaks, base64)", &doc, "contract.pdf"),
        mail("backup.bin (pipelined, port 587)", &big, "backup.bin"),
        mail("данные.bin (raw UTF-8 name)", &data, "данные.bin"),
        mail("отчёт.pdf (RFC 2231 name)", &report, "отчёт.pdf"),
        mail("notes.txt (quoted-printable)", &notes, "notes.txt"),
        mail("invoice.exe inside message/rfc822", &inner, "invoice.exe"),
    ];
    assert_carved(&records, &expected);
    // The forwarded message's attachment sits one level deeper than the outer attachments.
    let inner_rec = records
        .iter()
        .find(|r| r["sha256"].as_str() == Some(expected[6].sha256.as_str()))
        .unwrap();
    let outer_rec = records
        .iter()
        .find(|r| r["sha256"].as_str() == Some(expected[4].sha256.as_str()))
        .unwrap();
    assert!(
        inner_rec["depth"].as_u64() > outer_rec["depth"].as_u64(),
        "attachment of the forwarded message should be deeper: inner depth {} vs outer {}",
        inner_rec["depth"],
        outer_rec["depth"]
    );
}

/// Exim's config for a one-shot relay of one message to `server_ip`:25 with CHUNKING (BDAT).
fn exim_config(dir: &Path, server_ip: &str) -> PathBuf {
    let spool = dir.join("exim-spool");
    let log = dir.join("exim-log");
    for d in [&spool, &log] {
        std::fs::create_dir_all(d).expect("mkdir exim dirs");
    }
    // Exim drops to its own user for delivery; it must own its spool and log.
    let chown = Command::new("chown")
        .arg("-R")
        .arg("Debian-exim:Debian-exim")
        .arg(&spool)
        .arg(&log)
        .status();
    assert!(
        chown.map(|s| s.success()).unwrap_or(false),
        "chown of the exim spool failed"
    );
    let conf = format!(
        "primary_hostname = client.test\n\
         spool_directory = {spool}\n\
         log_file_path = {log}/%slog\n\
         exim_user = Debian-exim\n\
         exim_group = Debian-exim\n\
         begin routers\n\
         smarthost:\n  driver = manualroute\n  domains = *\n  route_list = * {server_ip}\n  transport = remote_smtp\n  self = send\n\
         begin transports\n\
         remote_smtp:\n  driver = smtp\n  port = 25\n  hosts_try_chunking = *\n\
         begin retry\n\
         * * F,1m,1m\n",
        spool = spool.display(),
        log = log.display()
    );
    write(dir, "exim.conf", conf.as_bytes())
}

#[test]
fn smtp_bdat_chunking_with_exim() {
    if !require_root_or_skip(&["tcpdump", "exim4", "python3"]) {
        return;
    }
    let tmp = TempDir::new("real-bdat");
    let backup = pe_like(21, 333_333);
    let backup_p = write(&tmp.path, "backup.exe", &backup);
    let eml = tmp.join("backup.eml");
    let mk = Command::new("python3")
        .arg(support_script("make_mail.py"))
        .arg("--simple")
        .arg(&eml)
        .arg(&backup_p)
        .arg("nightly-backup.exe")
        .output()
        .expect("run make_mail.py");
    assert!(
        mk.status.success(),
        "make_mail.py: {}",
        String::from_utf8_lossy(&mk.stderr)
    );

    let mut lab = Lab::new();
    let client_ns = lab.add_ns();
    let server_ns = lab.add_ns();
    let link = lab.link(Some(&client_ns), Some(&server_ns), true);
    let server_ip = link.b.addr.clone().expect("server address");
    let conf = exim_config(&tmp.path, &server_ip);
    let pcap = tmp.join("bdat.pcap");
    let cap = lab.tcpdump(Some(&server_ns), &link.b.ifname, &pcap);
    let spool = tmp.join("spool");
    let sink = lab.spawn(
        "smtp_sink",
        Some(&server_ns),
        &[
            "python3",
            &support_script("smtp_sink.py"),
            &server_ip,
            "25",
            spool.to_str().unwrap(),
        ],
    );
    lab.bg(sink).wait_for_line("READY", false, Duration::from_secs(15));
    // Exim delivers in the foreground (-odf) and uses BDAT because the sink announces CHUNKING.
    let exim = format!(
        "exim4 -C {} -odf -oi -f alice@client.test bob@sink.test < {}",
        conf.display(),
        eml.display()
    );
    client(&lab, &client_ns, &["sh", "-c", &exim]);
    lab.bg(sink)
        .wait_for_line("smtp: stored", true, Duration::from_secs(30));
    let sink_log = lab.bg(sink).stderr();
    assert!(
        sink_log.contains("< BDAT") && sink_log.contains("LAST"),
        "exim did not use BDAT:\n{sink_log}"
    );

    stop_capture(&mut lab, cap, &pcap);
    drop(lab);

    let records = carve(&pcap, &tmp.path);
    let expected = [Expected::new(
        "nightly-backup.exe (BDAT)",
        &backup,
        Some("nightly-backup.exe"),
        "upload",
        "smtp",
    )];
    assert_carved(&records, &expected);
}
