//! Where parsers' files go: the per-worker [`FileSink`] holds what every file needs (which hashes,
//! size limits), hands out file ids, counts finished files and collects their records until the
//! engine drains them. The analysis itself (hashing, sniffing) is `xdpcarve-files`.

use std::any::Any;
use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;

use crate::anomaly::Anomalies;
use crate::load::{LoadSignal, WantedFiles};
use crate::record::{zeek_id, FileRecord};
use crate::scan::{StoreEnd, StoreHandle};

/// Which hashes to compute. All four by default.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct HashSet {
    pub md5: bool,
    pub sha1: bool,
    pub sha256: bool,
    pub blake3: bool,
}

impl Default for HashSet {
    fn default() -> Self {
        HashSet {
            md5: true,
            sha1: true,
            sha256: true,
            blake3: true,
        }
    }
}

/// A name in a `--hashes` list that is not a hash.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown hash `{0}`: choose from md5, sha1, sha256, blake3 (or all)")]
pub struct UnknownHash(pub String);

impl HashSet {
    pub const NONE: HashSet = HashSet {
        md5: false,
        sha1: false,
        sha256: false,
        blake3: false,
    };

    /// Parses a comma-separated list such as `md5,sha256`.
    pub fn parse(list: &str) -> Result<HashSet, UnknownHash> {
        let mut set = HashSet::NONE;
        for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            match name.to_ascii_lowercase().as_str() {
                "md5" => set.md5 = true,
                "sha1" => set.sha1 = true,
                "sha256" => set.sha256 = true,
                "blake3" => set.blake3 = true,
                "all" => set = HashSet::default(),
                other => return Err(UnknownHash(other.to_owned())),
            }
        }
        Ok(set)
    }
}

/// What is computed for every file, whatever protocol carried it.
#[derive(Clone, Debug)]
pub struct FileConfig {
    pub hashes: HashSet,
    /// Bytes of a file that are hashed; past this the file is recorded as truncated with
    /// `overflow_bytes` and no hashes (a hash of a prefix identifies nothing).
    pub max_file_size: u64,
    /// Leading bytes kept for content sniffing.
    pub sniff_bytes: usize,
    /// The worker's current shedding level (the engine gives each worker's sink its own).
    pub load: LoadSignal,
    /// Files the submission policy wants: their MD5 and SHA-256 are never shed.
    pub wanted: WantedFiles,
    /// Hash threads large files are handed to (`--hash-threads`), if any.
    pub offload: HashOffload,
    /// Where files' bytes are kept (`--store-dir`), if anywhere.
    pub store: StoreHandle,
    /// The worker's MD5 streams, hashed several files at a time in SIMD lanes (the engine gives
    /// each worker's sink its own).
    pub md5_lanes: xdpcarve_hash::Md5Lanes,
}

/// A handle on the hash threads of a run (the pool type lives in `xdpcarve-files`, which hands
/// files to it; the contract only carries it to every analyzer of every worker).
#[derive(Clone, Default)]
pub struct HashOffload(pub Option<Arc<dyn Any + Send + Sync>>);

impl fmt::Debug for HashOffload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_some() {
            "HashOffload(threads)"
        } else {
            "HashOffload(none)"
        })
    }
}

/// A finished file whose hashes are still being computed on hash threads.
pub trait PendingHashes: Send {
    /// True once the hashes are ready; they are then written into `rec`.
    fn poll(&mut self, rec: &mut FileRecord) -> bool;
}

/// A record waiting for its hashes.
pub struct PendingRecord {
    pub record: FileRecord,
    pub hashes: Box<dyn PendingHashes>,
}

impl Default for FileConfig {
    fn default() -> Self {
        FileConfig {
            hashes: HashSet::default(),
            max_file_size: 256 << 20,
            sniff_bytes: 4096,
            load: LoadSignal::new(),
            wanted: WantedFiles::ALL,
            offload: HashOffload::default(),
            store: StoreHandle::default(),
            md5_lanes: xdpcarve_hash::Md5Lanes::new(),
        }
    }
}

crate::counters! {
    /// Finished files, whatever protocol carried them (per-protocol counts are `<proto>.files`).
    pub struct FileStats {
        files,
        bytes_hashed,
        files_truncated,
        files_with_gaps,
        overflow_bytes,
        /// Files open while the worker was shedding (`overload: true` in their records).
        files_overload,
        /// Files that lost each hash to shedding (`hashes_shed` in their records).
        blake3_shed,
        sha1_shed,
        md5_shed,
        sha256_shed,
        /// Bytes of files that were not hashed at all because shedding took every hash.
        bytes_unhashed,
        /// Files handed whole to the store (`stored_path` in their records).
        files_stored,
        /// Files the store did not get because its queue was full when their bytes came.
        store_queue_full,
        /// 64-byte MD5 blocks hashed in SIMD lanes beside other files' (the rest one stream at
        /// a time: a lone file, or a CPU without AVX2).
        md5_lane_blocks,
    }
}

impl FileStats {
    /// Counts what overload control took from a finished record.
    pub fn count_shedding(&mut self, rec: &FileRecord) {
        if rec.overload {
            self.files_overload += 1;
        }
        for name in &rec.hashes_shed {
            match name.as_str() {
                "blake3" => self.blake3_shed += 1,
                "sha1" => self.sha1_shed += 1,
                "md5" => self.md5_shed += 1,
                _ => self.sha256_shed += 1,
            }
        }
    }
}

/// Where Zeek-style ids come from: a per-run seed (`--seed`, random by default) mixed with the
/// sensor's name, so logs of two runs or two sensors never share ids; then each connection's
/// canonical key and first sequence number, and each file's place in its connection. Ids never
/// depend on which worker saw a flow or in what order flows came, so with the same seed a live run
/// gives the ids `-r` of its capture gives, and N workers those of one.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct IdSeed(pub u64);

impl IdSeed {
    pub fn new(seed: u64, sensor: &str) -> IdSeed {
        // FNV-1a over the name, then mixed with the seed.
        let name = sensor.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        IdSeed(mix(seed ^ mix(name)))
    }

    /// A connection's id from its key (as words) and first sequence number.
    pub fn conn_id(&self, key: &[u64], first_seq: u32) -> u64 {
        key.iter().fold(mix(self.0 ^ u64::from(first_seq)), |h, &w| mix(h ^ w))
    }

    /// The id of the next file opened on `conn`.
    pub fn next_file_id(conn: &crate::ConnMeta) -> u64 {
        let n = conn.files_opened.get().wrapping_add(1);
        conn.files_opened.set(n);
        mix(conn.id ^ mix(u64::from(n) | 1 << 40))
    }
}

/// splitmix64 finalizer: spreads sequential ids over the whole id space.
pub fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The per-worker destination of finished files.
#[derive(Debug)]
pub struct FileSink {
    pub config: FileConfig,
    pub stats: FileStats,
    /// Finished records, drained by the engine after each event.
    pub records: Vec<FileRecord>,
    /// Finished files whose hashes are still on hash threads, in the order they finished.
    pending: VecDeque<PendingRecord>,
    /// TCP anomalies of the connection whose event is being handled, by direction
    /// ([`crate::Side::index`]); empty outside connection events. Set by the engine: a record
    /// finished during the event takes those of the direction that carried it, so a file whose
    /// segments were bent is marked whichever parser carved it.
    pub conn_anomalies: [Anomalies; 2],
}

impl fmt::Debug for PendingRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PendingRecord({})", self.record.fuid)
    }
}

impl FileSink {
    pub fn new(config: FileConfig) -> Self {
        FileSink {
            config,
            stats: FileStats::default(),
            records: Vec::new(),
            pending: VecDeque::new(),
            conn_anomalies: [Anomalies::EMPTY; 2],
        }
    }

    /// The TCP anomalies of the direction that carried `rec`.
    fn mark_tcp(&self, rec: &mut FileRecord) {
        let side = if rec.is_orig {
            crate::Side::Orig
        } else {
            crate::Side::Resp
        };
        rec.anomalies.extend(self.conn_anomalies[side.index()]);
    }

    /// A finished record: marked with its direction's TCP anomalies, counted (what overload
    /// control shed) and queued for the engine.
    pub fn finished(&mut self, mut rec: FileRecord) {
        self.mark_tcp(&mut rec);
        self.push_finished(rec);
    }

    fn push_finished(&mut self, mut rec: FileRecord) {
        self.stats.count_shedding(&rec);
        self.end_stored(&mut rec);
        self.records.push(rec);
    }

    /// A file whose bytes went to the store: now that its hashes are in, the store names it (by
    /// SHA-256, or by fuid when it has none and incomplete files are kept) or throws it away.
    fn end_stored(&mut self, rec: &mut FileRecord) {
        let (Some(ticket), Some(store)) = (rec.scan.store_ticket, &self.config.store.0) else {
            return;
        };
        let whole = rec.sha256.is_some() && rec.missing_bytes == 0 && !rec.truncated;
        let end = if whole || store.keeps_incomplete() {
            StoreEnd::Keep {
                ticket,
                sha256: rec.sha256.clone().filter(|_| whole),
                fuid: rec.fuid.clone(),
            }
        } else {
            StoreEnd::Abort { id: ticket.id }
        };
        rec.scan.stored_path = store.end(end);
        if rec.scan.stored_path.is_some() {
            self.stats.files_stored += 1;
        } else {
            rec.scan.store_ticket = None;
        }
    }

    /// A finished record whose hashes are still being computed: it leaves once they are in,
    /// in the order files finished.
    pub fn finished_pending(&mut self, mut record: FileRecord, hashes: Box<dyn PendingHashes>) {
        self.mark_tcp(&mut record);
        self.pending.push_back(PendingRecord { record, hashes });
    }

    /// Moves records whose hashes arrived to `records` (oldest first, stopping at the first still
    /// waiting). Returns how many still wait.
    pub fn collect_pending(&mut self) -> usize {
        while let Some(front) = self.pending.front_mut() {
            if !front.hashes.poll(&mut front.record) {
                break;
            }
            let done = self.pending.pop_front().expect("front exists");
            // Marked when it finished.
            self.push_finished(done.record);
        }
        self.pending.len()
    }

    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// The id of the next file opened on `conn` ([`IdSeed`]).
    pub fn next_fuid(&mut self, conn: &crate::ConnMeta) -> String {
        zeek_id('F', IdSeed::next_file_id(conn))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_hash_lists() {
        assert_eq!(
            HashSet::parse("md5, SHA256").unwrap(),
            HashSet {
                md5: true,
                sha256: true,
                ..HashSet::NONE
            }
        );
        assert_eq!(HashSet::parse("all").unwrap(), HashSet::default());
        assert!(HashSet::parse("crc32").unwrap_err().to_string().contains("crc32"));
    }

    #[test]
    fn ids_come_from_the_seed_the_sensor_and_the_flow() {
        let a = IdSeed::new(7, "tap-1");
        assert_eq!(a, IdSeed::new(7, "tap-1"), "same seed and name, same ids");
        assert_ne!(a, IdSeed::new(8, "tap-1"));
        assert_ne!(a, IdSeed::new(7, "tap-2"));
        let key = [1u64, 2, 3, 4, 5];
        assert_eq!(a.conn_id(&key, 1000), a.conn_id(&key, 1000));
        assert_ne!(a.conn_id(&key, 1000), a.conn_id(&key, 1001));
        assert_ne!(a.conn_id(&key, 1000), a.conn_id(&[1, 2, 3, 4, 6], 1000));
    }
}
