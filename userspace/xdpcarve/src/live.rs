//! Live runtime: the XDP program steers the HTTP and SMTP ports into one AF_XDP socket per NIC
//! queue; one pinned worker per queue owns an [`Engine`] and a record sink (no locks shared on the
//! packet path). Runs until SIGINT or SIGTERM, then detaches XDP, closes every connection (open
//! files are logged as truncated), and prints the summary.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Result};
use clap::Args;
use xdpcarve_core::{Engine, EngineConfig, LinkType};
use xdpcarve_files::{Stats, Timestamp};
use xdpcarve_xdp::{
    FrameHandler, Interface, LiveCapture, LiveConfig, LiveSummary, QueueSelection, QueueStats, RingConfig, XdpCounters,
    XdpModeChoice,
};

use crate::sink::RecordSink;
use crate::summary::human_bytes;
use crate::worker;

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

    /// UMEM frames per queue (each --frame-size bytes; locked memory).
    #[arg(long, value_name = "N", default_value_t = RingConfig::default().umem_frames)]
    pub umem_frames: u32,

    /// UMEM frame size in bytes: 2048 or 4096. Larger packets arrive in several frames (kernel 6.6+).
    #[arg(long, value_name = "BYTES", default_value_t = RingConfig::default().frame_size)]
    pub frame_size: u32,

    /// Fill ring entries per queue (power of two).
    #[arg(long, value_name = "N", default_value_t = RingConfig::default().fill_ring)]
    pub fill_ring: u32,

    /// RX ring entries per queue (power of two).
    #[arg(long, value_name = "N", default_value_t = RingConfig::default().rx_ring)]
    pub rx_ring: u32,

    /// Most frames a worker takes off its RX ring at once.
    #[arg(long, value_name = "N", default_value_t = RingConfig::default().batch)]
    pub rx_batch: u32,

    /// Do not pin worker threads to cores.
    #[arg(long)]
    pub no_pin: bool,
}

impl LiveArgs {
    fn rings(&self) -> RingConfig {
        RingConfig {
            umem_frames: self.umem_frames,
            frame_size: self.frame_size,
            fill_ring: self.fill_ring,
            rx_ring: self.rx_ring,
            batch: self.rx_batch,
        }
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

/// Where live counters are published (the Prometheus hub of the egress crate implements it).
/// Called from worker threads about once a second and from the control thread, never per packet.
pub trait LiveMetrics: Send + Sync {
    /// A worker's engine counters (totals since start) and its tracked flows now.
    fn worker(&self, worker_id: usize, stats: &Stats, flows_active: u64);
    /// The XDP program's counters and every queue's socket counters (totals since start).
    fn capture(&self, xdp: &XdpCounters, queues: &[QueueStats]);
}

/// Set by the SIGINT/SIGTERM handler.
static STOP_REQUESTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_stop_signal(_signal: libc::c_int) {
    STOP_REQUESTED.store(true, Ordering::SeqCst);
}

fn install_stop_handlers() {
    let handler = on_stop_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
    unsafe {
        libc::signal(libc::SIGINT, handler);
        libc::signal(libc::SIGTERM, handler);
    }
}

/// What one worker leaves behind.
#[derive(Default)]
struct WorkerResult {
    stats: Stats,
    error: Option<anyhow::Error>,
}

/// One queue's worker: its engine and its sink.
struct LiveWorker<S: RecordSink> {
    engine: Engine,
    sink: S,
    worker_id: usize,
    hub: Option<Arc<dyn LiveMetrics>>,
    next_publish: u64,
    /// First sink error (e.g. disk full): stops this worker's logging and the whole run.
    error: Option<anyhow::Error>,
    fatal: Arc<AtomicBool>,
    result: Arc<Mutex<WorkerResult>>,
}

impl<S: RecordSink> LiveWorker<S> {
    fn check(&mut self, r: Result<()>) {
        if let Err(e) = r {
            if self.error.is_none() {
                tracing::error!("worker {}: {e:#}; stopping", self.worker_id);
                self.error = Some(e);
                self.fatal.store(true, Ordering::SeqCst);
            }
        }
    }

    fn publish(&self) {
        if let Some(hub) = &self.hub {
            hub.worker(self.worker_id, self.engine.stats(), self.engine.active_flows() as u64);
        }
    }
}

impl<S: RecordSink> FrameHandler for LiveWorker<S> {
    #[inline]
    fn frame(&mut self, ts_ns: u64, frame: &[u8]) {
        if self.error.is_some() {
            return;
        }
        let r = worker::process_packet(
            &mut self.engine,
            Timestamp(ts_ns),
            LinkType::Ethernet,
            frame,
            &mut self.sink,
        );
        self.check(r);
    }

    fn tick(&mut self, now_ns: u64) {
        if self.error.is_none() {
            let r = worker::advance_time(&mut self.engine, Timestamp(now_ns), &mut self.sink);
            self.check(r);
        }
        if now_ns >= self.next_publish {
            self.publish();
            self.next_publish = now_ns + 1_000_000_000;
        }
    }

    fn finish(&mut self, now_ns: u64) {
        if self.error.is_none() {
            let r = worker::finish(&mut self.engine, Timestamp(now_ns), &mut self.sink);
            self.check(r);
        } else {
            self.engine.finish(Timestamp(now_ns));
        }
        self.publish();
        let mut result = self.result.lock().expect("worker result");
        result.stats = self.engine.stats().clone();
        result.error = self.error.take();
    }
}

/// What a live run did, for the summary.
pub struct LiveReport {
    pub description: String,
    pub elapsed: Duration,
    pub summary: LiveSummary,
    /// Engine counters per worker, in queue order.
    pub workers: Vec<Stats>,
}

/// Runs live capture until SIGINT/SIGTERM (or a sink error). `sinks` holds one sink per worker
/// (see [`worker_count`]); `ports` are the TCP ports the XDP program steers.
pub fn run<S>(
    args: &LiveArgs,
    ports: Vec<u16>,
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
        ports,
        rings: args.rings(),
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
    let results: Vec<Arc<Mutex<WorkerResult>>> = queues.iter().map(|_| Arc::default()).collect();
    let fatal = Arc::new(AtomicBool::new(false));
    let make_handler = {
        let queues = queues.clone();
        let results = results.clone();
        let fatal = fatal.clone();
        let hub = hub.clone();
        move |queue: u32| {
            let index = queues.iter().position(|&q| q == queue).expect("queue was selected");
            let sink = slots.lock().expect("sink slots")[index]
                .take()
                .expect("one worker per queue");
            let mut cfg = cfg.clone();
            cfg.worker_id = index as u16;
            LiveWorker {
                engine: Engine::new(cfg),
                sink,
                worker_id: index,
                hub: hub.clone(),
                next_publish: 0,
                error: None,
                fatal: fatal.clone(),
                result: results[index].clone(),
            }
        }
    };

    install_stop_handlers();
    let started = Instant::now();
    let capture = LiveCapture::start(&config, make_handler)?;
    let description = capture.info().describe();
    if !quiet {
        eprintln!("xdpcarve: capturing on {description}; stop with Ctrl-C (SIGINT) or SIGTERM");
    }
    let mut next_publish = Instant::now();
    while !STOP_REQUESTED.load(Ordering::SeqCst) && !fatal.load(Ordering::SeqCst) {
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
    let mut first_error = None;
    for r in results {
        let mut r = r.lock().expect("worker result");
        workers.push(std::mem::take(&mut r.stats));
        if first_error.is_none() {
            first_error = r.error.take();
        }
    }
    if let Some(e) = first_error {
        return Err(e.context("live capture stopped"));
    }
    Ok(LiveReport {
        description,
        elapsed: started.elapsed(),
        summary,
        workers,
    })
}

/// The end-of-run summary of a live capture: capture side (XDP program, queues, kernel drops,
/// flow symmetry), then the engine counters of all workers together.
pub fn render(r: &LiveReport, files_logged: Option<u64>) -> String {
    let mut out = String::new();
    let x = &r.summary.xdp;
    let t = r.summary.total();
    let secs = r.elapsed.as_secs_f64().max(1e-6);
    let _ = writeln!(out, "xdpcarve: live capture on {} for {:.1} s", r.description, secs);
    let _ = writeln!(
        out,
        "  xdp: {} packets seen, {} redirected ({}), {} passed (of which {} parse failures, {} IP fragments, \
         {} redirect failures); {} tunneled",
        x.packets(),
        x.redirected,
        human_bytes(x.redirected_bytes),
        x.passed,
        x.parse_failed,
        x.ip_fragments,
        x.redirect_failed,
        x.tunneled
    );
    for q in &r.summary.queues {
        let mut line = format!(
            "  queue {}: {} packets, {} ({:.0} packets/s)",
            q.queue,
            q.rx_packets,
            human_bytes(q.rx_bytes),
            q.rx_packets as f64 / secs
        );
        q.for_each(|name, v| {
            if v > 0 && !matches!(name, "rx_packets" | "rx_bytes" | "rx_batches") {
                let _ = write!(line, " {name}={v}");
            }
        });
        let _ = writeln!(out, "{line}");
    }
    if t.kernel_drops() > 0 {
        let _ = writeln!(
            out,
            "  warning: the kernel dropped {} steered packets (rx_dropped {}, rx_ring_full {}, fill ring empty {}): \
             raise --rx-ring/--fill-ring/--umem-frames or add queues",
            t.kernel_drops(),
            t.kernel_rx_dropped,
            t.kernel_rx_ring_full,
            t.kernel_rx_fill_ring_empty_descs
        );
    }
    if t.symmetry.synack_without_syn > 0 {
        let _ = writeln!(
            out,
            "  warning: {} connections were seen from one side only on their queue (SYN-ACK without SYN): the NIC's \
             RSS hash is not symmetric, see deploy/nic-setup.sh",
            t.symmetry.synack_without_syn
        );
    }
    let mut stats = Stats::default();
    for w in &r.workers {
        stats.merge(w);
    }
    let _ = writeln!(
        out,
        "  flows: {} tracked ({} picked up mid-stream); files: {}{} (http {}, smtp {})",
        stats.tcp.flows_created,
        stats.tcp.flows_midstream,
        stats.files.files,
        files_logged.map(|n| format!(", {n} logged")).unwrap_or_default(),
        stats.files.http_files,
        stats.files.smtp_files
    );
    let mut rest = Vec::new();
    stats.for_each(|area, name, v| {
        if v > 0 {
            rest.push(format!("{area}.{name}={v}"));
        }
    });
    if !rest.is_empty() {
        let _ = writeln!(out, "  counters: {}", rest.join(" "));
    }
    out
}
