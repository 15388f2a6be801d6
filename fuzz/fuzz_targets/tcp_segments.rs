//! Structure-aware: one HTTP download whose response is cut into segments at points the input
//! chooses, sent in an order it chooses, with duplicates and overlapping retransmissions of the
//! same bytes, from ISNs it chooses (wraparound anywhere), optionally chunked at sizes it chooses.
//! Differential oracle: whatever the segmentation, order and duplication, the engine carves the
//! body exactly (the hash of in-order delivery), with no byte missing, and keeps no flow memory
//! after `finish`.
#![no_main]

use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use sha2::{Digest, Sha256};
use xdpcarve_contract::{LinkType, Timestamp};
use xdpcarve_core::reassembly::OverlapPolicy;
use xdpcarve_core::wire::{Checksum, IpRepr, TcpRepr};
use xdpcarve_core::{Engine, EngineConfig};

const CLIENT: [u8; 4] = [10, 0, 0, 1];
const SERVER: [u8; 4] = [10, 0, 0, 2];
const SYN: u8 = 0x02;
const ACK: u8 = 0x10;
const PA: u8 = 0x18;
const FA: u8 = 0x11;

/// A frame of the download, checksums left zero (the engine takes them as offload).
fn frame(from_client: bool, seq: u32, ack: u32, flags: u8, payload: &[u8]) -> Vec<u8> {
    let (src, dst, sport, dport) = match from_client {
        true => (CLIENT, SERVER, 40_000u16, 80u16),
        false => (SERVER, CLIENT, 80, 40_000),
    };
    TcpRepr::new(sport, dport, seq, ack, flags, payload).emit_frame(&IpRepr::new(src, dst), Checksum::Zero)
}

/// A segment of the response: its range, and when it is sent (lower first).
struct Piece {
    start: usize,
    end: usize,
    when: u16,
}

struct Case {
    body: Vec<u8>,
    response: Vec<u8>,
    pieces: Vec<Piece>,
    cisn: u32,
    sisn: u32,
    overlap: OverlapPolicy,
}

fn case(u: &mut Unstructured<'_>) -> Result<Case> {
    let len = u.int_in_range(0..=32_768usize)?;
    let seed: u8 = u.arbitrary()?;
    let body: Vec<u8> = (0..len).map(|i| (i as u8).wrapping_mul(31) ^ seed).collect();
    let chunked: bool = u.arbitrary()?;
    let mut response = Vec::new();
    if chunked {
        response.extend_from_slice(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
        let mut rest = &body[..];
        while !rest.is_empty() {
            // Out of input: the rest in one piece (not thousands of one-byte ones).
            let n = match u.is_empty() {
                true => rest.len(),
                false => u.int_in_range(1..=4096usize)?.min(rest.len()),
            };
            response.extend_from_slice(format!("{n:x}\r\n").as_bytes());
            response.extend_from_slice(&rest[..n]);
            response.extend_from_slice(b"\r\n");
            rest = &rest[n..];
        }
        response.extend_from_slice(b"0\r\n\r\n");
    } else {
        response.extend_from_slice(format!("HTTP/1.1 200 OK\r\nContent-Length: {len}\r\n\r\n").as_bytes());
        response.extend_from_slice(&body);
    }
    // Cut points, then each piece once in a chosen order, plus retransmissions of any range.
    let mut pieces = Vec::new();
    let mut at = 0;
    while at < response.len() {
        let n = match u.is_empty() {
            true => response.len() - at,
            false => u.int_in_range(1..=3000usize)?.min(response.len() - at),
        };
        pieces.push(Piece {
            start: at,
            end: at + n,
            when: u.arbitrary()?,
        });
        at += n;
    }
    let extra = u.int_in_range(0..=16usize)?;
    for _ in 0..extra {
        if response.is_empty() {
            break;
        }
        let start = u.int_in_range(0..=response.len() - 1)?;
        let end = u.int_in_range(start + 1..=response.len().min(start + 3000))?;
        pieces.push(Piece {
            start,
            end,
            when: u.arbitrary()?,
        });
    }
    pieces.sort_by_key(|p| p.when);
    Ok(Case {
        body,
        response,
        pieces,
        cisn: u.arbitrary()?,
        sisn: u.arbitrary()?,
        overlap: if u.arbitrary()? {
            OverlapPolicy::Last
        } else {
            OverlapPolicy::First
        },
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(c) = case(&mut Unstructured::new(data)) else {
        return;
    };
    let mut e = Engine::new(EngineConfig {
        protocols: xdpcarve_protocols::registry(&Default::default()),
        max_flows: 16,
        memory: 16 << 20,
        hash_seed: Some(1),
        overlap: c.overlap,
        ..EngineConfig::default()
    });
    let request = b"GET /f HTTP/1.1\r\nHost: x\r\n\r\n";
    let mut t = 1_000_000_000u64;
    let mut send = |e: &mut Engine, f: Vec<u8>| {
        t += 1000;
        e.handle_packet(Timestamp(t), LinkType::Ethernet, &f);
    };
    let (c0, s0) = (c.cisn.wrapping_add(1), c.sisn.wrapping_add(1));
    let cend = c0.wrapping_add(request.len() as u32);
    let send_end = s0.wrapping_add(c.response.len() as u32);
    send(&mut e, frame(true, c.cisn, 0, SYN, b""));
    send(&mut e, frame(false, c.sisn, c0, SYN | ACK, b""));
    send(&mut e, frame(true, c0, s0, ACK, b""));
    send(&mut e, frame(true, c0, s0, PA, request));
    for p in &c.pieces {
        let seq = s0.wrapping_add(p.start as u32);
        send(&mut e, frame(false, seq, cend, PA, &c.response[p.start..p.end]));
    }
    send(&mut e, frame(true, cend, send_end, ACK, b""));
    send(&mut e, frame(false, send_end, cend, FA, b""));
    send(&mut e, frame(true, cend, send_end.wrapping_add(1), FA, b""));
    e.finish(Timestamp(t + 1));
    let recs: Vec<_> = e.drain_records().collect();
    let m = e.flow_memory();
    assert_eq!((m.connections, m.reassembly, m.parsers), (0, 0, 0), "{m:?}");
    if c.body.is_empty() {
        return;
    }
    assert_eq!(recs.len(), 1, "{recs:?}");
    let r = &recs[0];
    let want: String = Sha256::digest(&c.body).iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!((r.size, r.missing_bytes), (c.body.len() as u64, 0), "{r:?}");
    assert_eq!(r.sha256.as_deref(), Some(want.as_str()), "{r:?}");
});
