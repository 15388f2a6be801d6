//! The Linux cooked-capture headers (the link types themselves are `xdpcarve_contract::LinkType`).

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
