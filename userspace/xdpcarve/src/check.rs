//! `xdpcarve check` (or `--check`): everything a run would need, checked without capturing or
//! changing anything, and what the run would do. One line per finding on stdout:
//! `ok`, `warn` (the run works, but not as well as it could) or `FAIL` (the run would fail or
//! lose data); the exit status is 1 when anything failed.

use std::io::Write;
use std::net::{TcpListener, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use xdpcarve_capture::CaptureFile;
use xdpcarve_egress::{AuthToken, EgressConfig, MetricsHub};
use xdpcarve_scan::{ScanConfig, ScanPlan};
use xdpcarve_xdp::probe::{self, NicReport};
use xdpcarve_xdp::{Rss, XdpModeChoice};

use crate::cli::Cli;
use crate::config;

#[derive(Copy, Clone, PartialEq, Eq)]
enum Level {
    Ok,
    Warn,
    Fail,
    Would,
}

#[derive(Default)]
struct Findings {
    lines: Vec<(Level, String)>,
}

impl Findings {
    fn ok(&mut self, s: impl Into<String>) {
        self.lines.push((Level::Ok, s.into()));
    }
    fn warn(&mut self, s: impl Into<String>) {
        self.lines.push((Level::Warn, s.into()));
    }
    fn fail(&mut self, s: impl Into<String>) {
        self.lines.push((Level::Fail, s.into()));
    }
    fn would(&mut self, s: impl Into<String>) {
        self.lines.push((Level::Would, s.into()));
    }
    fn count(&self, level: Level) -> usize {
        self.lines.iter().filter(|(l, _)| *l == level).count()
    }
}

/// Runs every check and prints the findings; 0 when nothing failed, else 1.
pub fn run(cli: &Cli) -> Result<ExitCode> {
    let mut f = Findings::default();
    check_all(cli, &mut f);
    let mut out = std::io::stdout().lock();
    for (level, line) in &f.lines {
        let tag = match level {
            Level::Ok => "ok  ",
            Level::Warn => "warn",
            Level::Fail => "FAIL",
            Level::Would => "run ",
        };
        let _ = writeln!(out, "{tag}  {line}");
    }
    let (fails, warns) = (f.count(Level::Fail), f.count(Level::Warn));
    let _ = writeln!(
        out,
        "check: {fails} problem(s), {warns} warning(s){}",
        if fails > 0 {
            "; a run would fail or lose data (see FAIL above)"
        } else {
            "; a run can start"
        }
    );
    Ok(if fails > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn check_all(cli: &Cli, f: &mut Findings) {
    let live = cli.live.interface.is_some();
    match &cli.egress.config {
        Some(p) => f.ok(format!("config file {}: parses", p.display())),
        None => f.ok("no config file (--config): built-in defaults and flags"),
    }
    let settings = match config::settings(&cli.egress, cli.files_log.as_deref(), live) {
        Ok(s) => s,
        Err(e) => {
            f.fail(format!("settings: {e:#}"));
            return;
        }
    };
    let engine = match crate::engine_config(cli) {
        Ok(cfg) => {
            f.ok("engine settings are valid");
            Some(cfg)
        }
        Err(e) => {
            f.fail(format!("engine settings: {e:#}"));
            None
        }
    };
    let egress = &settings.egress;
    if let Err(e) = xdpcarve_egress::policy::Policy::new(&egress.policy) {
        f.fail(format!("policy: {e}"));
    }
    check_scanners(&settings.scan, &egress.sensor_name, f);

    match (cli.read.is_empty(), &cli.live.interface) {
        (false, _) => match crate::offline::order_inputs(&cli.read) {
            Ok(inputs) => {
                for (path, why) in &inputs.skipped {
                    f.warn(format!("{}: not read: {why}", path.display()));
                }
                for path in &inputs.files {
                    check_read(path, f);
                }
                if inputs.files.len() > 1 {
                    f.would(format!("read {} captures in timestamp order", inputs.files.len()));
                }
            }
            Err(e) => f.fail(format!("{e:#}")),
        },
        (true, Some(iface)) => check_live(cli, iface, f),
        (true, None) => f.ok("no -r FILE or -i IFACE given: checked the settings only"),
    }
    check_outputs(egress, &settings.scan, f);
    check_webhook(egress, f);
    check_fleet(egress, f);
    check_metrics(egress, f);

    if let Some(cfg) = engine {
        let names: Vec<&str> = cfg.protocols.names().collect();
        f.would(format!(
            "carve {} on ports HTTP {} and SMTP {}{}; hashes {}; files up to {}",
            names.join(", "),
            join(&cli.http_ports.0),
            join(&cli.smtp_ports.0),
            if cli.ports_only {
                ""
            } else {
                " (and other ports whose first bytes are HTTP or SMTP)"
            },
            cli.hashes,
            crate::summary::human_bytes(cli.max_file_size)
        ));
    }
    let log = egress.files_log.path.as_deref().unwrap_or("files.log");
    f.would(format!(
        "write one JSON record per file to {}",
        if log == "-" { "standard output" } else { log }
    ));
    match &egress.webhook.url {
        Some(url) => f.would(format!(
            "submit files of types {} to {url} ({} format, dedup {}), spill journal in {}",
            egress.policy.mime_types.join(" | "),
            match egress.webhook.format {
                xdpcarve_egress::WebhookFormat::Batch => "batch",
                xdpcarve_egress::WebhookFormat::Md5 => "md5",
            },
            if egress.dedup.enabled {
                format!("for {}", humantime::format_duration(egress.dedup.ttl))
            } else {
                "off".into()
            },
            egress
                .spill
                .dir
                .as_deref()
                .map_or("(none)".into(), |d| d.display().to_string())
        )),
        None => f.would("submit nothing (no webhook.url / --webhook-url)"),
    }
    if !settings.scan.pipelines.is_empty() {
        f.would(format!(
            "scan with {} pipeline(s) over {} scanner(s), files kept in {}",
            settings.scan.pipelines.len(),
            settings.scan.scanners.len(),
            settings
                .scan
                .store
                .dir
                .as_deref()
                .map_or("(no store)".into(), |d| d.display().to_string())
        ));
    }
    if egress.fleet.redis.is_some() {
        let fl = &egress.fleet;
        let dedup = if egress.webhook.url.is_some() && egress.dedup.enabled {
            format!(
                "share dedup (claims leased {}) and ",
                humantime::format_duration(fl.lease)
            )
        } else {
            String::new()
        };
        f.would(format!(
            "{dedup}add every record to the stream {} on {} (sightings kept {})",
            fl.stream,
            xdpcarve_egress::fleet::link::display_urls(&fl.urls()),
            humantime::format_duration(fl.seen_ttl)
        ));
    }
    if let Some(addr) = egress.metrics.addr {
        f.would(format!("serve Prometheus metrics on http://{addr}/metrics"));
    }
}

fn join(ports: &[u16]) -> String {
    ports.iter().map(u16::to_string).collect::<Vec<_>>().join(",")
}

fn check_scanners(scan: &ScanConfig, sensor: &str, f: &mut Findings) {
    if scan.scanners.is_empty() && scan.pipelines.is_empty() && scan.store.dir.is_none() {
        return;
    }
    // The logs are checked as paths below: building the plan must not create them.
    let mut dry = scan.clone();
    dry.scan.scans_log = None;
    dry.scan.alerts_log = None;
    if dry.store.dir.is_some() {
        // A real run opens the store first; here only the pipelines' scanner names are checked.
        for (i, p) in dry.pipelines.iter().enumerate() {
            for s in p.scanners.iter().filter(|s| !dry.scanners.contains_key(*s)) {
                f.fail(format!("pipelines[{i}]: scanner `{s}` is not defined in [scanners]"));
            }
        }
        dry.pipelines.clear();
    }
    let hub = MetricsHub::new(sensor);
    match ScanPlan::build(&dry, None, hub.registry()) {
        Ok(_) => f.ok(format!(
            "{} scanner(s) set up (rules compile, programs exist)",
            scan.scanners.len()
        )),
        Err(e) => f.fail(format!("scanners: {e}")),
    }
    for (name, sc) in &scan.scanners {
        if let Some(socket) = &sc.socket {
            match std::os::unix::net::UnixStream::connect(socket) {
                Ok(_) => f.ok(format!("scanners.{name}: {} accepts connections", socket.display())),
                Err(e) => f.fail(format!(
                    "scanners.{name}: cannot connect to {}: {e} (is clamd running?)",
                    socket.display()
                )),
            }
        }
    }
}

fn check_read(path: &Path, f: &mut Findings) {
    match CaptureFile::open(path) {
        Ok(cap) => f.ok(format!(
            "{}: a {} capture of {} B",
            path.display(),
            cap.describe(),
            cap.file_len()
        )),
        Err(e) => f.fail(format!("{}: {e}", path.display())),
    }
}

fn check_live(cli: &Cli, name: &str, f: &mut Findings) {
    match xdpcarve_xdp::iface::kernel_version() {
        Some((v, release)) if v < xdpcarve_xdp::MIN_KERNEL => f.fail(format!(
            "kernel {release}: live capture needs Linux {}.{} or newer",
            xdpcarve_xdp::MIN_KERNEL.0,
            xdpcarve_xdp::MIN_KERNEL.1
        )),
        Some((_, release)) => f.ok(format!("kernel {release}")),
        None => f.warn("kernel version unknown (uname failed)"),
    }
    match probe::af_xdp_available() {
        Ok(()) => f.ok("AF_XDP sockets are available"),
        Err(e) => f.fail(format!(
            "cannot open an AF_XDP socket: {e} (kernel without CONFIG_XDP_SOCKETS, or no CAP_NET_RAW)"
        )),
    }
    let nic = match probe::probe(name) {
        Ok(n) => n,
        Err(e) => {
            f.fail(e.to_string());
            return;
        }
    };
    let rings = match cli.live.rings() {
        Ok(r) => Some(r),
        Err(e) => {
            f.fail(format!("rings: {e}"));
            None
        }
    };
    let queues = match cli.live.queues.resolve(&nic.interface) {
        Ok(q) => q,
        Err(e) => {
            f.fail(e.to_string());
            return;
        }
    };
    if let Some(r) = &rings {
        let locked = r.umem_bytes() * queues.len() as u64;
        match xdpcarve_xdp::iface::check_capabilities(locked) {
            Ok(()) => f.ok(format!(
                "capabilities: enough to attach XDP and lock {} MiB of UMEM",
                locked >> 20
            )),
            Err(e) => f.fail(e.to_string()),
        }
    }
    check_nic(&nic, cli.live.xdp_mode, queues.len(), f);
    f.would(format!(
        "capture {name} queues {} ({} worker(s), {} mode{})",
        queues.iter().map(u32::to_string).collect::<Vec<_>>().join(","),
        queues.len(),
        match (cli.live.xdp_mode, nic.xdp.map(|x| x.native())) {
            (XdpModeChoice::Generic, _) | (XdpModeChoice::Auto, Some(false)) => "generic",
            (XdpModeChoice::Native, _) | (XdpModeChoice::Auto, Some(true)) => "native",
            (XdpModeChoice::Auto, None) => "native if the driver has it, else generic",
        },
        if nic.xdp.is_some_and(|x| x.zero_copy()) {
            ", zero-copy"
        } else {
            ", copy mode"
        }
    ));
}

fn check_nic(nic: &NicReport, mode: XdpModeChoice, queues: usize, f: &mut Findings) {
    let name = &nic.interface.name;
    let driver = nic.driver.as_deref().unwrap_or("its driver");
    if !nic.interface.is_ethernet() {
        f.fail(format!(
            "{name} is not Ethernet (ARPHRD {}): capture on the Ethernet port that carries the traffic",
            nic.interface.arphrd
        ));
    }
    if nic.up {
        f.ok(format!(
            "{name}: up ({}), driver {}",
            nic.operstate,
            nic.driver.as_deref().unwrap_or("not reported")
        ));
    } else {
        f.fail(format!(
            "{name} is down (operstate {}): `ip link set dev {name} up` and check the cable or SPAN session",
            nic.operstate
        ));
    }
    match nic.xdp {
        Some(x) if x.native() => f.ok(format!(
            "{name}: native XDP{}{}",
            if x.zero_copy() { ", AF_XDP zero-copy" } else { "" },
            if x.multi_buffer() { ", multi-buffer" } else { "" }
        )),
        Some(_) if mode == XdpModeChoice::Native => f.fail(format!(
            "{name}: {driver} has no native XDP, and --xdp-mode native was asked: use auto or generic"
        )),
        Some(_) => f.warn(format!(
            "{name}: {driver} has no native XDP: generic mode copies every packet and is much slower"
        )),
        None => f.warn(format!(
            "{name}: this kernel does not report XDP features (before 6.3); the run tries native, then generic"
        )),
    }
    if nic.xdp.is_some_and(|x| x.native() && !x.zero_copy()) {
        f.warn(format!(
            "{name}: no AF_XDP zero-copy in {driver}: frames are copied (veth never has it)"
        ));
    }
    if queues < nic.interface.queues as usize {
        f.warn(format!(
            "{name}: capturing {queues} of {} queues; traffic RSS puts on the others is not carved",
            nic.interface.queues
        ));
    } else {
        f.ok(format!("{name}: {} queue(s), all captured", nic.interface.queues));
    }
    match &nic.rss {
        Rss::Reported { symmetric: true, hash } => f.ok(format!("{name}: RSS {hash}, symmetric")),
        Rss::Reported { symmetric: false, hash } if queues > 1 => f.fail(format!(
            "{name}: RSS {hash} is not symmetric: the two directions of a connection land on different \
             queues and their files are lost; run deploy/nic-setup.sh {name}"
        )),
        Rss::Reported { hash, .. } => f.ok(format!("{name}: RSS {hash} (one queue captured, symmetry not needed)")),
        Rss::NotReported if queues > 1 => f.warn(format!(
            "{name}: the driver reports no RSS settings, so symmetry cannot be checked"
        )),
        Rss::NotReported => f.ok(format!("{name}: one queue, no RSS needed")),
    }
    if nic.lro == Some(true) {
        f.warn(format!(
            "{name}: LRO is on: the NIC merges segments, and many drivers refuse native XDP with it \
             (`ethtool -K {name} lro off`)"
        ));
    }
    if nic.rx_vlan_strip == Some(true) {
        f.warn(format!(
            "{name}: rx VLAN offload strips 802.1Q tags before XDP sees them (`ethtool -K {name} rxvlan off`)"
        ));
    }
    if nic.gro == Some(true) && nic.xdp.is_some_and(|x| !x.native()) {
        f.warn(format!(
            "{name}: GRO is on and XDP will run in generic mode, after GRO merged segments (`ethtool -K {name} gro off`)"
        ));
    }
    if let Some((id, mode)) = nic.attached {
        f.warn(format!(
            "{name}: an XDP program (id {id}, {mode} mode) is attached; a run replaces it only if it is an \
             earlier xdpcarve's, and refuses otherwise"
        ));
    }
}

/// Where a path's directory stands: it exists and takes a new file, or it would be created
/// under an ancestor that does. Creates and removes one probe file; nothing else.
fn writable_dir(dir: &Path) -> std::result::Result<&'static str, String> {
    let mut existing = dir;
    let mut created = false;
    while !existing.exists() {
        created = true;
        existing = match existing.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
    }
    if !existing.is_dir() {
        return Err(format!("{} is not a directory", existing.display()));
    }
    let probe = existing.join(format!(".xdpcarve-check-{}", std::process::id()));
    match std::fs::OpenOptions::new().write(true).create_new(true).open(&probe) {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            Ok(if created { "will be created" } else { "writable" })
        }
        Err(e) => Err(format!("cannot write in {}: {e}", existing.display())),
    }
}

fn check_path(what: &str, path: &Path, is_dir: bool, f: &mut Findings) {
    let dir: PathBuf = if is_dir {
        path.to_path_buf()
    } else {
        match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        }
    };
    if !is_dir && path.is_dir() {
        f.fail(format!("{what} {}: is a directory", path.display()));
        return;
    }
    match writable_dir(&dir) {
        Ok(state) => f.ok(format!("{what} {}: {state}", path.display())),
        Err(e) => f.fail(format!("{what} {}: {e}", path.display())),
    }
}

fn check_outputs(egress: &EgressConfig, scan: &ScanConfig, f: &mut Findings) {
    match egress.files_log.path.as_deref() {
        Some("-") | None => f.ok("files log: standard output"),
        Some(p) => check_path("files log", Path::new(p), false, f),
    }
    if let Some(d) = &egress.spill.dir {
        check_path("spill journal", d, true, f);
    }
    if let Some(p) = &egress.dedup.state_file {
        check_path("dedup state", p, false, f);
    }
    if let Some(d) = &scan.store.dir {
        check_path("store", d, true, f);
    }
    for (what, p) in [
        ("scans log", &scan.scan.scans_log),
        ("alerts log", &scan.scan.alerts_log),
    ] {
        match p.as_deref() {
            Some(p) if p == Path::new("-") => f.ok(format!("{what}: standard output")),
            Some(p) => check_path(what, p, false, f),
            None => {}
        }
    }
}

fn check_webhook(egress: &EgressConfig, f: &mut Findings) {
    let Some(url) = &egress.webhook.url else { return };
    match AuthToken::load(egress.webhook.token_file.as_deref()) {
        Ok(Some(_)) => f.ok("webhook token: readable"),
        Ok(None) => f.warn("webhook: no token (webhook.token_file, --webhook-token-file or XDPCARVE_WEBHOOK_TOKEN)"),
        Err(e) => f.fail(format!("webhook token: {e}")),
    }
    let Some((host, port)) = host_port(url) else {
        f.fail(format!("webhook.url {url}: no host"));
        return;
    };
    let addrs = match (host.as_str(), port).to_socket_addrs() {
        Ok(a) => a.collect::<Vec<_>>(),
        Err(e) => {
            f.fail(format!("webhook {url}: cannot resolve {host}: {e}"));
            return;
        }
    };
    let reached = addrs
        .iter()
        .find_map(|a| TcpStream::connect_timeout(a, Duration::from_secs(3)).ok().map(|_| *a));
    match reached {
        Some(a) => f.ok(format!("webhook {url}: {a} accepts connections")),
        None => f.fail(format!(
            "webhook {url}: no connection to {host}:{port} within 3 s (down, firewalled, or wrong port); \
             a run would spill every submission"
        )),
    }
}

fn check_fleet(egress: &EgressConfig, f: &mut Findings) {
    use xdpcarve_egress::fleet::link::ProbeError;
    if egress.fleet.redis.is_none() {
        return;
    }
    // fleet.timeout is a call's budget; a first connection (TLS, Cluster discovery) gets more.
    let timeout = egress.fleet.timeout.max(Duration::from_secs(3));
    match xdpcarve_egress::fleet::link::probe(&egress.fleet, timeout) {
        Ok(name) => f.ok(format!("fleet {name}: Redis answers")),
        Err(e @ ProbeError::Setup(_)) => f.fail(format!("{e} (a run would not start)")),
        Err(e) => f.fail(format!(
            "fleet: {e}; a run would decide dedup locally and keep the stream's records until Redis answers"
        )),
    }
}

/// The host and port of an http(s) URL.
fn host_port(url: &str) -> Option<(String, u16)> {
    let (scheme, rest) = url.split_once("://")?;
    let default = if scheme.eq_ignore_ascii_case("https") { 443 } else { 80 };
    let authority = rest.split(['/', '?', '#']).next()?;
    let authority = authority.rsplit('@').next()?;
    if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6.split_once(']')?;
        let port = after.strip_prefix(':').map_or(Some(default), |p| p.parse().ok())?;
        return Some((host.to_string(), port));
    }
    match authority.rsplit_once(':') {
        Some((h, p)) => Some((h.to_string(), p.parse().ok()?)),
        None => Some((authority.to_string(), default)),
    }
    .filter(|(h, _)| !h.is_empty())
}

fn check_metrics(egress: &EgressConfig, f: &mut Findings) {
    let Some(addr) = egress.metrics.addr else { return };
    match TcpListener::bind(addr) {
        Ok(_) => f.ok(format!("metrics address {addr}: free")),
        Err(e) => f.fail(format!(
            "metrics address {addr}: {e} (another process listens there? choose --metrics-addr)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_give_host_and_port() {
        assert_eq!(
            host_port("https://intel.example/api"),
            Some(("intel.example".into(), 443))
        );
        assert_eq!(host_port("http://127.0.0.1:8080/x?y"), Some(("127.0.0.1".into(), 8080)));
        assert_eq!(host_port("http://u:p@[::1]:9/x"), Some(("::1".into(), 9)));
        assert_eq!(host_port("http:///x"), None);
        assert_eq!(host_port("intel.example"), None);
    }

    #[test]
    fn a_missing_directory_under_a_writable_one_will_be_created() {
        let base = std::env::temp_dir().join(format!("xdpcarve-check-{}", std::process::id()));
        std::fs::create_dir_all(&base).unwrap();
        assert_eq!(writable_dir(&base), Ok("writable"));
        assert_eq!(writable_dir(&base.join("a/b")), Ok("will be created"));
        std::fs::write(base.join("file"), b"").unwrap();
        assert!(writable_dir(&base.join("file/x"))
            .unwrap_err()
            .contains("not a directory"));
        assert_eq!(
            std::fs::read_dir(&base).unwrap().count(),
            1,
            "the probe file is removed"
        );
        std::fs::remove_dir_all(&base).unwrap();
    }
}
