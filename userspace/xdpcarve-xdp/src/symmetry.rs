//! Detects flows whose two directions land on different queues.
//!
//! The XSKMAP sends a packet to the socket of the queue it arrived on, so a worker only sees both
//! sides of a connection if the NIC's RSS hash is symmetric (deploy/nic-setup.sh). This checks the
//! handshake, the cheapest place to see asymmetry: a worker that sees a SYN-ACK whose SYN it never
//! saw (or a SYN whose SYN-ACK never comes) is missing a direction. Only SYN packets touch the
//! table; everything else costs one header walk to the TCP flags.

use std::collections::HashMap;

/// Pending SYNs older than this count as unanswered on this queue.
const SYN_TIMEOUT_NS: u64 = 5_000_000_000;
/// Bound on pending SYNs per worker (a SYN flood must not grow memory).
const MAX_PENDING: usize = 1 << 16;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SymmetryStats {
    /// Handshakes whose SYN and SYN-ACK both reached this worker.
    pub handshakes_both_sides: u64,
    /// SYN-ACKs whose SYN did not reach this worker: the reverse direction went elsewhere.
    pub synack_without_syn: u64,
    /// SYNs with no SYN-ACK on this worker within 5 s: unanswered, or answered on another queue.
    pub syn_without_synack: u64,
    /// SYNs not tracked because the table was full.
    pub untracked_syns: u64,
}

impl SymmetryStats {
    pub fn for_each(&self, mut f: impl FnMut(&'static str, u64)) {
        f("handshakes_both_sides", self.handshakes_both_sides);
        f("synack_without_syn", self.synack_without_syn);
        f("syn_without_synack", self.syn_without_synack);
        f("untracked_syns", self.untracked_syns);
    }

    /// Flows seen from one side only on this worker.
    pub fn one_sided(&self) -> u64 {
        self.synack_without_syn + self.syn_without_synack
    }
}

/// (client address, server address, client port, server port); IPv4 addresses are v4-mapped.
type Key = ([u8; 16], [u8; 16], u16, u16);
/// (source address, destination address, source port, destination port, TCP flags).
type Endpoints = ([u8; 16], [u8; 16], u16, u16, u8);

#[derive(Default)]
pub struct HandshakeSymmetry {
    pending: HashMap<Key, u64>,
    stats: SymmetryStats,
}

impl HandshakeSymmetry {
    pub fn stats(&self) -> SymmetryStats {
        self.stats
    }

    /// Looks at one Ethernet frame.
    pub fn observe(&mut self, ts_ns: u64, frame: &[u8]) {
        let Some((src, dst, sport, dport, flags)) = tcp_endpoints(frame) else {
            return;
        };
        const SYN: u8 = 0x02;
        const ACK: u8 = 0x10;
        if flags & (SYN | ACK) == SYN {
            if self.pending.len() >= MAX_PENDING && !self.pending.contains_key(&(src, dst, sport, dport)) {
                self.stats.untracked_syns += 1;
                return;
            }
            self.pending.insert((src, dst, sport, dport), ts_ns);
        } else if flags & (SYN | ACK) == SYN | ACK {
            // Retransmitted SYN-ACKs after a match find nothing: count only the first.
            match self.pending.remove(&(dst, src, dport, sport)) {
                Some(_) => self.stats.handshakes_both_sides += 1,
                None => self.stats.synack_without_syn += 1,
            }
        }
    }

    /// Expires SYNs that waited longer than the timeout.
    pub fn sweep(&mut self, now_ns: u64) {
        let before = self.pending.len();
        self.pending.retain(|_, ts| now_ns.saturating_sub(*ts) < SYN_TIMEOUT_NS);
        self.stats.syn_without_synack += (before - self.pending.len()) as u64;
    }
}

/// Source/destination address and port and the TCP flags byte of an Ethernet frame carrying
/// TCP (after up to two VLAN tags; IPv6 extension headers are not walked: rare on handshakes).
fn tcp_endpoints(frame: &[u8]) -> Option<Endpoints> {
    let be16 = |b: &[u8], at: usize| b.get(at..at + 2).map(|s| u16::from_be_bytes([s[0], s[1]]));
    let mut ethertype = be16(frame, 12)?;
    let mut at = 14;
    for _ in 0..2 {
        if ethertype == 0x8100 || ethertype == 0x88A8 {
            ethertype = be16(frame, at + 2)?;
            at += 4;
        }
    }
    let mut src = [0u8; 16];
    let mut dst = [0u8; 16];
    let l4 = match ethertype {
        0x0800 => {
            let ip = frame.get(at..at + 20)?;
            let ihl = usize::from(ip[0] & 0x0F) * 4;
            if ip[0] >> 4 != 4 || ihl < 20 || ip[9] != 6 || u16::from_be_bytes([ip[6], ip[7]]) & 0x3FFF != 0 {
                return None;
            }
            src[10..12].copy_from_slice(&[0xFF, 0xFF]);
            dst[10..12].copy_from_slice(&[0xFF, 0xFF]);
            src[12..].copy_from_slice(&ip[12..16]);
            dst[12..].copy_from_slice(&ip[16..20]);
            at + ihl
        }
        0x86DD => {
            let ip = frame.get(at..at + 40)?;
            if ip[6] != 6 {
                return None;
            }
            src.copy_from_slice(&ip[8..24]);
            dst.copy_from_slice(&ip[24..40]);
            at + 40
        }
        _ => return None,
    };
    let tcp = frame.get(l4..l4 + 14)?;
    Some((
        src,
        dst,
        u16::from_be_bytes([tcp[0], tcp[1]]),
        u16::from_be_bytes([tcp[2], tcp[3]]),
        tcp[13],
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, flags: u8, vlan: bool) -> Vec<u8> {
        let mut f = vec![0u8; 12];
        if vlan {
            f.extend_from_slice(&[0x81, 0x00, 0x00, 0x0A]);
        }
        f.extend_from_slice(&[0x08, 0x00]);
        let mut ip = vec![0x45, 0, 0, 40, 0, 0, 0x40, 0, 64, 6, 0, 0];
        ip.extend_from_slice(&src);
        ip.extend_from_slice(&dst);
        f.extend_from_slice(&ip);
        let mut tcp = vec![0u8; 20];
        tcp[0..2].copy_from_slice(&sport.to_be_bytes());
        tcp[2..4].copy_from_slice(&dport.to_be_bytes());
        tcp[12] = 0x50;
        tcp[13] = flags;
        f.extend_from_slice(&tcp);
        f
    }

    const C: [u8; 4] = [10, 201, 0, 1];
    const S: [u8; 4] = [10, 201, 0, 2];

    #[test]
    fn both_sides_seen() {
        let mut s = HandshakeSymmetry::default();
        s.observe(1, &frame(C, S, 40000, 80, 0x02, false));
        s.observe(2, &frame(S, C, 80, 40000, 0x12, true));
        s.observe(3, &frame(C, S, 40000, 80, 0x10, false));
        s.sweep(10 * SYN_TIMEOUT_NS);
        assert_eq!(
            s.stats(),
            SymmetryStats {
                handshakes_both_sides: 1,
                ..Default::default()
            }
        );
    }

    #[test]
    fn one_sided_flows_are_counted() {
        let mut s = HandshakeSymmetry::default();
        // This worker sees only the client's SYN of one flow and only the server's SYN-ACK of another.
        s.observe(1, &frame(C, S, 40000, 80, 0x02, false));
        s.observe(2, &frame(S, C, 80, 40001, 0x12, false));
        s.sweep(2);
        assert_eq!(s.stats().syn_without_synack, 0, "not yet expired");
        s.sweep(1 + SYN_TIMEOUT_NS);
        assert_eq!(s.stats().synack_without_syn, 1);
        assert_eq!(s.stats().syn_without_synack, 1);
        assert_eq!(s.stats().one_sided(), 2);
    }

    #[test]
    fn fragments_and_non_tcp_are_ignored() {
        let mut s = HandshakeSymmetry::default();
        let mut f = frame(S, C, 80, 40000, 0x12, false);
        f[14 + 6] = 0x20; // MF set
        s.observe(1, &f);
        let mut udp = frame(S, C, 80, 40000, 0x12, false);
        udp[14 + 9] = 17;
        s.observe(1, &udp);
        s.observe(1, &f[..30]);
        assert_eq!(s.stats(), SymmetryStats::default());
    }
}
