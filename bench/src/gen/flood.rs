//! Flood traffic around the real transfers: connection attempts that never carry a file, as an
//! attacker (or a broken client fleet) puts them on the wire, for checking that a sensor's state
//! per attempt stays small and that the real files are still carved.
//!
//! - SYN flood: each flow is one SYN (MSS option, random ISN and IP id) from its own source
//!   address and a random source port to port 80 of the server the real downloads come from.
//! - Half-open HTTP requests: each flow is a SYN, then one request segment
//!   (`GET /x HTTP/1.1\r\nHost: ...\r\n\r\n`) that the server never answers (no SYN-ACK either).
//!   A flow's request follows its SYN [`HALF_OPEN_LAG`] flows later, so that many attempts are
//!   open at once, as they are in a real flood.
//!
//! Flood packets are sent at a fixed rate of capture time; the real transfers are moved so that
//! they sit in the middle of the flood (the flood in the middle of them, when they last longer).

use std::io::{self, Write};
use std::net::Ipv4Addr;

use super::content::Rng;
use super::tcp::{build_frame, Host, ACK, PSH, SYN};
use super::{Generated, START_NANOS};
use crate::pcap::{self, PcapWriter};

/// Flows a half-open request trails its SYN by.
pub const HALF_OPEN_LAG: u64 = 500;

/// The flood to add to a capture.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FloodOptions {
    /// SYN-only flows.
    pub syn: u64,
    /// Flows of a SYN and one unanswered HTTP request.
    pub half_open: u64,
    /// Flood packets per second of capture time.
    pub pps: u64,
}

impl Default for FloodOptions {
    fn default() -> Self {
        FloodOptions {
            syn: 0,
            half_open: 0,
            pps: 1_000_000,
        }
    }
}

/// Source addresses: 100.64.0.0/10 (shared address space), one per flood flow.
const SOURCES: u64 = 1 << 22;

impl FloodOptions {
    pub fn is_empty(&self) -> bool {
        self.syn == 0 && self.half_open == 0
    }
    /// Flood packets in all: one per SYN-only flow, two per half-open one.
    pub fn packets(&self) -> u64 {
        self.syn + 2 * self.half_open
    }
    /// Checks the options can be generated: every flow gets its own source address.
    pub fn check(&self) -> Result<(), String> {
        if self.pps == 0 {
            return Err("the flood rate must be at least 1 packet/s".into());
        }
        match self.syn.checked_add(self.half_open) {
            Some(n) if n <= SOURCES => Ok(()),
            _ => Err(format!(
                "at most {SOURCES} flood flows in all (one source address each)"
            )),
        }
    }
    /// Capture time the flood spans.
    fn span_nanos(&self) -> u64 {
        self.nanos_of(self.packets())
    }
    /// Time of flood packet `k` after the flood's start.
    fn nanos_of(&self, k: u64) -> u64 {
        (k as u128 * 1_000_000_000 / self.pps as u128) as u64
    }
}

/// The server every flood flow goes to (the first server of the real conversations).
const TARGET: Host = Host {
    mac: [0x02, 0x00, 0x5e, 0x20, 0, 1],
    ip: Ipv4Addr::new(198, 51, 100, 10),
    port: 80,
};

/// The request a half-open flow sends.
const REQUEST: &[u8] = b"GET /x HTTP/1.1\r\nHost: www.example.net\r\n\r\n";

/// One flood flow: its source and the random numbers its packets carry.
#[derive(Copy, Clone)]
struct Flow {
    client: Host,
    isn: u32,
    isn_server: u32,
    ip_id: u16,
}

fn flow(seed: u64, n: u64) -> Flow {
    let mut rng = Rng::new(seed.wrapping_mul(0x2545_f491_4f6c_dd1d) ^ n.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0xf100d);
    let r = rng.next_u64();
    let ip = u32::from(Ipv4Addr::new(100, 64, 0, 0)) + (n % SOURCES) as u32;
    let [_, b, c, d] = ip.to_be_bytes();
    Flow {
        client: Host {
            mac: [0x02, 0x00, 0x5e, 0x30 | (b & 0x0f), c, d],
            ip: Ipv4Addr::from(ip),
            port: 1024 + (r % (65536 - 1024)) as u16,
        },
        isn: (r >> 16) as u32,
        isn_server: rng.next_u64() as u32,
        ip_id: (r >> 48) as u16,
    }
}

/// The flood's packets in order, built one at a time.
struct FloodPackets<'a> {
    opts: &'a FloodOptions,
    seed: u64,
    /// Next packet number.
    k: u64,
    /// Where the half-open sequence starts (after the SYN-only flows).
    half_start: u64,
}

impl FloodPackets<'_> {
    /// Writes packet `self.k` into `buf` and moves on; false when the flood is over.
    fn next(&mut self, buf: &mut Vec<u8>) -> bool {
        let k = self.k;
        if k >= self.opts.packets() {
            return false;
        }
        self.k += 1;
        if k < self.opts.syn {
            let f = flow(self.seed, k);
            build_frame(buf, f.client, TARGET, f.isn, 0, SYN, f.ip_id, Some(1460), &[]);
            return true;
        }
        // Half-open flows: step j of the sequence sends flow j's SYN, then the request of flow
        // j - LAG; once every SYN is out, the remaining requests.
        let (n, lag) = (self.opts.half_open, HALF_OPEN_LAG.min(self.opts.half_open));
        let i = k - self.half_start;
        let both = 2 * (n - lag);
        let (syn_of, request_of) = if i < lag {
            (Some(i), None)
        } else if i < lag + both {
            let j = (i - lag) / 2;
            if (i - lag) % 2 == 0 {
                (Some(lag + j), None)
            } else {
                (None, Some(j))
            }
        } else {
            (None, Some(n - lag + (i - lag - both)))
        };
        if let Some(j) = syn_of {
            let f = flow(self.seed, self.opts.syn + j);
            build_frame(buf, f.client, TARGET, f.isn, 0, SYN, f.ip_id, Some(1460), &[]);
        } else if let Some(j) = request_of {
            let f = flow(self.seed, self.opts.syn + j);
            let (seq, ack) = (f.isn.wrapping_add(1), f.isn_server.wrapping_add(1));
            build_frame(
                buf,
                f.client,
                TARGET,
                seq,
                ack,
                ACK | PSH,
                f.ip_id.wrapping_add(1),
                None,
                REQUEST,
            );
        }
        true
    }
}

/// Writes `real` (a capture [`super::write`] produced) with the flood merged in by timestamp:
/// the real transfers moved to the middle of the flood, or the flood to the middle of them.
/// Returns the manifest with the packet count and the flood's size filled in.
pub fn merge<W: Write>(
    real: &[u8],
    mut generated: Generated,
    opts: &FloodOptions,
    seed: u64,
    out: W,
) -> io::Result<(Generated, W)> {
    opts.check().map_err(io::Error::other)?;
    let (_, frames) = pcap::parse(real).map_err(io::Error::other)?;
    let first = frames.first().map_or(START_NANOS, |f| f.ts_nanos);
    let real_span = frames.last().map_or(0, |f| f.ts_nanos - first);
    let flood_span = opts.span_nanos();
    let span = real_span.max(flood_span);
    let real_start = first + (span - real_span) / 2;
    let flood_start = first + (span - flood_span) / 2;

    let mut w = PcapWriter::new(out)?;
    let mut flood = FloodPackets {
        opts,
        seed,
        k: 0,
        half_start: opts.syn,
    };
    let mut buf = Vec::with_capacity(128);
    let mut pending = flood.next(&mut buf);
    let mut flood_ts = flood_start;
    for f in &frames {
        let ts = f.ts_nanos - first + real_start;
        while pending && flood_ts < ts {
            w.write_frame(flood_ts, &buf)?;
            flood_ts = flood_start + opts.nanos_of(flood.k);
            pending = flood.next(&mut buf);
        }
        w.write_frame(ts, f.data)?;
    }
    while pending {
        w.write_frame(flood_ts, &buf)?;
        flood_ts = flood_start + opts.nanos_of(flood.k);
        pending = flood.next(&mut buf);
    }
    generated.manifest.packets = w.packets();
    generated.manifest.syn_flood = opts.syn;
    generated.manifest.half_open = opts.half_open;
    Ok((generated, w.into_inner()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gen::{self, HttpStyle, PlanOptions};
    use std::collections::HashSet;

    struct Seg {
        ts: u64,
        src: ([u8; 4], u16),
        dst_port: u16,
        flags: u8,
        seq: u32,
        payload: Vec<u8>,
    }

    fn segments(buf: &[u8]) -> Vec<Seg> {
        let (_, frames) = pcap::parse(buf).unwrap();
        frames
            .iter()
            .map(|f| {
                let ip = &f.data[14..];
                let tcp = &ip[20..];
                let off = ((tcp[12] >> 4) as usize) * 4;
                Seg {
                    ts: f.ts_nanos,
                    src: (ip[12..16].try_into().unwrap(), u16::from_be_bytes([tcp[0], tcp[1]])),
                    dst_port: u16::from_be_bytes([tcp[2], tcp[3]]),
                    flags: tcp[13],
                    seq: u32::from_be_bytes(tcp[4..8].try_into().unwrap()),
                    payload: tcp[off..].to_vec(),
                }
            })
            .collect()
    }

    fn flooded(opts: &FloodOptions) -> (Generated, Vec<u8>, Vec<u8>) {
        let plan = gen::plan(&PlanOptions {
            http: 1,
            sizes: vec![100_000],
            http_styles: vec![HttpStyle::Length],
            seed: 5,
            ..PlanOptions::default()
        });
        let (g, real) = gen::write(&plan, 5, Vec::new(), false).unwrap();
        let (g, out) = merge(&real, g, opts, 5, Vec::new()).unwrap();
        (g, out, real)
    }

    #[test]
    fn syn_flood_surrounds_the_real_download() {
        let opts = FloodOptions {
            syn: 20_000,
            ..FloodOptions::default()
        };
        let (g, out, real) = flooded(&opts);
        let segs = segments(&out);
        let real_packets = pcap::parse(&real).unwrap().1.len() as u64;
        assert_eq!(g.manifest.packets, real_packets + 20_000);
        assert_eq!(segs.len() as u64, g.manifest.packets);
        assert!(segs.windows(2).all(|w| w[0].ts <= w[1].ts), "in time order");
        let flood: Vec<&Seg> = segs.iter().filter(|s| s.src.0[0] == 100).collect();
        assert_eq!(flood.len(), 20_000);
        assert!(flood
            .iter()
            .all(|s| s.flags == SYN && s.dst_port == 80 && s.payload.is_empty()));
        let sources: HashSet<_> = flood.iter().map(|s| s.src).collect();
        assert_eq!(sources.len(), 20_000, "one flow per SYN");
        let isns: HashSet<_> = flood.iter().map(|s| s.seq).collect();
        assert!(isns.len() > 19_900, "random ISNs");
        // 1 Mpps: 20 ms of flood, the download in the middle of it.
        let (t0, t1) = (flood[0].ts, flood[flood.len() - 1].ts);
        assert_eq!(t1 - t0, 19_999_000);
        let real_ts: Vec<u64> = segs.iter().filter(|s| s.src.0[0] != 100).map(|s| s.ts).collect();
        let mid = (real_ts[0] + real_ts[real_ts.len() - 1]) / 2;
        assert!(mid.abs_diff((t0 + t1) / 2) < 1_000_000, "centred");
        // The real packets keep their order and content.
        let real_segs = segments(&real);
        let moved: Vec<&Seg> = segs.iter().filter(|s| s.src.0[0] != 100).collect();
        assert_eq!(moved.len(), real_segs.len());
        assert!(moved
            .iter()
            .zip(&real_segs)
            .all(|(a, b)| a.payload == b.payload && a.seq == b.seq));
    }

    #[test]
    fn half_open_flows_send_a_syn_then_one_request() {
        let opts = FloodOptions {
            half_open: 3_000,
            syn: 10,
            pps: 500_000,
        };
        let (g, out, _) = flooded(&opts);
        assert_eq!((g.manifest.syn_flood, g.manifest.half_open), (10, 3_000));
        let segs = segments(&out);
        let flood: Vec<&Seg> = segs.iter().filter(|s| s.src.0[0] == 100).collect();
        assert_eq!(flood.len(), 10 + 2 * 3_000);
        let mut syn_at = std::collections::HashMap::new();
        let mut requests = 0;
        for (i, s) in flood.iter().enumerate() {
            if s.flags == SYN {
                assert!(syn_at.insert(s.src, (i, s.seq)).is_none(), "one SYN per flow");
            } else {
                assert_eq!(s.flags, ACK | PSH);
                assert_eq!(s.payload, REQUEST);
                let (at, isn) = syn_at[&s.src];
                assert!(at < i, "the SYN comes first");
                assert_eq!(s.seq, isn.wrapping_add(1));
                requests += 1;
            }
        }
        assert_eq!(requests, 3_000);
        assert_eq!(syn_at.len(), 3_010);
        // 500 kpps: 2 µs apart.
        assert_eq!(flood[1].ts - flood[0].ts, 2_000);
    }

    #[test]
    fn a_short_flood_sits_inside_a_long_transfer_and_sizes_are_checked() {
        let (_, out, real) = flooded(&FloodOptions {
            syn: 3,
            ..FloodOptions::default()
        });
        let segs = segments(&out);
        let real_segs = segments(&real);
        assert_eq!(segs[0].ts, real_segs[0].ts, "the real transfer keeps its start");
        assert!(segs[0].src.0[0] != 100 && segs[segs.len() - 1].src.0[0] != 100);
        assert!(FloodOptions {
            syn: SOURCES,
            half_open: 1,
            ..FloodOptions::default()
        }
        .check()
        .is_err());
        assert!(FloodOptions {
            syn: 1,
            pps: 0,
            ..FloodOptions::default()
        }
        .check()
        .is_err());
    }
}
