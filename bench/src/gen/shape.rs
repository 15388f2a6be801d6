//! A busy link made out of a generated capture: many connections in flight at once, segments
//! out of order and retransmitted, and traffic on ports nobody carves, with the files unchanged.
//!
//! [`write`](super::write) puts conversations one after another, each packet in order, which is
//! the easiest capture a carver can get. A tap on a real link sees something else:
//! - **concurrency**: thousands of connections interleave packet by packet, so a worker holds
//!   that many flows (and open files, hash states, decoders) at once;
//! - **reordering**: a segment lost before the tap is seen only as its retransmission, later and
//!   out of order; paths with several links reorder on their own;
//! - **retransmission**: a segment lost after the tap is seen twice, the copy later;
//! - **background**: most packets belong to connections that carry nothing to carve (TLS here).
//!
//! Each flow keeps its own packets in order but for the disorder asked for; frames are not
//! changed, only their order and timestamps, so the manifest's files stay exactly what a carver
//! must find. Deterministic for a seed.

use super::content::Rng;
use super::tcp::{From, Host, Session, Wire};
use crate::pcap::{self, PcapWriter};
use std::collections::HashMap;
use std::io::{self, Write};
use std::net::Ipv4Addr;

/// How far from a sequential capture to go. The default changes nothing.
#[derive(Clone, Debug, Default)]
pub struct ShapeOptions {
    /// Connections in flight at once (packets of up to this many flows interleave); 0 or 1 keeps
    /// conversations one after another.
    pub concurrent: usize,
    /// Per mille of data segments delivered 1 to 3 packets of their flow late.
    pub reorder_permille: u32,
    /// Per mille of data segments seen twice, the copy 1 to 3 packets of their flow later.
    pub retransmit_permille: u32,
    /// TLS-like connections on port 443 added among the others (each 2 to 40 KB each way).
    pub background: u64,
}

impl ShapeOptions {
    pub fn is_empty(&self) -> bool {
        self.concurrent <= 1 && self.reorder_permille == 0 && self.retransmit_permille == 0 && self.background == 0
    }

    pub fn check(&self) -> Result<(), String> {
        if self.reorder_permille > 1000 || self.retransmit_permille > 1000 {
            return Err("--reorder and --retransmit are per mille: 0 to 1000".into());
        }
        Ok(())
    }
}

/// Time between two frames of the shaped capture (500k packets per second of capture time).
const FRAME_GAP_NANOS: u64 = 2_000;

/// Rewrites the capture `real` (one written by [`write`](super::write)) as `opts` asks into `out`
/// and returns the number of packets written.
pub fn shape<W: Write>(real: &[u8], opts: &ShapeOptions, seed: u64, out: W) -> io::Result<(u64, W)> {
    opts.check().map_err(io::Error::other)?;
    let (_, frames) = pcap::parse(real).map_err(io::Error::other)?;
    let start = frames.first().map_or(0, |f| f.ts_nanos);
    let background = background_capture(opts.background, seed)?;
    let (_, background_frames) = pcap::parse(&background).map_err(io::Error::other)?;

    let carved = flows(frames.iter().map(|f| f.data));
    let other = flows(background_frames.iter().map(|f| f.data));
    let queue = spread(carved, other);

    let mut rng = Rng::new(seed ^ 0x5eed_0f5e_a9e5);
    let mut w = PcapWriter::new(out)?;
    let mut ts = start;
    let mut emit = |data: &[u8]| -> io::Result<()> {
        w.write_frame(ts, data)?;
        ts += FRAME_GAP_NANOS;
        Ok(())
    };
    let width = opts.concurrent.max(1);
    let mut pending = queue.into_iter();
    let mut active: Vec<FlowCursor<'_>> = Vec::with_capacity(width);
    loop {
        while active.len() < width {
            match pending.next() {
                Some(flow) => active.push(FlowCursor::new(flow)),
                None => break,
            }
        }
        if active.is_empty() {
            break;
        }
        let i = rng.below(active.len() as u64) as usize;
        if !active[i].step(opts, &mut rng, &mut emit)? {
            active.swap_remove(i);
        }
    }
    let packets = w.packets();
    Ok((packets, w.into_inner()))
}

/// One flow's frames being written, with the ones held back to go out later.
struct FlowCursor<'a> {
    frames: std::vec::IntoIter<&'a [u8]>,
    /// Frames due after this many more frames of the flow.
    late: Vec<(&'a [u8], u32)>,
}

impl<'a> FlowCursor<'a> {
    fn new(frames: Vec<&'a [u8]>) -> Self {
        FlowCursor {
            frames: frames.into_iter(),
            late: Vec::new(),
        }
    }

    /// Writes the flow's next frame (and whatever falls due after it); false when the flow is done.
    fn step(
        &mut self,
        opts: &ShapeOptions,
        rng: &mut Rng,
        emit: &mut impl FnMut(&[u8]) -> io::Result<()>,
    ) -> io::Result<bool> {
        let Some(frame) = self.frames.next() else {
            // The flow's own frames are out: what was held back follows.
            for (frame, _) in self.late.drain(..) {
                emit(frame)?;
            }
            return Ok(false);
        };
        let data = tcp_payload_len(frame) > 0;
        if data && rng.below(1000) < u64::from(opts.reorder_permille) {
            self.late.push((frame, 1 + rng.below(3) as u32));
            return Ok(true);
        }
        emit(frame)?;
        if data && rng.below(1000) < u64::from(opts.retransmit_permille) {
            self.late.push((frame, 1 + rng.below(3) as u32));
        }
        let mut k = 0;
        while k < self.late.len() {
            self.late[k].1 -= 1;
            if self.late[k].1 == 0 {
                emit(self.late.remove(k).0)?;
            } else {
                k += 1;
            }
        }
        Ok(true)
    }
}

/// Frames grouped by connection (both directions together), in order of first appearance.
fn flows<'a>(frames: impl Iterator<Item = &'a [u8]>) -> Vec<Vec<&'a [u8]>> {
    let mut index: HashMap<[u8; 12], usize> = HashMap::new();
    let mut out: Vec<Vec<&[u8]>> = Vec::new();
    for frame in frames {
        let slot = match flow_key(frame) {
            Some(key) => *index.entry(key).or_insert_with(|| {
                out.push(Vec::new());
                out.len() - 1
            }),
            // Not IPv4/TCP: a flow of its own.
            None => {
                out.push(Vec::new());
                out.len() - 1
            }
        };
        out[slot].push(frame);
    }
    out
}

/// The carved flows in their order with the background flows spread evenly among them.
fn spread<'a>(carved: Vec<Vec<&'a [u8]>>, other: Vec<Vec<&'a [u8]>>) -> Vec<Vec<&'a [u8]>> {
    if other.is_empty() {
        return carved;
    }
    let total = carved.len() + other.len();
    let mut carved = carved.into_iter();
    let mut other = other.into_iter().peekable();
    let n_other = other.len();
    let mut out = Vec::with_capacity(total);
    let mut placed_other = 0;
    for k in 0..total {
        // Background flow number j goes at about position j * total / n_other.
        let want_other = placed_other < n_other && k * n_other >= placed_other * total;
        let next = if want_other { other.next() } else { carved.next() };
        match next {
            Some(flow) => {
                placed_other += usize::from(want_other);
                out.push(flow);
            }
            None => out.extend(carved.by_ref().chain(other.by_ref())),
        }
    }
    out
}

/// Addresses and ports of an Ethernet/IPv4/TCP frame, the same for both directions.
fn flow_key(frame: &[u8]) -> Option<[u8; 12]> {
    let (ip, l4) = ipv4_tcp(frame)?;
    let a = (&ip[12..16], &l4[0..2]);
    let b = (&ip[16..20], &l4[2..4]);
    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
    let mut key = [0u8; 12];
    key[0..4].copy_from_slice(lo.0);
    key[4..6].copy_from_slice(lo.1);
    key[6..10].copy_from_slice(hi.0);
    key[10..12].copy_from_slice(hi.1);
    Some(key)
}

fn tcp_payload_len(frame: &[u8]) -> usize {
    match ipv4_tcp(frame) {
        Some((_, tcp)) if tcp.len() >= 20 => tcp.len().saturating_sub(usize::from(tcp[12] >> 4) * 4),
        _ => 0,
    }
}

/// The IPv4 header and the TCP segment (to the IP total length) of an Ethernet frame.
fn ipv4_tcp(frame: &[u8]) -> Option<(&[u8], &[u8])> {
    if frame.len() < 14 + 20 || frame[12..14] != [0x08, 0x00] {
        return None;
    }
    let ip = &frame[14..];
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
    if ip[0] >> 4 != 4 || ip[9] != 6 || ihl < 20 || total < ihl + 20 || total > ip.len() {
        return None;
    }
    Some((&ip[..ihl], &ip[ihl..total]))
}

/// `n` TLS-like connections to port 443: a handshake, a "ClientHello" and "ServerHello" sized
/// record each way, then 2 to 40 KB of opaque application data each way and a FIN close.
fn background_capture(n: u64, seed: u64) -> io::Result<Vec<u8>> {
    let mut wire = Wire::new(PcapWriter::new(Vec::new())?, 0);
    let mut rng = Rng::new(seed ^ 0xb4c6_9a0d);
    let mut data = Vec::new();
    for k in 0..n {
        let client = Host {
            mac: [0x02, 0x00, 0x5e, 0x30, (k >> 8) as u8, k as u8],
            ip: Ipv4Addr::new(203, 0, 113, 1 + (k % 250) as u8),
            port: 32768 + (k / 250 % 28000) as u16,
        };
        let server = Host {
            mac: [0x02, 0x00, 0x5e, 0x40, 0, 1],
            ip: Ipv4Addr::new(198, 18, 0, 1 + (k % 200) as u8),
            port: 443,
        };
        let mut s = Session::open(&mut wire, client, server, rng.next_u64() as u32, rng.next_u64() as u32)?;
        for (from, len) in [
            (From::Client, 517),
            (From::Server, 1400 + rng.below(3000) as usize),
            (From::Client, 2048 + rng.below(38 * 1024) as usize),
            (From::Server, 2048 + rng.below(38 * 1024) as usize),
        ] {
            data.resize(len, 0);
            rng.fill(&mut data);
            // A TLS record header, so anything that looks sees TLS.
            data[..3].copy_from_slice(&[0x17, 0x03, 0x03]);
            s.send(&mut wire, from, &data)?;
        }
        s.close(&mut wire, From::Client)?;
    }
    Ok(wire.pcap.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gen::{self, PlanOptions};

    fn sequential() -> Vec<u8> {
        let plan = gen::plan(&PlanOptions {
            http: 20,
            smtp: 5,
            ..PlanOptions::default()
        });
        gen::write(&plan, 3, Vec::new(), false).unwrap().1
    }

    fn per_flow(capture: &[u8]) -> HashMap<[u8; 12], Vec<Vec<u8>>> {
        let (_, frames) = pcap::parse(capture).unwrap();
        let mut m: HashMap<_, Vec<Vec<u8>>> = HashMap::new();
        for f in frames {
            m.entry(flow_key(f.data).unwrap()).or_default().push(f.data.to_vec());
        }
        m
    }

    #[test]
    fn concurrency_alone_keeps_each_flow_in_order() {
        let real = sequential();
        let opts = ShapeOptions {
            concurrent: 8,
            ..ShapeOptions::default()
        };
        let (packets, shaped) = shape(&real, &opts, 1, Vec::new()).unwrap();
        assert_eq!(packets, pcap::parse(&real).unwrap().1.len() as u64);
        assert_eq!(per_flow(&real), per_flow(&shaped));
        assert_ne!(real, shaped, "flows must interleave");
    }

    #[test]
    fn disorder_moves_and_copies_data_segments_only() {
        let real = sequential();
        let opts = ShapeOptions {
            concurrent: 4,
            reorder_permille: 100,
            retransmit_permille: 50,
            background: 3,
        };
        let (packets, shaped) = shape(&real, &opts, 9, Vec::new()).unwrap();
        let before = per_flow(&real);
        let after = per_flow(&shaped);
        assert_eq!(after.len(), before.len() + 3, "three background flows");
        let mut copies = 0;
        let mut moved = 0;
        for (key, frames) in &before {
            let shaped = &after[key];
            // Same multiset of frames but for the copies, which are data segments.
            let mut a = frames.clone();
            let mut b = shaped.clone();
            a.sort();
            b.sort();
            b.dedup_by(|x, y| {
                x == y && tcp_payload_len(x) > 0 && {
                    copies += 1;
                    true
                }
            });
            assert_eq!(a, b);
            moved += usize::from(frames != shaped);
        }
        assert!(copies > 0 && moved > 0, "copies {copies}, flows reordered {moved}");
        assert!(packets > pcap::parse(&real).unwrap().1.len() as u64);
    }

    #[test]
    fn default_options_keep_every_flow() {
        let real = sequential();
        let (_, shaped) = shape(&real, &ShapeOptions::default(), 1, Vec::new()).unwrap();
        assert_eq!(per_flow(&real), per_flow(&shaped));
    }
}
