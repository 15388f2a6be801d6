//! The TCP evasion policy (README "TCP evasion policy"): segments a host would treat otherwise
//! than a naive reassembler, each through the engine and the HTTP parser. Every case checks what
//! is logged and that the record is marked.

use super::*;
use crate::wire::{Checksum, IpRepr, TcpFlags, TcpRepr};
use sha2::{Digest, Sha256};

const SYN: u8 = TcpFlags::SYN;
const ACK: u8 = TcpFlags::ACK;
const PA: u8 = TcpFlags::PSH | TcpFlags::ACK;
const FA: u8 = TcpFlags::FIN | TcpFlags::ACK;
const RST: u8 = TcpFlags::RST;
const URG: u8 = TcpFlags::URG;

const CLIENT: [u8; 4] = [10, 0, 0, 1];
const SERVER: [u8; 4] = [10, 0, 0, 2];
const REQUEST: &[u8] = b"GET /f.bin HTTP/1.1\r\nHost: x\r\n\r\n";
const HEAD: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 16\r\n\r\n";
const BODY: &[u8] = b"0123456789abcdef";

/// One Ethernet/IPv4/TCP frame with right checksums (unless `bad_checksum`: the TCP one wrong).
#[derive(Clone)]
struct Seg<'a> {
    from_client: bool,
    seq: u32,
    ack: u32,
    flags: u8,
    ttl: u8,
    window: u16,
    /// The window scale option (sent only on a SYN).
    wscale: Option<u8>,
    urgent: u16,
    bad_checksum: bool,
    payload: &'a [u8],
}

impl Seg<'_> {
    fn frame(&self, cport: u16) -> Vec<u8> {
        let (src, dst, sport, dport) = match self.from_client {
            true => (CLIENT, SERVER, cport, 80),
            false => (SERVER, CLIENT, 80, cport),
        };
        let tcp = TcpRepr {
            window: self.window,
            urgent_pointer: self.urgent,
            window_scale: self.wscale,
            ..TcpRepr::new(sport, dport, self.seq, self.ack, self.flags, self.payload)
        };
        let ip = IpRepr {
            ttl: self.ttl,
            ..IpRepr::new(src, dst)
        };
        tcp.emit_frame(
            &ip,
            if self.bad_checksum {
                Checksum::WrongTcp
            } else {
                Checksum::Right
            },
        )
    }
}

/// A client on `cport` and the server, with their sequence numbers; offsets are relative to
/// each side's first data byte.
struct Peers<'e> {
    e: &'e mut Engine,
    cport: u16,
    cisn: u32,
    sisn: u32,
    /// Bytes each side sent in order so far (the next offset).
    csent: u32,
    ssent: u32,
    /// The window field each side sends, and the window scale option of its SYN.
    cwin: u16,
    swin: u16,
    cwscale: Option<u8>,
    swscale: Option<u8>,
}

impl<'e> Peers<'e> {
    fn new(e: &'e mut Engine, cport: u16, cisn: u32, sisn: u32) -> Self {
        Peers {
            e,
            cport,
            cisn,
            sisn,
            csent: 0,
            ssent: 0,
            cwin: 0xffff,
            swin: 0xffff,
            cwscale: None,
            swscale: None,
        }
    }
    fn seg(&self, from_client: bool, off: u32, flags: u8, payload: &'static [u8]) -> Seg<'static> {
        let (isn, peer_isn, peer_sent, window, wscale) = match from_client {
            true => (self.cisn, self.sisn, self.ssent, self.cwin, self.cwscale),
            false => (self.sisn, self.cisn, self.csent, self.swin, self.swscale),
        };
        let syn = flags & SYN != 0;
        Seg {
            from_client,
            seq: if syn {
                isn
            } else {
                isn.wrapping_add(1).wrapping_add(off)
            },
            ack: peer_isn.wrapping_add(1).wrapping_add(peer_sent),
            flags,
            ttl: 64,
            window,
            wscale: wscale.filter(|_| syn),
            urgent: 0,
            bad_checksum: false,
            payload,
        }
    }
    fn send(&mut self, s: &Seg<'_>) -> &mut Self {
        let f = s.frame(self.cport);
        self.e
            .handle_packet(Timestamp::from_secs(1_000), LinkType::Ethernet, &f);
        self
    }
    /// The next in-order bytes of a side.
    fn data(&mut self, from_client: bool, payload: &'static [u8]) -> &mut Self {
        let off = if from_client { self.csent } else { self.ssent };
        let s = self.seg(from_client, off, PA, payload);
        self.send(&s);
        self.advance(from_client, payload.len() as u32)
    }
    fn advance(&mut self, from_client: bool, n: u32) -> &mut Self {
        if from_client {
            self.csent += n;
        } else {
            self.ssent += n;
        }
        self
    }
    fn handshake(&mut self) -> &mut Self {
        let syn = self.seg(true, 0, SYN, b"");
        let synack = self.seg(false, 0, SYN | ACK, b"");
        let ack = self.seg(true, 0, ACK, b"");
        self.send(&syn).send(&synack).send(&ack)
    }
    /// The prelude of a download: the handshake, the request, and the response's head (the body
    /// is the test's).
    fn up_to_the_body(&mut self) -> &mut Self {
        self.handshake().data(true, REQUEST).data(false, HEAD)
    }
    fn close(&mut self) -> &mut Self {
        let f1 = self.seg(true, self.csent, FA, b"");
        self.send(&f1);
        let f2 = self.seg(false, self.ssent, FA, b"");
        self.send(&f2);
        self.e.finish(Timestamp::from_secs(2_000));
        self
    }
}

fn engine(cfg: impl FnOnce(&mut EngineConfig)) -> Engine {
    let mime = xdpcarve_mime::MimeConfig::default();
    let mut c = EngineConfig {
        protocols: ProtocolRegistry::new().register(&[80], move || xdpcarve_http::Http::new(Default::default(), mime)),
        hash_seed: Some(1),
        ..EngineConfig::default()
    };
    cfg(&mut c);
    Engine::new(c)
}

fn sha256(b: &[u8]) -> String {
    Sha256::digest(b).iter().map(|x| format!("{x:02x}")).collect()
}

/// The one record of a run: its SHA-256 and anomaly names.
fn only_record(e: &mut Engine) -> (Option<String>, Vec<&'static str>) {
    let recs: Vec<FileRecord> = e.drain_records().collect();
    assert_eq!(recs.len(), 1, "{recs:?}");
    (recs[0].sha256.clone(), recs[0].anomalies.names())
}

/// The body's last six bytes come twice out of order, first as junk, then as sent; the hole
/// before them fills last.
fn overlap_run(policy: OverlapPolicy) -> (Option<String>, Vec<&'static str>) {
    let mut e = engine(|c| c.overlap = policy);
    let mut p = Peers::new(&mut e, 40_000, 1000, 90_000);
    p.up_to_the_body();
    let base = p.ssent;
    let junk = p.seg(false, base + 10, PA, b"XXXXXX");
    let real = p.seg(false, base + 10, PA, &BODY[10..]);
    let fill = p.seg(false, base, PA, &BODY[..10]);
    p.send(&junk).send(&real).send(&fill).advance(false, 16).close();
    assert_eq!(e.tcp_stats().overlaps_conflicting, 6);
    only_record(&mut e)
}

#[test]
fn overlapping_copies_first_or_last_wins_and_the_file_is_marked() {
    let (first, anomalies) = overlap_run(OverlapPolicy::First);
    assert_eq!(first, Some(sha256(b"0123456789XXXXXX")));
    assert_eq!(anomalies, ["tcp_overlap_conflict"]);
    let (last, anomalies) = overlap_run(OverlapPolicy::Last);
    assert_eq!(last, Some(sha256(BODY)));
    assert_eq!(anomalies, ["tcp_overlap_conflict"]);
}

#[test]
fn same_bytes_twice_is_a_retransmission_not_an_anomaly() {
    let mut e = engine(|_| {});
    let mut p = Peers::new(&mut e, 40_000, 1000, 90_000);
    p.up_to_the_body();
    let base = p.ssent;
    let tail = p.seg(false, base + 10, PA, &BODY[10..]);
    let fill = p.seg(false, base, PA, &BODY[..10]);
    p.send(&tail)
        .send(&tail)
        .send(&fill)
        .send(&fill)
        .advance(false, 16)
        .close();
    assert_eq!(only_record(&mut e), (Some(sha256(BODY)), vec![]));
}

/// Junk with a bad checksum goes first, in order; the real bytes follow with a good one.
fn bad_checksum_insertion(e: &mut Engine, cport: u16) {
    let mut p = Peers::new(e, cport, 1000, 90_000);
    p.up_to_the_body();
    let base = p.ssent;
    let mut junk = p.seg(false, base, PA, b"XXXXXXXXXXXXXXXX");
    junk.bad_checksum = true;
    let real = p.seg(false, base, PA, BODY);
    p.send(&junk).send(&real).advance(false, 16).close();
}

#[test]
fn a_bad_checksum_segment_is_dropped_as_the_host_drops_it() {
    let mut e = engine(|c| c.checksums = ChecksumPolicy::Verify);
    bad_checksum_insertion(&mut e, 40_000);
    assert_eq!(only_record(&mut e), (Some(sha256(BODY)), vec!["tcp_bad_checksum"]));
    assert_eq!(e.tcp_stats().bad_checksum_dropped, 1);

    // auto verifies on a link where bad checksums are rare (here: after 40 good segments).
    let mut e = engine(|c| c.checksums = ChecksumPolicy::Auto);
    let mut warm = Peers::new(&mut e, 39_000, 5, 7);
    warm.handshake();
    for _ in 0..40 {
        warm.data(true, b"x");
    }
    bad_checksum_insertion(&mut e, 40_000);
    assert_eq!(only_record(&mut e), (Some(sha256(BODY)), vec!["tcp_bad_checksum"]));
    assert_eq!(e.tcp_stats().checksum_offload_assumed, 0);

    // ignore takes the junk, as tcpdump and Zeek would, and marks nothing it did not check.
    let mut e = engine(|c| c.checksums = ChecksumPolicy::Ignore);
    bad_checksum_insertion(&mut e, 40_000);
    assert_eq!(only_record(&mut e), (Some(sha256(b"XXXXXXXXXXXXXXXX")), vec![]));
}

#[test]
fn a_capture_with_offloaded_checksums_is_carved_whole_and_unmarked() {
    // Every segment the server sent has a bad checksum (captured on the server, whose NIC fills
    // them in): auto takes them after the first ones and marks nothing.
    let mut e = engine(|c| c.checksums = ChecksumPolicy::Auto);
    let mut p = Peers::new(&mut e, 40_000, 1000, 90_000);
    p.handshake().data(true, REQUEST);
    for part in [HEAD, BODY] {
        let mut s = p.seg(false, p.ssent, PA, part);
        s.bad_checksum = true;
        p.send(&s).advance(false, part.len() as u32);
    }
    p.close();
    assert_eq!(only_record(&mut e), (Some(sha256(BODY)), vec![]));
    let s = e.tcp_stats();
    assert_eq!((s.checksum_offload_assumed, s.bad_checksum_dropped), (1, 0));
    // The head's bad checksum made it offload; the body and both FINs were taken unchecked.
    assert_eq!((s.bad_checksum_taken, s.checksum_skipped_segments), (1, 3));
}

#[test]
fn a_copy_with_another_ttl_marks_the_file() {
    // Insertion (Ptacek and Newsham): junk with a TTL that expires before the host, then the real
    // bytes. The sensor cannot know which reached the host: the first is logged, and marked.
    let mut e = engine(|_| {});
    let mut p = Peers::new(&mut e, 40_000, 1000, 90_000);
    p.up_to_the_body();
    let base = p.ssent;
    let mut junk = p.seg(false, base, PA, b"XXXXXXXXXXXXXXXX");
    junk.ttl = 3;
    let real = p.seg(false, base, PA, BODY);
    p.send(&junk).send(&real).advance(false, 16).close();
    let (_, anomalies) = only_record(&mut e);
    assert_eq!(anomalies, ["tcp_ttl_changed"]);
    assert_eq!(e.tcp_stats().ttl_changed_segments, 1);
}

#[test]
fn a_rst_a_host_would_ignore_does_not_end_the_file() {
    let mut e = engine(|_| {});
    let mut p = Peers::new(&mut e, 40_000, 1000, 90_000);
    p.up_to_the_body().data(false, &BODY[..8]);
    // Out of the window (RFC 5961), then in the window but with another TTL (injected).
    let mut far = p.seg(false, p.ssent + (1 << 31), RST, b"");
    far.ack = 0;
    let mut injected = p.seg(false, p.ssent, RST, b"");
    injected.ttl = 9;
    p.send(&far).send(&injected).data(false, &BODY[8..]).close();
    assert_eq!(e.tcp_stats().rst_ignored, 2);
    assert_eq!(only_record(&mut e), (Some(sha256(BODY)), vec!["tcp_rst_ignored"]));

    // A RST in the window ends the connection: the file is logged as far as it came.
    let mut e = engine(|_| {});
    let mut p = Peers::new(&mut e, 40_000, 1000, 90_000);
    p.up_to_the_body().data(false, &BODY[..8]);
    let rst = p.seg(false, p.ssent, RST, b"");
    p.send(&rst);
    let recs: Vec<FileRecord> = e.drain_records().collect();
    assert_eq!((recs.len(), recs[0].size, recs[0].truncated), (1, 8, true));
    assert_eq!(recs[0].anomalies.names(), ["cl_short"]);
}

#[test]
fn data_on_a_syn_and_urgent_data_are_kept_and_marked() {
    // An upload whose request rides on the SYN (TCP Fast Open).
    const POST: &[u8] = b"POST /u HTTP/1.1\r\nHost: x\r\nContent-Length: 16\r\n\r\n0123456789abcdef";
    let mut e = engine(|_| {});
    let mut p = Peers::new(&mut e, 40_000, 1000, 90_000);
    let syn = p.seg(true, 0, SYN, POST);
    p.send(&syn).advance(true, POST.len() as u32);
    let synack = p.seg(false, 0, SYN | ACK, b"");
    p.send(&synack).data(false, b"HTTP/1.1 204 No Content\r\n\r\n").close();
    assert_eq!(only_record(&mut e), (Some(sha256(BODY)), vec!["tcp_syn_data"]));

    // Urgent data is kept inline.
    let mut e = engine(|_| {});
    let mut p = Peers::new(&mut e, 40_000, 1000, 90_000);
    p.up_to_the_body();
    let mut urgent = p.seg(false, p.ssent, PA | URG, BODY);
    urgent.urgent = 4;
    p.send(&urgent).advance(false, 16).close();
    assert_eq!(only_record(&mut e), (Some(sha256(BODY)), vec!["tcp_urgent_data"]));
}

#[test]
fn simultaneous_open_and_sequence_wraparound_lose_nothing() {
    // Both sides send a SYN, then both a SYN-ACK (RFC 793's simultaneous open).
    let mut e = engine(|_| {});
    let mut p = Peers::new(&mut e, 40_000, 1000, 90_000);
    let csyn = p.seg(true, 0, SYN, b"");
    let ssyn = p.seg(false, 0, SYN, b"");
    let csynack = p.seg(true, 0, SYN | ACK, b"");
    let ssynack = p.seg(false, 0, SYN | ACK, b"");
    p.send(&csyn).send(&ssyn).send(&csynack).send(&ssynack);
    p.data(true, REQUEST).data(false, HEAD).data(false, BODY).close();
    assert_eq!(only_record(&mut e), (Some(sha256(BODY)), vec![]));

    // The server's sequence numbers wrap inside the body, which also comes out of order.
    let mut e = engine(|_| {});
    let head = HEAD.len() as u32;
    let mut p = Peers::new(&mut e, 40_000, u32::MAX - 3, u32::MAX - head - 7);
    p.up_to_the_body();
    let base = p.ssent;
    let second = p.seg(false, base + 5, PA, &BODY[5..]);
    let first = p.seg(false, base, PA, &BODY[..5]);
    p.send(&second).send(&first).advance(false, 16).close();
    assert_eq!(only_record(&mut e), (Some(sha256(BODY)), vec![]));
}

/// Insertion through the receiver's window (Ptacek and Newsham): the client allows 48 bytes
/// (window 6, scaled by 2^3), the server sends the head and 9 body bytes up to that edge, then
/// 7 junk bytes past it (the client drops them), then, once the window opened, the real ones.
#[test]
fn data_past_the_receivers_window_is_taken_and_marked() {
    let mut e = engine(|_| {});
    let mut p = Peers::new(&mut e, 40_000, 1000, 90_000);
    (p.cwscale, p.swscale) = (Some(3), Some(1));
    p.handshake();
    p.cwin = 6;
    p.data(true, REQUEST).data(false, HEAD).data(false, &BODY[..9]);
    assert_eq!(p.ssent, 48, "the head and 9 bytes end at the window's edge");
    let junk = p.seg(false, p.ssent, PA, b"XXXXXXX");
    p.send(&junk);
    let window_opens = p.seg(true, p.csent, ACK, b"");
    let real = p.seg(false, p.ssent, PA, &BODY[9..]);
    p.send(&window_opens).send(&real).advance(false, 7).close();
    assert_eq!(e.tcp_stats().outside_advertised_window_bytes, 7);
    assert_eq!(
        only_record(&mut e),
        (Some(sha256(b"012345678XXXXXXX")), vec!["tcp_outside_window"])
    );
}

/// The client's window field is 1: 128 bytes scaled by 2^7, room for the whole response.
fn small_window_field_run(client_wscale: Option<u8>, server_wscale: Option<u8>, handshake: bool) -> Engine {
    let mut e = engine(|_| {});
    let mut p = Peers::new(&mut e, 40_000, 1000, 90_000);
    (p.cwscale, p.swscale) = (client_wscale, server_wscale);
    if handshake {
        p.handshake();
    }
    p.cwin = 1;
    p.data(true, REQUEST).data(false, HEAD).data(false, BODY).close();
    e
}

#[test]
fn a_window_scaled_transfer_is_not_marked_and_the_scale_needs_both_syns() {
    let mut e = small_window_field_run(Some(7), Some(0), true);
    assert_eq!(only_record(&mut e), (Some(sha256(BODY)), vec![]));
    assert_eq!(e.tcp_stats().outside_advertised_window_bytes, 0);

    // The SYN-ACK without the option: neither side scales (RFC 7323), the window is one byte.
    let mut e = small_window_field_run(Some(7), None, true);
    assert_eq!(only_record(&mut e), (Some(sha256(BODY)), vec!["tcp_outside_window"]));
    assert_eq!(
        e.tcp_stats().outside_advertised_window_bytes,
        (HEAD.len() + BODY.len() - 1) as u64
    );

    // Picked up mid-stream the scale is unknown: nothing is checked.
    let mut e = small_window_field_run(None, None, false);
    assert_eq!(e.tcp_stats().flows_midstream, 1);
    assert_eq!(only_record(&mut e), (Some(sha256(BODY)), vec![]));
    assert_eq!(e.tcp_stats().outside_advertised_window_bytes, 0);
}
