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
//! - Idle keep-alive connections: each flow is a complete HTTP/1.1 connection that then goes
//!   idle and stays open until the end of the capture: the handshake (SYN with MSS, SYN-ACK,
//!   ACK), one request (`GET /idle/<n> HTTP/1.1`), a `304 Not Modified` answer without a body
//!   (no file) and the client's ACK of it; no FIN, no RST. A flow's packets follow each other
//!   [`IDLE_LAG`] flows apart, so that many flows are in their handshake at once.
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

/// Flows each packet of an idle keep-alive flow trails the flow's previous packet by.
pub const IDLE_LAG: u64 = 500;

/// Packets of an idle keep-alive flow: SYN, SYN-ACK, ACK, request, response, ACK.
const IDLE_PACKETS: u64 = 6;

/// The flood to add to a capture.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FloodOptions {
    /// SYN-only flows.
    pub syn: u64,
    /// Flows of a SYN and one unanswered HTTP request.
    pub half_open: u64,
    /// Complete HTTP/1.1 keep-alive connections (one request, a 304 answer) that stay open, idle.
    pub idle_keepalive: u64,
    /// Flood packets per second of capture time.
    pub pps: u64,
}

impl Default for FloodOptions {
    fn default() -> Self {
        FloodOptions {
            syn: 0,
            half_open: 0,
            idle_keepalive: 0,
            pps: 1_000_000,
        }
    }
}

/// Source addresses: 100.64.0.0/10 (shared address space), one per flood flow.
const SOURCES: u64 = 1 << 22;

impl FloodOptions {
    pub fn is_empty(&self) -> bool {
        self.syn == 0 && self.half_open == 0 && self.idle_keepalive == 0
    }
    /// Flood packets in all: one per SYN-only flow, two per half-open one, six per idle keep-alive
    /// one.
    pub fn packets(&self) -> u64 {
        self.syn + 2 * self.half_open + IDLE_PACKETS * self.idle_keepalive
    }
    /// Checks the options can be generated: every flow gets its own source address.
    pub fn check(&self) -> Result<(), String> {
        if self.pps == 0 {
            return Err("the flood rate must be at least 1 packet/s".into());
        }
        match self
            .syn
            .checked_add(self.half_open)
            .and_then(|n| n.checked_add(self.idle_keepalive))
        {
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

/// The request of idle keep-alive flow `n` (numbered from 0 among the idle flows) is
/// `IDLE_REQUEST_HEAD`, `n` in decimal, `IDLE_REQUEST_TAIL` (the host is [`TARGET`]'s address).
const IDLE_REQUEST_HEAD: &str = "GET /idle/";
const IDLE_REQUEST_TAIL: &str = " HTTP/1.1\r\nHost: 198.51.100.10\r\nUser-Agent: xdpcarve-gen\r\n\r\n";

/// The request of idle keep-alive flow `n`, into `out`.
fn idle_request(out: &mut Vec<u8>, n: u64) {
    out.clear();
    out.extend_from_slice(IDLE_REQUEST_HEAD.as_bytes());
    write!(out, "{n}").expect("writing to a Vec");
    out.extend_from_slice(IDLE_REQUEST_TAIL.as_bytes());
    debug_assert_eq!(out.len() as u32, idle_request_len(n));
}

/// The length of idle keep-alive flow `n`'s request (the sequence numbers it takes).
fn idle_request_len(n: u64) -> u32 {
    let digits = n.checked_ilog10().map_or(1, |d| d + 1);
    (IDLE_REQUEST_HEAD.len() + IDLE_REQUEST_TAIL.len()) as u32 + digits
}

/// The answer to an idle keep-alive flow's request: no body, the connection kept open.
const RESPONSE_HEAD: &str = "HTTP/1.1 304 Not Modified\r\nDate: ";
const RESPONSE_TAIL: &str = "\r\nConnection: keep-alive\r\n\r\n";
/// An IMF-fixdate (`Sun, 23 Nov 2025 12:00:00 GMT`) is always this long for the years a u64 of
/// nanoseconds since 1970 reaches.
const DATE_LEN: usize = 29;
const RESPONSE_LEN: u32 = (RESPONSE_HEAD.len() + DATE_LEN + RESPONSE_TAIL.len()) as u32;

/// The 304 answer sent at `ts_nanos`, into `out`.
fn idle_response(out: &mut Vec<u8>, ts_nanos: u64) {
    out.clear();
    out.extend_from_slice(RESPONSE_HEAD.as_bytes());
    http_date(out, ts_nanos / 1_000_000_000);
    out.extend_from_slice(RESPONSE_TAIL.as_bytes());
    debug_assert_eq!(out.len(), RESPONSE_LEN as usize);
}

/// Appends `secs` after the epoch as an HTTP date (IMF-fixdate, RFC 9110 5.6.7).
fn http_date(out: &mut Vec<u8>, secs: u64) {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let (days, rest) = (secs / 86_400, secs % 86_400);
    // Civil date of a day number (H. Hinnant's `civil_from_days`), days counted from 0000-03-01.
    let z = days + 719_468;
    let (era, doe) = (z / 146_097, z % 146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = era * 400 + yoe + u64::from(month <= 2);
    write!(
        out,
        "{}, {day:02} {} {year:04} {:02}:{:02}:{:02} GMT",
        DAYS[(days % 7) as usize],
        MONTHS[(month - 1) as usize],
        rest / 3600,
        rest / 60 % 60,
        rest % 60
    )
    .expect("writing to a Vec");
}

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
    /// Capture time of packet 0 (packet `k` is sent `opts.nanos_of(k)` later).
    start: u64,
    /// Idle keep-alive flows: the step of their sequence, and the packet to try next in it.
    idle_step: u64,
    idle_packet: u64,
    /// Scratch for a request or response payload.
    payload: Vec<u8>,
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
        if k >= self.half_start + 2 * self.opts.half_open {
            self.next_idle(buf, k);
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

    /// Writes the next packet of the idle keep-alive flows, packet `k` of the flood. Step `s` of
    /// their sequence sends packet `p` (0 to 5) of flow `s - p * lag`, for each `p` that names a
    /// flow: flow `i` opens at step `i` and sends its last packet at step `i + 5 * lag`, so that
    /// in the steady state `lag` flows wait for each packet of their exchange.
    fn next_idle(&mut self, buf: &mut Vec<u8>, k: u64) {
        let n = self.opts.idle_keepalive;
        let lag = IDLE_LAG.min(n);
        loop {
            if self.idle_packet == IDLE_PACKETS {
                self.idle_step += 1;
                self.idle_packet = 0;
            }
            let p = self.idle_packet;
            self.idle_packet += 1;
            if let Some(i) = self.idle_step.checked_sub(p * lag).filter(|&i| i < n) {
                return self.idle(buf, i, p, self.start + self.opts.nanos_of(k));
            }
        }
    }

    /// Writes packet `p` of idle keep-alive flow `i`, sent at `ts_nanos`.
    fn idle(&mut self, buf: &mut Vec<u8>, i: u64, p: u64, ts_nanos: u64) {
        // Flow numbers (and so source addresses, see [`flow`]) after the SYN-only and the
        // half-open flows': no two flood flows share a source.
        let f = flow(self.seed, self.opts.syn + self.opts.half_open + i);
        let ip_id_server = (f.isn_server >> 16) as u16;
        // Next sequence numbers after the SYNs, and the client's after its request.
        let (c1, s1) = (f.isn.wrapping_add(1), f.isn_server.wrapping_add(1));
        let c2 = c1.wrapping_add(idle_request_len(i));
        let payload = &mut self.payload;
        match p {
            0 => build_frame(buf, f.client, TARGET, f.isn, 0, SYN, f.ip_id, Some(1460), &[]),
            1 => build_frame(
                buf,
                TARGET,
                f.client,
                f.isn_server,
                c1,
                SYN | ACK,
                ip_id_server,
                Some(1460),
                &[],
            ),
            2 => build_frame(buf, f.client, TARGET, c1, s1, ACK, f.ip_id.wrapping_add(1), None, &[]),
            3 => {
                idle_request(payload, i);
                build_frame(
                    buf,
                    f.client,
                    TARGET,
                    c1,
                    s1,
                    ACK | PSH,
                    f.ip_id.wrapping_add(2),
                    None,
                    payload,
                );
            }
            4 => {
                idle_response(payload, ts_nanos);
                build_frame(
                    buf,
                    TARGET,
                    f.client,
                    s1,
                    c2,
                    ACK | PSH,
                    ip_id_server.wrapping_add(1),
                    None,
                    payload,
                );
            }
            _ => build_frame(
                buf,
                f.client,
                TARGET,
                c2,
                s1.wrapping_add(RESPONSE_LEN),
                ACK,
                f.ip_id.wrapping_add(3),
                None,
                &[],
            ),
        }
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
        start: flood_start,
        idle_step: 0,
        idle_packet: 0,
        payload: Vec::with_capacity(128),
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
    generated.manifest.idle_keepalive = opts.idle_keepalive;
    Ok((generated, w.into_inner()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gen::{self, HttpStyle, PlanOptions};
    use std::collections::{HashMap, HashSet};

    struct Seg {
        ts: u64,
        src: ([u8; 4], u16),
        dst: ([u8; 4], u16),
        flags: u8,
        seq: u32,
        ack: u32,
        options: Vec<u8>,
        payload: Vec<u8>,
    }

    /// The one's complement sum of `data` (16-bit words), folded: 0xffff over a valid header.
    fn sum16(words: &[&[u8]]) -> u16 {
        let mut sum: u32 = 0;
        for data in words {
            for c in data.chunks(2) {
                sum += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
            }
        }
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        sum as u16
    }

    /// The TCP segments of a capture, their IPv4 and TCP checksums checked.
    fn segments(buf: &[u8]) -> Vec<Seg> {
        let (_, frames) = pcap::parse(buf).unwrap();
        frames
            .iter()
            .map(|f| {
                let ip = &f.data[14..];
                let tcp = &ip[20..];
                assert_eq!(sum16(&[&ip[..20]]), 0xffff, "IPv4 checksum");
                let pseudo = [&[0, 6][..], &(tcp.len() as u16).to_be_bytes()[..]].concat();
                assert_eq!(sum16(&[&ip[12..20], &pseudo, tcp]), 0xffff, "TCP checksum");
                let off = ((tcp[12] >> 4) as usize) * 4;
                let addr = |at: usize| ip[at..at + 4].try_into().unwrap();
                Seg {
                    ts: f.ts_nanos,
                    src: (addr(12), u16::from_be_bytes([tcp[0], tcp[1]])),
                    dst: (addr(16), u16::from_be_bytes([tcp[2], tcp[3]])),
                    flags: tcp[13],
                    seq: u32::from_be_bytes(tcp[4..8].try_into().unwrap()),
                    ack: u32::from_be_bytes(tcp[8..12].try_into().unwrap()),
                    options: tcp[20..off].to_vec(),
                    payload: tcp[off..].to_vec(),
                }
            })
            .collect()
    }

    /// Whether a segment belongs to a flood flow (its client is in 100.64.0.0/10).
    fn is_flood(s: &Seg) -> bool {
        s.src.0[0] == 100 || s.dst.0[0] == 100
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
            .all(|s| s.flags == SYN && s.dst.1 == 80 && s.payload.is_empty()));
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
            idle_keepalive: 0,
            pps: 500_000,
        };
        let (g, out, _) = flooded(&opts);
        assert_eq!((g.manifest.syn_flood, g.manifest.half_open), (10, 3_000));
        let segs = segments(&out);
        let flood: Vec<&Seg> = segs.iter().filter(|s| s.src.0[0] == 100).collect();
        assert_eq!(flood.len(), 10 + 2 * 3_000);
        let mut syn_at = HashMap::new();
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

    const SERVER: ([u8; 4], u16) = ([198, 51, 100, 10], 80);

    /// Checks the packets of one idle keep-alive flow, in capture order, and returns the number
    /// its request carries.
    fn check_idle_flow(pkts: &[&Seg]) -> u64 {
        let flags: Vec<u8> = pkts.iter().map(|s| s.flags).collect();
        assert_eq!(
            flags,
            [SYN, SYN | ACK, ACK, ACK | PSH, ACK | PSH, ACK],
            "no FIN, no RST"
        );
        let [syn, syn_ack, ack, req, resp, last] = pkts else {
            unreachable!("six packets")
        };
        let client = syn.src;
        assert_eq!(client.0[..2], [100, 64]);
        for s in [syn, ack, req, last] {
            assert_eq!((s.src, s.dst), (client, SERVER));
        }
        for s in [syn_ack, resp] {
            assert_eq!((s.src, s.dst), (SERVER, client));
        }
        assert!(pkts.windows(2).all(|w| w[0].ts < w[1].ts));
        // MSS 1460 on both SYNs, no options on the rest.
        for s in [syn, syn_ack] {
            assert_eq!(s.options, [2, 4, 0x05, 0xb4]);
        }
        assert!([ack, req, resp, last].iter().all(|s| s.options.is_empty()));
        assert!([syn, syn_ack, ack, last].iter().all(|s| s.payload.is_empty()));

        let (isn, isn_server) = (syn.seq, syn_ack.seq);
        let text = std::str::from_utf8(&req.payload).unwrap();
        let n: u64 = text
            .strip_prefix("GET /idle/")
            .and_then(|t| t.split_once(' '))
            .and_then(|(n, _)| n.parse().ok())
            .unwrap_or_else(|| panic!("request {text:?}"));
        let request = format!("GET /idle/{n} HTTP/1.1\r\nHost: 198.51.100.10\r\nUser-Agent: xdpcarve-gen\r\n\r\n");
        assert_eq!(text, request);
        let mut date = Vec::new();
        http_date(&mut date, resp.ts / 1_000_000_000);
        let response = [
            &b"HTTP/1.1 304 Not Modified\r\nDate: "[..],
            &date,
            b"\r\nConnection: keep-alive\r\n\r\n",
        ]
        .concat();
        assert_eq!(resp.payload, response);
        // The SYNs take one sequence number each, the request and the response their length.
        let (req_len, resp_len) = (request.len() as u32, response.len() as u32);
        assert_eq!(syn.ack, 0);
        assert_eq!(syn_ack.ack, isn.wrapping_add(1));
        assert_eq!((ack.seq, ack.ack), (isn.wrapping_add(1), isn_server.wrapping_add(1)));
        assert_eq!((req.seq, req.ack), (isn.wrapping_add(1), isn_server.wrapping_add(1)));
        assert_eq!(
            (resp.seq, resp.ack),
            (isn_server.wrapping_add(1), isn.wrapping_add(1 + req_len))
        );
        assert_eq!(
            (last.seq, last.ack),
            (isn.wrapping_add(1 + req_len), isn_server.wrapping_add(1 + resp_len))
        );
        n
    }

    /// The flood flows of `segs` by client (address, port), each with its packets in order.
    fn flood_flows(segs: &[Seg]) -> HashMap<([u8; 4], u16), Vec<&Seg>> {
        let mut flows: HashMap<_, Vec<&Seg>> = HashMap::new();
        for s in segs.iter().filter(|s| is_flood(s)) {
            let client = if s.src.0[0] == 100 { s.src } else { s.dst };
            flows.entry(client).or_default().push(s);
        }
        flows
    }

    #[test]
    fn idle_keepalive_flows_are_complete_connections_that_stay_open() {
        let opts = FloodOptions {
            idle_keepalive: 3,
            ..FloodOptions::default()
        };
        // As `xdpcarve-gen --idle-keepalive 3` writes it: no real transfer.
        let (g, out) = gen::write_flooded(&[], 9, &opts, Vec::new(), false).unwrap();
        assert_eq!(g.manifest.packets, 18);
        assert_eq!(g.manifest.idle_keepalive, 3);
        assert_eq!((g.manifest.syn_flood, g.manifest.half_open), (0, 0));
        assert!(g.manifest.files.is_empty(), "a 304 carries no file");
        let segs = segments(&out);
        assert_eq!(segs.len(), 18);
        assert!(segs.iter().all(is_flood));
        assert!(segs.windows(2).all(|w| w[1].ts - w[0].ts == 1_000), "1 Mpps");
        let flows = flood_flows(&segs);
        assert_eq!(flows.len(), 3);
        let mut numbers: Vec<u64> = flows.values().map(|f| check_idle_flow(f)).collect();
        numbers.sort_unstable();
        assert_eq!(numbers, [0, 1, 2]);
        // Fewer flows than the lag: all SYNs, then all SYN-ACKs, and so on.
        let flags: Vec<u8> = segs.iter().map(|s| s.flags).collect();
        assert_eq!(flags[..6], [SYN, SYN, SYN, SYN | ACK, SYN | ACK, SYN | ACK]);
        let json = serde_json::to_string(&g.manifest).unwrap();
        assert!(
            json.contains("\"idle_keepalive\":3") && !json.contains("syn_flood"),
            "{json}"
        );
    }

    #[test]
    fn idle_flows_overlap_and_never_share_a_source_with_the_other_floods() {
        let opts = FloodOptions {
            syn: 300,
            half_open: 400,
            idle_keepalive: 2_000,
            pps: 1_000_000,
        };
        let (g, out, real) = flooded(&opts);
        assert_eq!(
            (g.manifest.syn_flood, g.manifest.half_open, g.manifest.idle_keepalive),
            (300, 400, 2_000)
        );
        let segs = segments(&out);
        let real_packets = pcap::parse(&real).unwrap().1.len() as u64;
        assert_eq!(g.manifest.packets, real_packets + 300 + 2 * 400 + 6 * 2_000);
        assert_eq!(opts.packets(), 300 + 2 * 400 + 6 * 2_000);
        assert!(segs.windows(2).all(|w| w[0].ts <= w[1].ts), "in time order");
        let flows = flood_flows(&segs);
        // One client (address and port) per flow, and one address per flow too.
        assert_eq!(flows.len(), 300 + 400 + 2_000);
        let addresses: HashSet<[u8; 4]> = flows.keys().map(|c| c.0).collect();
        assert_eq!(addresses.len(), flows.len());
        let mut idle = 0;
        let mut numbers = HashSet::new();
        for pkts in flows.values() {
            match pkts.len() {
                1 => assert_eq!(pkts[0].flags, SYN),
                2 => assert_eq!((pkts[0].flags, pkts[1].flags), (SYN, ACK | PSH)),
                _ => {
                    assert!(numbers.insert(check_idle_flow(pkts)));
                    idle += 1;
                }
            }
        }
        assert_eq!(idle, 2_000);
        assert_eq!(numbers, (0..2_000).collect());
        // Many flows in their handshake at once: between their SYN and their ACK of the SYN-ACK.
        let mut seen: HashMap<([u8; 4], u16), u32> = HashMap::new();
        let (mut in_handshake, mut most) = (0i64, 0);
        for s in segs.iter().filter(|s| is_flood(s)) {
            let client = if s.src.0[0] == 100 { s.src } else { s.dst };
            let k = seen.entry(client).or_default();
            *k += 1;
            if flows[&client].len() == 6 {
                match *k {
                    1 => in_handshake += 1,
                    3 => in_handshake -= 1,
                    _ => {}
                }
                most = most.max(in_handshake);
            }
        }
        assert_eq!(in_handshake, 0);
        assert!(most >= IDLE_LAG as i64, "{most} flows in their handshake at most");
    }

    #[test]
    fn idle_flows_count_towards_the_source_addresses() {
        let opts = |syn, half_open, idle_keepalive| FloodOptions {
            syn,
            half_open,
            idle_keepalive,
            ..FloodOptions::default()
        };
        assert!(opts(0, 0, SOURCES).check().is_ok());
        assert!(opts(SOURCES - 2, 1, 1).check().is_ok());
        assert!(opts(SOURCES - 1, 1, 1).check().is_err());
        assert!(opts(0, 1, u64::MAX).check().is_err());
        assert!(!opts(0, 0, 1).is_empty());
        assert_eq!(opts(1, 2, 3).packets(), 1 + 4 + 18);
    }

    #[test]
    fn http_dates_and_request_lengths() {
        let date = |secs| {
            let mut out = Vec::new();
            http_date(&mut out, secs);
            String::from_utf8(out).unwrap()
        };
        assert_eq!(date(START_NANOS / 1_000_000_000), "Sun, 23 Nov 2025 12:00:00 GMT");
        assert_eq!(date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(date(951_825_599), "Tue, 29 Feb 2000 11:59:59 GMT");
        assert_eq!(date(1_709_251_199), "Thu, 29 Feb 2024 23:59:59 GMT");
        assert_eq!(date(u64::MAX / 1_000_000_000).len(), DATE_LEN);
        let mut request = Vec::new();
        for n in [0, 9, 10, 99, 100, 123_456, 4_194_303] {
            idle_request(&mut request, n);
            assert_eq!(request.len() as u32, idle_request_len(n), "{n}");
        }
        assert_eq!(&request[..22], b"GET /idle/4194303 HTTP");
        assert!(IDLE_REQUEST_TAIL.contains(&format!("Host: {}\r\n", TARGET.ip)));
        idle_response(&mut request, START_NANOS);
        assert_eq!(request.len(), RESPONSE_LEN as usize);
    }
}
