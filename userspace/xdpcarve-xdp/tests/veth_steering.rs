//! The XDP program and AF_XDP workers on a veth pair inside a private network namespace: crafted
//! frames (VLAN, QinQ, IPv4 options, IPv6 extension headers, fragments, other ports) are sent from
//! the peer with an AF_PACKET socket; exactly the steered ones must reach the workers, and the
//! program's counters must account for every frame.
//!
//! Needs root (netns, BPF). Skips with a reason otherwise; with CI=true a missing prerequisite
//! fails instead.

#![deny(clippy::undocumented_unsafe_blocks)]

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use xdpcarve_xdp::{FrameHandler, LiveCapture, LiveConfig, QueueSelection, XdpModeChoice};

fn prerequisites() -> Result<(), String> {
    // SAFETY: geteuid(2) takes no arguments and always succeeds.
    if unsafe { libc::geteuid() } != 0 {
        return Err("not root".into());
    }
    match Command::new("ip").arg("-V").output() {
        Ok(o) if o.status.success() => Ok(()),
        _ => Err("iproute2 (`ip`) not installed".into()),
    }
}

fn skip_or_fail(reason: String) {
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("live XDP test cannot run in CI: {reason}");
    }
    eprintln!("skipping live XDP test: {reason}");
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A namespace named `xdc<pid><tag>`, deleted on drop.
struct Netns {
    name: String,
}

impl Netns {
    fn new(tag: &str) -> Netns {
        let name = format!("xdc{}{tag}", std::process::id());
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        ip(&["netns", "add", &name]);
        Netns { name }
    }

    /// Moves the calling thread (and threads it spawns later) into the namespace.
    fn enter(&self) {
        let f = std::fs::File::open(format!("/run/netns/{}", self.name)).unwrap();
        // SAFETY: setns(2) takes the descriptor of `f`, which is open for the whole call, and no
        // pointers; it only changes this thread's network namespace.
        assert_eq!(unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) }, 0, "setns");
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.name]).output();
    }
}

#[derive(Default)]
struct Seen {
    frames: Vec<Vec<u8>>,
    finished: usize,
}

struct Collect(Arc<Mutex<Seen>>);

impl FrameHandler for Collect {
    fn frame(&mut self, _ts: u64, frame: &[u8]) {
        self.0.lock().unwrap().frames.push(frame.to_vec());
    }
    fn poll_timeout(&self) -> Option<u64> {
        None
    }
    fn handle_timeout(&mut self, _now: u64) {}
    fn finish(&mut self, _now: u64) {
        self.0.lock().unwrap().finished += 1;
    }
}

const MAC_A: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0a];
const MAC_B: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0b];

fn ethernet(tags: &[u16], ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&MAC_A);
    f.extend_from_slice(&MAC_B);
    for (i, vid) in tags.iter().enumerate() {
        let tpid: u16 = if i == 0 && tags.len() == 2 { 0x88A8 } else { 0x8100 };
        f.extend_from_slice(&tpid.to_be_bytes());
        f.extend_from_slice(&vid.to_be_bytes());
    }
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

fn tcp(sport: u16, dport: u16, marker: u8) -> Vec<u8> {
    tcp_sized(sport, dport, marker, 8)
}

fn tcp_sized(sport: u16, dport: u16, marker: u8, payload: usize) -> Vec<u8> {
    let mut t = vec![0u8; 20];
    t[0..2].copy_from_slice(&sport.to_be_bytes());
    t[2..4].copy_from_slice(&dport.to_be_bytes());
    t[12] = 0x50;
    t[13] = 0x18;
    t.extend((0..payload).map(|i| marker ^ (i as u8)));
    t
}

fn ipv4(options: &[u8], frag: u16, proto: u8, l4: &[u8]) -> Vec<u8> {
    let ihl = (20 + options.len()) / 4;
    let mut h = vec![0x40 | ihl as u8, 0];
    h.extend_from_slice(&((ihl * 4 + l4.len()) as u16).to_be_bytes());
    h.extend_from_slice(&[0, 1]);
    h.extend_from_slice(&frag.to_be_bytes());
    h.extend_from_slice(&[64, proto, 0, 0, 10, 201, 0, 1, 10, 201, 0, 2]);
    h.extend_from_slice(options);
    h.extend_from_slice(l4);
    h
}

/// GRE (key flag set, to exercise the optional fields) carrying `inner` of type `proto`, after
/// `erspan` header bytes (for ERSPAN II the sequence flag is set instead).
fn tunneled(proto: u16, erspan: &[u8], inner: &[u8]) -> Vec<u8> {
    let flags: u16 = if proto == 0x88BE { 0x1000 } else { 0x2000 };
    let mut gre = flags.to_be_bytes().to_vec();
    gre.extend_from_slice(&proto.to_be_bytes());
    gre.extend_from_slice(&[0, 0, 0, 9]); // key or sequence number
    gre.extend_from_slice(&erspan[..erspan.len().min(8)]);
    gre.extend_from_slice(inner);
    ethernet(&[], 0x0800, &ipv4(&[], 0, 47, &gre))
}

/// A UDP datagram to port 4789 carrying a VXLAN header (I flag) and `inner`.
fn vxlan(inner: &[u8]) -> Vec<u8> {
    let mut udp = vec![0xC0, 0x00, 0x12, 0xB5, 0, 0, 0, 0];
    udp.extend_from_slice(&[0x08, 0, 0, 0, 0, 0, 0x2A, 0]);
    udp.extend_from_slice(inner);
    udp
}

fn ipv6(ext: &[(u8, Vec<u8>)], last: u8, l4: &[u8]) -> Vec<u8> {
    // ext: (this header's type, its bytes with next-header patched in here)
    let first = ext.first().map(|e| e.0).unwrap_or(last);
    let mut body = Vec::new();
    for (i, (_, bytes)) in ext.iter().enumerate() {
        let mut b = bytes.clone();
        b[0] = ext.get(i + 1).map(|e| e.0).unwrap_or(last);
        body.extend_from_slice(&b);
    }
    body.extend_from_slice(l4);
    let mut h = vec![0x60, 0, 0, 0];
    h.extend_from_slice(&(body.len() as u16).to_be_bytes());
    h.push(first);
    h.push(64);
    h.extend_from_slice(&[0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    h.extend_from_slice(&[0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
    h.extend_from_slice(&body);
    h
}

fn send_frames(ifname: &str, frames: &[Vec<u8>]) {
    // SAFETY: socket(2) takes no pointers; it returns a new descriptor or -1.
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0) };
    assert!(fd >= 0, "AF_PACKET socket: {}", std::io::Error::last_os_error());
    // SAFETY: `fd` was just returned by a successful socket(2) and nothing else refers to it, so
    // the OwnedFd is its only owner and closes it once, on drop.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    let c = std::ffi::CString::new(ifname).unwrap();
    // SAFETY: sockaddr_ll is plain integers and byte arrays; all-zero bytes are a valid value.
    let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    addr.sll_family = libc::AF_PACKET as u16;
    // SAFETY: if_nametoindex only reads the NUL-terminated string, and `c` outlives the call.
    addr.sll_ifindex = unsafe { libc::if_nametoindex(c.as_ptr()) } as i32;
    addr.sll_halen = 6;
    for f in frames {
        // SAFETY: `f` is a live buffer of `f.len()` bytes that sendto(2) only reads, `addr` is a
        // live sockaddr_ll of the size passed, and the descriptor is open (owned by `sock`).
        let n = unsafe {
            libc::sendto(
                sock.as_raw_fd(),
                f.as_ptr().cast(),
                f.len(),
                0,
                (&addr as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            )
        };
        assert_eq!(n as usize, f.len(), "sendto: {}", std::io::Error::last_os_error());
    }
}

fn run_mode(mode: XdpModeChoice) {
    let ns = Netns::new(if mode == XdpModeChoice::Generic { "g" } else { "n" });
    let (a, b) = ("xdcA", "xdcB");
    ip(&[
        "-n",
        &ns.name,
        "link",
        "add",
        a,
        "numrxqueues",
        "2",
        "numtxqueues",
        "2",
        "type",
        "veth",
        "peer",
        "name",
        b,
    ]);
    // IPv6 off before the links come up: no router solicitations or DAD frames in the counts.
    for dev in [a, b] {
        let _ = Command::new("ip")
            .args([
                "netns",
                "exec",
                &ns.name,
                "sysctl",
                "-qw",
                &format!("net.ipv6.conf.{dev}.disable_ipv6=1"),
            ])
            .output();
        ip(&["-n", &ns.name, "link", "set", dev, "mtu", "16000", "up"]);
    }
    // Setns in a dedicated thread so the test harness's other threads stay in the host namespace.
    let ns_name = ns.name.clone();
    std::thread::spawn(move || {
        Netns { name: ns_name.clone() }.enter_and_forget();
        let seen = Arc::new(Mutex::new(Seen::default()));
        let mut config = LiveConfig::new(a);
        config.mode = mode;
        config.queues = QueueSelection::All;
        config.ports = vec![80, 25];
        let handler_seen = seen.clone();
        let capture = LiveCapture::start(&config, move |_q| Collect(handler_seen.clone())).expect("start");
        let info = capture.info().clone();
        assert_eq!(info.queues.len(), 2, "{}", info.describe());
        assert_eq!(
            info.mode.as_str(),
            if mode == XdpModeChoice::Generic {
                "generic"
            } else {
                "native"
            }
        );
        assert!(!info.zero_copy(), "veth has no zero-copy");

        let hopopts = vec![0, 0, 1, 4, 0, 0, 0, 0]; // 8 bytes, PadN
        let dstopts = vec![0, 1, 1, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]; // 16 bytes
        let ah = vec![0, 4, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]; // (4+2)*4
        let fragment = vec![0, 0, 0, 0, 0, 0, 0, 7];
        let steered = vec![
            ethernet(&[], 0x0800, &ipv4(&[], 0x4000, 6, &tcp(40000, 80, 1))),
            ethernet(&[], 0x0800, &ipv4(&[], 0, 6, &tcp(80, 40000, 2))),
            ethernet(&[10], 0x0800, &ipv4(&[], 0, 6, &tcp(40001, 25, 3))),
            ethernet(&[100, 10], 0x0800, &ipv4(&[], 0, 6, &tcp(25, 40001, 4))),
            ethernet(
                &[],
                0x0800,
                &ipv4(&[1, 1, 1, 0, 0x94, 4, 0, 0], 0, 6, &tcp(40002, 80, 5)),
            ),
            ethernet(&[], 0x86DD, &ipv6(&[], 6, &tcp(40003, 80, 6))),
            ethernet(
                &[7],
                0x86DD,
                &ipv6(&[(0, hopopts), (60, dstopts), (51, ah)], 6, &tcp(80, 40003, 7)),
            ),
            // Remote mirrors: GRE with transparent Ethernet bridging, ERSPAN II, GRE with IP
            // inside, VXLAN; the inner TCP ports decide.
            tunneled(
                0x6558,
                &[],
                &ethernet(&[20], 0x0800, &ipv4(&[], 0, 6, &tcp(40010, 80, 13))),
            ),
            tunneled(
                0x88BE,
                &[0x10, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0],
                &ethernet(&[], 0x0800, &ipv4(&[], 0, 6, &tcp(25, 40011, 14))),
            ),
            tunneled(0x0800, &[], &ipv4(&[], 0, 6, &tcp(40012, 80, 15))),
            ethernet(
                &[],
                0x0800,
                &ipv4(
                    &[],
                    0,
                    17,
                    &vxlan(&ethernet(&[], 0x0800, &ipv4(&[], 0, 6, &tcp(40013, 80, 16)))),
                ),
            ),
            // Larger than a UMEM frame: arrives in several frames (multi-buffer), put back together.
            ethernet(&[], 0x0800, &ipv4(&[], 0, 6, &tcp_sized(40008, 80, 12, 9000))),
        ];
        let passed = vec![
            ethernet(&[], 0x0800, &ipv4(&[], 0, 6, &tcp(40004, 22, 8))), // port not in the map
            ethernet(&[], 0x0800, &ipv4(&[], 0, 17, &tcp(40005, 80, 9))), // UDP to 80
            ethernet(&[], 0x0806, &[0u8; 28]),                           // ARP
            ethernet(&[], 0x0800, &ipv4(&[], 0x2000, 6, &tcp(40006, 80, 10))), // first fragment
            ethernet(&[], 0x0800, &ipv4(&[], 0x0010, 6, &[0u8; 16])),    // later fragment
            ethernet(&[], 0x86DD, &ipv6(&[(44, fragment)], 6, &tcp(40007, 80, 11))), // v6 fragment
            ethernet(&[], 0x0800, &[0x45, 0, 0]),                        // truncated IPv4
            ethernet(&[], 0x0800, &ipv4(&[], 0, 6, &[0u8; 10])),         // truncated TCP
            // A tunnel whose inner connection is on another port, and PPTP's GRE version 1.
            tunneled(
                0x6558,
                &[],
                &ethernet(&[], 0x0800, &ipv4(&[], 0, 6, &tcp(40014, 22, 17))),
            ),
            ethernet(&[], 0x0800, &ipv4(&[], 0, 47, &[0x30, 0x01, 0x88, 0x0B, 0, 0, 0, 0])),
        ];
        let mut all = steered.clone();
        all.extend(passed.iter().cloned());
        send_frames(b, &all);

        let summary = capture.stop(Duration::from_secs(2)).expect("stop");
        let seen = seen.lock().unwrap();
        assert_eq!(seen.finished, 2, "every worker finishes its handler");
        let mut got = seen.frames.clone();
        got.sort();
        let mut want = steered.clone();
        want.sort();
        assert_eq!(got, want, "exactly the steered frames reach userspace, unmodified");
        let x = summary.xdp;
        assert_eq!(x.redirected, steered.len() as u64, "{x:?}");
        assert_eq!(x.redirected_bytes, steered.iter().map(|f| f.len() as u64).sum::<u64>());
        assert_eq!(x.passed, passed.len() as u64, "{x:?}");
        assert_eq!(x.ip_fragments, 3, "{x:?}");
        assert_eq!(x.parse_failed, 2, "{x:?}");
        assert_eq!(x.redirect_failed, 0, "{x:?}");
        assert_eq!(x.tunneled, 5, "{x:?}");
        let total = summary.total();
        assert_eq!(total.rx_packets, steered.len() as u64);
        assert_eq!(total.kernel_drops(), 0, "{total:?}");
        assert_eq!(total.rx_multi_buffer, 1, "{total:?}");
    })
    .join()
    .expect("live capture thread");
    drop(ns);
}

impl Netns {
    fn enter_and_forget(self) {
        self.enter();
        std::mem::forget(self); // the outer guard deletes it
    }
}

#[test]
fn steering_native_and_generic() {
    if let Err(reason) = prerequisites() {
        return skip_or_fail(reason);
    }
    run_mode(XdpModeChoice::Native);
    run_mode(XdpModeChoice::Generic);
}

#[test]
fn errors_are_clear() {
    if let Err(reason) = prerequisites() {
        return skip_or_fail(reason);
    }
    let ns = Netns::new("e");
    ip(&[
        "-n",
        &ns.name,
        "link",
        "add",
        "xdcE",
        "numrxqueues",
        "2",
        "type",
        "veth",
        "peer",
        "name",
        "xdcF",
    ]);
    let name = ns.name.clone();
    std::thread::spawn(move || {
        Netns { name }.enter_and_forget();
        let handler = |_q: u32| Collect(Arc::new(Mutex::new(Seen::default())));
        let err = LiveCapture::start(&LiveConfig::new("xdcnope"), handler).err().unwrap();
        assert_eq!(err.to_string(), "no such network interface `xdcnope` (see `ip link`)");
        let mut config = LiveConfig::new("xdcE");
        config.queues = "0,5".parse().unwrap();
        let err = LiveCapture::start(&config, handler).err().unwrap();
        assert!(err.to_string().starts_with("queue 5 does not exist on xdcE: it has 2 queue(s)"), "{err}");

        // A program left attached by a dead run (here: attached by iproute2, a netlink
        // attachment nobody owns) is detected by name and replaced.
        let obj = concat!(env!("CARGO_MANIFEST_DIR"), "/../../ebpf/xdpcarve.bpf.o");
        let out = Command::new("ip").args(["link", "set", "dev", "xdcE", "xdpgeneric", "obj", obj, "sec", "xdp"]).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let config = LiveConfig { queues: QueueSelection::All, mode: XdpModeChoice::Generic, ..LiveConfig::new("xdcE") };
        let capture = LiveCapture::start(&config, handler).expect("replaces the stale program");
        let mut second = LiveCapture::start(&config, handler).err().unwrap().to_string();
        second.truncate(60);
        assert!(second.contains("holds the XDP hook") || second.contains("already"), "{second}");
        drop(capture);
        let show = Command::new("ip").args(["-d", "link", "show", "xdcE"]).output().unwrap();
        assert!(!String::from_utf8_lossy(&show.stdout).contains("prog/xdp"), "detached on drop");

        // A foreign program is left alone.
        let foreign = std::env::temp_dir().join(format!("xdc{}-foreign.bpf.o", std::process::id()));
        let src = std::env::temp_dir().join(format!("xdc{}-foreign.bpf.c", std::process::id()));
        std::fs::write(&src, "__attribute__((section(\"xdp\"), used)) int other(void *ctx) { return 2; }\nchar _l[] __attribute__((section(\"license\"), used)) = \"GPL\";\n").unwrap();
        let built = Command::new("clang-14").args(["-O2", "-target", "bpf", "-c"]).arg(&src).arg("-o").arg(&foreign).status();
        if built.map(|s| s.success()).unwrap_or(false) {
            let out = Command::new("ip").args(["link", "set", "dev", "xdcE", "xdpgeneric", "obj"]).arg(&foreign).args(["sec", "xdp"]).output().unwrap();
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            let err = LiveCapture::start(&config, handler).err().unwrap().to_string();
            assert!(err.contains("name `other`") && err.contains("not xdpcarve's"), "{err}");
        }
        let _ = std::fs::remove_file(&foreign);
        let _ = std::fs::remove_file(&src);
    })
    .join()
    .expect("error test thread");
    drop(ns);
}

/// The linear program variant (what kernels before 5.18 load) passes the verifier and steers.
#[test]
fn linear_variant_steers() {
    if let Err(reason) = prerequisites() {
        return skip_or_fail(reason);
    }
    let ns = Netns::new("l");
    ip(&[
        "-n", &ns.name, "link", "add", "xdcL", "type", "veth", "peer", "name", "xdcM",
    ]);
    for dev in ["xdcL", "xdcM"] {
        let _ = Command::new("ip")
            .args([
                "netns",
                "exec",
                &ns.name,
                "sysctl",
                "-qw",
                &format!("net.ipv6.conf.{dev}.disable_ipv6=1"),
            ])
            .output();
        ip(&["-n", &ns.name, "link", "set", dev, "up"]);
    }
    let name = ns.name.clone();
    std::thread::spawn(move || {
        Netns { name }.enter_and_forget();
        let seen = Arc::new(Mutex::new(Seen::default()));
        let handler_seen = seen.clone();
        let config = LiveConfig {
            multi_buffer: false,
            ..LiveConfig::new("xdcL")
        };
        let capture = LiveCapture::start(&config, move |_q| Collect(handler_seen.clone())).expect("start");
        let frames = vec![
            ethernet(&[], 0x0800, &ipv4(&[], 0, 6, &tcp(40000, 80, 1))),
            tunneled(
                0x6558,
                &[],
                &ethernet(&[], 0x0800, &ipv4(&[], 0, 6, &tcp(40001, 8080, 2))),
            ),
            ethernet(&[], 0x0800, &ipv4(&[], 0, 6, &tcp(40002, 22, 3))),
        ];
        send_frames("xdcM", &frames);
        let summary = capture.stop(Duration::from_secs(2)).expect("stop");
        assert_eq!(seen.lock().unwrap().frames.len(), 2);
        assert_eq!(
            (summary.xdp.redirected, summary.xdp.passed, summary.xdp.tunneled),
            (2, 1, 1),
            "{:?}",
            summary.xdp
        );
    })
    .join()
    .expect("linear variant thread");
    drop(ns);
}
