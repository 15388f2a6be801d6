//! Link types beyond Ethernet, end to end: the same HTTP download (full handshake, a
//! Content-Length body) framed as 802.11 (plain and behind radiotap, with an FCS) and as NFLOG
//! must be carved; a pcapng interface of an unsupported link type is skipped and counted while
//! the other interface is read.

mod support;

use std::path::Path;

use support::carve::{pcap_bytes, run_read, tcp_conversation, write_pcap, TempDir};
use support::sha256_hex;

const BODY: &[u8] = b"carved through another link layer\n";

/// The exchange as Ethernet frames, with microsecond timestamps.
fn http_exchange() -> Vec<(u64, Vec<u8>)> {
    let response = [
        format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nContent-Type: text/plain\r\n\r\n",
            BODY.len()
        )
        .as_bytes(),
        BODY,
    ]
    .concat();
    tcp_conversation(
        40000,
        80,
        &[
            (true, b"GET /link.txt HTTP/1.1\r\nHost: example\r\n\r\n"),
            (false, &response),
        ],
    )
}

/// Re-frames every Ethernet frame of the exchange: `wrap(ethertype, ip packet)`.
fn reframed(wrap: impl Fn(u16, &[u8]) -> Vec<u8>) -> Vec<(u64, Vec<u8>)> {
    http_exchange()
        .into_iter()
        .map(|(ts, eth)| (ts, wrap(u16::from_be_bytes([eth[12], eth[13]]), &eth[14..])))
        .collect()
}

/// An 802.11 QoS data frame with LLC/SNAP: to the AP from the client (10.0.0.1), from it otherwise.
fn wifi_frame(ethertype: u16, ip: &[u8]) -> Vec<u8> {
    let to_ds = ip[12..16] == [10, 0, 0, 1];
    let mut f = vec![0x88, if to_ds { 0x01 } else { 0x02 }, 0x2c, 0x00];
    for a in 1..=3u8 {
        f.extend_from_slice(&[0x02, 0, 0, 0, 0, a]);
    }
    f.extend_from_slice(&[0x10, 0x00, 0x00, 0x00]); // sequence control, QoS control (TID 0)
    f.extend_from_slice(&[0xaa, 0xaa, 0x03, 0x00, 0x00, 0x00]);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(ip);
    f
}

/// Radiotap (TSFT, Flags = FCS included, Rate) + the 802.11 frame + a 4-byte FCS.
fn radiotap_frame(ethertype: u16, ip: &[u8]) -> Vec<u8> {
    let mut f = vec![0, 0, 24, 0];
    f.extend_from_slice(&0x0000_0007u32.to_le_bytes()); // TSFT, Flags, Rate
    f.extend_from_slice(&1_234_567u64.to_le_bytes());
    f.extend_from_slice(&[0x10, 0x0c]); // Flags: FCS at end; Rate 6 Mb/s
    f.extend_from_slice(&[0; 6]); // padding to it_len
    let wifi = wifi_frame(ethertype, ip);
    f.extend_from_slice(&wifi);
    f.extend_from_slice(&crc32(&wifi).to_le_bytes());
    f
}

/// IEEE 802.3 CRC-32, as the 802.11 FCS (bitwise: the frames are small).
fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// NFLOG (AF_INET, group 5): packet header, prefix and payload TLVs, little-endian.
fn nflog_frame(ethertype: u16, ip: &[u8]) -> Vec<u8> {
    let mut f = vec![2, 0, 0, 5];
    let mut tlv = |t: u16, v: &[u8]| {
        f.extend_from_slice(&(4 + v.len() as u16).to_le_bytes());
        f.extend_from_slice(&t.to_le_bytes());
        f.extend_from_slice(v);
        f.extend(std::iter::repeat_n(0, (4 - v.len() % 4) % 4));
    };
    let mut hdr = ethertype.to_be_bytes().to_vec();
    hdr.extend_from_slice(&[1, 0]); // hook NF_INET_LOCAL_IN
    tlv(1, &hdr);
    tlv(10, b"web\0");
    tlv(9, ip);
    f
}

/// Carves `path` and asserts the body is found, whole.
fn assert_carved(path: &Path) -> String {
    let run = run_read(path, &[]);
    assert_eq!(run.code, Some(0), "{}", run.describe());
    let rec = run
        .records
        .iter()
        .find(|r| r["sha256"] == sha256_hex(BODY).as_str())
        .unwrap_or_else(|| panic!("body not carved from {}\n{}", path.display(), run.describe()));
    assert_eq!(rec["missing_bytes"], 0, "{}", run.describe());
    assert_eq!(rec["size"], BODY.len(), "{}", run.describe());
    run.stderr
}

#[test]
fn ieee80211_data_frames_are_carved() {
    let tmp = TempDir::new("link");
    let path = tmp.path("wifi.pcap");
    write_pcap(&path, 105, &reframed(wifi_frame));
    let stderr = assert_carved(&path);
    assert!(!stderr.contains("malformed"), "{stderr}");
}

#[test]
fn radiotap_frames_with_an_fcs_are_carved() {
    let tmp = TempDir::new("link");
    let path = tmp.path("radiotap.pcap");
    let mut pkts = reframed(radiotap_frame);
    // A beacon (management) on the way: skipped as non-IP.
    let mut beacon = radiotap_frame(0x0800, &[0x45; 20]);
    beacon[24] = 0x80;
    pkts.insert(1, (pkts[0].0, beacon));
    write_pcap(&path, 127, &pkts);
    let stderr = assert_carved(&path);
    assert!(stderr.contains("capture.non_ip=1"), "{stderr}");
}

#[test]
fn nflog_records_are_carved() {
    let tmp = TempDir::new("link");
    let path = tmp.path("nflog.pcap");
    write_pcap(&path, 239, &reframed(nflog_frame));
    assert_carved(&path);
}

fn pcapng_block(btype: u32, body: &[u8]) -> Vec<u8> {
    let pad = (4 - body.len() % 4) % 4;
    let len = (12 + body.len() + pad) as u32;
    let mut b = btype.to_le_bytes().to_vec();
    b.extend_from_slice(&len.to_le_bytes());
    b.extend_from_slice(body);
    b.extend(std::iter::repeat_n(0, pad));
    b.extend_from_slice(&len.to_le_bytes());
    b
}

/// A little-endian pcapng: one section, an interface per link type (microsecond timestamps),
/// and enhanced packet blocks `(interface, µs, frame)`.
fn pcapng_bytes(linktypes: &[u16], packets: &[(u32, u64, Vec<u8>)]) -> Vec<u8> {
    let mut shb = 0x1a2b_3c4du32.to_le_bytes().to_vec();
    shb.extend_from_slice(&[1, 0, 0, 0]);
    shb.extend_from_slice(&(-1i64).to_le_bytes());
    let mut b = pcapng_block(0x0a0d_0d0a, &shb);
    for lt in linktypes {
        let mut idb = lt.to_le_bytes().to_vec();
        idb.extend_from_slice(&[0, 0]);
        idb.extend_from_slice(&65535u32.to_le_bytes());
        b.extend(pcapng_block(1, &idb));
    }
    for (iface, ts, data) in packets {
        let mut epb = Vec::new();
        for v in [
            *iface,
            (ts >> 32) as u32,
            *ts as u32,
            data.len() as u32,
            data.len() as u32,
        ] {
            epb.extend_from_slice(&v.to_le_bytes());
        }
        epb.extend_from_slice(data);
        b.extend(pcapng_block(6, &epb));
    }
    b
}

#[test]
fn pcapng_unsupported_interface_is_skipped_and_counted() {
    let tmp = TempDir::new("link");
    let path = tmp.path("mixed.pcapng");
    // Interface 0: USER0 (147), unsupported; interface 1: Ethernet. Their packets interleave, the
    // unsupported interface's first.
    let mut pkts = Vec::new();
    for (ts, frame) in http_exchange() {
        pkts.push((0, ts, vec![0x5a; 40]));
        pkts.push((1, ts, frame));
    }
    let n = pkts.len() / 2;
    std::fs::write(&path, pcapng_bytes(&[147, 1], &pkts)).unwrap();
    let stderr = assert_carved(&path);
    assert!(
        stderr.contains(&format!("capture.unsupported_link_packets={n}")),
        "{stderr}"
    );
    // One warning when the interface is first seen, one with its count at the end.
    let first = "skipping packets: unsupported link type USER0 (147) on interface 0";
    assert_eq!(stderr.matches(first).count(), 1, "{stderr}");
    assert!(
        stderr.contains(&format!(
            "{n} packets skipped: unsupported link type USER0 (147) on interface 0"
        )),
        "{stderr}"
    );
}

#[test]
fn nothing_readable_is_a_clear_error() {
    let tmp = TempDir::new("link");
    // A classic pcap of an unsupported link type.
    let path = tmp.path("user0.pcap");
    write_pcap(&path, 147, &[(1, vec![0u8; 60])]);
    let run = run_read(&path, &[]);
    assert!(run.clean(), "{}", run.describe());
    assert_eq!(run.code, Some(1), "{}", run.describe());
    for want in [
        "USER0 (147) is not supported",
        "Ethernet (1)",
        "IEEE 802.11 (105)",
        "IEEE 802.11 with radiotap (127)",
        "NFLOG (Linux netfilter log) (239)",
    ] {
        assert!(run.stderr.contains(want), "{want:?}\n{}", run.describe());
    }
    // A pcapng whose packets are all of unsupported interfaces.
    let path = tmp.path("user0.pcapng");
    std::fs::write(&path, pcapng_bytes(&[147], &[(0, 1, vec![0u8; 60])])).unwrap();
    let run = run_read(&path, &[]);
    assert!(run.clean(), "{}", run.describe());
    assert_eq!(run.code, Some(1), "{}", run.describe());
    assert!(
        run.stderr.contains("USER0 (147) is not supported"),
        "{}",
        run.describe()
    );
}

#[test]
fn hostile_wifi_and_nflog_frames_do_not_stop_the_read() {
    // Every prefix of every frame, then the intact exchange: the cut frames are skipped (counted
    // as malformed or non-IP), never a crash, and the file is still carved.
    let tmp = TempDir::new("link");
    for (linktype, frame) in [
        (105u32, wifi_frame as fn(u16, &[u8]) -> Vec<u8>),
        (127, radiotap_frame),
        (239, nflog_frame),
    ] {
        let whole = reframed(frame);
        let mut pkts: Vec<(u64, Vec<u8>)> = Vec::new();
        let syn = &whole[0].1;
        for cut in 0..syn.len() {
            pkts.push((whole[0].0 - 1000, syn[..cut].to_vec()));
        }
        pkts.extend(whole);
        let path = tmp.path(&format!("cut-{linktype}.pcap"));
        std::fs::write(&path, pcap_bytes(linktype, 65535, &pkts)).unwrap();
        let stderr = assert_carved(&path);
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}
