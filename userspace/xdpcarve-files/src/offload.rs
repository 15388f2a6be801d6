//! Hash offload (`--hash-threads N`): large files' bytes are hashed on threads of their own, so a
//! box with more cores than capture queues uses them, and a file's hashes run side by side
//! (MD5, the slowest, on one thread, the others on another) instead of one after the other.
//!
//! A file is handed over once it passes [`OFFLOAD_AFTER`] bytes: its hash states move to the
//! threads, and from then on its bytes go in [`CHUNK`]-byte chunks over bounded queues (one per
//! thread, lock-free). Each hash group of a file always goes to the same thread, so its chunks are
//! hashed in order. When the file ends, its record waits in the worker's [`FileSink`] until every
//! group has finished ([`PendingHashes`]); records leave in the order files finished.
//!
//! A full queue never blocks a live worker: the queues' fill is part of the backlog overload
//! control watches ([`HashPool::fill`]), so shedding starts before they fill; if one is full all the
//! same, that group's hashes of that file are given up (listed in `hashes_shed`). Offline
//! ([`QueueFull::Wait`]) the worker waits instead: there is no line rate to keep.
//!
//! [`FileSink`]: xdpcarve_contract::FileSink

use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_queue::ArrayQueue;
use xdpcarve_contract::{FileRecord, HashOffload, PendingHashes};

use crate::analyzer::{Digests, Hashers};

/// Bytes of a file hashed on the worker before it is handed to the hash threads: small files are
/// cheaper to hash than to hand over.
pub const OFFLOAD_AFTER: u64 = 64 << 10;
/// Bytes per chunk handed over.
pub const CHUNK: usize = 64 << 10;
/// Chunks each thread's queue holds: 1024 x 64 KiB = 64 MiB, a quarter of a second at 2 Gbit/s.
pub const QUEUE_CHUNKS: usize = 1024;

/// What a worker does when a hash thread's queue is full.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum QueueFull {
    /// Give that file's hashes of that group up (live: never block capture).
    Shed,
    /// Wait for room (offline reads).
    Wait,
}

/// The hash threads of a run, shared by every worker.
pub struct HashPool {
    queues: Vec<Arc<ArrayQueue<Job>>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    stop: Arc<AtomicBool>,
    full: QueueFull,
}

/// One chunk of one file's group, or its end.
struct Job {
    group: Arc<Group>,
    chunk: Arc<Vec<u8>>,
    last: bool,
}

/// Some of one file's hashes, on one thread.
pub(crate) struct Group {
    /// The hashes it computes, as bits of [`crate::analyzer::HASH_NAMES`].
    mask: u8,
    /// Locked by its thread for each chunk (and nobody else once handed over).
    hashers: Mutex<Option<Hashers>>,
    /// Hashes to give up from now on (bit i: [`crate::analyzer::HASH_NAMES`] i), set by the worker
    /// when it sheds.
    shed: AtomicU8,
    digests: Mutex<Option<Digests>>,
    done: AtomicBool,
}

impl HashPool {
    /// Starts `threads` hash threads (named `xdpcarve-hash<i>`).
    pub fn start(threads: usize, full: QueueFull) -> std::io::Result<Arc<HashPool>> {
        Self::with_queues(threads, QUEUE_CHUNKS, full, true)
    }

    fn with_queues(threads: usize, chunks: usize, full: QueueFull, run: bool) -> std::io::Result<Arc<HashPool>> {
        let stop = Arc::new(AtomicBool::new(false));
        let mut queues = Vec::new();
        let mut handles = Vec::new();
        for i in 0..threads.max(1) {
            let queue = Arc::new(ArrayQueue::new(chunks.max(1)));
            if !run {
                queues.push(queue);
                continue;
            }
            let (q, stop) = (queue.clone(), stop.clone());
            handles.push(
                std::thread::Builder::new()
                    .name(format!("xdpcarve-hash{i}"))
                    .spawn(move || hash_thread(&q, &stop))?,
            );
            queues.push(queue);
        }
        Ok(Arc::new(HashPool {
            queues,
            threads: Mutex::new(handles),
            stop,
            full,
        }))
    }

    /// The handle every analyzer finds the pool through.
    pub fn handle(self: &Arc<Self>) -> HashOffload {
        HashOffload(Some(self.clone()))
    }

    /// The pool behind a handle, if it has one.
    pub fn from_handle(h: &HashOffload) -> Option<Arc<HashPool>> {
        h.0.clone().and_then(|any| any.downcast::<HashPool>().ok())
    }

    pub fn threads(&self) -> usize {
        self.queues.len()
    }

    /// The fullest queue's fill, 0.0 to 1.0: part of the backlog overload control watches.
    pub fn fill(&self) -> f64 {
        let most = self.queues.iter().map(|q| q.len()).max().unwrap_or(0);
        most as f64 / self.queues.first().map_or(1, |q| q.capacity()) as f64
    }

    /// Hands a chunk to `thread`; false when it was given up (queue full in shed mode).
    fn send(&self, thread: usize, mut job: Job) -> bool {
        let q = &self.queues[thread % self.queues.len()];
        loop {
            match q.push(job) {
                Ok(()) => return true,
                Err(back) if self.full == QueueFull::Wait && !self.stop.load(Ordering::Relaxed) => {
                    job = back;
                    std::thread::sleep(Duration::from_micros(50));
                }
                Err(_) => return false,
            }
        }
    }

    /// Stops the threads once their queues are empty and joins them.
    pub fn shutdown(&self) {
        while self.queues.iter().any(|q| !q.is_empty()) {
            std::thread::sleep(Duration::from_millis(1));
        }
        self.stop.store(true, Ordering::Relaxed);
        let handles = std::mem::take(&mut *self.threads.lock().unwrap_or_else(|p| p.into_inner()));
        for h in handles {
            let _ = h.join();
        }
    }
}

impl Drop for HashPool {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn hash_thread(queue: &ArrayQueue<Job>, stop: &AtomicBool) {
    let mut idle = 0u32;
    loop {
        let Some(job) = queue.pop() else {
            if stop.load(Ordering::Relaxed) {
                return;
            }
            // Spin briefly, then sleep: a busy link keeps the queue fed, an idle one costs nothing.
            idle = idle.saturating_add(1);
            if idle < 64 {
                std::hint::spin_loop();
            } else {
                std::thread::sleep(Duration::from_micros(if idle < 1024 { 20 } else { 1000 }));
            }
            continue;
        };
        idle = 0;
        let g = &job.group;
        let mut hashers = g.hashers.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(h) = hashers.as_mut() {
            h.shed_mask(g.shed.load(Ordering::Relaxed));
            h.update(&job.chunk);
        }
        if job.last {
            let digests = hashers.take().map(Hashers::finish);
            *g.digests.lock().unwrap_or_else(|p| p.into_inner()) = digests;
            g.done.store(true, Ordering::Release);
        }
    }
}

/// A file handed to the pool: its groups, where each runs, and the bytes not yet sent.
pub(crate) struct Remote {
    pool: Arc<HashPool>,
    groups: Vec<(usize, Arc<Group>)>,
    stage: Vec<u8>,
    /// Groups given up (queue full), as hash bits.
    lost: u8,
}

impl Remote {
    /// Moves `hashers` to the pool, split so the threads run side by side: with one thread
    /// everything together; with two or three MD5 alone and the rest together; with four or more
    /// each hash alone. `start` rotates which threads a file uses, spreading files over them.
    pub fn hand_over(pool: Arc<HashPool>, hashers: Hashers, start: usize) -> Remote {
        let hashers = hashers.detached();
        let parts = match pool.threads() {
            1 => vec![hashers],
            2 | 3 => hashers.split_md5(),
            _ => hashers.split_each(),
        };
        let groups = parts
            .into_iter()
            .filter(|h| !h.is_empty())
            .enumerate()
            .map(|(i, h)| {
                let g = Group {
                    mask: h.mask(),
                    hashers: Mutex::new(Some(h)),
                    shed: AtomicU8::new(0),
                    digests: Mutex::new(None),
                    done: AtomicBool::new(false),
                };
                (start.wrapping_add(i), Arc::new(g))
            })
            .collect();
        Remote {
            pool,
            groups,
            stage: Vec::with_capacity(CHUNK),
            lost: 0,
        }
    }

    pub fn update(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            let n = (CHUNK - self.stage.len()).min(data.len());
            self.stage.extend_from_slice(&data[..n]);
            data = &data[n..];
            if self.stage.len() == CHUNK {
                self.flush(false);
            }
        }
    }

    /// The hashes handed over (given-up groups included).
    pub fn mask(&self) -> u8 {
        self.groups.iter().fold(0, |m, (_, g)| m | g.mask)
    }

    /// Stops computing the hashes in `mask` for the bytes still to come.
    pub fn shed(&mut self, mask: u8) {
        for (_, g) in &self.groups {
            g.shed.fetch_or(mask, Ordering::Relaxed);
        }
    }

    fn flush(&mut self, last: bool) {
        let chunk = Arc::new(std::mem::replace(
            &mut self.stage,
            Vec::with_capacity(if last { 0 } else { CHUNK }),
        ));
        for (thread, g) in &self.groups {
            if self.lost & g.mask != 0 {
                continue;
            }
            let job = Job {
                group: g.clone(),
                chunk: chunk.clone(),
                last,
            };
            if !self.pool.send(*thread, job) {
                self.lost |= g.mask;
            }
        }
    }

    /// The file ended with every byte: sends the rest and the end. The record's hashes come
    /// later, through the returned [`PendingHashes`].
    pub fn finish(mut self) -> (u8, Box<dyn PendingHashes>) {
        self.flush(true);
        let lost = self.lost;
        let groups = self
            .groups
            .into_iter()
            .filter(|(_, g)| lost & g.mask == 0)
            .map(|(_, g)| g)
            .collect();
        (lost, Box::new(Waiting { groups }))
    }
}

/// A record's hashes, on their way back from the threads.
struct Waiting {
    groups: Vec<Arc<Group>>,
}

impl PendingHashes for Waiting {
    fn poll(&mut self, rec: &mut FileRecord) -> bool {
        if !self.groups.iter().all(|g| g.done.load(Ordering::Acquire)) {
            return false;
        }
        for g in &self.groups {
            if let Some(d) = g.digests.lock().unwrap_or_else(|p| p.into_inner()).take() {
                d.write_into(rec);
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{FileAnalyzer, FileEnd};
    use md5::Digest;
    use xdpcarve_contract::{ConnMeta, Direction, FileConfig, FileMeta, FileSink, Proto, ShedLevel, Timestamp};

    fn data(len: usize, seed: u32) -> Vec<u8> {
        (0..len as u32)
            .map(|i| (i.wrapping_add(seed).wrapping_mul(2_654_435_761) >> 11) as u8)
            .collect()
    }

    fn conn() -> ConnMeta {
        ConnMeta {
            id: 1,
            files_opened: Default::default(),
            uid: "C1".into(),
            orig_h: "10.0.0.1".parse().unwrap(),
            orig_p: 40000,
            resp_h: "10.0.0.2".parse().unwrap(),
            resp_p: 80,
            vlan: None,
            start: Timestamp::ZERO,
        }
    }

    /// Carves `files` (content, piece size) through a sink whose analyzers use `pool`, switching the
    /// worker's shedding level to `level` after `shed_after` bytes of each file.
    fn carve(cfg: &FileConfig, files: &[(Vec<u8>, usize)], shed_after: usize, level: ShedLevel) -> Vec<FileRecord> {
        let mut sink = FileSink::new(cfg.clone());
        for (i, (content, piece)) in files.iter().enumerate() {
            cfg.load.set(ShedLevel::None);
            let meta = FileMeta::new(Proto::new("http"), Direction::Download);
            let mut a = FileAnalyzer::new(&conn(), meta, format!("F{i}"), Timestamp::ZERO, cfg);
            for (k, part) in content.chunks((*piece).max(1)).enumerate() {
                if k * piece >= shed_after {
                    cfg.load.set(level);
                }
                a.update(part);
            }
            a.close_into(&mut sink, Timestamp::ZERO, FileEnd::Complete);
        }
        cfg.load.set(ShedLevel::None);
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while sink.collect_pending() > 0 {
            assert!(std::time::Instant::now() < deadline, "hash threads never finished");
            std::thread::sleep(Duration::from_millis(1));
        }
        std::mem::take(&mut sink.records)
    }

    fn sha256(d: &[u8]) -> String {
        crate::hex(&sha2::Sha256::digest(d))
    }

    #[test]
    fn hashes_from_threads_equal_those_of_the_worker() {
        let sizes = [0usize, 100, 65_535, 65_536, 65_537, 200_000, 1_048_583];
        let files: Vec<(Vec<u8>, usize)> = sizes
            .iter()
            .enumerate()
            .map(|(i, &n)| (data(n, i as u32), [1448, 7, 65_536, 100_000][i % 4]))
            .collect();
        let inline = carve(&FileConfig::default(), &files, usize::MAX, ShedLevel::None);
        for threads in [1, 2, 4] {
            let pool = HashPool::start(threads, QueueFull::Wait).unwrap();
            let cfg = FileConfig {
                offload: pool.handle(),
                ..FileConfig::default()
            };
            let got = carve(&cfg, &files, usize::MAX, ShedLevel::None);
            assert_eq!(got.len(), files.len());
            for (r, want) in got.iter().zip(&inline) {
                assert_eq!(
                    (&r.fuid, &r.md5, &r.sha1, &r.sha256, &r.blake3),
                    (&want.fuid, &want.md5, &want.sha1, &want.sha256, &want.blake3),
                    "{threads} threads"
                );
                assert!(r.md5.is_some() && r.hashes_shed.is_empty() && !r.overload);
            }
            assert_eq!(got[5].sha256.as_deref(), Some(sha256(&files[5].0).as_str()));
            pool.shutdown();
        }
    }

    #[test]
    fn shedding_reaches_files_on_the_threads() {
        let pool = HashPool::start(2, QueueFull::Wait).unwrap();
        let cfg = FileConfig {
            offload: pool.handle(),
            ..FileConfig::default()
        };
        let content = data(1 << 20, 9);
        let r = &carve(&cfg, &[(content.clone(), 1448)], 300_000, ShedLevel::Sha1)[0];
        assert_eq!(r.hashes_shed, ["blake3", "sha1"]);
        assert!(r.overload && r.blake3.is_none() && r.sha1.is_none());
        assert_eq!(r.sha256.as_deref(), Some(sha256(&content).as_str()));
        pool.shutdown();
    }

    #[test]
    fn a_full_queue_gives_the_hashes_up_instead_of_blocking() {
        // Queues of 2 chunks and no thread to empty them: the third chunk finds them full.
        let pool = HashPool::with_queues(2, 2, QueueFull::Shed, false).unwrap();
        let cfg = FileConfig {
            offload: pool.handle(),
            ..FileConfig::default()
        };
        let mut sink = FileSink::new(cfg.clone());
        let meta = FileMeta::new(Proto::new("http"), Direction::Download);
        let mut a = FileAnalyzer::new(&conn(), meta, "F1".into(), Timestamp::ZERO, &cfg);
        for part in data(1 << 20, 1).chunks(1448) {
            a.update(part);
        }
        a.close_into(&mut sink, Timestamp::ZERO, FileEnd::Complete);
        assert_eq!(sink.collect_pending(), 0, "nothing waits for a group that was given up");
        let r = &sink.records[0];
        assert!(r.overload && r.md5.is_none() && r.sha256.is_none(), "{r:?}");
        assert_eq!(r.hashes_shed, ["blake3", "sha1", "md5", "sha256"]);
        assert_eq!(r.size, 1 << 20);
        assert!(pool.fill() > 0.99);
        assert_eq!(sink.stats.md5_shed, 1);
    }

    #[test]
    fn a_gap_after_the_hand_over_leaves_no_hash_and_nothing_waiting() {
        let pool = HashPool::start(1, QueueFull::Wait).unwrap();
        let cfg = FileConfig {
            offload: pool.handle(),
            ..FileConfig::default()
        };
        let mut sink = FileSink::new(cfg.clone());
        let meta = FileMeta::new(Proto::new("http"), Direction::Download);
        let mut a = FileAnalyzer::new(&conn(), meta, "F1".into(), Timestamp::ZERO, &cfg);
        a.update(&data(300_000, 1));
        a.gap(100);
        a.update(&data(1000, 2));
        a.close_into(&mut sink, Timestamp::ZERO, FileEnd::Complete);
        assert_eq!(sink.pending_len(), 0);
        assert!(sink.records[0].md5.is_none() && sink.records[0].missing_bytes == 100);
        pool.shutdown();
    }
}
