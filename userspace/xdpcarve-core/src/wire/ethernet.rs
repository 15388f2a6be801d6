//! Ethernet II frames and 802.1Q / 802.1ad VLAN tags.

use super::link::Truncated;
use super::Skip;

pub const ETHERTYPE_IPV4: u16 = 0x0800;
pub const ETHERTYPE_IPV6: u16 = 0x86dd;
pub const ETHERTYPE_VLAN: u16 = 0x8100;
pub const ETHERTYPE_QINQ: u16 = 0x88a8;
/// Pre-standard QinQ ethertype still emitted by some switches.
pub const ETHERTYPE_QINQ_OLD: u16 = 0x9100;
/// Tags stripped at most; deeper stacks are treated as malformed (a loop guard, not a real limit).
pub const MAX_VLAN_TAGS: u8 = 8;

/// An Ethernet II header: destination (6), source (6), ethertype (2).
#[derive(Copy, Clone, Debug)]
pub struct EthernetFrame<'a> {
    buf: &'a [u8],
}

impl<'a> EthernetFrame<'a> {
    pub const HEADER_LEN: usize = 14;

    pub fn new_checked(buf: &'a [u8]) -> Result<Self, Truncated> {
        if buf.len() < Self::HEADER_LEN {
            return Err(Truncated);
        }
        Ok(EthernetFrame { buf })
    }
    pub fn dst_addr(&self) -> [u8; 6] {
        self.buf[0..6].try_into().expect("6 bytes")
    }
    pub fn src_addr(&self) -> [u8; 6] {
        self.buf[6..12].try_into().expect("6 bytes")
    }
    pub fn ethertype(&self) -> u16 {
        u16::from_be_bytes([self.buf[12], self.buf[13]])
    }
    pub fn payload(&self) -> &'a [u8] {
        &self.buf[Self::HEADER_LEN..]
    }

    /// Strips any VLAN tags.
    pub fn strip_vlans(&self) -> Result<Untagged<'a>, Skip> {
        strip_vlan_tags(self.ethertype(), self.payload())
    }
}

/// An 802.1Q/802.1ad tag as it follows the tag's ethertype: TCI (2), inner ethertype (2).
#[derive(Copy, Clone, Debug)]
pub struct VlanTag<'a> {
    buf: &'a [u8],
}

impl<'a> VlanTag<'a> {
    pub const LEN: usize = 4;

    pub fn new_checked(buf: &'a [u8]) -> Result<Self, Truncated> {
        if buf.len() < Self::LEN {
            return Err(Truncated);
        }
        Ok(VlanTag { buf })
    }
    pub fn vlan_id(&self) -> u16 {
        u16::from_be_bytes([self.buf[0], self.buf[1]]) & 0x0fff
    }
    pub fn priority(&self) -> u8 {
        self.buf[0] >> 5
    }
    pub fn ethertype(&self) -> u16 {
        u16::from_be_bytes([self.buf[2], self.buf[3]])
    }
    pub fn payload(&self) -> &'a [u8] {
        &self.buf[Self::LEN..]
    }
}

pub fn is_vlan_ethertype(t: u16) -> bool {
    matches!(t, ETHERTYPE_VLAN | ETHERTYPE_QINQ | ETHERTYPE_QINQ_OLD)
}

/// What is left of a frame once its VLAN tags are stripped.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Untagged<'a> {
    /// The ethertype after the last tag.
    pub ethertype: u16,
    /// The bytes after the last tag.
    pub payload: &'a [u8],
    /// Tags stripped.
    pub tags: u8,
    /// The outermost VLAN id, if there was a tag.
    pub outer_vlan: Option<u16>,
}

/// Follows a stack of VLAN tags starting at `ethertype`/`payload`.
pub fn strip_vlan_tags(mut ethertype: u16, mut payload: &[u8]) -> Result<Untagged<'_>, Skip> {
    let mut outer = None;
    let mut tags = 0u8;
    while is_vlan_ethertype(ethertype) {
        if tags == MAX_VLAN_TAGS {
            return Err(Skip::Malformed("too many vlan tags"));
        }
        let tag = VlanTag::new_checked(payload).map_err(|_| Skip::Malformed("vlan tag"))?;
        outer.get_or_insert(tag.vlan_id());
        tags += 1;
        ethertype = tag.ethertype();
        payload = tag.payload();
    }
    Ok(Untagged {
        ethertype,
        payload,
        tags,
        outer_vlan: outer,
    })
}
