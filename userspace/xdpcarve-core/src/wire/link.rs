//! The Linux cooked-capture and NFLOG headers (the link types themselves are
//! `xdpcarve_contract::LinkType`).

/// Too few bytes for the header.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Truncated;

/// Linux cooked capture v1: packet type (2), ARPHRD (2), address length (2), address (8),
/// protocol (2, an ethertype).
#[derive(Copy, Clone, Debug)]
pub struct LinuxSllHeader<'a> {
    buf: &'a [u8],
}

impl<'a> LinuxSllHeader<'a> {
    pub const LEN: usize = 16;

    pub fn new_checked(buf: &'a [u8]) -> Result<Self, Truncated> {
        if buf.len() < Self::LEN {
            return Err(Truncated);
        }
        Ok(LinuxSllHeader { buf })
    }
    pub fn packet_type(&self) -> u16 {
        u16::from_be_bytes([self.buf[0], self.buf[1]])
    }
    pub fn protocol(&self) -> u16 {
        u16::from_be_bytes([self.buf[14], self.buf[15]])
    }
    pub fn payload(&self) -> &'a [u8] {
        &self.buf[Self::LEN..]
    }
}

/// Linux cooked capture v2: protocol (2), reserved (2), interface index (4), ARPHRD (2),
/// packet type (1), address length (1), address (8).
#[derive(Copy, Clone, Debug)]
pub struct LinuxSll2Header<'a> {
    buf: &'a [u8],
}

impl<'a> LinuxSll2Header<'a> {
    pub const LEN: usize = 20;

    pub fn new_checked(buf: &'a [u8]) -> Result<Self, Truncated> {
        if buf.len() < Self::LEN {
            return Err(Truncated);
        }
        Ok(LinuxSll2Header { buf })
    }
    pub fn protocol(&self) -> u16 {
        u16::from_be_bytes([self.buf[0], self.buf[1]])
    }
    pub fn interface_index(&self) -> u32 {
        u32::from_be_bytes([self.buf[4], self.buf[5], self.buf[6], self.buf[7]])
    }
    pub fn payload(&self) -> &'a [u8] {
        &self.buf[Self::LEN..]
    }
}

/// NFLOG address families (the header's first byte).
pub const AF_INET: u8 = 2;
pub const AF_INET6: u8 = 10;
/// The TLV holding the logged packet, from its network header on.
pub const NFULA_PAYLOAD: u16 = 9;

/// Linux netfilter log (LINKTYPE_NFLOG): family (1), version (1), resource id (be16), then TLVs:
/// length (2, the TLV header included), type (2), value, padded to 4 bytes. TLV lengths and types
/// are in the byte order of the host that captured (the file's), so it is guessed per packet.
#[derive(Copy, Clone, Debug)]
pub struct NflogHeader<'a> {
    buf: &'a [u8],
}

impl<'a> NflogHeader<'a> {
    pub const LEN: usize = 4;

    pub fn new_checked(buf: &'a [u8]) -> Result<Self, Truncated> {
        if buf.len() < Self::LEN {
            return Err(Truncated);
        }
        Ok(NflogHeader { buf })
    }
    pub fn family(&self) -> u8 {
        self.buf[0]
    }
    pub fn version(&self) -> u8 {
        self.buf[1]
    }
    pub fn resource_id(&self) -> u16 {
        u16::from_be_bytes([self.buf[2], self.buf[3]])
    }

    /// The value of the first TLV of type `wanted`; `None` if there is none. A TLV cut off by the
    /// snap length yields the bytes present only if it is the one wanted (the payload comes last).
    pub fn tlv(&self, wanted: u16) -> Result<Option<&'a [u8]>, Truncated> {
        let mut rest = &self.buf[Self::LEN..];
        let big = match rest {
            // Types are small numbers: the zero byte of the first TLV's type gives the order away.
            [_, _, 0, t, ..] if *t != 0 => true,
            [_, _, t, 0, ..] if *t != 0 => false,
            [a, b, ..] => {
                let fits = |n: u16| (4..=rest.len()).contains(&usize::from(n));
                !fits(u16::from_le_bytes([*a, *b])) && fits(u16::from_be_bytes([*a, *b]))
            }
            _ => false,
        };
        let rd = |b: [u8; 2]| {
            if big {
                u16::from_be_bytes(b)
            } else {
                u16::from_le_bytes(b)
            }
        };
        while let [l0, l1, t0, t1, ..] = *rest {
            let len = usize::from(rd([l0, l1]));
            // Also the loop guard: every TLV moves the walk on by at least 4 bytes.
            if len < 4 {
                return Err(Truncated);
            }
            // The type's two top bits are netlink flags (nested, network byte order).
            if rd([t0, t1]) & 0x3fff == wanted {
                return Ok(Some(&rest[4..len.min(rest.len())]));
            }
            if len > rest.len() {
                return Err(Truncated);
            }
            rest = rest.get(len.next_multiple_of(4)..).unwrap_or_default();
        }
        Ok(None)
    }
}
