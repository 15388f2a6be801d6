//! Offline runtime: capture file → worker → sink, with progress on stderr.

use std::io::IsTerminal;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use tracing::warn;
use xdpcarve_capture::{CaptureError, CaptureFile, Format};
use xdpcarve_contract::Timestamp;
use xdpcarve_core::{Engine, EngineConfig, RecordSink, Worker, WorkerReport};

/// What a read did, for the summary and the exit status.
pub struct ReadReport {
    pub file: String,
    pub format: Format,
    pub file_len: u64,
    pub elapsed: Duration,
    /// The file ended inside a record: the warning given.
    pub truncated: Option<String>,
    /// Packets skipped because their interface's link type is unsupported.
    pub skipped_unsupported: u64,
    /// The read stopped early on a corrupt record (records before it were still processed).
    pub stopped: Option<CaptureError>,
    pub worker: WorkerReport,
}

const PROGRESS_EVERY: Duration = Duration::from_secs(2);

/// Reads the whole capture through one worker into `sink`. Stops early when the sink fails
/// (the report says why).
pub fn run<S: RecordSink>(read: &Path, cfg: EngineConfig, sink: S, quiet: bool) -> Result<ReadReport> {
    let mut cap = CaptureFile::open(read)?;
    let mut worker = Worker::new(Engine::new(cfg), sink);
    let started = Instant::now();
    let show_progress = !quiet && std::io::stderr().is_terminal();
    let mut next_progress = started + PROGRESS_EVERY;
    let mut stopped = None;
    let mut n: u64 = 0;
    // Unsupported pcapng interfaces warned about so far (one warning each, when first seen).
    let mut warned = 0;
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
        worker.handle_packet(pkt.ts, pkt.link, pkt.data);
        if cap.skipped_interfaces().len() > warned {
            warned = warn_skipped(&cap, read, warned);
        }
        if worker.failed() {
            break;
        }
        n += 1;
        if show_progress && n % 4096 == 0 && Instant::now() >= next_progress {
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
                worker.engine().active_flows(),
                worker.files()
            );
        }
    }
    warn_skipped(&cap, read, warned);
    let truncated = cap.truncated().map(str::to_owned);
    if let Some(t) = &truncated {
        warn!("{}: {t}", read.display());
    }
    for s in cap.skipped_interfaces() {
        warn!("{}: {} packets skipped: {s}", read.display(), s.packets);
    }
    // Packet time ends with the last packet: every connection still open is closed then.
    let report = worker.finish(Timestamp::ZERO);
    Ok(ReadReport {
        file: read.display().to_string(),
        format: cap.format(),
        file_len: cap.file_len(),
        elapsed: started.elapsed(),
        truncated,
        skipped_unsupported: cap.skipped_unsupported(),
        stopped,
        worker: report,
    })
}

/// Warns about the unsupported interfaces first seen since `warned`; returns how many are warned.
fn warn_skipped(cap: &CaptureFile, read: &Path, warned: usize) -> usize {
    let all = cap.skipped_interfaces();
    for s in all.get(warned..).unwrap_or_default() {
        warn!("{}: skipping packets: {s}", read.display());
    }
    all.len()
}
