//! The file store (`--store-dir`): files' decoded bytes, written while they stream, kept under
//! names the store makes (`<sha256[0..2]>/<sha256>`, or `incomplete/<fuid>` for files without a
//! hash), never a name from the wire.
//!
//! Workers hand bytes over through a bounded queue and never wait: a full queue gives the file up
//! (counted). One store thread writes them into `.tmp/<id>` (mode 0600, `O_NOFOLLOW`, created new)
//! with positioned writes (a missing stretch stays a hole), and when the worker's sink says the file
//! is complete and how it is named, renames it into place. A quota on bytes and files evicts the
//! oldest first (never a file a scanner is reading). The scan stage waits for a file with
//! [`Store::ready`] and gives it back with [`Store::release`], which applies retention.

use crate::pipeline::MimeMatcher;
use crossbeam_channel::{Receiver, Sender, TrySendError};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;
use xdpcarve_contract::{FileStoreSink, StoreChunk, StoreEnd, StoreTicket};

/// Chunks (about a TCP segment's worth of decoded bytes each) that may wait for the store thread:
/// with up to 64 KiB each, at most 64 MiB in flight.
pub const QUEUE_CHUNKS: usize = 1024;
/// A finished file nobody asked for within this long (its record went to no pipeline, or was
/// dropped) is forgotten by the join: it stays stored, but no longer waits to be claimed.
const UNCLAIMED: Duration = Duration::from_secs(300);
const TMP_DIR: &str = ".tmp";
const INCOMPLETE_DIR: &str = "incomplete";

/// Settings the store runs with (from `[store]`).
#[derive(Clone, Debug)]
pub struct StoreSettings {
    pub dir: PathBuf,
    pub max_bytes: u64,
    pub max_files: u64,
    pub incomplete: bool,
    /// Workers wait for room in the queue instead of giving the file up (a `--read`: nothing
    /// may be lost, and there is no line rate to keep).
    pub wait_when_full: bool,
}

/// The store cannot start.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store.dir {}: cannot create or read it", path.display())]
    Dir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start the store thread")]
    Thread(#[source] std::io::Error),
}

/// What the store counted (also Prometheus `xdpcarve_store_*`).
#[derive(Debug, Default)]
pub struct StoreCounters {
    pub files_stored: AtomicU64,
    pub bytes_stored: AtomicU64,
    pub duplicates: AtomicU64,
    pub evicted: AtomicU64,
    pub deleted: AtomicU64,
    pub aborted: AtomicU64,
    pub write_errors: AtomicU64,
    pub over_quota: AtomicU64,
    /// Files the workers could not hand over because the queue was full.
    pub queue_full: AtomicU64,
}

/// How the store ended a file, for the scan stage.
pub type Outcome = Result<PathBuf, String>;

enum Control {
    Keep {
        ticket: StoreTicket,
        path: PathBuf,
    },
    Abort {
        id: u64,
    },
    Unlink(PathBuf),
    /// Close: write what is queued, then end.
    Stop,
}

struct Entry {
    bytes: u64,
    /// Position in the eviction order.
    seq: u64,
    /// Scans reading the file now: never evicted or deleted under them.
    pins: u32,
    /// A chain said it is not clean (or retention keeps all): never deleted by retention.
    keep: bool,
}

#[derive(Default)]
struct Index {
    entries: HashMap<PathBuf, Entry>,
    order: BTreeMap<u64, PathBuf>,
    bytes: u64,
    next_seq: u64,
}

impl Index {
    fn insert(&mut self, path: PathBuf, bytes: u64) {
        let seq = self.next_seq;
        self.next_seq += 1;
        if let Some(old) = self.entries.get_mut(&path) {
            // The same content again: it becomes the newest.
            self.order.remove(&old.seq);
            old.seq = seq;
        } else {
            self.bytes += bytes;
            self.entries.insert(
                path.clone(),
                Entry {
                    bytes,
                    seq,
                    pins: 0,
                    keep: false,
                },
            );
        }
        self.order.insert(seq, path);
    }

    fn remove(&mut self, path: &Path) {
        if let Some(e) = self.entries.remove(path) {
            self.order.remove(&e.seq);
            self.bytes -= e.bytes;
        }
    }

    /// The oldest files to evict for the store to hold at most `max_bytes` and `max_files`
    /// (pinned ones are skipped).
    fn over_quota(&self, max_bytes: u64, max_files: u64) -> Vec<PathBuf> {
        let (mut bytes, mut files) = (self.bytes, self.entries.len() as u64);
        let mut out = Vec::new();
        for path in self.order.values() {
            if bytes <= max_bytes && files <= max_files {
                break;
            }
            let e = &self.entries[path];
            if e.pins == 0 {
                bytes -= e.bytes;
                files -= 1;
                out.push(path.clone());
            }
        }
        out
    }
}

/// What the store thread and its callers share; every lock is held for bookkeeping only, never
/// across disk I/O.
#[derive(Default)]
struct Joins {
    /// Files the thread gave up before their end was known (a write failed).
    failed: HashSet<u64>,
    /// Finished files not yet asked for, with when they finished.
    outcomes: HashMap<u64, (Outcome, Instant)>,
    waiters: HashMap<u64, oneshot::Sender<Outcome>>,
    index: Index,
}

struct Shared {
    settings: StoreSettings,
    wants: MimeMatcher,
    data_tx: Sender<StoreChunk>,
    control_tx: Sender<Control>,
    next_id: AtomicU64,
    joins: Mutex<Joins>,
    counters: Arc<StoreCounters>,
}

/// The store of a run. Cheap to share ([`Store::sink`] for the workers).
pub struct Store {
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl StoreSettings {
    /// The settings of `[store]`, when it has a directory.
    pub fn from_config(cfg: &crate::config::StoreConfig, wait_when_full: bool) -> Option<StoreSettings> {
        Some(StoreSettings {
            dir: cfg.dir.clone()?,
            max_bytes: cfg.max_bytes,
            max_files: cfg.max_files,
            incomplete: cfg.incomplete,
            wait_when_full,
        })
    }
}

impl Store {
    /// Opens (creates) the store directory, indexes what an earlier run left (oldest first by
    /// modification time), removes unfinished temp files, and starts the store thread.
    pub fn open(settings: StoreSettings, wants: MimeMatcher) -> Result<Arc<Store>, StoreError> {
        let dir_err = |source| StoreError::Dir {
            path: settings.dir.clone(),
            source,
        };
        make_dir(&settings.dir).map_err(dir_err)?;
        let tmp = settings.dir.join(TMP_DIR);
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp).map_err(dir_err)?;
        }
        make_dir(&tmp).map_err(dir_err)?;
        let mut index = Index::default();
        for (_, path, bytes) in existing_files(&settings.dir).map_err(dir_err)? {
            index.insert(path, bytes);
        }
        let (data_tx, data_rx) = crossbeam_channel::bounded(QUEUE_CHUNKS);
        let (control_tx, control_rx) = crossbeam_channel::unbounded();
        let counters = Arc::new(StoreCounters::default());
        let shared = Arc::new(Shared {
            settings,
            wants,
            data_tx,
            control_tx,
            next_id: AtomicU64::new(1),
            joins: Mutex::new(Joins {
                index,
                ..Joins::default()
            }),
            counters,
        });
        let evict = {
            let s = &shared.settings;
            let joins = shared.joins.lock().expect("joins");
            joins.index.over_quota(s.max_bytes, s.max_files)
        };
        shared.evict(evict);
        let thread_shared = shared.clone();
        let thread = std::thread::Builder::new()
            .name("xdpcarve-store".into())
            .spawn(move || Writer::new(thread_shared).run(data_rx, control_rx))
            .map_err(StoreError::Thread)?;
        Ok(Arc::new(Store {
            shared,
            thread: Mutex::new(Some(thread)),
        }))
    }

    pub fn dir(&self) -> &Path {
        &self.shared.settings.dir
    }

    pub fn counters(&self) -> Arc<StoreCounters> {
        self.shared.counters.clone()
    }

    /// Files and bytes held now.
    pub fn held(&self) -> (u64, u64) {
        let j = self.shared.joins.lock().expect("joins");
        (j.index.entries.len() as u64, j.index.bytes)
    }

    /// The workers' end of the store.
    pub fn sink(self: &Arc<Self>) -> Arc<dyn FileStoreSink> {
        Arc::new(StoreSink(self.shared.clone()))
    }

    /// Waits until the file handed over as `id` is in place (its path) or given up (why). The
    /// file is pinned until [`Store::release`].
    pub async fn ready(&self, id: u64) -> Outcome {
        let rx = {
            let mut j = self.shared.joins.lock().expect("joins");
            if let Some((outcome, _)) = j.outcomes.remove(&id) {
                return pin(&mut j.index, outcome);
            }
            let (tx, rx) = oneshot::channel();
            j.waiters.insert(id, tx);
            rx
        };
        rx.await.unwrap_or_else(|_| Err("the store stopped".into()))
    }

    /// Gives back a file [`Store::ready`] handed out: `delete` when retention does not keep it.
    /// Returns whether it is deleted (not when another scan still reads it or one kept it).
    pub fn release(&self, path: &Path, delete: bool) -> bool {
        let mut j = self.shared.joins.lock().expect("joins");
        let Some(e) = j.index.entries.get_mut(path) else {
            return false;
        };
        e.pins = e.pins.saturating_sub(1);
        if !delete {
            e.keep = true;
            return false;
        }
        if e.keep || e.pins > 0 {
            return false;
        }
        j.index.remove(path);
        drop(j);
        self.shared.counters.deleted.fetch_add(1, Ordering::Relaxed);
        let _ = self.shared.control_tx.send(Control::Unlink(path.to_path_buf()));
        true
    }

    /// Stops the store thread once what is queued is written; files never ended are thrown away.
    pub fn close(&self) {
        let Some(t) = self.thread.lock().expect("thread").take() else {
            return;
        };
        let _ = self.shared.control_tx.send(Control::Stop);
        if t.join().is_err() {
            tracing::error!("store thread panicked");
        }
    }
}

fn pin(index: &mut Index, outcome: Outcome) -> Outcome {
    if let Ok(path) = &outcome {
        match index.entries.get_mut(path) {
            Some(e) => e.pins += 1,
            None => return Err("evicted by the store quota before it was scanned".into()),
        }
    }
    outcome
}

impl Shared {
    /// Where a file is kept.
    fn path_for(&self, sha256: Option<&str>, fuid: &str) -> Option<PathBuf> {
        match sha256 {
            // A hash is lowercase hex made here; check anyway, so a path can never escape.
            Some(h) if h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()) => {
                Some(self.settings.dir.join(&h[..2]).join(h))
            }
            Some(_) => None,
            None if fuid.bytes().all(|b| b.is_ascii_alphanumeric()) && !fuid.is_empty() => {
                Some(self.settings.dir.join(INCOMPLETE_DIR).join(fuid))
            }
            None => None,
        }
    }

    fn evict(&self, paths: Vec<PathBuf>) {
        if paths.is_empty() {
            return;
        }
        let mut j = self.joins.lock().expect("joins");
        for p in &paths {
            j.index.remove(p);
        }
        drop(j);
        for p in paths {
            self.counters.evicted.fetch_add(1, Ordering::Relaxed);
            if let Err(e) = std::fs::remove_file(&p) {
                tracing::warn!("store: cannot evict {}: {e}", p.display());
            }
        }
    }

    fn finish(&self, id: u64, outcome: Outcome) {
        let mut j = self.joins.lock().expect("joins");
        if let Some(tx) = j.waiters.remove(&id) {
            let outcome = pin(&mut j.index, outcome);
            if let Err(Ok(path)) = tx.send(outcome) {
                // The scan gave up waiting: nobody reads the file.
                if let Some(e) = j.index.entries.get_mut(&path) {
                    e.pins -= 1;
                }
            }
        } else {
            let now = Instant::now();
            j.outcomes.retain(|_, (_, at)| now.duration_since(*at) < UNCLAIMED);
            j.outcomes.insert(id, (outcome, now));
        }
    }
}

struct StoreSink(Arc<Shared>);

impl FileStoreSink for StoreSink {
    fn wants(&self, mime_type: Option<&str>, _declared: Option<&str>, _filename: Option<&str>) -> bool {
        self.0.wants.is_match(mime_type)
    }

    fn keeps_incomplete(&self) -> bool {
        self.0.settings.incomplete
    }

    fn open(&self, _fuid: &str) -> u64 {
        self.0.next_id.fetch_add(1, Ordering::Relaxed)
    }

    fn send(&self, chunk: StoreChunk) -> bool {
        if self.0.settings.wait_when_full {
            return self.0.data_tx.send(chunk).is_ok();
        }
        match self.0.data_tx.try_send(chunk) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.0.counters.queue_full.fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }

    fn end(&self, end: StoreEnd) -> Option<String> {
        let (ticket, path) = match end {
            StoreEnd::Abort { id } => {
                let _ = self.0.control_tx.send(Control::Abort { id });
                return None;
            }
            StoreEnd::Keep { ticket, sha256, fuid } => {
                let Some(path) = self.0.path_for(sha256.as_deref(), &fuid) else {
                    let _ = self.0.control_tx.send(Control::Abort { id: ticket.id });
                    return None;
                };
                (ticket, path)
            }
        };
        if self.0.joins.lock().expect("joins").failed.remove(&ticket.id) {
            return None;
        }
        let shown = path.to_string_lossy().into_owned();
        let _ = self.0.control_tx.send(Control::Keep { ticket, path });
        Some(shown)
    }
}

/// A file being written by the store thread.
struct Open {
    file: Option<File>,
    tmp: PathBuf,
    received: u64,
    /// Bytes not yet written, to go at `pending_at`: chunks are about a segment each, and one
    /// write per segment would cost more system time than the rest of the store.
    pending: Vec<u8>,
    pending_at: u64,
    /// Known once the worker's sink ended it.
    keep: Option<(StoreTicket, PathBuf)>,
}

impl Open {
    fn new(tmp: PathBuf) -> Open {
        Open {
            file: None,
            tmp,
            received: 0,
            pending: Vec::new(),
            pending_at: 0,
            keep: None,
        }
    }

    /// Writes what is pending (creating the file on its first write).
    fn flush(&mut self) -> std::io::Result<()> {
        let f = match &self.file {
            Some(f) => f,
            None => self.file.insert(create_private(&self.tmp)?),
        };
        if !self.pending.is_empty() {
            f.write_all_at(&self.pending, self.pending_at)?;
            self.pending.clear();
        }
        Ok(())
    }
}

/// A file's bytes gathered before one write.
const WRITE_SIZE: usize = 64 * 1024;
/// Bytes gathered over all open files at most; past it, chunks are written as they come.
const PENDING_BUDGET: usize = 64 << 20;

/// The store thread: writes chunks, finishes files, applies the quota.
struct Writer {
    shared: Arc<Shared>,
    open: HashMap<u64, Open>,
    /// Ids ended (or given up) here, whose late chunks are dropped.
    gone: HashSet<u64>,
    errors: u64,
    /// Bytes pending over all open files.
    pending: usize,
}

impl Writer {
    fn new(shared: Arc<Shared>) -> Writer {
        Writer {
            shared,
            open: HashMap::new(),
            gone: HashSet::new(),
            errors: 0,
            pending: 0,
        }
    }

    fn run(mut self, data: Receiver<StoreChunk>, control: Receiver<Control>) {
        loop {
            crossbeam_channel::select! {
                recv(data) -> c => match c {
                    Ok(c) => self.chunk(c),
                    Err(_) => break,
                },
                recv(control) -> c => match c {
                    Ok(Control::Stop) => break,
                    Ok(c) => self.control(c),
                    Err(_) => break,
                },
            }
        }
        // Closing: write what is queued, then throw away what never ended.
        while let Ok(c) = data.try_recv() {
            self.chunk(c);
        }
        while let Ok(c) = control.try_recv() {
            self.control(c);
        }
        for (id, open) in std::mem::take(&mut self.open) {
            let _ = std::fs::remove_file(&open.tmp);
            self.shared.finish(id, Err("the run ended before the file did".into()));
        }
    }

    fn control(&mut self, c: Control) {
        match c {
            Control::Keep { ticket, path } => {
                if self.gone.contains(&ticket.id) {
                    // A write failed after the sink had ended the file.
                    self.shared.joins.lock().expect("joins").failed.remove(&ticket.id);
                    self.shared.finish(ticket.id, Err("store: a write failed".into()));
                    return;
                }
                let tmp = self.shared.settings.dir.join(TMP_DIR).join(ticket.id.to_string());
                let open = self.open.entry(ticket.id).or_insert_with(|| Open::new(tmp));
                open.keep = Some((ticket, path));
                self.finish_if_complete(ticket.id);
            }
            Control::Abort { id } => {
                self.gone.insert(id);
                if let Some(open) = self.open.remove(&id) {
                    self.pending -= open.pending.len();
                    let _ = std::fs::remove_file(&open.tmp);
                }
                self.shared.counters.aborted.fetch_add(1, Ordering::Relaxed);
            }
            Control::Unlink(path) => {
                if let Err(e) = std::fs::remove_file(&path) {
                    tracing::warn!("store: cannot delete {}: {e}", path.display());
                }
            }
            Control::Stop => {}
        }
    }

    fn chunk(&mut self, c: StoreChunk) {
        if self.gone.contains(&c.id) {
            return;
        }
        let tmp = self.shared.settings.dir.join(TMP_DIR).join(c.id.to_string());
        let open = self.open.entry(c.id).or_insert_with(|| Open::new(tmp));
        let before = open.pending.len();
        let mut written = Ok(());
        if !open.pending.is_empty() && open.pending_at + open.pending.len() as u64 != c.offset {
            // A hole: what is pending goes first.
            written = open.flush();
        }
        if written.is_ok() {
            if open.pending.is_empty() {
                open.pending_at = c.offset;
            }
            open.pending.extend_from_slice(&c.bytes);
            open.received += c.bytes.len() as u64;
            if open.pending.len() >= WRITE_SIZE || self.pending + open.pending.len() > PENDING_BUDGET {
                written = open.flush();
            }
        }
        let after = open.pending.len();
        self.pending = self.pending + after - before;
        match written {
            Ok(()) => self.finish_if_complete(c.id),
            Err(e) => self.fail(c.id, &format!("write: {e}")),
        }
    }

    /// A write failed: the file is given up, and the sink told (if it has not ended it yet).
    fn fail(&mut self, id: u64, why: &str) {
        let Some(open) = self.open.remove(&id) else { return };
        self.pending -= open.pending.len();
        let _ = std::fs::remove_file(&open.tmp);
        self.gone.insert(id);
        self.shared.counters.write_errors.fetch_add(1, Ordering::Relaxed);
        self.errors += 1;
        if self.errors.is_power_of_two() {
            tracing::error!(
                "store {}: {why}; the file is not kept ({} store errors so far: check the disk and store.max_bytes)",
                self.shared.settings.dir.display(),
                self.errors
            );
        }
        match open.keep {
            Some(_) => self.shared.finish(id, Err(format!("store {why}"))),
            None => {
                self.shared.joins.lock().expect("joins").failed.insert(id);
            }
        }
    }

    fn finish_if_complete(&mut self, id: u64) {
        let Some(open) = self.open.get(&id) else { return };
        let Some((ticket, _)) = open.keep else { return };
        if open.received < ticket.sent {
            return;
        }
        let mut open = self.open.remove(&id).expect("present");
        self.pending -= open.pending.len();
        let (ticket, path) = open.keep.take().expect("checked");
        self.gone.insert(id);
        if self.gone.len() > 1 << 20 {
            // Late chunks only ever trail by a queue's length; forget old ids.
            self.gone.clear();
        }
        let placed = open
            .flush()
            .and_then(|()| open.file.as_ref().expect("flush creates it").set_len(ticket.len))
            .and_then(|()| self.place(&open.tmp, &path, ticket.len));
        match placed {
            Ok(outcome) => self.shared.finish(id, outcome),
            Err(e) => {
                let _ = std::fs::remove_file(&open.tmp);
                self.shared.counters.write_errors.fetch_add(1, Ordering::Relaxed);
                tracing::error!("store: cannot keep {}: {e}", path.display());
                self.shared.finish(id, Err(format!("store: {e}")));
            }
        }
    }

    /// Moves a finished temp file to its name, within the quota.
    fn place(&self, tmp: &Path, path: &Path, len: u64) -> std::io::Result<Outcome> {
        let s = &self.shared.settings;
        let c = &self.shared.counters;
        if len > s.max_bytes {
            std::fs::remove_file(tmp)?;
            c.over_quota.fetch_add(1, Ordering::Relaxed);
            return Ok(Err(format!(
                "{len} bytes: larger than store.max_bytes ({})",
                s.max_bytes
            )));
        }
        let duplicate = self
            .shared
            .joins
            .lock()
            .expect("joins")
            .index
            .entries
            .contains_key(path);
        if duplicate {
            std::fs::remove_file(tmp)?;
            c.duplicates.fetch_add(1, Ordering::Relaxed);
        } else {
            if let Some(parent) = path.parent() {
                make_dir(parent)?;
            }
            std::fs::rename(tmp, path)?;
            c.files_stored.fetch_add(1, Ordering::Relaxed);
            c.bytes_stored.fetch_add(len, Ordering::Relaxed);
        }
        let evict = {
            let mut j = self.shared.joins.lock().expect("joins");
            j.index.insert(path.to_path_buf(), len);
            j.index.over_quota(s.max_bytes, s.max_files)
        };
        self.shared.evict(evict);
        Ok(Ok(path.to_path_buf()))
    }
}

fn make_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)
}

/// A new file only this user can read, never through a symlink planted in its place.
fn create_private(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
}

/// Files an earlier run kept, as (modified, path, bytes), oldest first.
fn existing_files(dir: &Path) -> std::io::Result<Vec<(std::time::SystemTime, PathBuf, u64)>> {
    let mut out = Vec::new();
    for sub in std::fs::read_dir(dir)? {
        let sub = sub?;
        let name = sub.file_name();
        let name = name.to_string_lossy();
        let ours = name == INCOMPLETE_DIR || (name.len() == 2 && name.bytes().all(|b| b.is_ascii_hexdigit()));
        if !ours || !sub.file_type()?.is_dir() {
            continue;
        }
        for f in std::fs::read_dir(sub.path())? {
            let f = f?;
            let meta = f.metadata()?;
            if meta.is_file() {
                out.push((meta.modified()?, f.path(), meta.len()));
            }
        }
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    const SHA_A: &str = "aa00000000000000000000000000000000000000000000000000000000000001";
    const SHA_B: &str = "bb00000000000000000000000000000000000000000000000000000000000002";

    fn store(dir: &Path, max_bytes: u64, max_files: u64) -> Arc<Store> {
        let settings = StoreSettings {
            dir: dir.to_path_buf(),
            max_bytes,
            max_files,
            incomplete: true,
            wait_when_full: false,
        };
        Store::open(settings, MimeMatcher::new(&[".*".into()]).unwrap()).unwrap()
    }

    /// Sends `data` as file `fuid` in 3-byte chunks and ends it under `sha`.
    fn put(sink: &Arc<dyn FileStoreSink>, data: &[u8], sha: Option<&str>, fuid: &str) -> (u64, Option<String>) {
        let id = sink.open(fuid);
        for (i, c) in data.chunks(3).enumerate() {
            assert!(sink.send(StoreChunk {
                id,
                offset: i as u64 * 3,
                bytes: c.to_vec(),
            }));
        }
        let ticket = StoreTicket {
            id,
            sent: data.len() as u64,
            len: data.len() as u64,
        };
        let path = sink.end(StoreEnd::Keep {
            ticket,
            sha256: sha.map(str::to_owned),
            fuid: fuid.into(),
        });
        (id, path)
    }

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn files_are_named_by_hash_private_and_complete() {
        let dir = tempfile::tempdir().unwrap();
        let st = store(dir.path(), 1 << 20, 100);
        let sink = st.sink();
        let (id, path) = put(&sink, b"hello store", Some(SHA_A), "F1");
        let want = dir.path().join("aa").join(SHA_A);
        assert_eq!(path.as_deref(), Some(want.to_str().unwrap()));
        let got = block_on(st.ready(id)).unwrap();
        assert_eq!(got, want);
        assert_eq!(std::fs::read(&want).unwrap(), b"hello store");
        assert_eq!(std::fs::metadata(&want).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(
            std::fs::metadata(dir.path().join("aa")).unwrap().permissions().mode() & 0o777,
            0o700
        );
        assert!(std::fs::read_dir(dir.path().join(TMP_DIR)).unwrap().next().is_none());

        // A file without a hash (incomplete) is named by its fuid, and a hole stays a hole.
        let id = sink.open("F2");
        assert!(sink.send(StoreChunk {
            id,
            offset: 4,
            bytes: b"xy".to_vec(),
        }));
        let path = sink.end(StoreEnd::Keep {
            ticket: StoreTicket { id, sent: 2, len: 8 },
            sha256: None,
            fuid: "F2".into(),
        });
        assert_eq!(path.unwrap(), dir.path().join("incomplete/F2").to_str().unwrap());
        let p = block_on(st.ready(id)).unwrap();
        assert_eq!(std::fs::read(p).unwrap(), b"\0\0\0\0xy\0\0");

        // Names that are not ours never make a path.
        assert!(sink
            .end(StoreEnd::Keep {
                ticket: StoreTicket {
                    id: 99,
                    sent: 0,
                    len: 0
                },
                sha256: None,
                fuid: "../../etc/passwd".into(),
            })
            .is_none());
        st.close();
    }

    #[test]
    fn the_quota_evicts_the_oldest_unpinned_and_retention_deletes_clean_files() {
        const SHA_C: &str = "cc00000000000000000000000000000000000000000000000000000000000003";
        let dir = tempfile::tempdir().unwrap();
        let st = store(dir.path(), 1 << 20, 2);
        let sink = st.sink();
        let (a, _) = put(&sink, b"first", Some(SHA_A), "F1");
        let pa = block_on(st.ready(a)).unwrap();
        let (b, _) = put(&sink, b"second", Some(SHA_B), "F2");
        // A is pinned (being scanned): C over the two-file quota evicts B, the oldest unpinned.
        let (c, _) = put(&sink, b"third", Some(SHA_C), "F3");
        let pc = block_on(st.ready(c)).unwrap();
        assert!(block_on(st.ready(b)).unwrap_err().contains("evicted"));
        assert!(pa.exists() && pc.exists());
        assert!(!dir.path().join("bb").join(SHA_B).exists());
        // A released clean with retention "flagged": deleted. C flagged: kept.
        assert!(st.release(&pa, true));
        assert!(!st.release(&pc, false));
        st.close();
        assert!(!pa.exists());
        assert!(pc.exists());
        let counters = st.counters();
        assert_eq!(
            (
                counters.deleted.load(Ordering::Relaxed),
                counters.evicted.load(Ordering::Relaxed)
            ),
            (1, 1)
        );

        // A restart indexes what is there; a quota of 0 files evicts it.
        let st = store(dir.path(), 1 << 20, 0);
        assert!(!pc.exists());
        assert_eq!(st.held(), (0, 0));
        st.close();
    }

    #[test]
    fn a_file_over_the_byte_quota_is_not_kept_and_aborts_leave_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let st = store(dir.path(), 4, 10);
        let sink = st.sink();
        let (id, _) = put(&sink, b"too large", Some(SHA_A), "F1");
        assert!(block_on(st.ready(id)).unwrap_err().contains("store.max_bytes"));
        let id = sink.open("F2");
        assert!(sink.send(StoreChunk {
            id,
            offset: 0,
            bytes: b"abc".to_vec(),
        }));
        assert!(sink.end(StoreEnd::Abort { id }).is_none());
        st.close();
        let left: Vec<_> = walk(dir.path());
        assert!(left.is_empty(), "{left:?}");
    }

    fn walk(dir: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                out.extend(walk(&e.path()));
            } else {
                out.push(e.path());
            }
        }
        out
    }
}
