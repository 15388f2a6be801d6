//! Errors a person can act on: what failed, and what to do about it.

use std::fmt;

/// The privilege an operation needs when not run as root.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Privilege {
    /// Loading programs and creating maps.
    Bpf,
    /// Attaching XDP, configuring the interface.
    NetAdmin,
    /// Creating AF_XDP sockets.
    NetRaw,
    /// Registering UMEM memory (charged to RLIMIT_MEMLOCK).
    Memlock,
}

impl fmt::Display for Privilege {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Privilege::Bpf => "CAP_BPF, CAP_PERFMON and CAP_NET_ADMIN (or run as root)",
            Privilege::NetAdmin => "CAP_NET_ADMIN (or run as root)",
            Privilege::NetRaw => "CAP_NET_RAW (or run as root)",
            Privilege::Memlock => {
                "CAP_IPC_LOCK or a higher memlock limit (`ulimit -l`, LimitMEMLOCK= in systemd), or smaller --umem-frames"
            }
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    #[error("no such network interface `{0}` (see `ip link`)")]
    NoSuchInterface(String),
    #[error("permission denied to {action}: needs {need}")]
    NoPermission { action: &'static str, need: Privilege },
    #[error("missing capabilities {missing}: live capture needs CAP_BPF, CAP_PERFMON, CAP_NET_ADMIN, CAP_NET_RAW and CAP_IPC_LOCK (or a large enough memlock limit), or root")]
    MissingCapabilities { missing: String },
    #[error("kernel {found} is too old: live capture needs Linux {needed} or newer (AF_XDP statistics, XDP links); use --read with a capture instead")]
    KernelTooOld { found: String, needed: &'static str },
    #[error("the kernel verifier rejected the XDP program ({error}). Verifier log:\n{log}")]
    VerifierRejected { error: String, log: String },
    #[error("{interface} already has an XDP program attached (id {prog_id}, name `{name}`) that is not xdpcarve's; detach it first (`ip link set dev {interface} xdp off`)")]
    ForeignProgram {
        interface: String,
        prog_id: u32,
        name: String,
    },
    #[error("another xdpcarve (or a pinned link) holds the XDP hook of {interface}{}; stop it first", if *prog_id > 0 { format!(" (program id {prog_id})") } else { String::new() })]
    AlreadyRunning { interface: String, prog_id: u32 },
    #[error("cannot attach XDP in {mode} mode to {interface}: {error}{}", if *mode == "native" { " (the driver may lack native XDP: try --xdp-mode auto or generic)" } else { "" })]
    Attach {
        interface: String,
        mode: &'static str,
        error: String,
    },
    #[error("queue {queue} does not exist on {interface}: it has {available} queue(s), 0-{last} (`ethtool -l {interface}`)", last = available.saturating_sub(1))]
    QueueMismatch {
        interface: String,
        queue: u32,
        available: u32,
    },
    #[error("AF_XDP socket for {interface} queue {queue}: {error}")]
    Socket {
        interface: String,
        queue: u32,
        error: String,
    },
    #[error("invalid live capture setting: {0}")]
    Config(String),
    #[error("live capture: {0}")]
    Internal(String),
}
