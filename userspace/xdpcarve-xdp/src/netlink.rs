//! The netlink requests aya does not expose: which XDP program is attached to an interface
//! (RTM_GETLINK, IFLA_XDP), detaching it (RTM_SETLINK with fd -1), used to find and replace a
//! program left attached by an earlier run; and the driver's XDP features (generic netlink family
//! `netdev`, kernel 6.3+), which `xdpcarve check` reads without attaching anything.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};

const IFLA_XDP: u16 = 43;
const IFLA_XDP_FD: u16 = 1;
const IFLA_XDP_ATTACHED: u16 = 2;
const IFLA_XDP_FLAGS: u16 = 3;
const IFLA_XDP_PROG_ID: u16 = 4;
const NLA_F_NESTED: u16 = 1 << 15;
const NLA_TYPE_MASK: u16 = !(NLA_F_NESTED | (1 << 14));

const XDP_ATTACHED_DRV: u8 = 1;
const XDP_ATTACHED_SKB: u8 = 2;
const XDP_ATTACHED_HW: u8 = 3;
const XDP_FLAGS_SKB_MODE: u32 = 1 << 1;
const XDP_FLAGS_DRV_MODE: u32 = 1 << 2;
const XDP_FLAGS_HW_MODE: u32 = 1 << 3;

/// The XDP program attached to an interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AttachedXdp {
    pub prog_id: u32,
    /// XDP_ATTACHED_* value reported by the kernel.
    pub attached: u8,
    /// XDP_FLAGS_*_MODE to detach it with.
    pub mode_flags: u32,
}

impl AttachedXdp {
    pub fn mode_name(&self) -> &'static str {
        match self.attached {
            XDP_ATTACHED_DRV => "native",
            XDP_ATTACHED_SKB => "generic",
            XDP_ATTACHED_HW => "offload",
            _ => "multiple",
        }
    }
}

/// An rtnetlink socket. The `File` owns the descriptor (closed on drop); netlink sockets accept
/// plain read(2)/write(2), the same as recv/send without flags, so no unsafe I/O calls are needed.
struct NetlinkSocket(File);

impl NetlinkSocket {
    fn open() -> io::Result<Self> {
        Self::open_protocol(libc::NETLINK_ROUTE)
    }

    fn open_protocol(protocol: libc::c_int) -> io::Result<Self> {
        // SAFETY: socket(2) takes no pointers; it returns a new descriptor or -1.
        let fd = unsafe { libc::socket(libc::AF_NETLINK, libc::SOCK_RAW | libc::SOCK_CLOEXEC, protocol) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just returned by a successful socket(2) and nothing else refers to it,
        // so the OwnedFd is its only owner and closes it exactly once.
        let owned = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(NetlinkSocket(File::from(owned)))
    }

    /// Sends one request and returns the first reply datagram (at most 32 KiB).
    fn request(&self, msg: &[u8]) -> io::Result<Vec<u8>> {
        // A netlink datagram is sent whole or not at all.
        if (&self.0).write(msg)? != msg.len() {
            return Err(io::Error::new(io::ErrorKind::WriteZero, "netlink request sent in part"));
        }
        let mut buf = vec![0u8; 32 * 1024];
        let n = (&self.0).read(&mut buf)?;
        buf.truncate(n);
        Ok(buf)
    }
}

/// nlmsghdr + ifinfomsg for `ifindex`, attributes appended by the caller.
fn link_message(msg_type: u16, flags: u16, ifindex: u32) -> Vec<u8> {
    let mut m = Vec::with_capacity(64);
    m.extend_from_slice(&0u32.to_ne_bytes()); // length, patched by finish()
    m.extend_from_slice(&msg_type.to_ne_bytes());
    m.extend_from_slice(&flags.to_ne_bytes());
    m.extend_from_slice(&1u32.to_ne_bytes()); // seq
    m.extend_from_slice(&0u32.to_ne_bytes()); // pid
                                              // ifinfomsg: family, pad, type, index, flags, change
    m.push(libc::AF_UNSPEC as u8);
    m.push(0);
    m.extend_from_slice(&0u16.to_ne_bytes());
    m.extend_from_slice(&(ifindex as i32).to_ne_bytes());
    m.extend_from_slice(&0u32.to_ne_bytes());
    m.extend_from_slice(&0u32.to_ne_bytes());
    m
}

fn push_attr(m: &mut Vec<u8>, kind: u16, payload: &[u8]) {
    // Our own attributes: a few bytes each, far below the 16-bit nla_len.
    let len = u16::try_from(4 + payload.len()).expect("netlink attribute longer than 64 KiB");
    m.extend_from_slice(&len.to_ne_bytes());
    m.extend_from_slice(&kind.to_ne_bytes());
    m.extend_from_slice(payload);
    m.resize(m.len().next_multiple_of(4), 0);
}

fn finish(mut m: Vec<u8>) -> Vec<u8> {
    let len = u32::try_from(m.len()).expect("netlink message longer than 4 GiB");
    m[..4].copy_from_slice(&len.to_ne_bytes());
    m
}

fn ne_u16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at.checked_add(2)?)?.try_into().ok()?))
}

fn ne_u32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at.checked_add(4)?)?.try_into().ok()?))
}

/// Iterates over netlink attributes as (type, payload). The lengths come from the kernel: an
/// attribute whose nla_len is below the header or runs past the buffer ends the iteration.
fn attrs(mut buf: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        let len = usize::from(ne_u16(buf, 0)?);
        let kind = ne_u16(buf, 2)? & NLA_TYPE_MASK;
        let payload = buf.get(4..len)?;
        // nla_len <= u16::MAX, so the alignment cannot overflow; the last attribute may omit its
        // padding.
        let next = len.next_multiple_of(4).min(buf.len());
        buf = buf.get(next..).unwrap_or_default();
        Some((kind, payload))
    })
}

/// Returns an NLMSG_ERROR's error code (0 for an ACK), or None for another message type.
fn error_code(reply: &[u8]) -> Option<i32> {
    if ne_u16(reply, 4)? == libc::NLMSG_ERROR as u16 {
        Some(i32::from_ne_bytes(reply.get(16..20)?.try_into().ok()?))
    } else {
        None
    }
}

/// The errno of a negative NLMSG_ERROR code (saturating: `i32::MIN` from a broken reply must
/// not overflow).
fn errno_of(code: i32) -> io::Error {
    io::Error::from_raw_os_error(code.saturating_neg())
}

/// The XDP program attached to `ifindex`, if any.
pub fn query_xdp(ifindex: u32) -> io::Result<Option<AttachedXdp>> {
    let sock = NetlinkSocket::open()?;
    let msg = finish(link_message(libc::RTM_GETLINK, libc::NLM_F_REQUEST as u16, ifindex));
    let reply = sock.request(&msg)?;
    if let Some(code) = error_code(&reply) {
        return Err(errno_of(code));
    }
    parse_link_reply(&reply)
}

fn parse_link_reply(reply: &[u8]) -> io::Result<Option<AttachedXdp>> {
    const HEADERS: usize = 16 + 16; // nlmsghdr + ifinfomsg
    let short = || io::Error::new(io::ErrorKind::InvalidData, "short RTM_NEWLINK reply");
    // nlmsg_len comes from the kernel: it may claim more than was received (clamped) or less
    // than the headers (an error, not a panic).
    let msg_len = ne_u32(reply, 0)
        .and_then(|len| usize::try_from(len).ok())
        .ok_or_else(short)?
        .min(reply.len());
    let attributes = reply.get(HEADERS..msg_len).ok_or_else(short)?;
    for (kind, payload) in attrs(attributes) {
        if kind != IFLA_XDP {
            continue;
        }
        let mut attached = 0u8;
        let mut prog_id = 0u32;
        for (k, p) in attrs(payload) {
            match k {
                IFLA_XDP_ATTACHED => attached = p.first().copied().unwrap_or(attached),
                IFLA_XDP_PROG_ID => prog_id = ne_u32(p, 0).unwrap_or(prog_id),
                _ => {}
            }
        }
        if attached == 0 || prog_id == 0 {
            return Ok(None);
        }
        let mode_flags = match attached {
            XDP_ATTACHED_DRV => XDP_FLAGS_DRV_MODE,
            XDP_ATTACHED_SKB => XDP_FLAGS_SKB_MODE,
            XDP_ATTACHED_HW => XDP_FLAGS_HW_MODE,
            _ => 0,
        };
        return Ok(Some(AttachedXdp {
            prog_id,
            attached,
            mode_flags,
        }));
    }
    Ok(None)
}

/// Detaches the netlink-attached XDP program of `ifindex` in the given mode. Fails with EBUSY
/// when the program is held by a BPF link (its owner is alive, or the link is pinned).
pub fn detach_xdp(ifindex: u32, mode_flags: u32) -> io::Result<()> {
    let sock = NetlinkSocket::open()?;
    let mut m = link_message(
        libc::RTM_SETLINK,
        (libc::NLM_F_REQUEST | libc::NLM_F_ACK) as u16,
        ifindex,
    );
    let mut nested = Vec::new();
    push_attr(&mut nested, IFLA_XDP_FD, &(-1i32).to_ne_bytes());
    push_attr(&mut nested, IFLA_XDP_FLAGS, &mode_flags.to_ne_bytes());
    push_attr(&mut m, IFLA_XDP | NLA_F_NESTED, &nested);
    let reply = sock.request(&finish(m))?;
    match error_code(&reply) {
        Some(0) => Ok(()),
        Some(code) => Err(errno_of(code)),
        None => Err(io::Error::new(io::ErrorKind::InvalidData, "no ACK to RTM_SETLINK")),
    }
}

/// What the driver says it can do with XDP (enum netdev_xdp_act, include/uapi/linux/netdev.h).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct XdpFeatures(pub u64);

impl XdpFeatures {
    const BASIC: u64 = 1;
    const REDIRECT: u64 = 2;
    const XSK_ZEROCOPY: u64 = 8;
    const RX_SG: u64 = 32;

    /// XDP in the driver (native mode) with redirects, which AF_XDP needs.
    pub fn native(self) -> bool {
        self.0 & (Self::BASIC | Self::REDIRECT) == Self::BASIC | Self::REDIRECT
    }

    /// AF_XDP sockets without a copy (XDP_ZEROCOPY).
    pub fn zero_copy(self) -> bool {
        self.0 & Self::XSK_ZEROCOPY != 0
    }

    /// Frames larger than one buffer (multi-buffer XDP).
    pub fn multi_buffer(self) -> bool {
        self.0 & Self::RX_SG != 0
    }
}

const GENL_ID_CTRL: u16 = 0x10;
const CTRL_CMD_GETFAMILY: u8 = 3;
const CTRL_ATTR_FAMILY_ID: u16 = 1;
const CTRL_ATTR_FAMILY_NAME: u16 = 2;
const NETDEV_CMD_DEV_GET: u8 = 1;
const NETDEV_A_DEV_IFINDEX: u16 = 1;
const NETDEV_A_DEV_XDP_FEATURES: u16 = 3;

/// nlmsghdr + genlmsghdr, attributes appended by the caller.
fn genl_message(family: u16, cmd: u8) -> Vec<u8> {
    let mut m = Vec::with_capacity(64);
    m.extend_from_slice(&0u32.to_ne_bytes()); // length, patched by finish()
    m.extend_from_slice(&family.to_ne_bytes());
    m.extend_from_slice(&(libc::NLM_F_REQUEST as u16).to_ne_bytes());
    m.extend_from_slice(&1u32.to_ne_bytes()); // seq
    m.extend_from_slice(&0u32.to_ne_bytes()); // pid
    m.extend_from_slice(&[cmd, 1, 0, 0]); // cmd, version, reserved
    m
}

/// The attributes of a generic netlink reply (after nlmsghdr and genlmsghdr).
fn genl_reply_attrs(reply: &[u8]) -> io::Result<&[u8]> {
    if let Some(code) = error_code(reply) {
        return Err(errno_of(code));
    }
    let msg_len = ne_u32(reply, 0)
        .and_then(|len| usize::try_from(len).ok())
        .unwrap_or(0)
        .min(reply.len());
    reply
        .get(20..msg_len)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "short generic netlink reply"))
}

/// The XDP features of `ifindex`'s driver. `Ok(None)` when the kernel has no `netdev` family
/// (before 6.3): it cannot tell without attaching a program.
pub fn xdp_features(ifindex: u32) -> io::Result<Option<XdpFeatures>> {
    let sock = NetlinkSocket::open_protocol(libc::NETLINK_GENERIC)?;
    let mut m = genl_message(GENL_ID_CTRL, CTRL_CMD_GETFAMILY);
    push_attr(&mut m, CTRL_ATTR_FAMILY_NAME, b"netdev\0");
    let reply = sock.request(&finish(m))?;
    let family = match genl_reply_attrs(&reply) {
        Ok(a) => attrs(a)
            .find(|(k, _)| *k == CTRL_ATTR_FAMILY_ID)
            .and_then(|(_, p)| ne_u16(p, 0)),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(None),
        Err(e) => return Err(e),
    };
    let Some(family) = family else { return Ok(None) };
    let mut m = genl_message(family, NETDEV_CMD_DEV_GET);
    push_attr(&mut m, NETDEV_A_DEV_IFINDEX, &ifindex.to_ne_bytes());
    let reply = sock.request(&finish(m))?;
    let features = attrs(genl_reply_attrs(&reply)?)
        .find(|(k, _)| *k == NETDEV_A_DEV_XDP_FEATURES)
        .and_then(|(_, p)| Some(u64::from_ne_bytes(p.get(..8)?.try_into().ok()?)));
    Ok(features.map(XdpFeatures))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_has_no_native_xdp() {
        let lo = crate::Interface::lookup("lo").unwrap();
        if let Some(f) = xdp_features(lo.index).unwrap() {
            assert!(!f.native() && !f.zero_copy(), "{f:?}");
        }
    }

    #[test]
    fn parses_attached_program_from_reply() {
        let mut m = link_message(libc::RTM_NEWLINK, 0, 7);
        push_attr(&mut m, 3, b"eth0\0"); // IFLA_IFNAME, skipped
        let mut nested = Vec::new();
        push_attr(&mut nested, IFLA_XDP_ATTACHED, &[XDP_ATTACHED_SKB]);
        push_attr(&mut nested, IFLA_XDP_PROG_ID, &42u32.to_ne_bytes());
        push_attr(&mut m, IFLA_XDP | NLA_F_NESTED, &nested);
        let reply = finish(m);
        let got = parse_link_reply(&reply).unwrap().unwrap();
        assert_eq!(
            got,
            AttachedXdp {
                prog_id: 42,
                attached: XDP_ATTACHED_SKB,
                mode_flags: XDP_FLAGS_SKB_MODE
            }
        );
        assert_eq!(got.mode_name(), "generic");
    }

    #[test]
    fn no_program_attached() {
        let mut m = link_message(libc::RTM_NEWLINK, 0, 7);
        let mut nested = Vec::new();
        push_attr(&mut nested, IFLA_XDP_ATTACHED, &[0]);
        push_attr(&mut m, IFLA_XDP | NLA_F_NESTED, &nested);
        assert_eq!(parse_link_reply(&finish(m)).unwrap(), None);
    }

    #[test]
    fn truncated_attributes_stop_cleanly() {
        let mut m = link_message(libc::RTM_NEWLINK, 0, 7);
        m.extend_from_slice(&[200, 0, 43, 0, 1, 2]); // claims 200 bytes, has 6
        assert_eq!(parse_link_reply(&finish(m)).unwrap(), None);
    }

    #[test]
    fn message_length_below_the_headers_is_an_error_not_a_panic() {
        let mut m = link_message(libc::RTM_NEWLINK, 0, 7);
        let mut nested = Vec::new();
        push_attr(&mut nested, IFLA_XDP_PROG_ID, &42u32.to_ne_bytes());
        push_attr(&mut m, IFLA_XDP | NLA_F_NESTED, &nested);
        let mut reply = finish(m);
        reply[..4].copy_from_slice(&10u32.to_ne_bytes()); // nlmsg_len shorter than the headers
        assert_eq!(parse_link_reply(&reply).unwrap_err().kind(), io::ErrorKind::InvalidData);
        assert!(parse_link_reply(&reply[..3]).is_err());
        reply[..4].copy_from_slice(&u32::MAX.to_ne_bytes()); // claims more than arrived: clamped
        assert!(parse_link_reply(&reply).is_ok());
    }

    #[test]
    fn malformed_attributes_stop_cleanly() {
        // nla_len 0 and 3 (below the attribute header), and a truncated nested PROG_ID payload.
        for bad in [[0u8, 0, 43, 0], [3, 0, 43, 0]] {
            assert_eq!(attrs(&bad).count(), 0);
        }
        let mut m = link_message(libc::RTM_NEWLINK, 0, 7);
        let mut nested = Vec::new();
        push_attr(&mut nested, IFLA_XDP_ATTACHED, &[XDP_ATTACHED_DRV]);
        push_attr(&mut nested, IFLA_XDP_PROG_ID, &[1, 2]);
        push_attr(&mut m, IFLA_XDP | NLA_F_NESTED, &nested);
        assert_eq!(parse_link_reply(&finish(m)).unwrap(), None);
    }

    #[test]
    fn error_codes_are_read_without_overflow() {
        let mut reply = vec![0u8; 20];
        reply[4..6].copy_from_slice(&(libc::NLMSG_ERROR as u16).to_ne_bytes());
        reply[16..20].copy_from_slice(&(-libc::EBUSY).to_ne_bytes());
        assert_eq!(error_code(&reply), Some(-libc::EBUSY));
        assert_eq!(errno_of(-libc::EBUSY).raw_os_error(), Some(libc::EBUSY));
        reply[16..20].copy_from_slice(&i32::MIN.to_ne_bytes());
        assert_eq!(errno_of(error_code(&reply).unwrap()).raw_os_error(), Some(i32::MAX));
        assert_eq!(error_code(&reply[..19]), None, "too short for the error code");
        assert_eq!(error_code(&[]), None);
    }

    #[test]
    fn loopback_has_no_xdp_program() {
        // Any process may query; lo never has XDP in a test environment.
        // SAFETY: if_nametoindex only reads the NUL-terminated literal, which is 'static.
        let lo = unsafe { libc::if_nametoindex(c"lo".as_ptr()) };
        if lo != 0 {
            assert_eq!(query_xdp(lo).unwrap(), None);
        }
    }
}
