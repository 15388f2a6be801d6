//! The engine of one worker: owns its flows, reassembly buffers, protocols and counters.
//! Single-threaded by design (one engine per queue/core, no locks); time is packet time.
//!
//! Sans-IO in quinn-proto's shape: the caller feeds packets ([`Engine::handle_packet`]), asks
//! when the engine next needs time to pass without a packet ([`Engine::poll_timeout`]) and tells
//! it when that time came ([`Engine::handle_timeout`]); finished records are drained after each
//! call ([`Engine::drain_records`]). [`crate::Worker`] is that caller for every runtime.

use std::any::Any;
use std::time::Duration;

use xdpcarve_contract::{
    Anomalies, Anomaly, CloseReason, ConnMeta, CounterSet, FileConfig, FileRecord, FileSink, IdSeed, LinkType,
    LoadSignal, Opener, Side, Timestamp,
};

use crate::flow::{Endpoint, FlowHasherBuilder, FlowKey, FlowTable, LANES};
use crate::overload::OverloadConfig;
use crate::reassembly::{MemoryBudget, OverlapPolicy, Reassembled, Stream, StreamLimits};
use crate::registry::{ConnParser, Event, PortMap, ProtocolRegistry, RunningProtocol};
use crate::stats::{CaptureStats, TcpStats};
use crate::wire::{self, Skip};

/// Knobs of one engine. The defaults are sized for one worker on a busy link.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// What every file gets (hashes, size limit, sniffing).
    pub files: FileConfig,
    /// The protocols to run and their ports.
    pub protocols: ProtocolRegistry,
    /// Connections tracked at most; past it the least recently active one is evicted.
    pub max_flows: usize,
    /// A connection with no packet for this long is closed (Zeek's tcp_inactivity_timeout).
    pub idle_timeout: Duration,
    /// Out-of-order bytes buffered per direction before the oldest hole is skipped.
    pub max_stream_buffer: usize,
    /// Bytes of all flow state of this engine: connections, attempts, out-of-order bytes and
    /// parsers (`--memory`). Past it attempts and then connections are evicted, cheapest lane
    /// first, and reassembly skips holes rather than buffer more.
    pub memory: usize,
    /// Bytes of each direction reassembled at most (0 = unlimited).
    pub reassembly_depth: u64,
    /// Also parse connections on other ports that a protocol recognises by their first bytes
    /// (an HTTP request line, an SMTP greeting or HELO), as Suricata's and Zeek's protocol
    /// detection do.
    pub detect_other_ports: bool,
    /// Which worker this is (logs and metrics; ids do not depend on it).
    pub worker_id: u16,
    /// Where connection and file ids come from (`--seed` and the sensor name).
    pub ids: IdSeed,
    /// Seed of the flow table's hasher. `None`: random per engine, so an attacker cannot aim many
    /// flows at one bucket; set it for runs that must repeat exactly.
    pub hash_seed: Option<u64>,
    /// When the worker sheds file work (its driver reports the backlog; see [`crate::overload`]).
    pub overload: OverloadConfig,
    /// Which copy of an overlap with different bytes is kept (`--overlap`).
    pub overlap: OverlapPolicy,
    /// Whether segments with bad checksums are dropped, as the receiving host drops them
    /// (`--checksums`).
    pub checksums: ChecksumPolicy,
}

/// What a segment with a bad TCP or IPv4 header checksum is worth.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub enum ChecksumPolicy {
    /// Verify until more than one TCP segment in ten seen so far had a bad checksum, then take
    /// them all (Suricata's `checksum-validation: auto` ratio): that many is no attack but the
    /// capture, taken on a sending host with checksum offload (the NIC fills checksums in later)
    /// or edited. From then on checksums are no longer computed. A bad segment taken marks its
    /// direction's files (`tcp_bad_checksum`) when that direction also sent good ones before the
    /// switch; a direction that only ever sent bad ones is offload.
    #[default]
    Auto,
    /// Drop every segment with a bad checksum, as a host does.
    Verify,
    /// Take every segment (tcpdump's and Zeek's default; checksums are not computed).
    Ignore,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            files: FileConfig::default(),
            protocols: ProtocolRegistry::new(),
            max_flows: 262_144,
            idle_timeout: Duration::from_secs(300),
            max_stream_buffer: 1 << 20,
            memory: DEFAULT_MEMORY,
            reassembly_depth: 0,
            detect_other_ports: true,
            overload: OverloadConfig::default(),
            worker_id: 0,
            ids: IdSeed::new(0, ""),
            hash_seed: None,
            overlap: OverlapPolicy::First,
            checksums: ChecksumPolicy::Auto,
        }
    }
}

/// `--memory` by default: a full default table of idle connections (262,144 at under 1 KiB)
/// takes half of it, out-of-order bytes the rest.
pub const DEFAULT_MEMORY: usize = 512 << 20;

/// Bytes of one engine's flow state, by category ([`Engine::flow_memory`]).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct FlowMemory {
    /// Connections: their table slots (both directions' reassembly state inline) and index.
    pub connections: usize,
    /// Attempts that carried no byte yet, in their pool.
    pub attempts: usize,
    /// Out-of-order bytes buffered, with their bookkeeping.
    pub reassembly: usize,
    /// Parsers' own state (one per connection that carried a byte).
    pub parsers: usize,
}

impl FlowMemory {
    pub fn total(&self) -> usize {
        self.connections + self.attempts + self.reassembly + self.parsers
    }
    /// Each category's larger value.
    pub fn max(self, o: FlowMemory) -> FlowMemory {
        FlowMemory {
            connections: self.connections.max(o.connections),
            attempts: self.attempts.max(o.attempts),
            reassembly: self.reassembly.max(o.reassembly),
            parsers: self.parsers.max(o.parsers),
        }
    }
}

/// How long a finished connection's key is remembered, so late retransmissions and ACKs are not
/// taken for a new connection picked up mid-stream.
const CLOSED_LINGER: Duration = Duration::from_secs(30);
/// How long a flow that carried no byte yet (a handshake, or a SYN alone) is remembered, as
/// Suricata's timeout for new flows: long enough for a slow handshake, short enough for floods.
const EMBRYO_TIMEOUT: Duration = Duration::from_secs(30);
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

/// A flow that has carried no byte yet: handshake packets only. It waits in a pool of its own,
/// bounded and timed out apart from the connections, so a SYN flood costs this much per flow and
/// never evicts a connection that carries a file. Its first byte makes it a [`Conn`].
///
/// Packed (32 bytes; its table slot 80) because a flood is millions of these.
struct Embryo {
    first_seen: Timestamp,
    last_seen: Timestamp,
    /// The originator's SYN sequence number (if `HAS_SYN`).
    syn_seq: u32,
    /// The responder's SYN-ACK: its sequence and acknowledgement numbers (if `HAS_SYNACK`).
    synack: (u32, u32),
    proto: u8,
    /// `HAS_SYN | HAS_SYNACK`.
    seen: u8,
    /// The window scale options of the SYN (low nibble) and the SYN-ACK (high nibble): the
    /// shift, or [`NO_WSCALE`] when it carried none.
    wscale: u8,
    /// The originator is the key's `lo` endpoint.
    orig_is_lo: bool,
}

const HAS_SYN: u8 = 1;
const HAS_SYNACK: u8 = 2;
/// An [`Embryo`]'s nibble for a SYN without the window scale option (shifts stop at 14).
const NO_WSCALE: u8 = 0xf;

fn wscale_nibble(opt: Option<u8>) -> u8 {
    opt.map_or(NO_WSCALE, |s| s.min(wire::MAX_WINDOW_SCALE))
}
fn wscale_of_nibble(n: u8) -> Option<u8> {
    (n != NO_WSCALE).then_some(n)
}

impl Embryo {
    fn new(orig_is_lo: bool, proto: u8, now: Timestamp) -> Self {
        Embryo {
            first_seen: now,
            last_seen: now,
            syn_seq: 0,
            synack: (0, 0),
            proto,
            seen: 0,
            wscale: 0,
            orig_is_lo,
        }
    }
    fn syn(&self) -> Option<u32> {
        (self.seen & HAS_SYN != 0).then_some(self.syn_seq)
    }
    fn synack(&self) -> Option<(u32, u32)> {
        (self.seen & HAS_SYNACK != 0).then_some(self.synack)
    }
    fn set_syn(&mut self, seq: u32, wscale: Option<u8>) {
        self.syn_seq = seq;
        self.seen |= HAS_SYN;
        self.wscale = (self.wscale & 0xf0) | wscale_nibble(wscale);
    }
    fn set_synack(&mut self, seq: u32, ack: u32, wscale: Option<u8>) {
        self.synack = (seq, ack);
        self.seen |= HAS_SYNACK;
        self.wscale = (self.wscale & 0x0f) | (wscale_nibble(wscale) << 4);
    }
    /// The SYN's and the SYN-ACK's window scale options, for those seen.
    fn syn_wscale(&self) -> [Option<Option<u8>>; 2] {
        [
            self.syn().map(|_| wscale_of_nibble(self.wscale & 0x0f)),
            self.synack().map(|_| wscale_of_nibble(self.wscale >> 4)),
        ]
    }
    /// A SYN that no SYN-ACK answered.
    fn unanswered(&self) -> bool {
        self.seen == HAS_SYN
    }
    fn is_orig(&self, ep: Endpoint, key: &FlowKey) -> bool {
        (ep == key.lo) == self.orig_is_lo
    }
    fn orig(&self, key: &FlowKey) -> Endpoint {
        if self.orig_is_lo {
            key.lo
        } else {
            key.hi
        }
    }
}

/// Lanes of the connection table (see [`crate::flow`]): each its own eviction class and
/// timeout, evicted in this order when the table is full.
///
/// Finished connections remembered for stragglers.
const LANE_CLOSED: usize = 2;
/// Only one side has sent anything (a half-open request, a scan, an asymmetric tap): Suricata's
/// flows in state "new" and Zeek's half-open ones; they time out after [`EMBRYO_TIMEOUT`].
const LANE_ONE_SIDED: usize = 0;
/// Both sides have spoken: evicted last, least recently active first.
const LANE_ESTABLISHED: usize = 1;
const EVICTION_ORDER: [usize; 3] = [LANE_CLOSED, LANE_ONE_SIDED, LANE_ESTABLISHED];
/// Attempts and one-sided connections together take at most this share of `--memory` (32 MiB of
/// the default: a quarter of a million attempts, or tens of thousands of half-open requests): a
/// flood of them is bounded apart from the connections that carry files.
const EMBRYONIC_SHARE: usize = 16;
/// What a connection and an attempt cost in their tables (the budget's unit).
const CONN_BYTES: usize = FlowTable::<Conn>::bytes_per_flow();
const EMBRYO_BYTES: usize = FlowTable::<Embryo>::bytes_per_flow();
/// The embryo pool's one lane.
const LANE_EMBRYO: usize = 0;

struct Conn {
    meta: ConnMeta,
    orig: Endpoint,
    parser: Option<ConnParser>,
    streams: [Stream; 2],
    last_seen: Timestamp,
    state: ConnState,
    /// FIN seen per side while opaque (streams are no longer fed then).
    opaque_fin: [bool; 2],
    /// The originator's SYN and the responder's SYN-ACK were seen (handshake symmetry).
    syn_seen: bool,
    synack_seen: bool,
    /// Each side has sent a packet: both, and the connection is established (its lane).
    heard: [bool; 2],
    /// Per side: a segment with a good checksum was seen, and one with a bad checksum was taken
    /// (both: the side's files are marked).
    checksum_good: [bool; 2],
    checksum_bad_taken: [bool; 2],
    /// Per side: the TTL or hop limit of its first data segment.
    ttl: [Option<u8>; 2],
    /// Per side: its SYN's window scale option (`Some(None)`: a SYN without it), once seen.
    syn_wscale: [Option<Option<u8>>; 2],
}

impl Conn {
    /// The shift `side`'s advertised windows are scaled by: its SYN's option when both SYNs
    /// carried one, else 0 (RFC 7323 2.2); `None` while a SYN is missing (the scale is unknown).
    fn window_shift(&self, side: Side) -> Option<u8> {
        match self.syn_wscale {
            [Some(Some(orig)), Some(Some(resp))] => Some(if side == Side::Orig { orig } else { resp }),
            [Some(_), Some(_)] => Some(0),
            _ => None,
        }
    }
}

/// The packet-to-records engine of one worker.
pub struct Engine {
    cfg: EngineConfig,
    ports: PortMap,
    protocols: Vec<Box<dyn RunningProtocol>>,
    limits: StreamLimits,
    flows: FlowTable<Conn>,
    /// Flows with no byte yet, oldest first (also their timeout order).
    embryos: FlowTable<Embryo>,
    mem: MemoryBudget,
    /// Heap of the live parsers' own state.
    parser_bytes: usize,
    /// The largest parser of the protocols (what a one-sided connection is charged for one).
    parser_max: usize,
    /// Each category's peak, and the peak of their sum.
    memory_peak: FlowMemory,
    memory_peak_total: usize,
    capture: CaptureStats,
    tcp: TcpStats,
    files: FileSink,
    /// Latest packet time seen (never goes backwards).
    now: Timestamp,
    next_sweep: Timestamp,
    /// TCP segments whose checksum was checked, and how many of them were bad (under `auto`,
    /// until offload was assumed: no segment is checked after).
    checksums_checked: u64,
    checksums_bad: u64,
}

/// Feeds one direction's reassembled bytes to the connection's parser.
struct ParserSink<'a> {
    proto: &'a mut dyn RunningProtocol,
    /// Made on the connection's first event.
    parser: &'a mut Option<Box<dyn Any + Send>>,
    side: Side,
    conn: &'a ConnMeta,
    /// The time parsers see: the packet's, or when buffered bytes being delivered were captured.
    now: Timestamp,
    packet_now: Timestamp,
    files: &'a mut FileSink,
    tcp: &'a mut TcpStats,
    /// The engine's count of parser heap, for a parser made here.
    parser_bytes: &'a mut usize,
}

impl<'a> ParserSink<'a> {
    /// The protocol, this connection's parser, and the event they are handed.
    fn parts(&mut self) -> (&mut dyn RunningProtocol, &mut dyn Any, Event<'_>) {
        let ev = Event {
            conn: self.conn,
            now: self.now,
            files: &mut *self.files,
        };
        let proto = &mut *self.proto;
        if self.parser.is_none() {
            *self.parser_bytes += proto.parser_bytes();
        }
        let parser = self.parser.get_or_insert_with(|| proto.new_parser(self.conn));
        (proto, &mut **parser, ev)
    }

    /// The parser gave up on the rest of the connection (never, before it existed).
    fn is_done(&self) -> bool {
        self.parser.as_deref().is_some_and(|p| self.proto.is_done(p))
    }
}

impl Reassembled for ParserSink<'_> {
    #[inline]
    fn data(&mut self, data: &[u8]) {
        let side = self.side;
        let (proto, parser, ev) = self.parts();
        if !proto.on_data(parser, side, data, ev) {
            self.tcp.opaque_bytes += data.len() as u64;
        }
    }
    fn gap(&mut self, len: u64) {
        let side = self.side;
        let (proto, parser, ev) = self.parts();
        proto.on_gap(parser, side, len, ev);
    }
    fn end(&mut self) {
        let side = self.side;
        let (proto, parser, ev) = self.parts();
        proto.on_end(parser, side, ev);
    }
    fn counters(&mut self) -> &mut TcpStats {
        self.tcp
    }
    fn anomaly(&mut self, a: Anomaly) {
        self.files.conn_anomalies[self.side.index()].insert(a);
    }
    fn packet_time(&self) -> Timestamp {
        self.packet_now
    }
    fn captured_at(&mut self, ts: Option<Timestamp>) {
        self.now = ts.unwrap_or(self.packet_now);
    }
}

impl Engine {
    pub fn new(cfg: EngineConfig) -> Self {
        let (protocols, ports) = cfg.protocols.instantiate();
        let parser_max = protocols.iter().map(|p| p.parser_bytes()).max().unwrap_or(0);
        let limits = StreamLimits {
            max_buffer: cfg.max_stream_buffer,
            depth: cfg.reassembly_depth,
            overlap: cfg.overlap,
        };
        let mem = MemoryBudget::new(cfg.memory);
        let hasher = match cfg.hash_seed {
            Some(seed) => FlowHasherBuilder::with_seed(seed),
            None => FlowHasherBuilder::random(),
        };
        Engine {
            ports,
            protocols,
            limits,
            flows: FlowTable::with_hasher(hasher),
            embryos: FlowTable::with_hasher(hasher),
            mem,
            parser_bytes: 0,
            parser_max,
            memory_peak: FlowMemory::default(),
            memory_peak_total: 0,
            capture: CaptureStats::default(),
            tcp: TcpStats::default(),
            files: FileSink::new(FileConfig {
                // Each worker sheds on its own backlog.
                load: LoadSignal::new(),
                // and hashes its own files' MD5 side by side.
                md5_lanes: xdpcarve_hash::Md5Lanes::new(),
                ..cfg.files.clone()
            }),
            now: Timestamp::ZERO,
            next_sweep: Timestamp::ZERO,
            checksums_checked: 0,
            checksums_bad: 0,
            cfg,
        }
    }

    pub fn config(&self) -> &EngineConfig {
        &self.cfg
    }
    pub fn capture_stats(&self) -> &CaptureStats {
        &self.capture
    }
    pub fn tcp_stats(&self) -> &TcpStats {
        &self.tcp
    }
    /// Every counter of this engine: capture, TCP, each protocol's own, files.
    pub fn counters(&self) -> CounterSet {
        let mut set = CounterSet::new();
        self.capture.add_to("capture", &mut set);
        self.tcp.add_to("tcp", &mut set);
        for p in &self.protocols {
            p.counters(&mut set);
        }
        let mut files = self.files.stats.clone();
        files.md5_lane_blocks = self.files.config.md5_lanes.stats().lane_blocks;
        files.add_to("files", &mut set);
        set
    }
    /// The shedding level this engine's files follow (set by the worker's load monitor).
    pub fn load_signal(&self) -> LoadSignal {
        self.files.config.load.clone()
    }
    /// Connections tracked (including recently closed ones remembered for stragglers).
    pub fn active_flows(&self) -> usize {
        self.flows.len()
    }
    /// Flows that have carried no byte yet (handshakes, SYNs alone).
    pub fn embryonic_flows(&self) -> usize {
        self.embryos.len()
    }
    /// The connection table or the pool of attempts is at least 90 % full: evictions are near, or
    /// happening (a flood, or --max-flows too small for the link).
    pub fn under_pressure(&self) -> bool {
        let bound = self.cfg.max_flows.max(1);
        self.flows.len().max(self.embryos.len()) * 10 >= bound * 9 || self.flow_bytes() * 10 >= self.cfg.memory * 9
    }
    /// The flow state now, by category.
    pub fn flow_memory(&self) -> FlowMemory {
        FlowMemory {
            connections: self.flows.len() * CONN_BYTES,
            attempts: self.embryos.len() * EMBRYO_BYTES,
            reassembly: self.mem.used,
            parsers: self.parser_bytes,
        }
    }
    /// Each category's peak so far, and the peak of their sum.
    pub fn flow_memory_peak(&self) -> (FlowMemory, usize) {
        (self.memory_peak, self.memory_peak_total)
    }
    /// Bytes of flow state now (as [`Engine::flow_memory`] adds up).
    fn flow_bytes(&self) -> usize {
        self.flows.len() * CONN_BYTES + self.embryos.len() * EMBRYO_BYTES + self.mem.used + self.parser_bytes
    }
    /// Takes note of the flow state: what reassembly may still use, and the peaks.
    fn account(&mut self) {
        let now = self.flow_memory();
        self.mem.reserved = now.connections + now.attempts + now.parsers;
        self.memory_peak = self.memory_peak.max(FlowMemory {
            reassembly: self.mem.peak,
            ..now
        });
        self.memory_peak_total = self.memory_peak_total.max(now.total());
    }
    /// Bytes of attempts and one-sided connections (their parsers at the largest protocol's size).
    fn embryonic_bytes(&self) -> usize {
        self.embryos.len() * EMBRYO_BYTES + self.flows.lane_len(LANE_ONE_SIDED) * (CONN_BYTES + self.parser_max)
    }
    /// Whether `bytes` more of attempts or one-sided connections fit their share of the budget.
    fn embryonic_fits(&self, bytes: usize) -> bool {
        self.embryonic_bytes() + bytes <= self.cfg.memory / EMBRYONIC_SHARE
    }
    /// Whether `bytes` more of flow state fit the budget.
    fn fits(&self, bytes: usize) -> bool {
        self.flow_bytes() + bytes <= self.cfg.memory
    }
    /// Out-of-order bytes currently buffered (with bookkeeping overhead).
    pub fn reassembly_memory(&self) -> usize {
        self.mem.used
    }
    /// Moves records whose hashes came back from the hash threads to the drainable ones;
    /// returns how many still wait.
    pub fn collect_pending(&mut self) -> usize {
        self.files.collect_pending()
    }
    /// True when records are waiting to be drained.
    pub fn has_records(&self) -> bool {
        !self.files.records.is_empty()
    }
    /// Finished file records, oldest first.
    pub fn drain_records(&mut self) -> std::vec::Drain<'_, FileRecord> {
        self.files.records.drain(..)
    }

    /// The packet time at which the engine has work even if no packet arrives (an idle
    /// connection to expire, a protocol's timer), or `None` while it has nothing that expires.
    /// Timers are checked at most once a second of packet time.
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        let flows = (0..LANES)
            .filter_map(|lane| self.flows.oldest(lane))
            .map(|id| {
                let conn = self.flows.get(id);
                conn.last_seen.saturating_add(self.idle_limit(self.flows.lane(id)))
            })
            .min();
        let embryos = self.embryos.oldest(LANE_EMBRYO).map(|id| {
            let e = self.embryos.get(id);
            e.last_seen.saturating_add(EMBRYO_TIMEOUT.min(self.cfg.idle_timeout))
        });
        let protocols = self.protocols.iter().filter_map(|p| p.poll_timeout()).min();
        let due = [flows, embryos, protocols].into_iter().flatten().min()?;
        Some(due.max(self.next_sweep))
    }

    /// Packet time is `now` (no packet came since): runs every timer due by then. Time never
    /// goes backwards; an earlier `now` changes nothing.
    pub fn handle_timeout(&mut self, now: Timestamp) {
        if now > self.now {
            self.now = now;
        }
        if self.now >= self.next_sweep {
            self.next_sweep = self.now.saturating_add(SWEEP_INTERVAL);
            self.expire_idle();
            self.account();
            // Records finished by protocols' timers belong to no connection event.
            self.files.conn_anomalies = [Anomalies::EMPTY; 2];
            for p in &mut self.protocols {
                p.handle_timeout(self.now, &mut self.files);
            }
        }
    }

    /// Closes every connection (end of capture or shutdown) and flushes what protocols hold
    /// across connections (206 objects).
    pub fn finish(&mut self, ts: Timestamp) {
        if ts > self.now {
            self.now = ts;
        }
        // In order of last activity, as the connections would have timed out.
        let mut ids = self.flows.ids();
        ids.sort_by_key(|&id| self.flows.get(id).last_seen);
        for id in ids {
            self.close(id, CloseReason::Shutdown, false);
        }
        // Attempts hold nothing to flush: counted, then dropped all at once.
        let unanswered = self.embryos.values().filter(|e| e.unanswered()).count();
        self.tcp.syn_without_synack += unanswered as u64;
        self.embryos.clear();
        self.files.conn_anomalies = [Anomalies::EMPTY; 2];
        for p in &mut self.protocols {
            p.finish(self.now, &mut self.files);
        }
    }

    /// Processes one captured frame.
    pub fn handle_packet(&mut self, ts: Timestamp, link: LinkType, frame: &[u8]) {
        self.capture.packets += 1;
        self.capture.bytes += frame.len() as u64;
        if ts < self.now {
            self.capture.time_went_backwards += 1;
        }
        // Timers due by this packet's time fire before it is processed.
        self.handle_timeout(ts);
        let pkt = match wire::parse_tcp(link, frame) {
            Ok(p) => p,
            Err(skip) => {
                let c = &mut self.capture;
                match skip {
                    Skip::NonIp => c.non_ip += 1,
                    Skip::NonTcp => c.non_tcp += 1,
                    Skip::Fragment => c.ip_fragments += 1,
                    Skip::Malformed(_) => c.malformed += 1,
                }
                return;
            }
        };
        {
            let c = &mut self.capture;
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
        self.account();
    }

    fn handle_tcp(&mut self, pkt: &wire::TcpPacket<'_>) {
        let src = Endpoint::new(pkt.src, pkt.sport);
        let dst = Endpoint::new(pkt.dst, pkt.dport);
        let (key, _) = FlowKey::new(src, dst, pkt.vlan);
        let flags = pkt.flags;
        let verify = match self.cfg.checksums {
            ChecksumPolicy::Ignore => false,
            // Once offload is assumed every segment is taken whatever its checksum: computing one
            // per segment would only tell directions that mix good and bad ones apart, and an
            // offloading host mixes them itself (its retransmissions are checksummed in software).
            ChecksumPolicy::Auto => self.tcp.checksum_offload_assumed == 0,
            ChecksumPolicy::Verify => true,
        };
        let checksum = if verify {
            pkt.checksum_ok()
        } else {
            self.tcp.checksum_skipped_segments += 1;
            None
        };
        if let Some(ok) = checksum {
            self.checksums_checked += 1;
            self.checksums_bad += u64::from(!ok);
            // More than one segment in ten with a bad checksum is no attack but the capture:
            // offload on the capturing host, or an edited trace. From then on they are taken.
            if self.checksums_bad * 10 > self.checksums_checked && self.cfg.checksums == ChecksumPolicy::Auto {
                self.tcp.checksum_offload_assumed = 1;
            }
        }
        if checksum == Some(false) && self.cfg.checksums == ChecksumPolicy::Verify {
            // The host drops it; a connection it belongs to is marked.
            self.tcp.bad_checksum_dropped += 1;
            if let Some(id) = self.flows.lookup(&key) {
                let conn = self.flows.get_mut(id);
                let side = if src == conn.orig { Side::Orig } else { Side::Resp };
                conn.streams[side.index()].flag(Anomaly::TcpBadChecksum);
            }
            return;
        }
        let id = match self.flows.lookup(&key) {
            Some(id) => {
                if self.flows.get(id).state == ConnState::Closed {
                    if flags.syn() && !flags.ack() {
                        // Port reuse: a new connection on the same 5-tuple.
                        self.flows.remove(id);
                    } else {
                        self.tcp.retransmitted_bytes += pkt.payload.len() as u64;
                        return;
                    }
                    match self.unknown_flow(key, src, dst, pkt) {
                        Some(id) => id,
                        None => return,
                    }
                } else {
                    id
                }
            }
            None => match self.unknown_flow(key, src, dst, pkt) {
                Some(id) => id,
                None => return,
            },
        };
        let conn = self.flows.get_mut(id);
        let side = if src == conn.orig { Side::Orig } else { Side::Resp };
        if !self.segment_counts(id, side, pkt, checksum) {
            return;
        }
        self.flows.touch(id);
        let now = self.now;
        let conn = self.flows.get_mut(id);
        conn.last_seen = now;
        if !conn.heard[side.index()] {
            conn.heard[side.index()] = true;
            if conn.heard == [true, true] && self.flows.lane(id) == LANE_ONE_SIDED {
                self.flows.set_lane(id, LANE_ESTABLISHED);
            }
        }
        let conn = self.flows.get_mut(id);
        let tcp = &mut self.tcp;
        tcp.segments += 1;
        tcp.payload_bytes += pkt.payload.len() as u64;
        if flags.syn() {
            // Handshake symmetry: live, a worker that sees a SYN-ACK without its SYN is missing a
            // direction (the NIC's RSS hash is not symmetric).
            match (flags.ack(), side) {
                (false, Side::Orig) => conn.syn_seen = true,
                (true, Side::Resp) if !conn.synack_seen => {
                    conn.synack_seen = true;
                    if conn.syn_seen {
                        tcp.handshakes += 1;
                    } else {
                        tcp.synack_without_syn += 1;
                    }
                }
                _ => {}
            }
        }

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

        if flags.rst() {
            let si = side.index();
            let ttl_differs = conn.ttl[si].is_some_and(|t| t != pkt.ttl);
            if !conn.streams[si].rst_acceptable(pkt.seq) || ttl_differs {
                // A host ignores it (or it never reached the host): the files go on.
                tcp.rst_ignored += 1;
                for s in &mut conn.streams {
                    s.flag(Anomaly::TcpRstIgnored);
                }
                return;
            }
            tcp.rst += 1;
            // The connection is gone: deliver what is buffered (holes as gaps), end both sides.
            self.close(id, CloseReason::Finished, true);
            return;
        }
        if flags.syn() {
            // A side's first SYN says its scale (a retransmitted SYN carries the same options).
            conn.syn_wscale[side.index()].get_or_insert(pkt.window_scale);
        }
        let window_shift = conn.window_shift(side);
        let Conn {
            meta, parser, streams, ..
        } = conn;
        let parser = parser.as_mut().expect("active connection has a parser");
        let proto = &mut *self.protocols[parser.proto as usize];
        let parser = &mut parser.state;
        let limits = self.limits;
        let mem = &mut self.mem;
        self.files.conn_anomalies = [streams[0].anomalies(), streams[1].anomalies()];
        let mut sink = ParserSink {
            proto,
            parser,
            side,
            conn: meta,
            now,
            packet_now: now,
            files: &mut self.files,
            tcp,
            parser_bytes: &mut self.parser_bytes,
        };
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
            streams[side.index()].segment(seq, pkt.payload, pkt.missing_tail, flags.fin(), &limits, mem, &mut sink);
        }
        if flags.ack() {
            streams[side.other().index()].acked(pkt.ack);
            // What this side allows the other to send. The window of a SYN-ACK is never scaled
            // (RFC 7323 2.2); without both SYNs the scale is unknown and nothing is checked.
            if let Some(shift) = window_shift {
                let shift = if flags.syn() { 0 } else { shift };
                streams[side.other().index()].window(pkt.ack, u32::from(pkt.window) << shift);
            }
        }
        for s in [Side::Orig, Side::Resp] {
            sink.side = s;
            streams[s.index()].tick(&limits, mem, &mut sink);
        }
        let done = sink.is_done();
        let both_ended = streams[0].is_ended() && streams[1].is_ended();
        // A one-sided connection that carries a file (an upload, or a download seen from one
        // side only) is worth keeping as an established one.
        let carries_file = meta.files_opened.get() > 0;
        if carries_file && self.flows.lane(id) == LANE_ONE_SIDED {
            self.flows.set_lane(id, LANE_ESTABLISHED);
        }
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

    /// The checks a segment of connection `id` from `side` passes before it counts: its checksum
    /// (`checksum`: `None` when not checked) under `--checksums auto`, and what marks the side
    /// (a TTL other than its first packet's, data on a SYN, urgent data). False: dropped.
    fn segment_counts(&mut self, id: u32, side: Side, pkt: &wire::TcpPacket<'_>, checksum: Option<bool>) -> bool {
        let conn = self.flows.get_mut(id);
        let tcp = &mut self.tcp;
        let si = side.index();
        let stream = &mut conn.streams[si];
        match checksum {
            Some(false) => {
                if tcp.checksum_offload_assumed == 0 {
                    tcp.bad_checksum_dropped += 1;
                    stream.flag(Anomaly::TcpBadChecksum);
                    return false;
                }
                tcp.bad_checksum_taken += 1;
                conn.checksum_bad_taken[si] = true;
                if conn.checksum_good[si] {
                    stream.flag(Anomaly::TcpBadChecksum);
                }
            }
            Some(true) if !conn.checksum_good[si] => {
                conn.checksum_good[si] = true;
                if conn.checksum_bad_taken[si] {
                    // Not offload after all: what was taken before may never have reached the host.
                    stream.flag(Anomaly::TcpBadChecksum);
                }
            }
            _ => {}
        }
        let has_data = !pkt.payload.is_empty() || pkt.missing_tail > 0;
        match conn.ttl[si] {
            None => conn.ttl[si] = Some(pkt.ttl),
            Some(t) if t != pkt.ttl && has_data => {
                tcp.ttl_changed_segments += 1;
                stream.flag(Anomaly::TcpTtlChanged);
            }
            _ => {}
        }
        if has_data && pkt.flags.syn() {
            tcp.syn_data_segments += 1;
            stream.flag(Anomaly::TcpSynData);
        }
        if has_data && pkt.flags.urg() {
            tcp.urgent_segments += 1;
            stream.flag(Anomaly::TcpUrgentData);
        }
        true
    }

    /// A packet of a flow with no connection: handshake packets go to (or leave) the embryo pool;
    /// the first byte makes a connection, from the embryo if there is one. Returns the connection
    /// the packet is then processed on, or None when nothing more is to be done with it.
    fn unknown_flow(&mut self, key: FlowKey, src: Endpoint, dst: Endpoint, pkt: &wire::TcpPacket<'_>) -> Option<u32> {
        let flags = pkt.flags;
        let has_data = !pkt.payload.is_empty() || pkt.missing_tail > 0;
        let embryo = self.embryos.lookup(&key);
        if has_data {
            return match embryo {
                Some(e) => {
                    let e = self.embryos.remove(e);
                    self.tcp.embryos_promoted += 1;
                    Some(self.promote(key, e, src, pkt))
                }
                None => self.new_conn(key, src, dst, pkt),
            };
        }
        if flags.rst() || flags.fin() {
            // The attempt ended before a byte: nothing to parse, nothing to keep.
            if let Some(e) = embryo {
                let e = self.embryos.remove(e);
                self.tcp.embryos_closed += 1;
                if e.unanswered() {
                    self.tcp.syn_without_synack += 1;
                }
            }
            return None;
        }
        let now = self.now;
        if let Some(id) = embryo {
            self.tcp.segments += 1;
            self.embryos.touch(id);
            let e = self.embryos.get_mut(id);
            e.last_seen = now;
            if flags.syn() && !flags.ack() && e.is_orig(src, &key) {
                // A retransmitted SYN, or a new attempt: the latest sequence number counts.
                e.set_syn(pkt.seq, pkt.window_scale);
            } else if flags.syn() && flags.ack() && e.is_orig(dst, &key) && e.synack().is_none() {
                e.set_synack(pkt.seq, pkt.ack, pkt.window_scale);
                if e.syn().is_some() {
                    self.tcp.handshakes += 1;
                } else {
                    self.tcp.synack_without_syn += 1;
                }
            }
            return None;
        }
        if !flags.syn() {
            // A bare ACK of a flow we do not know says nothing worth tracking.
            return None;
        }
        let (orig, resp) = if flags.ack() { (dst, src) } else { (src, dst) };
        let Some(proto) = self.ports.get(resp.port) else {
            if !flags.ack() {
                self.tcp.flows_ignored += 1;
            }
            return None;
        };
        if self.embryos.len() >= self.cfg.max_flows.max(1) {
            // The pool is full (a flood): the oldest attempt goes, never a connection.
            if self.evict_embryo() {
                self.tcp.evictions_table_full += 1;
            }
        }
        // Over the memory budget an attempt makes room only among attempts: a flood never
        // costs a connection its place.
        while !self.fits(EMBRYO_BYTES) || !self.embryonic_fits(EMBRYO_BYTES) {
            // Over the share alone, a one-sided connection may go for it too.
            let share_only = self.fits(EMBRYO_BYTES);
            let evicted = self.evict_embryo() || (share_only && self.evict_one_sided());
            if !evicted {
                self.tcp.embryos_refused += 1;
                return None;
            }
            self.tcp.evictions_memory += 1;
        }
        let mut e = Embryo::new(orig == key.lo, proto, now);
        if flags.ack() {
            self.tcp.synack_without_syn += 1;
            e.set_synack(pkt.seq, pkt.ack, pkt.window_scale);
        } else {
            e.set_syn(pkt.seq, pkt.window_scale);
        }
        self.tcp.embryos_created += 1;
        self.tcp.segments += 1;
        self.embryos.insert(LANE_EMBRYO, key, e);
        None
    }

    /// The first byte of a flow whose handshake was seen: its connection starts where the
    /// handshake said, from when it began.
    fn promote(&mut self, key: FlowKey, e: Embryo, src: Endpoint, pkt: &wire::TcpPacket<'_>) -> u32 {
        let from_orig = e.is_orig(src, &key);
        let (orig_ip, resp_ip) = if from_orig {
            (pkt.src, pkt.dst)
        } else {
            (pkt.dst, pkt.src)
        };
        let resp_port = if from_orig { pkt.dport } else { pkt.sport };
        // The originator's SYN names the connection; without it, the SYN-ACK's acknowledgement
        // (the same number, one on).
        let first_seq = e
            .syn()
            .or(e.synack().map(|(_, ack)| ack.wrapping_sub(1)))
            .unwrap_or(pkt.seq);
        let id = self.insert_conn(
            key,
            e.orig(&key),
            orig_ip,
            resp_ip,
            resp_port,
            pkt.vlan,
            e.proto,
            e.first_seen,
            first_seq,
            match (e.syn(), e.synack()) {
                (Some(_), Some(_)) => LANE_ESTABLISHED,
                _ => LANE_ONE_SIDED,
            },
        );
        self.tcp.flows_created += 1;
        let conn = self.flows.get_mut(id);
        conn.syn_wscale = e.syn_wscale();
        if let Some(isn) = e.syn() {
            conn.syn_seen = true;
            conn.heard[Side::Orig.index()] = true;
            conn.streams[Side::Orig.index()].syn(isn);
        }
        if let Some((seq, ack)) = e.synack() {
            conn.synack_seen = true;
            conn.heard[Side::Resp.index()] = true;
            conn.streams[Side::Resp.index()].syn(seq);
            conn.streams[Side::Orig.index()].expect(ack);
        }
        id
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
        let proto = match self.ports.get(resp.port) {
            Some(proto) => proto,
            None => {
                let detected = match self.cfg.detect_other_ports && has_data {
                    true => self.cfg.protocols.detect(pkt.payload),
                    false => None,
                };
                let Some((proto, opener)) = detected else {
                    if flags.syn() && !flags.ack() {
                        self.tcp.flows_ignored += 1;
                    }
                    return None;
                };
                (orig, resp) = match opener {
                    Opener::Client => (src, dst),
                    Opener::Server => (dst, src),
                };
                self.tcp.flows_detected += 1;
                // Not a mid-stream pickup: detection looks at the first bytes of a session.
                handshake = true;
                proto
            }
        };
        let (orig_ip, resp_ip) = if orig == src {
            (pkt.src, pkt.dst)
        } else {
            (pkt.dst, pkt.src)
        };
        // Named by the originator's initial sequence number, as a flow whose SYN was seen is: one
        // before its first byte, or one before what the responder acknowledges. Then a flow
        // found by its content (whose SYN was not tracked) has the id it has where its port is
        // configured.
        let first_seq = match (orig == src, flags.syn()) {
            (true, true) => pkt.seq,
            (true, false) => pkt.seq.wrapping_sub(1),
            (false, _) => pkt.ack.wrapping_sub(1),
        };
        let id = self.insert_conn(
            key,
            orig,
            orig_ip,
            resp_ip,
            resp.port,
            pkt.vlan,
            proto,
            self.now,
            first_seq,
            LANE_ONE_SIDED,
        );
        let tcp = &mut self.tcp;
        tcp.flows_created += 1;
        if !handshake {
            tcp.flows_midstream += 1;
        }
        Some(id)
    }

    /// A new connection in the table (evicting the least recently active one at the bound).
    #[allow(clippy::too_many_arguments)]
    fn insert_conn(
        &mut self,
        key: FlowKey,
        orig: Endpoint,
        orig_ip: std::net::IpAddr,
        resp_ip: std::net::IpAddr,
        resp_port: u16,
        vlan: Option<u16>,
        proto: u8,
        start: Timestamp,
        first_seq: u32,
        lane: usize,
    ) -> u32 {
        if self.flows.len() >= self.cfg.max_flows.max(1) && self.evict_conn() {
            self.tcp.evictions_table_full += 1;
        }
        // The connection and the parser its first byte makes.
        let need = CONN_BYTES + self.protocols[proto as usize].parser_bytes();
        while !self.fits(need) {
            if !self.evict_embryo() && !self.evict_conn() {
                break;
            }
            self.tcp.evictions_memory += 1;
        }
        while lane == LANE_ONE_SIDED && !self.embryonic_fits(CONN_BYTES + self.parser_max) {
            if !self.evict_embryo() && !self.evict_one_sided() {
                break;
            }
            self.tcp.evictions_memory += 1;
        }
        let id = self.cfg.ids.conn_id(&key.words(), first_seq);
        let meta = ConnMeta {
            uid: xdpcarve_contract::zeek_id('C', id),
            id,
            files_opened: Default::default(),
            orig_h: orig_ip,
            orig_p: orig.port,
            resp_h: resp_ip,
            resp_p: resp_port,
            vlan,
            start,
        };
        let conn = Conn {
            meta,
            orig,
            parser: Some(ConnParser { proto, state: None }),
            streams: [Stream::new(), Stream::new()],
            last_seen: self.now,
            state: ConnState::Active,
            opaque_fin: [false, false],
            syn_seen: false,
            synack_seen: false,
            heard: [false, false],
            checksum_good: [false, false],
            checksum_bad_taken: [false, false],
            ttl: [None, None],
            syn_wscale: [None, None],
        };
        self.flows.insert(lane, key, conn)
    }

    /// Makes room for a connection: the least recently active of the cheapest lane goes, so
    /// that a flood of attempts or one-sided flows never evicts an established connection.
    fn evict_conn(&mut self) -> bool {
        let Some((lane, id)) = EVICTION_ORDER
            .into_iter()
            .find_map(|lane| self.flows.oldest(lane).map(|id| (lane, id)))
        else {
            return false;
        };
        self.evict(lane, id);
        true
    }

    /// Evicts the least recently active one-sided connection; false when there is none.
    fn evict_one_sided(&mut self) -> bool {
        let Some(id) = self.flows.oldest(LANE_ONE_SIDED) else {
            return false;
        };
        self.evict(LANE_ONE_SIDED, id);
        true
    }

    /// Evicts connection `id` of `lane` (a finished one is only forgotten), counted by its lane.
    fn evict(&mut self, lane: usize, id: u32) {
        if lane == LANE_CLOSED {
            self.flows.remove(id);
            return;
        }
        self.tcp.flows_evicted += 1;
        if lane == LANE_ONE_SIDED {
            self.tcp.flows_evicted_one_sided += 1;
        } else {
            self.tcp.flows_evicted_established += 1;
        }
        self.close(id, CloseReason::Evicted, false);
    }

    /// Forgets the oldest attempt; false when there is none.
    fn evict_embryo(&mut self) -> bool {
        let Some(id) = self.embryos.oldest(LANE_EMBRYO) else {
            return false;
        };
        let e = self.embryos.remove(id);
        self.tcp.embryos_evicted += 1;
        if e.unanswered() {
            self.tcp.syn_without_synack += 1;
        }
        true
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
            meta,
            parser,
            streams,
            syn_seen,
            synack_seen,
            ..
        } = conn;
        if *syn_seen && !*synack_seen {
            self.tcp.syn_without_synack += 1;
        }
        self.files.conn_anomalies = [streams[0].anomalies(), streams[1].anomalies()];
        if let Some(mut parser) = parser.take() {
            let proto = &mut *self.protocols[parser.proto as usize];
            let mut sink = ParserSink {
                proto,
                parser: &mut parser.state,
                side: Side::Orig,
                conn: meta,
                now: self.now,
                packet_now: self.now,
                files: &mut self.files,
                tcp: &mut self.tcp,
                parser_bytes: &mut self.parser_bytes,
            };
            for side in [Side::Orig, Side::Resp] {
                sink.side = side;
                streams[side.index()].flush(rst, &self.limits, &mut self.mem, &mut sink);
            }
            // A connection that never carried anything to parse has nothing to close.
            if sink.parser.is_some() {
                let (proto, parser, ev) = sink.parts();
                proto.on_close(parser, reason, ev);
                let bytes = proto.parser_bytes();
                self.parser_bytes = self.parser_bytes.saturating_sub(bytes);
            }
        }
        for s in streams.iter_mut() {
            s.release(&mut self.mem);
        }
        let tcp = &mut self.tcp;
        tcp.flows_closed += 1;
        if reason == CloseReason::Timeout {
            tcp.flows_timed_out += 1;
        }
        if reason == CloseReason::Finished {
            let conn = self.flows.get_mut(id);
            conn.state = ConnState::Closed;
            conn.streams = [Stream::new(), Stream::new()];
            self.flows.set_lane(id, LANE_CLOSED);
        } else {
            self.flows.remove(id);
        }
    }

    /// How long a connection in `state` may stay idle.
    fn idle_limit(&self, lane: usize) -> Duration {
        match lane {
            LANE_CLOSED => CLOSED_LINGER.min(self.cfg.idle_timeout),
            LANE_ONE_SIDED => EMBRYO_TIMEOUT.min(self.cfg.idle_timeout),
            _ => self.cfg.idle_timeout,
        }
    }

    /// Closes connections idle past the timeout, oldest first, and forgets finished ones whose
    /// linger time passed.
    fn expire_idle(&mut self) {
        while let Some(id) = self.embryos.oldest(LANE_EMBRYO) {
            let e = self.embryos.get(id);
            if self.now.since(e.last_seen) < EMBRYO_TIMEOUT.min(self.cfg.idle_timeout) {
                break;
            }
            let e = self.embryos.remove(id);
            self.tcp.embryos_timed_out += 1;
            if e.unanswered() {
                self.tcp.syn_without_synack += 1;
            }
        }
        for lane in EVICTION_ORDER {
            while let Some(id) = self.flows.oldest(lane) {
                let conn = self.flows.get(id);
                if self.now.since(conn.last_seen) < self.idle_limit(lane) {
                    break;
                }
                if lane == LANE_CLOSED {
                    self.flows.remove(id);
                } else {
                    if lane == LANE_ONE_SIDED {
                        self.tcp.flows_timed_out_one_sided += 1;
                    }
                    self.close(id, CloseReason::Timeout, false);
                }
            }
        }
    }
}

#[cfg(test)]
mod evasion_tests;
#[cfg(test)]
mod tests;
