//! Live runtime: the XDP program steers the protocols' ports into one AF_XDP socket per NIC
//! queue; one pinned thread per queue owns a [`Worker`] (engine and record sink; no locks shared
//! on the packet path). Runs until SIGINT or SIGTERM, then detaches XDP, closes every connection
//! (open files are logged as truncated), and reports.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Result};
use clap::Args;
use xdpcarve_contract::{CounterSet, LinkType, ShedLevel, Timestamp};
use xdpcarve_core::{Engine, EngineConfig, RecordSink, Worker, WorkerReport};
use xdpcarve_files::HashPool;
use xdpcarve_xdp::{
    FrameHandler, Interface, LiveCapture, LiveConfig, LiveSummary, QueueSelection, QueueStats, RingConfig, XdpCounters,
    XdpModeChoice,
};

/// Live capture flags.
#[derive(Args, Debug, Clone)]
pub struct LiveArgs {
    /// Capture live from this interface: an XDP program steers TCP to and from the HTTP and SMTP
    /// ports into per-queue AF_XDP sockets, everything else passes untouched. Needs root, or
    /// CAP_BPF, CAP_PERFMON, CAP_NET_ADMIN, CAP_NET_RAW and CAP_IPC_LOCK. Stops on SIGINT/SIGTERM.
    #[arg(short = 'i', long = "interface", value_name = "IFACE", conflicts_with = "read")]
    pub interface: Option<String>,

    /// XDP attach mode: auto (native if the driver supports it, else generic), native, generic.
    #[arg(long, value_name = "MODE", default_value = "auto", value_parser = clap::value_parser!(XdpModeChoice))]
    pub xdp_mode: XdpModeChoice,

    /// NIC queues to capture, one worker thread each: "all" (every combined channel), or ids and
    /// ranges like "0-3" or "0,2". The NIC's RSS must be symmetric (deploy/nic-setup.sh).
    #[arg(long, value_name = "LIST", default_value = "all", value_parser = clap::value_parser!(QueueSelection))]
    pub queues: QueueSelection,

    /// Locked memory per queue for its UMEM and rings: the rx and fill rings get the largest
    /// power of two of entries it has frames for, so bursts wait in the ring instead of being
    /// dropped (256M holds about 1.5 s of a 1 Gbit/s link; README "Sizing").
    #[arg(long, value_name = "SIZE", default_value = "256M", value_parser = crate::cli::parse_size)]
    pub capture_memory: u64,

    /// UMEM frame size in bytes: 2048 or 4096. Larger packets arrive in several frames (kernel 6.6+).
    #[arg(long, value_name = "BYTES", default_value_t = 2048)]
    pub frame_size: u32,

    /// UMEM frames per queue, instead of what --capture-memory gives.
    #[arg(long, value_name = "N")]
    pub umem_frames: Option<u32>,

    /// Fill ring entries per queue (power of two), instead of what --capture-memory gives.
    #[arg(long, value_name = "N")]
    pub fill_ring: Option<u32>,

    /// RX ring entries per queue (power of two), instead of what --capture-memory gives.
    #[arg(long, value_name = "N")]
    pub rx_ring: Option<u32>,

    /// Most frames a worker takes off its RX ring at once.
    #[arg(long, value_name = "N", default_value_t = 256)]
    pub rx_batch: u32,

    /// Do not pin worker threads to cores.
    #[arg(long)]
    pub no_pin: bool,
}

impl LiveArgs {
    /// The rings the flags describe: from --capture-memory, then any ring flag given.
    pub fn rings(&self) -> Result<RingConfig> {
        let mut r = RingConfig::from_memory(self.capture_memory, self.frame_size)?;
        r.umem_frames = self.umem_frames.unwrap_or(r.umem_frames);
        r.fill_ring = self.fill_ring.unwrap_or(r.fill_ring);
        r.rx_ring = self.rx_ring.unwrap_or(r.rx_ring);
        r.batch = self.rx_batch;
        r.validate()?;
        Ok(r)
    }
}

/// How many workers (queues) a live run on `args.interface` will have, so the caller can create
/// one record sink per worker before [`run`].
pub fn worker_count(args: &LiveArgs) -> Result<usize> {
    let name = args
        .interface
        .as_deref()
        .ok_or_else(|| anyhow!("no --interface given"))?;
    let iface = Interface::lookup(name)?;
    Ok(args.queues.resolve(&iface)?.len())
}

/// A worker's flows now.
#[derive(Copy, Clone, Debug, Default)]
pub struct FlowGauges {
    /// Connections (flows that carried a byte).
    pub active: u64,
    /// Attempts that carried no byte yet, in their own pool.
    pub embryonic: u64,
    /// The connection table or the attempt pool is at least 90 % full.
    pub under_pressure: bool,
}

/// Where live counters are published (the Prometheus hub of the egress crate implements it).
/// Called from worker threads about once a second and from the control thread, never per packet.
pub trait LiveMetrics: Send + Sync {
    /// A worker's counters (totals since start), its flows and its shedding level now.
    fn worker(&self, worker_id: usize, counters: &CounterSet, flows: FlowGauges, shed: ShedLevel);
    /// The XDP program's counters and every queue's socket counters (totals since start).
    fn capture(&self, xdp: &XdpCounters, queues: &[QueueStats]);
}

/// How often a worker publishes its counters.
const PUBLISH_EVERY_NS: u64 = 1_000_000_000;

/// One queue's worker, as the AF_XDP receive loop drives it.
struct LiveWorker<S: RecordSink> {
    worker: Worker<S>,
    worker_id: usize,
    hub: Option<Arc<dyn LiveMetrics>>,
    next_publish: u64,
    /// Set when this worker's sink failed: stops the whole run.
    fatal: Arc<AtomicBool>,
    /// Hash threads (`--hash-threads`): their queues are backlog too.
    pool: Option<Arc<HashPool>>,
    result: Arc<Mutex<Option<WorkerReport>>>,
}

impl<S: RecordSink> LiveWorker<S> {
    fn publish(&self) {
        if let Some(hub) = &self.hub {
            let engine = self.worker.engine();
            let flows = FlowGauges {
                active: engine.active_flows() as u64,
                embryonic: engine.embryonic_flows() as u64,
                under_pressure: engine.under_pressure(),
            };
            hub.worker(self.worker_id, &self.worker.counters(), flows, self.worker.shed_level());
        }
    }

    fn check(&self) {
        if self.worker.failed() && !self.fatal.swap(true, Ordering::SeqCst) {
            tracing::error!("worker {}: the record sink failed; stopping", self.worker_id);
        }
    }
}

impl<S: RecordSink> FrameHandler for LiveWorker<S> {
    #[inline]
    fn frame(&mut self, ts_ns: u64, frame: &[u8]) {
        if !self.worker.failed() {
            // Every frame is Ethernet: `LiveCapture::start` refuses other interfaces.
            self.worker.handle_packet(Timestamp(ts_ns), LinkType::Ethernet, frame);
            self.check();
        }
    }

    fn poll_timeout(&self) -> Option<u64> {
        let engine = self.worker.poll_timeout().map(|t| t.as_nanos());
        Some(engine.map_or(self.next_publish, |t| t.min(self.next_publish)))
    }

    fn handle_timeout(&mut self, now_ns: u64) {
        if self.worker.poll_timeout().is_some_and(|t| t.as_nanos() <= now_ns) {
            self.worker.handle_timeout(Timestamp(now_ns));
            self.check();
        }
        if now_ns >= self.next_publish {
            self.publish();
            self.next_publish = now_ns.saturating_add(PUBLISH_EVERY_NS);
        }
    }

    #[inline]
    fn backlog(&mut self, now_ns: u64, waiting: u32, capacity: u32) {
        let capacity = u64::from(capacity);
        // The fuller of the rx ring and the hash threads' queues, as a share of the ring.
        let hashing = self.pool.as_ref().map_or(0, |p| (p.fill() * capacity as f64) as u64);
        self.worker
            .observe_backlog(now_ns, u64::from(waiting).max(hashing), capacity);
    }

    fn finish(&mut self, now_ns: u64) {
        let report = self.worker.finish(Timestamp(now_ns));
        self.publish();
        *self.result.lock().unwrap_or_else(|p| p.into_inner()) = Some(report);
    }
}

/// What a live run did, for the summary and the exit status.
pub struct LiveReport {
    pub description: String,
    pub elapsed: Duration,
    pub summary: LiveSummary,
    /// One report per worker, in queue order.
    pub workers: Vec<WorkerReport>,
    /// Workers that ended without a report (their thread panicked): their records are lost.
    pub lost_workers: Vec<usize>,
}

/// Runs live capture until SIGINT/SIGTERM (or a sink failure). `sinks` holds one sink per worker
/// (see [`worker_count`]); the XDP program steers every port a protocol is registered on.
pub fn run<S>(
    args: &LiveArgs,
    cfg: EngineConfig,
    sinks: Vec<S>,
    hub: Option<Arc<dyn LiveMetrics>>,
    quiet: bool,
) -> Result<LiveReport>
where
    S: RecordSink + Send + 'static,
{
    let name = args.interface.clone().ok_or_else(|| anyhow!("no --interface given"))?;
    let config = LiveConfig {
        interface: name,
        mode: args.xdp_mode,
        queues: args.queues.clone(),
        ports: cfg.protocols.ports(),
        rings: args.rings()?,
        pin_workers: !args.no_pin,
        multi_buffer: true,
    };
    let iface = Interface::lookup(&config.interface)?;
    let queues = config.queues.resolve(&iface)?;
    if sinks.len() != queues.len() {
        return Err(anyhow!("{} record sinks for {} queues", sinks.len(), queues.len()));
    }

    // Each worker takes its sink and engine config once, at start (never on the packet path).
    let slots: Arc<Mutex<Vec<Option<S>>>> = Arc::new(Mutex::new(sinks.into_iter().map(Some).collect()));
    let results: Vec<Arc<Mutex<Option<WorkerReport>>>> = queues.iter().map(|_| Arc::default()).collect();
    let fatal = Arc::new(AtomicBool::new(false));
    let make_handler = {
        let queues = queues.clone();
        let results = results.clone();
        let fatal = fatal.clone();
        let hub = hub.clone();
        move |queue: u32| {
            let index = queues.iter().position(|&q| q == queue).expect("queue was selected");
            let sink = slots.lock().unwrap_or_else(|p| p.into_inner())[index]
                .take()
                .expect("one worker per queue");
            let mut cfg = cfg.clone();
            cfg.worker_id = index as u16;
            let pool = HashPool::from_handle(&cfg.files.offload);
            LiveWorker {
                pool,
                worker: Worker::new(Engine::new(cfg), sink),
                worker_id: index,
                hub: hub.clone(),
                next_publish: 0,
                fatal: fatal.clone(),
                result: results[index].clone(),
            }
        }
    };

    let stop = crate::signals::Stop::install(false)?.flag();
    let started = Instant::now();
    let capture = LiveCapture::start(&config, make_handler)?;
    let description = capture.info().describe();
    if !quiet {
        eprintln!("xdpcarve: capturing on {description}; stop with Ctrl-C (SIGINT) or SIGTERM");
    }
    let mut next_publish = Instant::now();
    while !stop.load(Ordering::SeqCst) && !fatal.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(100));
        if let Some(hub) = &hub {
            if Instant::now() >= next_publish {
                if let Ok(xdp) = capture.xdp_counters() {
                    hub.capture(&xdp, &capture.queue_stats());
                }
                next_publish = Instant::now() + Duration::from_secs(1);
            }
        }
    }
    // Wait up to a second for frames already in flight, then detach, drain and finish.
    let summary = capture.stop(Duration::from_secs(1))?;
    if let Some(hub) = &hub {
        hub.capture(&summary.xdp, &summary.queues);
    }
    let mut workers = Vec::new();
    let mut lost_workers = Vec::new();
    for (i, r) in results.iter().enumerate() {
        match r.lock().unwrap_or_else(|p| p.into_inner()).take() {
            Some(report) => workers.push(report),
            None => lost_workers.push(i),
        }
    }
    Ok(LiveReport {
        description,
        elapsed: started.elapsed(),
        summary,
        workers,
        lost_workers,
    })
}
