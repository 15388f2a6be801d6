//! The engine of one worker: owns its flows, reassembly buffers, parsers and counters.
//! Single-threaded by design (one engine per queue/core, no locks); time is packet time.

use std::time::Duration;

use xdpcarve_files::app::mix;
use xdpcarve_files::record::zeek_id;
use xdpcarve_files::stats::TcpStats;
use xdpcarve_files::{
    AppConfig, AppContext, CloseReason, ConnMeta, FileRecord, FuidGen, RangedFiles, Side, Stats, StreamParser,
    Timestamp,
};

use crate::app::{AppParser, PortMap};
use crate::detect;
use crate::flow::{Endpoint, FlowKey, FlowTable};
use crate::reassembly::{MemoryBudget, Reassembled, Stream, StreamLimits};
use crate::wire::{self, LinkType, Skip};

/// Knobs of one engine. The defaults are sized for one worker on a busy link.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    pub app: AppConfig,
    /// Responder ports whose connections get the HTTP parser.
    pub http_ports: Vec<u16>,
    /// Responder ports whose connections get the SMTP parser.
    pub smtp_ports: Vec<u16>,
    /// Connections tracked at most; past it the least recently active one is evicted.
    pub max_flows: usize,
    /// A connection with no packet for this long is closed (Zeek's tcp_inactivity_timeout).
    pub idle_timeout: Duration,
    /// Out-of-order bytes buffered per direction before the oldest hole is skipped.
    pub max_stream_buffer: usize,
    /// Out-of-order bytes buffered by all connections of this engine.
    pub max_reassembly_memory: usize,
    /// Bytes of each direction reassembled at most (0 = unlimited).
    pub reassembly_depth: u64,
    /// Also parse connections on other ports whose first bytes are an HTTP request line or an
    /// SMTP greeting/HELO (as Suricata's and Zeek's protocol detection do).
    pub detect_other_ports: bool,
    /// Distinguishes the ids made by different workers.
    pub worker_id: u16,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            app: AppConfig::default(),
            http_ports: vec![80, 8080],
            smtp_ports: vec![25, 587],
            max_flows: 262_144,
            idle_timeout: Duration::from_secs(300),
            max_stream_buffer: 1 << 20,
            max_reassembly_memory: 256 << 20,
            reassembly_depth: 0,
            detect_other_ports: true,
            worker_id: 0,
        }
    }
}

/// How long a finished connection's key is remembered, so late retransmissions and ACKs are not
/// taken for a new connection picked up mid-stream.
const CLOSED_LINGER: Duration = Duration::from_secs(30);
/// Packet time between two idle sweeps.
const SWEEP_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum ConnState {
    /// Reassembling and parsing.
    Active,
    /// The parser gave up on the stream (TLS, tunnel, garbage): bytes are only counted.
    Opaque,
    /// Finished; kept briefly so stragglers are recognised.
    Closed,
}

struct Conn {
    meta: ConnMeta,
    orig: Endpoint,
    parser: Option<AppParser>,
    streams: [Stream; 2],
    last_seen: Timestamp,
    state: ConnState,
    /// FIN seen per side while opaque (streams are no longer fed then).
    opaque_fin: [bool; 2],
}

/// The packet-to-records engine of one worker.
pub struct Engine {
    cfg: EngineConfig,
    ports: PortMap,
    limits: StreamLimits,
    flows: FlowTable<Conn>,
    mem: MemoryBudget,
    stats: Stats,
    records: Vec<FileRecord>,
    ranged: RangedFiles,
    fuids: FuidGen,
    conn_counter: u64,
    /// Latest packet time seen (never goes backwards).
    now: Timestamp,
    next_sweep: Timestamp,
}

/// Feeds one direction's reassembled bytes to the connection's parser.
struct ParserSink<'a, 'c> {
    parser: &'a mut AppParser,
    side: Side,
    cx: &'a mut AppContext<'c>,
}

impl Reassembled for ParserSink<'_, '_> {
    #[inline]
    fn data(&mut self, data: &[u8]) {
        if self.parser.is_done() {
            self.cx.stats.tcp.opaque_bytes += data.len() as u64;
        } else {
            self.parser.on_data(self.side, data, self.cx);
        }
    }
    fn gap(&mut self, len: u64) {
        if !self.parser.is_done() {
            self.parser.on_gap(self.side, len, self.cx);
        }
    }
    fn end(&mut self) {
        self.parser.on_end(self.side, self.cx);
    }
    fn counters(&mut self) -> &mut TcpStats {
        &mut self.cx.stats.tcp
    }
}

impl Engine {
    pub fn new(cfg: EngineConfig) -> Self {
        let ports = PortMap::new(&cfg.http_ports, &cfg.smtp_ports);
        let limits = StreamLimits {
            max_buffer: cfg.max_stream_buffer,
            depth: cfg.reassembly_depth,
        };
        let mem = MemoryBudget::new(cfg.max_reassembly_memory);
        let fuids = FuidGen::new(cfg.worker_id);
        Engine {
            cfg,
            ports,
            limits,
            flows: FlowTable::new(),
            mem,
            stats: Stats::default(),
            records: Vec::new(),
            ranged: RangedFiles::new(),
            fuids,
            conn_counter: 0,
            now: Timestamp::ZERO,
            next_sweep: Timestamp::ZERO,
        }
    }

    pub fn config(&self) -> &EngineConfig {
        &self.cfg
    }
    pub fn stats(&self) -> &Stats {
        &self.stats
    }
    /// Connections tracked (including recently closed ones remembered for stragglers).
    pub fn active_flows(&self) -> usize {
        self.flows.len()
    }
    /// Out-of-order bytes currently buffered (with bookkeeping overhead).
    pub fn reassembly_memory(&self) -> usize {
        self.mem.used
    }
    /// True when records are waiting to be drained.
    pub fn has_records(&self) -> bool {
        !self.records.is_empty()
    }
    /// Finished file records, oldest first.
    pub fn drain_records(&mut self) -> std::vec::Drain<'_, FileRecord> {
        self.records.drain(..)
    }

    /// Moves packet time forward (no-op if `ts` is earlier) and expires idle connections.
    pub fn advance_time(&mut self, ts: Timestamp) {
        if ts > self.now {
            self.now = ts;
        }
        if self.now >= self.next_sweep {
            self.next_sweep = self.now.saturating_add(SWEEP_INTERVAL);
            self.expire_idle();
            let idle = self.cfg.idle_timeout;
            self.ranged.expire(self.now, idle, &mut self.records, &mut self.stats);
        }
    }

    /// Closes every connection (end of capture or shutdown) and flushes pending range files.
    pub fn finish(&mut self, ts: Timestamp) {
        if ts > self.now {
            self.now = ts;
        }
        for id in self.flows.ids_oldest_first() {
            self.close(id, CloseReason::Shutdown, false);
        }
        self.ranged.flush_all(self.now, &mut self.records, &mut self.stats);
    }

    /// Processes one captured frame.
    pub fn handle_packet(&mut self, ts: Timestamp, link: LinkType, frame: &[u8]) {
        self.stats.capture.packets += 1;
        self.stats.capture.bytes += frame.len() as u64;
        if ts < self.now {
            self.stats.capture.time_went_backwards += 1;
        }
        self.advance_time(ts);
        let pkt = match wire::parse_tcp(link, frame) {
            Ok(p) => p,
            Err(skip) => {
                let c = &mut self.stats.capture;
                match skip {
                    Skip::NonIp => c.non_ip += 1,
                    Skip::NonTcp => c.non_tcp += 1,
                    Skip::Fragment => c.ip_fragments += 1,
                    Skip::Malformed(_) => c.malformed += 1,
                }
                // Count the IP version of IP packets we skip too.
                return;
            }
        };
        {
            let c = &mut self.stats.capture;
            if pkt.is_ipv6() {
                c.ipv6 += 1;
            } else {
                c.ipv4 += 1;
            }
            if pkt.vlan_tags > 0 {
                c.vlan_tagged += 1;
            }
            if pkt.missing_tail > 0 {
                c.snaplen_truncated += 1;
            }
        }
        self.handle_tcp(&pkt);
    }

    fn handle_tcp(&mut self, pkt: &wire::TcpPacket<'_>) {
        let src = Endpoint::new(pkt.src, pkt.sport);
        let dst = Endpoint::new(pkt.dst, pkt.dport);
        let (key, _) = FlowKey::new(src, dst, pkt.vlan);
        let flags = pkt.flags;
        let id = match self.flows.lookup(&key) {
            Some(id) => {
                if self.flows.get(id).state == ConnState::Closed {
                    if flags.syn() && !flags.ack() {
                        // Port reuse: a new connection on the same 5-tuple.
                        self.flows.remove(id);
                    } else {
                        self.stats.tcp.retransmitted_bytes += pkt.payload.len() as u64;
                        return;
                    }
                    match self.new_conn(key, src, dst, pkt) {
                        Some(id) => id,
                        None => return,
                    }
                } else {
                    id
                }
            }
            None => match self.new_conn(key, src, dst, pkt) {
                Some(id) => id,
                None => return,
            },
        };
        self.flows.touch(id);
        let now = self.now;
        let conn = self.flows.get_mut(id);
        conn.last_seen = now;
        let side = if src == conn.orig { Side::Orig } else { Side::Resp };
        let tcp = &mut self.stats.tcp;
        tcp.segments += 1;
        tcp.payload_bytes += pkt.payload.len() as u64;

        if conn.state == ConnState::Opaque {
            tcp.opaque_bytes += pkt.payload.len() as u64;
            if flags.fin() {
                conn.opaque_fin[side.index()] = true;
                tcp.fin += 1;
            }
            if flags.rst() {
                tcp.rst += 1;
            }
            if flags.rst() || conn.opaque_fin == [true, true] {
                self.close(id, CloseReason::Finished, true);
            }
            return;
        }

        let Conn {
            meta, parser, streams, ..
        } = conn;
        let parser = parser.as_mut().expect("active connection has a parser");
        let limits = self.limits;
        let mem = &mut self.mem;
        let mut cx = AppContext {
            conn: meta,
            now,
            cfg: &self.cfg.app,
            stats: &mut self.stats,
            records: &mut self.records,
            ranged: &mut self.ranged,
            fuids: &mut self.fuids,
        };

        if flags.rst() {
            cx.stats.tcp.rst += 1;
            drop(cx);
            // The connection is gone: deliver what is buffered (holes as gaps), end both sides.
            self.close(id, CloseReason::Finished, true);
            return;
        }
        if flags.syn() {
            streams[side.index()].syn(pkt.seq);
            if flags.ack() {
                // A SYN-ACK says where the originator's data starts, even if its SYN was missed.
                streams[side.other().index()].expect(pkt.ack);
            }
        }
        if !pkt.payload.is_empty() || pkt.missing_tail > 0 || flags.fin() {
            // Data on a SYN (TCP Fast Open) starts after the SYN's sequence number.
            let seq = if flags.syn() { pkt.seq.wrapping_add(1) } else { pkt.seq };
            let mut sink = ParserSink {
                parser,
                side,
                cx: &mut cx,
            };
            streams[side.index()].segment(seq, pkt.payload, pkt.missing_tail, flags.fin(), &limits, mem, &mut sink);
        }
        if flags.ack() {
            streams[side.other().index()].acked(pkt.ack);
        }
        for s in [Side::Orig, Side::Resp] {
            let mut sink = ParserSink {
                parser,
                side: s,
                cx: &mut cx,
            };
            streams[s.index()].tick(&limits, mem, &mut sink);
        }
        let done = parser.is_done();
        let both_ended = streams[0].is_ended() && streams[1].is_ended();
        drop(cx);
        if done {
            let conn = self.flows.get_mut(id);
            conn.state = ConnState::Opaque;
            for s in &mut conn.streams {
                s.release(&mut self.mem);
            }
        }
        if both_ended {
            self.close(id, CloseReason::Finished, false);
        }
    }

    /// Creates a connection for a packet of an unknown flow, if it deserves one.
    fn new_conn(&mut self, key: FlowKey, src: Endpoint, dst: Endpoint, pkt: &wire::TcpPacket<'_>) -> Option<u32> {
        let flags = pkt.flags;
        let has_data = !pkt.payload.is_empty() || pkt.missing_tail > 0;
        // A bare ACK, FIN or RST of a connection we do not know says nothing worth tracking.
        if !flags.syn() && !has_data {
            return None;
        }
        let mut handshake = flags.syn();
        // The SYN sender is the originator; a SYN-ACK comes from the responder; without a
        // handshake the endpoint on a parser port is taken for the responder.
        let (mut orig, mut resp) = if flags.syn() && !flags.ack() {
            (src, dst)
        } else if flags.syn() {
            (dst, src)
        } else if self.ports.get(dst.port).is_some() {
            (src, dst)
        } else {
            (dst, src)
        };
        let kind = match self.ports.get(resp.port) {
            Some(kind) => kind,
            None => {
                let detected = match self.cfg.detect_other_ports && has_data {
                    true => detect::detect(pkt.payload),
                    false => None,
                };
                let Some((kind, sender_is_client)) = detected else {
                    if flags.syn() && !flags.ack() {
                        self.stats.tcp.flows_ignored += 1;
                    }
                    return None;
                };
                (orig, resp) = if sender_is_client { (src, dst) } else { (dst, src) };
                self.stats.tcp.flows_detected += 1;
                // Not a mid-stream pickup: detection looks at the first bytes of a session.
                handshake = true;
                kind
            }
        };
        let (orig_ip, resp_ip) = if orig == src {
            (pkt.src, pkt.dst)
        } else {
            (pkt.dst, pkt.src)
        };
        if self.flows.len() >= self.cfg.max_flows.max(1) {
            if let Some(oldest) = self.flows.oldest() {
                if self.flows.get(oldest).state != ConnState::Closed {
                    self.stats.tcp.flows_evicted += 1;
                }
                self.close(oldest, CloseReason::Evicted, false);
            }
        }
        self.conn_counter += 1;
        let uid = zeek_id('C', mix(((self.cfg.worker_id as u64) << 48) | self.conn_counter));
        let meta = ConnMeta {
            uid,
            orig_h: orig_ip,
            orig_p: orig.port,
            resp_h: resp_ip,
            resp_p: resp.port,
            vlan: pkt.vlan,
            start: self.now,
        };
        let conn = Conn {
            meta,
            orig,
            parser: Some(AppParser::new(kind, &self.cfg.app)),
            streams: [Stream::new(), Stream::new()],
            last_seen: self.now,
            state: ConnState::Active,
            opaque_fin: [false, false],
        };
        let tcp = &mut self.stats.tcp;
        tcp.flows_created += 1;
        if !handshake {
            tcp.flows_midstream += 1;
        }
        Some(self.flows.insert(key, conn))
    }

    /// Closes a connection: delivers what is buffered (holes as gaps), tells the parser, and
    /// either remembers the key for a while (finished connections) or forgets it.
    fn close(&mut self, id: u32, reason: CloseReason, rst: bool) {
        let conn = self.flows.get_mut(id);
        if conn.state == ConnState::Closed {
            self.flows.remove(id);
            return;
        }
        let Conn {
            meta, parser, streams, ..
        } = conn;
        if let Some(mut parser) = parser.take() {
            let mut cx = AppContext {
                conn: meta,
                now: self.now,
                cfg: &self.cfg.app,
                stats: &mut self.stats,
                records: &mut self.records,
                ranged: &mut self.ranged,
                fuids: &mut self.fuids,
            };
            for side in [Side::Orig, Side::Resp] {
                let mut sink = ParserSink {
                    parser: &mut parser,
                    side,
                    cx: &mut cx,
                };
                streams[side.index()].flush(rst, &self.limits, &mut self.mem, &mut sink);
            }
            parser.on_close(reason, &mut cx);
        }
        for s in streams.iter_mut() {
            s.release(&mut self.mem);
        }
        let tcp = &mut self.stats.tcp;
        tcp.flows_closed += 1;
        match reason {
            CloseReason::Timeout => tcp.flows_timed_out += 1,
            CloseReason::Finished => {}
            CloseReason::Evicted | CloseReason::Shutdown => {}
        }
        if reason == CloseReason::Finished {
            let conn = self.flows.get_mut(id);
            conn.state = ConnState::Closed;
            conn.streams = [Stream::new(), Stream::new()];
        } else {
            self.flows.remove(id);
        }
    }

    /// Closes connections idle past the timeout, oldest first, and forgets finished ones whose
    /// linger time passed.
    fn expire_idle(&mut self) {
        while let Some(id) = self.flows.oldest() {
            let conn = self.flows.get(id);
            let idle = self.now.since(conn.last_seen);
            let limit = match conn.state {
                ConnState::Closed => CLOSED_LINGER.min(self.cfg.idle_timeout),
                _ => self.cfg.idle_timeout,
            };
            if idle < limit {
                break;
            }
            if conn.state == ConnState::Closed {
                self.flows.remove(id);
            } else {
                self.close(id, CloseReason::Timeout, false);
            }
        }
    }
}

#[cfg(test)]
mod tests;
