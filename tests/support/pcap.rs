//! Classic pcap files as the tests need them: read every record, look at a frame's TCP segment,
//! and write a new capture from a subset of the records (dropping packets, splitting by
//! connection). Only Ethernet captures (optionally 802.1Q/802.1ad tagged) carrying IPv4 or IPv6
//! are decoded; other frames are kept as opaque records.

use std::net::IpAddr;
use std::ops::Range;
use std::path::Path;

/// A classic pcap held in memory.
pub struct Pcap {
    bytes: Vec<u8>,
    /// The file's byte order (the magic as written).
    le: bool,
    pub linktype: u32,
    /// One entry per record: the whole record (16-byte header + data) and its data.
    records: Vec<(Range<usize>, Range<usize>)>,
}

impl Pcap {
    /// Reads a classic pcap (either byte order, microsecond or nanosecond timestamps). A record
    /// cut short at the end of the file is left out.
    pub fn read(path: &Path) -> Pcap {
        let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        assert!(bytes.len() >= 24, "{}: too short for a pcap", path.display());
        let le = match &bytes[..4] {
            [0xd4, 0xc3, 0xb2, 0xa1] | [0x4d, 0x3c, 0xb2, 0xa1] => true,
            [0xa1, 0xb2, 0xc3, 0xd4] | [0xa1, 0xb2, 0x3c, 0x4d] => false,
            m => panic!("{}: not a classic pcap (magic {m:02x?})", path.display()),
        };
        let mut p = Pcap {
            bytes,
            le,
            linktype: 0,
            records: Vec::new(),
        };
        p.linktype = p.u32_at(20);
        let mut at = 24;
        while at + 16 <= p.bytes.len() {
            let incl = p.u32_at(at + 8) as usize;
            let end = at + 16 + incl;
            if end > p.bytes.len() {
                break;
            }
            p.records.push((at..end, at + 16..end));
            at = end;
        }
        p
    }

    fn u32_at(&self, at: usize) -> u32 {
        let v = [
            self.bytes[at],
            self.bytes[at + 1],
            self.bytes[at + 2],
            self.bytes[at + 3],
        ];
        if self.le {
            u32::from_le_bytes(v)
        } else {
            u32::from_be_bytes(v)
        }
    }

    /// Number of packets.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// The captured bytes of packet `i`.
    pub fn frame(&self, i: usize) -> &[u8] {
        &self.bytes[self.records[i].1.clone()]
    }

    /// Packet `i`'s TCP segment, when it is an Ethernet frame carrying IPv4/IPv6 + TCP.
    pub fn tcp(&self, i: usize) -> Option<TcpSegment<'_>> {
        if self.linktype != 1 {
            return None;
        }
        parse_ethernet_tcp(self.frame(i))
    }

    /// Writes the file header and the records `keep` accepts, unchanged and in order. Returns how
    /// many were written.
    pub fn write_subset(&self, path: &Path, mut keep: impl FnMut(usize) -> bool) -> usize {
        let mut out = Vec::with_capacity(self.bytes.len());
        out.extend_from_slice(&self.bytes[..24]);
        let mut n = 0;
        for (i, (rec, _)) in self.records.iter().enumerate() {
            if keep(i) {
                out.extend_from_slice(&self.bytes[rec.clone()]);
                n += 1;
            }
        }
        std::fs::write(path, out).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        n
    }
}

/// The TCP part of a frame.
#[derive(Debug, Clone)]
pub struct TcpSegment<'a> {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub sport: u16,
    pub dport: u16,
    pub seq: u32,
    pub ack: u32,
    pub flags: u8,
    pub payload: &'a [u8],
}

pub const FIN: u8 = 0x01;
pub const SYN: u8 = 0x02;
pub const RST: u8 = 0x04;
pub const ACK: u8 = 0x10;

impl TcpSegment<'_> {
    /// The connection, the same for both directions: (lower endpoint, higher endpoint).
    pub fn conn_key(&self) -> ((IpAddr, u16), (IpAddr, u16)) {
        let (a, b) = ((self.src, self.sport), (self.dst, self.dport));
        if a <= b {
            (a, b)
        } else {
            (b, a)
        }
    }

    /// A SYN without ACK: the client opening the connection.
    pub fn is_syn(&self) -> bool {
        self.flags & (SYN | ACK) == SYN
    }
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Ethernet (with up to two VLAN tags) → IPv4/IPv6 → TCP. IPv6 extension headers and IP
/// fragments are not decoded (None).
pub fn parse_ethernet_tcp(f: &[u8]) -> Option<TcpSegment<'_>> {
    let mut at = 12;
    let mut ethertype = be16(f.get(..at + 2)?, at);
    at += 2;
    while matches!(ethertype, 0x8100 | 0x88a8) {
        ethertype = be16(f.get(..at + 4)?, at + 2);
        at += 4;
    }
    let (src, dst, l4) = match ethertype {
        0x0800 => {
            let ip = f.get(at..)?;
            let ihl = usize::from(ip.first()? & 0x0f) * 4;
            if ip.len() < 20 || ihl < 20 || ip[9] != 6 || be16(ip, 6) & 0x3fff != 0 {
                return None;
            }
            let total = usize::from(be16(ip, 2)).min(ip.len());
            let src = IpAddr::from([ip[12], ip[13], ip[14], ip[15]]);
            let dst = IpAddr::from([ip[16], ip[17], ip[18], ip[19]]);
            (src, dst, ip.get(ihl..total)?)
        }
        0x86dd => {
            let ip = f.get(at..)?;
            if ip.len() < 40 || ip[6] != 6 {
                return None;
            }
            let total = (40 + usize::from(be16(ip, 4))).min(ip.len());
            let addr = |o: usize| {
                let mut a = [0u8; 16];
                a.copy_from_slice(&ip[o..o + 16]);
                IpAddr::from(a)
            };
            (addr(8), addr(24), ip.get(40..total)?)
        }
        _ => return None,
    };
    if l4.len() < 20 {
        return None;
    }
    let off = usize::from(l4[12] >> 4) * 4;
    Some(TcpSegment {
        src,
        dst,
        sport: be16(l4, 0),
        dport: be16(l4, 2),
        seq: be32(l4, 4),
        ack: be32(l4, 8),
        flags: l4[13],
        payload: l4.get(off..)?,
    })
}

/// Writes one capture per output, each with whole TCP connections, balanced by packet count
/// (biggest connection first, each to the output with the fewest packets so far); packets that
/// are not TCP go to the first output. Returns the number of connections.
pub fn split_by_connection(input: &Path, outputs: &[&Path]) -> usize {
    let p = Pcap::read(input);
    let mut conns = Vec::new();
    let mut sizes: Vec<usize> = Vec::new();
    let conn_of: Vec<Option<usize>> = (0..p.len())
        .map(|i| {
            let key = p.tcp(i)?.conn_key();
            let k = conns.iter().position(|c| *c == key).unwrap_or_else(|| {
                conns.push(key);
                sizes.push(0);
                conns.len() - 1
            });
            sizes[k] += 1;
            Some(k)
        })
        .collect();
    // Biggest connections first, each to the lightest output.
    let mut order: Vec<usize> = (0..sizes.len()).collect();
    order.sort_by_key(|&k| (std::cmp::Reverse(sizes[k]), k));
    let mut load = vec![0usize; outputs.len()];
    let mut group = vec![0usize; sizes.len()];
    for k in order {
        let g = (0..load.len()).min_by_key(|&g| load[g]).expect("an output");
        load[g] += sizes[k];
        group[k] = g;
    }
    for (g, out) in outputs.iter().enumerate() {
        p.write_subset(out, |i| conn_of[i].map_or(0, |k| group[k]) == g);
    }
    conns.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tcp_of_an_ethernet_frame() {
        let frame = crate::support::carve::eth_ipv4(
            [10, 0, 0, 1],
            [10, 0, 0, 2],
            6,
            &crate::support::carve::tcp(1234, 80, 7, 9, 0x18, b"hello"),
        );
        let seg = parse_ethernet_tcp(&frame).expect("tcp");
        assert_eq!(
            (seg.sport, seg.dport, seg.seq, seg.ack, seg.flags),
            (1234, 80, 7, 9, 0x18)
        );
        assert_eq!(seg.payload, b"hello");
        assert_eq!(seg.src, IpAddr::from([10, 0, 0, 1]));
    }
}
