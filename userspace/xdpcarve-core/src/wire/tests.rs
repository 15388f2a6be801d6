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
    assert_eq!(LinkType::from_linktype(105), None);
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
