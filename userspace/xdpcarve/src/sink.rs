//! Where finished file records go. The offline runtime writes the files log; the egress
//! pipeline (policy, dedup, webhook, metrics) plugs in here as another [`RecordSink`].

use anyhow::Result;
use xdpcarve_files::FileRecord;

pub trait RecordSink {
    /// Takes one finished record. An error stops the run (e.g. the log's disk is full).
    fn record(&mut self, rec: FileRecord) -> Result<()>;
    /// Makes everything handed over so far durable / visible.
    fn flush(&mut self) -> Result<()>;
}

/// Counts what passes through, for the summary.
#[derive(Default, Debug, Clone, Copy)]
pub struct SinkTally {
    pub files: u64,
    pub file_bytes: u64,
    pub files_with_gaps: u64,
}

/// Wraps a sink and tallies records.
pub struct Tallying<S> {
    pub inner: S,
    pub tally: SinkTally,
}

impl<S: RecordSink> RecordSink for Tallying<S> {
    fn record(&mut self, rec: FileRecord) -> Result<()> {
        self.tally.files += 1;
        self.tally.file_bytes += rec.size;
        if rec.missing_bytes > 0 {
            self.tally.files_with_gaps += 1;
        }
        self.inner.record(rec)
    }
    fn flush(&mut self) -> Result<()> {
        self.inner.flush()
    }
}
