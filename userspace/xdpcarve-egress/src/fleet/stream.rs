//! The stream: every record `XADD`ed to `fleet.stream`, in order, none lost while Redis is away.
//!
//! Write-ahead, like the webhook's outbox: records are grouped into batches (at most
//! [`BATCH_RECORDS`], or what came within [`crate::outbox::COMMIT_WINDOW`]) and each batch is
//! appended to `<spill.dir>/stream/` as it closes; the publisher adds the oldest batch to the
//! stream and only then moves the journal's cursor. Redis down, or the sensor restarted, the
//! batches wait on disk (bounded by `spill.max_bytes`) and go in the same order once Redis
//! answers. Without `spill.dir` they wait in memory, at most `fleet.memory_records` records;
//! past that, or at shutdown, they are lost and counted (the run exits non-zero).
//!
//! Delivery is at-least-once: a batch whose `XADD`s went through but whose answer was lost is
//! added again. Each batch's sightings are counted once however often it is retried.

use super::{seen_key, Fleet, Sightings, SIGHT};
use crate::journal::{is_disk_full, AppendError, Journal};
use crate::outbox::COMMIT_WINDOW;
use bytes::Bytes;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::watch;

/// Records per batch at most (one pipeline of `XADD`s).
pub const BATCH_RECORDS: u32 = 256;

/// What a stream entry carries: a file record, or a scanned file with its verdicts.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    File,
    Verdict,
}

impl Kind {
    fn tag(self) -> u8 {
        match self {
            Kind::File => b'f',
            Kind::Verdict => b'v',
        }
    }

    fn of(tag: u8) -> Option<Kind> {
        match tag {
            b'f' => Some(Kind::File),
            b'v' => Some(Kind::Verdict),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::File => "file",
            Kind::Verdict => "verdict",
        }
    }
}

fn journal_items(journal: &Option<Journal>) -> u64 {
    journal.as_ref().map(|j| j.pending_items()).unwrap_or(0)
}

/// Batches of records waiting for the stream: lines `<kind tag><json>\n`.
pub struct StreamOutbox {
    open: Vec<u8>,
    open_records: u32,
    opened: Option<Instant>,
    mem: VecDeque<(Bytes, u32)>,
    mem_records: usize,
    mem_cap: usize,
    journal: Option<Journal>,
    last_sync: Instant,
    metrics: super::FleetMetrics,
    losses_logged: u64,
    /// Records that waited for Redis (added while it was down, or kept from an earlier run) and
    /// are not in the stream yet: counted `stream_replayed` as they go.
    to_replay: u64,
}

impl StreamOutbox {
    pub fn new(journal: Option<Journal>, mem_cap: usize, metrics: super::FleetMetrics) -> StreamOutbox {
        let to_replay = journal_items(&journal);
        let s = StreamOutbox {
            to_replay,
            open: Vec::new(),
            open_records: 0,
            opened: None,
            mem: VecDeque::new(),
            mem_records: 0,
            mem_cap: mem_cap.max(1),
            journal,
            last_sync: Instant::now(),
            metrics,
            losses_logged: 0,
        };
        s.update_gauge();
        s
    }

    /// Adds one record; true when that closed a batch.
    pub fn add(&mut self, kind: Kind, json: &str, redis_down: bool) -> bool {
        if self.open_records == 0 {
            self.opened = Some(Instant::now());
        }
        self.open.push(kind.tag());
        self.open.extend_from_slice(json.trim_end().as_bytes());
        self.open.push(b'\n');
        self.open_records += 1;
        if redis_down {
            self.metrics.stream_spilled.inc();
            self.to_replay += 1;
        }
        if self.open_records >= BATCH_RECORDS {
            self.close_open();
            return true;
        }
        self.update_gauge();
        false
    }

    /// Closes the open batch if it is older than the commit window (or `force`).
    pub fn flush(&mut self, force: bool) -> bool {
        let old = self.opened.is_some_and(|t| t.elapsed() >= COMMIT_WINDOW);
        if self.open_records > 0 && (force || old) {
            self.close_open();
            return true;
        }
        false
    }

    fn close_open(&mut self) {
        let body = Bytes::from(std::mem::take(&mut self.open));
        let n = std::mem::take(&mut self.open_records);
        self.opened = None;
        match self.journal.as_mut() {
            Some(j) => match j.append(&body, n) {
                Ok(()) => {}
                Err(AppendError::Full) => self.lose(n, "journal_full", "the stream journal is full (spill.max_bytes)"),
                Err(AppendError::Io(e)) if is_disk_full(&e) => {
                    self.lose(n, "disk_full", &format!("the stream journal's disk is full ({e})"))
                }
                Err(AppendError::Io(e)) => self.lose(n, "journal_error", &format!("stream journal write failed: {e}")),
            },
            None if self.mem_records + n as usize <= self.mem_cap => {
                self.mem_records += n as usize;
                self.mem.push_back((body, n));
            }
            None => self.lose(
                n,
                "memory_full",
                "fleet.memory_records are waiting already and there is no spill.dir",
            ),
        }
        self.sync(false);
        self.update_gauge();
    }

    fn lose(&mut self, n: u32, reason: &str, why: &str) {
        self.metrics.stream_lost.with_label_values(&[reason]).inc_by(n as u64);
        self.losses_logged += 1;
        if self.losses_logged.is_power_of_two() {
            tracing::error!("STREAM RECORDS LOST: {why}; {n} records will not reach the stream");
        }
    }

    /// Group commit of the journal, as the webhook outbox does it.
    pub fn sync(&mut self, force: bool) {
        let Some(j) = self.journal.as_mut() else { return };
        if !j.needs_sync() || (!force && self.last_sync.elapsed() < COMMIT_WINDOW) {
            return;
        }
        self.last_sync = Instant::now();
        if let Err(e) = j.sync() {
            tracing::error!("stream journal: fdatasync failed: {e}; the last records may not survive a crash");
        }
    }

    /// The oldest closed batch, left in place until [`StreamOutbox::commit`].
    pub fn peek(&mut self) -> Option<(Bytes, u32)> {
        if let Some(b) = self.mem.front() {
            return Some(b.clone());
        }
        let j = self.journal.as_mut()?;
        loop {
            match j.peek() {
                Ok(b) => return b,
                Err(e) => {
                    tracing::error!("stream journal: unreadable entry ({e}); skipping the rest of its segment");
                    let before = j.pending_items();
                    if j.skip_damaged().is_err() {
                        return None;
                    }
                    let lost = before.saturating_sub(j.pending_items());
                    self.metrics
                        .stream_lost
                        .with_label_values(&["journal_error"])
                        .inc_by(lost);
                }
            }
        }
    }

    /// Removes the batch [`StreamOutbox::peek`] returned: Redis has it. Returns how many of its
    /// records had waited for Redis (oldest first: they are ahead of the rest).
    pub fn commit(&mut self, items: u32) -> u64 {
        let replayed = self.to_replay.min(items as u64);
        self.to_replay -= replayed;
        if let Some((_, n)) = self.mem.pop_front() {
            self.mem_records -= n as usize;
        } else if let Some(j) = self.journal.as_mut() {
            if let Err(e) = j.commit(items) {
                tracing::error!(
                    "stream journal: cannot record an added batch ({e}); it may be added again after a restart"
                );
            }
        }
        self.update_gauge();
        replayed
    }

    pub fn is_empty(&self) -> bool {
        self.open_records == 0 && self.mem.is_empty() && self.journal.as_ref().is_none_or(|j| j.is_empty())
    }

    /// At shutdown without a journal, what waits in memory is lost (counted).
    pub fn persist_memory(&mut self) {
        let n = self.mem_records;
        if n > 0 {
            self.mem.clear();
            self.mem_records = 0;
            self.lose(
                n as u32,
                "shutdown",
                "shutting down while Redis was away and no spill.dir to keep them",
            );
        }
        self.update_gauge();
    }

    pub fn journal_pending(&self) -> u64 {
        self.journal.as_ref().map(|j| j.pending_items()).unwrap_or(0)
    }

    fn update_gauge(&self) {
        let journal = self.journal.as_ref().map(|j| j.pending_items()).unwrap_or(0);
        let n = self.open_records as u64 + self.mem_records as u64 + journal;
        self.metrics.stream_pending.set(n as i64);
    }
}

/// Adds the outbox's batches to the stream, oldest first, one at a time, until `stop`.
pub async fn publish_loop(fleet: Arc<Fleet>, mut stop: watch::Receiver<bool>) {
    // Sightings already counted for the batch at the head (kept across retries).
    let mut counted: Option<(Bytes, Vec<Option<Sightings>>)> = None;
    // The head batch had to wait for Redis (it was down, or an attempt failed).
    let mut waited = false;
    loop {
        if *stop.borrow() {
            return;
        }
        let next = fleet.stream.lock().expect("fleet stream").peek();
        let Some((body, items)) = next else {
            tokio::select! {
                _ = fleet.stream_wake.notified() => continue,
                _ = stop.changed() => return,
            }
        };
        if !fleet.link.is_up() {
            waited = true;
            tokio::select! {
                _ = fleet.link.wait_up() => continue,
                _ = stop.changed() => return,
            }
        }
        match publish(&fleet, &body, &mut counted).await {
            Ok(()) => {
                // Records added while Redis was known down count too, wherever they sit.
                let spilled = fleet.stream.lock().expect("fleet stream").commit(items);
                let replayed = if waited { items as u64 } else { spilled };
                fleet.metrics.stream_added.inc_by(items as u64);
                fleet.metrics.stream_replayed.inc_by(replayed);
                counted = None;
                waited = false;
            }
            // The link is down now: wait for it at the top.
            Err(()) => waited = true,
        }
    }
}

/// Counts the batch's sightings (once: kept in `counted` across retries), then adds it.
async fn publish(fleet: &Fleet, body: &Bytes, counted: &mut Option<(Bytes, Vec<Option<Sightings>>)>) -> Result<(), ()> {
    if counted.as_ref().is_none_or(|(b, _)| b != body) {
        *counted = Some((body.clone(), count_sightings(fleet, body).await?));
    }
    let sightings = &counted.as_ref().expect("counted").1;
    add_batch(fleet, body, sightings).await
}

/// The lines of a batch: (kind, json).
fn lines(body: &[u8]) -> impl Iterator<Item = (Kind, &str)> {
    body.split(|&b| b == b'\n').filter_map(|l| {
        let (&tag, json) = l.split_first()?;
        Some((Kind::of(tag)?, std::str::from_utf8(json).ok()?))
    })
}

/// The fields of a record the sightings need: its sha256 and ts.
#[derive(serde::Deserialize)]
struct Seen<'a> {
    #[serde(borrow)]
    ts: &'a str,
    #[serde(borrow, default)]
    sha256: Option<&'a str>,
}

/// The `seen` key and timestamp of a line that is a sighting (a file record with a sha256).
fn sighting(kind: Kind, json: &str) -> Option<(String, String)> {
    let seen = match kind {
        Kind::File => serde_json::from_str::<Seen<'_>>(json).ok()?,
        Kind::Verdict => return None,
    };
    Some((seen_key(seen.sha256?), seen.ts.to_string()))
}

/// Counts each file record of the batch as a sighting of its sha256; returns the sightings.
/// One pipeline on a single server; one call per file on a Cluster (the keys span slots).
async fn count_sightings(fleet: &Fleet, body: &[u8]) -> Result<Vec<Option<Sightings>>, ()> {
    let sensor = fleet.sensor.as_str();
    let ttl = fleet.seen_ttl_s;
    if !fleet.cluster {
        let targets: Vec<Option<(String, String)>> = lines(body).map(|(k, j)| sighting(k, j)).collect();
        let mut pipe = redis::pipe();
        // Loaded when the link connects (a SCRIPT FLUSH fails this batch, the link reconnects
        // and loads it again).
        let sha = SIGHT.get_hash();
        for (key, ts) in targets.iter().flatten() {
            pipe.cmd("EVALSHA")
                .arg(sha)
                .arg(1)
                .arg(key)
                .arg(sensor)
                .arg(ts)
                .arg(ttl);
        }
        if pipe.is_empty() {
            return Ok(vec![None; targets.len()]);
        }
        let answers: Vec<Vec<String>> = fleet
            .link
            .call(|mut c| async move { pipe.query_async(&mut c).await })
            .await
            .map_err(|_| ())?;
        let mut answers = answers.into_iter();
        return Ok(targets
            .iter()
            .map(|t| {
                t.as_ref()
                    .and_then(|_| answers.next())
                    .map(|f| Sightings::from_fields(&f))
            })
            .collect());
    }
    let calls = lines(body).map(|(kind, json)| {
        let target = sighting(kind, json);
        async move {
            let Some((key, ts)) = target else { return Ok(None) };
            fleet
                .link
                .call(|mut c| async move {
                    SIGHT
                        .key(&key)
                        .arg(sensor)
                        .arg(&ts)
                        .arg(ttl)
                        .invoke_async::<Vec<String>>(&mut c)
                        .await
                })
                .await
                .map(|flat| Some(Sightings::from_fields(&flat)))
        }
    });
    let all = futures_util::future::join_all(calls).await;
    all.into_iter().collect::<Result<Vec<_>, _>>().map_err(|_| ())
}

/// One pipeline of `XADD`s for the batch: each entry's `record` is the files log's line as it
/// is, and a file's sightings ride beside it in a `sightings` field of their own.
async fn add_batch(fleet: &Fleet, body: &[u8], sightings: &[Option<Sightings>]) -> Result<(), ()> {
    let mut pipe = redis::pipe();
    for ((kind, json), seen) in lines(body).zip(sightings.iter().chain(std::iter::repeat(&None))) {
        let cmd = pipe
            .cmd("XADD")
            .arg(&fleet.stream_name)
            .arg("MAXLEN")
            .arg("~")
            .arg(fleet.stream_maxlen)
            .arg("*")
            .arg("sensor")
            .arg(&fleet.sensor)
            .arg("kind")
            .arg(kind.as_str())
            .arg("record")
            .arg(json);
        if let Some(s) = seen {
            cmd.arg("sightings").arg(serde_json::to_string(s).unwrap_or_default());
        }
        cmd.ignore();
    }
    fleet
        .link
        .call(|mut c| async move { pipe.query_async::<()>(&mut c).await })
        .await
        .map_err(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metrics() -> super::super::FleetMetrics {
        super::super::FleetMetrics::new(&prometheus::Registry::new())
    }

    #[test]
    fn batches_close_at_the_size_bound_and_keep_order() {
        let mut o = StreamOutbox::new(None, 1000, metrics());
        for i in 0..BATCH_RECORDS {
            let closed = o.add(Kind::File, &format!("{{\"n\":{i}}}\n"), false);
            assert_eq!(closed, i == BATCH_RECORDS - 1);
        }
        o.add(Kind::Verdict, "{\"n\":\"v\"}", false);
        assert!(o.flush(true));
        let (b, n) = o.peek().expect("first batch");
        assert_eq!(n, BATCH_RECORDS);
        let first: Vec<_> = lines(&b).collect();
        assert_eq!(first[0], (Kind::File, "{\"n\":0}"));
        assert_eq!(first.len(), BATCH_RECORDS as usize);
        o.commit(n);
        let (b, n) = o.peek().expect("second batch");
        assert_eq!((n, lines(&b).next()), (1, Some((Kind::Verdict, "{\"n\":\"v\"}"))));
        o.commit(n);
        assert!(o.is_empty());
    }

    #[test]
    fn memory_past_its_bound_is_counted_lost() {
        let m = metrics();
        let mut o = StreamOutbox::new(None, 2, m.clone());
        for _ in 0..3 {
            o.add(Kind::File, "{}", true);
            o.flush(true);
        }
        assert_eq!(m.stream_lost.with_label_values(&["memory_full"]).get(), 1);
        assert_eq!(m.stream_spilled.get(), 3);
        o.persist_memory();
        assert_eq!(m.stream_lost.with_label_values(&["shutdown"]).get(), 2);
    }

    #[test]
    fn a_journal_keeps_batches_across_a_restart() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let (j, _) = Journal::open(dir.path(), 1 << 20, crate::FsyncPolicy::Group).expect("journal");
            let mut o = StreamOutbox::new(Some(j), 1, metrics());
            o.add(Kind::File, "{\"a\":1}", true);
            o.add(Kind::File, "{\"a\":2}", true);
            o.flush(true);
            o.sync(true);
        }
        let (j, r) = Journal::open(dir.path(), 1 << 20, crate::FsyncPolicy::Group).expect("journal");
        assert_eq!(r.items, 2);
        let mut o = StreamOutbox::new(Some(j), 1, metrics());
        let (b, n) = o.peek().expect("kept");
        assert_eq!(n, 2);
        assert_eq!(
            lines(&b).map(|(_, j)| j).collect::<Vec<_>>(),
            vec!["{\"a\":1}", "{\"a\":2}"]
        );
    }
}
