//! IEEE 802.11 frames (LINKTYPE_IEEE802_11) and the radiotap header that monitor-mode captures put
//! in front of them (LINKTYPE_IEEE802_11_RADIOTAP). Only unprotected data frames carry IP; the
//! rest (management, control, null data, encrypted frames) is skipped as non-IP, as Zeek does.

use super::link::Truncated;
use super::Skip;

/// Radiotap Flags: the frame ends with its 4-byte FCS.
pub const RADIOTAP_FLAG_FCS: u8 = 0x10;
/// Radiotap Flags: padding between the 802.11 header and the payload, to a multiple of 4 bytes.
pub const RADIOTAP_FLAG_DATAPAD: u8 = 0x20;
/// Radiotap Flags: the frame failed its FCS check.
pub const RADIOTAP_FLAG_BAD_FCS: u8 = 0x40;

/// A radiotap header: version (1, always 0), pad (1), length (le16, the whole header), one or
/// more present bitmaps (le32, bit 31 announces another), then the fields, each aligned to its
/// own size from the start of the header.
#[derive(Copy, Clone, Debug)]
pub struct RadiotapHeader<'a> {
    buf: &'a [u8],
    len: usize,
    flags: Option<u8>,
}

impl<'a> RadiotapHeader<'a> {
    pub const MIN_LEN: usize = 8;

    /// Checks the version and the length, and finds the Flags field if one is present.
    pub fn new_checked(buf: &'a [u8]) -> Result<Self, Truncated> {
        if buf.len() < Self::MIN_LEN || buf[0] != 0 {
            return Err(Truncated);
        }
        let len = usize::from(u16::from_le_bytes([buf[2], buf[3]]));
        if len < Self::MIN_LEN || len > buf.len() {
            return Err(Truncated);
        }
        let header = &buf[..len];
        let le32 = |at: usize| -> Option<u32> { Some(u32::from_le_bytes(header.get(at..at + 4)?.try_into().ok()?)) };
        let present = le32(4).ok_or(Truncated)?;
        // Fields start after the last present word (the length bounds the walk).
        let mut fields = 8;
        let mut word = present;
        while word & 0x8000_0000 != 0 {
            word = le32(fields).ok_or(Truncated)?;
            fields += 4;
        }
        // Only Flags (bit 1) is read; TSFT (bit 0, a u64 aligned to 8) is the one field before it.
        let flags = if present & 0b10 != 0 {
            let mut at = fields;
            if present & 0b01 != 0 {
                at = at.next_multiple_of(8) + 8;
            }
            Some(*header.get(at).ok_or(Truncated)?)
        } else {
            None
        };
        Ok(RadiotapHeader { buf, len, flags })
    }
    /// The header length (`it_len`).
    pub fn header_len(&self) -> usize {
        self.len
    }
    /// The Flags field, when present.
    pub fn flags(&self) -> Option<u8> {
        self.flags
    }
    /// The 802.11 frame after the header (FCS included if the flags say so).
    pub fn payload(&self) -> &'a [u8] {
        &self.buf[self.len..]
    }
}

/// The fixed part of an 802.11 MAC header: frame control (2), duration (2), three addresses (18),
/// sequence control (2). Data frames add address 4, QoS control and HT control as their frame
/// control says.
#[derive(Copy, Clone, Debug)]
pub struct Ieee80211Header<'a> {
    buf: &'a [u8],
}

const TYPE_DATA: u8 = 2;
const FC_TO_DS: u8 = 0x01;
const FC_FROM_DS: u8 = 0x02;
const FC_MORE_FRAGMENTS: u8 = 0x04;
const FC_PROTECTED: u8 = 0x40;
const FC_ORDER: u8 = 0x80;

impl<'a> Ieee80211Header<'a> {
    pub const MIN_DATA_LEN: usize = 24;

    /// Needs the frame control field only: control frames are shorter than a data header.
    pub fn new_checked(buf: &'a [u8]) -> Result<Self, Truncated> {
        if buf.len() < 2 {
            return Err(Truncated);
        }
        Ok(Ieee80211Header { buf })
    }
    pub fn version(&self) -> u8 {
        self.buf[0] & 0x03
    }
    /// 0 management, 1 control, 2 data, 3 extension.
    pub fn frame_type(&self) -> u8 {
        (self.buf[0] >> 2) & 0x03
    }
    pub fn subtype(&self) -> u8 {
        self.buf[0] >> 4
    }
    fn flags(&self) -> u8 {
        self.buf[1]
    }
    pub fn is_protected(&self) -> bool {
        self.flags() & FC_PROTECTED != 0
    }
    /// Data subtypes 8–15 are the QoS ones: a 2-byte QoS control field follows the addresses.
    pub fn is_qos(&self) -> bool {
        self.subtype() & 0x08 != 0
    }
    /// Null, CF-Ack, CF-Poll and their QoS variants: bit 2 of a data subtype means no payload.
    pub fn has_no_data(&self) -> bool {
        self.subtype() & 0x04 != 0
    }
    /// ToDS and FromDS both set (a WDS/mesh frame): address 4 follows sequence control.
    pub fn has_addr4(&self) -> bool {
        self.flags() & (FC_TO_DS | FC_FROM_DS) == FC_TO_DS | FC_FROM_DS
    }
    /// Where the QoS control field is (QoS subtypes only).
    fn qos_offset(&self) -> usize {
        Self::MIN_DATA_LEN + if self.has_addr4() { 6 } else { 0 }
    }
    /// The data header's length, from its frame control; the bytes may not all be there.
    pub fn data_header_len(&self) -> usize {
        let mut len = self.qos_offset();
        if self.is_qos() {
            len += 2;
            // In a QoS data frame the Order bit announces an HT/VHT control field.
            if self.flags() & FC_ORDER != 0 {
                len += 4;
            }
        }
        len
    }
}

/// The ethertype and payload of an 802.11 frame (its FCS already cut off). `datapad`: radiotap
/// says the header is padded to a multiple of 4 bytes.
pub(super) fn data_payload(frame: &[u8], datapad: bool) -> Result<(u16, &[u8]), Skip> {
    let h = Ieee80211Header::new_checked(frame).map_err(|_| Skip::Malformed("802.11 header"))?;
    // Other protocol versions (802.11ah PV1) and non-data frames carry no IP we can read.
    if h.version() != 0 || h.frame_type() != TYPE_DATA || h.has_no_data() {
        return Err(Skip::NonIp);
    }
    // Encrypted (WEP/WPA): no keys, nothing to decode.
    if h.is_protected() {
        return Err(Skip::NonIp);
    }
    let mut hdr_len = h.data_header_len();
    if frame.len() < hdr_len {
        return Err(Skip::Malformed("802.11 header"));
    }
    // A fragment of an MSDU: not reassembled (MoreFragments, or a non-zero fragment number).
    if frame[1] & FC_MORE_FRAGMENTS != 0 || frame[22] & 0x0f != 0 {
        return Err(Skip::Fragment);
    }
    // An A-MSDU (QoS control bit 7) packs several subframes, each with its own addresses and
    // length: not decoded.
    if h.is_qos() && frame[h.qos_offset()] & 0x80 != 0 {
        return Err(Skip::NonIp);
    }
    if datapad {
        hdr_len = hdr_len.next_multiple_of(4);
    }
    let body = frame.get(hdr_len..).ok_or(Skip::Malformed("802.11 header"))?;
    llc_snap(body)
}

/// LLC/SNAP: DSAP 0xAA, SSAP 0xAA, control 0x03 (UI), OUI, ethertype. OUI 00-00-00 is RFC 1042,
/// 00-00-F8 is 802.1H bridge tunnelling; both carry an ethertype (as Wireshark reads them).
fn llc_snap(body: &[u8]) -> Result<(u16, &[u8]), Skip> {
    match body {
        [0xaa, 0xaa, 0x03, 0x00, 0x00, 0x00 | 0xf8, t0, t1, rest @ ..] => Ok((u16::from_be_bytes([*t0, *t1]), rest)),
        // Cut short (by the snap length, typically) inside what may be an LLC/SNAP header.
        _ if body.len() < 8 && [0xaa, 0xaa, 0x03].starts_with(&body[..body.len().min(3)]) => {
            Err(Skip::Malformed("802.11 llc/snap header"))
        }
        // Other LLC (STP, NetBIOS, ...) or another OUI: not IP.
        _ => Err(Skip::NonIp),
    }
}

/// The ethertype and payload of a radiotap-framed 802.11 frame.
pub(super) fn radiotap_payload(frame: &[u8]) -> Result<(u16, &[u8]), Skip> {
    let rt = RadiotapHeader::new_checked(frame).map_err(|_| Skip::Malformed("radiotap header"))?;
    let flags = rt.flags().unwrap_or(0);
    // Frames that failed their FCS check hold corrupt bytes: better a gap than wrong file content.
    if flags & RADIOTAP_FLAG_BAD_FCS != 0 {
        return Err(Skip::Malformed("802.11 frame with a bad fcs"));
    }
    let mut wifi = rt.payload();
    if flags & RADIOTAP_FLAG_FCS != 0 {
        // A frame cut by the snap length loses 4 more bytes here; IP's length reports them missing.
        let Some(len) = wifi.len().checked_sub(4) else {
            return Err(Skip::Malformed("802.11 frame shorter than its fcs"));
        };
        wifi = &wifi[..len];
    }
    data_payload(wifi, flags & RADIOTAP_FLAG_DATAPAD != 0)
}
