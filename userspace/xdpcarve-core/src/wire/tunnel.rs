//! Tunnels used to carry mirrored traffic to a sensor: GRE (RFC 2784/2890) with IP or
//! transparent Ethernet bridging payloads, ERSPAN types I, II and III, and VXLAN (RFC 7348).

use super::{Skip, ETHERTYPE_IPV4, ETHERTYPE_IPV6};

pub const PROTO_GRE: u8 = 47;
pub const PROTO_UDP: u8 = 17;
const GRE_TEB: u16 = 0x6558;
const GRE_ERSPAN_II: u16 = 0x88be;
const GRE_ERSPAN_III: u16 = 0x22eb;
pub const VXLAN_PORT: u16 = 4789;

pub enum Inner<'a> {
    /// A whole Ethernet frame.
    Ethernet(&'a [u8]),
    /// A network-layer packet of this ethertype.
    Ethertype(u16, &'a [u8]),
}

/// Opens a GRE header: flags and version (2), protocol (2), then checksum+reserved, key and
/// sequence number (4 each) when their flag is set.
pub fn gre(buf: &[u8]) -> Result<Inner<'_>, Skip> {
    if buf.len() < 4 {
        return Err(Skip::Malformed("gre header"));
    }
    let flags = u16::from_be_bytes([buf[0], buf[1]]);
    if flags & 0x0007 != 0 {
        // Version 1 is PPTP's enhanced GRE: PPP inside, not mirrored traffic.
        return Err(Skip::NonTcp);
    }
    let proto = u16::from_be_bytes([buf[2], buf[3]]);
    let has_seq = flags & 0x1000 != 0;
    let len = 4 + 4 * ((flags & 0x8000 != 0) as usize + (flags & 0x2000 != 0) as usize + has_seq as usize);
    if buf.len() < len {
        return Err(Skip::Malformed("gre header"));
    }
    let rest = &buf[len..];
    match proto {
        ETHERTYPE_IPV4 | ETHERTYPE_IPV6 => Ok(Inner::Ethertype(proto, rest)),
        GRE_TEB => Ok(Inner::Ethernet(rest)),
        // ERSPAN type I has no sequence number and no header; type II has both.
        GRE_ERSPAN_II if !has_seq => Ok(Inner::Ethernet(rest)),
        GRE_ERSPAN_II => rest
            .get(8..)
            .map(Inner::Ethernet)
            .ok_or(Skip::Malformed("erspan header")),
        GRE_ERSPAN_III => {
            if rest.len() < 12 {
                return Err(Skip::Malformed("erspan header"));
            }
            // The O flag announces an 8-byte platform-specific subheader.
            let hdr = if rest[11] & 0x01 != 0 { 20 } else { 12 };
            rest.get(hdr..)
                .map(Inner::Ethernet)
                .ok_or(Skip::Malformed("erspan header"))
        }
        _ => Err(Skip::NonTcp),
    }
}

/// The Ethernet frame inside a VXLAN datagram (UDP port 4789 with the I flag), if it is one.
pub fn vxlan(udp: &[u8]) -> Option<&[u8]> {
    if udp.len() < 8 + 8 {
        return None;
    }
    let sport = u16::from_be_bytes([udp[0], udp[1]]);
    let dport = u16::from_be_bytes([udp[2], udp[3]]);
    if dport != VXLAN_PORT && sport != VXLAN_PORT {
        return None;
    }
    let vx = &udp[8..];
    if vx[0] & 0x08 == 0 {
        return None;
    }
    Some(&vx[8..])
}
