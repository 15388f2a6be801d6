//! Egress of xdpcarve: everything that happens to a finished file record after the worker that
//! carved it lets go of it, on one thread of its own so that workers never wait on disk or network.
//!
//! ```text
//! worker 0 ─ RecordSender ─ ArrayQueue ┐
//! worker 1 ─ RecordSender ─ ArrayQueue ┼─> egress thread (tokio, current-thread):
//! worker N ─ RecordSender ─ ArrayQueue ┘     files log ─ policy ─ dedup ─ batch ─ Outbox ─ webhook
//!                                            │   (memory, then the spill journal)   /metrics server
//!                                            └─ scan stage (xdpcarve-scan): chains run as tasks here;
//!                                               with webhook.include_verdicts a scanned file's
//!                                               submission waits for its verdicts
//! ```
//!
//! Lifecycle: [`Egress::start`] (validates, opens files, binds the metrics port), hand each worker
//! its [`RecordSender`] from [`Egress::take_senders`], publish counters to the [`MetricsHub`] while
//! running, then after the workers have finished [`Egress::finish`] (drains and delivers, saves
//! state, returns the [`EgressSummary`]) and [`Egress::join`] (waits out the metrics linger).

#![forbid(unsafe_code)]

pub mod config;
pub mod dedup;
pub mod files_log;
pub mod fleet;
pub mod journal;
pub mod metrics;
pub mod outbox;
pub mod policy;
pub mod webhook;

pub use config::{ConfigError, EgressConfig, FsyncPolicy, WebhookFormat};
pub use metrics::{MetricsHub, QueueCounters, XdpCounters};
pub use policy::PolicyError;
pub use webhook::{AuthToken, SubmissionItem, TokenError, TokenOrigin, WebhookError, TOKEN_ENV};

use crossbeam_queue::ArrayQueue;
use crossbeam_utils::Backoff;
use dedup::Dedup;
use files_log::FilesLog;
use journal::Journal;
use outbox::{Batch, Outbox};
use policy::{Decision, Policy};
use prometheus::IntCounter;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tokio::sync::{watch, Notify};
use webhook::{Delivery, Webhook};
use xdpcarve_contract::{FileRecord, ScanStatus};
use xdpcarve_scan::{Offer, ScanPlan, ScanSummary, Scanning};

/// An error that stops the sensor from starting (or finishing) egress. Each message says what
/// failed and names the setting involved; the underlying cause is the error's `source()`, never
/// repeated in the message, so a chain printer (`{:#}` of anyhow) shows each cause once.
#[derive(Debug, thiserror::Error)]
pub enum EgressError {
    /// A setting is out of range or does not parse; the message names the key.
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot open the files log {}", path.display())]
    FilesLog {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The webhook token cannot be read or used.
    #[error(transparent)]
    Token(#[from] TokenError),
    /// The webhook client cannot be set up.
    #[error(transparent)]
    Webhook(#[from] WebhookError),
    #[error("dedup.state_file {}: cannot load the saved hashes", path.display())]
    DedupState {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("spill.dir {}: cannot open the spill journal", path.display())]
    SpillDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("metrics.addr {addr}: cannot listen")]
    MetricsListen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// `[fleet]` cannot be set up (a bad URL, an unreadable password or CA file, the stream journal).
    #[error(transparent)]
    Fleet(#[from] fleet::OpenError),
    #[error("cannot start the egress thread")]
    Thread(#[source] std::io::Error),
    #[error("the egress thread ended without a summary (see the errors above)")]
    NoSummary,
}

/// What a worker does when its queue to the egress thread is full.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum QueueMode {
    /// Wait for room (offline `--read`: nothing can be lost, and there is no line rate to keep).
    Block,
    /// Drop the record and count it (`xdpcarve_egress_queue_full_drops_total`): a live worker
    /// must get back to its ring.
    DropWhenFull,
}

struct Shared {
    queues: Vec<ArrayQueue<FileRecord>>,
    wake: Notify,
    closing: AtomicBool,
    /// False once the egress thread has ended (so a blocked worker gives up instead of hanging).
    alive: AtomicBool,
}

/// A worker's end of its queue to the egress thread. `Send`; one per worker.
pub struct RecordSender {
    shared: Arc<Shared>,
    worker: usize,
    mode: QueueMode,
    full_drops: IntCounter,
    drops: u64,
}

impl RecordSender {
    /// Hands a finished file to egress. Never blocks in [`QueueMode::DropWhenFull`]; returns false
    /// when the record was dropped (counted and logged).
    pub fn send(&mut self, rec: FileRecord) -> bool {
        let q = &self.shared.queues[self.worker];
        let mut rec = match q.push(rec) {
            Ok(()) => {
                self.shared.wake.notify_one();
                return true;
            }
            Err(rec) => rec,
        };
        if self.mode == QueueMode::Block {
            let backoff = Backoff::new();
            while self.shared.alive.load(Ordering::Acquire) {
                self.shared.wake.notify_one();
                if backoff.is_completed() {
                    std::thread::sleep(Duration::from_micros(50));
                } else {
                    backoff.snooze();
                }
                match q.push(rec) {
                    Ok(()) => {
                        self.shared.wake.notify_one();
                        return true;
                    }
                    Err(r) => rec = r,
                }
            }
        }
        drop(rec);
        self.full_drops.inc();
        self.drops += 1;
        if self.drops.is_power_of_two() {
            tracing::error!(
                "worker {}: FILE RECORDS DROPPED: egress queue full ({} dropped by this worker so far; \
                 the egress thread cannot keep up — check the files log disk and queue.capacity)",
                self.worker,
                self.drops
            );
        }
        false
    }

    pub fn worker(&self) -> usize {
        self.worker
    }
}

/// The egress figures of a run, for the end-of-run summary.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct EgressSummary {
    pub files_logged: u64,
    /// Records the files log could not take (disk full, I/O error).
    pub files_log_errors: u64,
    pub policy_matched: u64,
    /// Hashes accepted for submission (matched, hashed, not deduplicated).
    pub submitted: u64,
    /// Hashes the receiver accepted (this run, including replayed ones).
    pub sent: u64,
    pub deduped: u64,
    pub no_hash: u64,
    pub spilled: u64,
    pub failed: u64,
    pub retried: u64,
    /// Hashes lost (journal full or failing, or no journal).
    pub dropped: u64,
    /// Of them, lost because the spill journal's disk was full.
    pub lost_disk_full: u64,
    /// Records workers dropped because their egress queue was full.
    pub queue_full: u64,
    /// Hashes left in the spill journal for the next start.
    pub journal_pending: u64,
    /// The receiver refused the token (401/403) at the end: what is queued waits for a fixed token.
    pub unauthorized: bool,
    /// Where refused batches were written (`failed` counts their items).
    pub dead_letter: Option<PathBuf>,
    /// The scan stage's figures, when pipelines run.
    pub scan: Option<ScanSummary>,
    /// The fleet's figures, with `fleet.redis`.
    pub fleet: Option<fleet::FleetSummary>,
}

impl fmt::Display for EgressSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "egress: files_logged={} files_log_errors={} policy_matched={} submitted={} sent={} deduped={} no_hash={} spilled={} \
             failed={} retried={} dropped={} lost_disk_full={} queue_full={} journal_pending={} unauthorized={}",
            self.files_logged,
            self.files_log_errors,
            self.policy_matched,
            self.submitted,
            self.sent,
            self.deduped,
            self.no_hash,
            self.spilled,
            self.failed,
            self.retried,
            self.dropped,
            self.lost_disk_full,
            self.queue_full,
            self.journal_pending,
            u8::from(self.unauthorized)
        )?;
        if let Some(fl) = &self.fleet {
            write!(
                f,
                "\nfleet: stream_added={} stream_replayed={} stream_pending={} stream_lost={} claimed={} dedup_fleet={} \
                 dedup_local={} decided_locally={} commits_pending={} commits_lost={} reconnects={} up={}",
                fl.stream_added,
                fl.stream_replayed,
                fl.stream_pending,
                fl.stream_lost,
                fl.claimed,
                fl.dedup_fleet,
                fl.dedup_local,
                fl.decided_locally,
                fl.commits_pending,
                fl.commits_lost,
                fl.reconnects,
                u8::from(fl.up_at_end)
            )?;
        }
        Ok(())
    }
}

pub struct Egress {
    shared: Arc<Shared>,
    senders: Vec<RecordSender>,
    thread: Option<JoinHandle<()>>,
    summary_rx: mpsc::Receiver<EgressSummary>,
    metrics_addr: Option<SocketAddr>,
}

impl Egress {
    /// Validates the config, opens the files log, loads the dedup state and the spill journal,
    /// reads the webhook token, binds the metrics port, and starts the egress thread.
    pub fn start(
        cfg: EgressConfig,
        hub: Arc<MetricsHub>,
        workers: usize,
        mode: QueueMode,
    ) -> Result<Egress, EgressError> {
        Egress::start_with_scans(cfg, hub, workers, mode, None)
    }

    /// As [`Egress::start`], with the scan stage `scans` (built with the same hub's registry)
    /// running on the egress thread.
    pub fn start_with_scans(
        cfg: EgressConfig,
        hub: Arc<MetricsHub>,
        workers: usize,
        mode: QueueMode,
        scans: Option<ScanPlan>,
    ) -> Result<Egress, EgressError> {
        cfg.validate()?;
        let workers = workers.max(1);
        let policy = Policy::new(&cfg.policy)
            .map_err(ConfigError::from)?
            .require_md5(cfg.webhook.format == WebhookFormat::Md5);
        let files_log = FilesLog::open(&cfg.files_log)?;
        let auth = match cfg.webhook.url {
            Some(_) => AuthToken::load(cfg.webhook.token_file.as_deref())?,
            None => None,
        };
        let webhook = Webhook::new(&cfg.webhook, auth, hub.clone())?;

        let dedup = if cfg.dedup.enabled && webhook.is_some() {
            let mut d = Dedup::new(cfg.dedup.capacity, cfg.dedup.ttl, cfg.dedup.state_file.clone());
            match d.load(dedup::unix_now()) {
                Ok(r) => {
                    if r.loaded + r.expired + r.damaged > 0 {
                        tracing::info!(
                            "dedup: {} hashes loaded from the state file ({} expired, {} unreadable lines skipped)",
                            r.loaded,
                            r.expired,
                            r.damaged
                        );
                    }
                }
                Err(source) => {
                    let path = cfg.dedup.state_file.clone().unwrap_or_default();
                    return Err(EgressError::DedupState { path, source });
                }
            }
            hub.egress.dedup_entries.set(d.len() as i64);
            Some(Arc::new(Mutex::new(dedup::Owed::new(d))))
        } else {
            None
        };
        let dead_letter = cfg.spill.dir.as_ref().map(|d| d.join(DEAD_LETTER_FILE));

        let journal = match &cfg.spill.dir {
            Some(dir) => {
                let (j, r) = Journal::open(dir, cfg.spill.max_bytes, cfg.spill.fsync).map_err(|source| {
                    EgressError::SpillDir {
                        path: dir.clone(),
                        source,
                    }
                })?;
                if r.damaged_bytes > 0 {
                    tracing::error!(
                        "spill journal {}: {} damaged bytes cut off (a crash mid-write); the batches in them are lost",
                        dir.display(),
                        r.damaged_bytes
                    );
                }
                if r.batches > 0 {
                    if webhook.is_some() {
                        tracing::info!(
                            "spill journal: {} batches ({} hashes) from an earlier run will be sent first",
                            r.batches,
                            r.items
                        );
                    } else {
                        tracing::warn!(
                            "spill journal: {} batches ({} hashes) wait for delivery, but no webhook.url is set; kept",
                            r.batches,
                            r.items
                        );
                    }
                }
                Some(j)
            }
            None => None,
        };
        if webhook.is_some() && journal.is_none() {
            tracing::warn!(
                "webhook: no spill.dir set: if the receiver is down longer than memory allows, submissions are dropped"
            );
        }

        let fleet = match &cfg.fleet.redis {
            Some(_) => Some(fleet::Fleet::open(
                &cfg.fleet,
                &cfg.sensor_name,
                cfg.dedup.ttl,
                dedup.is_some(),
                cfg.spill.dir.as_deref(),
                cfg.spill.max_bytes,
                cfg.spill.fsync,
                hub.registry(),
            )?),
            None => None,
        };

        let metrics_listener = match cfg.metrics.addr {
            Some(addr) => match std::net::TcpListener::bind(addr).and_then(|l| l.set_nonblocking(true).map(|_| l)) {
                Ok(l) => Some(l),
                Err(source) if cfg.metrics.addr_required => return Err(EgressError::MetricsListen { addr, source }),
                Err(e) => {
                    tracing::warn!(
                        "metrics: cannot listen on the default {addr} ({e}); /metrics is off (set --metrics-addr)"
                    );
                    None
                }
            },
            None => None,
        };
        let metrics_addr = metrics_listener.as_ref().and_then(|l| l.local_addr().ok());
        if let Some(a) = metrics_addr {
            tracing::info!("metrics: serving http://{a}/metrics");
        }

        let shared = Arc::new(Shared {
            queues: (0..workers).map(|_| ArrayQueue::new(cfg.queue.capacity)).collect(),
            wake: Notify::new(),
            closing: AtomicBool::new(false),
            alive: AtomicBool::new(true),
        });
        let senders = (0..workers)
            .map(|w| RecordSender {
                shared: shared.clone(),
                worker: w,
                mode,
                full_drops: hub.egress.queue_full.with_label_values(&[&w.to_string()]),
                drops: 0,
            })
            .collect();

        let outbox = Outbox::new(cfg.webhook.memory_batches, journal, hub.clone());
        if let Some(d) = &dedup {
            // What an earlier run still owes is in flight: the same files seen now are not queued again.
            let mut d = d.lock().expect("dedup");
            let read = outbox.for_each_journaled(|payload| {
                if let Ok(items) = serde_json::from_slice::<Vec<SubmissionItem>>(payload) {
                    d.owed(&items);
                }
            });
            if let Err(e) = read {
                tracing::warn!("spill journal: cannot read it for dedup ({e}); its files may be submitted twice");
            }
        }
        let (summary_tx, summary_rx) = mpsc::channel();
        let (claims_tx, claims_rx) = tokio::sync::mpsc::unbounded_channel();
        let task = EgressTask {
            shared: shared.clone(),
            hub,
            sensor: cfg.sensor_name.clone(),
            policy,
            dedup,
            dead_letter,
            files_log,
            webhook,
            // Write-ahead: a partial batch goes to the journal within the commit window.
            batch: BatchBuilder::new(
                cfg.webhook.batch_max_items,
                match cfg.spill.dir {
                    Some(_) => cfg.webhook.batch_max_delay.min(outbox::COMMIT_WINDOW),
                    None => cfg.webhook.batch_max_delay,
                },
            ),
            outbox: Arc::new(Mutex::new(outbox)),
            outbox_wake: Arc::new(Notify::new()),
            drain_timeout: cfg.webhook.drain_timeout,
            linger: cfg.metrics.linger,
            log_errors: 0,
            scan_plan: scans.filter(ScanPlan::is_active),
            scanning: None,
            include_verdicts: cfg.webhook.include_verdicts,
            fleet,
            claims_tx,
            claims_rx,
            claims_outstanding: 0,
        };
        let thread_shared = shared.clone();
        let thread = std::thread::Builder::new()
            .name("xdpcarve-egress".into())
            .spawn(move || {
                // Whatever happens here, blocked workers must not wait for us forever.
                struct Dead(Arc<Shared>);
                impl Drop for Dead {
                    fn drop(&mut self) {
                        self.0.alive.store(false, Ordering::Release);
                    }
                }
                let _dead = Dead(thread_shared);
                let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                    Ok(rt) => rt,
                    Err(e) => {
                        tracing::error!("egress: cannot start its runtime: {e}");
                        return;
                    }
                };
                rt.block_on(task.run(metrics_listener, summary_tx));
            })
            .map_err(EgressError::Thread)?;
        Ok(Egress {
            shared,
            senders,
            thread: Some(thread),
            summary_rx,
            metrics_addr,
        })
    }

    /// The workers' senders, one per worker id (`senders[i].worker() == i`). Taken once.
    pub fn take_senders(&mut self) -> Vec<RecordSender> {
        std::mem::take(&mut self.senders)
    }

    /// Where `/metrics` is served, if it is.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// Call once the workers have stopped sending: delivers what is queued (for at most
    /// `webhook.drain_timeout`, the rest goes to the journal), saves the dedup state, and returns
    /// the run's figures. `/metrics` stays up for `metrics.linger` more; then call [`Egress::join`].
    pub fn finish(&mut self) -> Result<EgressSummary, EgressError> {
        self.senders.clear();
        self.shared.closing.store(true, Ordering::Release);
        self.shared.wake.notify_one();
        self.summary_rx.recv().map_err(|_| EgressError::NoSummary)
    }

    /// Waits for the egress thread to end (after the metrics linger).
    pub fn join(mut self) {
        if let Some(t) = self.thread.take() {
            if t.join().is_err() {
                tracing::error!("egress thread panicked");
            }
        }
    }
}

impl Drop for Egress {
    fn drop(&mut self) {
        // Dropped without finish (an error path): still let the thread drain and end.
        self.shared.closing.store(true, Ordering::Release);
        self.shared.wake.notify_one();
    }
}

/// Accumulates submission items into one JSON array body.
struct BatchBuilder {
    body: Vec<u8>,
    items: u32,
    opened: Option<Instant>,
    max_items: usize,
    max_delay: Duration,
}

impl BatchBuilder {
    fn new(max_items: usize, max_delay: Duration) -> BatchBuilder {
        BatchBuilder {
            body: Vec::new(),
            items: 0,
            opened: None,
            max_items,
            max_delay,
        }
    }

    fn add(&mut self, item: &SubmissionItem) -> Option<Batch> {
        if self.items == 0 {
            self.body.clear();
            self.body.push(b'[');
            self.opened = Some(Instant::now());
        } else {
            self.body.push(b',');
        }
        serde_json::to_writer(&mut self.body, item).expect("item serializes into a Vec");
        self.items += 1;
        if self.items as usize >= self.max_items {
            self.take()
        } else {
            None
        }
    }

    fn take(&mut self) -> Option<Batch> {
        if self.items == 0 {
            return None;
        }
        self.body.push(b']');
        let batch = Batch {
            body: bytes::Bytes::from(std::mem::take(&mut self.body)),
            items: self.items,
        };
        self.items = 0;
        self.opened = None;
        Some(batch)
    }

    fn deadline(&self) -> Option<Instant> {
        self.opened.map(|t| t + self.max_delay)
    }
}

struct EgressTask {
    shared: Arc<Shared>,
    hub: Arc<MetricsHub>,
    sensor: String,
    policy: Policy,
    /// Hashes delivered (dedup) and in flight; the delivery task commits them.
    dedup: Option<Arc<Mutex<dedup::Owed>>>,
    /// Where batches the receiver refused for good are kept, with its answer.
    dead_letter: Option<PathBuf>,
    files_log: Option<FilesLog>,
    webhook: Option<Webhook>,
    batch: BatchBuilder,
    outbox: Arc<Mutex<Outbox>>,
    outbox_wake: Arc<Notify>,
    drain_timeout: Duration,
    linger: Duration,
    log_errors: u64,
    /// The scan stage, started on the egress runtime when the task runs.
    scan_plan: Option<ScanPlan>,
    scanning: Option<Scanning>,
    include_verdicts: bool,
    /// With `fleet.redis`: the stream, and dedup claims (tasks that answer on `claims_rx`).
    fleet: Option<Arc<fleet::Fleet>>,
    claims_tx: tokio::sync::mpsc::UnboundedSender<ClaimAnswer>,
    claims_rx: tokio::sync::mpsc::UnboundedReceiver<ClaimAnswer>,
    claims_outstanding: usize,
}

/// A submission that waited for the fleet's word on its hash.
struct ClaimAnswer {
    item: SubmissionItem,
    claim: fleet::Claim,
}

/// Most claims in flight at once; past it (Redis slow, a burst) files are decided locally.
const MAX_CLAIMS_IN_FLIGHT: usize = 4096;

impl EgressTask {
    async fn run(mut self, metrics_listener: Option<std::net::TcpListener>, summary_tx: mpsc::Sender<EgressSummary>) {
        let _metrics_server = metrics_listener.and_then(|l| match tokio::net::TcpListener::from_std(l) {
            Ok(l) => Some(tokio::spawn(serve_metrics(l, self.hub.clone()))),
            Err(e) => {
                tracing::error!("metrics: cannot serve: {e}");
                None
            }
        });
        let (stop_tx, stop_rx) = watch::channel(false);
        let delivery = self.webhook.take().map(|w| {
            tokio::spawn(delivery_loop(
                Arc::new(w),
                self.outbox.clone(),
                self.outbox_wake.clone(),
                stop_rx,
                self.hub.clone(),
                self.dedup.clone(),
                self.dead_letter.clone(),
                self.fleet.clone(),
            ))
        });
        let submitting = delivery.is_some();
        let (fleet_stop_tx, fleet_stop_rx) = watch::channel(false);
        let fleet_tasks = self.fleet.as_ref().map(|f| f.spawn(fleet_stop_rx)).unwrap_or_default();
        if let Some(f) = &self.fleet {
            // Give the first connection its chance, so a healthy fleet's first files are not
            // decided locally; Redis down at start costs one fleet.timeout, then it is an outage.
            let _ = tokio::time::timeout(f.link.timeout(), f.link.wait_up()).await;
        }
        self.scanning = self.scan_plan.take().map(ScanPlan::start);
        let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);

        loop {
            let closing = self.shared.closing.load(Ordering::Acquire);
            let mut n = self.drain_queues(submitting);
            n += self.take_scanned(submitting);
            n += self.take_claims();
            if n > 0 {
                self.flush_log();
            }
            if closing && n == 0 && self.claims_outstanding == 0 {
                break;
            }
            if n > 0 {
                // Busy: a partial batch past its wait still goes out.
                if self.batch.deadline().is_some_and(|d| Instant::now() >= d) {
                    if let Some(b) = self.batch.take() {
                        self.push_batch(b);
                    }
                }
                self.outbox.lock().expect("outbox").sync_journal(false);
                if let Some(f) = &self.fleet {
                    f.flush_stream(false);
                }
                // Let the delivery task and the metrics server run between rounds.
                tokio::task::yield_now().await;
                continue;
            }
            self.outbox.lock().expect("outbox").sync_journal(true);
            if let Some(f) = &self.fleet {
                f.flush_stream(true);
            }
            let deadline = self.batch.deadline();
            let scanning = self.scanning.as_mut().filter(|s| s.busy());
            let scanned = async {
                match scanning {
                    Some(s) => s.next_done().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = self.shared.wake.notified() => {}
                rec = scanned => self.submit_scanned(rec, submitting),
                Some(answer) = self.claims_rx.recv() => self.on_claim(answer),
                _ = sleep_until_opt(deadline) => {
                    if let Some(b) = self.batch.take() {
                        self.push_batch(b);
                    }
                }
                _ = recv_hangup(&mut hangup) => {
                    if let Some(log) = &mut self.files_log {
                        match log.reopen() {
                            Ok(()) => tracing::info!("files log reopened (SIGHUP)"),
                            Err(e) => tracing::error!("files log: reopen on SIGHUP failed: {e}"),
                        }
                    }
                    if let Some(s) = &self.scanning {
                        s.reload().await;
                    }
                }
                _ = tick.tick() => self.on_tick(),
            }
        }

        // The workers are done: the chains still running get `scan.drain_timeout`, then the
        // submissions waiting for them go; flush what is open and deliver what is queued.
        if let Some(mut s) = self.scanning.take() {
            for rec in s.drain().await {
                self.submit_scanned(rec, submitting);
            }
            self.scanning = Some(s);
        }
        if let Some(b) = self.batch.take() {
            self.push_batch(b);
        }
        self.flush_log();
        if let Some(delivery) = delivery {
            let drained = tokio::time::timeout(self.drain_timeout, async {
                loop {
                    if self.outbox.lock().expect("outbox").is_empty() {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            })
            .await;
            if drained.is_err() {
                tracing::warn!(
                    "webhook: not everything was delivered within {:?} (webhook.drain_timeout); the rest is kept in the spill journal",
                    self.drain_timeout
                );
            }
            let _ = stop_tx.send(true);
            let _ = delivery.await;
        }
        {
            let mut outbox = self.outbox.lock().expect("outbox");
            outbox.persist_memory();
            outbox.sync_journal(true);
        }
        let fleet_summary = match self.fleet.clone() {
            Some(f) => {
                f.flush_stream(true);
                let drained = tokio::time::timeout(self.drain_timeout, async {
                    while !f.is_drained() && f.is_up() {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                })
                .await;
                if !f.is_drained() {
                    let why = if drained.is_err() {
                        format!(
                            "Redis did not take everything within webhook.drain_timeout ({:?})",
                            self.drain_timeout
                        )
                    } else {
                        "Redis is away at shutdown".to_string()
                    };
                    tracing::warn!("fleet: {why}; what is left is kept for the next start (see the fleet: line)");
                }
                let _ = fleet_stop_tx.send(true);
                for t in fleet_tasks {
                    let _ = t.await;
                }
                Some(f.close())
            }
            None => None,
        };
        if let Some(d) = &self.dedup {
            match d.lock().expect("dedup").dedup.save(dedup::unix_now()) {
                Ok(n) if n > 0 => tracing::info!("dedup: {n} hashes saved"),
                Ok(_) => {}
                Err(e) => tracing::error!("dedup: cannot save the state file: {e} (hashes will be submitted again)"),
            }
        }
        self.on_tick();
        let mut summary = self.summary();
        summary.fleet = fleet_summary;
        let _ = summary_tx.send(summary);
        if !self.linger.is_zero() {
            tokio::time::sleep(self.linger).await;
        }
    }

    fn summary(&self) -> EgressSummary {
        let m = &self.hub.egress;
        EgressSummary {
            files_logged: m.files_logged.get(),
            files_log_errors: m.files_log_errors.get(),
            policy_matched: m.policy_matched.get(),
            submitted: m.submitted.get(),
            sent: m.sent.get(),
            deduped: m.deduped.get(),
            no_hash: m.no_hash.get(),
            spilled: m.spilled.get(),
            failed: m.failed.get(),
            retried: m.retried.get(),
            dropped: MetricsHub::sum(&m.dropped),
            lost_disk_full: m.dropped.with_label_values(&["disk_full"]).get(),
            queue_full: MetricsHub::sum(&m.queue_full),
            journal_pending: self.outbox.lock().expect("outbox").journal_pending_items(),
            unauthorized: m.unauthorized.get() != 0,
            dead_letter: self.dead_letter.clone(),
            scan: self.scanning.as_ref().map(Scanning::summary),
            fleet: None,
        }
    }

    fn on_tick(&mut self) {
        if let Some(s) = &self.scanning {
            s.publish_store();
        }
        let depth: usize = self.shared.queues.iter().map(|q| q.len()).sum();
        self.hub.egress.queue_depth.set(depth as i64);
        if let Some(d) = &self.dedup {
            self.hub
                .egress
                .dedup_entries
                .set(d.lock().expect("dedup").dedup.len() as i64);
        }
        if let Some(log) = &mut self.files_log {
            if let Err(e) = log.rotate_if_old() {
                tracing::error!("files log: rotation failed: {e}");
            }
        }
    }

    /// Takes everything queued now (round-robin, bounded per round so no queue starves).
    fn drain_queues(&mut self, submitting: bool) -> usize {
        let mut n = 0;
        let shared = self.shared.clone();
        loop {
            let mut round = 0;
            for q in &shared.queues {
                for _ in 0..128 {
                    match q.pop() {
                        Some(rec) => {
                            self.handle(rec, submitting);
                            round += 1;
                        }
                        None => break,
                    }
                }
            }
            n += round;
            if round == 0 || n >= 512 {
                return n;
            }
        }
    }

    fn handle(&mut self, mut rec: FileRecord, submitting: bool) {
        // Offered before it is logged, so the record says whether it was queued or skipped;
        // never waited for.
        let offer = match &mut self.scanning {
            Some(s) => s.offer(&rec),
            None => Offer::NotWanted,
        };
        rec.scan.scan = offer.status();
        let m = &self.hub.egress;
        m.files_by_type
            .with_label_values(&[rec.proto.as_str(), policy::mime_family(rec.mime_type.as_deref())])
            .inc();
        let line = rec.to_json_line();
        if let Some(f) = &self.fleet {
            f.add_to_stream(fleet::stream::Kind::File, &line);
        }
        if let Some(log) = &mut self.files_log {
            match log.write_line(&line) {
                // A reader that closed standard output chose to stop reading: not logged, not lost.
                Ok(()) if log.reader_gone() => {}
                Ok(()) => m.files_logged.inc(),
                Err(e) => {
                    m.files_log_errors.inc();
                    self.log_errors += 1;
                    if self.log_errors.is_power_of_two() {
                        tracing::error!(
                            "files log: write failed: {e} ({} records not logged so far)",
                            self.log_errors
                        );
                    }
                }
            }
        }
        if !submitting || (offer == Offer::Queued && self.include_verdicts) {
            // With include_verdicts, a queued file is submitted when its chain ends.
            return;
        }
        self.submit(&rec);
    }

    /// Records whose chains ended while the egress was busy (so finished chains never pile up).
    fn take_scanned(&mut self, submitting: bool) -> usize {
        let Some(s) = &mut self.scanning else { return 0 };
        let done = s.take_done();
        let n = done.len();
        for rec in done {
            self.submit_scanned(rec, submitting);
        }
        n
    }

    /// A chain ended: its file is submitted now if its submission waited for the verdicts.
    fn submit_scanned(&mut self, rec: FileRecord, submitting: bool) {
        if let Some(f) = &self.fleet {
            f.add_to_stream(fleet::stream::Kind::Verdict, &rec.to_json_line());
        }
        if submitting && self.include_verdicts {
            self.submit(&rec);
        }
    }

    /// Policy, dedup and batching of one file.
    fn submit(&mut self, rec: &FileRecord) {
        let m = &self.hub.egress;
        match self.policy.decide(rec) {
            Decision::NotMatched => {}
            Decision::NoHash => {
                m.policy_matched.inc();
                m.no_hash.inc();
            }
            Decision::Submit => {
                m.policy_matched.inc();
                let key = dedup::key_of(rec);
                if let (Some(d), Some(key)) = (&self.dedup, key) {
                    if d.lock().expect("dedup").check_and_queue(key, dedup::unix_now()) {
                        m.deduped.inc();
                        if let Some(f) = &self.fleet {
                            f.metrics.dedup_hits.with_label_values(&["local"]).inc();
                        }
                        return;
                    }
                }
                let mut item = SubmissionItem::from_record(&self.sensor, rec);
                if self.include_verdicts && rec.scan.scan.is_some_and(|s| s != ScanStatus::Queued) {
                    item = item.with_verdicts(rec);
                }
                // Fleet-wide dedup: ask Redis (in a task) unless it is down or swamped.
                if let (Some(f), Some(_), Some(sha)) = (&self.fleet, key, rec.sha256.clone()) {
                    if f.claims {
                        if f.is_up() && self.claims_outstanding < MAX_CLAIMS_IN_FLIGHT {
                            self.claims_outstanding += 1;
                            let (f, tx, ts) = (f.clone(), self.claims_tx.clone(), rec.ts.clone());
                            tokio::spawn(async move {
                                let claim = f.claim(&sha, &ts).await;
                                let _ = tx.send(ClaimAnswer { item, claim });
                            });
                            return;
                        }
                        f.decided_locally();
                        item.dedup_scope = Some("local".into());
                    }
                }
                self.queue_submission(item);
            }
        }
    }

    fn queue_submission(&mut self, item: SubmissionItem) {
        self.hub.egress.submitted.inc();
        if let Some(b) = self.batch.add(&item) {
            self.push_batch(b);
        }
    }

    /// Claim answers that arrived while the egress was busy.
    fn take_claims(&mut self) -> usize {
        let mut n = 0;
        while let Ok(answer) = self.claims_rx.try_recv() {
            self.on_claim(answer);
            n += 1;
        }
        n
    }

    /// The fleet answered (or failed to) about a submission: queue it, or count it deduplicated.
    fn on_claim(&mut self, answer: ClaimAnswer) {
        self.claims_outstanding = self.claims_outstanding.saturating_sub(1);
        let ClaimAnswer { mut item, claim } = answer;
        let Some(f) = &self.fleet else { return };
        match claim {
            fleet::Claim::Claimed(sightings) => {
                item.sightings = Some(sightings);
                item.dedup_scope = Some("fleet".into());
                self.queue_submission(item);
            }
            fleet::Claim::Failed => {
                item.dedup_scope = Some("local".into());
                self.queue_submission(item);
            }
            fleet::Claim::Sent(_) | fleet::Claim::Taken(_) => {
                self.hub.egress.deduped.inc();
                f.metrics.dedup_hits.with_label_values(&["fleet"]).inc();
                if let Some(d) = &self.dedup {
                    let mut d = d.lock().expect("dedup");
                    if matches!(claim, fleet::Claim::Sent(_)) {
                        // Delivered by the fleet: known here too for the TTL (fewer round trips).
                        d.delivered([&item], dedup::unix_now());
                    } else {
                        // Another sensor is on it: if its delivery fails, we may submit later.
                        d.released([&item]);
                    }
                }
            }
        }
    }

    fn push_batch(&self, b: Batch) {
        self.outbox.lock().expect("outbox").push(b);
        self.outbox_wake.notify_one();
    }

    fn flush_log(&mut self) {
        if let Some(log) = &mut self.files_log {
            if let Err(e) = log.flush() {
                self.hub.egress.files_log_errors.inc();
                tracing::error!("files log: write failed: {e}");
            }
        }
    }
}

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d.into()).await,
        None => std::future::pending().await,
    }
}

async fn recv_hangup(sig: &mut Option<tokio::signal::unix::Signal>) {
    match sig {
        Some(s) => {
            if s.recv().await.is_none() {
                std::future::pending::<()>().await
            }
        }
        None => std::future::pending().await,
    }
}

/// Delivers the outbox's head batch until it is gone, in order, one at a time.
/// The file, in the spill directory, of batches the receiver refused for good.
pub const DEAD_LETTER_FILE: &str = "dead-letter.jsonl";

/// Appends a refused batch to the dead-letter file: one JSON line with the time, the status, the
/// receiver's answer and the items, so an operator can look and resend.
fn keep_dead_letter(path: Option<&std::path::Path>, batch: &Batch, status: http::StatusCode, answer: &str) {
    let Some(path) = path else {
        tracing::error!(
            "webhook: {} submissions refused with {status} are lost: no spill.dir for the dead-letter file",
            batch.items
        );
        return;
    };
    let items: serde_json::Value = serde_json::from_slice(&batch.body).unwrap_or(serde_json::Value::Null);
    let line = serde_json::json!({
        "ts": dedup::unix_now(),
        "status": status.as_u16(),
        "answer": answer,
        "items": items,
    });
    let written = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .and_then(|mut f| {
            use std::io::Write;
            writeln!(f, "{line}")?;
            f.sync_data()
        });
    match written {
        Ok(()) => tracing::error!(
            "webhook: {} submissions refused with {status}; kept in {}",
            batch.items,
            path.display()
        ),
        Err(e) => tracing::error!(
            "webhook: {} submissions refused with {status} are lost: cannot write {}: {e}",
            batch.items,
            path.display()
        ),
    }
}

#[allow(clippy::too_many_arguments)] // the delivery task's shared parts, each an Arc or an Option
async fn delivery_loop(
    webhook: Arc<Webhook>,
    outbox: Arc<Mutex<Outbox>>,
    wake: Arc<Notify>,
    mut stop: watch::Receiver<bool>,
    hub: Arc<MetricsHub>,
    dedup: Option<Arc<Mutex<dedup::Owed>>>,
    dead_letter: Option<PathBuf>,
    fleet: Option<Arc<fleet::Fleet>>,
) {
    // The items of a batch, for dedup (only parsed when dedup is on or the batch is refused).
    let items_of = |b: &Batch| serde_json::from_slice::<Vec<SubmissionItem>>(&b.body).unwrap_or_default();
    loop {
        if *stop.borrow() {
            return;
        }
        let next = outbox.lock().expect("outbox").peek();
        let Some(batch) = next else {
            tokio::select! {
                _ = wake.notified() => continue,
                _ = stop.changed() => return,
            }
        };
        match webhook.deliver(&batch.body, batch.items, &mut stop).await {
            Delivery::Delivered => {
                hub.egress.sent.inc_by(batch.items as u64);
                if dedup.is_some() || fleet.is_some() {
                    let items = items_of(&batch);
                    if let Some(d) = &dedup {
                        d.lock().expect("dedup").delivered(&items, dedup::unix_now());
                    }
                    if let Some(f) = &fleet {
                        f.delivered(items.iter().filter_map(|i| i.sha256.as_deref()));
                    }
                }
                outbox.lock().expect("outbox").commit(&batch);
            }
            Delivery::Rejected(status, answer) => {
                hub.egress.failed.inc_by(batch.items as u64);
                let items = items_of(&batch);
                if let Some(d) = &dedup {
                    d.lock().expect("dedup").released(&items);
                }
                if let Some(f) = &fleet {
                    f.released(items.iter().filter_map(|i| i.sha256.as_deref()));
                }
                keep_dead_letter(dead_letter.as_deref(), &batch, status, &answer);
                outbox.lock().expect("outbox").commit(&batch);
            }
            Delivery::Aborted => return,
        }
    }
}

async fn serve_metrics(listener: tokio::net::TcpListener, hub: Arc<MetricsHub>) {
    use http_body_util::Full;
    use hyper::body::Incoming;
    use hyper::{Request, Response};
    loop {
        let stream = match listener.accept().await {
            Ok((s, _)) => s,
            Err(e) => {
                tracing::warn!("metrics: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let hub = hub.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                let hub = hub.clone();
                async move {
                    let resp = if req.uri().path() == "/metrics" {
                        Response::builder()
                            .header("content-type", "text/plain; version=0.0.4; charset=utf-8")
                            .body(Full::new(bytes::Bytes::from(hub.render())))
                    } else {
                        Response::builder()
                            .status(404)
                            .body(Full::new(bytes::Bytes::from_static(b"see /metrics\n")))
                    };
                    Ok::<_, std::convert::Infallible>(resp.expect("static response parts"))
                }
            });
            let io = hyper_util::rt::TokioIo::new(stream);
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(io, svc)
                .await;
        });
    }
}
