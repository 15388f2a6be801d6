//! The protocols an engine runs. A protocol crate implements `xdpcarve_contract::Protocol`; the
//! runtime registers it on its ports in one line ([`ProtocolRegistry::register`]); each engine
//! makes its own value of it (per-worker state, no sharing) and routes every connection on those
//! ports, or recognised by the protocol's `detect`, to a parser of it.

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use xdpcarve_contract::{
    AppContext, CloseReason, ConnMeta, CounterSet, FileSink, Opener, Protocol, Side, StreamParser, Timestamp,
};

/// A connection's parser, type-erased: which protocol, and its state once the connection carried
/// something to parse (a SYN flood's flows never get one: they cost no parser allocation).
pub(crate) struct ConnParser {
    pub proto: u8,
    pub state: Option<Box<dyn Any + Send>>,
}

/// One connection's event as the engine hands it over.
pub(crate) struct Event<'a> {
    pub conn: &'a ConnMeta,
    pub now: Timestamp,
    pub files: &'a mut FileSink,
}

/// A registered protocol inside one engine: object-safe, so the engine holds protocols it was
/// not compiled against.
pub(crate) trait RunningProtocol: Send {
    fn new_parser(&mut self, conn: &ConnMeta) -> Box<dyn Any + Send>;
    /// Bytes a parser's own state takes on the heap (its box; what it holds beyond that is
    /// bounded per connection by the protocol's own limits).
    fn parser_bytes(&self) -> usize;
    /// Hands over in-order bytes; false (and nothing done) when the parser is done with the
    /// stream (one call per segment: the check and the call share one dynamic dispatch).
    fn on_data(&mut self, parser: &mut dyn Any, from: Side, data: &[u8], ev: Event<'_>) -> bool;
    /// Reports missing bytes; nothing when the parser is done with the stream.
    fn on_gap(&mut self, parser: &mut dyn Any, from: Side, len: u64, ev: Event<'_>);
    fn on_end(&mut self, parser: &mut dyn Any, from: Side, ev: Event<'_>);
    fn on_close(&mut self, parser: &mut dyn Any, reason: CloseReason, ev: Event<'_>);
    fn is_done(&self, parser: &dyn Any) -> bool;
    fn poll_timeout(&self) -> Option<Timestamp>;
    fn handle_timeout(&mut self, now: Timestamp, files: &mut FileSink);
    fn finish(&mut self, now: Timestamp, files: &mut FileSink);
    /// The protocol's counters, and `<name>.files`: the files its parsers finished.
    fn counters(&self, out: &mut CounterSet);
}

struct Running<P: Protocol> {
    proto: P,
    /// Files finished while this protocol had the event (its per-protocol file count).
    files: u64,
}

impl<P: Protocol> Running<P> {
    fn parser(parser: &mut dyn Any) -> &mut P::Parser {
        parser
            .downcast_mut::<P::Parser>()
            .expect("the engine hands a protocol only its own parsers")
    }

    /// Runs `f` with the connection's context and counts the files it finished.
    fn with_cx(&mut self, ev: Event<'_>, f: impl FnOnce(&mut AppContext<'_, P>)) {
        let before = ev.files.stats.files;
        let mut cx = AppContext {
            conn: ev.conn,
            now: ev.now,
            files: ev.files,
            state: &mut self.proto,
        };
        f(&mut cx);
        self.files += cx.files.stats.files - before;
    }

    fn with_files(&mut self, files: &mut FileSink, f: impl FnOnce(&mut P, &mut FileSink)) {
        let before = files.stats.files;
        f(&mut self.proto, files);
        self.files += files.stats.files - before;
    }
}

impl<P: Protocol> RunningProtocol for Running<P> {
    fn new_parser(&mut self, conn: &ConnMeta) -> Box<dyn Any + Send> {
        Box::new(self.proto.new_parser(conn))
    }
    fn parser_bytes(&self) -> usize {
        std::mem::size_of::<P::Parser>()
    }
    #[inline]
    fn on_data(&mut self, parser: &mut dyn Any, from: Side, data: &[u8], ev: Event<'_>) -> bool {
        let p = Self::parser(parser);
        if p.is_done() {
            return false;
        }
        self.with_cx(ev, |cx| p.on_data(from, data, cx));
        true
    }
    fn on_gap(&mut self, parser: &mut dyn Any, from: Side, len: u64, ev: Event<'_>) {
        let p = Self::parser(parser);
        if !p.is_done() {
            self.with_cx(ev, |cx| p.on_gap(from, len, cx));
        }
    }
    fn on_end(&mut self, parser: &mut dyn Any, from: Side, ev: Event<'_>) {
        let p = Self::parser(parser);
        self.with_cx(ev, |cx| p.on_end(from, cx));
    }
    fn on_close(&mut self, parser: &mut dyn Any, reason: CloseReason, ev: Event<'_>) {
        let p = Self::parser(parser);
        self.with_cx(ev, |cx| p.on_close(reason, cx));
    }
    #[inline]
    fn is_done(&self, parser: &dyn Any) -> bool {
        parser
            .downcast_ref::<P::Parser>()
            .expect("the engine hands a protocol only its own parsers")
            .is_done()
    }
    fn poll_timeout(&self) -> Option<Timestamp> {
        self.proto.poll_timeout()
    }
    fn handle_timeout(&mut self, now: Timestamp, files: &mut FileSink) {
        self.with_files(files, |p, files| p.handle_timeout(now, files));
    }
    fn finish(&mut self, now: Timestamp, files: &mut FileSink) {
        self.with_files(files, |p, files| p.finish(now, files));
    }
    fn counters(&self, out: &mut CounterSet) {
        out.add(P::NAME, "files", self.files);
        self.proto.counters(out);
    }
}

type MakeProtocol = dyn Fn() -> Box<dyn RunningProtocol> + Send + Sync;

#[derive(Clone)]
struct Registration {
    name: &'static str,
    ports: Vec<u16>,
    detect: fn(&[u8]) -> Option<Opener>,
    make: Arc<MakeProtocol>,
}

/// The protocols an engine runs, with their ports, in registration order (which is also the
/// order detection tries them, and who wins a port listed twice: the first).
#[derive(Clone, Default)]
pub struct ProtocolRegistry {
    entries: Vec<Registration>,
}

/// More protocols than a port map can tell apart.
pub const MAX_PROTOCOLS: usize = 254;

impl ProtocolRegistry {
    pub fn new() -> Self {
        ProtocolRegistry::default()
    }

    /// Runs protocol `P` on connections to `ports` (and on connections its `detect` recognises).
    /// `make` builds the per-worker value, once per engine.
    pub fn register<P: Protocol>(mut self, ports: &[u16], make: impl Fn() -> P + Send + Sync + 'static) -> Self {
        assert!(self.entries.len() < MAX_PROTOCOLS, "at most {MAX_PROTOCOLS} protocols");
        self.entries.push(Registration {
            name: P::NAME,
            ports: ports.to_vec(),
            detect: P::detect,
            make: Arc::new(move || {
                Box::new(Running {
                    proto: make(),
                    files: 0,
                })
            }),
        });
        self
    }

    /// Names of the registered protocols, in order.
    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.entries.iter().map(|e| e.name)
    }

    /// Every port some protocol is registered on, sorted, without repeats (what live capture
    /// steers).
    pub fn ports(&self) -> Vec<u16> {
        let mut ports: Vec<u16> = self.entries.iter().flat_map(|e| e.ports.iter().copied()).collect();
        ports.sort_unstable();
        ports.dedup();
        ports
    }

    /// Every protocol's value for one engine, and the port map.
    pub(crate) fn instantiate(&self) -> (Vec<Box<dyn RunningProtocol>>, PortMap) {
        let mut map = PortMap::empty();
        // Reverse order, so the first registration of a port overwrites later ones.
        for (i, e) in self.entries.iter().enumerate().rev() {
            for &p in &e.ports {
                map.set(p, i as u8);
            }
        }
        let running = self.entries.iter().map(|e| (e.make)()).collect();
        (running, map)
    }

    /// The first protocol whose detection recognises `payload`.
    pub(crate) fn detect(&self, payload: &[u8]) -> Option<(u8, Opener)> {
        self.entries
            .iter()
            .enumerate()
            .find_map(|(i, e)| (e.detect)(payload).map(|o| (i as u8, o)))
    }
}

impl fmt::Debug for ProtocolRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.entries.iter().map(|e| (e.name, &e.ports)))
            .finish()
    }
}

/// Port → protocol lookup: one byte per port, so the check per packet is a single load.
pub(crate) struct PortMap {
    map: Box<[u8; 65536]>,
}

const NO_PROTOCOL: u8 = u8::MAX;

impl PortMap {
    fn empty() -> Self {
        let map: Box<[u8; 65536]> = vec![NO_PROTOCOL; 65536]
            .into_boxed_slice()
            .try_into()
            .expect("65536 entries");
        PortMap { map }
    }

    fn set(&mut self, port: u16, proto: u8) {
        self.map[port as usize] = proto;
    }

    /// The protocol registered on `port`.
    #[inline]
    pub fn get(&self, port: u16) -> Option<u8> {
        let p = self.map[port as usize];
        (p != NO_PROTOCOL).then_some(p)
    }
}
