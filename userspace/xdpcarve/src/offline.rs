//! Offline runtime: capture file → worker → sink, with progress on stderr.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use tracing::warn;
use xdpcarve_capture::{CaptureError, CaptureFile, Compression, Format};
use xdpcarve_contract::Timestamp;
use xdpcarve_core::{EngineConfig, RecordSink, WorkerReport};

use crate::signals::Stop;

/// What a read did, for the summary and the exit status.
pub struct ReadReport {
    pub file: String,
    pub format: Format,
    pub compression: Compression,
    /// Captures read (several with repeated `-r` or a directory); format and compression are
    /// the first one's.
    pub inputs: usize,
    pub file_len: u64,
    pub elapsed: Duration,
    /// The file ended inside a record: the warning given.
    pub truncated: Option<String>,
    /// Packets skipped because their interface's link type is unsupported.
    pub skipped_unsupported: u64,
    /// The read stopped early on a corrupt record (records before it were still processed).
    pub stopped: Option<CaptureError>,
    /// SIGINT or SIGTERM stopped the read after `packets` packets (`bytes_read` of the file).
    pub interrupted: Option<Interrupted>,
    /// With --simulate-mbps: the simulated ring's high-water mark, capacity, and the frames a live
    /// sensor would have lost to a full ring (none is dropped offline).
    pub simulated: Option<SimulatedRing>,
    /// One report per engine (`--workers`).
    pub workers: Vec<WorkerReport>,
}

/// Where a signal stopped a read.
#[derive(Clone, Copy, Debug)]
pub struct Interrupted {
    pub signal: i32,
    pub packets: u64,
    pub bytes_read: u64,
}

/// `--simulate-mbps`: the capture is taken to arrive at a link rate into an rx ring of the live
/// capacity, so overload control can be tested offline. Packets arrive at `rate` (their length on
/// the wire, back to back); the frames waiting are those that arrived while the worker was still
/// behind the packet it is at. Nothing is dropped: when the model's ring overflows, the frames a
/// live sensor would have lost are counted and the model's clock catches up.
#[derive(Clone, Debug)]
pub struct SimulatedRing {
    /// Nanoseconds one byte takes on the simulated link.
    ns_per_byte: f64,
    pub capacity: u64,
    pub high_water: u64,
    /// Frames a live ring of this size would have dropped.
    pub overflow: u64,
    /// Arrival time of the current packet on the simulated link.
    arrival_ns: f64,
    packets: u64,
    started: Option<Instant>,
}

impl SimulatedRing {
    pub fn new(mbps: f64, capacity: u64) -> SimulatedRing {
        SimulatedRing {
            ns_per_byte: 8_000.0 / mbps,
            capacity,
            high_water: 0,
            overflow: 0,
            arrival_ns: 0.0,
            packets: 0,
            started: None,
        }
    }

    /// A packet of `wire_len` bytes is next: returns (now, frames waiting) for the load monitor.
    fn next(&mut self, wire_len: usize) -> (u64, u64) {
        let started = *self.started.get_or_insert_with(Instant::now);
        self.packets += 1;
        // Ethernet preamble, FCS and inter-frame gap: 24 bytes a frame on the wire.
        self.arrival_ns += (wire_len as f64 + 24.0) * self.ns_per_byte;
        let now = started.elapsed().as_nanos() as f64;
        let per_packet = self.arrival_ns / self.packets as f64;
        let mut waiting = ((now - self.arrival_ns) / per_packet).max(0.0) as u64;
        if waiting > self.capacity {
            // A live ring would have dropped these; offline they are all processed, and the
            // model's clock moves on so the next packets wait as behind a full ring.
            self.overflow += waiting - self.capacity;
            self.arrival_ns += (waiting - self.capacity) as f64 * per_packet;
            waiting = self.capacity;
        }
        self.high_water = self.high_water.max(waiting);
        (now as u64 + 1, waiting)
    }
}

/// The captures of a run, in reading order, and the directory entries left out.
pub struct Inputs {
    pub files: Vec<PathBuf>,
    /// Files found in a directory that are not captures: not read, said why.
    pub skipped: Vec<(PathBuf, String)>,
}

/// Expands directories (their regular files, not recursively, hidden ones left out) and orders
/// the captures by the timestamp of their first packets, as rotated captures of one link follow
/// each other. A named file that cannot be read is an error; a directory entry that is not a
/// capture is skipped and said so.
pub fn order_inputs(paths: &[PathBuf]) -> Result<Inputs> {
    let mut candidates: Vec<(PathBuf, bool)> = Vec::new();
    for path in paths {
        if path.is_dir() {
            let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
                .with_context(|| format!("cannot list {}", path.display()))?
                .filter_map(|e| e.ok())
                .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
                .map(|e| e.path())
                .filter(|p| p.is_file())
                .collect();
            entries.sort();
            if entries.is_empty() {
                anyhow::bail!("{} holds no files to read", path.display());
            }
            candidates.extend(entries.into_iter().map(|p| (p, true)));
        } else {
            candidates.push((path.clone(), false));
        }
    }
    // One file (a named pipe, say) is read as it is: nothing to order, nothing to peek at.
    if candidates.len() == 1 && !candidates[0].1 {
        return Ok(Inputs {
            files: vec![candidates.remove(0).0],
            skipped: Vec::new(),
        });
    }
    let mut dated = Vec::new();
    let mut skipped = Vec::new();
    for (n, (path, from_dir)) in candidates.into_iter().enumerate() {
        let first = CaptureFile::open(&path).and_then(|mut cap| Ok(cap.next_packet()?.map(|p| p.ts)));
        match first {
            // A capture without packets sorts first; the order of equal timestamps is the given one.
            Ok(ts) => dated.push((ts.unwrap_or(Timestamp::ZERO), n, path)),
            Err(e) if from_dir => {
                warn!("{}: not read: {e}", path.display());
                skipped.push((path, e.to_string()));
            }
            Err(e) => return Err(e.into()),
        }
    }
    if dated.is_empty() {
        anyhow::bail!("no capture to read: {} file(s) skipped", skipped.len());
    }
    dated.sort_by_key(|(ts, n, _)| (*ts, *n));
    Ok(Inputs {
        files: dated.into_iter().map(|(_, _, p)| p).collect(),
        skipped,
    })
}

/// Reads every capture of `inputs`, in order, through one worker into `sink`: connections go on
/// from one file into the next. Stops early when the sink fails (the report says why); a corrupt
/// file ends its own read, the next file is read.
pub fn run<S: RecordSink + Send + 'static>(
    inputs: &Inputs,
    cfg: EngineConfig,
    sinks: Vec<S>,
    mut simulated: Option<SimulatedRing>,
    quiet: bool,
    stop: Option<&Stop>,
) -> Result<ReadReport> {
    let total_len: u64 = inputs
        .files
        .iter()
        .map(|p| std::fs::metadata(p).map_or(0, |m| m.len()))
        .sum();
    let pool = xdpcarve_files::HashPool::from_handle(&cfg.files.offload);
    // One engine per sink: on this thread, or (several) each on a thread fed by flow hash.
    // A pipe's packets go to their worker one by one: its writer may pause at any packet.
    let streamed = inputs
        .files
        .iter()
        .any(|p| !std::fs::metadata(p).is_ok_and(|m| m.is_file()));
    let batch = if streamed { 1 } else { crate::shards::BATCH_PACKETS };
    let mut carvers = crate::shards::Carvers::new(cfg, sinks, batch)?;
    let started = Instant::now();
    let mut progress = (!quiet && std::io::stderr().is_terminal()).then(|| crate::progress::Progress::new(started));
    let mut stopped = None;
    let mut interrupted = None;
    let mut truncated = None;
    let mut skipped_unsupported = 0;
    let mut n: u64 = 0;
    let mut done_bytes: u64 = 0;
    let mut first: Option<(Format, Compression, u64)> = None;
    'files: for read in &inputs.files {
        let mut cap = match CaptureFile::open(read) {
            Ok(cap) => cap,
            // Only the first file is opened before the run starts; a later one that went away
            // or is not a capture is an error of that file alone.
            Err(e) if first.is_some() => {
                warn!("{e}; going on with the next file");
                stopped.get_or_insert(e);
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        first.get_or_insert((cap.format(), cap.compression(), cap.file_len()));
        // Unsupported pcapng interfaces warned about so far (one warning each, when first seen).
        let mut warned = 0;
        loop {
            if let Some(stop) = stop.filter(|s| s.requested()) {
                interrupted = Some(Interrupted {
                    signal: stop.signal().unwrap_or(signal_hook::consts::SIGINT),
                    packets: n,
                    bytes_read: done_bytes + cap.bytes_read(),
                });
                break 'files;
            }
            let pkt = match cap.next_packet() {
                Ok(Some(p)) => p,
                Ok(None) => break,
                Err(e @ CaptureError::Corrupt { .. }) => {
                    if inputs.files.len() > 1 {
                        warn!("{e}; going on with the next file");
                    }
                    stopped.get_or_insert(e);
                    break;
                }
                Err(e) => return Err(e).context("reading the capture failed"),
            };
            if let (Some(ring), Some(worker)) = (&mut simulated, carvers.single()) {
                let (now, waiting) = ring.next(pkt.data.len());
                let hashing = pool.as_ref().map_or(0, |p| (p.fill() * ring.capacity as f64) as u64);
                worker.observe_backlog(now, waiting.max(hashing), ring.capacity);
            }
            carvers.handle_packet(pkt.ts, pkt.link, pkt.data);
            if cap.skipped_interfaces().len() > warned {
                warned = warn_skipped(&cap, read, warned);
            }
            if carvers.failed() {
                break 'files;
            }
            n += 1;
            if let Some(p) = progress.as_mut().filter(|p| n % 4096 == 0 && p.due()) {
                p.draw(&crate::progress::Snapshot {
                    bytes_read: done_bytes + cap.bytes_read(),
                    file_len: total_len,
                    packets: n,
                    flows: carvers.active_flows(),
                    files: carvers.files(),
                });
            }
        }
        warn_skipped(&cap, read, warned);
        if let Some(t) = cap.truncated() {
            warn!("{}: {t}", read.display());
            truncated.get_or_insert_with(|| {
                if inputs.files.len() > 1 {
                    format!("{}: {t}", read.display())
                } else {
                    t.to_owned()
                }
            });
        }
        for s in cap.skipped_interfaces() {
            warn!("{}: {} packets skipped: {s}", read.display(), s.packets);
        }
        skipped_unsupported += cap.skipped_unsupported();
        done_bytes += cap.file_len();
    }
    if let Some(p) = progress.as_mut() {
        p.clear();
    }
    // Packet time ends with the last packet: every connection still open is closed then.
    let workers = carvers.finish()?;
    let (format, compression, first_len) = first.unwrap_or((Format::Pcap, Compression::None, 0));
    let file = match inputs.files.as_slice() {
        [one] => one.display().to_string(),
        many => format!(
            "{} captures ({} .. {})",
            many.len(),
            many[0].display(),
            many[many.len() - 1].display()
        ),
    };
    Ok(ReadReport {
        file,
        format,
        compression,
        inputs: inputs.files.len(),
        file_len: if inputs.files.len() == 1 { first_len } else { total_len },
        elapsed: started.elapsed(),
        truncated,
        skipped_unsupported,
        stopped,
        interrupted,
        simulated,
        workers,
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
