//! The fleet: many sensors sharing one dedup and one event stream on Redis (`[fleet]`).
//!
//! Keys (the `{sha256}` hash tag keeps one file's keys in one Redis Cluster slot, so each script
//! below touches a single slot):
//! - `xdpcarve:{<sha256>}:claim`: the sensor submitting it now, with a lease (`fleet.lease`).
//! - `xdpcarve:{<sha256>}:sent`: the receiver accepted it (2xx); kept for `dedup.ttl`.
//! - `xdpcarve:{<sha256>}:seen`: sightings, a hash of `count`, `first`, `last` and `s:<sensor>`
//!   (how often each sensor saw it); kept for `fleet.seen_ttl` after the last one.
//! - `fleet.stream` (`xdpcarve:files`): every record (`kind` `file`) and scanned file (`kind`
//!   `verdict`), fields `sensor`, `kind`, `record` (the files log's JSON line, as it is) and,
//!   for a file, `sightings` (JSON: `count`, `first_seen`, `last_seen`, `sensors`).
//!
//! Dedup commits on delivery, fleet-wide: a sensor claims a hash (`SET .. NX PX lease`), submits,
//! and on the API's 2xx sets `sent`; when its delivery fails the claim lapses and another sensor
//! may submit. While Redis is down (or slower than `fleet.timeout`) each sensor decides by its
//! local dedup alone, and the hashes it delivered meanwhile are committed when Redis is back.
//! Nothing here blocks a worker or the egress loop: claims run as tasks and come back as
//! messages, the stream is fed from a write-ahead outbox (`stream`), and the files log is written
//! before any of it.

pub mod link;
pub mod stream;

use crate::config::FleetConfig;
use crate::journal::Journal;
use crate::FsyncPolicy;
use link::{CallError, Conn, Link, Target};
use prometheus::{Histogram, IntCounter, IntCounterVec, IntGauge, Registry};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use stream::StreamOutbox;
use tokio::sync::{watch, Notify};

pub use link::FleetError;

/// Where a file was seen across the fleet.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sightings {
    /// Times any sensor saw it.
    pub count: u64,
    /// First and last sighting (the records' `ts`).
    pub first_seen: String,
    pub last_seen: String,
    /// The sensors that saw it, by name.
    pub sensors: Vec<String>,
}

impl Sightings {
    /// From the flat `HGETALL` of a `seen` key.
    fn from_fields(flat: &[String]) -> Sightings {
        let mut s = Sightings::default();
        let mut sensors = BTreeSet::new();
        for kv in flat.chunks_exact(2) {
            match kv[0].as_str() {
                "count" => s.count = kv[1].parse().unwrap_or(0),
                "first" => s.first_seen = kv[1].clone(),
                "last" => s.last_seen = kv[1].clone(),
                k => {
                    if let Some(name) = k.strip_prefix("s:") {
                        sensors.insert(name.to_string());
                    }
                }
            }
        }
        s.sensors = sensors.into_iter().collect();
        s
    }

    /// These sightings with one more, by `sensor` at `ts` (what the fleet will know once the
    /// stream has counted it).
    fn with(mut self, sensor: &str, ts: &str) -> Sightings {
        self.count += 1;
        if self.first_seen.is_empty() || ts < self.first_seen.as_str() {
            self.first_seen = ts.to_string();
        }
        if ts > self.last_seen.as_str() {
            self.last_seen = ts.to_string();
        }
        if !self.sensors.iter().any(|s| s == sensor) {
            self.sensors.push(sensor.to_string());
            self.sensors.sort();
        }
        self
    }
}

/// What the fleet said about a hash this sensor wants to submit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Claim {
    /// Ours to submit; the fleet's sightings so far, this one included.
    Claimed(Sightings),
    /// Already delivered (by the named sensor) within the dedup TTL.
    Sent(String),
    /// Another sensor (named) is submitting it now.
    Taken(String),
    /// Redis did not answer: decide locally.
    Failed,
}

/// Prometheus metrics of the fleet (registered only when `fleet.redis` is set).
#[derive(Clone)]
pub struct FleetMetrics {
    pub up: IntGauge,
    pub reconnects: IntCounter,
    pub errors: IntCounter,
    pub claims: IntCounterVec,
    pub dedup_hits: IntCounterVec,
    pub claim_seconds: Histogram,
    pub commits: IntCounter,
    pub commits_pending: IntGauge,
    pub commits_lost: IntCounter,
    pub stream_added: IntCounter,
    pub stream_pending: IntGauge,
    pub stream_spilled: IntCounter,
    pub stream_replayed: IntCounter,
    pub stream_lost: IntCounterVec,
}

impl FleetMetrics {
    pub fn new(r: &Registry) -> FleetMetrics {
        use crate::metrics::{counter, counter_vec, gauge, histogram};
        let m = FleetMetrics {
            up: gauge(r, "xdpcarve_fleet_up", "1 while Redis (fleet.redis) answers, 0 while the sensor decides alone."),
            reconnects: counter(r, "xdpcarve_fleet_reconnects_total", "Times the link to Redis came back after going down."),
            errors: counter(r, "xdpcarve_fleet_errors_total", "Redis calls that failed or timed out (fleet.timeout)."),
            claims: counter_vec(
                r,
                "xdpcarve_fleet_claims_total",
                "Submissions by what the fleet said: claimed (ours), sent or taken (another sensor's), local (Redis down: decided alone).",
                &["result"],
            ),
            dedup_hits: counter_vec(
                r,
                "xdpcarve_fleet_dedup_hits_total",
                "Submissions saved by dedup, by where the hash was known: local (this sensor) or fleet (Redis).",
                &["scope"],
            ),
            claim_seconds: histogram(
                r,
                "xdpcarve_fleet_claim_seconds",
                "Round trip of a dedup claim to Redis.",
                vec![0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5],
            ),
            commits: counter(r, "xdpcarve_fleet_commits_total", "Delivered hashes recorded fleet-wide (the sent key set)."),
            commits_pending: gauge(r, "xdpcarve_fleet_commits_pending", "Delivered hashes waiting for Redis to record them."),
            commits_lost: counter(
                r,
                "xdpcarve_fleet_commits_lost_total",
                "Delivered hashes never recorded in Redis (queue full or shut down while down): other sensors may submit them again.",
            ),
            stream_added: counter(r, "xdpcarve_fleet_stream_added_total", "Records added to the stream (fleet.stream)."),
            stream_pending: gauge(r, "xdpcarve_fleet_stream_pending", "Records waiting to be added to the stream."),
            stream_spilled: counter(
                r,
                "xdpcarve_fleet_stream_spilled_total",
                "Records that reached egress while Redis was down (they wait in memory or in <spill.dir>/stream).",
            ),
            stream_replayed: counter(
                r,
                "xdpcarve_fleet_stream_replayed_total",
                "Records added to the stream after waiting for Redis (an outage or an earlier run).",
            ),
            stream_lost: counter_vec(
                r,
                "xdpcarve_fleet_stream_lost_total",
                "Records that never reach the stream, by reason (memory_full, journal_full, disk_full, journal_error, shutdown).",
                &["reason"],
            ),
        };
        for r in ["claimed", "sent", "taken", "local"] {
            m.claims.with_label_values(&[r]);
        }
        for s in ["local", "fleet"] {
            m.dedup_hits.with_label_values(&[s]);
        }
        m
    }
}

/// The fleet's figures of a run, for the end-of-run summary.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct FleetSummary {
    pub stream_added: u64,
    pub stream_replayed: u64,
    /// Records left in `<spill.dir>/stream` for the next start (not lost).
    pub stream_pending: u64,
    /// Records that will never reach the stream.
    pub stream_lost: u64,
    pub claimed: u64,
    pub dedup_fleet: u64,
    pub dedup_local: u64,
    /// Submissions decided without Redis (it was down or slow).
    pub decided_locally: u64,
    /// Delivered hashes left in `<spill.dir>/fleet-commits` for the next start.
    pub commits_pending: u64,
    pub commits_lost: u64,
    pub reconnects: u64,
    pub up_at_end: bool,
}

/// Most delivered hashes kept waiting for Redis to record them (32 bytes of hex each, ~7 MiB).
const MAX_PENDING_COMMITS: usize = 100_000;

static CLAIM: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| {
    redis::Script::new(
        r#"
-- KEYS: claim, sent, seen. ARGV: sensor, lease in ms.
local seen = redis.call('HGETALL', KEYS[3])
local sent = redis.call('GET', KEYS[2])
if sent then return {'sent', sent, seen} end
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return {'claimed', ARGV[1], seen} end
local holder = redis.call('GET', KEYS[1]) or ''
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return {'claimed', holder, seen}
end
return {'taken', holder, seen}
"#,
    )
});

static COMMIT: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| {
    redis::Script::new(
        r#"
-- KEYS: claim, sent. ARGV: sensor, dedup TTL in s.
redis.call('SET', KEYS[2], ARGV[1], 'EX', ARGV[2])
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 1
"#,
    )
});

static RELEASE: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| {
    redis::Script::new(
        r#"
-- KEYS: claim. ARGV: sensor. Lets go of our claim only.
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"#,
    )
});

pub(crate) static SIGHT: std::sync::LazyLock<redis::Script> =
    std::sync::LazyLock::new(|| redis::Script::new(SIGHT_LUA));

pub(crate) const SIGHT_LUA: &str = r#"
-- KEYS: seen. ARGV: sensor, ts (RFC 3339 UTC: orders as text), TTL in s.
local k = KEYS[1]
local v = redis.call('HMGET', k, 'first', 'last')
local set = {}
if (not v[1]) or ARGV[2] < v[1] then set[#set + 1] = 'first'; set[#set + 1] = ARGV[2] end
if (not v[2]) or ARGV[2] > v[2] then set[#set + 1] = 'last'; set[#set + 1] = ARGV[2] end
if #set > 0 then redis.call('HSET', k, unpack(set)) end
redis.call('HINCRBY', k, 'count', 1)
redis.call('HINCRBY', k, 's:' .. ARGV[1], 1)
redis.call('EXPIRE', k, ARGV[3])
return redis.call('HGETALL', KEYS[1])
"#;

pub fn claim_key(sha256: &str) -> String {
    format!("xdpcarve:{{{sha256}}}:claim")
}
pub fn sent_key(sha256: &str) -> String {
    format!("xdpcarve:{{{sha256}}}:sent")
}
pub fn seen_key(sha256: &str) -> String {
    format!("xdpcarve:{{{sha256}}}:seen")
}

/// The fleet as the egress sees it: shared by the egress loop, the delivery task and the fleet's
/// own tasks (reconnect, stream, commits).
pub struct Fleet {
    pub(crate) link: Arc<Link>,
    target: Mutex<Option<Target>>,
    reconnect_max_delay: Duration,
    sensor: String,
    lease_ms: u64,
    seen_ttl_s: u64,
    dedup_ttl_s: u64,
    /// A Redis Cluster: a pipeline may only touch one slot, so per-file calls go one by one.
    pub(crate) cluster: bool,
    /// Whether claims are made at all (dedup on and a webhook to submit to).
    pub(crate) claims: bool,
    commits: Mutex<VecDeque<String>>,
    /// `<spill.dir>/fleet-commits`: delivered hashes Redis had not recorded at shutdown, one per
    /// line, recorded at the next start.
    commits_file: Option<PathBuf>,
    releases: Mutex<VecDeque<String>>,
    commit_wake: Notify,
    pub(crate) stream: Mutex<StreamOutbox>,
    pub(crate) stream_wake: Notify,
    pub(crate) stream_name: String,
    pub(crate) stream_maxlen: u64,
    pub(crate) metrics: FleetMetrics,
}

impl Fleet {
    /// Checks the settings and opens the stream's outbox (`<spill.dir>/stream` when there is a
    /// spill directory). Connecting happens in the background ([`Fleet::spawn`]): Redis being down
    /// at start is an outage like any other, not an error.
    #[allow(clippy::too_many_arguments)]
    pub fn open(
        cfg: &FleetConfig,
        sensor: &str,
        dedup_ttl: Duration,
        claims: bool,
        spill_dir: Option<&Path>,
        spill_max_bytes: u64,
        fsync: FsyncPolicy,
        registry: &Registry,
    ) -> Result<Arc<Fleet>, OpenError> {
        let target = Target::new(cfg, cfg.timeout)?;
        let metrics = FleetMetrics::new(registry);
        let journal = match spill_dir {
            Some(dir) => {
                let dir = dir.join("stream");
                let (j, r) = Journal::open(&dir, spill_max_bytes, fsync).map_err(|source| OpenError::Journal {
                    path: dir.clone(),
                    source,
                })?;
                if r.damaged_bytes > 0 {
                    tracing::error!(
                        "stream journal {}: {} damaged bytes cut off (a crash mid-write); the records in them are lost",
                        dir.display(),
                        r.damaged_bytes
                    );
                }
                if r.items > 0 {
                    tracing::info!(
                        "stream journal: {} records from an earlier run will be added to the stream first",
                        r.items
                    );
                }
                Some(j)
            }
            None => None,
        };
        let commits_file = spill_dir.map(|d| d.join("fleet-commits"));
        let commits = match &commits_file {
            Some(p) => read_commits(p).map_err(|source| OpenError::Commits {
                path: p.clone(),
                source,
            })?,
            None => VecDeque::new(),
        };
        if !commits.is_empty() {
            tracing::info!(
                "fleet: {} delivered hashes from an earlier run will be recorded in Redis",
                commits.len()
            );
        }
        metrics.commits_pending.set(commits.len() as i64);
        let stream = StreamOutbox::new(journal, cfg.memory_records, metrics.clone());
        let link = Link::new(cfg.timeout, metrics.clone(), link::display_urls(&cfg.urls()));
        Ok(Arc::new(Fleet {
            link,
            target: Mutex::new(Some(target)),
            reconnect_max_delay: cfg.reconnect_max_delay,
            sensor: sensor.to_string(),
            lease_ms: cfg.lease.as_millis().max(1) as u64,
            seen_ttl_s: cfg.seen_ttl.as_secs().max(1),
            dedup_ttl_s: dedup_ttl.as_secs().max(1),
            cluster: cfg.is_cluster(),
            claims,
            commits: Mutex::new(commits),
            commits_file,
            releases: Mutex::new(VecDeque::new()),
            commit_wake: Notify::new(),
            stream: Mutex::new(stream),
            stream_wake: Notify::new(),
            stream_name: cfg.stream.clone(),
            stream_maxlen: cfg.stream_maxlen,
            metrics,
        }))
    }

    /// Starts the reconnect, stream and commit tasks on the current runtime; they end on `stop`.
    pub fn spawn(self: &Arc<Fleet>, stop: watch::Receiver<bool>) -> Vec<tokio::task::JoinHandle<()>> {
        let target = self.target.lock().expect("fleet target").take().expect("spawned once");
        vec![
            tokio::spawn(
                self.link
                    .clone()
                    .keep_connected(target, self.reconnect_max_delay, stop.clone()),
            ),
            tokio::spawn(stream::publish_loop(self.clone(), stop.clone())),
            tokio::spawn(self.clone().commit_loop(stop)),
        ]
    }

    pub fn is_up(&self) -> bool {
        self.link.is_up()
    }

    pub fn sensor(&self) -> &str {
        &self.sensor
    }

    /// Records Redis has taken into the stream so far.
    pub fn stream_added(&self) -> u64 {
        self.metrics.stream_added.get()
    }

    /// Asks the fleet whether this sensor should submit `sha256` (seen at `ts`).
    pub async fn claim(&self, sha256: &str, ts: &str) -> Claim {
        let started = Instant::now();
        let keys = [claim_key(sha256), sent_key(sha256), seen_key(sha256)];
        let (sensor, lease) = (self.sensor.clone(), self.lease_ms);
        let res = self
            .link
            .call(|mut c: Conn| async move {
                CLAIM
                    .key(&keys[0])
                    .key(&keys[1])
                    .key(&keys[2])
                    .arg(&sensor)
                    .arg(lease)
                    .invoke_async::<(String, String, Vec<String>)>(&mut c)
                    .await
            })
            .await;
        let m = &self.metrics;
        let claim = match res {
            Ok((status, who, seen)) => {
                m.claim_seconds.observe(started.elapsed().as_secs_f64());
                match status.as_str() {
                    "claimed" => Claim::Claimed(Sightings::from_fields(&seen).with(&self.sensor, ts)),
                    "sent" => Claim::Sent(who),
                    _ => Claim::Taken(who),
                }
            }
            Err(_) => Claim::Failed,
        };
        let label = match &claim {
            Claim::Claimed(_) => "claimed",
            Claim::Sent(_) => "sent",
            Claim::Taken(_) => "taken",
            Claim::Failed => "local",
        };
        m.claims.with_label_values(&[label]).inc();
        claim
    }

    /// Counts a submission decided without asking Redis (it is down).
    pub fn decided_locally(&self) {
        self.metrics.claims.with_label_values(&["local"]).inc();
    }

    /// The receiver accepted these hashes: record them fleet-wide (now, or when Redis is back).
    pub fn delivered<'a>(&self, sha256s: impl IntoIterator<Item = &'a str>) {
        if !self.claims {
            return;
        }
        let mut q = self.commits.lock().expect("fleet commits");
        for s in sha256s {
            if q.len() >= MAX_PENDING_COMMITS {
                q.pop_front();
                self.metrics.commits_lost.inc();
            }
            q.push_back(s.to_string());
        }
        self.metrics.commits_pending.set(q.len() as i64);
        drop(q);
        self.commit_wake.notify_one();
    }

    /// The receiver refused these for good: let go of our claims so another sensor may try.
    pub fn released<'a>(&self, sha256s: impl IntoIterator<Item = &'a str>) {
        if !self.claims {
            return;
        }
        let mut q = self.releases.lock().expect("fleet releases");
        q.extend(sha256s.into_iter().map(String::from));
        q.truncate(MAX_PENDING_COMMITS);
        drop(q);
        self.commit_wake.notify_one();
    }

    /// Adds a record (`kind` "file" or "verdict", `json` the files log's line) to the stream.
    pub fn add_to_stream(&self, kind: stream::Kind, json: &str) {
        let down = !self.link.is_up();
        let flushed = self.stream.lock().expect("fleet stream").add(kind, json, down);
        if flushed {
            self.stream_wake.notify_one();
        }
    }

    /// Closes the open stream batch when it is old (or `force`): called when the egress loop is
    /// idle, and between rounds while it is busy.
    pub fn flush_stream(&self, force: bool) {
        let mut s = self.stream.lock().expect("fleet stream");
        if s.flush(force) {
            drop(s);
            self.stream_wake.notify_one();
        }
    }

    /// Whether everything owed to Redis (stream records, commits) has gone.
    pub fn is_drained(&self) -> bool {
        self.stream.lock().expect("fleet stream").is_empty() && self.commits.lock().expect("fleet commits").is_empty()
    }

    /// At shutdown: what could not be sent is kept (journal) or counted lost.
    pub fn close(&self) -> FleetSummary {
        let mut s = self.stream.lock().expect("fleet stream");
        s.flush(true);
        s.persist_memory();
        s.sync(true);
        let pending = s.journal_pending();
        drop(s);
        let left = std::mem::take(&mut *self.commits.lock().expect("fleet commits"));
        let kept = match &self.commits_file {
            Some(p) => match write_commits(p, &left) {
                Ok(()) => left.len(),
                Err(e) => {
                    tracing::error!("fleet: cannot write {}: {e}", p.display());
                    0
                }
            },
            None => 0,
        };
        if left.len() > kept {
            self.metrics.commits_lost.inc_by((left.len() - kept) as u64);
            tracing::warn!(
                "fleet: {} delivered hashes could not be recorded in Redis before shutdown (no spill.dir to keep them); \
                 other sensors may submit them again",
                left.len() - kept
            );
        } else if kept > 0 {
            tracing::warn!(
                "fleet: {kept} delivered hashes wait in {} for Redis (recorded at the next start)",
                self.commits_file
                    .as_deref()
                    .map(Path::display)
                    .map(|d| d.to_string())
                    .unwrap_or_default()
            );
        }
        self.metrics.commits_pending.set(0);
        let m = &self.metrics;
        let sum_vec = |v: &IntCounterVec, labels: &[&str]| labels.iter().map(|l| v.with_label_values(&[l]).get()).sum();
        FleetSummary {
            stream_added: m.stream_added.get(),
            stream_replayed: m.stream_replayed.get(),
            stream_pending: pending,
            stream_lost: sum_vec(
                &m.stream_lost,
                &["memory_full", "journal_full", "disk_full", "journal_error", "shutdown"],
            ),
            claimed: m.claims.with_label_values(&["claimed"]).get(),
            dedup_fleet: m.dedup_hits.with_label_values(&["fleet"]).get(),
            dedup_local: m.dedup_hits.with_label_values(&["local"]).get(),
            decided_locally: m.claims.with_label_values(&["local"]).get(),
            commits_pending: kept as u64,
            commits_lost: m.commits_lost.get(),
            reconnects: m.reconnects.get(),
            up_at_end: self.link.is_up(),
        }
    }

    /// Records delivered hashes (`sent`) and lets go of refused ones, in batches, while Redis is up.
    async fn commit_loop(self: Arc<Fleet>, mut stop: watch::Receiver<bool>) {
        const BATCH: usize = 256;
        loop {
            if *stop.borrow() {
                return;
            }
            // Taken out while in flight (delivered() may trim the queue meanwhile), put back
            // in front when Redis fails them.
            let commits: Vec<String> = {
                let mut q = self.commits.lock().expect("fleet commits");
                let n = q.len().min(BATCH);
                q.drain(..n).collect()
            };
            let releases: Vec<String> = {
                let mut q = self.releases.lock().expect("fleet releases");
                let n = q.len().min(BATCH);
                q.drain(..n).collect()
            };
            if commits.is_empty() && releases.is_empty() {
                tokio::select! {
                    _ = self.commit_wake.notified() => continue,
                    _ = stop.changed() => return,
                }
            }
            let done = if self.link.is_up() {
                self.run_commits(&commits, &releases).await
            } else {
                Err(CallError::Down)
            };
            match done {
                Ok(()) => {
                    self.metrics.commits.inc_by(commits.len() as u64);
                    let q = self.commits.lock().expect("fleet commits");
                    self.metrics.commits_pending.set(q.len() as i64);
                }
                Err(_) => {
                    // Releases are a courtesy (the lease lapses anyway); commits wait for Redis.
                    self.requeue_commits(commits);
                    tokio::select! {
                        _ = self.link.wait_up() => {}
                        _ = stop.changed() => return,
                    }
                }
            }
        }
    }

    /// Puts commits Redis did not take back in front of the queue, within its bound.
    fn requeue_commits(&self, commits: Vec<String>) {
        let mut q = self.commits.lock().expect("fleet commits");
        for sha in commits.into_iter().rev() {
            if q.len() >= MAX_PENDING_COMMITS {
                self.metrics.commits_lost.inc();
                continue;
            }
            q.push_front(sha);
        }
        self.metrics.commits_pending.set(q.len() as i64);
    }

    async fn run_commits(&self, commits: &[String], releases: &[String]) -> Result<(), CallError> {
        let (sensor, ttl) = (self.sensor.as_str(), self.dedup_ttl_s);
        let calls = commits
            .iter()
            .map(|sha| {
                let (claim, sent) = (claim_key(sha), sent_key(sha));
                self.link.call(move |mut c: Conn| async move {
                    COMMIT
                        .key(&claim)
                        .key(&sent)
                        .arg(sensor)
                        .arg(ttl)
                        .invoke_async::<i64>(&mut c)
                        .await
                })
            })
            .collect::<Vec<_>>();
        let rels = releases
            .iter()
            .map(|sha| {
                let claim = claim_key(sha);
                self.link.call(move |mut c: Conn| async move {
                    RELEASE.key(&claim).arg(sensor).invoke_async::<i64>(&mut c).await
                })
            })
            .collect::<Vec<_>>();
        let (a, _) = futures_util::future::join(
            futures_util::future::join_all(calls),
            futures_util::future::join_all(rels),
        )
        .await;
        a.into_iter().collect::<Result<Vec<_>, _>>().map(|_| ())
    }
}

/// Reads `<spill.dir>/fleet-commits` (absent: none); lines that are not a SHA-256 are skipped.
fn read_commits(path: &Path) -> std::io::Result<VecDeque<String>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(VecDeque::new()),
        Err(e) => return Err(e),
    };
    let is_sha256 = |l: &&str| l.len() == 64 && l.bytes().all(|b| b.is_ascii_hexdigit());
    Ok(text
        .lines()
        .filter(is_sha256)
        .take(MAX_PENDING_COMMITS)
        .map(String::from)
        .collect())
}

/// Replaces `<spill.dir>/fleet-commits` with `left` (removes it when empty), atomically.
fn write_commits(path: &Path, left: &VecDeque<String>) -> std::io::Result<()> {
    if left.is_empty() {
        return match std::fs::remove_file(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        };
    }
    let tmp = path.with_extension("tmp");
    let mut text = String::with_capacity(left.len() * 65);
    for sha in left {
        text.push_str(sha);
        text.push('\n');
    }
    std::fs::write(&tmp, text)?;
    std::fs::File::open(&tmp)?.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// An error opening the fleet at start.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(transparent)]
    Setup(#[from] FleetError),
    #[error("spill.dir: cannot read {} (delivered hashes owed to Redis)", path.display())]
    Commits {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("spill.dir: cannot open the stream journal {}", path.display())]
    Journal {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sightings_read_from_the_seen_hash_and_count_one_more() {
        let flat: Vec<String> = [
            "count",
            "2",
            "first",
            "2026-01-01T00:00:02Z",
            "last",
            "2026-01-01T00:00:05Z",
            "s:b",
            "1",
            "s:a",
            "1",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let s = Sightings::from_fields(&flat);
        assert_eq!(s.count, 2);
        assert_eq!(s.sensors, vec!["a", "b"]);
        let s = s.with("c", "2026-01-01T00:00:01Z");
        assert_eq!(s.count, 3);
        assert_eq!(s.first_seen, "2026-01-01T00:00:01Z");
        assert_eq!(s.last_seen, "2026-01-01T00:00:05Z");
        assert_eq!(s.sensors, vec!["a", "b", "c"]);
        let fresh = Sightings::default().with("a", "2026-01-01T00:00:09Z");
        assert_eq!(
            (fresh.count, fresh.first_seen.as_str(), fresh.last_seen.as_str()),
            (1, "2026-01-01T00:00:09Z", "2026-01-01T00:00:09Z")
        );
    }

    #[test]
    fn commits_left_at_shutdown_are_kept_for_the_next_start() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("fleet-commits");
        assert!(read_commits(&p).unwrap().is_empty(), "absent: none");
        let left: VecDeque<String> = ["a".repeat(64), "b".repeat(64)].into_iter().collect();
        write_commits(&p, &left).unwrap();
        std::fs::write(&p, format!("{}not a hash\n", std::fs::read_to_string(&p).unwrap())).unwrap();
        assert_eq!(read_commits(&p).unwrap(), left);
        write_commits(&p, &VecDeque::new()).unwrap();
        assert!(!p.exists(), "nothing left: the file goes");
    }

    #[test]
    fn keys_share_one_cluster_slot() {
        let sha = "ab".repeat(32);
        for k in [claim_key(&sha), sent_key(&sha), seen_key(&sha)] {
            assert!(k.contains(&format!("{{{sha}}}")), "{k}");
        }
    }

    #[test]
    fn urls_are_shown_without_credentials() {
        let shown = link::display_urls(&["redis://u:secret@h:1".into(), "rediss://h2:2".into()]);
        assert_eq!(shown, "redis://h:1,rediss://h2:2");
    }
}
