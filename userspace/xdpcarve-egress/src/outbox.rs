//! Batches waiting for delivery.
//!
//! With a spill journal, the journal is the queue (write-ahead): every batch is appended as it is
//! made, fdatasync'ed in groups within [`COMMIT_WINDOW`], and the sender reads it from there and
//! advances the cursor only on a 2xx. A crash at any instant loses at most the batches of the last
//! window; a restart delivers the rest. Without a journal, batches wait in a bounded in-memory
//! FIFO and past it are dropped (counted). The batch being delivered stays at the head until
//! `commit`, so a shutdown mid-delivery loses nothing.

use crate::journal::{AppendError, Journal};
use crate::metrics::MetricsHub;
use bytes::Bytes;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Longest time an appended batch waits for its fdatasync while the egress thread is busy (when
/// idle it syncs at once). With the batch builder's wait capped at the same window, a record owed
/// to the API is on disk within two windows of reaching egress.
pub const COMMIT_WINDOW: Duration = Duration::from_millis(50);

#[derive(Clone, Debug)]
pub struct Batch {
    /// JSON array of submission items: the request body in batch mode.
    pub body: Bytes,
    pub items: u32,
}

pub struct Outbox {
    mem: VecDeque<Batch>,
    mem_cap: usize,
    journal: Option<Journal>,
    hub: Arc<MetricsHub>,
    drops_logged: u64,
    last_sync: Instant,
}

impl Outbox {
    pub fn new(mem_cap: usize, journal: Option<Journal>, hub: Arc<MetricsHub>) -> Outbox {
        let o = Outbox {
            mem: VecDeque::new(),
            mem_cap: mem_cap.max(1),
            journal,
            hub,
            drops_logged: 0,
            last_sync: Instant::now(),
        };
        o.update_gauges();
        o
    }

    pub fn is_empty(&self) -> bool {
        self.mem.is_empty() && self.journal.as_ref().is_none_or(|j| j.is_empty())
    }

    pub fn push(&mut self, batch: Batch) {
        if self.journal.is_some() {
            self.spill(batch);
        } else if self.mem.len() < self.mem_cap {
            self.mem.push_back(batch);
        } else {
            self.drop_batch(
                &batch,
                "no_journal",
                "memory queue full and no spill journal configured (spill.dir)",
            );
        }
        self.update_gauges();
    }

    /// Moves what waits in memory to the journal (at shutdown, so it is replayed next start).
    pub fn persist_memory(&mut self) -> u64 {
        let mut n = 0;
        if self.journal.is_none() {
            for b in std::mem::take(&mut self.mem) {
                self.drop_batch(
                    &b,
                    "no_journal",
                    "shutting down with undelivered batches and no spill journal (spill.dir)",
                );
            }
            return 0;
        }
        while let Some(b) = self.mem.pop_front() {
            n += b.items as u64;
            self.spill(b);
        }
        self.update_gauges();
        n
    }

    fn spill(&mut self, batch: Batch) {
        let j = self.journal.as_mut().expect("journal");
        match j.append(&batch.body, batch.items) {
            Ok(()) => self.hub.egress.spilled.inc_by(batch.items as u64),
            Err(AppendError::Full) => self.drop_batch(&batch, "journal_full", "spill journal full (spill.max_bytes)"),
            Err(AppendError::Io(e)) if crate::journal::is_disk_full(&e) => {
                let why = format!("the spill journal's disk is full ({e}); carving goes on, submissions are lost until there is space");
                self.drop_batch(&batch, "disk_full", &why)
            }
            Err(AppendError::Io(e)) => {
                let why = format!("spill journal write failed: {e}");
                self.drop_batch(&batch, "journal_error", &why)
            }
        }
    }

    fn drop_batch(&mut self, batch: &Batch, reason: &str, why: &str) {
        self.hub
            .egress
            .dropped
            .with_label_values(&[reason])
            .inc_by(batch.items as u64);
        self.drops_logged += 1;
        if self.drops_logged.is_power_of_two() {
            tracing::error!(
                "SUBMISSIONS LOST: {why}; dropped a batch of {} items ({} batches dropped so far)",
                batch.items,
                self.drops_logged
            );
        }
    }

    /// Group commit of the journal: syncs when `force` (the egress thread is idle or stopping) or
    /// when the last sync is older than [`COMMIT_WINDOW`].
    pub fn sync_journal(&mut self, force: bool) {
        let Some(j) = self.journal.as_mut() else { return };
        if !j.needs_sync() || (!force && self.last_sync.elapsed() < COMMIT_WINDOW) {
            return;
        }
        self.last_sync = Instant::now();
        if let Err(e) = j.sync() {
            self.hub.egress.journal_errors.inc();
            tracing::error!("spill journal: fdatasync failed: {e}; the last spilled batches may not survive a crash");
        }
    }

    /// The oldest batch, left in place until `commit`.
    pub fn peek(&mut self) -> Option<Batch> {
        if let Some(b) = self.mem.front() {
            return Some(b.clone());
        }
        let j = self.journal.as_mut()?;
        loop {
            match j.peek() {
                Ok(Some((body, items))) => return Some(Batch { body, items }),
                Ok(None) => return None,
                Err(e) => {
                    tracing::error!("spill journal: unreadable entry ({e}); skipping the rest of its segment");
                    let before = j.pending_items();
                    if let Err(e) = j.skip_damaged() {
                        tracing::error!("spill journal: cannot skip the damaged segment: {e}");
                        return None;
                    }
                    let lost = before.saturating_sub(j.pending_items());
                    self.hub
                        .egress
                        .dropped
                        .with_label_values(&["journal_error"])
                        .inc_by(lost);
                }
            }
        }
    }

    /// Removes the batch `peek` returned (delivered, or refused for good).
    pub fn commit(&mut self, batch: &Batch) {
        if self.mem.pop_front().is_none() {
            if let Some(j) = self.journal.as_mut() {
                if let Err(e) = j.commit(batch.items) {
                    tracing::error!(
                        "spill journal: cannot record a delivered batch ({e}); it may be sent again after a restart"
                    );
                }
            }
        }
        self.update_gauges();
    }

    /// Every batch owed from an earlier run (in the journal), for dedup.
    pub fn for_each_journaled(&self, f: impl FnMut(&[u8])) -> std::io::Result<()> {
        match &self.journal {
            Some(j) => j.for_each_pending(f),
            None => Ok(()),
        }
    }

    pub fn journal_pending_items(&self) -> u64 {
        self.journal.as_ref().map(|j| j.pending_items()).unwrap_or(0)
    }

    fn update_gauges(&self) {
        let m = &self.hub.egress;
        m.memory_batches.set(self.mem.len() as i64);
        if let Some(j) = &self.journal {
            m.journal_batches.set(j.pending_batches() as i64);
            m.journal_bytes.set(j.disk_bytes() as i64);
        }
    }
}
