//! Throwaway networks for end-to-end tests: network namespaces joined by veth pairs, addressed from
//! a private test range that exists only inside those namespaces, plus background processes
//! (servers, tcpdump) that die with the test.
//!
//! Every name this module creates starts with `xdc-<pid base36>-`, so a crashed run's leftovers are
//! recognisable: [`Lab::new`] removes `xdc-*` namespaces and links whose process is gone. Everything
//! a [`Lab`] made is removed by name when it is dropped, also when the test panics.
//!
//! Interface names are at most 15 bytes (IFNAMSIZ - 1): `xdc-` + pid (≤ 5 base36 digits) + `-` +
//! counter (≤ 3) + role (1) = 14.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::sync::Once;
use std::thread;
use std::time::{Duration, Instant};

const PREFIX: &str = "xdc-";
/// Addresses are taken from 10.201.0.0/16, one /24 per link, and only ever assigned inside
/// namespaces this module created.
const SUBNET_BASE: [u8; 2] = [10, 201];

static COUNTER: AtomicU32 = AtomicU32::new(0);
static STALE_SWEEP: Once = Once::new();

fn base36(mut n: u32) -> String {
    const DIGITS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::new();
    loop {
        out.push(DIGITS[(n % 36) as usize]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8(out).expect("ascii")
}

/// A fresh `xdc-<pid>-<n>` stem, unique within this machine while this process lives.
fn unique_stem() -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{PREFIX}{}-{}", base36(std::process::id()), base36(n % 46_656))
}

/// A test that cannot run here: prints `SKIPPED: <reason>`, or panics when `CI` is set (in CI a
/// skipped test is a failure of the setup).
pub fn skip(reason: &str) {
    if std::env::var_os("CI").is_some() {
        panic!("CI is set, so this test may not skip: {reason}");
    }
    println!("SKIPPED: {reason}");
}

/// Whether a test that needs `tool` (and not root) can run: true when it is on PATH; otherwise
/// [`skip`]s and returns false.
pub fn require_tool_or_skip(tool: &str) -> bool {
    if have_tool(tool) {
        return true;
    }
    skip(&format!(
        "`{tool}` not found (tests/setup.sh installs it; run it as root)"
    ));
    false
}

/// True when `tool` is an executable on PATH (or an absolute path that exists).
pub fn have_tool(tool: &str) -> bool {
    if tool.contains('/') {
        return Path::new(tool).exists();
    }
    std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|dir| dir.join(tool).is_file()))
        .unwrap_or(false)
}

fn is_root() -> bool {
    // /proc/self/status "Uid:\treal\teffective\t..."; no libc dependency needed for this.
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

/// Whether a test that builds namespaces can run here: root and every tool in `tools` (plus `ip`)
/// present. Returns false after [`skip`] when not.
pub fn require_root_or_skip(tools: &[&str]) -> bool {
    let mut reasons = Vec::new();
    if !is_root() {
        reasons.push("not running as root (network namespaces need CAP_NET_ADMIN)".to_string());
    }
    for tool in std::iter::once(&"ip").chain(tools.iter()) {
        if !have_tool(tool) {
            reasons.push(format!("`{tool}` not found on PATH (run tests/setup.sh as root)"));
        }
    }
    if reasons.is_empty() {
        return true;
    }
    skip(&reasons.join("; "));
    false
}

/// Runs a command to completion within `timeout`, killing it past that. Output is captured.
pub fn run_with_timeout(cmd: &mut Command, timeout: Duration) -> Result<Output, String> {
    let desc = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {desc}: {e}"))?;
    // Drain both pipes on threads so a chatty child cannot block on a full pipe.
    let mut out = child.stdout.take().expect("piped");
    let mut err = child.stderr.take().expect("piped");
    let out_t = thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out.read_to_end(&mut v);
        v
    });
    let err_t = thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err.read_to_end(&mut v);
        v
    });
    let status = match wait_timeout(&mut child, timeout) {
        Some(status) => status,
        None => {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("{desc} did not finish within {timeout:?} and was killed"));
        }
    };
    Ok(Output {
        status,
        stdout: out_t.join().unwrap_or_default(),
        stderr: err_t.join().unwrap_or_default(),
    })
}

/// Runs a command and panics with its stderr unless it exits 0 within `timeout`.
pub fn run_ok(cmd: &mut Command, timeout: Duration) -> Output {
    let desc = format!("{cmd:?}");
    match run_with_timeout(cmd, timeout) {
        Ok(out) if out.status.success() => out,
        Ok(out) => panic!(
            "{desc} failed ({}):\nstdout: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => panic!("{e}"),
    }
}

fn wait_timeout(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() >= deadline => return None,
            Ok(None) => thread::sleep(Duration::from_millis(20)),
            Err(_) => return None,
        }
    }
}

fn ip(args: &[&str]) -> Result<Output, String> {
    run_with_timeout(Command::new("ip").args(args), Duration::from_secs(10))
}

fn ip_ok(args: &[&str]) {
    run_ok(Command::new("ip").args(args), Duration::from_secs(10));
}

fn pid_alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// The pid encoded in an `xdc-<pid36>-...` name, if it is one of ours.
fn owner_pid(name: &str) -> Option<u32> {
    let rest = name.strip_prefix(PREFIX)?;
    let pid36 = rest.split('-').next()?;
    u32::from_str_radix(pid36, 36).ok()
}

/// Removes namespaces and root-namespace links left by test processes that no longer exist.
/// Names of live processes are left alone: another test binary may be using them right now.
pub fn remove_stale() {
    if let Ok(out) = ip(&["netns", "list"]) {
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let name = line.split_whitespace().next().unwrap_or("");
            if let Some(pid) = owner_pid(name) {
                if !pid_alive(pid) {
                    let _ = ip(&["netns", "del", name]);
                }
            }
        }
    }
    if let Ok(out) = ip(&["-o", "link", "show"]) {
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            // "7: xdc-abc-1r@if6: <...>"
            let Some(name) = line.split(':').nth(1).map(|s| s.trim().split('@').next().unwrap_or("")) else {
                continue;
            };
            if let Some(pid) = owner_pid(name) {
                if !pid_alive(pid) {
                    let _ = ip(&["link", "del", name]);
                }
            }
        }
    }
}

/// One end of a veth pair.
#[derive(Clone, Debug)]
pub struct Endpoint {
    /// Namespace the interface lives in; None for the root namespace.
    pub ns: Option<String>,
    pub ifname: String,
    /// Address without prefix length, when one was assigned.
    pub addr: Option<String>,
}

/// A veth pair between two namespaces (or a namespace and the root namespace).
#[derive(Clone, Debug)]
pub struct Link {
    pub a: Endpoint,
    pub b: Endpoint,
}

/// A background process started by a [`Lab`]; killed when the lab is dropped unless stopped first.
pub struct Background {
    pub name: String,
    child: Option<Child>,
    stdout_lines: Option<mpsc::Receiver<String>>,
    stderr_lines: Option<mpsc::Receiver<String>>,
    stderr_log: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Background {
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    /// Waits until a line containing `needle` appears on the process's stdout (`on_stderr` false)
    /// or stderr. Panics on timeout or when the process exits first, with what it printed.
    pub fn wait_for_line(&mut self, needle: &str, on_stderr: bool, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        let rx = if on_stderr {
            self.stderr_lines.as_ref()
        } else {
            self.stdout_lines.as_ref()
        };
        let rx = rx.expect("output was captured");
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left.min(Duration::from_millis(100))) {
                Ok(line) if line.contains(needle) => return line,
                Ok(_) => continue,
                Err(mpsc::RecvTimeoutError::Timeout) if Instant::now() < deadline => {
                    if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                        panic!(
                            "{} exited ({status}) before printing {needle:?}; stderr:\n{}",
                            self.name,
                            self.stderr()
                        );
                    }
                }
                _ => panic!(
                    "{} did not print {needle:?} within {timeout:?}; stderr so far:\n{}",
                    self.name,
                    self.stderr()
                ),
            }
        }
    }

    /// Everything the process wrote to stderr so far.
    pub fn stderr(&self) -> String {
        // Give the reader thread a moment to catch up with a process that just exited.
        thread::sleep(Duration::from_millis(50));
        self.stderr_log.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Sends SIGINT (what tcpdump needs to flush and close its file) and waits up to `timeout`,
    /// killing it past that. Returns the exit status, None if it had to be killed.
    pub fn interrupt_and_wait(&mut self, timeout: Duration) -> Option<ExitStatus> {
        self.signal_and_wait("INT", timeout)
    }

    /// SIGTERM, then SIGKILL after `timeout`.
    pub fn terminate_and_wait(&mut self, timeout: Duration) -> Option<ExitStatus> {
        self.signal_and_wait("TERM", timeout)
    }

    fn signal_and_wait(&mut self, signal: &str, timeout: Duration) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        let _ = Command::new("kill")
            .args(["-s", signal, &child.id().to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        match wait_timeout(&mut child, timeout) {
            Some(status) => Some(status),
            None => {
                let _ = child.kill();
                let _ = child.wait();
                None
            }
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.terminate_and_wait(Duration::from_secs(3));
    }
}

/// A set of namespaces, links and processes that live exactly as long as this value.
pub struct Lab {
    stem: String,
    namespaces: Vec<String>,
    /// Interfaces created in the root namespace (deleting one end removes its peer too).
    root_links: Vec<String>,
    /// Children that were started through `spawn`; killed (in reverse order) before the
    /// namespaces go away.
    background: Vec<Background>,
    next_item: u32,
    next_subnet: u8,
}

impl Lab {
    /// A new, empty lab. The first lab of a process also removes stale `xdc-*` leftovers.
    pub fn new() -> Lab {
        STALE_SWEEP.call_once(remove_stale);
        Lab {
            stem: unique_stem(),
            namespaces: Vec::new(),
            root_links: Vec::new(),
            background: Vec::new(),
            next_item: 0,
            next_subnet: (COUNTER.load(Ordering::Relaxed) % 200) as u8 + 1,
        }
    }

    fn item_name(&mut self, role: char) -> String {
        let n = self.next_item;
        self.next_item += 1;
        // stem ≤ 12 bytes, +1 digit/letter +1 role = ≤ 14.
        let name = format!("{}{}{}", self.stem, base36(n % 36), role);
        assert!(name.len() <= 15, "interface name {name} too long");
        name
    }

    /// Creates a namespace with its loopback up. Returns its name.
    pub fn add_ns(&mut self) -> String {
        let name = self.item_name('n');
        ip_ok(&["netns", "add", &name]);
        self.namespaces.push(name.clone());
        self.exec_ok(Some(&name), &["ip", "link", "set", "lo", "up"]);
        name
    }

    /// A veth pair from namespace `a` to namespace `b` (None = the root namespace), both ends up,
    /// offloads off (so captures hold wire-sized segments, as on a real tap), and, when `address`
    /// is set, 10.201.N.1/24 on `a` and 10.201.N.2/24 on `b` — only for ends inside namespaces.
    pub fn link(&mut self, a: Option<&str>, b: Option<&str>, address: bool) -> Link {
        self.link_with_queues(a, b, address, 1)
    }

    /// Like [`Lab::link`], but each end has `queues` receive and `queues` transmit queues, like a
    /// multi-queue NIC: a frame sent on one end's tx queue N arrives on the other end's rx queue
    /// N (pick the tx queue with XPS, see [`Lab::xps_one_cpu_per_queue`]).
    pub fn link_with_queues(&mut self, a: Option<&str>, b: Option<&str>, address: bool, queues: u32) -> Link {
        let a_if = self.item_name('a');
        let b_if = self.item_name('b');
        let q = queues.max(1).to_string();
        // Create in the root namespace, then move each end where it belongs.
        ip_ok(&[
            "link",
            "add",
            &a_if,
            "numrxqueues",
            &q,
            "numtxqueues",
            &q,
            "type",
            "veth",
            "peer",
            "name",
            &b_if,
            "numrxqueues",
            &q,
            "numtxqueues",
            &q,
        ]);
        if a.is_none() {
            self.root_links.push(a_if.clone());
        } else if b.is_none() {
            self.root_links.push(b_if.clone());
        }
        let subnet = self.next_subnet;
        self.next_subnet = self.next_subnet.wrapping_add(1).max(1);
        let mut ends = Vec::new();
        for (ifname, ns, host) in [(&a_if, a, 1u8), (&b_if, b, 2u8)] {
            if let Some(ns) = ns {
                ip_ok(&["link", "set", ifname, "netns", ns]);
            }
            let addr = if address && ns.is_some() {
                let addr = format!("{}.{}.{}.{}", SUBNET_BASE[0], SUBNET_BASE[1], subnet, host);
                self.exec_ok(ns, &["ip", "addr", "add", &format!("{addr}/24"), "dev", ifname]);
                Some(addr)
            } else {
                None
            };
            self.exec_ok(ns, &["ip", "link", "set", ifname, "up"]);
            self.offloads_off(ns, ifname);
            ends.push(Endpoint {
                ns: ns.map(str::to_string),
                ifname: ifname.clone(),
                addr,
            });
        }
        let b_end = ends.pop().expect("two ends");
        let a_end = ends.pop().expect("two ends");
        Link { a: a_end, b: b_end }
    }

    /// Transmit Packet Steering on `ifname` (in `ns`): tx queue N is used by senders running on
    /// CPU N (mask 1 << N), for N below `queues`. A sender pinned with `taskset -c N` then
    /// transmits on queue N only.
    pub fn xps_one_cpu_per_queue(&self, ns: Option<&str>, ifname: &str, queues: u32) {
        for n in 0..queues {
            // Inside `ip netns exec`, /sys is the namespace's own sysfs.
            let script = format!("echo {:x} > /sys/class/net/{ifname}/queues/tx-{n}/xps_cpus", 1u64 << n);
            self.exec_ok(ns, &["sh", "-c", &script]);
        }
    }

    /// Turns segmentation/receive offloads off on an interface so every frame a capture sees is
    /// at most one MTU, as on a physical tap.
    pub fn offloads_off(&self, ns: Option<&str>, ifname: &str) {
        if have_tool("ethtool") {
            // Some veth features are fixed; ethtool then exits non-zero although the rest applied.
            let _ = self.exec(ns, &["ethtool", "-K", ifname, "tso", "off", "gso", "off", "gro", "off"]);
        }
    }

    /// A command to run inside `ns` (or the root namespace for None).
    pub fn command(&self, ns: Option<&str>, argv: &[&str]) -> Command {
        match ns {
            Some(ns) => {
                let mut cmd = Command::new("ip");
                cmd.args(["netns", "exec", ns]).args(argv);
                cmd
            }
            None => {
                let mut cmd = Command::new(argv[0]);
                cmd.args(&argv[1..]);
                cmd
            }
        }
    }

    /// Runs a command inside `ns` to completion (30 s at most).
    pub fn exec(&self, ns: Option<&str>, argv: &[&str]) -> Result<Output, String> {
        run_with_timeout(&mut self.command(ns, argv), Duration::from_secs(30))
    }

    /// Runs a command inside `ns` and panics unless it succeeds.
    pub fn exec_ok(&self, ns: Option<&str>, argv: &[&str]) -> Output {
        run_ok(&mut self.command(ns, argv), Duration::from_secs(30))
    }

    /// Starts a background process inside `ns`; its stdout and stderr are read line by line (see
    /// [`Background::wait_for_line`]). It is terminated when the lab is dropped. Returns an index
    /// for [`Lab::bg`].
    pub fn spawn(&mut self, name: &str, ns: Option<&str>, argv: &[&str]) -> usize {
        let mut cmd = self.command(ns, argv);
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({argv:?}): {e}"));
        let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let out_rx = line_reader(child.stdout.take().expect("piped"), None);
        let err_rx = line_reader(child.stderr.take().expect("piped"), Some(log.clone()));
        self.background.push(Background {
            name: name.to_string(),
            child: Some(child),
            stdout_lines: Some(out_rx),
            stderr_lines: Some(err_rx),
            stderr_log: log,
        });
        self.background.len() - 1
    }

    /// A background process started with [`Lab::spawn`].
    pub fn bg(&mut self, index: usize) -> &mut Background {
        &mut self.background[index]
    }

    /// Starts tcpdump writing every full frame of `ifname` (in `ns`) to `path`, and returns once
    /// it is capturing. Stop it with `interrupt_and_wait` before reading the file.
    pub fn tcpdump(&mut self, ns: Option<&str>, ifname: &str, path: &Path) -> usize {
        let path = path.to_str().expect("utf-8 path");
        // -Z root: Debian's tcpdump otherwise drops to user `tcpdump`, which cannot write into a
        // root-owned temp dir. --immediate-mode -U: hand over and write each packet as it comes, so none
        // sits in a half-filled kernel block or stdio buffer when the capture is stopped.
        let idx = self.spawn(
            "tcpdump",
            ns,
            &[
                "tcpdump",
                "-i",
                ifname,
                "-s",
                "0",
                "--immediate-mode",
                "-U",
                // 64 MiB of kernel buffer (the default is 2 MiB): on a loaded 2-core machine the
                // writer falls behind a burst, and a reference capture must not drop.
                "-B",
                "65536",
                "-n",
                "-Z",
                "root",
                "-w",
                path,
            ],
        );
        self.bg(idx)
            .wait_for_line("listening on", true, Duration::from_secs(15));
        idx
    }

    /// Stops a capture started with [`Lab::tcpdump`] cleanly and checks that tcpdump wrote every
    /// packet it saw. tcpdump stops reading its ring buffer at SIGINT, so this first waits until
    /// the file has stopped growing (with -U each packet is written as it is read).
    pub fn stop_tcpdump(&mut self, idx: usize, pcap: &Path) {
        let size = || std::fs::metadata(pcap).map(|m| m.len()).unwrap_or(0);
        let deadline = Instant::now() + Duration::from_secs(60);
        let (mut last, mut stable_since) = (size(), Instant::now());
        while Instant::now() < deadline && stable_since.elapsed() < Duration::from_millis(700) {
            thread::sleep(Duration::from_millis(100));
            if size() != last {
                last = size();
                stable_since = Instant::now();
            }
        }
        let bg = self.bg(idx);
        assert!(
            bg.interrupt_and_wait(Duration::from_secs(30)).is_some(),
            "tcpdump did not stop on SIGINT"
        );
        let stderr = bg.stderr();
        let count = |suffix: &str| -> Option<u64> {
            stderr
                .lines()
                .find(|l| l.trim_end().ends_with(suffix))?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        };
        let (captured, received) = (count("packets captured"), count("packets received by filter"));
        assert!(
            captured.is_some() && captured == received && count("packets dropped by kernel") == Some(0),
            "tcpdump did not write every packet it saw; the capture is incomplete:\n{stderr}"
        );
    }
}

impl Default for Lab {
    fn default() -> Self {
        Lab::new()
    }
}

fn line_reader<R: Read + Send + 'static>(
    r: R,
    log: Option<std::sync::Arc<std::sync::Mutex<String>>>,
) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(r).lines() {
            let Ok(line) = line else { break };
            if let Some(log) = &log {
                if let Ok(mut s) = log.lock() {
                    s.push_str(&line);
                    s.push('\n');
                }
            }
            // The receiver may be gone (nobody waits on this stream); keep draining regardless.
            let _ = tx.send(line);
        }
    });
    rx
}

impl Drop for Lab {
    fn drop(&mut self) {
        // Processes first (they may hold the namespaces' interfaces), newest first.
        while let Some(mut bg) = self.background.pop() {
            let _ = bg.terminate_and_wait(Duration::from_secs(3));
        }
        for link in self.root_links.drain(..) {
            let _ = ip(&["link", "del", &link]);
        }
        // Deleting a namespace destroys the veth ends inside it, and with them their peers.
        for ns in self.namespaces.drain(..).rev() {
            let _ = ip(&["netns", "del", &ns]);
        }
    }
}

/// A temporary directory removed on drop (tests keep it with `XDPCARVE_KEEP_TMP=1` for debugging).
pub struct TempDir {
    pub path: PathBuf,
}

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("xdpcarve-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()));
        TempDir { path }
    }

    pub fn join(&self, p: &str) -> PathBuf {
        self.path.join(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::env::var_os("XDPCARVE_KEEP_TMP").is_some() {
            eprintln!("kept {}", self.path.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// Runs a client command inside `ns` (60 s at most) and returns its stdout; fails the test, with
/// both outputs, when it does not succeed.
pub fn client(lab: &Lab, ns: &str, argv: &[&str]) -> String {
    let out = run_with_timeout(&mut lab.command(Some(ns), argv), std::time::Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        out.status.success(),
        "{argv:?} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
