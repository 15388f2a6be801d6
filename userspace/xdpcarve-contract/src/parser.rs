//! The contract between the flow engine and application-layer parsers.
//!
//! The engine reassembles each TCP direction and hands the parser in-order bytes, gaps and ends.
//! A parser must consume every byte it is given: it keeps whatever incomplete line or header it
//! needs in its own bounded buffer (Suricata's "incomplete" handling, done inside the parser so
//! the engine never has to hold stream data for it). Parsers find files and drive
//! [`FileAnalyzer`]s; finished records go into [`AppContext::records`].

use crate::analyzer::{FileAnalyzer, FileEnd};
use crate::config::AppConfig;
use crate::ranged::RangedFiles;
use crate::record::{zeek_id, ConnMeta, FileMeta, FileRecord, Proto};
use crate::stats::Stats;
use crate::time::Timestamp;

/// Which endpoint sent the bytes.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Side {
    /// The connection originator (client).
    Orig,
    /// The responder (server).
    Resp,
}

impl Side {
    pub fn other(self) -> Side {
        match self {
            Side::Orig => Side::Resp,
            Side::Resp => Side::Orig,
        }
    }
    pub fn index(self) -> usize {
        match self {
            Side::Orig => 0,
            Side::Resp => 1,
        }
    }
}

/// Why a connection is being torn down.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum CloseReason {
    /// Both sides finished (FIN/FIN or RST).
    Finished,
    /// No packet for the idle timeout.
    Timeout,
    /// Evicted to respect the flow-table bound.
    Evicted,
    /// End of capture or sensor shutdown.
    Shutdown,
}

impl CloseReason {
    /// The `truncated_reason` given to files still open at close.
    pub fn as_str(self) -> &'static str {
        match self {
            CloseReason::Finished => "conn_closed",
            CloseReason::Timeout => "timeout",
            CloseReason::Evicted => "evicted",
            CloseReason::Shutdown => "shutdown",
        }
    }
}

/// Deterministic file ids: the same capture gives the same fuids, which keeps runs comparable.
#[derive(Clone, Debug)]
pub struct FuidGen {
    worker: u16,
    next: u64,
}

impl FuidGen {
    pub fn new(worker: u16) -> Self {
        FuidGen { worker, next: 0 }
    }
    pub fn next_fuid(&mut self) -> String {
        self.next += 1;
        zeek_id('F', mix(((self.worker as u64) << 48) | self.next))
    }
}

/// splitmix64 finalizer: spreads sequential ids over the whole id space.
pub fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// What a parser may touch while handling one event of one connection.
pub struct AppContext<'a> {
    pub conn: &'a ConnMeta,
    /// Timestamp of the packet being processed.
    pub now: Timestamp,
    pub cfg: &'a AppConfig,
    pub stats: &'a mut Stats,
    /// Finished files, drained by the engine after each call.
    pub records: &'a mut Vec<FileRecord>,
    /// 206 range pieces, shared by all connections of the worker.
    pub ranged: &'a mut RangedFiles,
    pub fuids: &'a mut FuidGen,
}

impl AppContext<'_> {
    /// Starts analysing a new file of this connection.
    pub fn open_file(&mut self, meta: FileMeta) -> FileAnalyzer {
        let fuid = self.fuids.next_fuid();
        FileAnalyzer::new(self.conn, meta, fuid, self.now, &self.cfg.files)
    }

    /// Finishes a file and queues its record.
    pub fn close_file(&mut self, file: FileAnalyzer, end: FileEnd) {
        let rec = finish_file(file, self.now, end, self.stats);
        self.records.push(rec);
    }
}

/// Finishes a file and counts it in `stats.files`: the one place every record is counted, whether
/// it leaves through a connection ([`AppContext::close_file`]) or not (206 objects flushed late).
pub fn finish_file(file: FileAnalyzer, now: Timestamp, end: FileEnd, stats: &mut Stats) -> FileRecord {
    let hashed = file.hashed_bytes();
    let rec = file.finish(now, end);
    let s = &mut stats.files;
    s.files += 1;
    s.bytes_hashed += hashed;
    match rec.proto {
        Proto::Http => s.http_files += 1,
        Proto::Smtp => s.smtp_files += 1,
    }
    if rec.truncated {
        s.files_truncated += 1;
    }
    if rec.missing_bytes > 0 {
        s.files_with_gaps += 1;
    }
    s.overflow_bytes += rec.overflow_bytes;
    rec
}

/// Owns everything an [`AppContext`] borrows, for driving one parser on its own: unit tests,
/// fuzzing and benchmarks of a parser without the flow engine.
pub struct StandaloneApp {
    pub conn: ConnMeta,
    pub now: Timestamp,
    pub cfg: AppConfig,
    pub stats: Stats,
    pub records: Vec<FileRecord>,
    pub ranged: RangedFiles,
    pub fuids: FuidGen,
}

impl StandaloneApp {
    pub fn new(cfg: AppConfig, conn: ConnMeta) -> Self {
        StandaloneApp {
            now: conn.start,
            conn,
            cfg,
            stats: Stats::default(),
            records: Vec::new(),
            ranged: RangedFiles::new(),
            fuids: FuidGen::new(0),
        }
    }

    pub fn cx(&mut self) -> AppContext<'_> {
        AppContext {
            conn: &self.conn,
            now: self.now,
            cfg: &self.cfg,
            stats: &mut self.stats,
            records: &mut self.records,
            ranged: &mut self.ranged,
            fuids: &mut self.fuids,
        }
    }
}

/// An application-layer parser for one TCP connection (both directions).
pub trait StreamParser {
    /// In-order bytes sent by `from`. Every byte must be consumed.
    fn on_data(&mut self, from: Side, data: &[u8], cx: &mut AppContext<'_>);
    /// `len` bytes sent by `from` are missing (capture loss, or reassembly gave up on a hole).
    fn on_gap(&mut self, from: Side, len: u64, cx: &mut AppContext<'_>);
    /// `from` will send nothing more (FIN, or RST).
    fn on_end(&mut self, from: Side, cx: &mut AppContext<'_>);
    /// The connection is torn down: close every open file (as truncated if incomplete).
    fn on_close(&mut self, reason: CloseReason, cx: &mut AppContext<'_>);
    /// True once the rest of the connection is opaque to this parser (STARTTLS, CONNECT, Upgrade,
    /// unrecoverable garbage): the engine then stops reassembling and only counts bytes.
    fn is_done(&self) -> bool {
        false
    }
}
