//! `xdpcarve-flow-bench`: what flow state costs, against the goals of the flow-state work.
//!
//! For each scenario it writes a capture with `xdpcarve-gen` (floods of SYNs, half-open requests
//! or idle keep-alive connections, with or without a real download in the middle), then:
//! - runs the engine in this process, with a counting allocator: the heap's peak over the
//!   capture, per flow (everything a flow costs: table, index, parsers, buffers);
//! - runs `xdpcarve -r` on it, as a user would, under GNU time: peak RSS, CPU seconds, new-flow
//!   packets per CPU second, and whether the download's SHA-256 is the manifest's.
//!
//! Each line prints the goal next to the figure. Needs GNU time (`apt-get install time`) and the
//! release binaries: `cargo build --release -p xdpcarve -p xdpcarve-bench`.
//!
//!     target/release/xdpcarve-flow-bench                 # every scenario (a few minutes)
//!     target/release/xdpcarve-flow-bench --scale 0.1     # a tenth of the flows, for a look

#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Parser;
use peak_alloc::PeakAlloc;
use xdpcarve_bench::pcap;
use xdpcarve_contract::{LinkType, Timestamp};
use xdpcarve_core::{Engine, EngineConfig};

#[global_allocator]
static HEAP: PeakAlloc = PeakAlloc;

#[derive(Parser, Debug)]
#[command(
    name = "xdpcarve-flow-bench",
    about = "Per-flow memory and new-flow rate of xdpcarve, against its goals"
)]
struct Args {
    /// Multiply every scenario's flow count (goals on totals scale with it).
    #[arg(long, default_value_t = 1.0)]
    scale: f64,
    /// Where the captures go (default: a new directory under /tmp, removed after).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Scenarios to run (default: all): syn-300k, half-open-100k, syn-1m, idle-1m.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
}

struct Scenario {
    name: &'static str,
    what: &'static str,
    /// xdpcarve-gen flags (the flow count is scaled).
    flood_flag: &'static str,
    flows: u64,
    /// A real 1 MiB download in the middle.
    download: bool,
    /// xdpcarve flags beyond the defaults.
    flags: &'static [&'static str],
    /// Peak RSS goal (bytes, for the full flow count), and its words.
    max_rss: u64,
    goal: &'static str,
    /// CPU seconds goal for the full count (new-flow rate), if any.
    max_cpu: Option<f64>,
}

const MIB: u64 = 1 << 20;

fn scenarios() -> Vec<Scenario> {
    vec![
        Scenario {
            name: "syn-300k",
            what: "SYN flood, 300k SYN-only flows around a 1 MiB download, default flags",
            flood_flag: "--syn-flood",
            flows: 300_000,
            download: true,
            flags: &[],
            max_rss: 64 * MIB,
            goal: "<= 64 MiB, <= 0.15 s CPU (>= 2 M new-flow packets/s)",
            max_cpu: Some(0.15),
        },
        Scenario {
            name: "half-open-100k",
            what: "100k half-open HTTP requests around a 1 MiB download, default flags",
            flood_flag: "--half-open",
            flows: 100_000,
            download: true,
            flags: &[],
            max_rss: 64 * MIB,
            goal: "<= 64 MiB",
            max_cpu: None,
        },
        Scenario {
            name: "syn-1m",
            what: "1M SYN-only flows, all tracked",
            flood_flag: "--syn-flood",
            flows: 1_000_000,
            download: false,
            flags: &["--max-flows", "1000000", "--memory", "4G"],
            max_rss: 160_000_000,
            goal: "<= 160 MB",
            max_cpu: None,
        },
        Scenario {
            name: "idle-1m",
            what: "1M concurrent established, idle keep-alive connections (one GET, a 304, then idle)",
            flood_flag: "--idle-keepalive",
            flows: 1_000_000,
            download: false,
            flags: &["--max-flows", "1000000", "--memory", "4G"],
            max_rss: 1 << 30,
            goal: "<= 1 GiB (<= 1 KiB a connection)",
            max_cpu: None,
        },
    ]
}

/// The engine's configuration with `xdpcarve`'s defaults and the scenario's flags.
fn engine_config(flags: &[&str]) -> EngineConfig {
    let mut cfg = EngineConfig {
        protocols: xdpcarve_protocols::registry(&Default::default()),
        hash_seed: Some(1),
        ..EngineConfig::default()
    };
    for pair in flags.chunks(2) {
        match pair {
            ["--max-flows", n] => cfg.max_flows = n.parse().expect("a count"),
            ["--memory", "4G"] => cfg.memory = 4 << 30,
            other => panic!("flags the bench does not mirror: {other:?}"),
        }
    }
    cfg
}

struct Heap {
    per_flow: f64,
    peak: usize,
    /// Thread CPU seconds of the engine over the packets (the counting allocator included).
    cpu: f64,
}

/// Runs the engine over the capture in this process; the heap's growth over the run, per flow.
fn heap_in_process(capture: &Path, flags: &[&str], flows: u64) -> Result<Heap> {
    let bytes = std::fs::read(capture).with_context(|| format!("reading {}", capture.display()))?;
    let (linktype, frames) = pcap::parse(&bytes).map_err(anyhow::Error::msg)?;
    if linktype != 1 {
        bail!("{}: not an Ethernet capture", capture.display());
    }
    let mut engine = Engine::new(engine_config(flags));
    let before = HEAP.current_usage();
    HEAP.reset_peak_usage();
    let started = cpu_time::ThreadTime::now();
    let mut last = Timestamp::ZERO;
    for f in &frames {
        last = Timestamp(f.ts_nanos);
        engine.handle_packet(last, LinkType::Ethernet, f.data);
        engine.drain_records().for_each(drop);
    }
    let cpu = started.elapsed().as_secs_f64();
    let peak = HEAP.peak_usage().saturating_sub(before);
    engine.finish(last);
    engine.drain_records().for_each(drop);
    Ok(Heap {
        per_flow: peak as f64 / flows as f64,
        peak,
        cpu,
    })
}

/// Packets in a classic pcap (its records).
fn frames_of(capture: &Path) -> Result<usize> {
    let bytes = std::fs::read(capture)?;
    Ok(pcap::parse(&bytes).map_err(anyhow::Error::msg)?.1.len())
}

struct Run {
    rss: u64,
    cpu: f64,
    wall: f64,
    exact: Option<bool>,
    summary_memory: String,
}

/// `xdpcarve -r` under GNU time.
fn run_sensor(bin: &Path, capture: &Path, flags: &[&str], want_sha256: Option<&str>) -> Result<Run> {
    let log = capture.with_extension("files.log");
    let out = Command::new("/usr/bin/time")
        .arg("-f")
        .arg("XDPCARVE_TIME %M %U %S %e")
        .arg(bin)
        .arg("-r")
        .arg(capture)
        .arg("--files-log")
        .arg(&log)
        .args(flags)
        .output()
        .context("running /usr/bin/time (apt-get install time)")?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        bail!("xdpcarve -r {} failed:\n{stderr}", capture.display());
    }
    let line = stderr
        .lines()
        .find_map(|l| l.strip_prefix("XDPCARVE_TIME "))
        .context("GNU time printed nothing (is /usr/bin/time GNU time?)")?;
    let v: Vec<f64> = line.split_whitespace().filter_map(|x| x.parse().ok()).collect();
    let [rss_kib, user, sys, wall] = v[..] else {
        bail!("cannot read GNU time's line {line:?}");
    };
    let exact = match want_sha256 {
        Some(want) => {
            let records = std::fs::read_to_string(&log)?;
            Some(records.lines().any(|l| l.contains(want)))
        }
        None => None,
    };
    let summary_memory = stderr
        .lines()
        .find(|l| l.trim_start().starts_with("flow memory:"))
        .unwrap_or("")
        .trim()
        .to_string();
    Ok(Run {
        rss: (rss_kib * 1024.0) as u64,
        cpu: user + sys,
        wall,
        exact,
        summary_memory,
    })
}

fn main() -> Result<()> {
    let args = Args::parse();
    let here = std::env::current_exe()?
        .parent()
        .context("the bench's directory")?
        .to_path_buf();
    let (gen_bin, sensor) = (here.join("xdpcarve-gen"), here.join("xdpcarve"));
    for b in [&gen_bin, &sensor] {
        if !b.exists() {
            bail!(
                "{} is missing: cargo build --release -p xdpcarve -p xdpcarve-bench",
                b.display()
            );
        }
    }
    let (dir, temporary) = match &args.dir {
        Some(d) => (d.clone(), false),
        None => (
            std::env::temp_dir().join(format!("xdpcarve-flow-bench.{}", std::process::id())),
            true,
        ),
    };
    std::fs::create_dir_all(&dir)?;
    println!(
        "xdpcarve-flow-bench: flows at scale {}; heap counted in-process (engine only), RSS and CPU of `xdpcarve -r` (GNU time)",
        args.scale
    );
    let mut missed = 0;
    for s in scenarios() {
        if !args.only.is_empty() && !args.only.iter().any(|o| o == s.name) {
            continue;
        }
        let flows = ((s.flows as f64 * args.scale).round() as u64).max(1);
        let capture = dir.join(format!("{}.pcap", s.name));
        let generated = Instant::now();
        let mut gen = Command::new(&gen_bin);
        gen.arg(s.flood_flag).arg(flows.to_string()).arg("-o").arg(&capture);
        if s.download {
            gen.args(["--http", "1", "--sizes", "1M", "--styles", "length"]);
        }
        let out = gen.output().context("running xdpcarve-gen")?;
        if !out.status.success() {
            bail!("xdpcarve-gen failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        let gen_secs = generated.elapsed().as_secs_f64();
        let want = if s.download {
            let manifest: serde_json::Value =
                serde_json::from_slice(&std::fs::read(capture.with_extension("expected.json"))?)?;
            manifest["files"][0]["sha256"].as_str().map(str::to_string)
        } else {
            None
        };
        let heap = heap_in_process(&capture, s.flags, flows)?;
        let run = run_sensor(&sensor, &capture, s.flags, want.as_deref())?;
        let packets = match s.flood_flag {
            "--half-open" => 2 * flows,
            "--idle-keepalive" => 6 * flows,
            _ => flows,
        };
        let max_rss = (s.max_rss as f64 * args.scale.min(1.0)).max(16.0 * MIB as f64) as u64;
        let rss_ok = args.scale < 1.0 || run.rss <= max_rss;
        let cpu_ok = args.scale < 1.0 || s.max_cpu.is_none_or(|c| run.cpu <= c);
        let exact_ok = run.exact.unwrap_or(true);
        let ok = rss_ok && cpu_ok && exact_ok;
        missed += usize::from(!ok);
        println!("\n{} — {}", s.name, s.what);
        println!("  capture: {flows} flows, {packets} flood packets, written in {gen_secs:.1} s");
        println!(
            "  engine in-process: heap peak {:.1} MiB, {:.0} B a flow; {:.2} s CPU, {:.2} M packets/CPU s",
            heap.peak as f64 / MIB as f64,
            heap.per_flow,
            heap.cpu,
            frames_of(&capture)? as f64 / heap.cpu.max(1e-6) / 1e6
        );
        println!(
            "  xdpcarve -r {}: peak RSS {:.1} MiB, CPU {:.2} s ({:.2} M flood packets/CPU s), wall {:.2} s{}",
            s.flags.join(" "),
            run.rss as f64 / MIB as f64,
            run.cpu,
            packets as f64 / run.cpu.max(1e-3) / 1e6,
            run.wall,
            match run.exact {
                Some(true) => ", download exact",
                Some(false) => ", download NOT exact",
                None => "",
            }
        );
        println!("  {}", run.summary_memory);
        println!(
            "  goal {}: {}",
            s.goal,
            match (ok, args.scale < 1.0) {
                (true, false) => "met",
                (true, true) => "met at this scale (totals checked at scale 1 only)",
                (false, _) => "MISSED",
            }
        );
    }
    if temporary {
        let _ = std::fs::remove_dir_all(&dir);
    }
    if missed > 0 {
        bail!("{missed} goal(s) missed");
    }
    Ok(())
}
