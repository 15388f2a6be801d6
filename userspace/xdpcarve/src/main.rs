//! xdpcarve: carve files out of HTTP and SMTP traffic.
//!
//! main parses the command line, builds the engine configuration, and runs the offline reader
//! into the files log. Exit status: 0 on success (warnings included), 1 on an error, 2 on a
//! command-line mistake (clap).

mod cli;
mod config;
mod egress;
mod live;
mod offline;
mod sink;
mod summary;
mod worker;

use std::process::ExitCode;

use anyhow::{anyhow, Result};
use clap::Parser;
use tracing_subscriber::EnvFilter;
use xdpcarve_core::EngineConfig;
use xdpcarve_files::{AppConfig, HashSet};

use crate::cli::Cli;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.quiet);
    match run(&cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("xdpcarve: error: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn init_logging(quiet: bool) {
    let default = if quiet { "error" } else { "warn" };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .without_time()
        .with_target(false)
        .init();
}

/// The engine configuration the flags describe.
pub fn engine_config(cli: &Cli) -> Result<EngineConfig> {
    let mut app = AppConfig::default();
    app.files.hashes = HashSet::parse(&cli.hashes).map_err(|e| anyhow!("--hashes: {e}"))?;
    app.files.max_file_size = cli.max_file_size;
    if cli.max_flows == 0 {
        return Err(anyhow!("--max-flows must be at least 1"));
    }
    let to_usize = |v: u64, flag: &str| usize::try_from(v).map_err(|_| anyhow!("{flag} {v} is too large"));
    Ok(EngineConfig {
        app,
        http_ports: cli.http_ports.0.clone(),
        smtp_ports: cli.smtp_ports.0.clone(),
        max_flows: cli.max_flows,
        idle_timeout: cli.idle_timeout,
        max_stream_buffer: to_usize(cli.stream_buffer, "--stream-buffer")?,
        max_reassembly_memory: to_usize(cli.memory, "--memory")?,
        reassembly_depth: cli.reassembly_depth,
        detect_other_ports: !cli.ports_only,
        worker_id: 0,
    })
}

fn run(cli: &Cli) -> Result<ExitCode> {
    let live = cli.live.interface.is_some();
    let egress_cfg = config::egress_config(&cli.egress, cli.files_log.as_deref(), live)?;
    if cli.egress.dump_config {
        print!("{}", config::dump(&egress_cfg)?);
        return Ok(ExitCode::SUCCESS);
    }
    let cfg = engine_config(cli)?;
    if live {
        return egress::run_live(cli, cfg, egress_cfg);
    }
    egress::run_offline(cli, cfg, egress_cfg)
}
