use super::*;
use std::sync::atomic::{AtomicU64, Ordering};

fn temp_file(bytes: &[u8]) -> (PathBuf, impl Drop) {
    static N: AtomicU64 = AtomicU64::new(0);
    let path = std::env::temp_dir().join(format!(
        "xdpcarve-capture-{}-{}.cap",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::write(&path, bytes).unwrap();
    struct Rm(PathBuf);
    impl Drop for Rm {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
    (path.clone(), Rm(path))
}

/// A classic pcap: `magic` written in the chosen byte order.
fn pcap(big: bool, nanos: bool, linktype: u32, snaplen: u32, pkts: &[(u32, u32, &[u8])]) -> Vec<u8> {
    let w32 = |v: u32| if big { v.to_be_bytes() } else { v.to_le_bytes() };
    let w16 = |v: u16| if big { v.to_be_bytes() } else { v.to_le_bytes() };
    let mut b = Vec::new();
    b.extend_from_slice(&w32(if nanos { 0xa1b2_3c4d } else { 0xa1b2_c3d4 }));
    b.extend_from_slice(&w16(2));
    b.extend_from_slice(&w16(4));
    b.extend_from_slice(&[0; 8]);
    b.extend_from_slice(&w32(snaplen));
    b.extend_from_slice(&w32(linktype));
    for (s, frac, data) in pkts {
        b.extend_from_slice(&w32(*s));
        b.extend_from_slice(&w32(*frac));
        b.extend_from_slice(&w32(data.len() as u32));
        b.extend_from_slice(&w32(data.len() as u32 + 10));
        b.extend_from_slice(data);
    }
    b
}

fn all(cap: &mut CaptureFile) -> Vec<(u64, LinkType, Vec<u8>, u32)> {
    let mut v = Vec::new();
    while let Some(p) = cap.next_packet().unwrap() {
        v.push((p.ts.as_nanos(), p.link, p.data.to_vec(), p.orig_len));
    }
    v
}

#[test]
fn classic_pcap_in_both_byte_orders_and_resolutions() {
    for big in [false, true] {
        for nanos in [false, true] {
            let bytes = pcap(big, nanos, 1, 65535, &[(10, 5, b"abc"), (11, 999, b"defg")]);
            let (path, _rm) = temp_file(&bytes);
            let mut cap = CaptureFile::open(&path).unwrap();
            assert_eq!(cap.format(), Format::Pcap);
            let pk = all(&mut cap);
            let unit = if nanos { 1 } else { 1000 };
            assert_eq!(
                pk,
                vec![
                    (10_000_000_000 + 5 * unit, LinkType::Ethernet, b"abc".to_vec(), 13),
                    (11_000_000_000 + 999 * unit, LinkType::Ethernet, b"defg".to_vec(), 14)
                ],
                "big={big} nanos={nanos}"
            );
            assert!(cap.truncated().is_none());
            assert_eq!(cap.bytes_read(), bytes.len() as u64);
        }
    }
}

#[test]
fn many_packets_cross_buffer_refills() {
    let payloads: Vec<Vec<u8>> = (0..3000u32)
        .map(|i| vec![(i % 251) as u8; 700 + (i as usize % 900)])
        .collect();
    let pkts: Vec<(u32, u32, &[u8])> = payloads
        .iter()
        .enumerate()
        .map(|(i, p)| (i as u32, 0, p.as_slice()))
        .collect();
    let bytes = pcap(false, false, 101, 65535, &pkts);
    assert!(bytes.len() > 3 * READ_CHUNK);
    let (path, _rm) = temp_file(&bytes);
    let mut cap = CaptureFile::open(&path).unwrap();
    let got = all(&mut cap);
    assert_eq!(got.len(), 3000);
    for (i, (_, link, data, _)) in got.iter().enumerate() {
        assert_eq!(*link, LinkType::Raw);
        assert_eq!(data, &payloads[i], "packet {i}");
    }
}

#[test]
fn truncation_is_a_warning_not_an_error() {
    let bytes = pcap(false, false, 1, 65535, &[(1, 0, b"first"), (2, 0, b"second-packet")]);
    for cut in [bytes.len() - 3, bytes.len() - 13 - 8] {
        let (path, _rm) = temp_file(&bytes[..cut]);
        let mut cap = CaptureFile::open(&path).unwrap();
        assert_eq!(all(&mut cap).len(), 1);
        let t = cap.truncated().expect("truncation reported");
        assert!(t.starts_with("capture truncated after 1 packets"), "{t}");
        // Reading on stays at the end.
        assert!(cap.next_packet().unwrap().is_none());
    }
}

#[test]
fn errors_name_the_problem() {
    let (path, _rm) = temp_file(b"");
    assert!(matches!(CaptureFile::open(&path), Err(CaptureError::Empty { .. })));
    let (path, _rm) = temp_file(b"GIF89a............................");
    let e = CaptureFile::open(&path).err().unwrap().to_string();
    assert!(e.contains("is not a pcap or pcapng file (magic 0x47494638)"), "{e}");
    let (path, _rm) = temp_file(&pcap(false, false, 1, 65535, &[])[..20]);
    assert!(matches!(
        CaptureFile::open(&path),
        Err(CaptureError::HeaderTruncated { len: 20, .. })
    ));
    let (path, _rm) = temp_file(&pcap(false, false, 147, 65535, &[]));
    let e = CaptureFile::open(&path).err().unwrap().to_string();
    assert!(e.contains("link type USER0 (147) is not supported"), "{e}");
    assert!(e.contains("Linux cooked v2 (SLL2) (276)"), "{e}");
    assert!(e.contains("IEEE 802.11 with radiotap (127)"), "{e}");
    // The cause is the error's source, not part of its own message, so a chain is printed once.
    let e = CaptureFile::open(std::env::temp_dir()).err().unwrap();
    let cause = std::error::Error::source(&e)
        .expect("the I/O error is the source")
        .to_string();
    assert!(
        e.to_string().starts_with("cannot read ") && !e.to_string().contains(&cause),
        "{e}"
    );
    assert!(cause.contains("is a directory"), "{cause}");
}

#[test]
fn hostile_record_length_is_rejected_before_buffering() {
    let mut bytes = pcap(false, false, 1, 65535, &[(1, 0, b"ok")]);
    bytes.extend_from_slice(&[0; 8]);
    bytes.extend_from_slice(&(64u32 << 20).to_le_bytes());
    bytes.extend_from_slice(&(64u32 << 20).to_le_bytes());
    let (path, _rm) = temp_file(&bytes);
    let mut cap = CaptureFile::open(&path).unwrap();
    assert!(cap.next_packet().unwrap().is_some());
    let e = cap.next_packet().err().unwrap();
    assert!(matches!(e, CaptureError::Corrupt { packets: 1, .. }), "{e}");
    assert!(cap.buf.len() <= 2 * READ_CHUNK, "no buffer sized by the hostile length");
}

// --- pcapng ---

struct Ng {
    big: bool,
    b: Vec<u8>,
}

impl Ng {
    fn new(big: bool) -> Ng {
        let mut ng = Ng { big, b: Vec::new() };
        ng.shb();
        ng
    }
    fn w32(&self, v: u32) -> [u8; 4] {
        if self.big {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    }
    fn block(&mut self, btype: u32, body: &[u8]) {
        let pad = (4 - body.len() % 4) % 4;
        let len = (12 + body.len() + pad) as u32;
        let (t, l) = (self.w32(btype), self.w32(len));
        self.b.extend_from_slice(&t);
        self.b.extend_from_slice(&l);
        self.b.extend_from_slice(body);
        self.b.extend(std::iter::repeat_n(0, pad));
        self.b.extend_from_slice(&l);
    }
    fn shb(&mut self) {
        let mut body = self.w32(0x1a2b_3c4d).to_vec();
        body.extend_from_slice(&if self.big { [0, 1, 0, 0] } else { [1, 0, 0, 0] });
        body.extend_from_slice(&[0xff; 8]);
        self.block(PCAPNG_SHB, &body);
    }
    fn idb(&mut self, linktype: u16, tsresol: Option<u8>) {
        let mut body = if self.big {
            linktype.to_be_bytes()
        } else {
            linktype.to_le_bytes()
        }
        .to_vec();
        body.extend_from_slice(&[0, 0]);
        body.extend_from_slice(&self.w32(0));
        if let Some(r) = tsresol {
            let code = if self.big {
                9u16.to_be_bytes()
            } else {
                9u16.to_le_bytes()
            };
            let one = if self.big {
                1u16.to_be_bytes()
            } else {
                1u16.to_le_bytes()
            };
            body.extend_from_slice(&code);
            body.extend_from_slice(&one);
            body.extend_from_slice(&[r, 0, 0, 0]);
            body.extend_from_slice(&[0, 0, 0, 0]);
        }
        self.block(PCAPNG_IDB, &body);
    }
    fn epb(&mut self, iface: u32, ticks: u64, data: &[u8]) {
        let mut body = Vec::new();
        for v in [
            iface,
            (ticks >> 32) as u32,
            ticks as u32,
            data.len() as u32,
            data.len() as u32,
        ] {
            body.extend_from_slice(&self.w32(v));
        }
        body.extend_from_slice(data);
        self.block(PCAPNG_EPB, &body);
    }
    fn spb(&mut self, data: &[u8]) {
        let mut body = self.w32(data.len() as u32).to_vec();
        body.extend_from_slice(data);
        self.block(PCAPNG_SPB, &body);
    }
}

#[test]
fn pcapng_interfaces_resolutions_and_byte_orders() {
    for big in [false, true] {
        let mut ng = Ng::new(big);
        ng.idb(1, None); // default microseconds
        ng.idb(113, Some(9)); // nanoseconds
        ng.idb(101, Some(0x80 | 20)); // 2^-20 s
        ng.block(0x0000_0004, &[0u8; 8]); // name resolution block: skipped
        ng.epb(0, 1_500_000, b"eth");
        ng.epb(1, 2_000_000_123, b"sll");
        ng.epb(2, 3 << 20, b"raw");
        ng.spb(b"simple");
        let (path, _rm) = temp_file(&ng.b);
        let mut cap = CaptureFile::open(&path).unwrap();
        assert_eq!(cap.format(), Format::PcapNg);
        let pk = all(&mut cap);
        assert_eq!(
            pk,
            vec![
                (1_500_000_000, LinkType::Ethernet, b"eth".to_vec(), 3),
                (2_000_000_123, LinkType::LinuxSll, b"sll".to_vec(), 3),
                (3_000_000_000, LinkType::Raw, b"raw".to_vec(), 3),
                // A simple packet block belongs to the first interface and has no timestamp.
                (3_000_000_000, LinkType::Ethernet, b"simple".to_vec(), 6),
            ],
            "big={big}"
        );
    }
}

#[test]
fn pcapng_new_section_resets_interfaces_and_may_switch_byte_order() {
    let mut a = Ng::new(false);
    a.idb(1, None);
    a.epb(0, 1, b"one");
    let mut b = Ng::new(true);
    b.idb(101, None);
    b.epb(0, 2, b"two");
    let (path, _rm) = temp_file(&[a.b, b.b].concat());
    let mut cap = CaptureFile::open(&path).unwrap();
    let pk = all(&mut cap);
    assert_eq!(
        pk.iter().map(|p| p.1).collect::<Vec<_>>(),
        vec![LinkType::Ethernet, LinkType::Raw]
    );
}

#[test]
fn pcapng_unsupported_interfaces_are_skipped_and_counted() {
    // The unsupported interface (USER0) is described first and has the first packet; the Ethernet
    // interface comes later, and packets of both interleave.
    let mut ng = Ng::new(false);
    ng.idb(147, None);
    ng.epb(0, 1, b"user0-a");
    ng.idb(1, None);
    ng.epb(1, 2, b"eth-a");
    ng.epb(0, 3, b"user0-b");
    ng.epb(1, 4, b"eth-b");
    let (path, _rm) = temp_file(&ng.b);
    let mut cap = CaptureFile::open(&path).unwrap();
    assert!(cap.skipped_interfaces().is_empty());
    assert_eq!(cap.next_packet().unwrap().unwrap().data, b"eth-a");
    // The entry is there as soon as the first packet is skipped (for the warning).
    assert_eq!(cap.skipped_interfaces().len(), 1);
    assert_eq!(cap.next_packet().unwrap().unwrap().data, b"eth-b");
    assert!(cap.next_packet().unwrap().is_none());
    assert_eq!(cap.packets_read(), 2);
    assert_eq!(cap.skipped_unsupported(), 2);
    assert_eq!(
        cap.skipped_interfaces(),
        [SkippedInterface {
            section: 0,
            interface: 0,
            linktype: 147,
            name: "USER0".into(),
            packets: 2,
        }]
    );
    assert_eq!(
        cap.skipped_interfaces()[0].to_string(),
        "unsupported link type USER0 (147) on interface 0"
    );
}

#[test]
fn pcapng_sections_are_counted_separately() {
    // Section 1: one unsupported interface only; section 2: Ethernet, then another unsupported one.
    let mut a = Ng::new(false);
    a.idb(195, None);
    a.epb(0, 1, b"zigbee");
    let mut b = Ng::new(true);
    b.idb(1, None);
    b.idb(300, None);
    b.epb(1, 2, b"unknown");
    b.epb(0, 3, b"eth");
    b.epb(1, 4, b"unknown");
    let (path, _rm) = temp_file(&[a.b, b.b].concat());
    let mut cap = CaptureFile::open(&path).unwrap();
    let pk = all(&mut cap);
    assert_eq!(pk.len(), 1);
    assert_eq!((pk[0].1, pk[0].2.as_slice()), (LinkType::Ethernet, &b"eth"[..]));
    let got: Vec<(String, u64)> = cap
        .skipped_interfaces()
        .iter()
        .map(|s| (s.to_string(), s.packets))
        .collect();
    assert_eq!(
        got,
        [
            ("unsupported link type IEEE802_15_4 (195) on interface 0".to_string(), 1),
            (
                "unsupported link type Unknown(300) (300) on interface 1 of section 2".to_string(),
                2
            ),
        ]
    );
    assert_eq!(cap.skipped_unsupported(), 3);
}

#[test]
fn pcapng_with_only_unsupported_packets_is_an_error() {
    let mut ng = Ng::new(false);
    ng.idb(147, None);
    ng.idb(1, None); // described, but without packets
    ng.epb(0, 1, b"user0");
    ng.epb(0, 2, b"user0");
    let (path, _rm) = temp_file(&ng.b);
    let mut cap = CaptureFile::open(&path).unwrap();
    let e = cap.next_packet().err().unwrap();
    assert!(matches!(e, CaptureError::UnsupportedLink { linktype: 147, .. }), "{e}");
    let e = e.to_string();
    assert!(e.contains("link type USER0 (147) is not supported"), "{e}");
    assert!(
        e.contains("IEEE 802.11 (105)") && e.contains("NFLOG (Linux netfilter log) (239)"),
        "{e}"
    );
    assert_eq!(cap.skipped_interfaces()[0].packets, 2);
    // A pcapng whose interfaces have no packets at all is an empty capture, not an error.
    let mut ng = Ng::new(false);
    ng.idb(147, None);
    let (path, _rm) = temp_file(&ng.b);
    let mut cap = CaptureFile::open(&path).unwrap();
    assert!(cap.next_packet().unwrap().is_none());
}

#[test]
fn wifi_and_nflog_link_types_are_read() {
    for (linktype, link) in [
        (105, LinkType::Ieee80211),
        (127, LinkType::Ieee80211Radiotap),
        (239, LinkType::Nflog),
    ] {
        let (path, _rm) = temp_file(&pcap(false, false, linktype, 65535, &[(1, 0, b"frame")]));
        let mut cap = CaptureFile::open(&path).unwrap();
        assert_eq!(all(&mut cap)[0].1, link);
        let mut ng = Ng::new(false);
        ng.idb(linktype as u16, None);
        ng.epb(0, 1, b"frame");
        let (path, _rm) = temp_file(&ng.b);
        let mut cap = CaptureFile::open(&path).unwrap();
        assert_eq!(all(&mut cap)[0].1, link);
    }
}

#[test]
fn pcapng_blocks_larger_than_the_read_buffer() {
    let mut ng = Ng::new(false);
    ng.idb(1, None);
    let big = vec![0x5a; 3 * READ_CHUNK + 123];
    ng.epb(0, 7, &big);
    ng.epb(0, 8, b"after");
    let (path, _rm) = temp_file(&ng.b);
    let mut cap = CaptureFile::open(&path).unwrap();
    let pk = all(&mut cap);
    assert_eq!(pk.len(), 2);
    assert_eq!(pk[0].2, big);
    assert_eq!(pk[1].2, b"after");
}

#[test]
fn pcapng_truncated_in_a_block() {
    let mut ng = Ng::new(false);
    ng.idb(1, None);
    ng.epb(0, 1, b"whole");
    ng.epb(0, 2, b"cut short");
    let (path, _rm) = temp_file(&ng.b[..ng.b.len() - 6]);
    let mut cap = CaptureFile::open(&path).unwrap();
    assert_eq!(all(&mut cap).len(), 1);
    assert!(cap.truncated().unwrap().contains("capture truncated after 1 packets"));
}

#[test]
fn pcapng_trailer_mismatch_is_corrupt() {
    let mut ng = Ng::new(false);
    ng.idb(1, None);
    ng.epb(0, 1, b"data");
    let n = ng.b.len();
    ng.b[n - 4..].copy_from_slice(&999u32.to_le_bytes());
    let (path, _rm) = temp_file(&ng.b);
    let mut cap = CaptureFile::open(&path).unwrap();
    assert!(matches!(cap.next_packet(), Err(CaptureError::Corrupt { .. })));
}

#[test]
fn tsresol_conversion() {
    assert_eq!(ticks_to_timestamp(5, 6, 0), Timestamp(5_000));
    assert_eq!(ticks_to_timestamp(5, 9, 0), Timestamp(5));
    assert_eq!(ticks_to_timestamp(5_000, 12, 0), Timestamp(5));
    assert_eq!(ticks_to_timestamp(1 << 10, 0x80 | 10, 0), Timestamp(1_000_000_000));
    assert_eq!(ticks_to_timestamp(1, 6, 2), Timestamp(2_000_001_000));
    assert_eq!(ticks_to_timestamp(u64::MAX, 0, 0), Timestamp(u64::MAX), "saturates");
    assert_eq!(ticks_to_timestamp(7, 0xff, 0), Timestamp(0));
}

#[test]
fn read_ahead_hands_over_every_byte_then_the_error_in_order() {
    /// `len` bytes counting up, then (if `fail`) an error.
    struct Source {
        at: usize,
        len: usize,
        fail: bool,
    }
    impl Read for Source {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.at == self.len {
                return if self.fail {
                    Err(io::Error::new(io::ErrorKind::UnexpectedEof, "cut short"))
                } else {
                    Ok(0)
                };
            }
            let n = buf.len().min(self.len - self.at).min(70_001);
            for (i, b) in buf[..n].iter_mut().enumerate() {
                *b = ((self.at + i) % 251) as u8;
            }
            self.at += n;
            Ok(n)
        }
    }
    let len = 3 * AHEAD_CHUNK + 12_345;
    for fail in [false, true] {
        let mut ahead = ReadAhead::spawn(Box::new(Source { at: 0, len, fail })).unwrap();
        let mut got = Vec::new();
        let result = ahead.read_to_end(&mut got);
        assert_eq!(got.len(), len);
        assert!(got.iter().enumerate().all(|(i, &b)| b == (i % 251) as u8));
        match result {
            Ok(_) => assert!(!fail),
            Err(e) => assert!(fail && e.kind() == io::ErrorKind::UnexpectedEof, "{e}"),
        }
    }
}
