//! The two rtnetlink requests aya does not expose: which XDP program is attached to an
//! interface (RTM_GETLINK, IFLA_XDP), and detaching it (RTM_SETLINK with fd -1). Used to find and
//! replace a program left attached by an earlier run.

use std::io;

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

struct NetlinkSocket(libc::c_int);

impl Drop for NetlinkSocket {
    fn drop(&mut self) {
        unsafe { libc::close(self.0) };
    }
}

impl NetlinkSocket {
    fn open() -> io::Result<Self> {
        let fd = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::NETLINK_ROUTE,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(NetlinkSocket(fd))
    }

    fn request(&self, msg: &[u8]) -> io::Result<Vec<u8>> {
        let sent = unsafe { libc::send(self.0, msg.as_ptr().cast(), msg.len(), 0) };
        if sent < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut buf = vec![0u8; 32 * 1024];
        let n = unsafe { libc::recv(self.0, buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        buf.truncate(n as usize);
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
    let len = 4 + payload.len();
    m.extend_from_slice(&(len as u16).to_ne_bytes());
    m.extend_from_slice(&kind.to_ne_bytes());
    m.extend_from_slice(payload);
    while m.len() % 4 != 0 {
        m.push(0);
    }
}

fn finish(mut m: Vec<u8>) -> Vec<u8> {
    let len = (m.len() as u32).to_ne_bytes();
    m[..4].copy_from_slice(&len);
    m
}

/// Iterates over netlink attributes as (type, payload).
fn attrs(mut buf: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        if buf.len() < 4 {
            return None;
        }
        let len = u16::from_ne_bytes([buf[0], buf[1]]) as usize;
        let kind = u16::from_ne_bytes([buf[2], buf[3]]) & NLA_TYPE_MASK;
        if len < 4 || len > buf.len() {
            return None;
        }
        let payload = &buf[4..len];
        buf = &buf[((len + 3) & !3).min(buf.len())..];
        Some((kind, payload))
    })
}

/// Returns an NLMSG_ERROR's error code (0 for an ACK), or None for another message type.
fn error_code(reply: &[u8]) -> Option<i32> {
    if reply.len() >= 20 && u16::from_ne_bytes([reply[4], reply[5]]) == libc::NLMSG_ERROR as u16 {
        Some(i32::from_ne_bytes([reply[16], reply[17], reply[18], reply[19]]))
    } else {
        None
    }
}

/// The XDP program attached to `ifindex`, if any.
pub fn query_xdp(ifindex: u32) -> io::Result<Option<AttachedXdp>> {
    let sock = NetlinkSocket::open()?;
    let msg = finish(link_message(libc::RTM_GETLINK, libc::NLM_F_REQUEST as u16, ifindex));
    let reply = sock.request(&msg)?;
    if let Some(code) = error_code(&reply) {
        return Err(io::Error::from_raw_os_error(-code));
    }
    parse_link_reply(&reply)
}

fn parse_link_reply(reply: &[u8]) -> io::Result<Option<AttachedXdp>> {
    const HEADERS: usize = 16 + 16; // nlmsghdr + ifinfomsg
    if reply.len() < HEADERS {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "short RTM_NEWLINK reply"));
    }
    let msg_len = (u32::from_ne_bytes([reply[0], reply[1], reply[2], reply[3]]) as usize).min(reply.len());
    for (kind, payload) in attrs(&reply[HEADERS..msg_len]) {
        if kind != IFLA_XDP {
            continue;
        }
        let mut attached = 0u8;
        let mut prog_id = 0u32;
        for (k, p) in attrs(payload) {
            match k {
                IFLA_XDP_ATTACHED if !p.is_empty() => attached = p[0],
                IFLA_XDP_PROG_ID if p.len() >= 4 => prog_id = u32::from_ne_bytes([p[0], p[1], p[2], p[3]]),
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
        Some(code) => Err(io::Error::from_raw_os_error(-code)),
        None => Err(io::Error::new(io::ErrorKind::InvalidData, "no ACK to RTM_SETLINK")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn loopback_has_no_xdp_program() {
        // Any process may query; lo never has XDP in a test environment.
        let lo = unsafe { libc::if_nametoindex(c"lo".as_ptr()) };
        if lo != 0 {
            assert_eq!(query_xdp(lo).unwrap(), None);
        }
    }
}
