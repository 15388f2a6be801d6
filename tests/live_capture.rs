//! End-to-end test target `live_capture`: `xdpcarve -i` on a veth fed like a SPAN port.
//!
//! - Real clients (curl, swaks) talk to real servers across two namespaces; tc (u32 + mirred)
//!   mirrors both directions of the server's link into the sensor's veth, where xdpcarve runs live
//!   with its XDP program. The live records must equal those of `--read` on a tcpdump capture of
//!   the same link (ids, times and durations aside), and their hashes those of the served files.
//! - Traffic on a port outside the XDP port set never reaches userspace: the program's counters
//!   show it passed, none redirected.
//! - Every corpus capture replayed with tcpreplay into the sensor's veth gives the same records
//!   as `--read` of the capture, with every steered packet received (no kernel drops).
//! - On a veth with two receive queues the sensor runs one AF_XDP socket and worker per queue;
//!   two pinned tcpreplay processes (XPS: CPU N sends on tx queue N) feed both queues at once,
//!   with no drops and the same records as `--read` of the same captures.
//!
//! Needs root, iproute2 (ip, tc), tcpdump, tcpreplay, python3, curl and swaks (tests/setup.sh
//! installs them). Without them the tests print SKIPPED; with `CI` set they fail instead.

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;
use support::content::{pe_like, pseudo_random};
use support::live::{assert_same_records, carve_offline, carve_offline_with, parse_queues, start_sensor, stop_sensor};
use support::netns::{client, require_root_or_skip, run_with_timeout, Lab, TempDir};
use support::{sha256_hex, support_script};

/// Mirrors everything entering and leaving `ifname` (in `ns`) out of `mirror` (same namespace),
/// like a switch's SPAN port.
fn mirror(lab: &Lab, ns: &str, ifname: &str, mirror: &str) {
    lab.exec_ok(Some(ns), &["tc", "qdisc", "add", "dev", ifname, "clsact"]);
    for dir in ["ingress", "egress"] {
        lab.exec_ok(
            Some(ns),
            &[
                "tc", "filter", "add", "dev", ifname, dir, "protocol", "all", "u32", "match", "u32", "0", "0",
                "action", "mirred", "egress", "mirror", "dev", mirror,
            ],
        );
    }
}

/// Waits until tcpdump's file stops growing, then stops it and checks it lost nothing.
fn stop_tcpdump(lab: &mut Lab, idx: usize, pcap: &Path) {
    let size = || std::fs::metadata(pcap).map(|m| m.len()).unwrap_or(0);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let (mut last, mut stable_since) = (size(), std::time::Instant::now());
    while std::time::Instant::now() < deadline && stable_since.elapsed() < Duration::from_millis(700) {
        std::thread::sleep(Duration::from_millis(100));
        if size() != last {
            last = size();
            stable_since = std::time::Instant::now();
        }
    }
    let bg = lab.bg(idx);
    assert!(
        bg.interrupt_and_wait(Duration::from_secs(15)).is_some(),
        "tcpdump did not stop on SIGINT"
    );
    let stderr = bg.stderr();
    assert!(
        stderr.lines().any(|l| l.trim() == "0 packets dropped by kernel"),
        "tcpdump dropped packets:\n{stderr}"
    );
}

/// Client, server and sensor namespaces; the server's link mirrored into the sensor's veth.
struct SpanLab {
    lab: Lab,
    client_ns: String,
    server_ns: String,
    sensor_ns: String,
    server_ip: String,
    server_if: String,
    sensor_if: String,
}

fn span_lab() -> SpanLab {
    let mut lab = Lab::new();
    let client_ns = lab.add_ns();
    let server_ns = lab.add_ns();
    let sensor_ns = lab.add_ns();
    let link = lab.link(Some(&client_ns), Some(&server_ns), true);
    let span = lab.link(Some(&server_ns), Some(&sensor_ns), false);
    mirror(&lab, &server_ns, &link.b.ifname, &span.a.ifname);
    SpanLab {
        server_ip: link.b.addr.clone().expect("server address"),
        server_if: link.b.ifname.clone(),
        sensor_if: span.b.ifname.clone(),
        lab,
        client_ns,
        server_ns,
        sensor_ns,
    }
}

#[test]
fn live_http_and_smtp_equal_offline_carving_of_the_same_traffic() {
    if !require_root_or_skip(&["tc", "tcpdump", "curl", "swaks", "python3"]) {
        return;
    }
    let tmp = TempDir::new("live-span");
    let www = tmp.join("www");
    let mail = tmp.join("mail");
    std::fs::create_dir_all(&www).unwrap();
    std::fs::create_dir_all(&mail).unwrap();
    let exe = pe_like(11, 300_000);
    let big = pseudo_random(12, 3 << 20);
    let doc = pseudo_random(13, 40_000);
    std::fs::write(www.join("tool.exe"), &exe).unwrap();
    std::fs::write(www.join("big.bin"), &big).unwrap();
    let attachment = tmp.join("invoice.pdf");
    let mut pdf = b"%PDF-1.4\n".to_vec();
    pdf.extend_from_slice(&pseudo_random(14, 70_000));
    std::fs::write(&attachment, &pdf).unwrap();
    let upload = tmp.join("upload.bin");
    std::fs::write(&upload, &doc).unwrap();

    let mut s = span_lab();
    let pcap = tmp.join("span.pcap");
    let cap = s.lab.tcpdump(Some(&s.server_ns), &s.server_if, &pcap);
    for port in ["80", "8080"] {
        let srv = s.lab.spawn(
            "http_server",
            Some(&s.server_ns),
            &[
                "python3",
                &support_script("http_server.py"),
                &s.server_ip,
                port,
                www.to_str().unwrap(),
            ],
        );
        s.lab.bg(srv).wait_for_line("READY", false, Duration::from_secs(15));
    }
    for port in ["25", "587"] {
        let srv = s.lab.spawn(
            "smtp_sink",
            Some(&s.server_ns),
            &[
                "python3",
                &support_script("smtp_sink.py"),
                &s.server_ip,
                port,
                mail.to_str().unwrap(),
            ],
        );
        s.lab.bg(srv).wait_for_line("READY", false, Duration::from_secs(15));
    }
    let live_log = tmp.join("live.jsonl");
    // Rings larger than the whole exchange (~5000 frames): the test does not depend on how fast
    // this build's engine is (a debug build is slow); speed is measured in bench/replay.
    let sensor = start_sensor(
        &mut s.lab,
        &s.sensor_ns,
        &s.sensor_if,
        &live_log,
        &["--xdp-mode", "native"],
    );

    let base = format!("http://{}", s.server_ip);
    let got = |n: &str| tmp.join(n).to_str().unwrap().to_string();
    let curl = |args: &[&str]| {
        // Paced: tc mirred drops mirrored frames when a burst fills the SPAN veth's backlog on a
        // loaded 2-core machine (the sensor then never sees them: not what this test checks).
        let mut argv = vec![
            "curl",
            "-sS",
            "--fail",
            "--max-time",
            "50",
            "--noproxy",
            "*",
            "--limit-rate",
            "20M",
        ];
        argv.extend_from_slice(args);
        client(&s.lab, &s.client_ns, &argv);
    };
    curl(&["-o", &got("got-tool.exe"), &format!("{base}/named/tool.exe")]);
    curl(&["-o", &got("got-big.bin"), &format!("{base}:8080/chunked/big.bin")]);
    curl(&[
        "-o",
        "/dev/null",
        "-F",
        &format!("file=@{}", upload.display()),
        &format!("{base}/upload"),
    ]);
    for port in ["25", "587"] {
        client(
            &s.lab,
            &s.client_ns,
            &[
                "swaks",
                "--server",
                &s.server_ip,
                "--port",
                port,
                "--from",
                "alice@example.org",
                "--to",
                "bob@example.net",
                "--header",
                "Subject: live test",
                "--attach-type",
                "application/pdf",
                "--attach-name",
                "invoice.pdf",
                "--attach",
                &format!("@{}", attachment.display()),
                "--timeout",
                "30",
            ],
        );
    }
    stop_tcpdump(&mut s.lab, cap, &pcap);
    let (counters, live, summary) = stop_sensor(&mut s.lab, &sensor);
    drop(s);

    assert_eq!(
        std::fs::read(got("got-tool.exe")).unwrap(),
        exe,
        "curl got the served file"
    );
    assert_eq!(
        std::fs::read(got("got-big.bin")).unwrap(),
        big,
        "curl got the served file"
    );
    assert!(counters.redirected > 0, "{summary}");
    assert_eq!(
        counters.rx_packets, counters.redirected,
        "every redirected packet was received:\n{summary}"
    );
    assert_eq!(counters.kernel_drops, 0, "{summary}");

    let offline = carve_offline(&pcap, &tmp.join("offline.jsonl"));
    // Shown when the comparison fails: the live run's counters say where bytes went.
    println!("live summary:\n{summary}");
    assert_same_records("curl + swaks over a SPAN port", &live, &offline);
    for (what, data, proto) in [
        ("tool.exe", &exe, "http"),
        ("big.bin", &big, "http"),
        ("upload.bin", &doc, "http"),
        ("invoice.pdf", &pdf, "smtp"),
    ] {
        let sha = sha256_hex(data);
        let hits = live
            .iter()
            .filter(|r| r["sha256"].as_str() == Some(sha.as_str()))
            .count();
        let want = if what == "invoice.pdf" { 2 } else { 1 };
        assert_eq!(
            hits, want,
            "{what}: {want} live record(s) with sha256 {sha} expected:\n{summary}"
        );
        assert!(
            live.iter().any(|r| r["sha256"].as_str() == Some(sha.as_str())
                && r["proto"].as_str() == Some(proto)
                && r["size"].as_u64() == Some(data.len() as u64)),
            "{what}: proto/size"
        );
    }
}

/// A SPAN lab whose server serves one pseudo-random file over HTTP on `port`; its URL.
fn serve_one_file(tmp: &TempDir, port: &str, seed: u64, len: usize) -> (SpanLab, String) {
    let www = tmp.join("www");
    std::fs::create_dir_all(&www).unwrap();
    std::fs::write(www.join("file.bin"), pseudo_random(seed, len)).unwrap();
    let mut s = span_lab();
    let argv = [
        "python3",
        &support_script("http_server.py"),
        &s.server_ip,
        port,
        www.to_str().unwrap(),
    ];
    let srv = s.lab.spawn("http_server", Some(&s.server_ns), &argv);
    s.lab.bg(srv).wait_for_line("READY", false, Duration::from_secs(15));
    let url = format!("http://{}:{port}/files/file.bin", s.server_ip);
    (s, url)
}

/// Downloads `url` from the client namespace.
fn fetch(s: &SpanLab, url: &str) {
    client(
        &s.lab,
        &s.client_ns,
        &["curl", "-sS", "--fail", "--noproxy", "*", "-o", "/dev/null", url],
    );
}

#[test]
fn ports_outside_the_map_never_reach_userspace() {
    if !require_root_or_skip(&["tc", "curl", "python3"]) {
        return;
    }
    let tmp = TempDir::new("live-port");
    let (mut s, url) = serve_one_file(&tmp, "8000", 21, 200_000);
    let live_log = tmp.join("live.jsonl");
    let sensor = start_sensor(&mut s.lab, &s.sensor_ns, &s.sensor_if, &live_log, &[]);
    fetch(&s, &url);
    let (counters, live, summary) = stop_sensor(&mut s.lab, &sensor);
    drop(s);
    assert!(
        counters.passed > 100,
        "the transfer's packets went through XDP and were passed:\n{summary}"
    );
    assert_eq!(
        counters.redirected, 0,
        "nothing on port 8000 may be redirected:\n{summary}"
    );
    assert_eq!(counters.rx_packets, 0, "{summary}");
    assert!(live.is_empty(), "no records from an unsteered port: {live:?}");
}

/// Live and offline decide the exit status in one place: a files log that cannot be written
/// fails a live capture exactly as it fails a read (`tests/egress.rs` has the read).
#[test]
fn a_files_log_that_cannot_be_written_fails_the_live_run() {
    if !require_root_or_skip(&["tc", "curl", "python3"]) {
        return;
    }
    let tmp = TempDir::new("live-full");
    let (mut s, url) = serve_one_file(&tmp, "80", 22, 100_000);
    // /dev/full: every write fails with ENOSPC.
    let sensor = start_sensor(&mut s.lab, &s.sensor_ns, &s.sensor_if, Path::new("/dev/full"), &[]);
    fetch(&s, &url);
    let bg = s.lab.bg(sensor.bg);
    let status = bg.interrupt_and_wait(Duration::from_secs(60));
    let stderr = bg.stderr();
    drop(s);
    assert_eq!(status.and_then(|s| s.code()), Some(1), "{stderr}");
    assert!(stderr.contains("No space left on device"), "{stderr}");
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("xdpcarve: error: the files log could not be written"),
        "the reason is the last line:\n{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// A classic pcap of BSD loopback frames (link type NULL/LOOP: 4-byte address family) rewritten
/// to Ethernet, since a veth carries Ethernet; other captures are returned as they are.
/// (tcprewrite --dlt=enet rejects these files.)
fn as_ethernet(pcap: &Path, out: &Path) -> PathBuf {
    let bytes = std::fs::read(pcap).unwrap_or_else(|e| panic!("read {}: {e}", pcap.display()));
    let le = match &bytes[..4] {
        [0xd4, 0xc3, 0xb2, 0xa1] | [0x4d, 0x3c, 0xb2, 0xa1] => true,
        [0xa1, 0xb2, 0xc3, 0xd4] | [0xa1, 0xb2, 0x3c, 0x4d] => false,
        _ => return pcap.to_path_buf(), // pcapng: the corpus has none of another link type
    };
    let u32_at = |b: &[u8], at: usize| {
        let v = [b[at], b[at + 1], b[at + 2], b[at + 3]];
        if le {
            u32::from_le_bytes(v)
        } else {
            u32::from_be_bytes(v)
        }
    };
    let put_u32 = |v: u32| if le { v.to_le_bytes() } else { v.to_be_bytes() };
    let link = u32_at(&bytes, 20);
    if link != 0 && link != 108 {
        return pcap.to_path_buf();
    }
    let mut w = bytes[..24].to_vec();
    w[20..24].copy_from_slice(&put_u32(1));
    let mut at = 24;
    while at + 16 <= bytes.len() {
        let (incl, orig) = (u32_at(&bytes, at + 8) as usize, u32_at(&bytes, at + 12));
        let frame = &bytes[at + 16..(at + 16 + incl).min(bytes.len())];
        at += 16 + incl;
        if frame.len() < 5 {
            continue;
        }
        let ethertype: u16 = if frame[4] >> 4 == 6 { 0x86DD } else { 0x0800 };
        w.extend_from_slice(&bytes[at - 16 - incl..at - 8 - incl]); // ts
        w.extend_from_slice(&put_u32(frame.len() as u32 + 10));
        w.extend_from_slice(&put_u32(orig + 10));
        w.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01]);
        w.extend_from_slice(&ethertype.to_be_bytes());
        w.extend_from_slice(&frame[4..]);
    }
    std::fs::write(out, w).unwrap_or_else(|e| panic!("write {}: {e}", out.display()));
    out.to_path_buf()
}

#[test]
fn corpus_replayed_live_equals_read() {
    if !require_root_or_skip(&["tcpreplay"]) {
        return;
    }
    let corpus = support::corpus_dir();
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&corpus)
        .unwrap_or_else(|e| panic!("corpus {}: {e}", corpus.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("trace.pcap").is_file())
        .collect();
    cases.sort();
    assert!(cases.len() >= 20, "corpus incomplete: {} cases", cases.len());

    let tmp = TempDir::new("live-replay");
    let mut lab = Lab::new();
    let replay_ns = lab.add_ns();
    let sensor_ns = lab.add_ns();
    let link = lab.link(Some(&replay_ns), Some(&sensor_ns), false);
    // Some captures hold GRO-sized segments (up to ~15 kB): the sensor receives them in several
    // UMEM frames (multi-buffer XDP).
    for (ns, ifname) in [(&replay_ns, &link.a.ifname), (&sensor_ns, &link.b.ifname)] {
        lab.exec_ok(Some(ns), &["ip", "link", "set", "dev", ifname, "mtu", "16000"]);
    }
    let mut failures = Vec::new();
    for case in &cases {
        let name = case.file_name().unwrap().to_string_lossy().to_string();
        let pcap = case.join("trace.pcap");
        // The same seed and sensor name: live must give the ids `--read` gives.
        let ids = ["--seed", "11", "--sensor-name", "lab"];
        let offline = carve_offline_with(&pcap, &tmp.join(&format!("{name}.read.jsonl")), &ids);
        let replayable = as_ethernet(&pcap, &tmp.join(&format!("{name}.enet.pcap")));
        let live_log = tmp.join(&format!("{name}.live.jsonl"));
        // `--read` also finds HTTP/SMTP on other ports by their first bytes; live capture sees
        // only the steered ports. Steer the server ports the offline run found (two corpus
        // servers listen on 1551 and 8065).
        let ports = |proto: &str, defaults: &[u64]| {
            let mut p: Vec<u64> = defaults.to_vec();
            p.extend(
                offline
                    .iter()
                    .filter(|r| r["proto"] == proto)
                    .filter_map(|r| r["resp_p"].as_u64()),
            );
            p.sort_unstable();
            p.dedup();
            p.iter().map(u64::to_string).collect::<Vec<_>>().join(",")
        };
        let (http_ports, smtp_ports) = (ports("http", &[80, 8080]), ports("smtp", &[25, 587]));
        let port_args = ["--http-ports", &http_ports, "--smtp-ports", &smtp_ports];
        let args = [&["--xdp-mode", "native"][..], &port_args[..], &ids[..]].concat();
        let sensor = start_sensor(&mut lab, &sensor_ns, &link.b.ifname, &live_log, &args);
        let replay = lab.exec_ok(
            Some(&replay_ns),
            &[
                "tcpreplay",
                "--topspeed",
                "-i",
                &link.a.ifname,
                replayable.to_str().unwrap(),
            ],
        );
        let (counters, live, summary) = stop_sensor(&mut lab, &sensor);
        let replay_out = String::from_utf8_lossy(&replay.stdout);
        let sent: u64 = replay_out
            .lines()
            .find_map(|l| l.trim().strip_prefix("Successful packets:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("{name}: tcpreplay output without a packet count:\n{replay_out}"));
        let mut problems = Vec::new();
        if counters.xdp_seen < sent {
            problems.push(format!("XDP saw {} packets of {sent} replayed", counters.xdp_seen));
        }
        if counters.rx_packets != counters.redirected || counters.kernel_drops != 0 {
            problems.push(format!("not every steered packet was received: {counters:?}"));
        }
        if counters.redirected == 0 {
            problems.push("nothing was redirected".into());
        }
        let same = std::panic::catch_unwind(|| assert_same_records(&name, &live, &offline));
        if let Err(e) = same {
            let msg = e.downcast_ref::<String>().cloned().unwrap_or_default();
            problems.push(msg);
        }
        let id_list = |records: &[serde_json::Value]| {
            let mut v: Vec<String> = records.iter().map(|r| format!("{} {}", r["uid"], r["fuid"])).collect();
            v.sort();
            v
        };
        if id_list(&live) != id_list(&offline) {
            problems.push(format!(
                "ids differ: live {:?}, read {:?}",
                id_list(&live),
                id_list(&offline)
            ));
        }
        if !problems.is_empty() {
            failures.push(format!("{name}: {}\n{summary}", problems.join("; ")));
        }
    }
    drop(lab);
    assert!(
        failures.is_empty(),
        "{} of {} cases differ:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n\n")
    );
}

/// Traffic for [`two_queues_live_equal_read`]: an `xdpcarve-gen` mix when that tool is built next
/// to the binary under test, else the shipped sample capture.
fn mixed_capture(out: &Path) -> PathBuf {
    let gen = support::xdpcarve_bin().with_file_name("xdpcarve-gen");
    if !gen.is_file() {
        println!(
            "{} not built: replaying bench/samples/sample.pcap instead",
            gen.display()
        );
        return support::repo_root().join("bench/samples/sample.pcap");
    }
    let out_s = out.to_str().expect("utf-8 path");
    let argv = [
        "--http",
        "40",
        "--smtp",
        "6",
        "--per-conn",
        "4",
        "--sizes",
        "16K,64K,256K",
        "--seed",
        "5",
        "-o",
        out_s,
    ];
    let res = run_with_timeout(std::process::Command::new(&gen).args(argv), Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        res.status.success(),
        "xdpcarve-gen failed: {}",
        String::from_utf8_lossy(&res.stderr)
    );
    out.to_path_buf()
}

/// A sensor on a veth with two receive queues, like a 2-queue NIC: xdpcarve opens one AF_XDP
/// socket and worker per queue. The connections of one capture are split into two captures,
/// replayed at the same time by two tcpreplay processes pinned to CPUs 0 and 1; XPS on the
/// sending end maps CPU N to tx queue N, and a veth delivers tx queue N to the peer's rx queue N.
/// Both queues must receive packets, none may be dropped, and the records must equal those of
/// `--read` of the two captures.
#[test]
fn two_queues_live_equal_read() {
    if !require_root_or_skip(&["tcpreplay", "taskset"]) {
        return;
    }
    if std::thread::available_parallelism().map_or(1, |n| n.get()) < 2 {
        println!("SKIPPED: needs 2 CPUs to pin one sender per queue");
        return;
    }
    let tmp = TempDir::new("live-queues");
    let source = mixed_capture(&tmp.join("mix.pcap"));
    let halves = [tmp.join("half0.pcap"), tmp.join("half1.pcap")];
    let conns = support::pcap::split_by_connection(&source, &[&halves[0], &halves[1]]);
    assert!(conns >= 2, "{}: {conns} connections, two needed", source.display());
    let mut offline = Vec::new();
    for (q, half) in halves.iter().enumerate() {
        offline.extend(carve_offline(half, &tmp.join(&format!("half{q}.read.jsonl"))));
    }
    assert!(!offline.is_empty(), "the replayed traffic carries files");

    let mut lab = Lab::new();
    let replay_ns = lab.add_ns();
    let sensor_ns = lab.add_ns();
    let link = lab.link_with_queues(Some(&replay_ns), Some(&sensor_ns), false, 2);
    lab.xps_one_cpu_per_queue(Some(&replay_ns), &link.a.ifname, 2);
    let live_log = tmp.join("live.jsonl");
    let args = ["--xdp-mode", "native"];
    let sensor = start_sensor(&mut lab, &sensor_ns, &link.b.ifname, &live_log, &args);
    let started = lab.bg(sensor.bg).stderr();
    // "... queues 0@cpu0,1@cpu1 (of 2), ..."
    let opened = started
        .split_once("queues ")
        .and_then(|(_, rest)| rest.split_once(" (of 2)"))
        .map(|(list, _)| list.split(',').count());
    assert_eq!(opened, Some(2), "the sensor should open both queues:\n{started}");
    // Both senders at once, each pinned to the CPU whose tx queue it should use; paced, so a
    // loaded 2-core machine keeps up.
    let mut cmds: Vec<std::process::Command> = halves
        .iter()
        .enumerate()
        .map(|(q, half)| {
            let cpu = q.to_string();
            let argv = [
                "taskset",
                "-c",
                &cpu,
                "tcpreplay",
                // nanosleep between packets: the default timer spins, hogging a CPU.
                "--timer",
                "nano",
                "--pps",
                "2000",
                "-i",
                &link.a.ifname,
                half.to_str().unwrap(),
            ];
            lab.command(Some(&replay_ns), &argv)
        })
        .collect();
    let outs: Vec<std::process::Output> = std::thread::scope(|scope| {
        let running: Vec<_> = cmds
            .iter_mut()
            .map(|cmd| scope.spawn(move || run_with_timeout(cmd, Duration::from_secs(120))))
            .collect();
        running
            .into_iter()
            .map(|t| t.join().expect("replay thread").unwrap_or_else(|e| panic!("{e}")))
            .collect()
    });
    let mut sent = Vec::new();
    for (q, out) in outs.iter().enumerate() {
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "tcpreplay of half {q} failed ({}):\n{stdout}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        let n: u64 = stdout
            .lines()
            .find_map(|l| l.trim().strip_prefix("Successful packets:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("tcpreplay output without a packet count:\n{stdout}"));
        sent.push(n);
    }
    let (counters, live, summary) = stop_sensor(&mut lab, &sensor);
    drop(lab);

    let queues = parse_queues(&summary);
    println!("sent {sent:?} packets; per queue: {queues:?}");
    assert_eq!(queues.len(), 2, "two queue lines in the summary:\n{summary}");
    for q in &queues {
        assert!(q.rx_packets > 0, "queue {} received nothing:\n{summary}", q.queue);
        assert_eq!(q.kernel_drops, 0, "queue {} dropped packets:\n{summary}", q.queue);
        // Default rings, from the default --capture-memory (256 MiB per queue).
        let (high, capacity) = q.ring_high_water.expect("a ring high-water mark per queue");
        assert_eq!(capacity, 129_536, "queue {}:\n{summary}", q.queue);
        assert!(high <= capacity, "queue {}:\n{summary}", q.queue);
    }
    assert!(
        counters.xdp_seen >= sent.iter().sum::<u64>(),
        "XDP saw every replayed packet:\n{summary}"
    );
    assert_eq!(
        counters.rx_packets, counters.redirected,
        "every redirected packet was received:\n{summary}"
    );
    assert_same_records("two captures over two queues", &live, &offline);
}

#[test]
fn without_privileges_the_error_names_the_capabilities() {
    if !require_root_or_skip(&["setpriv"]) {
        return;
    }
    // As user nobody with no capabilities, on loopback (nothing is attached: the check comes first).
    let out = run_with_timeout(
        std::process::Command::new("setpriv")
            .args([
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                "--inh-caps=-all",
                "--",
            ])
            .arg(support::xdpcarve_bin())
            .args(["--interface", "lo", "--files-log", "/dev/null"]),
        Duration::from_secs(30),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    for cap in ["CAP_BPF", "CAP_PERFMON", "CAP_NET_ADMIN", "CAP_NET_RAW"] {
        assert!(stderr.contains(cap), "error should name {cap}:\n{stderr}");
    }
    let out = run_with_timeout(
        std::process::Command::new(support::xdpcarve_bin()).args(["-i", "xdcnosuch0", "--files-log", "/dev/null"]),
        Duration::from_secs(30),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no such network interface `xdcnosuch0`"));
}
