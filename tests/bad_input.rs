//! Bad input never crashes the reader: each case must end with a clean exit (status 0, or 1 with
//! an actionable message), no panic, and whatever was readable still carved.

mod support;

use sha2::{Digest, Sha256};
use support::carve::{
    eth_ipv4, pcap_bytes, run_read, tcp, tcp_conversation, udp, write_pcap, TempDir, ACK, PSH_ACK, SYN,
};

const BODY: &[u8] = b"hello world";

fn http_exchange(port: u16) -> Vec<(u64, Vec<u8>)> {
    let response = [
        b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\nContent-Type: text/plain\r\n\r\n".as_slice(),
        BODY,
    ]
    .concat();
    tcp_conversation(
        40000,
        port,
        &[
            (true, b"GET /a.txt HTTP/1.1\r\nHost: example\r\n\r\n"),
            (false, &response),
        ],
    )
}

fn body_sha256() -> String {
    Sha256::digest(BODY).iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn a_well_formed_capture_is_carved() {
    // The positive control of the cases below: the same exchange, intact.
    let tmp = TempDir::new("bad");
    let path = tmp.path("ok.pcap");
    write_pcap(&path, 1, &http_exchange(80));
    let run = run_read(&path, &[]);
    assert_eq!(run.code, Some(0), "{}", run.describe());
    assert!(
        run.records.iter().any(|r| r["sha256"] == body_sha256().as_str()),
        "{}",
        run.describe()
    );
}

#[test]
fn empty_file_is_a_clear_error() {
    let tmp = TempDir::new("bad");
    let path = tmp.path("empty.pcap");
    std::fs::write(&path, b"").unwrap();
    let run = run_read(&path, &[]);
    assert!(run.clean(), "{}", run.describe());
    assert_eq!(run.code, Some(1), "{}", run.describe());
    assert!(run.stderr.contains("is empty"), "{}", run.describe());
}

#[test]
fn missing_file_is_a_clear_error() {
    let tmp = TempDir::new("bad");
    let run = run_read(&tmp.path("does-not-exist.pcap"), &[]);
    assert!(run.clean(), "{}", run.describe());
    assert_eq!(run.code, Some(1), "{}", run.describe());
    assert!(run.stderr.contains("cannot read"), "{}", run.describe());
}

#[test]
fn random_garbage_is_not_a_capture() {
    let tmp = TempDir::new("bad");
    let path = tmp.path("garbage.pcap");
    // Deterministic pseudo-random bytes (xorshift).
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let bytes: Vec<u8> = (0..100_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    std::fs::write(&path, &bytes).unwrap();
    let run = run_read(&path, &[]);
    assert!(run.clean(), "{}", run.describe());
    assert_eq!(run.code, Some(1), "{}", run.describe());
    assert!(
        run.stderr.contains("is not a pcap or pcapng file (magic 0x"),
        "{}",
        run.describe()
    );
}

#[test]
fn header_only_pcap_has_no_packets() {
    let tmp = TempDir::new("bad");
    let path = tmp.path("header.pcap");
    write_pcap(&path, 1, &[]);
    let run = run_read(&path, &[]);
    assert_eq!(run.code, Some(0), "{}", run.describe());
    assert!(run.records.is_empty());
    assert!(run.stderr.contains(": 0 packets"), "{}", run.describe());
}

#[test]
fn file_cut_inside_its_header_is_a_clear_error() {
    let tmp = TempDir::new("bad");
    let path = tmp.path("cut-header.pcap");
    std::fs::write(&path, &pcap_bytes(1, 65535, &[])[..10]).unwrap();
    let run = run_read(&path, &[]);
    assert!(run.clean(), "{}", run.describe());
    assert_eq!(run.code, Some(1), "{}", run.describe());
    assert!(run.stderr.contains("ends inside its file header"), "{}", run.describe());
}

#[test]
fn truncated_pcap_keeps_what_was_read() {
    // Cut in the middle of the last record (the server's FIN): a warning, and the file, which
    // was complete before the cut, is still carved.
    let tmp = TempDir::new("bad");
    let path = tmp.path("truncated.pcap");
    let bytes = pcap_bytes(1, 65535, &http_exchange(80));
    std::fs::write(&path, &bytes[..bytes.len() - 30]).unwrap();
    let run = run_read(&path, &[]);
    assert!(run.clean(), "{}", run.describe());
    assert_eq!(run.code, Some(0), "{}", run.describe());
    assert!(
        run.stderr.contains("capture truncated after 6 packets"),
        "{}",
        run.describe()
    );
    assert!(
        run.records.iter().any(|r| r["sha256"] == body_sha256().as_str()),
        "{}",
        run.describe()
    );
}

#[test]
fn hostile_record_length_stops_with_an_error() {
    // A 4 GB incl_len after one good packet: no allocation of that size, a clear error, the
    // packet before it processed.
    let tmp = TempDir::new("bad");
    let path = tmp.path("hostile.pcap");
    let pkts = http_exchange(80);
    let mut bytes = pcap_bytes(1, 65535, &pkts[..1]);
    bytes.extend_from_slice(&1u32.to_le_bytes());
    bytes.extend_from_slice(&0u32.to_le_bytes());
    bytes.extend_from_slice(&0xffff_fff0u32.to_le_bytes());
    bytes.extend_from_slice(&0xffff_fff0u32.to_le_bytes());
    bytes.extend_from_slice(&[0u8; 64]);
    std::fs::write(&path, &bytes).unwrap();
    let run = run_read(&path, &[]);
    assert!(run.clean(), "{}", run.describe());
    assert_eq!(run.code, Some(1), "{}", run.describe());
    assert!(run.stderr.contains("is corrupt at byte"), "{}", run.describe());
    assert!(run.stderr.contains("record length 4294967280"), "{}", run.describe());
    assert!(
        run.stderr.contains(": 1 packets"),
        "the packet before the bad record is processed\n{}",
        run.describe()
    );
}

fn pcapng_shb() -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&0x0a0d_0d0au32.to_le_bytes());
    b.extend_from_slice(&28u32.to_le_bytes());
    b.extend_from_slice(&0x1a2b_3c4du32.to_le_bytes());
    b.extend_from_slice(&1u16.to_le_bytes());
    b.extend_from_slice(&0u16.to_le_bytes());
    b.extend_from_slice(&(-1i64).to_le_bytes());
    b.extend_from_slice(&28u32.to_le_bytes());
    b
}

/// An interface description block with if_tsresol = 9 (nanoseconds).
fn pcapng_idb(linktype: u16) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&1u32.to_le_bytes());
    b.extend_from_slice(&32u32.to_le_bytes());
    b.extend_from_slice(&linktype.to_le_bytes());
    b.extend_from_slice(&0u16.to_le_bytes());
    b.extend_from_slice(&0u32.to_le_bytes());
    b.extend_from_slice(&[9, 0, 1, 0, 9, 0, 0, 0]); // if_tsresol, length 1, value 9, padding
    b.extend_from_slice(&[0, 0, 0, 0]); // opt_endofopt
    b.extend_from_slice(&32u32.to_le_bytes());
    b
}

fn pcapng_epb(ts_ns: u64, data: &[u8]) -> Vec<u8> {
    let pad = (4 - data.len() % 4) % 4;
    let len = (32 + data.len() + pad) as u32;
    let mut b = Vec::new();
    b.extend_from_slice(&6u32.to_le_bytes());
    b.extend_from_slice(&len.to_le_bytes());
    b.extend_from_slice(&0u32.to_le_bytes());
    b.extend_from_slice(&((ts_ns >> 32) as u32).to_le_bytes());
    b.extend_from_slice(&(ts_ns as u32).to_le_bytes());
    b.extend_from_slice(&(data.len() as u32).to_le_bytes());
    b.extend_from_slice(&(data.len() as u32).to_le_bytes());
    b.extend_from_slice(data);
    b.extend_from_slice(&vec![0u8; pad]);
    b.extend_from_slice(&len.to_le_bytes());
    b
}

#[test]
fn pcapng_is_carved_with_nanosecond_timestamps() {
    let tmp = TempDir::new("bad");
    let path = tmp.path("ok.pcapng");
    let mut bytes = pcapng_shb();
    bytes.extend(pcapng_idb(1));
    for (ts_us, frame) in http_exchange(80) {
        bytes.extend(pcapng_epb(ts_us * 1000 + 123, &frame));
    }
    std::fs::write(&path, &bytes).unwrap();
    let run = run_read(&path, &[]);
    assert_eq!(run.code, Some(0), "{}", run.describe());
    let rec = run
        .records
        .iter()
        .find(|r| r["sha256"] == body_sha256().as_str())
        .unwrap_or_else(|| panic!("{}", run.describe()));
    // The response's first packet: 5th packet, 1600000000.005000123 s.
    assert_eq!(rec["ts"], "2020-09-13T12:26:40.005000Z", "{}", run.describe());
}

#[test]
fn pcapng_garbage_blocks_stop_with_an_error() {
    let tmp = TempDir::new("bad");
    // A block whose length is not a multiple of 4.
    let path = tmp.path("odd.pcapng");
    let mut bytes = pcapng_shb();
    bytes.extend(pcapng_idb(1));
    bytes.extend_from_slice(&6u32.to_le_bytes());
    bytes.extend_from_slice(&4099u32.to_le_bytes());
    bytes.extend_from_slice(&[0xAB; 200]);
    std::fs::write(&path, &bytes).unwrap();
    let run = run_read(&path, &[]);
    assert!(run.clean(), "{}", run.describe());
    assert_eq!(run.code, Some(1), "{}", run.describe());
    assert!(run.stderr.contains("block length 4099"), "{}", run.describe());

    // A block claiming 2 GB.
    let path = tmp.path("huge.pcapng");
    let mut bytes = pcapng_shb();
    bytes.extend(pcapng_idb(1));
    bytes.extend_from_slice(&6u32.to_le_bytes());
    bytes.extend_from_slice(&0x8000_0000u32.to_le_bytes());
    bytes.extend_from_slice(&[0xAB; 200]);
    std::fs::write(&path, &bytes).unwrap();
    let run = run_read(&path, &[]);
    assert!(run.clean(), "{}", run.describe());
    assert_eq!(run.code, Some(1), "{}", run.describe());
    assert!(run.stderr.contains("exceeds the limit"), "{}", run.describe());

    // An enhanced packet block whose captured length overruns the block.
    let path = tmp.path("overrun.pcapng");
    let mut bytes = pcapng_shb();
    bytes.extend(pcapng_idb(1));
    let mut epb = pcapng_epb(1, &[0u8; 64]);
    epb[20..24].copy_from_slice(&5000u32.to_le_bytes());
    bytes.extend(epb);
    std::fs::write(&path, &bytes).unwrap();
    let run = run_read(&path, &[]);
    assert!(run.clean(), "{}", run.describe());
    assert_eq!(run.code, Some(1), "{}", run.describe());
    assert!(run.stderr.contains("is corrupt"), "{}", run.describe());

    // A packet of an interface that was never described.
    let path = tmp.path("noif.pcapng");
    let mut bytes = pcapng_shb();
    bytes.extend(pcapng_epb(1, &[0u8; 64]));
    std::fs::write(&path, &bytes).unwrap();
    let run = run_read(&path, &[]);
    assert!(run.clean(), "{}", run.describe());
    assert_eq!(run.code, Some(1), "{}", run.describe());
    assert!(run.stderr.contains("never described"), "{}", run.describe());
}

#[test]
fn unsupported_link_type_is_named() {
    let tmp = TempDir::new("bad");
    let path = tmp.path("user0.pcap");
    write_pcap(&path, 147, &[(1, vec![0u8; 60])]);
    let run = run_read(&path, &[]);
    assert!(run.clean(), "{}", run.describe());
    assert_eq!(run.code, Some(1), "{}", run.describe());
    assert!(
        run.stderr.contains("USER0 (147) is not supported"),
        "{}",
        run.describe()
    );
    assert!(
        run.stderr.contains("Ethernet (1)"),
        "the supported types are listed\n{}",
        run.describe()
    );
}

#[test]
fn non_tcp_traffic_is_skipped() {
    let tmp = TempDir::new("bad");
    let path = tmp.path("udp-arp.pcap");
    let arp = [vec![0xff; 6], vec![1, 2, 3, 4, 5, 6], vec![0x08, 0x06], vec![0u8; 28]].concat();
    let dns = eth_ipv4(
        [10, 0, 0, 1],
        [10, 0, 0, 2],
        17,
        &udp(5353, 53, b"\x12\x34 not really dns"),
    );
    let icmp = eth_ipv4([10, 0, 0, 1], [10, 0, 0, 2], 1, &[8, 0, 0, 0, 0, 1, 0, 1]);
    write_pcap(&path, 1, &[(1, arp), (2, dns), (3, icmp)]);
    let run = run_read(&path, &[]);
    assert_eq!(run.code, Some(0), "{}", run.describe());
    assert!(run.records.is_empty(), "{}", run.describe());
    assert!(run.stderr.contains("capture.non_ip=1"), "{}", run.describe());
    assert!(run.stderr.contains("capture.non_tcp=2"), "{}", run.describe());
}

#[test]
fn garbage_on_port_80_is_survived() {
    let tmp = TempDir::new("bad");
    let path = tmp.path("garbage-http.pcap");
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut noise = |n: usize| -> Vec<u8> {
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    };
    let a = noise(3000);
    let b = noise(5000);
    let c =
        b"GET / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n".to_vec();
    let d = b"HTTP/1.1 200 OK\r\nContent-Length: -5\r\n\r\n\x00\x01\x02".to_vec();
    let pkts = tcp_conversation(40001, 80, &[(true, &a), (false, &b), (true, &c), (false, &d)]);
    write_pcap(&path, 1, &pkts);
    let run = run_read(&path, &[]);
    assert!(run.clean(), "{}", run.describe());
    assert_eq!(run.code, Some(0), "{}", run.describe());
}

#[test]
fn malformed_tcp_and_ip_headers_are_counted() {
    let tmp = TempDir::new("bad");
    let path = tmp.path("malformed.pcap");
    let mut bad_ihl = eth_ipv4([10, 0, 0, 1], [10, 0, 0, 2], 6, &tcp(1, 80, 1, 0, SYN, b""));
    bad_ihl[14] = 0x4f; // header length 60 > packet
    let mut bad_doff = eth_ipv4([10, 0, 0, 1], [10, 0, 0, 2], 6, &tcp(1, 80, 1, 0, ACK, b"x"));
    bad_doff[14 + 20 + 12] = 0xf0; // data offset 60 > segment
    let short = eth_ipv4([10, 0, 0, 1], [10, 0, 0, 2], 6, &[0u8; 7]);
    let runt = vec![0u8; 9];
    write_pcap(&path, 1, &[(1, bad_ihl), (2, bad_doff), (3, short), (4, runt)]);
    let run = run_read(&path, &[]);
    assert_eq!(run.code, Some(0), "{}", run.describe());
    assert!(run.stderr.contains("capture.malformed=4"), "{}", run.describe());
}

#[test]
fn bad_flag_values_are_rejected() {
    let tmp = TempDir::new("bad");
    let path = tmp.path("ok.pcap");
    write_pcap(&path, 1, &http_exchange(80));
    for args in [
        &["--memory", "12X"][..],
        &["--http-ports", "80,http"],
        &["--hashes", "crc32"],
        &["--idle-timeout", "soon"],
    ] {
        let run = run_read(&path, args);
        assert!(run.clean(), "{args:?}: {}", run.describe());
        assert_ne!(run.code, Some(0), "{args:?} accepted\n{}", run.describe());
        assert!(
            run.stderr.to_lowercase().contains("error"),
            "{args:?}: {}",
            run.describe()
        );
    }
}

#[test]
fn data_before_the_handshake_on_an_ignored_port_is_not_tracked() {
    let tmp = TempDir::new("bad");
    let path = tmp.path("other-port.pcap");
    write_pcap(
        &path,
        1,
        &tcp_conversation(
            40002,
            5432,
            &[(true, b"\x00\x00\x00\x08\x04\xd2\x16\x2f"), (false, b"N")],
        ),
    );
    let run = run_read(&path, &[]);
    assert_eq!(run.code, Some(0), "{}", run.describe());
    assert!(run.stderr.contains("0 tracked"), "{}", run.describe());
    let _ = PSH_ACK;
}

/// A download of `body` from port 80, the response cut into `mss`-byte segments; `shape` may
/// reorder, duplicate or drop the server's data segments (numbered in send order) before the
/// capture is written. The client acknowledges, after every other captured segment, everything
/// sent up to the latest segment captured: it received the segments in order (reordering and
/// loss are the capture's), so its ACK can be captured before the data it acknowledges.
fn segmented_download(
    body: &[u8],
    mss: usize,
    shape: impl Fn(Vec<(usize, Vec<u8>)>) -> Vec<(usize, Vec<u8>)>,
) -> Vec<(u64, Vec<u8>)> {
    use support::carve::FIN_ACK;
    let (c, s, cp, sp) = ([10, 0, 0, 1], [10, 0, 0, 2], 40100u16, 80u16);
    let request = b"GET /big.bin HTTP/1.1\r\nHost: example\r\n\r\n";
    let response = [
        format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len()).as_bytes(),
        body,
    ]
    .concat();
    let (cseq, sseq) = (7000u32, 4_294_960_000u32); // the server's sequence numbers wrap mid-body
    let cdata = cseq + 1;
    let cend = cdata + request.len() as u32;
    let sdata = sseq.wrapping_add(1);
    let mut frames = vec![
        eth_ipv4(c, s, 6, &tcp(cp, sp, cseq, 0, SYN, b"")),
        eth_ipv4(s, c, 6, &tcp(sp, cp, sseq, cdata, SYN | ACK, b"")),
        eth_ipv4(c, s, 6, &tcp(cp, sp, cdata, sdata, ACK, b"")),
        eth_ipv4(c, s, 6, &tcp(cp, sp, cdata, sdata, PSH_ACK, request)),
    ];
    let mut segs = Vec::new();
    let mut ends = Vec::new();
    let mut off = 0usize;
    while off < response.len() {
        let n = mss.min(response.len() - off);
        let seq = sdata.wrapping_add(off as u32);
        segs.push((
            segs.len(),
            eth_ipv4(s, c, 6, &tcp(sp, cp, seq, cend, PSH_ACK, &response[off..off + n])),
        ));
        off += n;
        ends.push(off);
    }
    let shaped = shape(segs);
    let mut latest = 0usize;
    for (k, (i, seg)) in shaped.into_iter().enumerate() {
        frames.push(seg);
        latest = latest.max(i);
        if k % 2 == 1 {
            let acked = ends[latest];
            frames.push(eth_ipv4(
                c,
                s,
                6,
                &tcp(cp, sp, cend, sdata.wrapping_add(acked as u32), ACK, b""),
            ));
        }
    }
    let send = sdata.wrapping_add(response.len() as u32);
    frames.push(eth_ipv4(c, s, 6, &tcp(cp, sp, cend, send, ACK, b"")));
    frames.push(eth_ipv4(c, s, 6, &tcp(cp, sp, cend, send, FIN_ACK, b"")));
    frames.push(eth_ipv4(s, c, 6, &tcp(sp, cp, send, cend + 1, FIN_ACK, b"")));
    frames
        .into_iter()
        .enumerate()
        .map(|(i, f)| (1_600_000_000_000_000 + i as u64 * 100, f))
        .collect()
}

fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 % 253) as u8).collect()
}

#[test]
fn reordered_and_duplicated_segments_still_give_the_exact_file() {
    let body = pattern(200_000);
    let want: String = Sha256::digest(&body).iter().map(|b| format!("{b:02x}")).collect();
    let pkts = segmented_download(&body, 1400, |segs| {
        let mut out = Vec::new();
        let mut it = segs.into_iter();
        while let Some(seg) = it.next() {
            match seg.0 % 10 {
                // Swap this segment with the next one.
                3 => {
                    if let Some(next) = it.next() {
                        out.push(next);
                    }
                    out.push(seg);
                }
                // Send it twice.
                7 => {
                    out.push(seg.clone());
                    out.push(seg);
                }
                _ => out.push(seg),
            }
        }
        out
    });
    let tmp = TempDir::new("bad");
    let path = tmp.path("reordered.pcap");
    write_pcap(&path, 1, &pkts);
    let run = run_read(&path, &[]);
    assert_eq!(run.code, Some(0), "{}", run.describe());
    let rec = run
        .records
        .iter()
        .find(|r| r["size"] == 200_000)
        .unwrap_or_else(|| panic!("{}", run.describe()));
    assert_eq!(rec["sha256"], want.as_str(), "{}", run.describe());
    assert_eq!(rec["missing_bytes"], 0);
    assert!(run.stderr.contains("tcp.out_of_order_segments="), "{}", run.describe());
}

#[test]
fn a_segment_lost_by_the_capture_is_counted_as_missing_bytes() {
    let body = pattern(50_000);
    let pkts = segmented_download(&body, 1000, |mut segs| {
        segs.remove(20);
        segs
    });
    let tmp = TempDir::new("bad");
    let path = tmp.path("lossy.pcap");
    write_pcap(&path, 1, &pkts);
    let run = run_read(&path, &[]);
    assert_eq!(run.code, Some(0), "{}", run.describe());
    assert_eq!(run.records.len(), 1, "{}", run.describe());
    let rec = &run.records[0];
    assert_eq!(rec["missing_bytes"], 1000, "{}", run.describe());
    assert!(
        rec["sha256"].is_null(),
        "no hash of a file with a hole\n{}",
        run.describe()
    );
    assert_eq!(rec["size"], 49_000, "bytes seen");
    assert!(run.stderr.contains("1 gaps (1.0 kB missing)"), "{}", run.describe());
}

/// `xdpcarve -r ... --files-log - | head -1`: the reader closing standard output is its choice,
/// not a loss; the run ends normally, quietly (as other Unix tools do).
#[test]
fn a_reader_that_closes_stdout_is_not_a_failure() {
    let sample = support::repo_root().join("bench/samples/sample.pcap");
    let mut child = std::process::Command::new(support::xdpcarve_bin())
        .arg("-r")
        .arg(&sample)
        .args(["--files-log", "-"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The reader goes away before the first record.
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("ERROR") && !stderr.contains("error:"), "{stderr}");
    assert!(stderr.contains("files_log_errors=0"), "{stderr}");
}
