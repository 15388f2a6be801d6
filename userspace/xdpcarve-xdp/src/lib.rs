//! Live capture: the XDP steering program and per-queue AF_XDP workers.
//!
//! The XDP program (ebpf/xdpcarve.bpf.c, committed compiled as ebpf/xdpcarve.bpf.o and embedded
//! here) redirects TCP segments to or from the configured ports into the AF_XDP socket of the
//! queue they arrived on, and passes everything else. [`LiveCapture::start`] loads and attaches it
//! (aya), opens one socket per selected queue (xdpilone) and runs one pinned worker thread per
//! queue with its own [`FrameHandler`] (the binary puts an engine in it). No locks are shared on
//! the packet path. [`LiveCapture::stop`] detaches the program, drains the rings and finishes
//! every handler.
//!
//! Minimum kernel: 5.9 (see [`iface::MIN_KERNEL`]). Both directions of a connection must arrive
//! on the same queue: the NIC's RSS must be symmetric (deploy/nic-setup.sh); the engine's
//! handshake counters (`tcp.synack_without_syn`) show when it is not.
//!
//! # Unsafe code
//!
//! This crate holds the project's AF_XDP, netlink and mmap `unsafe` code (the UMEM mapping and
//! the reads of received frames, the ethtool ioctl, the netlink socket, and the few libc calls
//! std has no wrapper for); the other crates have none. Every unsafe block, and the one unsafe
//! fn, states the invariant that makes it sound in a `// SAFETY:` comment directly above it; the
//! crate denies undocumented blocks and blocks with more than one unsafe operation. Descriptors
//! this crate opens are `OwnedFd`s (closed by Drop, never by hand), the socket xdpilone owns is
//! lent out only as a `BorrowedFd` tied to its owner, and offsets and lengths that come from the
//! kernel (ring descriptors, netlink messages) pass checked arithmetic and `get(..)` before any
//! pointer or slice is formed from them.

// The workspace lints (Cargo.toml) already require SAFETY comments; this crate also keeps one
// unsafe operation per block.
#![deny(clippy::multiple_unsafe_ops_per_block)]

pub mod error;
pub mod iface;
mod netlink;
pub mod probe;
pub mod program;
mod worker;

pub use error::{LiveError, Privilege};
pub use iface::{Interface, QueueSelection, MIN_KERNEL};
pub use netlink::XdpFeatures;
pub use probe::{NicReport, Rss};
pub use program::{object_bytes, AttachedMode, XdpCounters, XdpModeChoice, XdpProgram};
pub use worker::{FrameHandler, QueueStats, RingConfig, DEFAULT_CAPTURE_MEMORY, MIN_CAPTURE_MEMORY};

use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use worker::{SharedQueueCounters, WorkerArgs};

/// The TCP ports steered by default: SMTP, submission, HTTP, HTTP alternate.
pub const DEFAULT_PORTS: [u16; 4] = [25, 80, 587, 8080];

/// Everything live capture needs to start.
#[derive(Clone, Debug)]
pub struct LiveConfig {
    pub interface: String,
    pub mode: XdpModeChoice,
    pub queues: QueueSelection,
    pub ports: Vec<u16>,
    pub rings: RingConfig,
    /// Pin worker `i` to the i-th allowed CPU (wrapping).
    pub pin_workers: bool,
    /// Load the multi-buffer program variant when the kernel has it (packets larger than a
    /// UMEM frame arrive in several frames). False forces the linear variant.
    pub multi_buffer: bool,
}

impl LiveConfig {
    pub fn new(interface: impl Into<String>) -> Self {
        LiveConfig {
            interface: interface.into(),
            mode: XdpModeChoice::Auto,
            queues: QueueSelection::All,
            ports: DEFAULT_PORTS.to_vec(),
            rings: RingConfig::default(),
            pin_workers: true,
            multi_buffer: true,
        }
    }
}

/// What was set up, for the start-up report.
#[derive(Clone, Debug)]
pub struct StartInfo {
    pub interface: Interface,
    pub mode: AttachedMode,
    /// Queue id, the core its worker is pinned to, and whether its socket is zero-copy.
    pub queues: Vec<(u32, Option<usize>, bool)>,
    pub ports: Vec<u16>,
}

impl StartInfo {
    pub fn zero_copy(&self) -> bool {
        !self.queues.is_empty() && self.queues.iter().all(|q| q.2)
    }

    /// One line for the log: `eth0: XDP native mode, zero-copy, queues 0-3 on cores ..., ports 25,80`.
    pub fn describe(&self) -> String {
        let queues: Vec<String> = self
            .queues
            .iter()
            .map(|(q, core, _)| match core {
                Some(c) => format!("{q}@cpu{c}"),
                None => q.to_string(),
            })
            .collect();
        let ports: Vec<String> = self.ports.iter().map(u16::to_string).collect();
        format!(
            "{}: XDP {} mode, {} AF_XDP, queues {} (of {}), ports {}",
            self.interface.name,
            self.mode.as_str(),
            if self.zero_copy() { "zero-copy" } else { "copy-mode" },
            queues.join(","),
            self.interface.queues,
            ports.join(",")
        )
    }
}

/// Final counters of a live run.
#[derive(Clone, Debug, Default)]
pub struct LiveSummary {
    pub xdp: XdpCounters,
    pub queues: Vec<QueueStats>,
}

impl LiveSummary {
    /// Sum over queues (queue id 0 meaningless; the ring marks are the largest queue's). Saturating: the kernel_* fields are the
    /// kernel's own counters, and no value they hold may make the sum panic or wrap.
    pub fn total(&self) -> QueueStats {
        let mut t = QueueStats::default();
        let add = |sum: &mut u64, v: u64| *sum = sum.saturating_add(v);
        for q in &self.queues {
            add(&mut t.rx_packets, q.rx_packets);
            add(&mut t.rx_bytes, q.rx_bytes);
            add(&mut t.rx_batches, q.rx_batches);
            add(&mut t.rx_multi_buffer, q.rx_multi_buffer);
            add(&mut t.rx_oversized, q.rx_oversized);
            add(&mut t.rx_batches_full, q.rx_batches_full);
            add(&mut t.fill_ring_empty_events, q.fill_ring_empty_events);
            add(&mut t.kernel_rx_dropped, q.kernel_rx_dropped);
            add(&mut t.kernel_rx_invalid_descs, q.kernel_rx_invalid_descs);
            add(&mut t.kernel_rx_ring_full, q.kernel_rx_ring_full);
            add(
                &mut t.kernel_rx_fill_ring_empty_descs,
                q.kernel_rx_fill_ring_empty_descs,
            );
            // Per-queue marks: the fullest queue is what matters.
            t.rx_ring_high_water = t.rx_ring_high_water.max(q.rx_ring_high_water);
            t.rx_ring_capacity = t.rx_ring_capacity.max(q.rx_ring_capacity);
        }
        t
    }
}

struct Worker {
    queue: u32,
    counters: Arc<SharedQueueCounters>,
    thread: Option<JoinHandle<()>>,
}

/// A running live capture. Dropping it stops it (detach, drain, finish); call [`stop`] to get
/// the summary.
///
/// [`stop`]: LiveCapture::stop
pub struct LiveCapture {
    program: XdpProgram,
    workers: Vec<Worker>,
    stop: Arc<AtomicBool>,
    info: StartInfo,
}

impl LiveCapture {
    /// Loads and attaches the program, binds one socket per queue and starts the workers.
    /// `make_handler(queue)` runs inside each worker thread.
    pub fn start<H, F>(config: &LiveConfig, make_handler: F) -> Result<LiveCapture, LiveError>
    where
        H: FrameHandler,
        F: Fn(u32) -> H + Send + Clone + 'static,
    {
        config.rings.validate()?;
        iface::check_kernel()?;
        let interface = Interface::lookup(&config.interface)?;
        if !interface.is_ethernet() {
            return Err(LiveError::Config(format!(
                "{} is not an Ethernet interface (link type ARPHRD {}): the XDP program and the workers read \
                 Ethernet frames; capture on the Ethernet port that carries this traffic",
                interface.name, interface.arphrd
            )));
        }
        let queues = config.queues.resolve(&interface)?;
        if let Some(&q) = queues.iter().find(|&&q| q >= program::MAX_QUEUES) {
            return Err(LiveError::Config(format!(
                "queue {q}: the XDP program steers to queues below {}",
                program::MAX_QUEUES
            )));
        }
        iface::check_capabilities(config.rings.umem_bytes() * queues.len() as u64)?;
        if (queues.len() as u32) < interface.queues {
            tracing::warn!(
                "{}: capturing {} of {} queues; steered traffic RSS places on the others is passed to the kernel \
                 (counted as redirect_failed). Reduce the channels (`ethtool -L {} combined {}`) or add queues.",
                interface.name,
                queues.len(),
                interface.queues,
                interface.name,
                queues.len()
            );
        }

        let mut program = XdpProgram::load_variant(&config.ports, config.multi_buffer)?;
        let mode = program.attach(&interface.name, interface.index, config.mode)?;

        let stop = Arc::new(AtomicBool::new(false));
        let cores = if config.pin_workers {
            worker::allowed_cores()
        } else {
            Vec::new()
        };
        let mut workers = Vec::new();
        let mut pending = Vec::new();
        for (i, &queue) in queues.iter().enumerate() {
            let counters = Arc::new(SharedQueueCounters::default());
            let core = (!cores.is_empty()).then(|| cores[i % cores.len()]);
            let args = WorkerArgs {
                ifindex: interface.index,
                interface: interface.name.clone(),
                queue,
                core,
                rings: config.rings.clone(),
                try_zero_copy: mode == AttachedMode::Native,
                try_multi_buffer: program.multi_buffer(),
                stop: stop.clone(),
                counters: counters.clone(),
            };
            let (bound_tx, bound_rx) = mpsc::channel();
            let (go_tx, go_rx) = mpsc::channel();
            let make = make_handler.clone();
            let thread = std::thread::Builder::new()
                .name(format!("xdpcarve-q{queue}"))
                .spawn(move || worker::run(args, make, bound_tx, go_rx))
                .map_err(|e| LiveError::Internal(format!("spawning the worker of queue {queue}: {e}")))?;
            workers.push(Worker {
                queue,
                counters,
                thread: Some(thread),
            });
            pending.push((queue, core, bound_rx, go_tx));
        }

        // Register every bound socket; on any failure release all workers unstarted.
        let mut report = Vec::new();
        let mut failure = None;
        let mut go_senders = Vec::new();
        for (queue, core, bound_rx, go_tx) in pending {
            go_senders.push(go_tx);
            if failure.is_some() {
                continue;
            }
            match bound_rx.recv() {
                // `bound.socket` is a duplicate of the worker's socket descriptor: it keeps the
                // socket open while it is registered, whatever the worker does, and is closed
                // when `bound` drops at the end of this arm (the worker's own descriptor then
                // decides when the socket, and with it its XSKMAP slot, goes away).
                Ok(Ok(bound)) => match program.register_socket(queue, bound.socket.as_fd()) {
                    Ok(()) => report.push((queue, core, bound.zero_copy)),
                    Err(e) => failure = Some(e),
                },
                Ok(Err(e)) => failure = Some(e),
                Err(_) => {
                    failure = Some(LiveError::Internal(format!(
                        "worker of queue {queue} died during setup"
                    )))
                }
            }
        }
        let start = failure.is_none();
        for go in go_senders {
            let _ = go.send(start);
        }
        if let Some(e) = failure {
            program.detach();
            for w in &mut workers {
                if let Some(t) = w.thread.take() {
                    let _ = t.join();
                }
            }
            return Err(e);
        }
        let info = StartInfo {
            interface,
            mode,
            queues: report,
            ports: config.ports.clone(),
        };
        Ok(LiveCapture {
            program,
            workers,
            stop,
            info,
        })
    }

    pub fn info(&self) -> &StartInfo {
        &self.info
    }

    /// The XDP program's counters now.
    pub fn xdp_counters(&self) -> Result<XdpCounters, LiveError> {
        self.program.counters()
    }

    /// Per-queue counters now (as last published by each worker).
    pub fn queue_stats(&self) -> Vec<QueueStats> {
        self.workers.iter().map(|w| w.counters.snapshot(w.queue)).collect()
    }

    /// Stops: waits (at most `quiesce`) until the program's packet count stops moving so frames
    /// in flight are received, detaches the program, lets every worker drain its ring and finish
    /// its handler, and returns the final counters.
    pub fn stop(mut self, quiesce: Duration) -> Result<LiveSummary, LiveError> {
        let deadline = Instant::now() + quiesce;
        let mut last = self.program.counters()?.packets();
        let mut stable_rounds = 0;
        while Instant::now() < deadline && stable_rounds < 2 {
            worker::nap();
            let now = self.program.counters()?.packets();
            stable_rounds = if now == last { stable_rounds + 1 } else { 0 };
            last = now;
        }
        self.program.detach();
        // Everything redirected is in the rings now; workers drain them before exiting.
        let xdp = self.program.counters()?;
        self.join_workers();
        Ok(LiveSummary {
            xdp,
            queues: self.queue_stats(),
        })
    }

    fn join_workers(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for w in &mut self.workers {
            if let Some(t) = w.thread.take() {
                if t.join().is_err() {
                    tracing::error!("worker of queue {} panicked", w.queue);
                }
            }
        }
    }
}

impl Drop for LiveCapture {
    fn drop(&mut self) {
        self.program.detach();
        self.join_workers();
    }
}
