use super::wifi::{RADIOTAP_FLAG_BAD_FCS, RADIOTAP_FLAG_DATAPAD, RADIOTAP_FLAG_FCS};
use super::*;

/// TCP header (20 bytes + `opts`) and payload.
fn tcp_bytes(sport: u16, dport: u16, seq: u32, flags: u8, opts: &[u8], payload: &[u8]) -> Vec<u8> {
    assert_eq!(opts.len() % 4, 0);
    let mut t = Vec::new();
    t.extend_from_slice(&sport.to_be_bytes());
    t.extend_from_slice(&dport.to_be_bytes());
    t.extend_from_slice(&seq.to_be_bytes());
    t.extend_from_slice(&7u32.to_be_bytes());
    t.push(((20 + opts.len()) / 4) as u8 * 16);
    t.push(flags);
    t.extend_from_slice(&[0xff, 0xff, 0, 0, 0, 0]);
    t.extend_from_slice(opts);
    t.extend_from_slice(payload);
    t
}

fn ipv4(proto: u8, opts: &[u8], l4: &[u8]) -> Vec<u8> {
    let hl = 20 + opts.len();
    let total = (hl + l4.len()) as u16;
    let mut p = vec![
        0x40 | (hl / 4) as u8,
        0,
        (total >> 8) as u8,
        total as u8,
        0,
        1,
        0x40,
        0,
        64,
        proto,
        0,
        0,
    ];
    p.extend_from_slice(&[192, 0, 2, 1, 198, 51, 100, 2]);
    p.extend_from_slice(opts);
    p.extend_from_slice(l4);
    p
}

/// IPv6 with the given extension headers, each `(type, bytes)`; the chain ends in `proto`.
fn ipv6(exts: &[(u8, Vec<u8>)], proto: u8, l4: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    for (i, (_, bytes)) in exts.iter().enumerate() {
        let next = exts.get(i + 1).map_or(proto, |e| e.0);
        let mut b = bytes.clone();
        b[0] = next;
        body.extend(b);
    }
    body.extend_from_slice(l4);
    let first = exts.first().map_or(proto, |e| e.0);
    let mut p = vec![0x60, 0, 0, 0, (body.len() >> 8) as u8, body.len() as u8, first, 64];
    p.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
    p.extend_from_slice(&[0; 11]);
    p.push(1);
    p.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
    p.extend_from_slice(&[0; 11]);
    p.push(2);
    p.extend(body);
    p
}

fn ether(ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2];
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

fn vlan_tag(tpid_next: u16, vid: u16) -> Vec<u8> {
    let mut t = vid.to_be_bytes().to_vec();
    t.extend_from_slice(&tpid_next.to_be_bytes());
    t
}

fn seg() -> Vec<u8> {
    tcp_bytes(
        40000,
        80,
        1000,
        TcpFlags::ACK | TcpFlags::PSH,
        &[],
        b"GET / HTTP/1.1\r\n\r\n",
    )
}

fn check_http(p: &TcpPacket<'_>) {
    assert_eq!((p.sport, p.dport, p.seq, p.ack), (40000, 80, 1000, 7));
    assert_eq!(p.payload, b"GET / HTTP/1.1\r\n\r\n");
    assert_eq!(p.missing_tail, 0);
    assert!(p.flags.ack() && !p.flags.syn());
}

#[test]
fn ethernet_ipv4_tcp() {
    let f = ether(0x0800, &ipv4(6, &[], &seg()));
    let p = parse_tcp(LinkType::Ethernet, &f).unwrap();
    check_http(&p);
    assert_eq!(p.src.to_string(), "192.0.2.1");
    assert_eq!(p.dst.to_string(), "198.51.100.2");
    assert_eq!((p.vlan, p.vlan_tags), (None, 0));
}

#[test]
fn ipv4_options_tcp_options_and_ethernet_padding() {
    let opts = [0x02, 0x04, 0x05, 0xb4, 0x01, 0x01, 0x04, 0x02]; // MSS, NOP, NOP, SACK-permitted
    let l4 = tcp_bytes(40000, 80, 1000, TcpFlags::ACK, &opts, b"hi");
    let mut f = ether(0x0800, &ipv4(6, &[0x01, 0x01, 0x01, 0x00], &l4)); // IP options: NOPs, EOL
    f.extend_from_slice(&[0u8; 6]); // Ethernet trailer padding
    let p = parse_tcp(LinkType::Ethernet, &f).unwrap();
    assert_eq!(p.payload, b"hi");
}

#[test]
fn a_syns_window_scale_option_is_read_and_capped() {
    let syn = |opts: &[u8]| {
        let f = ether(
            0x0800,
            &ipv4(6, &[], &tcp_bytes(40000, 80, 1000, TcpFlags::SYN, opts, b"")),
        );
        let p = parse_tcp(LinkType::Ethernet, &f).unwrap();
        assert_eq!(p.window, 0xffff);
        p.window_scale
    };
    // MSS, SACK-permitted, NOP, window scale 7 (Linux's order).
    assert_eq!(syn(&[2, 4, 5, 0xb4, 4, 2, 1, 3, 3, 7, 0, 0]), Some(7));
    assert_eq!(
        syn(&[1, 3, 3, 15]),
        Some(14),
        "RFC 7323: a shift over 14 is taken as 14"
    );
    assert_eq!(syn(&[2, 4, 5, 0xb4]), None);
    // After the end of the list, or behind an option whose length runs past it: not read.
    assert_eq!(syn(&[0, 3, 3, 7]), None);
    assert_eq!(syn(&[8, 9, 3, 3]), None);
    assert_eq!(syn(&[8, 0, 3, 3]), None);
    // Not a SYN: the option is not looked at.
    let f = ether(
        0x0800,
        &ipv4(6, &[], &tcp_bytes(40000, 80, 1000, TcpFlags::ACK, &[1, 3, 3, 7], b"")),
    );
    assert_eq!(parse_tcp(LinkType::Ethernet, &f).unwrap().window_scale, None);
}

#[test]
fn vlan_and_qinq_tags_are_stripped() {
    let ip = ipv4(6, &[], &seg());
    let one = ether(0x8100, &[vlan_tag(0x0800, 0x2064), ip.clone()].concat()); // PCP 1, VID 100
    let p = parse_tcp(LinkType::Ethernet, &one).unwrap();
    check_http(&p);
    assert_eq!((p.vlan, p.vlan_tags), (Some(100), 1));
    let qinq = ether(
        0x88a8,
        &[vlan_tag(0x8100, 10), vlan_tag(0x0800, 20), ip.clone()].concat(),
    );
    let p = parse_tcp(LinkType::Ethernet, &qinq).unwrap();
    assert_eq!((p.vlan, p.vlan_tags), (Some(10), 2), "outer VLAN id");
    let mut deep = Vec::new();
    for _ in 0..MAX_VLAN_TAGS + 1 {
        deep.extend(vlan_tag(0x8100, 1));
    }
    deep.extend(ip);
    assert_eq!(
        parse_tcp(LinkType::Ethernet, &ether(0x8100, &deep)),
        Err(Skip::Malformed("too many vlan tags"))
    );
}

#[test]
fn linux_cooked_captures() {
    let ip = ipv4(6, &[], &seg());
    let mut sll = vec![0, 0, 0, 1, 0, 6, 1, 2, 3, 4, 5, 6, 0, 0, 0x08, 0x00];
    sll.extend_from_slice(&ip);
    check_http(&parse_tcp(LinkType::LinuxSll, &sll).unwrap());
    let mut sll2 = vec![0x08, 0x00, 0, 0, 0, 0, 0, 3, 0, 1, 0, 6, 1, 2, 3, 4, 5, 6, 0, 0];
    sll2.extend_from_slice(&ip);
    check_http(&parse_tcp(LinkType::LinuxSll2, &sll2).unwrap());
    assert!(matches!(
        parse_tcp(LinkType::LinuxSll2, &sll2[..12]),
        Err(Skip::Malformed(_))
    ));
}

#[test]
fn raw_and_loopback_link_types() {
    let v4 = ipv4(6, &[], &seg());
    let v6 = ipv6(&[], 6, &seg());
    for link in [LinkType::Raw, LinkType::Ipv4] {
        check_http(&parse_tcp(link, &v4).unwrap());
    }
    for link in [LinkType::Raw, LinkType::Ipv6] {
        check_http(&parse_tcp(link, &v6).unwrap());
    }
    // BSD loopback in host order (AF_INET6 = 30 on macOS) and OpenBSD LOOP in network order.
    let null = [30u32.to_le_bytes().to_vec(), v6.clone()].concat();
    let p = parse_tcp(LinkType::Null, &null).unwrap();
    check_http(&p);
    assert_eq!(p.src.to_string(), "2001:db8::1");
    let lo = [2u32.to_be_bytes().to_vec(), v4].concat();
    check_http(&parse_tcp(LinkType::Loop, &lo).unwrap());
    assert_eq!(LinkType::from_linktype(12), Some(LinkType::Raw));
    assert_eq!(LinkType::from_linktype(147), None);
}

#[test]
fn ipv6_extension_headers_are_skipped() {
    let hop = vec![0, 0, 1, 4, 0, 0, 0, 0]; // hop-by-hop, PadN
    let dst = vec![0, 1, 1, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]; // destination options, 16 bytes
    let routing = vec![0, 0, 0, 0, 0, 0, 0, 0]; // routing type 0, no segments left
    let atomic_frag = vec![0, 0, 0, 0, 0, 0, 0, 1]; // offset 0, M=0
    let f = ether(
        0x86dd,
        &ipv6(&[(0, hop), (60, dst), (43, routing), (44, atomic_frag)], 6, &seg()),
    );
    check_http(&parse_tcp(LinkType::Ethernet, &f).unwrap());
}

#[test]
fn fragments_are_skipped() {
    let mut v4 = ipv4(6, &[], &seg());
    v4[6] = 0x20; // more fragments
    assert_eq!(parse_tcp(LinkType::Raw, &v4), Err(Skip::Fragment));
    let mut v4 = ipv4(6, &[], &seg());
    v4[7] = 0x10; // offset 16
    assert_eq!(parse_tcp(LinkType::Raw, &v4), Err(Skip::Fragment));
    let frag = vec![0, 0, 0, 0x09, 0, 0, 0, 1]; // offset 1, M=1
    assert_eq!(
        parse_tcp(LinkType::Raw, &ipv6(&[(44, frag)], 6, &seg())),
        Err(Skip::Fragment)
    );
}

#[test]
fn non_ip_and_non_tcp() {
    assert_eq!(
        parse_tcp(LinkType::Ethernet, &ether(0x0806, &[0; 28])),
        Err(Skip::NonIp)
    );
    assert_eq!(
        parse_tcp(LinkType::Ethernet, &ether(0x0800, &ipv4(17, &[], &[0; 16]))),
        Err(Skip::NonTcp)
    );
    assert_eq!(parse_tcp(LinkType::Raw, &ipv6(&[], 58, &[0; 8])), Err(Skip::NonTcp));
    assert_eq!(parse_tcp(LinkType::Raw, &ipv6(&[], 59, &[])), Err(Skip::NonTcp));
}

#[test]
fn malformed_headers() {
    assert!(matches!(
        parse_tcp(LinkType::Ethernet, &[0; 10]),
        Err(Skip::Malformed(_))
    ));
    let mut v4 = ipv4(6, &[], &seg());
    v4[0] = 0x44; // header length 16
    assert!(matches!(parse_tcp(LinkType::Ipv4, &v4), Err(Skip::Malformed(_))));
    let mut v4 = ipv4(6, &[], &seg());
    v4[20 + 12] = 0x40; // TCP data offset 16
    assert!(matches!(parse_tcp(LinkType::Ipv4, &v4), Err(Skip::Malformed(_))));
    let v4 = ipv4(6, &[], &seg());
    assert!(matches!(parse_tcp(LinkType::Ipv4, &v4[..30]), Err(Skip::Malformed(_))));
    let hop = vec![0, 200, 0, 0, 0, 0, 0, 0]; // claims 1608 bytes
    assert!(matches!(
        parse_tcp(LinkType::Raw, &ipv6(&[(0, hop)], 6, &seg())),
        Err(Skip::Malformed(_))
    ));
}

#[test]
fn snaplen_cut_payload_is_reported() {
    let f = ether(0x0800, &ipv4(6, &[], &seg()));
    let cut = &f[..f.len() - 5];
    let p = parse_tcp(LinkType::Ethernet, cut).unwrap();
    assert_eq!(p.payload, b"GET / HTTP/1.");
    assert_eq!(p.missing_tail, 5);
    let f = ipv6(&[], 6, &seg());
    let p = parse_tcp(LinkType::Ipv6, &f[..f.len() - 3]).unwrap();
    assert_eq!(p.missing_tail, 3);
}

#[test]
fn tso_captures_with_zero_ip_length() {
    let mut v4 = ipv4(6, &[], &seg());
    v4[2] = 0;
    v4[3] = 0;
    check_http(&parse_tcp(LinkType::Ipv4, &v4).unwrap());
}

#[test]
fn gre_erspan_and_vxlan_tunnels_are_opened() {
    let inner = ether(0x8100, &[vlan_tag(0x0800, 42), ipv4(6, &[], &seg())].concat());
    // GRE transparent Ethernet bridging with a key.
    let gre_teb = [vec![0x20, 0x00, 0x65, 0x58, 0, 0, 0, 9], inner.clone()].concat();
    let outer = ether(0x0800, &ipv4(47, &[], &gre_teb));
    let p = parse_tcp(LinkType::Ethernet, &outer).unwrap();
    check_http(&p);
    assert_eq!(p.vlan, Some(42));
    // GRE carrying IPv6 directly.
    let gre_ip = [vec![0x00, 0x00, 0x86, 0xdd], ipv6(&[], 6, &seg())].concat();
    check_http(&parse_tcp(LinkType::Raw, &ipv4(47, &[], &gre_ip)).unwrap());
    // ERSPAN type II: GRE with sequence number, 8-byte ERSPAN header.
    let erspan2 = [
        vec![0x10, 0x00, 0x88, 0xbe, 0, 0, 0, 1],
        vec![0x10, 0, 0, 1, 0, 0, 0, 0],
        inner.clone(),
    ]
    .concat();
    check_http(&parse_tcp(LinkType::Raw, &ipv4(47, &[], &erspan2)).unwrap());
    // ERSPAN type III without the optional subheader.
    let erspan3 = [
        vec![0x10, 0x00, 0x22, 0xeb, 0, 0, 0, 1],
        vec![0x20, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0],
        inner.clone(),
    ]
    .concat();
    check_http(&parse_tcp(LinkType::Raw, &ipv4(47, &[], &erspan3)).unwrap());
    // VXLAN.
    let vx = [vec![0x08, 0, 0, 0, 0, 0, 1, 0], inner.clone()].concat();
    let udp = [vec![0xc0, 0x00, 0x12, 0xb5, 0, (8 + vx.len()) as u8, 0, 0], vx].concat();
    check_http(&parse_tcp(LinkType::Raw, &ipv4(17, &[], &udp)).unwrap());
    // PPTP's enhanced GRE (version 1) is not opened.
    let pptp = [vec![0x30, 0x81, 0x88, 0x0b, 0, 0, 0, 0, 0, 0, 0, 0], inner].concat();
    assert_eq!(parse_tcp(LinkType::Raw, &ipv4(47, &[], &pptp)), Err(Skip::NonTcp));
}

#[test]
fn nested_tunnels_are_bounded() {
    let mut pkt = ipv4(6, &[], &seg());
    for _ in 0..MAX_ENCAPSULATION + 1 {
        pkt = ipv4(47, &[], &[vec![0, 0, 0x08, 0x00], pkt].concat());
    }
    assert_eq!(
        parse_tcp(LinkType::Raw, &pkt),
        Err(Skip::Malformed("too many nested tunnels"))
    );
}

// --- 802.11, radiotap, NFLOG ---

/// An 802.11 data frame: frame control (subtype, flags), duration, three addresses, sequence
/// control, then `extra` (address 4, QoS control, HT control as the test wants) and the body.
fn wifi(subtype: u8, flags: u8, extra: &[u8], body: &[u8]) -> Vec<u8> {
    let mut f = vec![(subtype << 4) | (2 << 2), flags, 0x2c, 0];
    for a in 1..=3u8 {
        f.extend_from_slice(&[2, 0, 0, 0, 0, a]);
    }
    f.extend_from_slice(&[0x10, 0x00]); // sequence 1, fragment 0
    f.extend_from_slice(extra);
    f.extend_from_slice(body);
    f
}

fn snap(ethertype: u16, payload: &[u8]) -> Vec<u8> {
    [
        vec![0xaa, 0xaa, 0x03, 0, 0, 0],
        ethertype.to_be_bytes().to_vec(),
        payload.to_vec(),
    ]
    .concat()
}

/// A radiotap header with the given present word and field bytes (`it_len` filled in).
fn radiotap(present: &[u32], fields: &[u8]) -> Vec<u8> {
    let mut h = vec![0, 0, 0, 0];
    for p in present {
        h.extend_from_slice(&p.to_le_bytes());
    }
    h.extend_from_slice(fields);
    let len = h.len() as u16;
    h[2..4].copy_from_slice(&len.to_le_bytes());
    h
}

#[test]
fn ieee80211_data_frames_carry_llc_snap() {
    let ip = ipv4(6, &[], &seg());
    // Plain data, from the AP (FromDS).
    check_http(&parse_tcp(LinkType::Ieee80211, &wifi(0, 0x02, &[], &snap(0x0800, &ip))).unwrap());
    // QoS data: 2-byte QoS control (TID 5).
    check_http(&parse_tcp(LinkType::Ieee80211, &wifi(8, 0x01, &[5, 0], &snap(0x0800, &ip))).unwrap());
    // QoS data with the Order bit: + 4-byte HT control.
    let f = wifi(8, 0x81, &[0, 0, 0xaa, 0xbb, 0xcc, 0xdd], &snap(0x0800, &ip));
    check_http(&parse_tcp(LinkType::Ieee80211, &f).unwrap());
    // Order bit in a non-QoS data frame: no HT control.
    check_http(&parse_tcp(LinkType::Ieee80211, &wifi(0, 0x80, &[], &snap(0x0800, &ip))).unwrap());
    // 4-address (WDS/mesh) QoS data: address 4 before QoS control.
    let f = wifi(8, 0x03, &[2, 0, 0, 0, 0, 4, 0, 0], &snap(0x0800, &ip));
    check_http(&parse_tcp(LinkType::Ieee80211, &f).unwrap());
    // IPv6, and an 802.1Q tag behind SNAP; 802.1H bridge-tunnel OUI.
    let v6 = ipv6(&[], 6, &seg());
    check_http(&parse_tcp(LinkType::Ieee80211, &wifi(0, 0x01, &[], &snap(0x86dd, &v6))).unwrap());
    let tagged = snap(0x8100, &[vlan_tag(0x0800, 7), ip.clone()].concat());
    let f = wifi(0, 0x01, &[], &tagged);
    let p = parse_tcp(LinkType::Ieee80211, &f).unwrap();
    assert_eq!((p.vlan, p.vlan_tags), (Some(7), 1));
    let mut tunnel = snap(0x0800, &ip);
    tunnel[5] = 0xf8;
    check_http(&parse_tcp(LinkType::Ieee80211, &wifi(0, 0x01, &[], &tunnel)).unwrap());
}

#[test]
fn ieee80211_frames_without_readable_ip_are_skipped() {
    let body = snap(0x0800, &ipv4(6, &[], &seg()));
    let skip = |f: &[u8]| parse_tcp(LinkType::Ieee80211, f).unwrap_err();
    // Beacon (management), ACK (control, 10 bytes), null data, QoS null.
    let mut beacon = wifi(8, 0, &[], &[0; 40]);
    beacon[0] = 0x80;
    assert_eq!(skip(&beacon), Skip::NonIp);
    assert_eq!(skip(&[0xd4, 0, 0, 0, 2, 0, 0, 0, 0, 1]), Skip::NonIp);
    assert_eq!(skip(&wifi(4, 0x01, &[], &[])), Skip::NonIp);
    assert_eq!(skip(&wifi(12, 0x01, &[0, 0], &[])), Skip::NonIp);
    // Protected (encrypted), A-MSDU, EAPOL, non-SNAP LLC, protocol version 1.
    assert_eq!(skip(&wifi(8, 0x41, &[0, 0], &body)), Skip::NonIp);
    assert_eq!(skip(&wifi(8, 0x01, &[0x80, 0], &body)), Skip::NonIp);
    assert_eq!(skip(&wifi(0, 0x01, &[], &snap(0x888e, &[1, 3, 0, 0]))), Skip::NonIp);
    assert_eq!(
        skip(&wifi(0, 0x01, &[], &[0x42, 0x42, 0x03, 0, 0, 0, 0, 0])),
        Skip::NonIp
    );
    let mut pv1 = wifi(0, 0x01, &[], &body);
    pv1[0] |= 1;
    assert_eq!(skip(&pv1), Skip::NonIp);
    // Fragments: MoreFragments, or fragment number 1.
    assert_eq!(skip(&wifi(0, 0x05, &[], &body)), Skip::Fragment);
    let mut frag = wifi(0, 0x01, &[], &body);
    frag[22] |= 1;
    assert_eq!(skip(&frag), Skip::Fragment);
}

#[test]
fn ieee80211_truncated_frames_are_malformed_not_panics() {
    let f = wifi(
        8,
        0x83,
        &[2, 0, 0, 0, 0, 4, 0, 0, 1, 2, 3, 4],
        &snap(0x0800, &ipv4(6, &[], &seg())),
    );
    for cut in 0..f.len() {
        // Every prefix is skipped (or, once the TCP header is in, parsed); none panics.
        let r = parse_tcp(LinkType::Ieee80211, &f[..cut]);
        if cut < 36 + 8 + 20 + 20 {
            assert!(matches!(r, Err(Skip::Malformed(_))), "cut {cut}: {r:?}");
        }
    }
    assert!(matches!(
        parse_tcp(LinkType::Ieee80211, &wifi(0, 0x01, &[], &[0xaa, 0xaa, 0x03, 0])),
        Err(Skip::Malformed("802.11 llc/snap header"))
    ));
}

#[test]
fn radiotap_header_is_skipped_and_its_fcs_flag_honoured() {
    let frame = wifi(8, 0x01, &[0, 0], &snap(0x0800, &ipv4(6, &[], &seg())));
    let fcs = [0xde, 0xad, 0xbe, 0xef];
    // No Flags field: the frame has no FCS.
    let rt = radiotap(&[0x0000_0004], &[0x02, 0]); // Rate
    check_http(&parse_tcp(LinkType::Ieee80211Radiotap, &[rt, frame.clone()].concat()).unwrap());
    // Flags with the FCS bit: the last 4 bytes are cut off (they would be TCP payload otherwise).
    let mut tcp_frame = frame.clone();
    let ip_total = 20 + seg().len();
    let ip_at = tcp_frame.len() - ip_total;
    tcp_frame[ip_at + 2..ip_at + 4].copy_from_slice(&[0, 0]); // TSO-style zero length: no trim by IP
    let rt = radiotap(&[0x0000_0002], &[RADIOTAP_FLAG_FCS]);
    let f = [rt, tcp_frame, fcs.to_vec()].concat();
    check_http(&parse_tcp(LinkType::Ieee80211Radiotap, &f).unwrap());
    // TSFT (u64) before Flags, behind an extended present word: fields start at 12, TSFT is
    // aligned to 16, Flags follow at 24.
    let rt = radiotap(
        &[0x8000_0003, 0],
        &[0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, RADIOTAP_FLAG_FCS, 0],
    );
    let h = RadiotapHeader::new_checked(&rt).unwrap();
    assert_eq!(h.flags(), Some(RADIOTAP_FLAG_FCS));
    check_http(&parse_tcp(LinkType::Ieee80211Radiotap, &[rt, frame.clone(), fcs.to_vec()].concat()).unwrap());
    // Data padding: the 26-byte QoS header is padded to 28.
    let rt = radiotap(&[0x0000_0002], &[RADIOTAP_FLAG_DATAPAD]);
    let mut padded = frame[..26].to_vec();
    padded.extend_from_slice(&[0, 0]);
    padded.extend_from_slice(&frame[26..]);
    check_http(&parse_tcp(LinkType::Ieee80211Radiotap, &[rt, padded].concat()).unwrap());
    // A frame that failed its FCS check is not used.
    let rt = radiotap(&[0x0000_0002], &[RADIOTAP_FLAG_FCS | RADIOTAP_FLAG_BAD_FCS]);
    assert!(matches!(
        parse_tcp(LinkType::Ieee80211Radiotap, &[rt, frame, fcs.to_vec()].concat()),
        Err(Skip::Malformed(_))
    ));
}

#[test]
fn hostile_radiotap_headers_are_malformed_not_panics() {
    let frame = wifi(0, 0x01, &[], &snap(0x0800, &ipv4(6, &[], &seg())));
    let bad = |f: Vec<u8>| {
        let r = parse_tcp(LinkType::Ieee80211Radiotap, &f);
        assert!(matches!(r, Err(Skip::Malformed(_))), "{f:?}: {r:?}");
    };
    let ok = [radiotap(&[0x0000_0002], &[0]), frame.clone()].concat();
    check_http(&parse_tcp(LinkType::Ieee80211Radiotap, &ok).unwrap());
    for cut in 0..8 + 1 + 24 {
        bad(ok[..cut].to_vec());
    }
    // Version 1; it_len past the frame; it_len below 8.
    let mut v1 = ok.clone();
    v1[0] = 1;
    bad(v1);
    let mut long = ok.clone();
    long[2..4].copy_from_slice(&0xffffu16.to_le_bytes());
    bad(long);
    let mut short = ok.clone();
    short[2..4].copy_from_slice(&4u16.to_le_bytes());
    bad(short);
    // Extended present words running past it_len; Flags announced but beyond it_len.
    bad([radiotap(&[0x8000_0000, 0x8000_0000], &[]), frame.clone()].concat());
    bad([radiotap(&[0x0000_0003], &[0; 4]), frame.clone()].concat());
    bad([radiotap(&[0x0000_0002], &[]), frame.clone()].concat());
    // FCS flagged on a frame shorter than an FCS.
    bad([radiotap(&[0x0000_0002], &[RADIOTAP_FLAG_FCS]), vec![0x08, 0x01]].concat());
}

/// An NFLOG record: header, a packet-header TLV, a prefix TLV (odd length: padded), the payload
/// TLV; lengths and types in little- or big-endian order.
fn nflog(family: u8, big: bool, payload: &[u8]) -> Vec<u8> {
    let w = |v: u16| if big { v.to_be_bytes() } else { v.to_le_bytes() };
    let mut f = vec![family, 0, 0, 5];
    let tlv = |f: &mut Vec<u8>, t: u16, v: &[u8]| {
        f.extend_from_slice(&w(4 + v.len() as u16));
        f.extend_from_slice(&w(t));
        f.extend_from_slice(v);
        f.extend(std::iter::repeat_n(0, (4 - v.len() % 4) % 4));
    };
    tlv(&mut f, 1, &[0x08, 0x00, 3, 0]); // NFULA_PACKET_HDR: hw protocol, hook
    tlv(&mut f, 10, b"http-in\0"); // NFULA_PREFIX
    tlv(&mut f, 4, &[0, 0, 0, 2]); // NFULA_IFINDEX_INDEV
    tlv(&mut f, 9, payload); // NFULA_PAYLOAD
    f
}

#[test]
fn nflog_payload_tlv_is_the_ip_packet() {
    let v4 = ipv4(6, &[], &seg());
    let v6 = ipv6(&[], 6, &seg());
    for big in [false, true] {
        check_http(&parse_tcp(LinkType::Nflog, &nflog(2, big, &v4)).unwrap());
        let f = nflog(10, big, &v6);
        let p = parse_tcp(LinkType::Nflog, &f).unwrap();
        check_http(&p);
        assert!(p.is_ipv6());
        // AF_BRIDGE (7): the version nibble decides.
        check_http(&parse_tcp(LinkType::Nflog, &nflog(7, big, &v6)).unwrap());
    }
    let f = nflog(2, false, &v4);
    let h = NflogHeader::new_checked(&f).unwrap();
    assert_eq!((h.family(), h.version(), h.resource_id()), (2, 0, 5));
    assert_eq!(h.tlv(10).unwrap(), Some(&b"http-in\0"[..]));
    // Family and packet disagree: the IPv4 parser rejects it.
    assert!(matches!(
        parse_tcp(LinkType::Nflog, &nflog(2, false, &v6)),
        Err(Skip::Malformed("ipv4 version"))
    ));
    // A snap-length cut inside the payload TLV: the IP layer reports the missing tail.
    let pad = (4 - v4.len() % 4) % 4;
    let p = parse_tcp(LinkType::Nflog, &f[..f.len() - pad - 5]).unwrap();
    assert_eq!(p.missing_tail, 5);
}

#[test]
fn hostile_nflog_records_are_skipped_not_panics() {
    let f = nflog(2, false, &ipv4(6, &[], &seg()));
    for cut in 0..f.len() {
        let r = parse_tcp(LinkType::Nflog, &f[..cut]);
        assert!(r.is_err() || cut > f.len() - seg().len(), "cut {cut}: {r:?}");
    }
    // No payload TLV (logged with a zero copy range): nothing to read.
    assert_eq!(parse_tcp(LinkType::Nflog, &f[..4 + 8 + 12 + 8]), Err(Skip::NonIp));
    assert_eq!(parse_tcp(LinkType::Nflog, &[2, 0, 0, 0]), Err(Skip::NonIp));
    // A zero or too-small TLV length would loop forever; one past the end hides the payload.
    for len in [0u16, 3, 0x7fff] {
        let mut g = f.clone();
        g[4..6].copy_from_slice(&len.to_le_bytes());
        assert_eq!(
            parse_tcp(LinkType::Nflog, &g),
            Err(Skip::Malformed("nflog tlv")),
            "len {len}"
        );
    }
    assert!(matches!(
        parse_tcp(LinkType::Nflog, &[2, 0, 0]),
        Err(Skip::Malformed(_))
    ));
}

#[test]
fn new_link_types_are_mapped() {
    assert_eq!(LinkType::from_linktype(105), Some(LinkType::Ieee80211));
    assert_eq!(LinkType::from_linktype(127), Some(LinkType::Ieee80211Radiotap));
    assert_eq!(LinkType::from_linktype(239), Some(LinkType::Nflog));
    assert!(LinkType::supported_list().contains("NFLOG (Linux netfilter log) (239)"));
}
