//! One worker: an [`Engine`], the [`RecordSink`] its records go to, and what it did. Every
//! runtime drives its packets through this one type (the capture-file reader, each live AF_XDP
//! queue, the benchmark), so they cannot differ in how time, records or sink failures are
//! handled.
//!
//! The driver's loop, whatever the packet source:
//! ```text
//! for each packet:      worker.handle_packet(ts, link, frame)   (stop if worker.failed())
//! when idle:            sleep until worker.poll_timeout(), then worker.handle_timeout(now)
//! at the end:           let report = worker.finish(last_ts)
//! ```

use std::error::Error;
use std::time::Duration;

use xdpcarve_contract::{CounterSet, FileRecord, LinkType, Timestamp};

use crate::overload::LoadMonitor;
use crate::{Engine, FlowMemory};

/// Where a worker's finished records go (the egress queue, a files log, a `Vec` in tests and
/// benchmarks). Records are handed over as soon as they exist.
pub trait RecordSink {
    /// Why a record could not be taken; it stops the worker (e.g. the egress thread died).
    type Error: Error + Send + Sync + 'static;
    fn record(&mut self, rec: FileRecord) -> Result<(), Self::Error>;
    /// Makes everything handed over so far durable or visible; called once, at the end.
    fn flush(&mut self) -> Result<(), Self::Error> {
        Ok(())
    }
}

/// Collecting records in memory never fails.
impl RecordSink for Vec<FileRecord> {
    type Error = std::convert::Infallible;
    fn record(&mut self, rec: FileRecord) -> Result<(), Self::Error> {
        self.push(rec);
        Ok(())
    }
}

/// What one worker did, for the summary, the metrics and the exit status.
#[derive(Debug, Default)]
pub struct WorkerReport {
    /// Every counter of the engine at the end.
    pub counters: CounterSet,
    /// Records handed to the sink, their decoded bytes, and how many had missing bytes.
    pub files: u64,
    pub file_bytes: u64,
    pub files_with_gaps: u64,
    /// Capture time from the first to the last packet.
    pub capture_span: Duration,
    /// Most connections tracked at once (sampled every 4096 packets and at the end).
    pub max_flows: usize,
    /// Flow state: each category's peak, the peak of their sum, and the budget (--memory).
    pub memory_peak: FlowMemory,
    pub memory_peak_total: usize,
    pub memory_budget: usize,
    /// The sink failed: records from then on were not delivered, and the run must fail.
    pub sink_error: Option<Box<dyn Error + Send + Sync>>,
}

/// Packets between two samples of the flow count.
const FLOW_SAMPLE_EVERY: u32 = 4096;

/// An engine and its record sink.
pub struct Worker<S: RecordSink> {
    engine: Engine,
    sink: S,
    error: Option<S::Error>,
    files: u64,
    file_bytes: u64,
    files_with_gaps: u64,
    first_ts: Option<Timestamp>,
    last_ts: Timestamp,
    max_flows: usize,
    until_sample: u32,
    load: LoadMonitor,
}

impl<S: RecordSink> Worker<S> {
    pub fn new(engine: Engine, sink: S) -> Self {
        let load = LoadMonitor::new(engine.config().overload, engine.load_signal());
        Worker {
            load,
            engine,
            sink,
            error: None,
            files: 0,
            file_bytes: 0,
            files_with_gaps: 0,
            first_ts: None,
            last_ts: Timestamp::ZERO,
            max_flows: 0,
            until_sample: FLOW_SAMPLE_EVERY,
        }
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The sink failed; the driver should stop feeding packets (nothing more is delivered).
    pub fn failed(&self) -> bool {
        self.error.is_some()
    }

    /// Records handed to the sink so far.
    pub fn files(&self) -> u64 {
        self.files
    }

    /// Processes one captured frame and hands any finished records to the sink.
    #[inline]
    pub fn handle_packet(&mut self, ts: Timestamp, link: LinkType, frame: &[u8]) {
        self.first_ts.get_or_insert(ts);
        self.last_ts = self.last_ts.max(ts);
        self.engine.handle_packet(ts, link, frame);
        self.forward();
        self.until_sample -= 1;
        if self.until_sample == 0 {
            self.until_sample = FLOW_SAMPLE_EVERY;
            self.max_flows = self.max_flows.max(self.engine.active_flows());
        }
    }

    /// The driver's view of this worker's backlog: `waiting` of `capacity` frames at `now_ns` (its
    /// own monotonic clock). Sets how much file work the next bytes shed ([`crate::overload`]).
    #[inline]
    pub fn observe_backlog(&mut self, now_ns: u64, waiting: u64, capacity: u64) {
        self.load.observe(now_ns, waiting, capacity);
    }

    /// Shedding now in force.
    pub fn shed_level(&self) -> xdpcarve_contract::ShedLevel {
        self.load.level()
    }

    /// Every counter: the engine's and overload control's (area `overload`).
    pub fn counters(&self) -> CounterSet {
        let mut set = self.engine.counters();
        self.load.stats().add_to("overload", &mut set);
        set
    }

    /// When the engine next needs [`Worker::handle_timeout`] if no packet arrives.
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        self.engine.poll_timeout()
    }

    /// Packet time reached `now` without a packet: runs the engine's due timers.
    pub fn handle_timeout(&mut self, now: Timestamp) {
        self.engine.handle_timeout(now);
        self.forward();
    }

    /// End of input or shutdown at packet time `ts`: closes every connection (open files are
    /// logged as truncated), hands over the last records, flushes the sink and reports.
    pub fn finish(&mut self, ts: Timestamp) -> WorkerReport {
        self.max_flows = self.max_flows.max(self.engine.active_flows());
        self.engine.finish(ts);
        self.forward();
        // Records whose hashes are still on hash threads: they finish in a moment.
        while self.engine.collect_pending() > 0 {
            std::thread::sleep(Duration::from_micros(200));
            self.forward();
        }
        if self.error.is_none() {
            if let Err(e) = self.sink.flush() {
                self.error = Some(e);
            }
        }
        WorkerReport {
            counters: self.counters(),
            files: self.files,
            file_bytes: self.file_bytes,
            files_with_gaps: self.files_with_gaps,
            capture_span: self.first_ts.map_or(Duration::ZERO, |f| self.last_ts.since(f)),
            max_flows: self.max_flows,
            memory_peak: self.engine.flow_memory_peak().0,
            memory_peak_total: self.engine.flow_memory_peak().1,
            memory_budget: self.engine.config().memory,
            sink_error: self.error.take().map(|e| Box::new(e) as Box<dyn Error + Send + Sync>),
        }
    }

    /// Gives the sink back (after [`Worker::finish`]).
    pub fn into_sink(self) -> S {
        self.sink
    }

    #[inline]
    fn forward(&mut self) {
        self.engine.collect_pending();
        if !self.engine.has_records() {
            return;
        }
        for rec in self.engine.drain_records() {
            if self.error.is_some() {
                // The sink is gone: what is left is not delivered (the report says so).
                continue;
            }
            let (size, gaps) = (rec.size, rec.missing_bytes > 0);
            match self.sink.record(rec) {
                Ok(()) => {
                    self.files += 1;
                    self.file_bytes += size;
                    self.files_with_gaps += u64::from(gaps);
                }
                Err(e) => self.error = Some(e),
            }
        }
    }
}
