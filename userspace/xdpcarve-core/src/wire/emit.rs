//! The emit side of [`crate::wire`], in smoltcp's shape: a [`TcpRepr`] says what a segment
//! carries, and writes it, with an IPv4 or IPv6 header and an Ethernet header around it, for the
//! tests, fuzz targets and generators that need frames a capture would hold. Parsing what it
//! emits gives back what it was told ([`super::parse_tcp`]).

use std::net::IpAddr;

use super::checksum;
use super::ethernet::{ETHERTYPE_IPV4, ETHERTYPE_IPV6};
use super::ip::PROTO_TCP;
use super::tcp::{OPT_MSS, OPT_NOP, OPT_WINDOW_SCALE};

/// What the checksums of an emitted frame hold.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub enum Checksum {
    /// The IPv4 header's and the TCP segment's are right.
    #[default]
    Right,
    /// Both left zero, as a capture on a sending host with checksum offload holds them.
    Zero,
    /// The IPv4 header's is right, the TCP segment's wrong (the right one with bits flipped): a
    /// segment the receiving host drops.
    WrongTcp,
}

/// The IP header of an emitted segment. The addresses' version picks IPv4 or IPv6.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct IpRepr {
    pub src: IpAddr,
    pub dst: IpAddr,
    /// IPv4 TTL or IPv6 hop limit.
    pub ttl: u8,
}

impl IpRepr {
    /// From `src` to `dst` with TTL 64 (Linux's).
    pub fn new(src: impl Into<IpAddr>, dst: impl Into<IpAddr>) -> Self {
        IpRepr {
            src: src.into(),
            dst: dst.into(),
            ttl: 64,
        }
    }

    /// The IP header for `l4_len` bytes of protocol `protocol`, then `l4`. An IPv4 header has
    /// identification 1 and don't-fragment set; its checksum is right unless `checksum` is
    /// [`Checksum::Zero`]. Panics when the addresses are of different versions.
    pub fn emit(&self, protocol: u8, l4: &[u8], checksum: Checksum, out: &mut Vec<u8>) {
        match (self.src, self.dst) {
            (IpAddr::V4(src), IpAddr::V4(dst)) => {
                let start = out.len();
                let total = (IPV4_HEADER_LEN + l4.len()) as u16;
                out.extend_from_slice(&[0x45, 0]);
                out.extend_from_slice(&total.to_be_bytes());
                out.extend_from_slice(&[0, 1, 0x40, 0, self.ttl, protocol, 0, 0]);
                out.extend_from_slice(&src.octets());
                out.extend_from_slice(&dst.octets());
                if checksum != Checksum::Zero {
                    let c = !checksum::fold(checksum::sum(&out[start..]));
                    out[start + 10..start + 12].copy_from_slice(&c.to_be_bytes());
                }
            }
            (IpAddr::V6(src), IpAddr::V6(dst)) => {
                out.extend_from_slice(&[0x60, 0, 0, 0]);
                out.extend_from_slice(&(l4.len() as u16).to_be_bytes());
                out.extend_from_slice(&[protocol, self.ttl]);
                out.extend_from_slice(&src.octets());
                out.extend_from_slice(&dst.octets());
            }
            _ => panic!("IpRepr with addresses of two versions: {} and {}", self.src, self.dst),
        }
        out.extend_from_slice(l4);
    }

    fn ethertype(&self) -> u16 {
        match self.src {
            IpAddr::V4(_) => ETHERTYPE_IPV4,
            IpAddr::V6(_) => ETHERTYPE_IPV6,
        }
    }
}

const IPV4_HEADER_LEN: usize = 20;
const TCP_HEADER_LEN: usize = 20;
/// The Ethernet addresses of emitted frames: destination 00:01:02:03:04:05, source
/// 06:07:08:09:0a:0b.
const MACS: [u8; 12] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11];

/// A TCP segment to emit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TcpRepr<'a> {
    pub src_port: u16,
    pub dst_port: u16,
    pub seq: u32,
    pub ack: u32,
    /// [`super::TcpFlags`] bits.
    pub flags: u8,
    /// The window field as sent (unscaled).
    pub window: u16,
    pub urgent_pointer: u16,
    /// Options written, in this order: MSS, then NOP and window scale (Linux's layout).
    pub mss: Option<u16>,
    pub window_scale: Option<u8>,
    pub payload: &'a [u8],
}

impl<'a> TcpRepr<'a> {
    /// A segment without options, window 65535, no urgent data.
    pub fn new(src_port: u16, dst_port: u16, seq: u32, ack: u32, flags: u8, payload: &'a [u8]) -> Self {
        TcpRepr {
            src_port,
            dst_port,
            seq,
            ack,
            flags,
            window: 0xffff,
            urgent_pointer: 0,
            mss: None,
            window_scale: None,
            payload,
        }
    }

    /// Header with options, padded to a multiple of 4.
    pub fn header_len(&self) -> usize {
        let options = self.mss.map_or(0, |_| 4) + self.window_scale.map_or(0, |_| 4);
        TCP_HEADER_LEN + options
    }

    /// The segment (header, options, payload), its checksum for `ip`'s addresses as `checksum`
    /// says.
    pub fn emit_segment(&self, ip: &IpRepr, checksum: Checksum, out: &mut Vec<u8>) {
        let start = out.len();
        out.extend_from_slice(&self.src_port.to_be_bytes());
        out.extend_from_slice(&self.dst_port.to_be_bytes());
        out.extend_from_slice(&self.seq.to_be_bytes());
        out.extend_from_slice(&self.ack.to_be_bytes());
        out.extend_from_slice(&[(self.header_len() / 4 * 16) as u8, self.flags]);
        out.extend_from_slice(&self.window.to_be_bytes());
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(&self.urgent_pointer.to_be_bytes());
        if let Some(mss) = self.mss {
            out.extend_from_slice(&[OPT_MSS, 4]);
            out.extend_from_slice(&mss.to_be_bytes());
        }
        if let Some(shift) = self.window_scale {
            out.extend_from_slice(&[OPT_NOP, OPT_WINDOW_SCALE, 3, shift]);
        }
        out.extend_from_slice(self.payload);
        let c = match checksum {
            Checksum::Zero => return,
            Checksum::Right => !tcp_sum(ip, &out[start..]),
            Checksum::WrongTcp => !tcp_sum(ip, &out[start..]) ^ 0x5a5a,
        };
        out[start + 16..start + 18].copy_from_slice(&c.to_be_bytes());
    }

    /// The IP packet carrying the segment.
    pub fn emit_ip(&self, ip: &IpRepr, checksum: Checksum) -> Vec<u8> {
        let mut segment = Vec::with_capacity(self.header_len() + self.payload.len());
        self.emit_segment(ip, checksum, &mut segment);
        let mut out = Vec::with_capacity(40 + segment.len());
        ip.emit(PROTO_TCP, &segment, checksum, &mut out);
        out
    }

    /// An Ethernet frame of the segment over `ip`.
    pub fn emit_frame(&self, ip: &IpRepr, checksum: Checksum) -> Vec<u8> {
        ethernet_frame(ip.ethertype(), &self.emit_ip(ip, checksum))
    }
}

/// An Ethernet II frame (addresses [`MACS`]) around `payload`.
pub fn ethernet_frame(ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(14 + payload.len());
    f.extend_from_slice(&MACS);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// The folded ones'-complement sum of a TCP segment with its pseudo-header.
fn tcp_sum(ip: &IpRepr, segment: &[u8]) -> u16 {
    let pseudo = match (ip.src, ip.dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => checksum::sum(&s.octets()) + checksum::sum(&d.octets()),
        (IpAddr::V6(s), IpAddr::V6(d)) => checksum::sum(&s.octets()) + checksum::sum(&d.octets()),
        _ => panic!("IpRepr with addresses of two versions: {} and {}", ip.src, ip.dst),
    };
    checksum::fold(pseudo + u64::from(PROTO_TCP) + segment.len() as u64 + checksum::sum(segment))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{parse_tcp, LinkType, TcpFlags, TcpSegment};
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn syn() -> TcpRepr<'static> {
        TcpRepr {
            window: 29_200,
            mss: Some(1460),
            window_scale: Some(7),
            ..TcpRepr::new(40_000, 80, 0xfffffff0, 0, TcpFlags::SYN, b"")
        }
    }

    #[test]
    fn an_emitted_ipv4_frame_parses_back_with_right_checksums() {
        let ip = IpRepr {
            ttl: 3,
            ..IpRepr::new(Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2))
        };
        let data = TcpRepr {
            window: 501,
            urgent_pointer: 2,
            ..TcpRepr::new(80, 40_000, 7, 0xfffffff1, TcpFlags::ACK | TcpFlags::URG, b"urgent")
        };
        for (repr, len) in [(syn(), 28), (data, 20)] {
            let f = repr.emit_frame(&ip, Checksum::Right);
            let p = parse_tcp(LinkType::Ethernet, &f).unwrap();
            assert_eq!((p.src, p.dst, p.ttl), (ip.src, ip.dst, 3));
            assert_eq!(
                (p.sport, p.dport, p.seq, p.ack),
                (repr.src_port, repr.dst_port, repr.seq, repr.ack)
            );
            assert_eq!(
                (p.flags, p.window, p.payload),
                (TcpFlags(repr.flags), repr.window, repr.payload)
            );
            assert_eq!(p.window_scale, repr.window_scale);
            assert_eq!(p.checksum_ok(), Some(true));
            let seg = TcpSegment::new_checked(p.segment).unwrap();
            assert_eq!((seg.header_len(), seg.urgent_pointer()), (len, repr.urgent_pointer));
        }
        let opts = TcpSegment::new_checked(
            parse_tcp(LinkType::Ethernet, &syn().emit_frame(&ip, Checksum::Right))
                .unwrap()
                .segment,
        )
        .unwrap()
        .options()
        .to_vec();
        assert_eq!(opts, [2, 4, 0x05, 0xb4, 1, 3, 3, 7]);
    }

    #[test]
    fn an_emitted_ipv6_frame_parses_back_with_a_right_checksum() {
        let ip = IpRepr::new(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1), Ipv6Addr::LOCALHOST);
        let repr = TcpRepr::new(40_000, 80, 1, 2, TcpFlags::PSH | TcpFlags::ACK, b"odd length");
        let f = repr.emit_frame(&ip, Checksum::Right);
        let p = parse_tcp(LinkType::Ethernet, &f).unwrap();
        assert!(p.is_ipv6());
        assert_eq!((p.src, p.dst, p.ttl, p.payload), (ip.src, ip.dst, 64, repr.payload));
        assert_eq!(p.checksum_ok(), Some(true));
    }

    #[test]
    fn zero_and_wrong_checksums_are_what_they_say() {
        let ip = IpRepr::new(Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2));
        let repr = TcpRepr::new(40_000, 80, 1, 2, TcpFlags::ACK, b"x");
        let zero = repr.emit_ip(&ip, Checksum::Zero);
        assert_eq!((&zero[10..12], &zero[36..38]), (&[0, 0][..], &[0, 0][..]));
        let wrong = repr.emit_frame(&ip, Checksum::WrongTcp);
        let p = parse_tcp(LinkType::Ethernet, &wrong).unwrap();
        assert_eq!(
            checksum::fold(checksum::sum(p.ipv4_header)),
            0xffff,
            "the IPv4 header's is right"
        );
        assert_eq!(p.checksum_ok(), Some(false));
    }
}
