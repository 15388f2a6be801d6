//! Typed, zero-copy views of the headers on a packet's path, smoltcp style: each view checks its
//! length once (`new_checked`) and then reads fields straight from the borrowed bytes.
//!
//! [`parse_tcp`] walks link layer (Ethernet, Linux cooked, loopback, raw IP, 802.11 data frames
//! with or without radiotap, NFLOG) → VLAN tags → IPv4/IPv6 (+ extension headers) → TCP and returns
//! the few fields the flow engine needs. Checksums are verified only when the engine asks
//! ([`TcpPacket::checksum_ok`]): captures taken on the sending host carry offloaded (wrong) ones,
//! so whether a bad one counts is the engine's policy. [`TcpRepr`] is the other way: it writes
//! the frames tests, fuzz targets and generators feed in.

pub(crate) mod checksum;
mod emit;
mod ethernet;
mod ip;
mod link;
mod tcp;
mod tunnel;
mod wifi;

pub use emit::{ethernet_frame, Checksum, IpRepr, TcpRepr};
pub use ethernet::{EthernetFrame, VlanTag, ETHERTYPE_IPV4, ETHERTYPE_IPV6, MAX_VLAN_TAGS};
pub use ip::{Ipv4Packet, Ipv6Packet};
pub use link::{LinuxSll2Header, LinuxSllHeader, NflogHeader};
pub use tcp::{TcpFlags, TcpSegment, MAX_WINDOW_SCALE};
pub use wifi::{Ieee80211Header, RadiotapHeader};
pub use xdpcarve_contract::LinkType;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Why a frame yields no TCP segment. Each maps to a capture counter.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Skip {
    /// Not IP (ARP, LLDP, ...), or no IP that can be read: 802.11 management, control, null and
    /// encrypted frames, NFLOG records without a payload.
    NonIp,
    /// IP, but not TCP.
    NonTcp,
    /// An IP fragment, or an 802.11 MSDU fragment (neither is reassembled).
    Fragment,
    /// A header that does not parse; the string says which.
    Malformed(&'static str),
}

/// The TCP segment of a frame, with the addressing the flow table needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TcpPacket<'a> {
    /// Outer VLAN id, if tagged.
    pub vlan: Option<u16>,
    /// Number of VLAN tags stripped (0 when untagged).
    pub vlan_tags: u8,
    pub src: IpAddr,
    pub dst: IpAddr,
    pub sport: u16,
    pub dport: u16,
    pub seq: u32,
    pub ack: u32,
    pub flags: TcpFlags,
    /// The advertised window as sent (unscaled).
    pub window: u16,
    /// A SYN's window scale option (RFC 7323, capped at 14); `None` on other segments.
    pub window_scale: Option<u8>,
    /// The payload bytes present in the frame.
    pub payload: &'a [u8],
    /// Payload bytes the IP header announces but the capture cut off (snap length).
    pub missing_tail: u32,
    /// IPv4 TTL or IPv6 hop limit (of the innermost header, when tunnelled).
    pub ttl: u8,
    /// The whole TCP segment present (header and payload), for its checksum.
    pub segment: &'a [u8],
    /// The IPv4 header (empty for IPv6), for its checksum.
    pub ipv4_header: &'a [u8],
}

impl TcpPacket<'_> {
    pub fn is_ipv6(&self) -> bool {
        self.src.is_ipv6()
    }

    /// Whether the TCP checksum (and an IPv4 header's) is right; `None` when the capture cut the
    /// segment short, so it cannot be checked.
    pub fn checksum_ok(&self) -> Option<bool> {
        if self.missing_tail > 0 {
            return None;
        }
        if !self.ipv4_header.is_empty() && checksum::fold(checksum::sum(self.ipv4_header)) != 0xffff {
            return Some(false);
        }
        Some(checksum::tcp_ok(self.src, self.dst, self.segment))
    }
}

/// Encapsulations followed at most (GRE in GRE in ...): a loop guard.
pub const MAX_ENCAPSULATION: usize = 4;

/// Parses a captured frame of link type `link` down to its TCP segment. Tunnels that taps and
/// SPAN sessions use to ship mirrored traffic are opened: GRE (IP, transparent Ethernet
/// bridging), ERSPAN types I–III, and VXLAN (UDP 4789).
pub fn parse_tcp(link: LinkType, frame: &[u8]) -> Result<TcpPacket<'_>, Skip> {
    let mut vlan = None;
    let mut vlan_tags = 0u8;
    let mut l3 = match link {
        LinkType::Ethernet => from_ethernet(frame, &mut vlan, &mut vlan_tags)?,
        LinkType::LinuxSll => {
            let sll = LinuxSllHeader::new_checked(frame).map_err(|_| Skip::Malformed("linux sll header"))?;
            after_ethertype(sll.protocol(), sll.payload(), &mut vlan, &mut vlan_tags)?
        }
        LinkType::LinuxSll2 => {
            let sll = LinuxSll2Header::new_checked(frame).map_err(|_| Skip::Malformed("linux sll2 header"))?;
            after_ethertype(sll.protocol(), sll.payload(), &mut vlan, &mut vlan_tags)?
        }
        // BSD loopback: a 4-byte address family, in the capturing host's byte order (NULL) or
        // network order (LOOP). Its values differ between systems (IPv6 is 10, 24, 28 or 30), so
        // the IP version nibble decides.
        LinkType::Null | LinkType::Loop => {
            if frame.len() < 4 {
                return Err(Skip::Malformed("loopback header"));
            }
            L3::from_version(&frame[4..])?
        }
        LinkType::Raw => L3::from_version(frame)?,
        LinkType::Ieee80211 => {
            let (ethertype, bytes) = wifi::data_payload(frame, false)?;
            after_ethertype(ethertype, bytes, &mut vlan, &mut vlan_tags)?
        }
        LinkType::Ieee80211Radiotap => {
            let (ethertype, bytes) = wifi::radiotap_payload(frame)?;
            after_ethertype(ethertype, bytes, &mut vlan, &mut vlan_tags)?
        }
        LinkType::Nflog => {
            let nf = NflogHeader::new_checked(frame).map_err(|_| Skip::Malformed("nflog header"))?;
            let ip = nf
                .tlv(link::NFULA_PAYLOAD)
                .map_err(|_| Skip::Malformed("nflog tlv"))?
                .ok_or(Skip::NonIp)?;
            match nf.family() {
                link::AF_INET => L3::V4(ip),
                link::AF_INET6 => L3::V6(ip),
                // AF_BRIDGE and others: the packet says what it is.
                _ => L3::from_version(ip)?,
            }
        }
        LinkType::Ipv4 => L3::V4(frame),
        LinkType::Ipv6 => L3::V6(frame),
    };
    let (mut ttl, mut ipv4_header): (u8, &[u8]);
    for _ in 0..=MAX_ENCAPSULATION {
        let (src, dst, proto, l4, missing_tail) = match l3 {
            L3::V4(bytes) => {
                let ip = Ipv4Packet::new_checked(bytes)?;
                if ip.is_fragment() {
                    return Err(Skip::Fragment);
                }
                let (payload, missing) = ip.payload();
                ttl = ip.ttl();
                ipv4_header = ip.header();
                (
                    IpAddr::V4(Ipv4Addr::from(ip.src())),
                    IpAddr::V4(Ipv4Addr::from(ip.dst())),
                    ip.protocol(),
                    payload,
                    missing,
                )
            }
            L3::V6(bytes) => {
                let ip = Ipv6Packet::new_checked(bytes)?;
                let (proto, payload, missing) = ip.upper_layer()?;
                ttl = ip.hop_limit();
                ipv4_header = &[];
                (
                    IpAddr::V6(Ipv6Addr::from(ip.src())),
                    IpAddr::V6(Ipv6Addr::from(ip.dst())),
                    proto,
                    payload,
                    missing,
                )
            }
        };
        match proto {
            ip::PROTO_TCP => {
                let tcp = TcpSegment::new_checked(l4).map_err(|_| Skip::Malformed("tcp header"))?;
                return Ok(TcpPacket {
                    vlan,
                    vlan_tags,
                    src,
                    dst,
                    sport: tcp.src_port(),
                    dport: tcp.dst_port(),
                    seq: tcp.seq(),
                    ack: tcp.ack(),
                    flags: tcp.flags(),
                    window: tcp.window(),
                    // The option counts only on SYNs, so other segments' options are not read.
                    window_scale: if tcp.flags().syn() { tcp.window_scale() } else { None },
                    payload: tcp.payload(),
                    missing_tail,
                    ttl,
                    segment: l4,
                    ipv4_header,
                });
            }
            tunnel::PROTO_GRE if missing_tail == 0 => {
                l3 = match tunnel::gre(l4)? {
                    tunnel::Inner::Ethernet(eth) => from_ethernet(eth, &mut vlan, &mut vlan_tags)?,
                    tunnel::Inner::Ethertype(t, bytes) => after_ethertype(t, bytes, &mut vlan, &mut vlan_tags)?,
                };
            }
            tunnel::PROTO_UDP if missing_tail == 0 => match tunnel::vxlan(l4) {
                Some(eth) => l3 = from_ethernet(eth, &mut vlan, &mut vlan_tags)?,
                None => return Err(Skip::NonTcp),
            },
            _ => return Err(Skip::NonTcp),
        }
    }
    Err(Skip::Malformed("too many nested tunnels"))
}

fn from_ethernet<'a>(frame: &'a [u8], vlan: &mut Option<u16>, tags: &mut u8) -> Result<L3<'a>, Skip> {
    let eth = EthernetFrame::new_checked(frame).map_err(|_| Skip::Malformed("ethernet header"))?;
    after_ethertype(eth.ethertype(), eth.payload(), vlan, tags)
}

/// Strips VLAN tags after an ethertype; the outermost VLAN id seen (also across tunnels) is kept.
fn after_ethertype<'a>(ethertype: u16, bytes: &'a [u8], vlan: &mut Option<u16>, tags: &mut u8) -> Result<L3<'a>, Skip> {
    let untagged = ethernet::strip_vlan_tags(ethertype, bytes)?;
    if vlan.is_none() {
        *vlan = untagged.outer_vlan;
    }
    *tags = tags.saturating_add(untagged.tags);
    L3::from_ethertype(untagged.ethertype, untagged.payload)
}

/// The network-layer bytes of a frame, by IP version.
enum L3<'a> {
    V4(&'a [u8]),
    V6(&'a [u8]),
}

impl<'a> L3<'a> {
    fn from_ethertype(ethertype: u16, bytes: &'a [u8]) -> Result<Self, Skip> {
        match ethertype {
            ETHERTYPE_IPV4 => Ok(L3::V4(bytes)),
            ETHERTYPE_IPV6 => Ok(L3::V6(bytes)),
            _ => Err(Skip::NonIp),
        }
    }

    fn from_version(bytes: &'a [u8]) -> Result<Self, Skip> {
        match bytes.first().map(|b| b >> 4) {
            Some(4) => Ok(L3::V4(bytes)),
            Some(6) => Ok(L3::V6(bytes)),
            Some(_) => Err(Skip::NonIp),
            None => Err(Skip::Malformed("empty ip packet")),
        }
    }
}

#[cfg(test)]
mod tests;
