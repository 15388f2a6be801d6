//! The interface side: index, queue count, queue selection; and the host checks made before
//! touching anything (kernel version, capabilities).

use crate::error::LiveError;
use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// Oldest kernel with everything live capture relies on: XDP_STATISTICS with the ring-full and
/// fill-ring-empty counters and XDP BPF links (5.9); bpf_redirect_map falling back to the flags'
/// action on an empty XSKMAP slot (5.3), need_wakeup (5.4).
pub const MIN_KERNEL: (u32, u32) = (5, 9);

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Interface {
    pub name: String,
    pub index: u32,
    /// Receive queues the driver exposes (combined channels, or rx channels).
    pub queues: u32,
    /// The link-layer type (ARPHRD_*, from sysfs): what the frames an XDP program sees start with.
    pub arphrd: u16,
}

/// ARPHRD_ETHER, and ARPHRD_LOOPBACK (whose XDP frames carry an Ethernet header too).
const ETHERNET_LIKE: [u16; 2] = [1, 772];

impl Interface {
    pub fn lookup(name: &str) -> Result<Interface, LiveError> {
        let c_name = CString::new(name).map_err(|_| LiveError::NoSuchInterface(name.into()))?;
        // SAFETY: if_nametoindex only reads the NUL-terminated string, and `c_name` outlives the
        // call.
        let index = unsafe { libc::if_nametoindex(c_name.as_ptr()) };
        if index == 0 {
            return Err(LiveError::NoSuchInterface(name.into()));
        }
        let queues = ethtool_rx_channels(name)
            .or_else(|| sysfs_rx_queues(name))
            .unwrap_or(1)
            .max(1);
        // Unreadable (no sysfs): assume Ethernet, as almost every capture interface is.
        let arphrd = std::fs::read_to_string(format!("/sys/class/net/{name}/type"))
            .ok()
            .and_then(|t| t.trim().parse().ok())
            .unwrap_or(1);
        Ok(Interface {
            name: name.into(),
            index,
            queues,
            arphrd,
        })
    }

    /// Frames on this interface start with an Ethernet header, as the XDP program and the
    /// frames handed to a [`crate::FrameHandler`] assume.
    pub fn is_ethernet(&self) -> bool {
        ETHERNET_LIKE.contains(&self.arphrd)
    }
}

/// ETHTOOL_GCHANNELS: combined channels, else rx channels. None when the driver does not say.
fn ethtool_rx_channels(name: &str) -> Option<u32> {
    const SIOCETHTOOL: libc::c_ulong = 0x8946;
    const ETHTOOL_GCHANNELS: u32 = 0x3c;
    #[repr(C)]
    #[derive(Default)]
    struct EthtoolChannels {
        cmd: u32,
        max_rx: u32,
        max_tx: u32,
        max_other: u32,
        max_combined: u32,
        rx_count: u32,
        tx_count: u32,
        other_count: u32,
        combined_count: u32,
    }
    #[repr(C)]
    struct IfReq {
        name: [libc::c_char; libc::IFNAMSIZ],
        data: *mut EthtoolChannels,
        _pad: [u8; 16],
    }
    if name.len() >= libc::IFNAMSIZ {
        return None;
    }
    let mut channels = EthtoolChannels {
        cmd: ETHTOOL_GCHANNELS,
        ..Default::default()
    };
    let mut req = IfReq {
        name: [0; libc::IFNAMSIZ],
        data: &mut channels,
        _pad: [0; 16],
    };
    for (dst, src) in req.name.iter_mut().zip(name.bytes()) {
        *dst = src as libc::c_char;
    }
    // SAFETY: socket(2) takes no pointers; it returns a new descriptor or -1.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return None;
    }
    // SAFETY: `fd` was just returned by a successful socket(2) and nothing else refers to it;
    // the OwnedFd closes it once, when it drops at the end of this function.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: `req` is a live, writable ifreq-sized struct whose name is NUL-terminated (shorter
    // than IFNAMSIZ, zero-filled) and whose data points at `channels`, which outlives the call
    // and is the ethtool_channels that ETHTOOL_GCHANNELS reads `cmd` from and writes back.
    let rc = unsafe { libc::ioctl(sock.as_raw_fd(), SIOCETHTOOL as _, &mut req as *mut IfReq) };
    drop(sock);
    if rc != 0 {
        return None;
    }
    let n = if channels.combined_count > 0 {
        channels.combined_count
    } else {
        channels.rx_count
    };
    (n > 0).then_some(n)
}

/// Counts /sys/class/net/IF/queues/rx-*.
fn sysfs_rx_queues(name: &str) -> Option<u32> {
    let dir = std::fs::read_dir(format!("/sys/class/net/{name}/queues")).ok()?;
    let n = dir
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("rx-"))
        .count();
    (n > 0).then_some(n as u32)
}

/// Which receive queues to capture.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum QueueSelection {
    /// Every queue of the interface.
    #[default]
    All,
    List(Vec<u32>),
}

impl std::str::FromStr for QueueSelection {
    type Err = String;
    /// `all`, or a list of queue ids and ranges: `0,2`, `0-3`, `0-1,4`.
    fn from_str(s: &str) -> Result<Self, String> {
        if s == "all" {
            return Ok(QueueSelection::All);
        }
        let mut queues = Vec::new();
        for part in s.split(',').map(str::trim) {
            let bad = || format!("bad queue list `{s}`: expected `all`, or ids and ranges like `0,2` or `0-3`");
            if let Some((a, b)) = part.split_once('-') {
                let (a, b): (u32, u32) = (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?);
                if a > b {
                    return Err(bad());
                }
                queues.extend(a..=b);
            } else {
                queues.push(part.parse().map_err(|_| bad())?);
            }
        }
        queues.sort_unstable();
        queues.dedup();
        Ok(QueueSelection::List(queues))
    }
}

impl QueueSelection {
    /// The queue ids to open on `iface`, checked against its queue count.
    pub fn resolve(&self, iface: &Interface) -> Result<Vec<u32>, LiveError> {
        match self {
            QueueSelection::All => Ok((0..iface.queues).collect()),
            QueueSelection::List(list) => {
                if let Some(&q) = list.iter().find(|&&q| q >= iface.queues) {
                    return Err(LiveError::QueueMismatch {
                        interface: iface.name.clone(),
                        queue: q,
                        available: iface.queues,
                    });
                }
                if list.is_empty() {
                    return Err(LiveError::Config("empty queue list".into()));
                }
                Ok(list.clone())
            }
        }
    }
}

/// `uname -r` as (major, minor) and the full string.
pub fn kernel_version() -> Option<((u32, u32), String)> {
    // SAFETY: utsname is a struct of c_char arrays only; all-zero bytes are a valid value.
    let mut uts: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: `uts` is a live, writable utsname; uname(2) fills it and keeps no pointer.
    if unsafe { libc::uname(&mut uts) } != 0 {
        return None;
    }
    // Read up to the NUL within the array (no pointer walk past its end if there were none).
    let bytes: Vec<u8> = uts.release.iter().map(|&c| c as u8).collect();
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    let release = String::from_utf8_lossy(&bytes[..end]).into_owned();
    parse_kernel_release(&release).map(|v| (v, release))
}

fn parse_kernel_release(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

pub fn check_kernel() -> Result<(), LiveError> {
    if let Some((version, release)) = kernel_version() {
        if version < MIN_KERNEL {
            return Err(LiveError::KernelTooOld {
                found: release,
                needed: "5.9",
            });
        }
    }
    Ok(())
}

/// Effective capabilities from /proc/self/status; checks the ones live capture needs. Root
/// normally has them all; CAP_SYS_ADMIN stands in for CAP_BPF and CAP_PERFMON. CAP_IPC_LOCK is
/// only required when the memlock limit is below what the UMEMs need.
pub fn check_capabilities(umem_bytes: u64) -> Result<(), LiveError> {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return Ok(());
    };
    let Some(cap_eff) = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
    else {
        return Ok(());
    };
    let has = |bit: u32| cap_eff & (1u64 << bit) != 0;
    const NET_ADMIN: u32 = 12;
    const NET_RAW: u32 = 13;
    const IPC_LOCK: u32 = 14;
    const SYS_ADMIN: u32 = 21;
    const PERFMON: u32 = 38;
    const BPF: u32 = 39;
    let mut missing = Vec::new();
    if !has(BPF) && !has(SYS_ADMIN) {
        missing.push("CAP_BPF");
    }
    if !has(PERFMON) && !has(SYS_ADMIN) {
        missing.push("CAP_PERFMON");
    }
    if !has(NET_ADMIN) {
        missing.push("CAP_NET_ADMIN");
    }
    if !has(NET_RAW) {
        missing.push("CAP_NET_RAW");
    }
    if !has(IPC_LOCK) {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: `limit` is a live, writable rlimit; getrlimit(2) fills it and keeps no pointer.
        let ok = unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut limit) } == 0;
        #[allow(clippy::unnecessary_cast)] // rlim_t is u64 on 64-bit Linux, 32 bits elsewhere
        let current = limit.rlim_cur as u64;
        if ok && limit.rlim_cur != libc::RLIM_INFINITY && current < umem_bytes {
            missing.push("CAP_IPC_LOCK (memlock limit too low for the UMEM)");
        }
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(LiveError::MissingCapabilities {
            missing: missing.join(", "),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_lists_parse() {
        assert_eq!("all".parse::<QueueSelection>().unwrap(), QueueSelection::All);
        assert_eq!(
            "0-2,5,1".parse::<QueueSelection>().unwrap(),
            QueueSelection::List(vec![0, 1, 2, 5])
        );
        assert!("3-1".parse::<QueueSelection>().is_err());
        assert!("x".parse::<QueueSelection>().is_err());
    }

    #[test]
    fn loopback_is_ethernet_like_and_its_type_is_read() {
        let lo = Interface::lookup("lo").expect("lo exists");
        assert_eq!(lo.arphrd, 772);
        assert!(lo.is_ethernet());
        let tun = Interface {
            name: "tun0".into(),
            index: 1,
            queues: 1,
            arphrd: 65534,
        };
        assert!(!tun.is_ethernet());
    }

    #[test]
    fn queue_mismatch_is_reported() {
        let iface = Interface {
            name: "eth9".into(),
            index: 9,
            queues: 2,
            arphrd: 1,
        };
        assert_eq!(QueueSelection::All.resolve(&iface).unwrap(), vec![0, 1]);
        let err = QueueSelection::List(vec![0, 2]).resolve(&iface).unwrap_err();
        assert_eq!(
            err.to_string(),
            "queue 2 does not exist on eth9: it has 2 queue(s), 0-1 (`ethtool -l eth9`)"
        );
    }

    #[test]
    fn kernel_release_parses() {
        assert_eq!(parse_kernel_release("6.18.44-fc-v782"), Some((6, 18)));
        assert_eq!(parse_kernel_release("5.4.0-150-generic"), Some((5, 4)));
        assert!(parse_kernel_release("5.4.0") < Some(MIN_KERNEL));
        assert_eq!(parse_kernel_release("garbage"), None);
    }

    #[test]
    fn unknown_interface_is_a_clear_error() {
        let err = Interface::lookup("xdcnosuchif0").unwrap_err();
        assert_eq!(
            err.to_string(),
            "no such network interface `xdcnosuchif0` (see `ip link`)"
        );
    }

    #[test]
    fn loopback_has_at_least_one_queue() {
        assert!(Interface::lookup("lo").unwrap().queues >= 1);
    }

    #[test]
    fn sockets_for_ethtool_and_netlink_are_closed() {
        let open_fds = || std::fs::read_dir("/proc/self/fd").unwrap().count();
        let lo = Interface::lookup("lo").unwrap();
        let before = open_fds();
        for _ in 0..1000 {
            let _ = ethtool_rx_channels("lo");
            let _ = crate::netlink::query_xdp(lo.index);
        }
        // Other tests run in parallel and open files too; a leak would be 1000 or more.
        assert!(open_fds() < before + 100, "descriptors leak");
    }
}
