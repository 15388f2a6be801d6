use super::*;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};

fn key(port: u16) -> FlowKey {
    let a = Endpoint::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)), port);
    let b = Endpoint::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)), 80);
    FlowKey::new(a, b, None).0
}

#[test]
fn both_directions_share_a_key() {
    let a = Endpoint::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)), 1234);
    let b = Endpoint::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)), 80);
    let (k1, a_lo) = FlowKey::new(a, b, Some(7));
    let (k2, b_lo) = FlowKey::new(b, a, Some(7));
    assert_eq!(k1, k2);
    assert_ne!(a_lo, b_lo);
    assert_ne!(k1, FlowKey::new(a, b, Some(8)).0);
}

#[test]
fn lru_order_follows_touches() {
    let mut t = FlowTable::new();
    let a = t.insert(0, key(1), "a");
    let b = t.insert(0, key(2), "b");
    let c = t.insert(0, key(3), "c");
    assert_eq!(t.oldest(0), Some(a));
    t.touch(a);
    assert_eq!(t.ids(), vec![b, c, a]);
    assert_eq!(t.remove(b), "b");
    assert_eq!(t.oldest(0), Some(c));
    assert_eq!(t.lookup(&key(2)), None);
    let d = t.insert(0, key(4), "d");
    assert_eq!(d, b, "slot reused");
    assert_eq!(t.ids(), vec![c, a, d]);
    assert_eq!(t.len(), 3);
}

#[test]
fn lanes_keep_their_own_order() {
    let mut t = FlowTable::new();
    let a = t.insert(0, key(1), 'a');
    let b = t.insert(1, key(2), 'b');
    let c = t.insert(0, key(3), 'c');
    assert_eq!((t.lane_len(0), t.lane_len(1)), (2, 1));
    assert_eq!(t.oldest(0), Some(a));
    assert_eq!(t.oldest(1), Some(b));
    t.set_lane(a, 1);
    assert_eq!(t.lane(a), 1);
    assert_eq!(t.oldest(0), Some(c));
    assert_eq!(t.oldest_first(1, 10).collect::<Vec<_>>(), vec![b, a]);
    t.touch(b);
    assert_eq!(t.oldest_first(1, 1).collect::<Vec<_>>(), vec![a]);
    assert_eq!(t.remove(c), 'c');
    assert_eq!(t.oldest(0), None);
    assert_eq!(t.ids(), vec![a, b]);
    assert_eq!(t.values().count(), 2);
    t.clear();
    assert_eq!((t.len(), t.lane_len(1), t.lookup(&key(2))), (0, 0, None));
    let d = t.insert(1, key(2), 'd');
    assert_eq!((t.lookup(&key(2)), t.oldest(1)), (Some(d), Some(d)));
}

/// Random inserts, lookups and removals against a HashMap, with a tiny key space so that probe
/// runs collide, wrap around and shift back.
#[test]
fn agrees_with_a_hash_map() {
    for seed in 0..4u64 {
        let mut t = FlowTable::with_hasher(FlowHasherBuilder::with_seed(seed));
        let mut model: HashMap<u16, (u32, u64)> = HashMap::new();
        let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        for step in 0..200_000u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let port = (x % 3000) as u16;
            let k = key(port);
            match (x >> 40) % 3 {
                0 | 1 => match model.get(&port) {
                    Some(&(id, v)) => {
                        assert_eq!(t.lookup(&k), Some(id));
                        assert_eq!(*t.get(id), v);
                    }
                    None => {
                        assert_eq!(t.lookup(&k), None);
                        let id = t.insert((x >> 50) as usize % LANES, k, step);
                        model.insert(port, (id, step));
                    }
                },
                _ => {
                    if let Some((id, v)) = model.remove(&port) {
                        assert_eq!(t.remove(id), v);
                    }
                    assert_eq!(t.lookup(&k), None);
                }
            }
            assert_eq!(t.len(), model.len());
        }
        let lanes: usize = (0..LANES).map(|l| t.lane_len(l)).sum();
        assert_eq!(lanes, model.len());
        for (port, (id, _)) in &model {
            assert_eq!(t.lookup(&key(*port)), Some(*id));
        }
    }
}

#[test]
fn a_flow_costs_its_slot_and_at_most_four_index_entries() {
    let mut t = FlowTable::new();
    for port in 0..10_000 {
        t.insert(0, key(port), [0u64; 4]);
    }
    let per_flow = t.heap_bytes() as f64 / t.len() as f64;
    let slot = std::mem::size_of::<Slot<[u64; 4]>>();
    assert!(
        per_flow < (slot + 3 * index::ENTRY_BYTES) as f64 * 1.05,
        "{per_flow} B a flow, slot {slot} B"
    );
}
