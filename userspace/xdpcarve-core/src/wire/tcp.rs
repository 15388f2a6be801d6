//! TCP header with options.

use super::link::Truncated;

pub const OPT_END: u8 = 0;
pub const OPT_NOP: u8 = 1;
pub const OPT_MSS: u8 = 2;
pub const OPT_WINDOW_SCALE: u8 = 3;
/// The largest shift a window scale option may ask for (RFC 7323 section 2.3).
pub const MAX_WINDOW_SCALE: u8 = 14;

/// TCP control flags (the low byte of the flags field).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct TcpFlags(pub u8);

impl TcpFlags {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const PSH: u8 = 0x08;
    pub const ACK: u8 = 0x10;
    pub const URG: u8 = 0x20;

    pub fn fin(self) -> bool {
        self.0 & Self::FIN != 0
    }
    pub fn syn(self) -> bool {
        self.0 & Self::SYN != 0
    }
    pub fn rst(self) -> bool {
        self.0 & Self::RST != 0
    }
    pub fn ack(self) -> bool {
        self.0 & Self::ACK != 0
    }
    pub fn urg(self) -> bool {
        self.0 & Self::URG != 0
    }
}

/// A TCP segment: header (with options) and the payload present in the buffer.
#[derive(Copy, Clone, Debug)]
pub struct TcpSegment<'a> {
    buf: &'a [u8],
}

impl<'a> TcpSegment<'a> {
    pub const MIN_HEADER_LEN: usize = 20;

    pub fn new_checked(buf: &'a [u8]) -> Result<Self, Truncated> {
        if buf.len() < Self::MIN_HEADER_LEN {
            return Err(Truncated);
        }
        let s = TcpSegment { buf };
        let hl = s.header_len();
        if hl < Self::MIN_HEADER_LEN || hl > buf.len() {
            return Err(Truncated);
        }
        Ok(s)
    }
    pub fn src_port(&self) -> u16 {
        u16::from_be_bytes([self.buf[0], self.buf[1]])
    }
    pub fn dst_port(&self) -> u16 {
        u16::from_be_bytes([self.buf[2], self.buf[3]])
    }
    pub fn seq(&self) -> u32 {
        u32::from_be_bytes([self.buf[4], self.buf[5], self.buf[6], self.buf[7]])
    }
    pub fn ack(&self) -> u32 {
        u32::from_be_bytes([self.buf[8], self.buf[9], self.buf[10], self.buf[11]])
    }
    pub fn header_len(&self) -> usize {
        ((self.buf[12] >> 4) as usize) * 4
    }
    pub fn flags(&self) -> TcpFlags {
        TcpFlags(self.buf[13])
    }
    pub fn window(&self) -> u16 {
        u16::from_be_bytes([self.buf[14], self.buf[15]])
    }
    pub fn urgent_pointer(&self) -> u16 {
        u16::from_be_bytes([self.buf[18], self.buf[19]])
    }
    pub fn options(&self) -> &'a [u8] {
        &self.buf[Self::MIN_HEADER_LEN..self.header_len()]
    }
    /// The window scale option's shift (RFC 7323), capped at 14 as the RFC tells a receiver to;
    /// `None` without the option (or with options that do not parse up to it).
    pub fn window_scale(&self) -> Option<u8> {
        let mut opts = self.options();
        while let [kind, rest @ ..] = opts {
            match *kind {
                OPT_END => return None,
                OPT_NOP => opts = rest,
                _ => {
                    let len = *rest.first()? as usize;
                    if len < 2 || len > opts.len() {
                        return None;
                    }
                    if *kind == OPT_WINDOW_SCALE && len == 3 {
                        return Some(opts[2].min(MAX_WINDOW_SCALE));
                    }
                    opts = &opts[len..];
                }
            }
        }
        None
    }
    pub fn payload(&self) -> &'a [u8] {
        &self.buf[self.header_len()..]
    }
}
