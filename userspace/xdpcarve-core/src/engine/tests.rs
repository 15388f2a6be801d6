//! Engine tests through the real HTTP parser: packets in, records out.

use super::*;
use crate::wire::{Checksum, IpRepr, TcpFlags, TcpRepr};

const SYN: u8 = TcpFlags::SYN;
const ACK: u8 = TcpFlags::ACK;
const PA: u8 = TcpFlags::PSH | TcpFlags::ACK;
const FA: u8 = TcpFlags::FIN | TcpFlags::ACK;
const RST: u8 = TcpFlags::RST;

const CLIENT: [u8; 4] = [10, 0, 0, 1];
const SERVER: [u8; 4] = [10, 0, 0, 2];

/// An Ethernet/IPv4/TCP frame with checksums left zero (as offloaded captures hold them: under
/// `--checksums auto` the engine takes them once it assumed offload).
#[allow(clippy::too_many_arguments)] // every field of a TCP/IP header a test sets
fn frame(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, seq: u32, ack: u32, flags: u8, payload: &[u8]) -> Vec<u8> {
    TcpRepr::new(sport, dport, seq, ack, flags, payload).emit_frame(&IpRepr::new(src, dst), Checksum::Zero)
}

const REQUEST: &[u8] = b"GET /f.bin HTTP/1.1\r\nHost: x\r\n\r\n";
const BODY: &[u8] = b"0123456789abcdef";

fn response() -> Vec<u8> {
    [b"HTTP/1.1 200 OK\r\nContent-Length: 16\r\n\r\n".as_slice(), BODY].concat()
}

/// Drives one connection of the test: client port `cport` to server port 80.
struct Conv<'e> {
    e: &'e mut Engine,
    cport: u16,
    cseq: u32,
    sseq: u32,
    t: u64,
}

impl<'e> Conv<'e> {
    fn new(e: &'e mut Engine, cport: u16) -> Self {
        Conv {
            e,
            cport,
            cseq: 1000,
            sseq: 90_000,
            t: 1_000,
        }
    }
    fn at(&mut self, secs: u64) -> &mut Self {
        self.t = secs;
        self
    }
    fn ts(&self) -> Timestamp {
        Timestamp::from_secs(self.t)
    }
    fn client(&mut self, flags: u8, data: &[u8]) -> &mut Self {
        let f = frame(CLIENT, SERVER, self.cport, 80, self.cseq, self.sseq, flags, data);
        self.e.handle_packet(self.ts(), LinkType::Ethernet, &f);
        self.cseq = self
            .cseq
            .wrapping_add(data.len() as u32 + (flags & (SYN | TcpFlags::FIN) != 0) as u32);
        self
    }
    fn server(&mut self, flags: u8, data: &[u8]) -> &mut Self {
        let f = frame(SERVER, CLIENT, 80, self.cport, self.sseq, self.cseq, flags, data);
        self.e.handle_packet(self.ts(), LinkType::Ethernet, &f);
        self.sseq = self
            .sseq
            .wrapping_add(data.len() as u32 + (flags & (SYN | TcpFlags::FIN) != 0) as u32);
        self
    }
    fn handshake(&mut self) -> &mut Self {
        self.client(SYN, b"").server(SYN | ACK, b"").client(ACK, b"")
    }
}

/// HTTP on 80 and 8080, SMTP on 25 and 587, as the sensor runs them.
fn config() -> EngineConfig {
    let mime = xdpcarve_mime::MimeConfig::default();
    EngineConfig {
        protocols: ProtocolRegistry::new()
            .register(&[80, 8080], move || xdpcarve_http::Http::new(Default::default(), mime))
            .register(&[25, 587], move || xdpcarve_smtp::Smtp::new(Default::default(), mime)),
        ..EngineConfig::default()
    }
}

fn engine() -> Engine {
    Engine::new(config())
}

fn records(e: &mut Engine) -> Vec<FileRecord> {
    e.drain_records().collect()
}

#[test]
fn a_download_becomes_one_record_with_the_right_orientation() {
    let mut e = engine();
    let mut c = Conv::new(&mut e, 40000);
    c.handshake()
        .client(PA, REQUEST)
        .server(PA, &response())
        .client(FA, b"")
        .server(FA, b"");
    let recs = records(&mut e);
    assert_eq!(recs.len(), 1, "{recs:?}");
    let r = &recs[0];
    assert_eq!(
        (r.orig_h.as_str(), r.orig_p, r.resp_h.as_str(), r.resp_p),
        ("10.0.0.1", 40000, "10.0.0.2", 80)
    );
    assert_eq!(r.size, 16);
    assert_eq!(r.missing_bytes, 0);
    assert!(!r.is_orig);
    assert!(r.uid.starts_with('C'));
    let s = e.tcp_stats();
    assert_eq!((s.flows_created, s.flows_closed, s.flows_midstream), (1, 1, 0));
    assert_eq!(s.fin, 2);
    assert_eq!((s.handshakes, s.synack_without_syn, s.syn_without_synack), (1, 0, 0));
    let c = e.counters();
    assert_eq!(
        (c.get("http", "files"), c.get("smtp", "files"), c.get("files", "files")),
        (1, 0, 1)
    );
    assert_eq!(c.get("http", "requests"), 1);
}

#[test]
fn syn_ack_seen_first_still_orients_the_connection() {
    let mut e = engine();
    let mut c = Conv::new(&mut e, 40001);
    c.cseq += 1; // the SYN itself was not captured
    c.server(SYN | ACK, b"")
        .client(ACK, b"")
        .client(PA, REQUEST)
        .server(PA, &response());
    e.finish(Timestamp::from_secs(2000));
    let recs = records(&mut e);
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].orig_p, 40001);
    assert_eq!(e.tcp_stats().flows_midstream, 0);
}

#[test]
fn midstream_pickup_uses_the_app_port_as_responder() {
    let mut e = engine();
    let mut c = Conv::new(&mut e, 40002);
    // No handshake; the server's response is the first packet seen.
    c.server(PA, &response());
    c.client(PA, REQUEST).server(PA, &response());
    e.finish(Timestamp::from_secs(2000));
    let recs = records(&mut e);
    assert!(!recs.is_empty());
    assert!(recs.iter().all(|r| r.resp_p == 80 && r.orig_p == 40002), "{recs:?}");
    assert_eq!(e.tcp_stats().flows_midstream, 1);
}

#[test]
fn ports_without_a_parser_are_not_tracked() {
    let mut e = Engine::new(EngineConfig {
        detect_other_ports: false,
        ..config()
    });
    let f = frame(CLIENT, SERVER, 40003, 443, 1, 0, SYN, b"");
    e.handle_packet(Timestamp::from_secs(1), LinkType::Ethernet, &f);
    let f = frame(CLIENT, SERVER, 40003, 443, 2, 1, PA, REQUEST);
    e.handle_packet(Timestamp::from_secs(1), LinkType::Ethernet, &f);
    assert_eq!(e.active_flows(), 0);
    assert_eq!(e.tcp_stats().flows_ignored, 1);
}

#[test]
fn http_on_another_port_is_detected() {
    let mut e = engine();
    let f = frame(CLIENT, SERVER, 40004, 8888, 1, 0, SYN, b"");
    e.handle_packet(Timestamp::from_secs(1), LinkType::Ethernet, &f);
    let f = frame(CLIENT, SERVER, 40004, 8888, 2, 1, PA, REQUEST);
    e.handle_packet(Timestamp::from_secs(1), LinkType::Ethernet, &f);
    let f = frame(
        SERVER,
        CLIENT,
        8888,
        40004,
        1,
        2 + REQUEST.len() as u32,
        PA,
        &response(),
    );
    e.handle_packet(Timestamp::from_secs(1), LinkType::Ethernet, &f);
    e.finish(Timestamp::from_secs(2));
    let recs = records(&mut e);
    assert_eq!(recs.len(), 1, "{recs:?}");
    assert_eq!((recs[0].orig_p, recs[0].resp_p, recs[0].size), (40004, 8888, 16));
    assert_eq!(e.tcp_stats().flows_detected, 1);
}

#[test]
fn idle_connections_time_out_and_open_files_are_truncated() {
    let mut e = Engine::new(EngineConfig {
        idle_timeout: Duration::from_secs(60),
        ..config()
    });
    let mut c = Conv::new(&mut e, 40005);
    c.at(100).handshake().client(PA, REQUEST).server(PA, &response()[..45]);
    assert_eq!(e.active_flows(), 1);
    e.handle_timeout(Timestamp::from_secs(130));
    assert_eq!(e.active_flows(), 1, "not idle long enough");
    e.handle_timeout(Timestamp::from_secs(161));
    assert_eq!(e.active_flows(), 0);
    assert_eq!(e.tcp_stats().flows_timed_out, 1);
    let recs = records(&mut e);
    assert_eq!(recs.len(), 1);
    assert!(recs[0].truncated);
    assert_eq!(recs[0].truncated_reason.as_deref(), Some("timeout"));
}

#[test]
fn the_least_recently_active_flow_is_evicted_at_the_bound() {
    let mut e = Engine::new(EngineConfig {
        max_flows: 2,
        ..config()
    });
    Conv::new(&mut e, 41000)
        .at(1)
        .handshake()
        .client(PA, REQUEST)
        .server(PA, &response()[..45]);
    Conv::new(&mut e, 41001).at(2).handshake().client(PA, REQUEST);
    Conv::new(&mut e, 41000).at(3); // no packet: 41000 stays the oldest
    Conv::new(&mut e, 41002).at(4).handshake().client(PA, REQUEST);
    assert_eq!(e.active_flows(), 2);
    assert_eq!(e.tcp_stats().flows_evicted, 1);
    let recs = records(&mut e);
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].orig_p, 41000);
    assert_eq!(recs[0].truncated_reason.as_deref(), Some("evicted"));
}

#[test]
fn rst_flushes_and_closes() {
    let mut e = engine();
    let mut c = Conv::new(&mut e, 40006);
    c.handshake()
        .client(PA, REQUEST)
        .server(PA, &response())
        .server(RST, b"");
    assert_eq!(e.tcp_stats().rst, 1);
    assert_eq!(e.tcp_stats().flows_closed, 1);
    let recs = records(&mut e);
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].size, 16);
}

#[test]
fn stragglers_after_close_do_not_start_a_new_connection() {
    let mut e = engine();
    let mut c = Conv::new(&mut e, 40007);
    c.handshake()
        .client(PA, REQUEST)
        .server(PA, &response())
        .client(FA, b"")
        .server(FA, b"");
    // A retransmission of the response after both FINs.
    let f = frame(SERVER, CLIENT, 80, 40007, 90_001, 1000, PA, &response());
    e.handle_packet(Timestamp::from_secs(1001), LinkType::Ethernet, &f);
    assert_eq!(e.tcp_stats().flows_created, 1);
    e.finish(Timestamp::from_secs(1002));
    assert_eq!(records(&mut e).len(), 1);
    // Port reuse with a new SYN is a new connection.
    let mut e2 = engine();
    let mut c = Conv::new(&mut e2, 40008);
    c.handshake().client(PA, REQUEST).client(FA, b"").server(FA, b"");
    let mut c = Conv::new(&mut e2, 40008);
    c.cseq = 5000;
    c.at(1010).handshake().client(PA, REQUEST);
    assert_eq!(e2.tcp_stats().flows_created, 2);
}

#[test]
fn lost_segment_becomes_missing_bytes_via_the_ack() {
    let mut e = engine();
    let mut c = Conv::new(&mut e, 40009);
    c.handshake().client(PA, REQUEST);
    let resp = response();
    let (head, tail) = resp.split_at(resp.len() - 6);
    let (head, lost) = head.split_at(head.len() - 4);
    c.server(PA, head);
    c.sseq += lost.len() as u32; // lost by the capture
    c.server(PA, tail);
    c.client(ACK, b""); // acknowledges everything
    for _ in 0..crate::reassembly::ACK_GRACE_PACKETS {
        c.client(ACK, b"");
    }
    // The gap was reported once the grace ran out: the body completed without waiting for a close.
    let recs = records(&mut e);
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].missing_bytes, 4);
    assert!(recs[0].sha256.is_none(), "no hash of a file with holes");
    assert_eq!(e.tcp_stats().gap_bytes, 4);
}

#[test]
fn non_tcp_and_malformed_are_counted() {
    let mut e = engine();
    let mut arp = vec![0xffu8; 12];
    arp.extend_from_slice(&[0x08, 0x06]);
    arp.extend_from_slice(&[0; 28]);
    e.handle_packet(Timestamp::from_secs(1), LinkType::Ethernet, &arp);
    e.handle_packet(Timestamp::from_secs(1), LinkType::Ethernet, &[0; 5]);
    let mut udp = frame(CLIENT, SERVER, 1, 2, 0, 0, 0, b"");
    udp[23] = 17;
    e.handle_packet(Timestamp::from_secs(1), LinkType::Ethernet, &udp);
    let s = e.capture_stats();
    assert_eq!((s.packets, s.non_ip, s.malformed, s.non_tcp), (3, 1, 1, 1));
}

#[test]
fn backwards_time_is_counted_and_does_not_rewind_the_clock() {
    let mut e = engine();
    Conv::new(&mut e, 40010).at(100).handshake();
    Conv::new(&mut e, 40011).at(50).handshake();
    assert_eq!(e.capture_stats().time_went_backwards, 3);
    assert_eq!(e.embryonic_flows(), 2);
}

#[test]
fn finish_flushes_everything_and_frees_memory() {
    let mut e = engine();
    let mut c = Conv::new(&mut e, 40012);
    c.handshake().client(PA, REQUEST);
    let resp = response();
    let hdr_len = resp.len() - BODY.len();
    c.sseq += hdr_len as u32;
    c.server(PA, BODY); // out of order: headers not seen yet
    assert!(e.reassembly_memory() > 0);
    e.finish(Timestamp::from_secs(2000));
    assert_eq!(e.reassembly_memory(), 0);
    assert_eq!(e.active_flows(), 0);
}

#[test]
fn connection_state_stays_small() {
    // The flow table holds up to max_flows of these: keep per-connection state compact.
    let conn = std::mem::size_of::<Conn>();
    eprintln!(
        "Conn {conn} B, http {} B, smtp {} B, Stream {} B",
        std::mem::size_of::<xdpcarve_http::HttpParser>(),
        std::mem::size_of::<xdpcarve_smtp::SmtpParser>(),
        std::mem::size_of::<Stream>()
    );
    assert!(conn <= 512, "Conn is {conn} bytes");
    // An attempt (a SYN alone, a handshake) costs its slot and its share of the index: the
    // issue's bound is 128 bytes at the table's working load.
    let embryo = FlowTable::<Embryo>::bytes_per_flow();
    eprintln!(
        "attempt {embryo} B, connection {} B in the table",
        FlowTable::<Conn>::bytes_per_flow()
    );
    assert!(embryo <= 128, "an attempt costs {embryo} bytes");
    // Parsers hold bodies and MIME state boxed, so a connection between messages is small.
    for (name, size) in [
        ("http", std::mem::size_of::<xdpcarve_http::HttpParser>()),
        ("smtp", std::mem::size_of::<xdpcarve_smtp::SmtpParser>()),
    ] {
        assert!(size <= 512, "{name} parser is {size} bytes");
    }
}

#[test]
fn poll_timeout_names_the_next_idle_expiry() {
    let mut e = Engine::new(EngineConfig {
        idle_timeout: Duration::from_secs(60),
        ..config()
    });
    assert_eq!(e.poll_timeout(), None, "nothing tracked, nothing due");
    let mut c = Conv::new(&mut e, 40020);
    c.at(100).handshake().client(PA, REQUEST);
    assert_eq!(e.poll_timeout(), Some(Timestamp::from_secs(160)));
    // Due time not reached: nothing happens.
    e.handle_timeout(Timestamp::from_secs(159));
    assert_eq!(e.active_flows(), 1);
    // A driver that sleeps until the deadline and reports it closes the connection then.
    let due = e.poll_timeout().unwrap();
    e.handle_timeout(due);
    assert_eq!(e.active_flows(), 0);
    assert_eq!(e.tcp_stats().flows_timed_out, 1);
    assert_eq!(e.poll_timeout(), None);
}

#[test]
fn a_flow_gets_its_parser_with_its_first_byte_to_parse() {
    let mut e = engine();
    // A SYN flood: flows that never carry a byte cost no parser.
    for port in 41_000..41_100u16 {
        let f = frame(CLIENT, SERVER, port, 80, 1000, 0, SYN, b"");
        e.handle_packet(Timestamp::from_secs(1_000), LinkType::Ethernet, &f);
    }
    let mut c = Conv::new(&mut e, 40040);
    c.handshake();
    let (cseq, sseq) = (c.cseq, c.sseq);
    let parsers = |e: &Engine| {
        e.flows
            .ids()
            .into_iter()
            .filter(|&id| e.flows.get(id).parser.as_ref().is_some_and(|p| p.state.is_some()))
            .count()
    };
    assert_eq!((e.active_flows(), e.embryonic_flows()), (0, 101));
    assert_eq!(parsers(&e), 0, "no parser before any payload");
    let mut c = Conv {
        e: &mut e,
        cport: 40040,
        cseq,
        sseq,
        t: 1_001,
    };
    c.client(ACK, b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(parsers(&e), 1);
    assert_eq!((e.active_flows(), e.embryonic_flows()), (1, 100));
    e.finish(Timestamp::from_secs(1_002));
    let s = e.tcp_stats();
    assert_eq!((s.flows_created, s.embryos_created, s.embryos_promoted), (1, 101, 1));
    assert_eq!((s.handshakes, s.syn_without_synack), (1, 100));
}

#[test]
fn a_syn_flood_never_evicts_a_connection_carrying_a_file() {
    let mut e = Engine::new(EngineConfig {
        max_flows: 8,
        ..config()
    });
    // A download in progress...
    let resp = response();
    let mut c = Conv::new(&mut e, 40050);
    c.at(1_000).handshake().client(PA, REQUEST).server(PA, &resp[..45]);
    let (cseq, sseq) = (c.cseq, c.sseq);
    // ... while 1000 SYNs arrive: they fill the embryo pool, the oldest attempts go first.
    for i in 0..1000u32 {
        let f = frame([10, 9, (i >> 8) as u8, i as u8], SERVER, 50_000, 80, i, 0, SYN, b"");
        e.handle_packet(Timestamp::from_secs(1_001), LinkType::Ethernet, &f);
    }
    assert_eq!((e.active_flows(), e.embryonic_flows()), (1, 8));
    assert!(e.under_pressure(), "a full attempt pool is pressure");
    let s = e.tcp_stats();
    assert_eq!(
        (s.embryos_created, s.embryos_evicted, s.flows_evicted),
        (1001, 992, 0),
        "the download began as one too"
    );
    // The download ends exactly.
    let mut c = Conv {
        e: &mut e,
        cport: 40050,
        cseq,
        sseq,
        t: 1_002,
    };
    c.server(PA, &resp[45..]);
    let recs = records(&mut e);
    assert_eq!(recs.len(), 1);
    assert!(recs[0].sha256.is_some() && !recs[0].truncated);
    // Attempts that never carry a byte time out on their own clock, long before connections.
    e.handle_timeout(Timestamp::from_secs(1_040));
    assert_eq!((e.active_flows(), e.embryonic_flows()), (1, 0));
    assert_eq!(e.tcp_stats().embryos_timed_out, 8);
    assert!(!e.under_pressure());
}

#[test]
fn one_sided_handshakes_are_counted_by_the_engine() {
    let mut e = engine();
    // Only the SYN-ACK of one connection (its SYN went to another queue) ...
    let f = frame(SERVER, CLIENT, 80, 40030, 5000, 1001, SYN | ACK, b"");
    e.handle_packet(Timestamp::from_secs(1), LinkType::Ethernet, &f);
    // ... and only the SYN of another, whose answer never comes.
    let f = frame(CLIENT, SERVER, 40031, 80, 1000, 0, SYN, b"");
    e.handle_packet(Timestamp::from_secs(1), LinkType::Ethernet, &f);
    // A whole handshake, with its SYN-ACK retransmitted.
    let mut c = Conv::new(&mut e, 40032);
    c.handshake().server(SYN | ACK, b"");
    e.finish(Timestamp::from_secs(2));
    let s = e.tcp_stats();
    assert_eq!((s.handshakes, s.synack_without_syn, s.syn_without_synack), (1, 1, 1));
}

#[test]
fn a_hash_seed_makes_runs_repeat() {
    let run = |seed| {
        let mut e = Engine::new(EngineConfig {
            hash_seed: Some(seed),
            ..config()
        });
        for port in 41000..41010 {
            let mut c = Conv::new(&mut e, port);
            c.handshake().client(PA, REQUEST).server(PA, &response());
        }
        e.finish(Timestamp::from_secs(5));
        records(&mut e)
    };
    let (a, b) = (run(7), run(7));
    assert_eq!(a.len(), 10);
    assert_eq!(a, b);
}

/// A client that sends a request (after a SYN) and never hears back: a half-open request.
fn half_open(e: &mut Engine, cport: u16, t: u64) {
    let mut c = Conv::new(e, cport);
    c.at(t)
        .client(SYN, b"")
        .client(PA, b"GET /x HTTP/1.1\r\nHost: x\r\n\r\n");
}

#[test]
fn a_flood_of_half_open_requests_never_evicts_an_established_download() {
    let mut e = Engine::new(EngineConfig {
        max_flows: 16,
        ..config()
    });
    let mut dl = Conv::new(&mut e, 40100);
    dl.handshake().client(PA, REQUEST);
    let resp = response();
    let (head, rest) = resp.split_at(resp.len() - 10);
    dl.server(PA, head);
    let (cseq, sseq) = (dl.cseq, dl.sseq);
    // The download is the least recently active connection from here on.
    for port in 50_000..50_200u16 {
        half_open(&mut e, port, 1_001);
    }
    let tcp = e.tcp_stats();
    assert_eq!(e.active_flows(), 16);
    assert!(tcp.flows_evicted_one_sided >= 184, "{tcp:?}");
    assert_eq!(tcp.flows_evicted_established, 0, "{tcp:?}");
    let mut dl = Conv {
        e: &mut e,
        cport: 40100,
        cseq,
        sseq,
        t: 1_002,
    };
    dl.server(PA, rest).client(FA, b"").server(FA, b"");
    let recs = records(&mut e);
    let file = recs.iter().find(|r| r.size == 16).expect("the download's record");
    assert_eq!(file.missing_bytes, 0, "{file:?}");
}

#[test]
fn one_sided_connections_time_out_like_attempts() {
    let mut e = engine();
    half_open(&mut e, 50_500, 1_000);
    let mut c = Conv::new(&mut e, 40200);
    c.at(1_000).handshake().client(PA, REQUEST);
    assert_eq!(e.active_flows(), 2);
    e.handle_timeout(Timestamp::from_secs(1_000 + EMBRYO_TIMEOUT.as_secs() + 1));
    assert_eq!(e.active_flows(), 1, "the established one stays");
    assert_eq!(e.tcp_stats().flows_timed_out_one_sided, 1);
    e.handle_timeout(Timestamp::from_secs(1_000 + 301));
    assert_eq!(e.active_flows(), 0);
}

#[test]
fn the_memory_budget_evicts_attempts_and_one_sided_flows_before_a_download() {
    // Room for the download, a few more connections and some attempts.
    let memory = 8 * CONN_BYTES + 64 * EMBRYO_BYTES + 4096;
    let mut e = Engine::new(EngineConfig { memory, ..config() });
    let mut dl = Conv::new(&mut e, 40300);
    dl.handshake().client(PA, REQUEST);
    let resp = response();
    let (head, rest) = resp.split_at(resp.len() - 10);
    dl.server(PA, head);
    let (cseq, sseq) = (dl.cseq, dl.sseq);
    for port in 51_000..51_300u16 {
        let f = frame(CLIENT, SERVER, port, 80, 7, 0, SYN, b"");
        e.handle_packet(Timestamp::from_secs(1_001), LinkType::Ethernet, &f);
        half_open(&mut e, port.wrapping_add(1_000), 1_001);
    }
    let (peak, total) = e.flow_memory_peak();
    assert!(total <= memory, "peak {total} over the budget {memory}: {peak:?}");
    let tcp = e.tcp_stats();
    assert!(tcp.evictions_memory > 0, "{tcp:?}");
    assert_eq!(tcp.flows_evicted_established, 0, "{tcp:?}");
    assert!(tcp.flows_evicted_one_sided > 0 && tcp.embryos_evicted > 0, "{tcp:?}");
    let mut dl = Conv {
        e: &mut e,
        cport: 40300,
        cseq,
        sseq,
        t: 1_002,
    };
    dl.server(PA, rest).client(FA, b"").server(FA, b"");
    let recs = records(&mut e);
    let file = recs.iter().find(|r| r.size == 16).expect("the download's record");
    assert_eq!(file.missing_bytes, 0, "{file:?}");
}

#[test]
fn attempts_never_push_connections_out_of_the_budget() {
    let memory = 4 * (CONN_BYTES + std::mem::size_of::<xdpcarve_http::HttpParser>()) + EMBRYO_BYTES / 2;
    let mut e = Engine::new(EngineConfig { memory, ..config() });
    for port in 0..4u16 {
        let mut c = Conv::new(&mut e, 42_000 + port);
        c.handshake().client(PA, REQUEST);
    }
    assert_eq!(e.active_flows(), 4);
    for port in 52_000..52_100u16 {
        let f = frame(CLIENT, SERVER, port, 80, 7, 0, SYN, b"");
        e.handle_packet(Timestamp::from_secs(1_001), LinkType::Ethernet, &f);
    }
    assert_eq!(e.active_flows(), 4, "no connection made room for an attempt");
    assert!(e.tcp_stats().embryos_refused > 0, "{:?}", e.tcp_stats());
}

mod properties {
    //! A file's hash does not depend on how its bytes were cut into packets or chunks, or on the
    //! order the packets arrived in; and a connection leaves no memory behind once it is closed.
    use super::*;
    use proptest::prelude::*;
    use sha2::{Digest, Sha256};

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    /// The response as bytes: Content-Length, or chunked with the given chunk sizes.
    fn response(body: &[u8], chunks: Option<&[usize]>) -> Vec<u8> {
        match chunks {
            None => {
                let mut r = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes();
                r.extend_from_slice(body);
                r
            }
            Some(sizes) => {
                let mut r = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
                let mut rest = body;
                let mut i = 0;
                while !rest.is_empty() {
                    let n = sizes[i % sizes.len()].clamp(1, rest.len());
                    r.extend_from_slice(format!("{n:x}\r\n").as_bytes());
                    r.extend_from_slice(&rest[..n]);
                    r.extend_from_slice(b"\r\n");
                    rest = &rest[n..];
                    i += 1;
                }
                r.extend_from_slice(b"0\r\n\r\n");
                r
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        #[test]
        fn a_download_hashes_the_same_however_it_is_cut_and_ordered(
            body in proptest::collection::vec(any::<u8>(), 1..20_000),
            chunked in proptest::option::of(proptest::collection::vec(1usize..3000, 1..6)),
            cuts in proptest::collection::vec(1usize..1500, 1..40),
            swaps in proptest::collection::vec((any::<proptest::sample::Index>(), any::<proptest::sample::Index>()), 0..8),
        ) {
            let resp = response(&body, chunked.as_deref());
            // Segments of the response: sizes from `cuts`, cycling.
            let mut segs = Vec::new();
            let mut off = 0;
            let mut i = 0;
            while off < resp.len() {
                let n = cuts[i % cuts.len()].min(resp.len() - off);
                segs.push((off, n));
                off += n;
                i += 1;
            }
            for (a, b) in swaps {
                let (a, b) = (a.index(segs.len()), b.index(segs.len()));
                segs.swap(a, b);
            }
            let mut e = engine();
            let mut c = Conv::new(&mut e, 40_500);
            c.handshake().client(PA, REQUEST);
            let base = c.sseq;
            for (off, n) in &segs {
                c.sseq = base.wrapping_add(*off as u32);
                c.server(PA, &resp[*off..off + n]);
            }
            c.sseq = base.wrapping_add(resp.len() as u32);
            c.client(FA, b"").server(FA, b"");
            let recs = records(&mut e);
            prop_assert_eq!(recs.len(), 1, "{:?}", recs);
            let r = &recs[0];
            prop_assert_eq!(r.size, body.len() as u64);
            prop_assert_eq!(r.missing_bytes, 0);
            let want = hex(&Sha256::digest(&body));
            prop_assert_eq!(r.sha256.as_deref(), Some(want.as_str()));
            e.finish(Timestamp::from_secs(5_000));
            let m = e.flow_memory();
            prop_assert_eq!((m.connections, m.reassembly, m.parsers), (0, 0, 0), "{:?}", m);
        }
    }
}
