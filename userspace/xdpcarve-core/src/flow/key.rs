//! Canonical flow keys and the hasher of the flow table.

use std::hash::{BuildHasher, Hash, Hasher};
use std::net::IpAddr;

/// One endpoint: address (IPv4 mapped into 16 bytes) and port.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Endpoint {
    pub addr: [u8; 16],
    pub port: u16,
}

impl Endpoint {
    pub fn new(ip: IpAddr, port: u16) -> Self {
        let addr = match ip {
            IpAddr::V4(a) => a.to_ipv6_mapped().octets(),
            IpAddr::V6(a) => a.octets(),
        };
        Endpoint { addr, port }
    }
}

/// Both directions of a connection map to the same key: endpoints in sorted order, plus the VLAN
/// (the same 5-tuple on two VLANs is two connections, as in Zeek).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct FlowKey {
    pub lo: Endpoint,
    pub hi: Endpoint,
    pub vlan: u16,
}

impl FlowKey {
    /// The key and whether `src` is the `lo` endpoint.
    pub fn new(src: Endpoint, dst: Endpoint, vlan: Option<u16>) -> (FlowKey, bool) {
        let vlan = vlan.map_or(0xffff, |v| v);
        if src <= dst {
            (FlowKey { lo: src, hi: dst, vlan }, true)
        } else {
            (FlowKey { lo: dst, hi: src, vlan }, false)
        }
    }

    /// The key as words (both directions give the same), for hashing and ids.
    pub fn words(&self) -> [u64; 5] {
        let w = |b: &[u8]| u64::from_ne_bytes(b.try_into().expect("8 bytes"));
        [
            w(&self.lo.addr[0..8]),
            w(&self.lo.addr[8..16]),
            w(&self.hi.addr[0..8]),
            w(&self.hi.addr[8..16]),
            (self.lo.port as u64) | (self.hi.port as u64) << 16 | (self.vlan as u64) << 32,
        ]
    }
}

impl Hash for FlowKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        for w in self.words() {
            state.write_u64(w);
        }
    }
}

/// A fast keyed hasher for flow keys: folded 64×64→128 multiplies (as foldhash/wyhash do) with a
/// per-table random seed, so an attacker cannot aim many flows at one bucket without knowing it.
#[derive(Copy, Clone, Debug)]
pub struct FlowHasherBuilder {
    seed: u64,
}

impl FlowHasherBuilder {
    /// A seed from the OS (std's RandomState: seeded once per process, varied per instance).
    pub fn random() -> Self {
        let seed = std::collections::hash_map::RandomState::new().hash_one(0x5eed_u64);
        FlowHasherBuilder { seed }
    }

    /// A fixed seed: the same keys hash the same in every run.
    pub fn with_seed(seed: u64) -> Self {
        FlowHasherBuilder { seed }
    }
}

impl BuildHasher for FlowHasherBuilder {
    type Hasher = FlowHasher;
    fn build_hasher(&self) -> FlowHasher {
        FlowHasher { acc: self.seed }
    }
}

pub struct FlowHasher {
    acc: u64,
}

#[inline]
fn folded_mul(a: u64, b: u64) -> u64 {
    let p = (a as u128).wrapping_mul(b as u128);
    (p as u64) ^ ((p >> 64) as u64)
}

impl Hasher for FlowHasher {
    #[inline]
    fn write_u64(&mut self, w: u64) {
        self.acc = folded_mul(self.acc ^ w, 0x9e37_79b9_7f4a_7c15);
    }
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut b = [0u8; 8];
            b[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_ne_bytes(b));
        }
    }
    #[inline]
    fn finish(&self) -> u64 {
        folded_mul(self.acc, 0x2d35_8dcc_aa6c_78a5)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn a_seed_makes_hashes_repeatable() {
        let a = Endpoint::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)), 1234);
        let b = Endpoint::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)), 80);
        let key = FlowKey::new(a, b, None).0;
        let h = |seed| FlowHasherBuilder::with_seed(seed).hash_one(key);
        assert_eq!(h(7), h(7));
        assert_ne!(h(7), h(8));
    }
}
