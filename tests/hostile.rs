//! Hostile captures (issue: robustness), scaled down to run in seconds: each carries an attack on
//! one connection and a legitimate download on another. Each must end cleanly with the download
//! carved exactly and the peak RSS of the whole run under a bound (GNU time, from outside).
//! `cargo test --release --test hostile -- --nocapture` prints every case's peak.

mod support;

use std::io::Write;

use base64::Engine as _;
use support::carve::{eth_ipv4, tcp, write_pcap, TempDir, ACK, FIN_ACK, PSH_ACK, SYN};
use support::content::pseudo_random;
use support::rss::run_read_measured;
use support::sha256_hex;

/// Peak RSS bound of every case: the binary's own footprint plus bounded flow state.
const MAX_PEAK_RSS_MIB: u64 = 96;
const MSS: usize = 1448;

/// One connection: turns (client?, bytes), each sent in MSS-sized segments, in order.
fn conversation(sport: u16, dport: u16, t0: u64, turns: &[(bool, &[u8])]) -> Vec<(u64, Vec<u8>)> {
    let (c, s) = ([10, 0, 0, 1], [10, 0, 0, 2]);
    let (mut cseq, mut sseq) = (1000u32, 50_000u32);
    let mut t = t0;
    let mut pkts = Vec::new();
    let mut push = |pkts: &mut Vec<(u64, Vec<u8>)>, frame: Vec<u8>| {
        t += 10;
        pkts.push((t, frame));
    };
    push(&mut pkts, eth_ipv4(c, s, 6, &tcp(sport, dport, cseq, 0, SYN, b"")));
    push(
        &mut pkts,
        eth_ipv4(s, c, 6, &tcp(dport, sport, sseq, cseq + 1, SYN | ACK, b"")),
    );
    cseq += 1;
    sseq += 1;
    push(&mut pkts, eth_ipv4(c, s, 6, &tcp(sport, dport, cseq, sseq, ACK, b"")));
    for (from_client, data) in turns {
        for piece in data.chunks(MSS) {
            if *from_client {
                push(
                    &mut pkts,
                    eth_ipv4(c, s, 6, &tcp(sport, dport, cseq, sseq, PSH_ACK, piece)),
                );
                cseq = cseq.wrapping_add(piece.len() as u32);
            } else {
                push(
                    &mut pkts,
                    eth_ipv4(s, c, 6, &tcp(dport, sport, sseq, cseq, PSH_ACK, piece)),
                );
                sseq = sseq.wrapping_add(piece.len() as u32);
            }
        }
    }
    push(
        &mut pkts,
        eth_ipv4(c, s, 6, &tcp(sport, dport, cseq, sseq, FIN_ACK, b"")),
    );
    push(
        &mut pkts,
        eth_ipv4(s, c, 6, &tcp(dport, sport, sseq, cseq + 1, FIN_ACK, b"")),
    );
    pkts
}

/// The legitimate download every case also carries.
fn download() -> (Vec<u8>, Vec<(u64, Vec<u8>)>) {
    let body = pseudo_random(11, 200 << 10);
    let response = [
        format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len()).as_bytes(),
        &body,
    ]
    .concat();
    let request: &[u8] = b"GET /real.bin HTTP/1.1\r\nHost: x\r\n\r\n";
    let pkts = conversation(
        41_000,
        80,
        1_600_000_000_000_000,
        &[(true, request), (false, &response)],
    );
    (body, pkts)
}

/// An HTTP exchange whose response is `response`, after the download.
fn http_attack(response: &[u8]) -> Vec<(u64, Vec<u8>)> {
    let request: &[u8] = b"GET /attack HTTP/1.1\r\nHost: x\r\n\r\n";
    conversation(42_000, 80, 1_600_000_010_000_000, &[(true, request), (false, response)])
}

/// An SMTP session delivering `message` (already dot-stuffed, without the final dot).
fn smtp_attack(message: &[u8]) -> Vec<(u64, Vec<u8>)> {
    let body = [message, b"\r\n.\r\n"].concat();
    let turns: Vec<(bool, &[u8])> = vec![
        (false, b"220 mx ESMTP\r\n"),
        (true, b"EHLO c\r\n"),
        (false, b"250 mx\r\n"),
        (true, b"MAIL FROM:<a@x>\r\n"),
        (false, b"250 ok\r\n"),
        (true, b"RCPT TO:<b@y>\r\n"),
        (false, b"250 ok\r\n"),
        (true, b"DATA\r\n"),
        (false, b"354 go\r\n"),
        (true, &body),
        (false, b"250 queued\r\n"),
        (true, b"QUIT\r\n"),
        (false, b"221 bye\r\n"),
    ];
    conversation(43_000, 25, 1_600_000_010_000_000, &turns)
}

struct Outcome {
    records: usize,
    peak_mib: Option<f64>,
    /// Records marked as what was too deep, or past the parts limit.
    deep_marked: usize,
    rest_marked: usize,
}

/// Carves the download and the attack; checks the run and returns what it cost.
fn carve(name: &str, attack: Vec<(u64, Vec<u8>)>, extra: &[&str]) -> Outcome {
    let dir = TempDir::new("hostile");
    let (body, mut packets) = download();
    packets.extend(attack);
    let pcap = dir.path("hostile.pcap");
    write_pcap(&pcap, 1, &packets);
    let m = run_read_measured(&pcap, extra);
    let run = &m.run;
    let peak_mib = m.peak_rss_kib.map(|k| k as f64 / 1024.0);
    println!(
        "hostile {name}: {} packets, {:.2} s, {} records, peak RSS {}",
        packets.len(),
        m.wall.as_secs_f64(),
        run.records.len(),
        peak_mib.map_or("not measured".into(), |m| format!("{m:.1} MiB"))
    );
    for r in run.records.iter().filter(|r| r["http_uri"] != "/real.bin").take(3) {
        println!(
            "  record: size {} missing {} truncated_reason {} anomalies {}",
            r["size"], r["missing_bytes"], r["truncated_reason"], r["anomalies"]
        );
    }
    assert!(run.clean(), "{name}: {}", run.describe());
    assert_eq!(run.code, Some(0), "{name}: {}", run.describe());
    let carved = run.records.iter().any(|r| {
        r["sha256"] == sha256_hex(&body).as_str() && r["size"] == body.len() as u64 && r["missing_bytes"] == 0
    });
    assert!(carved, "{name}: the download was not carved whole\n{}", run.describe());
    if let Some(mib) = peak_mib {
        assert!(
            mib <= MAX_PEAK_RSS_MIB as f64,
            "{name}: peak RSS {mib:.1} MiB > {MAX_PEAK_RSS_MIB} MiB\n{}",
            run.stderr
        );
    }
    let marked = |name: &str| {
        let has = |r: &&serde_json::Value| r["anomalies"].as_array().is_some_and(|a| a.iter().any(|n| n == name));
        run.records.iter().filter(has).count()
    };
    Outcome {
        records: run.records.len(),
        peak_mib,
        deep_marked: marked("mime_too_deep"),
        rest_marked: marked("mime_parts_exceeded"),
    }
}

#[test]
fn endless_headers() {
    // 8 MiB of header lines, never an empty line.
    let mut head = b"HTTP/1.1 200 OK\r\n".to_vec();
    while head.len() < 8 << 20 {
        head.extend_from_slice(b"X-Filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
    }
    carve("endless headers (8 MiB)", http_attack(&head), &[]);
}

#[test]
fn huge_chunk_size_and_content_length() {
    let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\nabc\r\n0\r\n\r\n";
    carve("chunk size 2^72", http_attack(chunked), &[]);
    let cl = b"HTTP/1.1 200 OK\r\nContent-Length: 999999999999999999999\r\n\r\nabc";
    carve("Content-Length 10^21", http_attack(cl), &[]);
    let cl = b"HTTP/1.1 200 OK\r\nContent-Length: 18446744073709551615\r\n\r\nabc";
    carve("Content-Length 2^64-1", http_attack(cl), &[]);
}

fn gzip(data: &[u8], times: usize) -> Vec<u8> {
    let mut out = data.to_vec();
    for _ in 0..times {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(&out).unwrap();
        out = enc.finish().unwrap();
    }
    out
}

#[test]
fn gzip_bombs() {
    // 256 MiB of zeros as a 250 KiB gzip body, and gzip inside gzip (2 GiB as a few KiB).
    let zeros = vec![0u8; 256 << 20];
    for (name, bomb) in [
        ("gzip bomb 256 MiB", gzip(&zeros, 1)),
        ("gzip in gzip", gzip(&zeros, 2)),
    ] {
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: {}\r\n\r\n",
            bomb.len()
        );
        let o = carve(name, http_attack(&[head.as_bytes(), &bomb].concat()), &[]);
        assert_eq!(o.records, 2, "{name}");
    }
    // gzip inside a zip-like attachment inside a mail: the attachment is one file, not unpacked.
    let attachment = base64::engine::general_purpose::STANDARD.encode(gzip(&zeros, 1));
    let mut lines = String::new();
    for l in attachment.as_bytes().chunks(76) {
        lines.push_str(std::str::from_utf8(l).unwrap());
        lines.push_str("\r\n");
    }
    let mail = format!(
        "Subject: x\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\
         Content-Type: application/zip; name=bomb.zip\r\nContent-Transfer-Encoding: base64\r\n\r\n{lines}--b--\r\n"
    );
    let o = carve("gzip bomb in a mail attachment", smtp_attack(mail.as_bytes()), &[]);
    assert!(o.records >= 2);
}

#[test]
fn deep_mime_nesting() {
    // 20,000 multiparts, each inside the last.
    let depth = 20_000;
    let mut mail =
        String::from("Subject: x\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b0\r\n\r\n");
    for i in 0..depth {
        mail.push_str(&format!(
            "--b{i}\r\nContent-Type: multipart/mixed; boundary=b{}\r\n\r\n",
            i + 1
        ));
    }
    mail.push_str(&format!("--b{depth}\r\nContent-Type: text/plain\r\n\r\ndeep\r\n"));
    for i in (0..=depth).rev() {
        mail.push_str(&format!("--b{i}--\r\n"));
    }
    let o = carve("MIME nested 20,000 deep", smtp_attack(mail.as_bytes()), &[]);
    assert_eq!(o.deep_marked, 1, "what is too deep to follow is one marked file");
}

/// A multipart mail of `parts` parts of `part` bytes each, with `boundary`.
fn many_parts(parts: usize, part: &str, boundary: &str) -> Vec<u8> {
    let mut mail =
        format!("Subject: x\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"{boundary}\"\r\n\r\n");
    for _ in 0..parts {
        mail.push_str(&format!(
            "--{boundary}\r\nContent-Type: application/octet-stream\r\n\r\n{part}\r\n"
        ));
    }
    mail.push_str(&format!("--{boundary}--\r\n"));
    mail.into_bytes()
}

#[test]
fn many_tiny_files_and_a_100k_part_multipart() {
    let o = carve(
        "100,000 parts of 1 byte",
        smtp_attack(&many_parts(100_000, "x", "b")),
        &[],
    );
    // 1,000 parts one by one, the rest as one marked file, and the download.
    assert_eq!((o.records, o.rest_marked), (1002, 1));
}

#[test]
fn boundaries_of_70_characters_repeated() {
    // The longest boundary RFC 2046 allows, and lines that are all but a delimiter.
    let boundary: String = "=_".repeat(35);
    let near_miss = format!("--{}X\r\n", &boundary).repeat(20_000);
    let mail = many_parts(200, &near_miss, &boundary);
    carve("70-char boundary, 4M near-miss lines", smtp_attack(&mail), &[]);
}

#[test]
fn one_endless_file() {
    // A 48 MiB body past a 1 MiB hashing limit: truncated, counted, memory flat.
    let body = vec![b'A'; 48 << 20];
    let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len());
    let o = carve(
        "48 MiB file past --max-file-size 1M",
        http_attack(&[head.as_bytes(), &body].concat()),
        &["--max-file-size", "1M"],
    );
    assert_eq!(o.records, 2);
    let _ = o.peak_mib;
}
