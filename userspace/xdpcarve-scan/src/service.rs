//! The scan stage: files a pipeline wants are taken off the egress path (never waited for) into a
//! bounded queue, each runs its pipeline's scanners in order as a task on the egress thread's
//! runtime (every scanner is I/O or runs on the blocking pool, each bounded by its concurrency and
//! timeout), and the verdicts come back as the scans log, the alerts log, an action hook and, for
//! the egress, the record with its verdicts (for submissions that carry them).

use crate::config::{Keep, ScanConfig};
use crate::pipeline::{Pipeline, PipelineError};
use crate::scanner::{Scanner, ScannerError, ToolResult};
use crate::store::Store;
use prometheus::{Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry};
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use xdpcarve_contract::{AppFields, FileNote, FileRecord, ScanStatus, Timestamp, ToolVerdict, Verdict};

/// The longest a chain waits for the store to have written its file.
const STORE_WAIT: Duration = Duration::from_secs(60);

/// The scan stage cannot be set up; the message names the setting.
#[derive(Debug, thiserror::Error)]
pub enum ScanSetupError {
    #[error(transparent)]
    Scanner(#[from] ScannerError),
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    #[error("pipelines are configured but no store.dir (--store-dir) is set: scanners read stored files")]
    NoStore,
    #[error("scan.queue must be at least 1")]
    Queue,
    #[error("actions.on_malicious is an empty program name")]
    Action,
    #[error("cannot open {what} {}", path.display())]
    Log {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The scan metrics (`xdpcarve_scan_*`, `xdpcarve_actions_total`).
#[derive(Clone)]
pub struct ScanMetrics {
    pub runs: IntCounterVec,
    pub verdicts: IntCounterVec,
    pub errors: IntCounterVec,
    pub timeouts: IntCounterVec,
    pub duration: HistogramVec,
    pub queue_depth: IntGauge,
    pub skipped: IntCounterVec,
    pub scanned: prometheus::IntCounter,
    pub alerts: prometheus::IntCounter,
    pub actions: IntCounterVec,
    pub chain_duration: Histogram,
    /// The store's counters by name (`files`, `evicted`, ...), raised to its totals each tick.
    pub store: IntCounterVec,
    pub store_held_bytes: IntGauge,
    pub store_held_files: IntGauge,
}

impl ScanMetrics {
    pub fn register(r: &Registry) -> ScanMetrics {
        fn vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
            let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
            r.register(Box::new(c.clone())).expect("unique metric");
            c
        }
        let duration = HistogramVec::new(
            HistogramOpts::new("xdpcarve_scan_duration_seconds", "Time one scanner took on one file.")
                .buckets(vec![0.001, 0.005, 0.02, 0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 120.0]),
            &["scanner"],
        )
        .expect("valid metric");
        r.register(Box::new(duration.clone())).expect("unique metric");
        let chain_duration = Histogram::with_opts(
            HistogramOpts::new(
                "xdpcarve_scan_chain_seconds",
                "Time from a file's queueing to its chain's end.",
            )
            .buckets(vec![0.005, 0.05, 0.25, 1.0, 5.0, 30.0, 120.0]),
        )
        .expect("valid metric");
        r.register(Box::new(chain_duration.clone())).expect("unique metric");
        let queue_depth =
            IntGauge::new("xdpcarve_scan_queue_depth", "Files waiting for or in their chain.").expect("valid metric");
        r.register(Box::new(queue_depth.clone())).expect("unique metric");
        let one = |name: &str, help: &str| {
            let c = prometheus::IntCounter::new(name, help).expect("valid metric");
            r.register(Box::new(c.clone())).expect("unique metric");
            c
        };
        ScanMetrics {
            runs: vec(r, "xdpcarve_scan_runs_total", "Files each scanner ran on.", &["scanner"]),
            verdicts: vec(
                r,
                "xdpcarve_scan_verdicts_total",
                "Verdicts by scanner and kind (clean, suspicious, malicious, error, timeout).",
                &["scanner", "verdict"],
            ),
            errors: vec(r, "xdpcarve_scan_errors_total", "Scanner runs that failed.", &["scanner"]),
            timeouts: vec(
                r,
                "xdpcarve_scan_timeouts_total",
                "Scanner runs stopped at their timeout.",
                &["scanner"],
            ),
            duration,
            queue_depth,
            skipped: vec(
                r,
                "xdpcarve_scan_skipped_total",
                "Files a pipeline wanted that were not scanned, by reason (queue_full, not_stored, drain_timeout).",
                &["reason"],
            ),
            scanned: one("xdpcarve_scan_files_total", "Files whose chain finished."),
            alerts: one("xdpcarve_scan_alerts_total", "Files with a malicious or suspicious verdict."),
            actions: vec(
                r,
                "xdpcarve_actions_total",
                "Action hooks run, by result (ok, failed, timeout).",
                &["result"],
            ),
            chain_duration,
            store: vec(
                r,
                "xdpcarve_store_events_total",
                "Store events: stored, duplicate, evicted, deleted (retention), aborted, write_error, over_quota, queue_full.",
                &["event"],
            ),
            store_held_bytes: {
                let g = IntGauge::new("xdpcarve_store_bytes", "Bytes the store holds.").expect("valid metric");
                r.register(Box::new(g.clone())).expect("unique metric");
                g
            },
            store_held_files: {
                let g = IntGauge::new("xdpcarve_store_files", "Files the store holds.").expect("valid metric");
                r.register(Box::new(g.clone())).expect("unique metric");
                g
            },
        }
    }
}

/// A JSON-lines log (scans, alerts): a file opened for append, or standard output (`-`).
struct LineLog {
    what: &'static str,
    out: Box<dyn Write + Send>,
    errors: u64,
}

impl LineLog {
    fn open(what: &'static str, path: &Path) -> Result<LineLog, ScanSetupError> {
        let out: Box<dyn Write + Send> = if path == Path::new("-") {
            Box::new(std::io::stdout())
        } else {
            let f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|source| ScanSetupError::Log {
                    what,
                    path: path.to_path_buf(),
                    source,
                })?;
            Box::new(f)
        };
        Ok(LineLog { what, out, errors: 0 })
    }

    /// Writes one line (one write call, so lines never interleave).
    fn write(&mut self, value: &impl serde::Serialize) {
        let mut line = serde_json::to_vec(value).expect("log lines serialize");
        line.push(b'\n');
        if let Err(e) = self.out.write_all(&line).and_then(|()| self.out.flush()) {
            self.errors += 1;
            if self.errors.is_power_of_two() {
                tracing::error!("{}: write failed: {e} ({} lines lost so far)", self.what, self.errors);
            }
        }
    }
}

/// Everything the scan stage needs, checked and built before the run starts (rules compiled,
/// logs opened), so that a bad setting is an error at start and not a failure per file.
pub struct ScanPlan {
    pipelines: Vec<Pipeline>,
    scanners: Vec<Arc<Scanner>>,
    store: Option<Arc<Store>>,
    keep: Keep,
    queue: usize,
    drain_timeout: Duration,
    scans_log: Option<LineLog>,
    alerts_log: Option<LineLog>,
    on_malicious: Vec<String>,
    action_timeout: Duration,
    metrics: ScanMetrics,
}

impl ScanPlan {
    pub fn build(cfg: &ScanConfig, store: Option<Arc<Store>>, registry: &Registry) -> Result<ScanPlan, ScanSetupError> {
        let mut by_name = BTreeMap::new();
        for (name, sc) in &cfg.scanners {
            by_name.insert(name.clone(), Arc::new(Scanner::new(name, sc)?));
        }
        let pipelines = cfg
            .pipelines
            .iter()
            .enumerate()
            .map(|(i, p)| Pipeline::build(i, p, &by_name))
            .collect::<Result<Vec<_>, _>>()?;
        if !pipelines.is_empty() && store.is_none() {
            return Err(ScanSetupError::NoStore);
        }
        if cfg.scan.queue == 0 {
            return Err(ScanSetupError::Queue);
        }
        if cfg.actions.on_malicious.first().is_some_and(|p| p.is_empty()) {
            return Err(ScanSetupError::Action);
        }
        let open = |what, p: &Option<PathBuf>| p.as_deref().map(|p| LineLog::open(what, p)).transpose();
        Ok(ScanPlan {
            pipelines,
            scanners: by_name.into_values().collect(),
            store,
            keep: cfg.store.keep,
            queue: cfg.scan.queue,
            drain_timeout: cfg.scan.drain_timeout,
            scans_log: open("scans log", &cfg.scan.scans_log)?,
            alerts_log: open("alerts log", &cfg.scan.alerts_log)?,
            on_malicious: cfg.actions.on_malicious.clone(),
            action_timeout: cfg.actions.timeout,
            metrics: ScanMetrics::register(registry),
        })
    }

    /// Whether there is anything to run: a pipeline, or a store whose figures to publish.
    pub fn is_active(&self) -> bool {
        !self.pipelines.is_empty() || self.store.is_some()
    }

    /// Starts the stage; call on the runtime its tasks run on.
    pub fn start(self) -> Scanning {
        let slots = Arc::new(Semaphore::new(self.queue));
        Scanning {
            shared: Arc::new(Stage {
                pipelines: self.pipelines,
                scanners: self.scanners,
                store: self.store,
                keep: self.keep,
                scans_log: self.scans_log.map(Mutex::new),
                alerts_log: self.alerts_log.map(Mutex::new),
                on_malicious: self.on_malicious,
                action_timeout: self.action_timeout,
                metrics: self.metrics,
                in_flight: Mutex::new(HashMap::new()),
                figures: Figures::default(),
            }),
            slots,
            queue: self.queue,
            drain_timeout: self.drain_timeout,
            jobs: JoinSet::new(),
            actions: Arc::new(Mutex::new(JoinSet::new())),
            next_job: 0,
        }
    }
}

/// What the stage counted, for the end-of-run summary.
#[derive(Debug, Default)]
struct Figures {
    scanned: AtomicU64,
    alerts: AtomicU64,
    queue_full: AtomicU64,
    not_stored: AtomicU64,
    drain_timeout: AtomicU64,
    actions_failed: AtomicU64,
}

/// The stage's figures of a run.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ScanSummary {
    /// Files the store kept this run (duplicates of a file it holds not counted).
    pub stored: u64,
    /// Files the store gave up: its queue was full, a write failed, or over its quota.
    pub store_queue_full: u64,
    pub store_errors: u64,
    pub evicted: u64,
    /// Deleted by retention (`store.keep`).
    pub deleted: u64,
    pub scanned: u64,
    pub alerts: u64,
    pub skipped_queue_full: u64,
    pub skipped_not_stored: u64,
    pub skipped_drain_timeout: u64,
    pub actions_failed: u64,
}

impl std::fmt::Display for ScanSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "scan: stored={} store_queue_full={} store_errors={} evicted={} deleted={} scanned={} alerts={} \
             skipped_queue_full={} skipped_not_stored={} skipped_drain_timeout={} actions_failed={}",
            self.stored,
            self.store_queue_full,
            self.store_errors,
            self.evicted,
            self.deleted,
            self.scanned,
            self.alerts,
            self.skipped_queue_full,
            self.skipped_not_stored,
            self.skipped_drain_timeout,
            self.actions_failed
        )
    }
}

struct Stage {
    pipelines: Vec<Pipeline>,
    scanners: Vec<Arc<Scanner>>,
    store: Option<Arc<Store>>,
    keep: Keep,
    scans_log: Option<Mutex<LineLog>>,
    alerts_log: Option<Mutex<LineLog>>,
    on_malicious: Vec<String>,
    action_timeout: Duration,
    metrics: ScanMetrics,
    /// Files in their chain, by job: what is logged for them if the run ends first.
    in_flight: Mutex<HashMap<u64, (FileRecord, String)>>,
    figures: Figures,
}

/// What [`Scanning::offer`] did with a record.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Offer {
    /// No pipeline wants the file.
    NotWanted,
    /// Taken: its chain runs; the record comes back from [`Scanning::next_done`].
    Queued,
    /// A pipeline wanted it, but the queue was full (counted).
    QueueFull,
    /// A pipeline wanted it, but the store does not have it (counted).
    NotStored,
}

impl Offer {
    /// The record's `scan` field for this outcome.
    pub fn status(self) -> Option<ScanStatus> {
        match self {
            Offer::NotWanted => None,
            Offer::Queued => Some(ScanStatus::Queued),
            Offer::QueueFull => Some(ScanStatus::SkippedQueueFull),
            Offer::NotStored => Some(ScanStatus::SkippedNotStored),
        }
    }
}

/// The running scan stage, owned by the egress task.
pub struct Scanning {
    shared: Arc<Stage>,
    slots: Arc<Semaphore>,
    queue: usize,
    drain_timeout: Duration,
    jobs: JoinSet<FileRecord>,
    actions: Arc<Mutex<JoinSet<()>>>,
    next_job: u64,
}

impl Scanning {
    /// Takes the file for its pipeline if one wants it and there is room; never waits.
    pub fn offer(&mut self, rec: &FileRecord) -> Offer {
        let Some(index) = self
            .shared
            .pipelines
            .iter()
            .position(|p| p.matches(rec.mime_type.as_deref()))
        else {
            return Offer::NotWanted;
        };
        let stage = &self.shared;
        let Some(ticket) = rec.scan.store_ticket.filter(|_| rec.scan.stored_path.is_some()) else {
            stage.metrics.skipped.with_label_values(&["not_stored"]).inc();
            stage.figures.not_stored.fetch_add(1, Ordering::Relaxed);
            return Offer::NotStored;
        };
        let Ok(permit) = self.slots.clone().try_acquire_owned() else {
            stage.metrics.skipped.with_label_values(&["queue_full"]).inc();
            stage.figures.queue_full.fetch_add(1, Ordering::Relaxed);
            return Offer::QueueFull;
        };
        let job = self.next_job;
        self.next_job += 1;
        let mut rec = rec.clone();
        rec.scan.scan = Some(ScanStatus::Queued);
        let pipeline = stage.pipelines[index].name.clone();
        stage
            .in_flight
            .lock()
            .expect("in flight")
            .insert(job, (rec.clone(), pipeline));
        self.publish_depth();
        let stage = self.shared.clone();
        let actions = self.actions.clone();
        self.jobs
            .spawn(async move { run_chain(stage, actions, job, index, ticket.id, rec, permit).await });
        Offer::Queued
    }

    fn publish_depth(&self) {
        let depth = self.queue - self.slots.available_permits();
        self.shared.metrics.queue_depth.set(depth as i64);
    }

    /// Files in their chain now.
    pub fn busy(&self) -> bool {
        !self.jobs.is_empty()
    }

    /// The next record whose chain ended, with `scan`, `verdict` and `verdicts` set. Pending
    /// forever when no chain runs (use with [`Scanning::busy`] in a select).
    pub async fn next_done(&mut self) -> FileRecord {
        loop {
            match self.jobs.join_next().await {
                Some(Ok(rec)) => {
                    self.publish_depth();
                    return rec;
                }
                Some(Err(e)) => tracing::error!("scan: a chain failed: {e}"),
                None => std::future::pending::<()>().await,
            }
        }
    }

    /// Records whose chains already ended, without waiting.
    pub fn take_done(&mut self) -> Vec<FileRecord> {
        let mut done = Vec::new();
        while let Some(r) = self.jobs.try_join_next() {
            match r {
                Ok(rec) => done.push(rec),
                Err(e) => tracing::error!("scan: a chain failed: {e}"),
            }
        }
        if !done.is_empty() {
            self.publish_depth();
        }
        done
    }

    /// Reloads the scanners that can reload (YARA rules on SIGHUP).
    pub async fn reload(&self) {
        for s in &self.shared.scanners {
            s.reload().await;
        }
    }

    /// The end of a run: waits up to `[scan] drain_timeout` for the chains and actions still
    /// running, then stops the rest (their children are killed) and logs them as
    /// `skipped_drain_timeout`. Returns the records of every chain that ended meanwhile or was
    /// stopped.
    pub async fn drain(&mut self) -> Vec<FileRecord> {
        let mut done = Vec::new();
        let deadline = tokio::time::Instant::now() + self.drain_timeout;
        while !self.jobs.is_empty() {
            match tokio::time::timeout_at(deadline, self.jobs.join_next()).await {
                Ok(Some(Ok(rec))) => done.push(rec),
                Ok(Some(Err(e))) => tracing::error!("scan: a chain failed: {e}"),
                Ok(None) | Err(_) => break,
            }
        }
        self.jobs.abort_all();
        while self.jobs.join_next().await.is_some() {}
        let left: Vec<(FileRecord, String)> = self
            .shared
            .in_flight
            .lock()
            .expect("in flight")
            .drain()
            .map(|(_, v)| v)
            .collect();
        if !left.is_empty() {
            tracing::warn!(
                "scan: {} files were still in their chains after {} (scan.drain_timeout); logged as skipped_drain_timeout",
                left.len(),
                humantime::format_duration(self.drain_timeout)
            );
        }
        for (mut rec, pipeline) in left {
            let stage = &self.shared;
            stage.metrics.skipped.with_label_values(&["drain_timeout"]).inc();
            stage.figures.drain_timeout.fetch_add(1, Ordering::Relaxed);
            if let (Some(store), Some(p)) = (&stage.store, &rec.scan.stored_path) {
                // Not judged: kept.
                store.release(Path::new(p), false);
            }
            rec.scan.scan = Some(ScanStatus::SkippedDrainTimeout);
            stage.log_scan(&rec, &pipeline, &[], false, Some("the run ended first"));
            done.push(rec);
        }
        // Actions get what is left of the drain time too; then they are stopped.
        let mut actions = std::mem::take(&mut *self.actions.lock().expect("actions"));
        let stopped = tokio::time::timeout_at(deadline, async { while actions.join_next().await.is_some() {} }).await;
        if stopped.is_err() {
            tracing::warn!("scan: action hooks still running at the end of scan.drain_timeout were stopped");
            actions.abort_all();
            while actions.join_next().await.is_some() {}
        }
        self.publish_depth();
        done
    }

    /// Publishes the store's counters to the metrics (each tick and at the end).
    pub fn publish_store(&self) {
        let Some(store) = &self.shared.store else { return };
        let c = store.counters();
        let m = &self.shared.metrics;
        for (event, v) in [
            ("stored", &c.files_stored),
            ("duplicate", &c.duplicates),
            ("evicted", &c.evicted),
            ("deleted", &c.deleted),
            ("aborted", &c.aborted),
            ("write_error", &c.write_errors),
            ("over_quota", &c.over_quota),
            ("queue_full", &c.queue_full),
        ] {
            let counter = m.store.with_label_values(&[event]);
            let total = v.load(Ordering::Relaxed);
            if total > counter.get() {
                counter.inc_by(total - counter.get());
            }
        }
        let (files, bytes) = store.held();
        m.store_held_files.set(files as i64);
        m.store_held_bytes.set(bytes as i64);
    }

    pub fn summary(&self) -> ScanSummary {
        let f = &self.shared.figures;
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let (stored, store_queue_full, store_errors, evicted, deleted) = match &self.shared.store {
            Some(st) => {
                let c = st.counters();
                (
                    load(&c.files_stored),
                    load(&c.queue_full),
                    load(&c.write_errors) + load(&c.over_quota),
                    load(&c.evicted),
                    load(&c.deleted),
                )
            }
            None => (0, 0, 0, 0, 0),
        };
        ScanSummary {
            stored,
            store_queue_full,
            store_errors,
            evicted,
            deleted,
            scanned: f.scanned.load(Ordering::Relaxed),
            alerts: f.alerts.load(Ordering::Relaxed),
            skipped_queue_full: f.queue_full.load(Ordering::Relaxed),
            skipped_not_stored: f.not_stored.load(Ordering::Relaxed),
            skipped_drain_timeout: f.drain_timeout.load(Ordering::Relaxed),
            actions_failed: f.actions_failed.load(Ordering::Relaxed),
        }
    }
}

async fn run_chain(
    stage: Arc<Stage>,
    actions: Arc<Mutex<JoinSet<()>>>,
    job: u64,
    index: usize,
    store_id: u64,
    mut rec: FileRecord,
    permit: OwnedSemaphorePermit,
) -> FileRecord {
    let started = std::time::Instant::now();
    let pipeline = &stage.pipelines[index];
    let store = stage.store.as_ref().expect("pipelines need a store");
    let path = match tokio::time::timeout(STORE_WAIT, store.ready(store_id)).await {
        Ok(Ok(p)) => p,
        outcome => {
            let why = match outcome {
                Ok(Err(why)) => why,
                _ => format!(
                    "the store did not write it within {}",
                    humantime::format_duration(STORE_WAIT)
                ),
            };
            stage.metrics.skipped.with_label_values(&["not_stored"]).inc();
            stage.figures.not_stored.fetch_add(1, Ordering::Relaxed);
            rec.scan.scan = Some(ScanStatus::SkippedNotStored);
            rec.scan.stored_path = None;
            stage.in_flight.lock().expect("in flight").remove(&job);
            stage.log_scan(&rec, &pipeline.name, &[], false, Some(&why));
            drop(permit);
            return rec;
        }
    };
    let mut results: Vec<ToolResult> = Vec::with_capacity(pipeline.scanners.len());
    for scanner in &pipeline.scanners {
        let r = scanner.scan(&path, &rec).await;
        let m = &stage.metrics;
        m.runs.with_label_values(&[&scanner.name]).inc();
        m.verdicts.with_label_values(&[&scanner.name, r.verdict.as_str()]).inc();
        m.duration.with_label_values(&[&scanner.name]).observe(r.duration);
        match r.verdict {
            Verdict::Error => m.errors.with_label_values(&[&scanner.name]).inc(),
            Verdict::Timeout => m.timeouts.with_label_values(&[&scanner.name]).inc(),
            _ => {}
        }
        let stop = pipeline
            .stop_on
            .is_some_and(|at| r.verdict >= at && r.verdict.is_alert());
        results.push(r);
        if stop {
            break;
        }
    }
    let verdict = results.iter().map(|r| r.verdict).max().unwrap_or(Verdict::Clean);
    let delete = match stage.keep {
        Keep::All => false,
        Keep::None => true,
        Keep::Flagged => verdict == Verdict::Clean,
    };
    let deleted = store.release(&path, delete);
    rec.scan.scan = Some(ScanStatus::Scanned);
    rec.scan.verdict = Some(verdict);
    rec.scan.verdicts = results
        .iter()
        .map(|r| ToolVerdict {
            scanner: r.scanner.clone(),
            verdict: r.verdict,
            signatures: r.signatures.clone(),
        })
        .collect();
    stage.in_flight.lock().expect("in flight").remove(&job);
    stage.log_scan(&rec, &pipeline.name, &results, deleted, None);
    stage.figures.scanned.fetch_add(1, Ordering::Relaxed);
    stage.metrics.scanned.inc();
    stage.metrics.chain_duration.observe(started.elapsed().as_secs_f64());
    if verdict.is_alert() {
        stage.figures.alerts.fetch_add(1, Ordering::Relaxed);
        stage.metrics.alerts.inc();
        stage.log_alert(&rec, &results);
        if verdict == Verdict::Malicious && !stage.on_malicious.is_empty() {
            let stage2 = stage.clone();
            let input = serde_json::to_vec(&rec).expect("records serialize");
            actions
                .lock()
                .expect("actions")
                .spawn(async move { stage2.run_action(input).await });
        }
    }
    drop(permit);
    rec
}

/// When a verdict was learnt: the wall clock (a scan happens now, also when reading a capture).
fn wall_clock() -> Timestamp {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    Timestamp::from_secs_nanos(d.as_secs(), d.subsec_nanos())
}

impl Stage {
    /// One scans-log line: a `scan` note joined to the file record by fuid.
    fn log_scan(&self, rec: &FileRecord, pipeline: &str, results: &[ToolResult], deleted: bool, detail: Option<&str>) {
        let Some(log) = &self.scans_log else { return };
        let mut note = FileNote::about(rec, "scan", wall_clock());
        let f: &mut AppFields = &mut note.fields;
        f.set("scan", rec.scan.scan.map(ScanStatus::as_str).unwrap_or("scanned"));
        f.set("pipeline", pipeline.to_owned());
        f.set_opt("verdict", rec.scan.verdict.map(|v| v.as_str()));
        f.set_opt("stored_path", rec.scan.stored_path.clone());
        f.set("deleted", deleted);
        f.set_opt("detail", detail.map(str::to_owned));
        f.set("results", serde_json::to_value(results).expect("results serialize"));
        log.lock().expect("scans log").write(&note);
    }

    /// One alerts-log line: what an analyst needs to act without joining logs.
    fn log_alert(&self, rec: &FileRecord, results: &[ToolResult]) {
        let Some(log) = &self.alerts_log else { return };
        let flagged: Vec<&ToolResult> = results.iter().filter(|r| r.verdict.is_alert()).collect();
        let signatures: Vec<&str> = flagged
            .iter()
            .flat_map(|r| r.signatures.iter().map(String::as_str))
            .collect();
        let scanners: Vec<&str> = flagged.iter().map(|r| r.scanner.as_str()).collect();
        let line = serde_json::json!({
            "ts": wall_clock().rfc3339(),
            "fuid": rec.fuid, "uid": rec.uid, "sha256": rec.sha256, "md5": rec.md5,
            "proto": rec.proto, "orig_h": rec.orig_h, "orig_p": rec.orig_p,
            "resp_h": rec.resp_h, "resp_p": rec.resp_p,
            "filename": rec.filename, "mime_type": rec.mime_type, "size": rec.size,
            "verdict": rec.scan.verdict, "signatures": signatures, "scanners": scanners,
            "stored_path": rec.scan.stored_path,
        });
        log.lock().expect("alerts log").write(&line);
    }

    /// The action hook: the record (with its verdicts) on stdin; never a shell.
    async fn run_action(&self, input: Vec<u8>) {
        let argv = &self.on_malicious;
        let run = async {
            let mut child = tokio::process::Command::new(&argv[0])
                .args(&argv[1..])
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .kill_on_drop(true)
                .spawn()?;
            if let Some(mut stdin) = child.stdin.take() {
                // A hook that does not read its input still runs.
                let _ = stdin.write_all(&input).await;
                let _ = stdin.write_all(b"\n").await;
            }
            child.wait().await
        };
        let result = match tokio::time::timeout(self.action_timeout, run).await {
            Ok(Ok(s)) if s.success() => "ok",
            Ok(Ok(s)) => {
                tracing::error!("actions.on_malicious {}: {s}", argv[0]);
                "failed"
            }
            Ok(Err(e)) => {
                tracing::error!("actions.on_malicious {}: cannot run it: {e}", argv[0]);
                "failed"
            }
            Err(_) => {
                tracing::error!(
                    "actions.on_malicious {}: still running after {}; killed",
                    argv[0],
                    humantime::format_duration(self.action_timeout)
                );
                "timeout"
            }
        };
        if result != "ok" {
            self.figures.actions_failed.fetch_add(1, Ordering::Relaxed);
        }
        self.metrics.actions.with_label_values(&[result]).inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{PipelineConfig, ScannerConfig};
    use crate::store::StoreSettings;
    use crate::MimeMatcher;
    use xdpcarve_contract::{FileStoreSink, StoreChunk, StoreEnd, StoreTicket};

    fn record(fuid: &str, sha: &str) -> FileRecord {
        let json = format!(
            r#"{{"ts":"2024-01-01T00:00:00.000000Z","fuid":"{fuid}","uid":"C1","proto":"http",
            "orig_h":"10.0.0.1","orig_p":40000,"resp_h":"10.0.0.2","resp_p":80,"direction":"download",
            "is_orig":false,"filename":"a.exe","mime_type":"application/x-dosexec","declared_mime_type":null,
            "extension_mime_type":null,"size":3,"total_bytes":3,"missing_bytes":0,"overflow_bytes":0,
            "truncated":false,"partial":false,"depth":0,"duration":0.0,"md5":null,"sha1":null,
            "sha256":"{sha}","blake3":null}}"#
        );
        serde_json::from_str(&json).unwrap()
    }

    /// Hands `data` to the store as the worker's sink would, and returns the record it ends with.
    fn stored(sink: &Arc<dyn FileStoreSink>, fuid: &str, sha: &str, data: &[u8]) -> FileRecord {
        let id = sink.open(fuid);
        assert!(sink.send(StoreChunk {
            id,
            offset: 0,
            bytes: data.to_vec(),
        }));
        let ticket = StoreTicket {
            id,
            sent: data.len() as u64,
            len: data.len() as u64,
        };
        let mut rec = record(fuid, sha);
        rec.scan.stored_path = sink.end(StoreEnd::Keep {
            ticket,
            sha256: Some(sha.into()),
            fuid: fuid.into(),
        });
        rec.scan.store_ticket = Some(ticket);
        rec
    }

    fn plan(dir: &Path, script: &str, queue: usize, drain: Duration, registry: &Registry) -> ScanPlan {
        let settings = StoreSettings {
            dir: dir.join("store"),
            max_bytes: 1 << 20,
            max_files: 100,
            incomplete: false,
            wait_when_full: true,
        };
        let store = Store::open(settings, MimeMatcher::new(&[".*".into()]).unwrap()).unwrap();
        let mut cfg = ScanConfig::default();
        cfg.scan.queue = queue;
        cfg.scan.drain_timeout = drain;
        cfg.scan.scans_log = Some(dir.join("scans.jsonl"));
        let scanner: ScannerConfig = serde_json::from_value(serde_json::json!({
            "kind": "command", "argv": ["sh", "-c", script, "scanner", "{path}"], "timeout": "5s"
        }))
        .unwrap();
        cfg.scanners.insert("sh".into(), scanner);
        cfg.pipelines.push(PipelineConfig {
            match_: "application/x-dosexec".into(),
            scanners: vec!["sh".into()],
            stop_on: None,
            name: Some("exe".into()),
        });
        ScanPlan::build(&cfg, Some(store), registry).unwrap()
    }

    fn metric(registry: &Registry, name: &str, label: Option<(&str, &str)>) -> f64 {
        let families = registry.gather();
        let Some(f) = families.iter().find(|f| f.get_name() == name) else {
            return 0.0;
        };
        f.get_metric()
            .iter()
            .filter(|m| {
                label.is_none_or(|(k, v)| m.get_label().iter().any(|l| l.get_name() == k && l.get_value() == v))
            })
            .map(|m| m.get_counter().get_value())
            .sum()
    }

    const SHA_A: &str = "aa00000000000000000000000000000000000000000000000000000000000001";
    const SHA_B: &str = "bb00000000000000000000000000000000000000000000000000000000000002";

    #[test]
    fn a_chain_reports_its_verdicts_metrics_and_a_full_queue_skips() {
        let dir = tempfile::tempdir().unwrap();
        let registry = Registry::new();
        let script = r#"grep -q EVIL "$1" && echo '{"verdict":"malicious","signatures":["Evil"]}'; exit 0"#;
        let plan = plan(dir.path(), script, 1, Duration::from_secs(10), &registry);
        let store = plan.store.clone().unwrap();
        let sink = store.sink();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let mut s = plan.start();
            let evil = stored(&sink, "F1", SHA_A, b"xx EVIL");
            let clean = stored(&sink, "F2", SHA_B, b"fine");
            assert_eq!(s.offer(&evil), Offer::Queued);
            assert_eq!(s.offer(&clean), Offer::QueueFull, "a queue of one is full");
            let mut not_stored = record("F3", SHA_B);
            not_stored.scan.store_ticket = None;
            assert_eq!(s.offer(&not_stored), Offer::NotStored);
            let mut other = record("F4", SHA_B);
            other.mime_type = Some("text/plain".into());
            assert_eq!(s.offer(&other), Offer::NotWanted);
            let done = s.next_done().await;
            assert_eq!(done.scan.verdict, Some(Verdict::Malicious));
            assert_eq!(done.scan.verdicts[0].signatures, ["Evil"]);
            assert_eq!(s.offer(&clean), Offer::Queued, "room again once the chain ended");
            let done = s.drain().await;
            assert_eq!(done.len(), 1);
            assert_eq!(done[0].scan.verdict, Some(Verdict::Clean));
            let sum = s.summary();
            assert_eq!(
                (
                    sum.scanned,
                    sum.alerts,
                    sum.skipped_queue_full,
                    sum.skipped_not_stored,
                    sum.deleted
                ),
                (2, 1, 1, 1, 1)
            );
        });
        assert_eq!(
            metric(&registry, "xdpcarve_scan_runs_total", Some(("scanner", "sh"))),
            2.0
        );
        assert_eq!(
            metric(
                &registry,
                "xdpcarve_scan_verdicts_total",
                Some(("verdict", "malicious"))
            ),
            1.0
        );
        assert_eq!(
            metric(&registry, "xdpcarve_scan_skipped_total", Some(("reason", "queue_full"))),
            1.0
        );
        let lines = std::fs::read_to_string(dir.path().join("scans.jsonl")).unwrap();
        let lines: Vec<serde_json::Value> = lines.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        // Files skipped when offered say so in their record, not here.
        assert_eq!(lines.len(), 2, "the two scanned");
        assert_eq!(lines[0]["verdict"], "malicious");
        assert_eq!(lines[0]["deleted"], false);
        assert_eq!(
            (&lines[1]["verdict"], &lines[1]["deleted"]),
            (&"clean".into(), &true.into())
        );
        store.close();
    }

    #[test]
    fn the_end_of_a_run_stops_chains_past_the_drain_timeout() {
        let dir = tempfile::tempdir().unwrap();
        let registry = Registry::new();
        let plan = plan(dir.path(), "exec sleep 30", 4, Duration::from_millis(200), &registry);
        let store = plan.store.clone().unwrap();
        let sink = store.sink();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let started = std::time::Instant::now();
        rt.block_on(async {
            let mut s = plan.start();
            assert_eq!(s.offer(&stored(&sink, "F1", SHA_A, b"slow")), Offer::Queued);
            let done = s.drain().await;
            assert_eq!(done[0].scan.scan, Some(ScanStatus::SkippedDrainTimeout));
            assert_eq!(s.summary().skipped_drain_timeout, 1);
        });
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the sleeping scanner was stopped"
        );
        let line = std::fs::read_to_string(dir.path().join("scans.jsonl")).unwrap();
        assert!(line.contains("skipped_drain_timeout"), "{line}");
        store.close();
        assert!(
            dir.path().join("store/aa").join(SHA_A).exists(),
            "an unjudged file is kept"
        );
    }
}
