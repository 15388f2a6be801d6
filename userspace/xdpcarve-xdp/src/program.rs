//! The XDP steering program: the committed object (`ebpf/xdpcarve.bpf.o`), loading it with aya,
//! filling its port set, registering AF_XDP sockets in its XSKMAP, attaching it, and reading its
//! per-CPU counters.

use crate::error::{LiveError, Privilege};
use crate::netlink;
use aya::maps::{HashMap, MapData, PerCpuArray, XskMap};
use aya::programs::{ProgramError, Xdp, XdpMode};
use aya::{Ebpf, EbpfError, EbpfLoader};
use std::os::fd::{AsRawFd, BorrowedFd};

/// `include_bytes!` with an alignment the ELF parser can rely on.
#[repr(C)]
struct Aligned<Bytes: ?Sized> {
    _align: [u64; 0],
    bytes: Bytes,
}

static OBJECT: &Aligned<[u8]> = &Aligned {
    _align: [],
    bytes: *include_bytes!("../../../ebpf/xdpcarve.bpf.o"),
};

/// The compiled XDP program, as committed in `ebpf/xdpcarve.bpf.o`.
pub fn object_bytes() -> &'static [u8] {
    &OBJECT.bytes
}

/// Names of the program (its C functions) and of its maps. The multi-buffer variant is tried
/// first (kernel 5.18+); the linear one is the same code for older kernels.
pub const PROGRAM_NAME: &str = "xdpcarve";
pub const PROGRAM_NAME_LINEAR: &str = "xdpcarve_linear";
const XSKS_MAP: &str = "xsks";
const PORTS_MAP: &str = "ports";
const COUNTERS_MAP: &str = "counters";
/// Capacity of the `ports` hash map in the C source.
pub const MAX_PORTS: usize = 64;
/// Capacity of the `xsks` XSKMAP in the C source: the highest queue index + 1 we can steer to.
pub const MAX_QUEUES: u32 = 256;

/// The program's counters, summed over CPUs. Every packet the program sees ends in exactly one
/// of `redirected` or `passed`; `parse_failed`, `redirect_failed` and `ip_fragments` break down
/// `passed`. Field order is the index order of `enum counter` in ebpf/xdpcarve.bpf.c.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XdpCounters {
    /// Handed to the AF_XDP socket of the packet's queue.
    pub redirected: u64,
    pub redirected_bytes: u64,
    /// Returned to the kernel (XDP_PASS).
    pub passed: u64,
    /// Headers cut short or invalid.
    pub parse_failed: u64,
    /// Port matched, but no socket is bound to the queue the packet arrived on.
    pub redirect_failed: u64,
    /// IPv4/IPv6 fragments (never steered).
    pub ip_fragments: u64,
    /// Packets inside a GRE/ERSPAN/VXLAN tunnel whose inner headers decided (either way).
    pub tunneled: u64,
}

impl XdpCounters {
    /// Counter names in map index order (the C enum without its `C_` prefix, lowercased).
    pub const NAMES: [&'static str; 7] = [
        "redirected",
        "redirected_bytes",
        "passed",
        "parse_failed",
        "redirect_failed",
        "ip_fragments",
        "tunneled",
    ];

    fn set(&mut self, index: usize, value: u64) {
        match index {
            0 => self.redirected = value,
            1 => self.redirected_bytes = value,
            2 => self.passed = value,
            3 => self.parse_failed = value,
            4 => self.redirect_failed = value,
            5 => self.ip_fragments = value,
            6 => self.tunneled = value,
            _ => {}
        }
    }

    /// Visits every counter by name, in map index order.
    pub fn for_each(&self, mut f: impl FnMut(&'static str, u64)) {
        let values = [
            self.redirected,
            self.redirected_bytes,
            self.passed,
            self.parse_failed,
            self.redirect_failed,
            self.ip_fragments,
            self.tunneled,
        ];
        for (name, value) in Self::NAMES.iter().zip(values) {
            f(name, value);
        }
    }

    /// Packets the program has seen. Wrapping, like the per-CPU sums: the values come from a
    /// BPF map and must not make this panic.
    pub fn packets(&self) -> u64 {
        self.redirected.wrapping_add(self.passed)
    }
}

/// How to attach, as asked on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XdpModeChoice {
    /// Native (driver) mode if the driver supports it, else generic.
    Auto,
    Native,
    Generic,
}

impl std::str::FromStr for XdpModeChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(XdpModeChoice::Auto),
            "native" | "driver" | "drv" => Ok(XdpModeChoice::Native),
            "generic" | "skb" => Ok(XdpModeChoice::Generic),
            other => Err(format!("unknown XDP mode `{other}`: expected auto, native or generic")),
        }
    }
}

/// The mode the program actually runs in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttachedMode {
    Native,
    Generic,
}

impl AttachedMode {
    pub fn as_str(self) -> &'static str {
        match self {
            AttachedMode::Native => "native",
            AttachedMode::Generic => "generic",
        }
    }
}

/// The loaded program with its maps. Dropping it detaches the program.
pub struct XdpProgram {
    ebpf: Ebpf,
    counters: PerCpuArray<MapData, u64>,
    attached: Option<(u32, AttachedMode)>,
    program_name: &'static str,
}

impl XdpProgram {
    /// Loads the program into the kernel (the verifier runs here) and fills the port set.
    pub fn load(ports: &[u16]) -> Result<XdpProgram, LiveError> {
        Self::load_variant(ports, true)
    }

    /// As [`load`](Self::load); `multi_buffer` false loads the linear variant directly (what
    /// kernels before 5.18 get).
    pub fn load_variant(ports: &[u16], multi_buffer: bool) -> Result<XdpProgram, LiveError> {
        if ports.is_empty() {
            return Err(LiveError::Config("no ports to steer: give at least one port".into()));
        }
        if ports.len() > MAX_PORTS {
            return Err(LiveError::Config(format!(
                "{} ports given, the XDP program's port set holds at most {MAX_PORTS}",
                ports.len()
            )));
        }
        let mut ebpf = EbpfLoader::new().load(object_bytes()).map_err(map_load_error)?;
        let first = if multi_buffer {
            load_program(&mut ebpf, PROGRAM_NAME)
        } else {
            Err(LiveError::Config("multi-buffer variant not wanted".into()))
        };
        let program_name = match first {
            Ok(()) => PROGRAM_NAME,
            Err(frags_error) => match load_program(&mut ebpf, PROGRAM_NAME_LINEAR) {
                Ok(()) => {
                    tracing::info!(
                        "multi-buffer XDP unavailable ({frags_error}); packets above one UMEM frame are dropped"
                    );
                    PROGRAM_NAME_LINEAR
                }
                Err(e @ LiveError::NoPermission { .. }) => return Err(e),
                Err(LiveError::VerifierRejected { error, log }) => {
                    let first = match frags_error {
                        LiveError::VerifierRejected { log: frags_log, .. } => frags_log,
                        other => other.to_string(),
                    };
                    return Err(LiveError::VerifierRejected {
                        error,
                        log: format!(
                            "--- {PROGRAM_NAME} (multi-buffer) ---\n{first}\n--- {PROGRAM_NAME_LINEAR} ---\n{log}"
                        ),
                    });
                }
                Err(e) => return Err(e),
            },
        };

        let mut port_map: HashMap<_, u16, u8> = HashMap::try_from(
            ebpf.map_mut(PORTS_MAP)
                .ok_or_else(|| LiveError::Internal("map `ports` missing".into()))?,
        )
        .map_err(|e| LiveError::Internal(e.to_string()))?;
        for &port in ports {
            port_map
                .insert(port, 1, 0)
                .map_err(|e| LiveError::Internal(format!("filling the port set: {e}")))?;
        }
        let counters = PerCpuArray::try_from(
            ebpf.take_map(COUNTERS_MAP)
                .ok_or_else(|| LiveError::Internal("map `counters` missing".into()))?,
        )
        .map_err(|e| LiveError::Internal(e.to_string()))?;
        Ok(XdpProgram {
            ebpf,
            counters,
            attached: None,
            program_name,
        })
    }

    /// Whether the loaded program handles packets spanning several buffers (then the sockets
    /// are bound with XDP_USE_SG).
    pub fn multi_buffer(&self) -> bool {
        self.program_name == PROGRAM_NAME
    }

    /// Puts an AF_XDP socket into the XSKMAP slot of `queue`.
    ///
    /// The `BorrowedFd` proves the socket is open for the duration of the call (in
    /// [`LiveCapture::start`](crate::LiveCapture::start) it is borrowed from an `OwnedFd`
    /// duplicate the caller holds). The kernel looks the descriptor up itself (a non-socket, or
    /// an unbound or non-XSK socket, fails with ENOTSOCK or EOPNOTSUPP). The kernel empties the
    /// slot when the socket is finally closed.
    pub fn register_socket(&mut self, queue: u32, socket: BorrowedFd<'_>) -> Result<(), LiveError> {
        let mut xsks = XskMap::try_from(
            self.ebpf
                .map_mut(XSKS_MAP)
                .ok_or_else(|| LiveError::Internal("map `xsks` missing".into()))?,
        )
        .map_err(|e| LiveError::Internal(e.to_string()))?;
        xsks.set(queue, socket.as_raw_fd(), 0)
            .map_err(|e| LiveError::Internal(format!("registering the socket of queue {queue}: {e}")))
    }

    /// Attaches to the interface. A program named `xdpcarve` left attached by an earlier run that
    /// died (netlink attachment survives its process) is detached first; any other XDP program is
    /// left alone and reported.
    pub fn attach(&mut self, ifname: &str, ifindex: u32, choice: XdpModeChoice) -> Result<AttachedMode, LiveError> {
        replace_stale(ifname, ifindex)?;
        let program: &mut Xdp = self
            .ebpf
            .program_mut(self.program_name)
            .ok_or_else(|| LiveError::Internal("program missing".into()))?
            .try_into()
            .map_err(|e: ProgramError| LiveError::Internal(e.to_string()))?;
        let mut try_mode = |mode: AttachedMode| {
            let flags = match mode {
                AttachedMode::Native => XdpMode::Driver,
                AttachedMode::Generic => XdpMode::Skb,
            };
            program.attach_to_if_index(ifindex, flags).map(|_| mode)
        };
        let result = match choice {
            XdpModeChoice::Native => try_mode(AttachedMode::Native).map_err(|e| attach_error(ifname, "native", e)),
            XdpModeChoice::Generic => try_mode(AttachedMode::Generic).map_err(|e| attach_error(ifname, "generic", e)),
            XdpModeChoice::Auto => match try_mode(AttachedMode::Native) {
                Ok(mode) => Ok(mode),
                Err(native) => {
                    tracing::info!("{ifname}: native XDP unavailable ({native}); using generic mode");
                    try_mode(AttachedMode::Generic).map_err(|e| attach_error(ifname, "generic", e))
                }
            },
        };
        let mode = result?;
        self.attached = Some((ifindex, mode));
        Ok(mode)
    }

    /// Detaches the program (also done on drop).
    pub fn detach(&mut self) {
        if self.attached.take().is_some() {
            if let Some(program) = self.ebpf.program_mut(self.program_name) {
                let program: Result<&mut Xdp, _> = program.try_into();
                if let Ok(program) = program {
                    // Dropping the program's links detaches it from the interface.
                    let _ = program.unload();
                }
            }
        }
    }

    /// The program's counters summed over CPUs.
    pub fn counters(&self) -> Result<XdpCounters, LiveError> {
        let mut out = XdpCounters::default();
        for index in 0..XdpCounters::NAMES.len() {
            let values = self
                .counters
                .get(&(index as u32), 0)
                .map_err(|e| LiveError::Internal(format!("reading XDP counter {index}: {e}")))?;
            out.set(index, values.iter().copied().fold(0u64, u64::wrapping_add));
        }
        Ok(out)
    }
}

impl Drop for XdpProgram {
    fn drop(&mut self) {
        self.detach();
    }
}

fn load_program(ebpf: &mut Ebpf, name: &str) -> Result<(), LiveError> {
    let program: &mut Xdp = ebpf
        .program_mut(name)
        .ok_or_else(|| LiveError::Internal(format!("program `{name}` missing from the object")))?
        .try_into()
        .map_err(|e: ProgramError| LiveError::Internal(e.to_string()))?;
    program.load().map_err(|e| match e {
        ProgramError::LoadError { io_error, verifier_log } => {
            if is_permission(&io_error) {
                LiveError::NoPermission {
                    action: "load the XDP program",
                    need: Privilege::Bpf,
                }
            } else {
                LiveError::VerifierRejected {
                    error: io_error.to_string(),
                    log: verifier_log.to_string(),
                }
            }
        }
        other => LiveError::Internal(format!("loading the XDP program: {other}")),
    })
}

fn replace_stale(ifname: &str, ifindex: u32) -> Result<(), LiveError> {
    let attached = match netlink::query_xdp(ifindex) {
        Ok(Some(attached)) => attached,
        Ok(None) => return Ok(()),
        Err(e) => {
            tracing::debug!("{ifname}: could not query the attached XDP program: {e}");
            return Ok(());
        }
    };
    let name = aya::programs::loaded_programs()
        .filter_map(Result::ok)
        .find(|p| p.id() == attached.prog_id)
        .and_then(|p| p.name_as_str().map(str::to_owned))
        .unwrap_or_default();
    if !name.starts_with(PROGRAM_NAME) {
        return Err(LiveError::ForeignProgram {
            interface: ifname.into(),
            prog_id: attached.prog_id,
            name,
        });
    }
    tracing::warn!(
        "{ifname}: replacing xdpcarve XDP program id {} ({} mode) left attached by an earlier run",
        attached.prog_id,
        attached.mode_name()
    );
    netlink::detach_xdp(ifindex, attached.mode_flags).map_err(|e| {
        if e.raw_os_error() == Some(libc::EBUSY) {
            // Held by a BPF link: a live process owns it.
            LiveError::AlreadyRunning {
                interface: ifname.into(),
                prog_id: attached.prog_id,
            }
        } else if is_permission(&e) {
            LiveError::NoPermission {
                action: "detach the stale XDP program",
                need: Privilege::NetAdmin,
            }
        } else {
            LiveError::Internal(format!(
                "detaching stale program {} from {ifname}: {e}",
                attached.prog_id
            ))
        }
    })
}

fn attach_error(ifname: &str, mode: &'static str, e: ProgramError) -> LiveError {
    let io = match &e {
        ProgramError::SyscallError(s) => Some(&s.io_error),
        _ => None,
    };
    match io {
        Some(io) if is_permission(io) => LiveError::NoPermission {
            action: "attach the XDP program",
            need: Privilege::NetAdmin,
        },
        Some(io) if io.raw_os_error() == Some(libc::EBUSY) || io.raw_os_error() == Some(libc::EEXIST) => {
            LiveError::AlreadyRunning {
                interface: ifname.into(),
                prog_id: 0,
            }
        }
        _ => LiveError::Attach {
            interface: ifname.into(),
            mode,
            error: e.to_string(),
        },
    }
}

fn map_load_error(e: EbpfError) -> LiveError {
    let text = e.to_string();
    let permission = match &e {
        EbpfError::MapError(aya::maps::MapError::CreateError { io_error, .. }) => is_permission(io_error),
        _ => false,
    };
    if permission {
        LiveError::NoPermission {
            action: "create BPF maps",
            need: Privilege::Bpf,
        }
    } else {
        LiveError::Internal(format!("loading the BPF object: {text}"))
    }
}

pub(crate) fn is_permission(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EPERM) | Some(libc::EACCES))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::{Path, PathBuf};
    use std::process::Command;

    fn ebpf_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../ebpf")
    }

    #[test]
    fn embedded_object_is_the_committed_file_and_is_bpf_elf() {
        let on_disk = std::fs::read(ebpf_dir().join("xdpcarve.bpf.o")).unwrap();
        assert_eq!(object_bytes(), &on_disk[..]);
        assert_eq!(&on_disk[..4], b"\x7fELF");
        // e_machine (offset 18, little endian) 247 = EM_BPF.
        assert_eq!(u16::from_le_bytes([on_disk[18], on_disk[19]]), 247);
        assert_eq!(object_bytes().as_ptr() as usize % 8, 0);
    }

    #[test]
    fn counter_names_follow_the_c_enum() {
        let source = std::fs::read_to_string(ebpf_dir().join("xdpcarve.bpf.c")).unwrap();
        let body = source
            .split("enum counter {")
            .nth(1)
            .unwrap()
            .split("};")
            .next()
            .unwrap();
        let names: Vec<String> = body
            .lines()
            .filter_map(|l| l.trim().strip_prefix("C_"))
            .map(|l| l.split([',', ' ']).next().unwrap().to_ascii_lowercase())
            .filter(|n| n != "count")
            .collect();
        assert_eq!(names, XdpCounters::NAMES);
    }

    #[test]
    fn map_capacities_follow_the_c_source() {
        let source = std::fs::read_to_string(ebpf_dir().join("xdpcarve.bpf.c")).unwrap();
        let xsks = source.split("BPF_MAP_TYPE_XSKMAP);").nth(1).unwrap();
        assert!(xsks
            .trim_start()
            .starts_with(&format!("__uint(max_entries, {MAX_QUEUES});")));
        let ports = source.split("BPF_MAP_TYPE_HASH);").nth(1).unwrap();
        assert!(ports
            .trim_start()
            .starts_with(&format!("__uint(max_entries, {MAX_PORTS});")));
    }

    /// Rebuilding ebpf/xdpcarve.bpf.c must reproduce the committed object byte for byte. Runs
    /// when clang-14 is installed; with CI=true a missing clang-14 is a failure, not a skip.
    #[test]
    fn committed_object_matches_source() {
        let clang = Command::new("clang-14").arg("--version").output();
        if clang.map(|o| !o.status.success()).unwrap_or(true) {
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("clang-14 is required in CI to check ebpf/xdpcarve.bpf.o (tests/setup.sh installs it)");
            }
            eprintln!("skipping: clang-14 not installed; cannot check ebpf/xdpcarve.bpf.o against its source");
            return;
        }
        let out = std::env::temp_dir().join(format!("xdpcarve-rebuild-{}.bpf.o", std::process::id()));
        let status = Command::new("sh")
            .arg(ebpf_dir().join("build.sh"))
            .arg(&out)
            .status()
            .unwrap();
        assert!(status.success(), "ebpf/build.sh failed");
        let rebuilt = std::fs::read(&out).unwrap();
        let _ = std::fs::remove_file(&out);
        assert!(
            rebuilt == object_bytes(),
            "ebpf/xdpcarve.bpf.o is stale or the build is not deterministic: run ebpf/build.sh and commit the object"
        );
    }

    #[test]
    fn mode_choice_parses() {
        assert_eq!("auto".parse::<XdpModeChoice>().unwrap(), XdpModeChoice::Auto);
        assert_eq!("native".parse::<XdpModeChoice>().unwrap(), XdpModeChoice::Native);
        assert_eq!("generic".parse::<XdpModeChoice>().unwrap(), XdpModeChoice::Generic);
        assert!("hw".parse::<XdpModeChoice>().is_err());
    }
}
