//! What an interface offers live capture, read without changing anything (for `xdpcarve
//! check`): link state, driver, queues, the driver's XDP features, RSS, the offloads that change
//! what XDP sees, and a program already attached.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use crate::error::LiveError;
use crate::iface::Interface;
use crate::netlink::{self, XdpFeatures};

/// One interface, as `check` reports it.
#[derive(Clone, Debug)]
pub struct NicReport {
    pub interface: Interface,
    /// IFF_UP is set and the operational state is `up` (or `unknown`, as for veth without a
    /// carrier notion and loopback).
    pub up: bool,
    pub operstate: String,
    /// ETHTOOL_GDRVINFO's driver name (`veth`, `ice`, `mlx5_core`, ...).
    pub driver: Option<String>,
    /// None when the kernel cannot say (before 6.3).
    pub xdp: Option<XdpFeatures>,
    pub rss: Rss,
    /// Large receive offload: the NIC merges segments before XDP sees them.
    pub lro: Option<bool>,
    /// VLAN tag stripping: XDP sees frames without their 802.1Q tags.
    pub rx_vlan_strip: Option<bool>,
    /// GRO: merges segments before generic-mode XDP (not before native XDP).
    pub gro: Option<bool>,
    /// An XDP program already attached: (program id, mode).
    pub attached: Option<(u32, &'static str)>,
}

/// The NIC's receive-side scaling, as ETHTOOL_GRSSH reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rss {
    /// The driver has no RSS settings to report (veth, loopback, one queue).
    NotReported,
    /// `symmetric`: both directions of a connection land on one queue, either because the
    /// kernel's symmetric-xor transform is on or because the Toeplitz key repeats a 16-bit
    /// pattern (as deploy/nic-setup.sh sets it).
    Reported { hash: String, symmetric: bool },
}

const SIOCETHTOOL: libc::c_ulong = 0x8946;
const ETHTOOL_GDRVINFO: u32 = 0x03;
const ETHTOOL_GFLAGS: u32 = 0x25;
const ETHTOOL_GGRO: u32 = 0x2b;
const ETHTOOL_GRSSH: u32 = 0x46;
const ETH_FLAG_RXVLAN: u32 = 1 << 8;
const ETH_FLAG_LRO: u32 = 1 << 15;
const RXH_XFRM_SYM_XOR: u8 = 1;

/// Runs one ethtool request on `name` with `data` (a struct starting with its `cmd`).
fn ethtool(name: &str, data: *mut u8) -> io::Result<()> {
    #[repr(C)]
    struct IfReq {
        name: [libc::c_char; libc::IFNAMSIZ],
        data: *mut u8,
        _pad: [u8; 16],
    }
    if name.len() >= libc::IFNAMSIZ {
        return Err(io::Error::from_raw_os_error(libc::ENODEV));
    }
    let mut req = IfReq {
        name: [0; libc::IFNAMSIZ],
        data,
        _pad: [0; 16],
    };
    for (dst, src) in req.name.iter_mut().zip(name.bytes()) {
        *dst = src as libc::c_char;
    }
    // SAFETY: socket(2) takes no pointers; it returns a new descriptor or -1.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by a successful socket(2) and nothing else refers to it;
    // the OwnedFd closes it once, when it drops.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: `req` is a live ifreq-sized struct with a NUL-terminated name (shorter than
    // IFNAMSIZ, zero-filled); `data` points at the caller's live, writable ethtool struct, sized
    // for the request its `cmd` names, which outlives this call.
    let rc = unsafe { libc::ioctl(sock.as_raw_fd(), SIOCETHTOOL as _, &mut req as *mut IfReq) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn ethtool_value(name: &str, cmd: u32) -> Option<u32> {
    let mut v = [cmd, 0u32];
    ethtool(name, v.as_mut_ptr().cast()).ok()?;
    Some(v[1])
}

fn driver(name: &str) -> Option<String> {
    // struct ethtool_drvinfo: cmd, then driver[32], version[32], fw_version[32], bus_info[32],
    // erom_version[32], reserved2[12], and five u32 counts: 196 bytes.
    let mut info = [0u8; 196];
    info[..4].copy_from_slice(&ETHTOOL_GDRVINFO.to_ne_bytes());
    ethtool(name, info.as_mut_ptr()).ok()?;
    let field = &info[4..36];
    let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    let driver = String::from_utf8_lossy(&field[..end]).into_owned();
    (!driver.is_empty()).then_some(driver)
}

fn rss(name: &str) -> Rss {
    // struct ethtool_rxfh: cmd, rss_context, indir_size, key_size (u32 each), hfunc (u8),
    // input_xfrm (u8), rsvd8[2], rsvd32 (u32), then indir_size u32s and key_size bytes.
    const HEAD: usize = 24;
    let mut head = [0u8; HEAD];
    head[..4].copy_from_slice(&ETHTOOL_GRSSH.to_ne_bytes());
    if ethtool(name, head.as_mut_ptr()).is_err() {
        return Rss::NotReported;
    }
    let u32_at = |b: &[u8], at: usize| u32::from_ne_bytes(b[at..at + 4].try_into().expect("4 bytes"));
    let (indir, key) = (u32_at(&head, 8) as usize, u32_at(&head, 12) as usize);
    if key == 0 || indir > 1 << 16 || key > 1 << 10 {
        return Rss::NotReported;
    }
    let mut full = vec![0u8; HEAD + indir * 4 + key];
    full[..HEAD].copy_from_slice(&head);
    if ethtool(name, full.as_mut_ptr()).is_err() {
        return Rss::NotReported;
    }
    let hfunc = full[16];
    let input_xfrm = full[17];
    let key_bytes = &full[HEAD + indir * 4..];
    let hash = match hfunc {
        1 => "toeplitz",
        2 => "xor",
        4 => "crc32",
        _ => "unknown",
    };
    let repeats_16_bits = key_bytes.chunks(2).all(|c| c == &key_bytes[..2.min(key_bytes.len())]);
    Rss::Reported {
        hash: hash.into(),
        symmetric: input_xfrm & RXH_XFRM_SYM_XOR != 0 || (hfunc == 1 && repeats_16_bits),
    }
}

/// Reads everything live capture cares about on `name`, changing nothing.
pub fn probe(name: &str) -> Result<NicReport, LiveError> {
    let interface = Interface::lookup(name)?;
    let sys = |f: &str| std::fs::read_to_string(format!("/sys/class/net/{name}/{f}")).map(|s| s.trim().to_string());
    let operstate = sys("operstate").unwrap_or_else(|_| "unknown".into());
    let flags = sys("flags")
        .ok()
        .and_then(|f| u32::from_str_radix(f.trim_start_matches("0x"), 16).ok())
        .unwrap_or(0);
    let admin_up = flags & libc::IFF_UP as u32 != 0;
    let up = admin_up && (operstate == "up" || operstate == "unknown");
    let eth_flags = ethtool_value(name, ETHTOOL_GFLAGS);
    let xdp = netlink::xdp_features(interface.index)
        .map_err(|e| LiveError::Internal(format!("reading the XDP features of {name}: {e}")))?;
    let attached = netlink::query_xdp(interface.index)
        .ok()
        .flatten()
        .map(|a| (a.prog_id, a.mode_name()));
    Ok(NicReport {
        up,
        operstate,
        driver: driver(name),
        xdp,
        rss: rss(name),
        lro: eth_flags.map(|f| f & ETH_FLAG_LRO != 0),
        rx_vlan_strip: eth_flags.map(|f| f & ETH_FLAG_RXVLAN != 0),
        gro: ethtool_value(name, ETHTOOL_GGRO).map(|v| v != 0),
        attached,
        interface,
    })
}

/// Whether this kernel has AF_XDP sockets (CONFIG_XDP_SOCKETS): one is opened and closed.
pub fn af_xdp_available() -> io::Result<()> {
    // SAFETY: socket(2) takes no pointers; it returns a new descriptor or -1.
    let fd = unsafe { libc::socket(libc::AF_XDP, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by a successful socket(2) and nothing else refers to it;
    // dropping the OwnedFd closes it.
    drop(unsafe { OwnedFd::from_raw_fd(fd) });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_is_up_reports_no_rss_and_no_native_xdp() {
        let r = probe("lo").unwrap();
        assert!(r.up, "{r:?}");
        assert_eq!(r.rss, Rss::NotReported);
        assert!(r.xdp.is_none_or(|f| !f.native()), "{r:?}");
        assert!(probe("xdcnosuchif0").is_err());
    }
}
