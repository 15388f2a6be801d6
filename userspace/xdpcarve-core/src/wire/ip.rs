//! IPv4 (with options) and IPv6 (with extension headers).

use super::Skip;

pub const PROTO_TCP: u8 = 6;
const V6_HOP_BY_HOP: u8 = 0;
const V6_ROUTING: u8 = 43;
const V6_FRAGMENT: u8 = 44;
const V6_AUTH: u8 = 51;
const V6_NO_NEXT: u8 = 59;
const V6_DEST_OPTS: u8 = 60;
const V6_MOBILITY: u8 = 135;
/// Extension headers followed at most (loop guard).
const MAX_V6_EXT_HEADERS: usize = 16;

/// An IPv4 header with its options.
#[derive(Copy, Clone, Debug)]
pub struct Ipv4Packet<'a> {
    buf: &'a [u8],
}

impl<'a> Ipv4Packet<'a> {
    pub const MIN_HEADER_LEN: usize = 20;

    /// Checks version, header length and that the whole header is present.
    pub fn new_checked(buf: &'a [u8]) -> Result<Self, Skip> {
        if buf.len() < Self::MIN_HEADER_LEN {
            return Err(Skip::Malformed("ipv4 header"));
        }
        let p = Ipv4Packet { buf };
        if buf[0] >> 4 != 4 {
            return Err(Skip::Malformed("ipv4 version"));
        }
        let hl = p.header_len();
        if hl < Self::MIN_HEADER_LEN || hl > buf.len() {
            return Err(Skip::Malformed("ipv4 header length"));
        }
        let total = p.total_len() as usize;
        // Total length 0 is what TSO-offloaded packets captured on the sending host carry.
        if total != 0 && total < hl {
            return Err(Skip::Malformed("ipv4 total length"));
        }
        Ok(p)
    }
    pub fn header_len(&self) -> usize {
        ((self.buf[0] & 0x0f) as usize) * 4
    }
    pub fn total_len(&self) -> u16 {
        u16::from_be_bytes([self.buf[2], self.buf[3]])
    }
    /// More-fragments set or a non-zero fragment offset.
    pub fn is_fragment(&self) -> bool {
        let frag = u16::from_be_bytes([self.buf[6], self.buf[7]]);
        frag & 0x2000 != 0 || frag & 0x1fff != 0
    }
    pub fn protocol(&self) -> u8 {
        self.buf[9]
    }
    pub fn ttl(&self) -> u8 {
        self.buf[8]
    }
    /// The header with its options (what the header checksum covers).
    pub fn header(&self) -> &'a [u8] {
        &self.buf[..self.header_len()]
    }
    pub fn src(&self) -> [u8; 4] {
        self.buf[12..16].try_into().expect("4 bytes")
    }
    pub fn dst(&self) -> [u8; 4] {
        self.buf[16..20].try_into().expect("4 bytes")
    }
    /// The payload present, and how many payload bytes the capture cut off. Ethernet padding
    /// past the total length is dropped.
    pub fn payload(&self) -> (&'a [u8], u32) {
        let hl = self.header_len();
        let total = match self.total_len() as usize {
            0 => self.buf.len(),
            n => n,
        };
        if total <= self.buf.len() {
            (&self.buf[hl..total], 0)
        } else {
            (&self.buf[hl..], (total - self.buf.len()) as u32)
        }
    }
}

/// An IPv6 fixed header followed by its extension headers.
#[derive(Copy, Clone, Debug)]
pub struct Ipv6Packet<'a> {
    buf: &'a [u8],
}

impl<'a> Ipv6Packet<'a> {
    pub const HEADER_LEN: usize = 40;

    pub fn new_checked(buf: &'a [u8]) -> Result<Self, Skip> {
        if buf.len() < Self::HEADER_LEN {
            return Err(Skip::Malformed("ipv6 header"));
        }
        if buf[0] >> 4 != 6 {
            return Err(Skip::Malformed("ipv6 version"));
        }
        Ok(Ipv6Packet { buf })
    }
    pub fn payload_len(&self) -> u16 {
        u16::from_be_bytes([self.buf[4], self.buf[5]])
    }
    pub fn next_header(&self) -> u8 {
        self.buf[6]
    }
    pub fn hop_limit(&self) -> u8 {
        self.buf[7]
    }
    pub fn src(&self) -> [u8; 16] {
        self.buf[8..24].try_into().expect("16 bytes")
    }
    pub fn dst(&self) -> [u8; 16] {
        self.buf[24..40].try_into().expect("16 bytes")
    }

    /// Skips extension headers: (upper-layer protocol, its bytes present, bytes cut off by the
    /// capture). A fragment header with a non-zero offset or more-fragments set is a fragment.
    pub fn upper_layer(&self) -> Result<(u8, &'a [u8], u32), Skip> {
        // Payload length 0 is a jumbogram or a TSO capture: take what is there.
        let announced = match self.payload_len() as usize {
            0 => self.buf.len() - Self::HEADER_LEN,
            n => n,
        };
        let present = &self.buf[Self::HEADER_LEN..];
        let (mut rest, missing) = if announced <= present.len() {
            (&present[..announced], 0u32)
        } else {
            (present, (announced - present.len()) as u32)
        };
        let mut next = self.next_header();
        for _ in 0..MAX_V6_EXT_HEADERS {
            let len = match next {
                V6_HOP_BY_HOP | V6_ROUTING | V6_DEST_OPTS | V6_MOBILITY => {
                    if rest.len() < 2 {
                        return Err(Skip::Malformed("ipv6 extension header"));
                    }
                    (rest[1] as usize + 1) * 8
                }
                V6_AUTH => {
                    if rest.len() < 2 {
                        return Err(Skip::Malformed("ipv6 authentication header"));
                    }
                    (rest[1] as usize + 2) * 4
                }
                V6_FRAGMENT => {
                    if rest.len() < 8 {
                        return Err(Skip::Malformed("ipv6 fragment header"));
                    }
                    let off_flags = u16::from_be_bytes([rest[2], rest[3]]);
                    // An "atomic" fragment (offset 0, no more fragments) is a whole packet.
                    if off_flags & 0xfff9 != 0 {
                        return Err(Skip::Fragment);
                    }
                    8
                }
                V6_NO_NEXT => return Ok((next, &[], 0)),
                upper => return Ok((upper, rest, missing)),
            };
            if rest.len() < len {
                return Err(Skip::Malformed("ipv6 extension header length"));
            }
            next = rest[0];
            rest = &rest[len..];
        }
        Err(Skip::Malformed("too many ipv6 extension headers"))
    }
}
