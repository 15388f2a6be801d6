//! Offline runtime: capture file → engine → sink, with progress on stderr.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use tracing::warn;
use xdpcarve_capture::{CaptureError, CaptureFile, Format};
use xdpcarve_core::{Engine, EngineConfig};
use xdpcarve_files::{Stats, Timestamp};

use crate::cli::Cli;
use crate::sink::RecordSink;
use crate::worker;

/// What a read did, for the summary.
pub struct ReadReport {
    pub file: String,
    pub format: Format,
    pub file_len: u64,
    pub stats: Stats,
    pub elapsed: Duration,
    /// Capture-time span of the packets.
    pub capture_span: Duration,
    pub max_flows_seen: usize,
    /// The file ended inside a record: the warning given.
    pub truncated: Option<String>,
    /// Packets skipped because their interface's link type is unsupported.
    pub skipped_unsupported: u64,
    /// The read stopped early on a corrupt record (records before it were still processed).
    pub stopped: Option<CaptureError>,
}

const PROGRESS_EVERY: Duration = Duration::from_secs(2);

/// Reads the whole capture through a fresh engine into `sink`.
pub fn run(cli: &Cli, cfg: EngineConfig, sink: &mut impl RecordSink) -> Result<ReadReport> {
    let read = cli.read.as_deref().context("no --read file given")?;
    let mut cap = CaptureFile::open(read)?;
    let mut engine = Engine::new(cfg);
    let started = Instant::now();
    let show_progress = !cli.quiet && std::io::stderr().is_terminal();
    let mut next_progress = started + PROGRESS_EVERY;
    let mut first_ts: Option<Timestamp> = None;
    let mut last_ts = Timestamp::ZERO;
    let mut max_flows_seen = 0usize;
    let mut stopped = None;
    let mut n: u64 = 0;
    loop {
        let pkt = match cap.next_packet() {
            Ok(Some(p)) => p,
            Ok(None) => break,
            Err(e @ CaptureError::Corrupt { .. }) => {
                stopped = Some(e);
                break;
            }
            Err(e) => return Err(e).context("reading the capture failed"),
        };
        first_ts.get_or_insert(pkt.ts);
        last_ts = last_ts.max(pkt.ts);
        worker::process_packet(&mut engine, pkt.ts, pkt.link, pkt.data, sink)?;
        n += 1;
        if n % 4096 == 0 {
            max_flows_seen = max_flows_seen.max(engine.active_flows());
            if show_progress && Instant::now() >= next_progress {
                next_progress = Instant::now() + PROGRESS_EVERY;
                let pct = if cap.file_len() > 0 {
                    cap.bytes_read() as f64 * 100.0 / cap.file_len() as f64
                } else {
                    0.0
                };
                eprintln!(
                    "xdpcarve: {:.0}% of {} read: {} packets, {:.1} MB, {} flows, {} files",
                    pct,
                    read.display(),
                    n,
                    cap.bytes_read() as f64 / 1e6,
                    engine.active_flows(),
                    engine.stats().files.files
                );
            }
        }
    }
    max_flows_seen = max_flows_seen.max(engine.active_flows());
    let truncated = cap.truncated().map(str::to_owned);
    if let Some(t) = &truncated {
        warn!("{}: {t}", read.display());
    }
    if cap.skipped_unsupported() > 0 {
        warn!(
            "{}: {} packets skipped: their interface's link type is not supported",
            read.display(),
            cap.skipped_unsupported()
        );
    }
    worker::finish(&mut engine, last_ts, sink)?;
    Ok(ReadReport {
        file: read.display().to_string(),
        format: cap.format(),
        file_len: cap.file_len(),
        stats: engine.stats().clone(),
        elapsed: started.elapsed(),
        capture_span: first_ts.map_or(Duration::ZERO, |f| last_ts.since(f)),
        max_flows_seen,
        truncated,
        skipped_unsupported: cap.skipped_unsupported(),
        stopped,
    })
}
