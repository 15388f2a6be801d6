//! Frames of any link type into one engine running HTTP and SMTP (the real path of `-r` and of
//! a live worker): wire parsing, TCP reassembly, the parsers, decoders and hashing. The input is
//! a sequence of `[link type][u16 length][frame]`; small bounds make eviction paths reachable.
//! No panic, and the heap stays bounded; after `finish` no flow memory is left.
#![no_main]

use libfuzzer_sys::fuzz_target;
use peak_alloc::PeakAlloc;
use xdpcarve_contract::{LinkType, Timestamp};
use xdpcarve_core::reassembly::OverlapPolicy;
use xdpcarve_core::{Engine, EngineConfig};

#[global_allocator]
static HEAP: PeakAlloc = PeakAlloc;

const LINKS: [LinkType; 4] = [LinkType::Ethernet, LinkType::Raw, LinkType::LinuxSll, LinkType::Null];

fuzz_target!(|data: &[u8]| {
    let before = HEAP.current_usage();
    HEAP.reset_peak_usage();
    let mut e = Engine::new(EngineConfig {
        protocols: xdpcarve_protocols::registry(&Default::default()),
        max_flows: 64,
        memory: 8 << 20,
        hash_seed: Some(1),
        // Both overlap policies, without changing what the inputs mean.
        overlap: match data.len() % 2 {
            0 => OverlapPolicy::First,
            _ => OverlapPolicy::Last,
        },
        ..EngineConfig::default()
    });
    let mut rest = data;
    let mut t = 1_000_000_000u64;
    while rest.len() >= 3 {
        let link = LINKS[rest[0] as usize % LINKS.len()];
        let len = (u16::from_le_bytes([rest[1], rest[2]]) as usize).min(rest.len() - 3);
        let frame = &rest[3..3 + len];
        rest = &rest[3 + len..];
        t += 1_000_000 * u64::from(frame.first().copied().unwrap_or(1));
        e.handle_packet(Timestamp(t), link, frame);
        e.drain_records().for_each(drop);
    }
    e.finish(Timestamp(t + 1));
    e.drain_records().for_each(drop);
    let m = e.flow_memory();
    assert_eq!(
        (m.connections, m.attempts, m.reassembly, m.parsers),
        (0, 0, 0, 0),
        "{m:?}"
    );
    // The engine's bound is 8 MiB of flow state; decoders and hashers add their fixed windows.
    let grew = HEAP.peak_usage().saturating_sub(before);
    assert!(grew < 256 << 20, "heap grew by {grew} bytes");
});
