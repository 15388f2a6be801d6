//! Streaming analysis of one file: hashes computed as bytes arrive, a bounded copy of the first
//! bytes for sniffing, and accounting of what was missed. No file is ever held whole.

use crate::offload::{self, HashPool, Remote};
use crate::sniff;
use sha1::{Digest, Sha1};
use sha2::Sha256;
use std::sync::Arc;
use xdpcarve_contract::{
    Anomaly, AppContext, ConnMeta, Direction, FileConfig, FileMeta, FileRecord, FileSink, FileStoreSink, LoadSignal,
    PendingHashes, ScanFields, ShedLevel, StoreChunk, StoreEnd, StoreTicket, Timestamp, WantedFiles,
};
pub use xdpcarve_hash::hex;
use xdpcarve_hash::{Md5Hasher, Md5Sha256, OpenTicket};

/// How a file ended.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum FileEnd {
    /// The protocol delimited it and every byte was delivered (gaps are still reported).
    Complete,
    /// It ended early; the reason goes into `truncated_reason`.
    Truncated(&'static str),
}

/// The hashes of one file (or of one group of them, on a hash thread).
pub(crate) struct Hashers {
    md5: Option<Md5Hasher>,
    sha1: Option<Sha1>,
    sha256: Option<Sha256Stream>,
    /// MD5 and SHA-256 in one stitched pass, for a file opened with no other in the worker's MD5
    /// lanes (`md5` and `sha256` are then None); split in two when one of them is shed.
    /// (It counts as an open file of the lanes while it lasts.)
    md5_sha256: Option<(Md5Sha256, OpenTicket)>,
    blake3: Option<Box<StagedBlake3>>,
}

/// SHA-256 as RustCrypto streams it, or what a stitched pass left of it.
enum Sha256Stream {
    Crypto(Sha256),
    Resumed(xdpcarve_hash::Sha256),
}

impl Sha256Stream {
    fn update(&mut self, data: &[u8]) {
        match self {
            Sha256Stream::Crypto(h) => h.update(data),
            Sha256Stream::Resumed(h) => h.update(data),
        }
    }

    fn finalize(self) -> [u8; 32] {
        match self {
            Sha256Stream::Crypto(h) => h.finalize().into(),
            Sha256Stream::Resumed(h) => h.finalize(),
        }
    }
}

/// Hash names in shedding order; bit i of a hash mask is `HASH_NAMES[i]`.
pub(crate) const HASH_NAMES: [&str; 4] = ["blake3", "sha1", "md5", "sha256"];
const BLAKE3: u8 = 1;
const SHA1: u8 = 2;
const MD5: u8 = 4;
const SHA256: u8 = 8;

/// Finished hashes, lowercase hex.
#[derive(Default)]
pub(crate) struct Digests {
    md5: Option<String>,
    sha1: Option<String>,
    sha256: Option<String>,
    blake3: Option<String>,
}

impl Digests {
    pub(crate) fn write_into(self, rec: &mut FileRecord) {
        rec.md5 = self.md5.or(rec.md5.take());
        rec.sha1 = self.sha1.or(rec.sha1.take());
        rec.sha256 = self.sha256.or(rec.sha256.take());
        rec.blake3 = self.blake3.or(rec.blake3.take());
    }
}

/// BLAKE3 runs its SIMD lanes across the 1 KiB chunks of ONE `update` call; fed a TCP segment at a
/// time (~1460 bytes) it runs at a quarter of its speed. Staging input into 16 KiB blocks doubles
/// it (bench/REPORT.md); MD5 and SHA-1/2 do not care about update sizes.
struct StagedBlake3 {
    hasher: blake3::Hasher,
    stage: Vec<u8>,
}

const BLAKE3_STAGE: usize = 16 * 1024;

impl StagedBlake3 {
    fn new() -> Self {
        StagedBlake3 {
            hasher: blake3::Hasher::new(),
            stage: Vec::new(),
        }
    }

    fn update(&mut self, mut data: &[u8]) {
        if !self.stage.is_empty() || data.len() < BLAKE3_STAGE {
            if self.stage.capacity() == 0 {
                self.stage.reserve_exact(BLAKE3_STAGE);
            }
            let n = (BLAKE3_STAGE - self.stage.len()).min(data.len());
            self.stage.extend_from_slice(&data[..n]);
            data = &data[n..];
            if self.stage.len() < BLAKE3_STAGE {
                return;
            }
            self.hasher.update(&self.stage);
            self.stage.clear();
        }
        // Whole blocks go straight in; a tail waits in the stage.
        let whole = data.len() - data.len() % BLAKE3_STAGE;
        self.hasher.update(&data[..whole]);
        self.stage.extend_from_slice(&data[whole..]);
    }

    fn finalize(mut self) -> blake3::Hash {
        self.hasher.update(&self.stage);
        self.hasher.finalize()
    }
}

impl Hashers {
    const NONE: Hashers = Hashers {
        md5: None,
        sha1: None,
        sha256: None,
        md5_sha256: None,
        blake3: None,
    };

    /// The hashes `cfg` asks for: MD5 and SHA-256 stitched when no other file of the worker
    /// has its MD5 open (nothing to share SIMD lanes with; a keep-alive connection's files come
    /// one at a time), else MD5 in the lanes.
    fn new(cfg: &FileConfig) -> Hashers {
        let h = cfg.hashes;
        let pair = (h.md5 && h.sha256 && cfg.md5_lanes.open_files() == 0)
            .then(Md5Sha256::new)
            .flatten()
            .map(|pair| (pair, cfg.md5_lanes.hold()));
        let paired = pair.is_some();
        Hashers {
            md5: (h.md5 && !paired).then(|| cfg.md5_lanes.hasher()),
            sha1: h.sha1.then(Sha1::new),
            sha256: (h.sha256 && !paired).then(|| Sha256Stream::Crypto(Sha256::new())),
            md5_sha256: pair,
            blake3: h.blake3.then(|| Box::new(StagedBlake3::new())),
        }
    }

    /// MD5 and SHA-256 apart again.
    fn unpair(&mut self) {
        if let Some((pair, _open)) = self.md5_sha256.take() {
            let (md5, sha256) = pair.split();
            self.md5 = Some(Md5Hasher::Single(md5));
            self.sha256 = Some(Sha256Stream::Resumed(sha256));
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.mask() == 0
    }

    /// The hashes computed, as bits of [`HASH_NAMES`].
    pub(crate) fn mask(&self) -> u8 {
        (if self.blake3.is_some() { BLAKE3 } else { 0 })
            | (if self.sha1.is_some() { SHA1 } else { 0 })
            | (if self.md5.is_some() { MD5 } else { 0 })
            | (if self.sha256.is_some() { SHA256 } else { 0 })
            | (if self.md5_sha256.is_some() { MD5 | SHA256 } else { 0 })
    }

    /// Stops computing the hashes in `mask`.
    pub(crate) fn shed_mask(&mut self, mask: u8) {
        if mask & (MD5 | SHA256) != 0 {
            self.unpair();
        }
        if mask & BLAKE3 != 0 {
            self.blake3 = None;
        }
        if mask & SHA1 != 0 {
            self.sha1 = None;
        }
        if mask & MD5 != 0 {
            self.md5 = None;
        }
        if mask & SHA256 != 0 {
            self.sha256 = None;
        }
    }

    /// The same hashes, none sharing the worker's SIMD lanes: for a thread of their own.
    pub(crate) fn detached(self) -> Hashers {
        Hashers {
            md5: self.md5.map(|h| Md5Hasher::Single(h.into_single())),
            ..self
        }
    }

    /// MD5 alone (or stitched with SHA-256), and the rest: MD5 is as slow as the three others
    /// together.
    pub(crate) fn split_md5(self) -> Vec<Hashers> {
        let md5 = Hashers {
            md5: self.md5,
            md5_sha256: self.md5_sha256,
            ..Hashers::NONE
        };
        vec![
            md5,
            Hashers {
                md5: None,
                md5_sha256: None,
                ..self
            },
        ]
    }

    /// Each hash alone.
    pub(crate) fn split_each(mut self) -> Vec<Hashers> {
        self.unpair();
        vec![
            Hashers {
                md5: self.md5,
                ..Hashers::NONE
            },
            Hashers {
                sha256: self.sha256,
                ..Hashers::NONE
            },
            Hashers {
                sha1: self.sha1,
                ..Hashers::NONE
            },
            Hashers {
                blake3: self.blake3,
                ..Hashers::NONE
            },
        ]
    }

    pub(crate) fn finish(mut self) -> Digests {
        self.unpair();
        Digests {
            md5: self.md5.map(|h| hex(&h.finalize())),
            sha1: self.sha1.map(|h| hex(&h.finalize())),
            sha256: self.sha256.map(|h| hex(&h.finalize())),
            blake3: self.blake3.map(|h| h.finalize().to_hex().to_string()),
        }
    }

    pub(crate) fn update(&mut self, data: &[u8]) {
        if let Some(h) = &mut self.md5 {
            h.update(data);
        }
        if let Some(h) = &mut self.sha1 {
            h.update(data);
        }
        if let Some(h) = &mut self.sha256 {
            h.update(data);
        }
        if let Some((h, _)) = &mut self.md5_sha256 {
            h.update(data);
        }
        if let Some(h) = &mut self.blake3 {
            h.update(data);
        }
    }
}

pub struct FileAnalyzer {
    conn: ConnMeta,
    meta: FileMeta,
    fuid: String,
    start: Timestamp,
    /// None once hashing was abandoned (gap or size limit), or handed to the hash threads.
    hashers: Option<Hashers>,
    /// The hash threads the file goes to past [`offload::OFFLOAD_AFTER`] bytes (`--hash-threads`),
    /// and the file once handed over.
    pool: Option<Arc<HashPool>>,
    remote: Option<Remote>,
    sniff: Vec<u8>,
    sniff_limit: usize,
    /// Sniffing stops at the first gap: content after a hole is not the file's start.
    sniff_closed: bool,
    size: u64,
    max_size: u64,
    missing_bytes: u64,
    overflow_bytes: u64,
    limit_hit: bool,
    /// The store's queue refused some of the file's bytes (so the store does not have it).
    store_refused: bool,
    /// Bytes fed to the hashers (before any gap or limit stopped them).
    hashed: u64,
    /// Overload control: the worker's shedding level, and what this file has shed so far.
    load: LoadSignal,
    wanted: WantedFiles,
    shed: Shed,
    /// Whether the file's bytes go to the store, decided once its type is sniffed.
    store: StoreFeed,
}

/// Bytes of a stored file gathered before they go to the store (at most this much per file being
/// stored, on the worker).
const STORE_STAGE: usize = 32 * 1024;

/// The file's bytes on their way to the store (`--store-dir`).
enum StoreFeed {
    /// No store, or it does not want the file, or it was given up.
    Off,
    /// Waiting for the sniffed type (the first `sniff_bytes`, a gap, or the end).
    Undecided(Arc<dyn FileStoreSink>),
    /// Every byte so far was handed over (`sent` of them) or is in `stage`, which ends where the
    /// next byte goes (`offset`).
    Feeding {
        store: Arc<dyn FileStoreSink>,
        id: u64,
        offset: u64,
        sent: u64,
        stage: Vec<u8>,
    },
}

impl StoreFeed {
    fn new(store: Option<&Arc<dyn FileStoreSink>>) -> Self {
        match store {
            Some(s) => StoreFeed::Undecided(s.clone()),
            None => StoreFeed::Off,
        }
    }

    /// Decides with the file's start (`head`: every byte so far, nothing missing before it).
    /// Returns false when the store's queue refused the bytes.
    fn decide(&mut self, head: &[u8], meta: &FileMeta, fuid: &str) -> bool {
        let StoreFeed::Undecided(store) = self else { return true };
        let store = store.clone();
        let mime = sniff::sniff(head);
        if !store.wants(mime, meta.declared_mime_type.as_deref(), meta.filename.as_deref()) {
            *self = StoreFeed::Off;
            return true;
        }
        let id = store.open(fuid);
        *self = StoreFeed::Feeding {
            store,
            id,
            offset: 0,
            sent: 0,
            stage: Vec::new(),
        };
        self.feed(head)
    }

    /// Hands over the next bytes, a [`STORE_STAGE`] at a time (a message per segment would wake
    /// the store thread per segment); on a refusal the store throws the file away.
    fn feed(&mut self, data: &[u8]) -> bool {
        let StoreFeed::Feeding { offset, stage, .. } = self else {
            return true;
        };
        stage.extend_from_slice(data);
        *offset += data.len() as u64;
        if stage.len() < STORE_STAGE {
            return true;
        }
        self.send_stage()
    }

    /// Sends what is staged.
    fn send_stage(&mut self) -> bool {
        let StoreFeed::Feeding {
            store,
            id,
            offset,
            sent,
            stage,
        } = self
        else {
            return true;
        };
        if stage.is_empty() {
            return true;
        }
        let bytes = std::mem::take(stage);
        let n = bytes.len() as u64;
        let chunk = StoreChunk {
            id: *id,
            offset: *offset - n,
            bytes,
        };
        if store.send(chunk) {
            *sent += n;
            return true;
        }
        self.give_up();
        false
    }

    /// The file ended: what is staged goes. Returns false when it was refused.
    fn end(&mut self) -> bool {
        self.send_stage()
    }

    /// `len` bytes are missing after `head` (every byte before them, when sniffing was still
    /// open): kept as a hole when the store keeps incomplete files, else the file is given up.
    fn gap(&mut self, len: u64, head: Option<&[u8]>, meta: &FileMeta, fuid: &str) -> bool {
        let keeps = match self {
            StoreFeed::Off => return true,
            StoreFeed::Undecided(store) | StoreFeed::Feeding { store, .. } => store.keeps_incomplete(),
        };
        if !keeps {
            self.give_up();
            return true;
        }
        let mut fed = true;
        if let (StoreFeed::Undecided(_), Some(head)) = (&*self, head) {
            fed = self.decide(head, meta, fuid);
        }
        // The bytes before the hole go before the offset moves past it.
        fed &= self.send_stage();
        match self {
            StoreFeed::Feeding { offset, .. } => *offset = offset.saturating_add(len),
            // Undecided with the start unknown: nothing can be kept.
            _ => *self = StoreFeed::Off,
        }
        fed
    }

    /// The file was cut at the size limit: what came before is all the store gets, if it keeps
    /// incomplete files.
    fn cut(&mut self) {
        if let StoreFeed::Undecided(store) | StoreFeed::Feeding { store, .. } = self {
            if !store.keeps_incomplete() {
                self.give_up();
            }
        }
    }

    fn give_up(&mut self) {
        if let StoreFeed::Feeding { store, id, .. } = self {
            store.end(StoreEnd::Abort { id: *id });
        }
        *self = StoreFeed::Off;
    }

    fn ticket(&self) -> Option<StoreTicket> {
        match self {
            StoreFeed::Feeding { id, offset, sent, .. } => Some(StoreTicket {
                id: *id,
                sent: *sent,
                len: *offset,
            }),
            _ => None,
        }
    }
}

/// What overload control took from one file. Shedding only ever goes up for a file: a hash not
/// computed for some bytes cannot be resumed.
#[derive(Default)]
struct Shed {
    /// The highest level applied to this file.
    level: ShedLevel,
    /// The worker was shedding while the file was open.
    overload: bool,
    /// Hashes dropped, as bits of [`HASH_NAMES`].
    dropped: u8,
    /// At [`ShedLevel::Unwanted`]: whether the policy wants the file, once its sniffed type is known.
    wanted: Option<bool>,
    /// Bytes not hashed at all because shedding took every hash.
    unhashed: u64,
}

impl FileAnalyzer {
    pub fn new(conn: &ConnMeta, meta: FileMeta, fuid: String, now: Timestamp, cfg: &FileConfig) -> Self {
        FileAnalyzer {
            conn: conn.clone(),
            meta,
            fuid,
            start: now,
            hashers: Some(Hashers::new(cfg)),
            pool: HashPool::from_handle(&cfg.offload),
            remote: None,
            sniff: Vec::new(),
            sniff_limit: cfg.sniff_bytes,
            sniff_closed: false,
            size: 0,
            max_size: cfg.max_file_size,
            missing_bytes: 0,
            overflow_bytes: 0,
            limit_hit: false,
            store_refused: false,
            hashed: 0,
            load: cfg.load.clone(),
            wanted: cfg.wanted.clone(),
            shed: Shed::default(),
            store: StoreFeed::new(cfg.store.0.as_ref()),
        }
    }

    /// Starts analysing a new file of the connection `cx` is about.
    pub fn open<S>(cx: &mut AppContext<'_, S>, meta: FileMeta) -> Self {
        let fuid = cx.files.next_fuid(cx.conn);
        FileAnalyzer::new(cx.conn, meta, fuid, cx.now, &cx.files.config)
    }

    /// Finishes the file and leaves its record in `cx.files`.
    pub fn close<S>(self, cx: &mut AppContext<'_, S>, end: FileEnd) {
        self.close_into(cx.files, cx.now, end);
    }

    /// Finishes the file and leaves its record in `files`, counted in `files.stats`: the one
    /// place every record is counted, whether it leaves through a connection's event or not
    /// (206 objects flushed late).
    pub fn close_into(self, files: &mut FileSink, now: Timestamp, end: FileEnd) {
        let hashed = self.hashed_bytes();
        let unhashed = self.shed.unhashed;
        let (rec, pending, store_refused) = self.finish_parts(now, end);
        let s = &mut files.stats;
        if store_refused {
            s.store_queue_full += 1;
        }
        s.files += 1;
        s.bytes_hashed += hashed;
        if rec.truncated {
            s.files_truncated += 1;
        }
        if rec.missing_bytes > 0 {
            s.files_with_gaps += 1;
        }
        s.bytes_unhashed += unhashed;
        s.overflow_bytes += rec.overflow_bytes;
        match pending {
            Some(hashes) => files.finished_pending(rec, hashes),
            None => files.finished(rec),
        }
    }

    pub fn fuid(&self) -> &str {
        &self.fuid
    }
    pub fn meta(&self) -> &FileMeta {
        &self.meta
    }
    /// For what the protocol reveals after the file started (a late filename, a trailer).
    pub fn meta_mut(&mut self) -> &mut FileMeta {
        &mut self.meta
    }
    /// Marks the file with a way its sender bent the protocol.
    pub fn flag(&mut self, anomaly: Anomaly) {
        self.meta.anomalies.insert(anomaly);
    }
    /// Decoded bytes seen so far.
    pub fn size(&self) -> u64 {
        self.size
    }
    pub fn missing_bytes(&self) -> u64 {
        self.missing_bytes
    }

    /// Feeds the next decoded bytes of the file.
    pub fn update(&mut self, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        let room = self.max_size.saturating_sub(self.size);
        let (take, over) = if (data.len() as u64) > room {
            data.split_at(room as usize)
        } else {
            (data, &data[..0])
        };
        let mut fed = 0;
        if !self.sniff_closed && self.sniff.len() < self.sniff_limit {
            let n = (self.sniff_limit - self.sniff.len()).min(take.len());
            self.sniff.extend_from_slice(&take[..n]);
            if self.sniff.len() >= self.sniff_limit {
                // The type is known: the store decides, and gets the whole start at once.
                self.store_refused |= !self.store.decide(&self.sniff, &self.meta, &self.fuid);
                fed = n;
            }
        }
        if !self.store.feed(&take[fed..]) {
            self.store_refused = true;
        }
        let level = self.load.get();
        if level > self.shed.level || (self.shed.level == ShedLevel::Unwanted && self.shed.wanted.is_none()) {
            self.shed_to(level);
        }
        if let Some(r) = &mut self.remote {
            r.update(take);
            self.hashed += take.len() as u64;
        } else if let Some(h) = &mut self.hashers {
            if h.is_empty() {
                self.shed.unhashed += take.len() as u64;
            } else {
                h.update(take);
                self.hashed += take.len() as u64;
                if self.pool.is_some() && self.hashed >= offload::OFFLOAD_AFTER {
                    self.hand_over();
                }
            }
        }
        self.size += take.len() as u64;
        if !over.is_empty() {
            // Past the limit: a hash of a prefix would identify nothing, so drop the hashes.
            if !self.limit_hit {
                self.store.cut();
            }
            self.limit_hit = true;
            self.hashers = None;
            self.remote = None;
            self.overflow_bytes += over.len() as u64;
        }
    }

    /// Applies the worker's shedding `level` (at least the file's current one) to the bytes still
    /// to come. At [`ShedLevel::Unwanted`] the policy's decision waits for the sniffed type (the
    /// first `sniff_bytes`, or a gap that ends sniffing); until then MD5 and SHA-256 go on.
    fn shed_to(&mut self, level: ShedLevel) {
        let level = level.max(self.shed.level);
        if level == ShedLevel::None {
            return;
        }
        self.shed.overload = true;
        self.shed.level = level;
        let present = match (&self.remote, &self.hashers) {
            (Some(r), _) => r.mask() & !self.shed.dropped,
            (None, Some(h)) => h.mask(),
            (None, None) => return,
        };
        let mut drop = present & BLAKE3;
        if level >= ShedLevel::Sha1 {
            drop |= present & SHA1;
        }
        if level == ShedLevel::Unwanted
            && self.shed.wanted.is_none()
            && (self.sniff_closed || self.sniff.len() >= self.sniff_limit)
        {
            let mime = sniff::sniff(&self.sniff);
            let wanted = self.wanted.wants(
                mime,
                self.meta.declared_mime_type.as_deref(),
                self.meta.filename.as_deref(),
            );
            self.shed.wanted = Some(wanted);
        }
        if self.shed.wanted == Some(false) {
            drop |= present & (MD5 | SHA256);
        }
        if drop == 0 {
            return;
        }
        self.shed.dropped |= drop;
        if let Some(h) = &mut self.hashers {
            h.shed_mask(drop);
        }
        if let Some(r) = &mut self.remote {
            if present & !drop == 0 {
                // Nothing left to compute: stop sending bytes, and count them as unhashed.
                self.remote = None;
                self.hashers = Some(Hashers::NONE);
            } else {
                r.shed(drop);
            }
        }
    }

    /// Moves the file's hash states to the hash threads (the file passed OFFLOAD_AFTER bytes).
    fn hand_over(&mut self) {
        let Some(pool) = &self.pool else { return };
        let Some(h) = self.hashers.take() else { return };
        // Spread files over the threads by id, so concurrent files use all of them.
        let start = self
            .fuid
            .bytes()
            .fold(0usize, |a, b| a.wrapping_mul(31).wrapping_add(usize::from(b)));
        self.remote = Some(Remote::hand_over(pool.clone(), h, start));
    }

    /// `len` bytes of the file were not seen.
    pub fn gap(&mut self, len: u64) {
        if len == 0 {
            return;
        }
        self.missing_bytes += len;
        self.hashers = None;
        self.remote = None;
        // Sniffing ends here: an undecided store decides on what came before the hole.
        let head = (!self.sniff_closed && self.sniff.len() as u64 == self.size).then_some(&self.sniff[..]);
        self.store_refused |= !self.store.gap(len, head, &self.meta, &self.fuid);
        self.sniff_closed = true;
    }

    /// Bytes fed to the hashers so far, including those before a gap or limit stopped hashing
    /// (the `bytes_hashed` counter: work done, not bytes of valid hashes).
    pub fn hashed_bytes(&self) -> u64 {
        self.hashed
    }

    /// The record; the hashes still on their way from the hash threads (if the file was handed
    /// over), filled into the record when they arrive; and whether the store's queue refused the
    /// file's bytes.
    fn finish_parts(mut self, now: Timestamp, end: FileEnd) -> (FileRecord, Option<Box<dyn PendingHashes>>, bool) {
        if matches!(self.store, StoreFeed::Undecided(_)) {
            if self.sniff.len() as u64 == self.size && self.missing_bytes == 0 {
                // Shorter than the sniffing window: the whole file is here.
                self.store_refused |= !self.store.decide(&self.sniff, &self.meta, &self.fuid);
            } else {
                self.store = StoreFeed::Off;
            }
        }
        self.store_refused |= !self.store.end();
        let store_ticket = self.store.ticket();
        let store_refused = self.store_refused;
        let FileAnalyzer {
            conn,
            meta,
            fuid,
            start,
            hashers,
            sniff,
            size,
            missing_bytes,
            overflow_bytes,
            limit_hit,
            mut shed,
            remote,
            ..
        } = self;
        let truncated_reason = match end {
            FileEnd::Truncated(why) => Some(why),
            FileEnd::Complete if limit_hit => Some("limit"),
            FileEnd::Complete => None,
        };
        let whole = truncated_reason.is_none() && missing_bytes == 0;
        let mut pending = None;
        let digests = match (hashers, remote) {
            (Some(h), _) if whole => h.finish(),
            (_, Some(r)) if whole => {
                let (lost, hashes) = r.finish();
                if lost != 0 {
                    // A hash thread's queue was full: those hashes were given up.
                    shed.dropped |= lost;
                    shed.overload = true;
                }
                pending = Some(hashes);
                Digests::default()
            }
            _ => Digests::default(),
        };
        let hashes_shed = HASH_NAMES
            .iter()
            .enumerate()
            .filter(|(i, _)| shed.dropped & (1 << i) != 0)
            .map(|(_, name)| (*name).to_owned())
            .collect();
        let extension_mime_type = meta
            .filename
            .as_deref()
            .and_then(|f| mime_guess::from_path(f).first_raw())
            .map(str::to_owned);
        let mut rec = FileRecord {
            ts: start.rfc3339(),
            fuid,
            uid: conn.uid,
            proto: meta.proto,
            orig_h: conn.orig_h.to_string(),
            orig_p: conn.orig_p,
            resp_h: conn.resp_h.to_string(),
            resp_p: conn.resp_p,
            vlan: conn.vlan,
            direction: meta.direction,
            is_orig: meta.direction == Direction::Upload,
            filename: meta.filename,
            mime_type: sniff::sniff(&sniff).map(str::to_owned),
            declared_mime_type: meta.declared_mime_type,
            extension_mime_type,
            size,
            total_bytes: meta.total_bytes,
            missing_bytes,
            overflow_bytes,
            truncated: truncated_reason.is_some(),
            truncated_reason: truncated_reason.map(str::to_owned),
            anomalies: meta.anomalies,
            partial: meta.partial,
            depth: meta.depth,
            parent_fuid: meta.parent_fuid,
            duration: now.since(start).as_secs_f64(),
            md5: None,
            sha1: None,
            sha256: None,
            blake3: None,
            hashes_shed,
            overload: shed.overload,
            scan: ScanFields {
                store_ticket,
                ..ScanFields::default()
            },
            fields: meta.fields,
        };
        digests.write_into(&mut rec);
        (rec, pending, store_refused)
    }
}

#[cfg(test)]
impl FileAnalyzer {
    /// The record of a file hashed on this thread (tests).
    fn finish(self, now: Timestamp, end: FileEnd) -> FileRecord {
        let (rec, pending, _) = self.finish_parts(now, end);
        assert!(pending.is_none(), "use close_into for files handed to hash threads");
        rec
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use md5::Md5;
    use xdpcarve_contract::{HashSet, Proto};

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

    fn analyzer(cfg: &FileConfig) -> FileAnalyzer {
        let mut meta = FileMeta::new(Proto::new("http"), Direction::Download);
        meta.filename = Some("a.pdf".into());
        FileAnalyzer::new(&conn(), meta, "F1".into(), Timestamp::from_secs(5), cfg)
    }

    struct WantsPdf;
    impl xdpcarve_contract::FileInterest for WantsPdf {
        fn wants(&self, mime: Option<&str>, _: Option<&str>, _: Option<&str>) -> bool {
            mime == Some("application/pdf")
        }
    }

    fn shedding_config() -> FileConfig {
        FileConfig {
            wanted: WantedFiles::new(std::sync::Arc::new(WantsPdf)),
            sniff_bytes: 16,
            ..FileConfig::default()
        }
    }

    /// Feeds `data` in 10-byte pieces, switching the worker's level to `level` after `after` bytes.
    fn shed_run(cfg: &FileConfig, data: &[u8], after: usize, level: ShedLevel) -> FileRecord {
        let mut a = analyzer(cfg);
        for (i, chunk) in data.chunks(10).enumerate() {
            if i * 10 >= after {
                cfg.load.set(level);
            }
            a.update(chunk);
        }
        cfg.load.set(ShedLevel::None);
        a.finish(Timestamp::from_secs(6), FileEnd::Complete)
    }

    #[test]
    fn shedding_drops_blake3_then_sha1_and_keeps_the_rest_exact() {
        let data: Vec<u8> = (0..200u8).collect();
        let cfg = shedding_config();
        let full = shed_run(&cfg, &data, usize::MAX, ShedLevel::None);
        assert!(!full.overload && full.hashes_shed.is_empty() && full.blake3.is_some());

        let r = shed_run(&cfg, &data, 50, ShedLevel::Blake3);
        assert!(r.overload);
        assert_eq!(r.hashes_shed, ["blake3"]);
        assert_eq!(
            (r.blake3, &r.sha1, &r.md5, &r.sha256),
            (None, &full.sha1, &full.md5, &full.sha256)
        );

        let r = shed_run(&cfg, &data, 0, ShedLevel::Sha1);
        assert_eq!(r.hashes_shed, ["blake3", "sha1"]);
        assert_eq!((&r.sha1, &r.md5, &r.sha256), (&None, &full.md5, &full.sha256));
        assert_eq!(r.size, 200, "shedding never loses bytes");
        assert_eq!(r.mime_type, full.mime_type, "nor the sniffed type");
    }

    #[test]
    fn at_the_last_level_only_files_the_policy_wants_keep_md5_and_sha256() {
        let cfg = shedding_config();
        let mut pdf = b"%PDF-1.4\n".to_vec();
        pdf.extend((0..300u32).map(|i| i as u8));
        let full = shed_run(&cfg, &pdf, usize::MAX, ShedLevel::None);
        let r = shed_run(&cfg, &pdf, 0, ShedLevel::Unwanted);
        assert_eq!(r.mime_type.as_deref(), Some("application/pdf"));
        assert_eq!(r.hashes_shed, ["blake3", "sha1"]);
        assert_eq!(
            (&r.md5, &r.sha256),
            (&full.md5, &full.sha256),
            "a wanted file keeps its API hashes"
        );

        let text = vec![b'x'; 300];
        let r = shed_run(&cfg, &text, 0, ShedLevel::Unwanted);
        assert_eq!(r.hashes_shed, ["blake3", "sha1", "md5", "sha256"]);
        assert!(r.md5.is_none() && r.sha256.is_none() && r.overload);
        assert_eq!(r.size, 300);

        // Shedding only goes up for a file: back at full work the dropped hashes stay dropped.
        let mut a = analyzer(&cfg);
        cfg.load.set(ShedLevel::Blake3);
        a.update(b"abc");
        cfg.load.set(ShedLevel::None);
        a.update(b"def");
        let r = a.finish(Timestamp::from_secs(6), FileEnd::Complete);
        assert_eq!(r.hashes_shed, ["blake3"]);
        assert_eq!(r.md5.unwrap(), hex(&Md5::digest(b"abcdef")));
    }

    #[test]
    fn shed_files_are_counted() {
        let cfg = shedding_config();
        let mut sink = FileSink::new(cfg.clone());
        cfg.load.set(ShedLevel::Unwanted);
        let mut a = analyzer(&cfg);
        a.update(&[b'y'; 10]);
        a.update(&[b'y'; 90]);
        a.close_into(&mut sink, Timestamp::from_secs(6), FileEnd::Complete);
        let s = &sink.stats;
        assert_eq!(
            (s.files_overload, s.blake3_shed, s.sha1_shed, s.md5_shed, s.sha256_shed),
            (1, 1, 1, 1, 1)
        );
        assert_eq!(s.bytes_unhashed, 90, "hashed until the type was sniffed (16 bytes)");
    }

    #[test]
    fn streaming_hashes_match_one_shot() {
        let data = b"%PDF-1.4 hello world, split over several updates";
        let mut a = analyzer(&FileConfig::default());
        for chunk in data.chunks(7) {
            a.update(chunk);
        }
        let r = a.finish(Timestamp::from_secs(6), FileEnd::Complete);
        assert_eq!(r.md5.unwrap(), hex(&Md5::digest(data)));
        assert_eq!(r.sha1.unwrap(), hex(&Sha1::digest(data)));
        assert_eq!(r.sha256.unwrap(), hex(&Sha256::digest(data)));
        assert_eq!(r.blake3.unwrap(), blake3::hash(data).to_hex().to_string());
        assert_eq!(r.size, data.len() as u64);
        assert_eq!(r.mime_type.as_deref(), Some("application/pdf"));
        assert_eq!(r.extension_mime_type.as_deref(), Some("application/pdf"));
        assert_eq!(r.duration, 1.0);
        assert!(!r.truncated);
    }

    #[test]
    fn staged_blake3_matches_one_shot_for_any_split() {
        let data: Vec<u8> = (0..100_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        for split in [
            1usize,
            1460,
            BLAKE3_STAGE - 1,
            BLAKE3_STAGE,
            BLAKE3_STAGE + 1,
            3 * BLAKE3_STAGE + 7,
            99_999,
        ] {
            let mut a = analyzer(&FileConfig::default());
            for chunk in data.chunks(split) {
                a.update(chunk);
            }
            let r = a.finish(Timestamp::from_secs(6), FileEnd::Complete);
            assert_eq!(
                r.blake3.unwrap(),
                blake3::hash(&data).to_hex().to_string(),
                "split {split}"
            );
            assert_eq!(r.sha256.unwrap(), hex(&Sha256::digest(&data)), "split {split}");
        }
    }

    #[test]
    fn gap_drops_hashes_but_counts() {
        let mut a = analyzer(&FileConfig::default());
        a.update(b"abc");
        a.gap(10);
        a.update(b"def");
        let r = a.finish(Timestamp::from_secs(5), FileEnd::Complete);
        assert_eq!((r.size, r.missing_bytes), (6, 10));
        assert!(r.md5.is_none() && r.sha256.is_none());
    }

    #[test]
    fn size_limit_truncates() {
        let cfg = FileConfig {
            max_file_size: 4,
            ..FileConfig::default()
        };
        let mut a = analyzer(&cfg);
        a.update(b"abcdef");
        let r = a.finish(Timestamp::from_secs(5), FileEnd::Complete);
        assert_eq!((r.size, r.overflow_bytes), (4, 2));
        assert!(r.truncated && r.sha1.is_none());
        assert_eq!(r.truncated_reason.as_deref(), Some("limit"));
    }

    /// A store that records what it is handed; refuses chunks once `room` runs out.
    #[derive(Default)]
    struct RecordingStore {
        wants_pdf_only: bool,
        incomplete: bool,
        room: std::sync::Mutex<Option<usize>>,
        chunks: std::sync::Mutex<Vec<(u64, u64, Vec<u8>)>>,
        ends: std::sync::Mutex<Vec<String>>,
    }

    impl FileStoreSink for RecordingStore {
        fn wants(&self, mime: Option<&str>, _: Option<&str>, _: Option<&str>) -> bool {
            !self.wants_pdf_only || mime == Some("application/pdf")
        }
        fn keeps_incomplete(&self) -> bool {
            self.incomplete
        }
        fn open(&self, _: &str) -> u64 {
            7
        }
        fn send(&self, c: StoreChunk) -> bool {
            let mut room = self.room.lock().unwrap();
            if let Some(r) = room.as_mut() {
                if *r == 0 {
                    return false;
                }
                *r -= 1;
            }
            self.chunks.lock().unwrap().push((c.id, c.offset, c.bytes));
            true
        }
        fn end(&self, e: StoreEnd) -> Option<String> {
            self.ends.lock().unwrap().push(format!("{e:?}"));
            match e {
                StoreEnd::Keep { sha256, fuid, .. } => Some(sha256.unwrap_or(fuid)),
                StoreEnd::Abort { .. } => None,
            }
        }
    }

    /// Feeds `data` in 10-byte pieces (a gap of `gap` bytes after the first `gap_at`) to a file
    /// with a store, through a sink, and returns its record.
    fn stored_run(store: &Arc<RecordingStore>, data: &[u8], gap_at: Option<(usize, u64)>) -> FileRecord {
        let cfg = FileConfig {
            sniff_bytes: 16,
            store: xdpcarve_contract::StoreHandle(Some(store.clone())),
            ..FileConfig::default()
        };
        let mut sink = FileSink::new(cfg.clone());
        let mut a = analyzer(&cfg);
        for (i, chunk) in data.chunks(10).enumerate() {
            if let Some((_, len)) = gap_at.filter(|(at, _)| *at == i * 10) {
                a.gap(len);
            }
            a.update(chunk);
        }
        a.close_into(&mut sink, Timestamp::from_secs(6), FileEnd::Complete);
        sink.records.pop().unwrap()
    }

    fn stored_bytes(store: &RecordingStore) -> Vec<u8> {
        let mut out = Vec::new();
        for (_, offset, bytes) in store.chunks.lock().unwrap().iter() {
            out.resize(*offset as usize, 0);
            out.extend_from_slice(bytes);
        }
        out
    }

    #[test]
    fn a_wanted_file_streams_to_the_store_whole_and_is_named_by_its_hash() {
        let store = Arc::new(RecordingStore {
            wants_pdf_only: true,
            ..Default::default()
        });
        let mut pdf = b"%PDF-1.4\n".to_vec();
        pdf.extend((0..300u32).map(|i| i as u8));
        let r = stored_run(&store, &pdf, None);
        assert_eq!(
            stored_bytes(&store),
            pdf,
            "every byte, in order, the sniffed start included"
        );
        assert_eq!(r.scan.stored_path.as_deref(), r.sha256.as_deref());
        assert_eq!(r.scan.store_ticket.map(|t| (t.sent, t.len)), Some((309, 309)));

        // Not wanted: nothing is sent. Shorter than the sniffing window: sent at the end.
        let store = Arc::new(RecordingStore {
            wants_pdf_only: true,
            ..Default::default()
        });
        let r = stored_run(&store, &[b'x'; 300], None);
        assert!(store.chunks.lock().unwrap().is_empty() && r.scan.stored_path.is_none());
        let r = stored_run(&store, b"%PDF-1.4", None);
        assert_eq!(stored_bytes(&store), b"%PDF-1.4");
        assert!(r.scan.stored_path.is_some());
    }

    #[test]
    fn missing_bytes_and_a_full_queue_give_the_file_up_unless_incomplete_files_are_kept() {
        let data: Vec<u8> = (0..100u8).collect();
        let store = Arc::new(RecordingStore::default());
        let r = stored_run(&store, &data, Some((50, 5)));
        assert!(r.scan.stored_path.is_none() && r.scan.store_ticket.is_none());
        assert!(store.ends.lock().unwrap().iter().any(|e| e.starts_with("Abort")));

        let store = Arc::new(RecordingStore {
            incomplete: true,
            ..Default::default()
        });
        let r = stored_run(&store, &data, Some((50, 5)));
        assert_eq!(r.scan.stored_path.as_deref(), Some("F1"), "no hash: named by fuid");
        let mut want = data[..50].to_vec();
        want.extend_from_slice(&[0; 5]);
        want.extend_from_slice(&data[50..]);
        assert_eq!(
            stored_bytes(&store),
            want,
            "the hole is left where the bytes were missing"
        );

        let store = Arc::new(RecordingStore {
            room: std::sync::Mutex::new(Some(1)),
            ..Default::default()
        });
        let big: Vec<u8> = (0..3 * STORE_STAGE as u32).map(|i| i as u8).collect();
        let r = stored_run(&store, &big, None);
        assert!(r.scan.stored_path.is_none());
        assert!(store.ends.lock().unwrap().iter().any(|e| e.starts_with("Abort")));
        assert!(r.md5.is_some(), "the file is still hashed and logged");
    }

    #[test]
    fn disabled_hashes_are_absent() {
        let cfg = FileConfig {
            hashes: HashSet {
                md5: true,
                ..HashSet::NONE
            },
            ..FileConfig::default()
        };
        let mut a = analyzer(&cfg);
        a.update(b"x");
        let r = a.finish(Timestamp::from_secs(5), FileEnd::Complete);
        assert!(r.md5.is_some() && r.sha1.is_none() && r.sha256.is_none() && r.blake3.is_none());
    }
}
