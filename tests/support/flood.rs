//! Flood captures for the end-to-end tests, as `xdpcarve-gen --syn-flood/--half-open` writes them
//! (built here so the tests do not need the generator): N connection attempts that never carry a
//! file, each from its own source address (100.64.0.0/10) and a random port and ISN to port 80,
//! with one real HTTP download interleaved in the middle of them.

use super::carve::{eth_ipv4, tcp, tcp_conversation, PSH_ACK, SYN};

/// What each flood flow sends.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Flood {
    /// One SYN, never answered.
    Syn,
    /// A SYN, then one request segment [`HALF_OPEN_REQUEST`], never answered.
    HalfOpen,
}

/// The request of a half-open flow.
pub const HALF_OPEN_REQUEST: &[u8] = b"GET /x HTTP/1.1\r\nHost: www.example.net\r\n\r\n";

/// Flows a half-open request trails its SYN by (so that many attempts are open at once).
pub const HALF_OPEN_LAG: u32 = 500;

/// The server port of the real download (the flood goes to port 80 too).
const PORT: u16 = 80;

/// splitmix64 of `x`: the flood's random numbers, the same on every run.
fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Flow `n`'s source address, port and ISN.
fn flow(n: u32) -> ([u8; 4], u16, u32) {
    assert!(n < 1 << 22, "one source address per flow in 100.64.0.0/10");
    let r = mix(n as u64);
    let ip = (u32::from_be_bytes([100, 64, 0, 0]) + n).to_be_bytes();
    (ip, 1024 + (r % (65536 - 1024)) as u16, (r >> 32) as u32)
}

/// A real download of `body` over its own connection (handshake, GET, response in 1448-byte
/// segments, FIN both ways), as frames.
pub fn download(body: &[u8]) -> Vec<Vec<u8>> {
    let mut resp = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    resp.extend_from_slice(body);
    let mut turns: Vec<(bool, &[u8])> = vec![(true, b"GET /real.bin HTTP/1.1\r\nHost: files.example.net\r\n\r\n")];
    turns.extend(resp.chunks(1448).map(|c| (false, c)));
    tcp_conversation(40000, PORT, &turns)
        .into_iter()
        .map(|(_, frame)| frame)
        .collect()
}

/// `flows` flood flows of `kind` to `server`'s port 80, in the order they are sent.
pub fn flood_frames(kind: Flood, flows: u32, server: [u8; 4]) -> Vec<Vec<u8>> {
    let syn = |n: u32| {
        let (ip, port, isn) = flow(n);
        eth_ipv4(ip, server, 6, &tcp(port, PORT, isn, 0, SYN, b""))
    };
    let request = |n: u32| {
        let (ip, port, isn) = flow(n);
        let ack = mix(!(n as u64)) as u32;
        eth_ipv4(
            ip,
            server,
            6,
            &tcp(port, PORT, isn.wrapping_add(1), ack, PSH_ACK, HALF_OPEN_REQUEST),
        )
    };
    match kind {
        Flood::Syn => (0..flows).map(syn).collect(),
        Flood::HalfOpen => {
            let mut frames = Vec::with_capacity(2 * flows as usize);
            for j in 0..flows + HALF_OPEN_LAG {
                if j < flows {
                    frames.push(syn(j));
                }
                if j >= HALF_OPEN_LAG && j - HALF_OPEN_LAG < flows {
                    frames.push(request(j - HALF_OPEN_LAG));
                }
            }
            frames
        }
    }
}

/// A capture of `flows` flood flows with the download of `body` in the middle of them: the
/// download's packets alternate with the flood's from the point that centres them, and every
/// packet is 1 µs after the one before (1 Mpps, the generator's default rate).
pub fn flood_capture(kind: Flood, flows: u32, body: &[u8]) -> Vec<(u64, Vec<u8>)> {
    let real = download(body);
    // tcp_conversation's server.
    let flood = flood_frames(kind, flows, [10, 0, 0, 2]);
    let start = flood.len().saturating_sub(real.len()) / 2;
    let mut frames = Vec::with_capacity(flood.len() + real.len());
    let mut real = real.into_iter();
    for (i, f) in flood.into_iter().enumerate() {
        frames.push(f);
        if i >= start {
            frames.extend(real.next());
        }
    }
    frames.extend(real);
    let t0 = 1_700_000_000_000_000u64;
    frames
        .into_iter()
        .enumerate()
        .map(|(i, f)| (t0 + i as u64, f))
        .collect()
}
