//! What happens to a file after it is hashed: the store that keeps its bytes (fed by the workers
//! while the file streams, through a [`StoreHandle`]) and the scanners' verdicts that come back onto
//! its record ([`ScanFields`]). The store and the scanners themselves are `xdpcarve-scan`.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::Arc;

/// One scanner's judgement of a file. Ordered from least to most severe for the record's overall
/// verdict: a file is as bad as the worst thing any tool said of it.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Clean,
    /// The tool failed (could not run, crashed, answered nonsense).
    Error,
    /// The tool did not answer within its timeout and was stopped.
    Timeout,
    Suspicious,
    Malicious,
}

impl Verdict {
    pub const ALL: [Verdict; 5] = [
        Verdict::Clean,
        Verdict::Error,
        Verdict::Timeout,
        Verdict::Suspicious,
        Verdict::Malicious,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Clean => "clean",
            Verdict::Error => "error",
            Verdict::Timeout => "timeout",
            Verdict::Suspicious => "suspicious",
            Verdict::Malicious => "malicious",
        }
    }

    /// Parses the names above (as a command or HTTP scanner prints them).
    pub fn parse(s: &str) -> Option<Verdict> {
        Verdict::ALL.into_iter().find(|v| v.as_str() == s)
    }

    /// Malicious or suspicious: what raises an alert.
    pub fn is_alert(self) -> bool {
        matches!(self, Verdict::Malicious | Verdict::Suspicious)
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One scanner's result, as the record and the webhook carry it (the scans log has more).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolVerdict {
    pub scanner: String,
    pub verdict: Verdict,
    /// Rule or signature names the tool reported.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub signatures: Vec<String>,
}

/// Why a file that a pipeline wanted was not scanned, or that it was (`scan` on the record).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScanStatus {
    /// Handed to its pipeline's scanners; their verdicts follow in the scans log (the record is
    /// never held back for them).
    Queued,
    /// Every scanner of its pipeline ran (or the pipeline stopped early on `stop_on`).
    Scanned,
    /// The scan queue (`[scan] queue`) was full when the file finished.
    SkippedQueueFull,
    /// The run ended and `[scan] drain_timeout` passed before the file's chain finished.
    SkippedDrainTimeout,
    /// The store could not keep the file's bytes (queue full, quota, disk error, missing bytes).
    SkippedNotStored,
}

impl ScanStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ScanStatus::Queued => "queued",
            ScanStatus::Scanned => "scanned",
            ScanStatus::SkippedQueueFull => "skipped_queue_full",
            ScanStatus::SkippedDrainTimeout => "skipped_drain_timeout",
            ScanStatus::SkippedNotStored => "skipped_not_stored",
        }
    }
}

/// The store and scan part of a file record, flattened into it. All fields are left out when unset:
/// a file no pipeline wanted and nothing stored carries none of them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScanFields {
    /// Where the store keeps the file (`<store-dir>/<sha256[0..2]>/<sha256>`), while it keeps it.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub stored_path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub scan: Option<ScanStatus>,
    /// The worst of the scanners' verdicts (set on what is submitted with verdicts, never in the
    /// files log, which is written before the scanners answer).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub verdict: Option<Verdict>,
    /// Each scanner's verdict, in the pipeline's order.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub verdicts: Vec<ToolVerdict>,
    /// The file's bytes went to the store (set by the worker's analyzer; the worker's sink names
    /// the stored file once the hashes are in). Never serialized.
    #[serde(skip)]
    pub store_ticket: Option<StoreTicket>,
}

/// A file whose bytes were all handed to the store under `id`: `sent` bytes in chunks, making a
/// file of `len` bytes (more when holes were left for missing bytes).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct StoreTicket {
    pub id: u64,
    pub sent: u64,
    pub len: u64,
}

impl ScanFields {
    pub fn is_empty(&self) -> bool {
        self.stored_path.is_none() && self.scan.is_none() && self.verdict.is_none() && self.verdicts.is_empty()
    }
}

/// Decoded bytes of a file, from a worker's analyzer to the store. They go through a bounded queue
/// and may be refused (the worker never waits); a [`StoreEnd`] never is, so the store always
/// learns how a file it has bytes of ended.
#[derive(Debug)]
pub struct StoreChunk {
    pub id: u64,
    /// Where the bytes go in the file (a gap leaves a hole).
    pub offset: u64,
    pub bytes: Vec<u8>,
}

/// How a file the store has (or may have) bytes of ended.
#[derive(Debug)]
pub enum StoreEnd {
    /// Every chunk was sent: keep it under the name its SHA-256 gives (`sha256`), or,
    /// when it has none (bytes missing, cut at the size limit, hash shed), under its `fuid`.
    Keep {
        ticket: StoreTicket,
        sha256: Option<String>,
        fuid: String,
    },
    /// A chunk was refused (queue full) or the file is not to be kept: throw it away.
    Abort { id: u64 },
}

/// Where files' bytes go, implemented by the store (`xdpcarve-scan`). Shared by every worker.
pub trait FileStoreSink: Send + Sync {
    /// Whether a file of this (sniffed) type, declared type and name is to be stored.
    fn wants(&self, mime_type: Option<&str>, declared: Option<&str>, filename: Option<&str>) -> bool;
    /// Whether files with missing bytes are stored (`store.incomplete`).
    fn keeps_incomplete(&self) -> bool;
    /// A new file id.
    fn open(&self, fuid: &str) -> u64;
    /// Hands over bytes; false when the queue is full (the chunk is dropped: abort the file).
    fn send(&self, chunk: StoreChunk) -> bool;
    /// Ends a file; never refused. For [`StoreEnd::Keep`], the path the file will have (the
    /// record's `stored_path`), or None when the store already gave it up (a write failed).
    fn end(&self, end: StoreEnd) -> Option<String>;
}

/// A handle on the store of a run, carried to every analyzer of every worker (none: no store).
#[derive(Clone, Default)]
pub struct StoreHandle(pub Option<Arc<dyn FileStoreSink>>);

impl fmt::Debug for StoreHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_some() {
            "StoreHandle(store)"
        } else {
            "StoreHandle(none)"
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts_order_by_severity_and_round_trip() {
        assert!(Verdict::Malicious > Verdict::Suspicious && Verdict::Suspicious > Verdict::Timeout);
        assert!(Verdict::Error > Verdict::Clean);
        for v in Verdict::ALL {
            assert_eq!(Verdict::parse(v.as_str()), Some(v));
            assert_eq!(serde_json::to_string(&v).unwrap(), format!("\"{v}\""));
        }
        assert_eq!(Verdict::parse("bad"), None);
        assert_eq!(
            serde_json::to_string(&ScanStatus::SkippedQueueFull).unwrap(),
            "\"skipped_queue_full\""
        );
    }

    #[test]
    fn empty_scan_fields_serialize_to_nothing() {
        let f = ScanFields {
            store_ticket: Some(StoreTicket { id: 7, sent: 1, len: 1 }),
            ..ScanFields::default()
        };
        assert!(f.is_empty());
        assert_eq!(serde_json::to_string(&f).unwrap(), "{}");
    }
}
