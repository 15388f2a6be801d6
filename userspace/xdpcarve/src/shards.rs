//! A read on several cores: the reading thread hands each packet to one of N worker threads by
//! a symmetric hash of its connection's addresses and ports, as a NIC's symmetric RSS hash hands
//! packets to queues live. Each worker owns its engine and flow table, so both directions of a
//! connection meet in one worker and nothing is shared but the egress queues.
//!
//! Packets travel in batches (copied into one buffer, a few hundred at a time) over bounded
//! channels: a reader ahead of its workers waits, as a read waits for egress; nothing is dropped.

use std::hash::Hasher;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;

use anyhow::{anyhow, Result};
use xdpcarve_contract::{LinkType, Timestamp};
use xdpcarve_core::{wire, Engine, EngineConfig, RecordSink, Worker, WorkerReport};

/// Packets a batch holds before it is sent, reading a file.
pub const BATCH_PACKETS: usize = 256;
/// Batches in flight to one worker before the reader waits.
const BATCHES_IN_FLIGHT: usize = 8;

/// The packets of one worker, copied out of the reader's buffer.
struct Batch {
    packets: Vec<(Timestamp, LinkType, u32, u32)>,
    bytes: Vec<u8>,
}

impl Batch {
    fn new(packets: usize) -> Batch {
        Batch {
            packets: Vec::with_capacity(packets),
            bytes: Vec::with_capacity(packets * 1600),
        }
    }
}

/// What the reader sees of one worker thread.
pub struct Shard {
    tx: Option<SyncSender<Batch>>,
    pending: Batch,
    files: Arc<AtomicU64>,
    flows: Arc<AtomicU64>,
    thread: Option<JoinHandle<WorkerReport>>,
}

/// The engines of a read: one on the reading thread, or one per worker thread.
pub enum Carvers<S: RecordSink> {
    One(Box<Worker<S>>),
    Many {
        shards: Vec<Shard>,
        /// Packets per batch: [`BATCH_PACKETS`] from a file; 1 from a pipe, whose writer may
        /// pause for as long as it likes (a packet must not wait in a batch for the next ones).
        batch: usize,
        /// Set by a worker whose sink failed: the read stops.
        failed: Arc<AtomicBool>,
    },
}

impl<S: RecordSink + Send + 'static> Carvers<S> {
    /// One engine per sink; with more than one, each on a thread of its own, fed `batch`
    /// packets at a time.
    pub fn new(cfg: EngineConfig, mut sinks: Vec<S>, batch: usize) -> Result<Carvers<S>> {
        let batch = batch.max(1);
        if sinks.len() == 1 {
            let sink = sinks.pop().expect("one sink");
            return Ok(Carvers::One(Box::new(Worker::new(Engine::new(cfg), sink))));
        }
        let failed = Arc::new(AtomicBool::new(false));
        let mut shards = Vec::with_capacity(sinks.len());
        for (index, sink) in sinks.into_iter().enumerate() {
            let mut cfg = cfg.clone();
            cfg.worker_id = index as u16;
            let (tx, rx) = sync_channel::<Batch>(BATCHES_IN_FLIGHT);
            let files = Arc::new(AtomicU64::new(0));
            let flows = Arc::new(AtomicU64::new(0));
            let (files_w, flows_w, failed_w) = (files.clone(), flows.clone(), failed.clone());
            let thread = std::thread::Builder::new()
                .name(format!("xdpcarve-r{index}"))
                .spawn(move || {
                    let mut worker = Worker::new(Engine::new(cfg), sink);
                    for batch in rx {
                        for &(ts, link, start, len) in &batch.packets {
                            let (start, len) = (start as usize, len as usize);
                            worker.handle_packet(ts, link, &batch.bytes[start..start + len]);
                        }
                        files_w.store(worker.files(), Ordering::Relaxed);
                        flows_w.store(worker.engine().active_flows() as u64, Ordering::Relaxed);
                        if worker.failed() {
                            failed_w.store(true, Ordering::SeqCst);
                            break;
                        }
                    }
                    worker.finish(Timestamp::ZERO)
                })?;
            shards.push(Shard {
                tx: Some(tx),
                pending: Batch::new(batch),
                files,
                flows,
                thread: Some(thread),
            });
        }
        Ok(Carvers::Many { shards, batch, failed })
    }
}

impl<S: RecordSink> Carvers<S> {
    pub fn handle_packet(&mut self, ts: Timestamp, link: LinkType, data: &[u8]) {
        match self {
            Carvers::One(w) => w.handle_packet(ts, link, data),
            Carvers::Many { shards, batch, .. } => {
                let n = shards.len();
                let shard = &mut shards[shard_of(link, data, n)];
                let b = &mut shard.pending;
                b.packets.push((ts, link, b.bytes.len() as u32, data.len() as u32));
                b.bytes.extend_from_slice(data);
                if b.packets.len() >= *batch {
                    send(shard, *batch);
                }
            }
        }
    }

    /// The worker on the reading thread, for overload control's backlog (a read on one core only).
    pub fn single(&mut self) -> Option<&mut Worker<S>> {
        match self {
            Carvers::One(w) => Some(w),
            Carvers::Many { .. } => None,
        }
    }

    pub fn failed(&self) -> bool {
        match self {
            Carvers::One(w) => w.failed(),
            Carvers::Many { failed, .. } => failed.load(Ordering::Relaxed),
        }
    }

    /// Connections tracked now (as of each worker's last batch).
    pub fn active_flows(&self) -> usize {
        match self {
            Carvers::One(w) => w.engine().active_flows(),
            Carvers::Many { shards, .. } => shards.iter().map(|s| s.flows.load(Ordering::Relaxed) as usize).sum(),
        }
    }

    /// Records handed to egress so far (as of each worker's last batch).
    pub fn files(&self) -> u64 {
        match self {
            Carvers::One(w) => w.files(),
            Carvers::Many { shards, .. } => shards.iter().map(|s| s.files.load(Ordering::Relaxed)).sum(),
        }
    }

    /// End of input: every worker finishes (open files logged as truncated) and reports. A worker
    /// thread that panicked loses its records: an error.
    pub fn finish(self) -> Result<Vec<WorkerReport>> {
        match self {
            Carvers::One(mut w) => Ok(vec![w.finish(Timestamp::ZERO)]),
            Carvers::Many { mut shards, .. } => {
                for shard in &mut shards {
                    send(shard, 0);
                    // Closing the channel ends the worker's loop.
                    shard.tx = None;
                }
                let mut reports = Vec::with_capacity(shards.len());
                for (i, mut shard) in shards.into_iter().enumerate() {
                    let thread = shard.thread.take().expect("joined once");
                    reports.push(
                        thread
                            .join()
                            .map_err(|_| anyhow!("read worker {i} panicked: its records are lost"))?,
                    );
                }
                Ok(reports)
            }
        }
    }
}

/// Sends the shard's pending packets (a worker that stopped takes nothing more); the next batch
/// gets room for `next` packets.
fn send(shard: &mut Shard, next: usize) {
    if shard.pending.packets.is_empty() {
        return;
    }
    let batch = std::mem::replace(&mut shard.pending, Batch::new(next));
    if let Some(tx) = &shard.tx {
        if tx.send(batch).is_err() {
            shard.tx = None;
        }
    }
}

/// The worker of a packet: the same for both directions of a connection. Packets that are not
/// TCP (fragments, other protocols) go to worker 0, which counts them.
pub fn shard_of(link: LinkType, frame: &[u8], workers: usize) -> usize {
    let Ok(p) = wire::parse_tcp(link, frame) else {
        return 0;
    };
    let a = endpoint_hash(p.src, p.sport);
    let b = endpoint_hash(p.dst, p.dport);
    // Addition commutes: swapping source and destination gives the same sum.
    let mut h = a.wrapping_add(b) ^ u64::from(p.vlan.unwrap_or(0));
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    (h % workers as u64) as usize
}

fn endpoint_hash(ip: IpAddr, port: u16) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    match ip {
        IpAddr::V4(v4) => h.write(&v4.octets()),
        IpAddr::V6(v6) => h.write(&v6.octets()),
    }
    h.write_u16(port);
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16) -> Vec<u8> {
        let mut f = vec![0u8; 14 + 20 + 20];
        f[12..14].copy_from_slice(&[0x08, 0x00]);
        let ip = &mut f[14..];
        ip[0] = 0x45;
        ip[2..4].copy_from_slice(&40u16.to_be_bytes());
        ip[8] = 64;
        ip[9] = 6;
        ip[12..16].copy_from_slice(&src);
        ip[16..20].copy_from_slice(&dst);
        let tcp = &mut ip[20..];
        tcp[0..2].copy_from_slice(&sport.to_be_bytes());
        tcp[2..4].copy_from_slice(&dport.to_be_bytes());
        tcp[12] = 5 << 4;
        tcp[13] = 0x10;
        f
    }

    #[test]
    fn both_directions_meet_in_one_worker_and_flows_spread() {
        let mut used = [0usize; 4];
        for k in 0..400u16 {
            let c = [192, 0, 2, (k % 200) as u8];
            let s = [198, 51, 100, 10];
            let there = shard_of(LinkType::Ethernet, &frame(c, 40000 + k, s, 80), 4);
            let back = shard_of(LinkType::Ethernet, &frame(s, 80, c, 40000 + k), 4);
            assert_eq!(there, back);
            used[there] += 1;
        }
        assert!(used.iter().all(|&n| n > 50), "uneven spread: {used:?}");
        assert_eq!(shard_of(LinkType::Ethernet, b"not a frame", 4), 0);
    }
}
