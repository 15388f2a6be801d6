//! xdpcarve: carve files out of HTTP and SMTP traffic.
//!
//! main parses the command line, builds the engine configuration, and runs a read (`-r`) or a
//! live capture (`-i`) into egress. The exit status is decided in one place ([`outcome`]) for
//! both: 0 on success (warnings included), 1 when something failed or was lost, 2 on a
//! command-line mistake (clap).

#![forbid(unsafe_code)]

mod check;
mod cli;
mod config;
mod egress;
mod live;
mod offline;
mod outcome;
mod progress;
mod run_keys;
mod shards;
mod signals;
mod summary;

use std::ffi::OsString;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{anyhow, Context, Result};
use clap::{CommandFactory, FromArgMatches};
use tracing_subscriber::EnvFilter;
use xdpcarve_contract::{FileConfig, HashSet, IdSeed, StoreHandle, WantedFiles};
use xdpcarve_core::engine::ChecksumPolicy;
use xdpcarve_core::reassembly::OverlapPolicy;
use xdpcarve_core::{EngineConfig, OverloadConfig};
use xdpcarve_egress::{Egress, EgressConfig, MetricsHub, QueueMode};
use xdpcarve_files::{HashPool, QueueFull};
use xdpcarve_protocols::http::HttpConfig;
use xdpcarve_protocols::ProtocolsConfig;
use xdpcarve_scan::{MimeMatcher, ScanConfig, Store, StoreSettings};

use crate::cli::Cli;
use crate::summary::Source;

fn main() -> ExitCode {
    let (cli, matches) = match parse_command_line(std::env::args_os().collect()) {
        Ok(parsed) => parsed,
        Err(e) => {
            eprintln!("xdpcarve: error: {e:#}");
            return ExitCode::from(1);
        }
    };
    init_logging(cli.quiet, cli.color.enabled());
    let result = if cli.check {
        check::run(&cli)
    } else {
        run(&cli, &matches)
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            // `{:#}` prints the chain once: each error's own message, then its causes.
            eprintln!("xdpcarve: error: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// The command line, with the config file's `[engine]`, `[live]`, `[read]` and `[output]` keys
/// as flags before it (so the command line wins; see `run_keys`). `xdpcarve check ...` is
/// `xdpcarve --check ...`. Usage errors exit here, as clap's do (status 2).
fn parse_command_line(mut args: Vec<OsString>) -> Result<(Cli, clap::ArgMatches)> {
    if args.get(1).is_some_and(|a| a == "check") {
        args[1] = "--check".into();
    }
    let cmd = Cli::command().args_override_self(true);
    let mut argv: Vec<OsString> = args.iter().take(1).cloned().collect();
    if let Some(path) = config_path(&args[1.min(args.len())..]) {
        let file = config::load_file(&path)?;
        let flags = run_keys::flags_from(&file.run_sections(), &cmd, reads_a_file(&args[1.min(args.len())..]))
            .with_context(|| format!("config file {}", path.display()))?;
        argv.extend(flags);
    }
    argv.extend(args.into_iter().skip(1));
    let matches = cmd.clone().try_get_matches_from(argv).unwrap_or_else(|e| e.exit());
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    Ok((cli, matches))
}

/// `--config PATH` or `--config=PATH`, found before clap parses (the file supplies flags).
fn config_path(args: &[OsString]) -> Option<std::path::PathBuf> {
    let mut it = args.iter();
    let mut found = None;
    while let Some(a) = it.next() {
        let a = a.to_string_lossy();
        if a == "--" {
            break;
        } else if a == "--config" {
            found = it.next().map(std::path::PathBuf::from);
        } else if let Some(p) = a.strip_prefix("--config=") {
            found = Some(p.into());
        }
    }
    found
}

/// The command line reads a capture (`-r`), so a config's `[live] interface` does not apply.
fn reads_a_file(args: &[OsString]) -> bool {
    args.iter()
        .map(|a| a.to_string_lossy())
        .take_while(|a| a != "--")
        .any(|a| a == "--read" || a.starts_with("--read=") || (a.starts_with("-r") && !a.starts_with("--")))
}

fn init_logging(quiet: bool, color: bool) {
    let default = if quiet { "error" } else { "warn" };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(color)
        .without_time()
        .with_target(false)
        .init();
}

/// The engine configuration the flags describe.
pub fn engine_config(cli: &Cli) -> Result<EngineConfig> {
    let files = FileConfig {
        hashes: HashSet::parse(&cli.hashes).context("--hashes")?,
        max_file_size: cli.max_file_size,
        ..FileConfig::default()
    };
    if cli.max_flows == 0 {
        return Err(anyhow!("--max-flows must be at least 1"));
    }
    let protocols = ProtocolsConfig {
        http_ports: cli.http_ports.0.clone(),
        http: HttpConfig {
            // A 206 object is given up when its connections would have been.
            range_idle_timeout: cli.idle_timeout,
            ..HttpConfig::default()
        },
        smtp_ports: cli.smtp_ports.0.clone(),
        ..ProtocolsConfig::default()
    };
    let overload = OverloadConfig {
        high_water: cli.overload_high_water,
        low_water: cli.overload_low_water,
        ..OverloadConfig::default()
    };
    overload
        .validate()
        .map_err(|e| anyhow!("--overload-low-water/--overload-high-water: {e}"))?;
    let to_usize = |v: u64, flag: &str| usize::try_from(v).map_err(|_| anyhow!("{flag} {v} is too large"));
    Ok(EngineConfig {
        files,
        protocols: xdpcarve_protocols::registry(&protocols),
        max_flows: cli.max_flows,
        idle_timeout: cli.idle_timeout,
        max_stream_buffer: to_usize(cli.stream_buffer, "--stream-buffer")?,
        memory: to_usize(cli.memory, "--memory")?,
        reassembly_depth: cli.reassembly_depth,
        detect_other_ports: !cli.ports_only,
        worker_id: 0,
        // Set in `run` with the sensor's name; the flow table's hasher repeats with --seed.
        ids: IdSeed::new(0, ""),
        hash_seed: cli.seed,
        overload,
        overlap: match cli.overlap {
            cli::Overlap::First => OverlapPolicy::First,
            cli::Overlap::Last => OverlapPolicy::Last,
        },
        checksums: match cli.checksums {
            cli::Checksums::Auto => ChecksumPolicy::Auto,
            cli::Checksums::Verify => ChecksumPolicy::Verify,
            cli::Checksums::Ignore => ChecksumPolicy::Ignore,
        },
    })
}

/// A seed of this run's own, so two runs never share ids: the clock and the process id.
fn run_seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    xdpcarve_contract::files::mix(nanos ^ u64::from(std::process::id()) << 40)
}

fn run(cli: &Cli, matches: &clap::ArgMatches) -> Result<ExitCode> {
    let live = cli.live.interface.is_some();
    let settings = config::settings(&cli.egress, cli.files_log.as_deref(), live)?;
    if cli.egress.dump_config {
        engine_config(cli)?;
        // The egress part first: its top-level keys (`pipelines = []`) must not follow a table.
        print!("{}", config::dump(&settings)?);
        print!("\n{}", run_keys::dump(matches, &Cli::command())?);
        return Ok(ExitCode::SUCCESS);
    }
    let config::Settings {
        egress: egress_cfg,
        scan: scan_cfg,
    } = settings;
    let outputs = summary::outputs(&egress_cfg, &scan_cfg);
    if cli.files_log.is_none() && egress_cfg.files_log.path.as_deref() == Some("files.log") && !cli.quiet {
        eprintln!("xdpcarve: records go to ./files.log (choose with --files-log PATH or files_log.path; - is stdout)");
    }
    let mut cfg = engine_config(cli)?;
    cfg.ids = IdSeed::new(cli.seed.unwrap_or_else(run_seed), &egress_cfg.sensor_name);
    // Shedding never takes MD5 and SHA-256 of a file the submission policy wants.
    let policy = xdpcarve_egress::policy::Policy::new(&egress_cfg.policy)?;
    cfg.files.wanted = WantedFiles::new(Arc::new(policy));
    // Live workers never wait for the hash threads; a read does (nothing may be shed there).
    let full = if live { QueueFull::Shed } else { QueueFull::Wait };
    let pool = match cli.hash_threads {
        0 => None,
        n => Some(HashPool::start(n, full).context("cannot start the hash threads")?),
    };
    if let Some(p) = &pool {
        cfg.files.offload = p.handle();
    }
    // Files pipelines (or store.match) want are kept while they stream; a read waits for the
    // store as it waits for the hash threads, a live worker gives the file up.
    let store = match StoreSettings::from_config(&scan_cfg.store, !live) {
        Some(settings) => {
            let wants = MimeMatcher::new(&scan_cfg.stored_types()).context("store.match / pipelines match")?;
            Some(Store::open(settings, wants).context("cannot open the store")?)
        }
        None => None,
    };
    if let Some(s) = &store {
        cfg.files.store = StoreHandle(Some(s.sink()));
    }
    let scan = (&scan_cfg, store.clone());
    let result = if live {
        run_live(cli, cfg, egress_cfg, scan, &outputs)
    } else {
        run_offline(cli, cfg, egress_cfg, scan, &outputs)
    };
    if let Some(s) = store {
        s.close();
    }
    if let Some(p) = pool {
        p.shutdown();
    }
    result
}

/// The scanner settings and the store, for the egress thread's scan stage.
type Scan<'a> = (&'a ScanConfig, Option<Arc<Store>>);

/// `xdpcarve -r FILE`: one worker on this thread; a full egress queue makes it wait (offline,
/// nothing may be lost and there is no line rate to keep).
fn run_offline(
    cli: &Cli,
    cfg: EngineConfig,
    egress_cfg: EgressConfig,
    scan: Scan<'_>,
    outputs: &str,
) -> Result<ExitCode> {
    let inputs = offline::order_inputs(&cli.read)?;
    let protocols: Vec<&'static str> = cfg.protocols.names().collect();
    let workers = read_workers(cli);
    if workers > 1 && cli.simulate_mbps.is_some() {
        anyhow::bail!("--simulate-mbps models one worker's ring: use it with --workers 1");
    }
    let (egress, hub, sinks) = egress::start(egress_cfg, scan.0, scan.1, workers, QueueMode::Block)?;
    let simulated = match cli.simulate_mbps {
        Some(mbps) => Some(offline::SimulatedRing::new(
            mbps,
            u64::from(cli.live.rings()?.backlog_capacity()),
        )),
        None => None,
    };
    // A signal stops the read as the end of the file would; a second one exits at once.
    let stop = signals::Stop::install(true)?;
    let report = offline::run(&inputs, cfg, sinks, simulated, cli.quiet, Some(&stop));
    conclude(cli, egress, &hub, &protocols, report, outputs, |r| Source::Read(r))
}

/// The worker threads of a read: `--workers`, else one per core (one with `--simulate-mbps`,
/// which models one worker's ring).
fn read_workers(cli: &Cli) -> usize {
    match (cli.workers, cli.simulate_mbps) {
        (Some(n), _) => n.max(1),
        (None, Some(_)) => 1,
        (None, None) => std::thread::available_parallelism().map_or(1, |n| n.get()),
    }
}

/// `xdpcarve -i IFACE`: one worker per queue, each with a non-blocking queue to egress.
fn run_live(cli: &Cli, cfg: EngineConfig, egress_cfg: EgressConfig, scan: Scan<'_>, outputs: &str) -> Result<ExitCode> {
    let workers = live::worker_count(&cli.live)?;
    let protocols: Vec<&'static str> = cfg.protocols.names().collect();
    let (egress, hub, sinks) = egress::start(egress_cfg, scan.0, scan.1, workers, QueueMode::DropWhenFull)?;
    let metrics: Arc<dyn live::LiveMetrics> = Arc::new(egress::HubMetrics(hub.clone()));
    let report = live::run(&cli.live, cfg, sinks, Some(metrics), cli.quiet);
    conclude(cli, egress, &hub, &protocols, report, outputs, |r| Source::Live(r))
}

/// The end of every run, read or live: the workers' last counters to `/metrics`, egress drained,
/// the summary, and the exit status.
fn conclude<R>(
    cli: &Cli,
    mut egress: Egress,
    hub: &MetricsHub,
    protocols: &[&'static str],
    report: Result<R>,
    outputs: &str,
    source: fn(&R) -> Source<'_>,
) -> Result<ExitCode> {
    if let Ok(r) = &report {
        for (i, w) in source(r).workers().iter().enumerate() {
            hub.publish_worker(i, &w.counters);
        }
    }
    let egress_summary = egress.finish();
    let report = report?;
    let egress_summary = egress_summary?;
    let source = source(&report);
    if !cli.quiet {
        eprint!("{}", summary::render(&source, protocols, &egress_summary));
        eprintln!("  {outputs}");
    }
    egress.join();
    Ok(outcome::exit_status(&source, &egress_summary))
}
