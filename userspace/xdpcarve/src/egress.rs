//! Glue between the runtimes and the egress thread (xdpcarve-egress): each worker's record sink
//! is its lock-free queue to the egress thread, which writes the files log, applies the
//! submission policy and dedup, delivers to the webhook and serves `/metrics`.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{anyhow, Result};
use xdpcarve_core::EngineConfig;
use xdpcarve_egress::{Egress, EgressConfig, MetricsHub, QueueCounters, QueueMode, RecordSender, XdpCounters};
use xdpcarve_files::{FileRecord, Stats};

use crate::cli::Cli;
use crate::sink::{RecordSink, Tallying};
use crate::{live, offline, summary};

/// A worker's end of its queue to the egress thread.
pub struct EgressSink {
    sender: RecordSender,
    blocking: bool,
}

impl RecordSink for EgressSink {
    fn record(&mut self, rec: FileRecord) -> Result<()> {
        // Live: a full queue drops the record (counted, logged by the sender) and the worker goes
        // on. Offline: `send` waits for room and fails only when the egress thread has died.
        if !self.sender.send(rec) && self.blocking {
            return Err(anyhow!("the egress thread stopped (see the errors above)"));
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        // The egress thread flushes the files log whenever its queues run dry.
        Ok(())
    }
}

/// The live runtime publishes through this; the hub turns it into Prometheus metrics.
pub struct HubMetrics(pub Arc<MetricsHub>);

impl live::LiveMetrics for HubMetrics {
    fn worker(&self, worker_id: usize, stats: &Stats, flows_active: u64) {
        self.0.publish_worker(worker_id, stats);
        self.0.publish_flows_active(worker_id, flows_active);
    }

    fn capture(&self, xdp: &xdpcarve_xdp::XdpCounters, queues: &[xdpcarve_xdp::QueueStats]) {
        self.0.publish_xdp(&XdpCounters {
            redirected: xdp.redirected,
            passed: xdp.passed,
            parse_failures: xdp.parse_failed,
            redirect_failures: xdp.redirect_failed,
            redirected_bytes: xdp.redirected_bytes,
            ip_fragments: xdp.ip_fragments,
            tunneled: xdp.tunneled,
        });
        for q in queues {
            self.0.publish_queue(
                q.queue,
                &QueueCounters {
                    rx_packets: q.rx_packets,
                    rx_bytes: q.rx_bytes,
                    rx_dropped: q.kernel_rx_dropped,
                    rx_invalid_descs: q.kernel_rx_invalid_descs,
                    rx_ring_full: q.kernel_rx_ring_full,
                    fill_ring_empty: q.kernel_rx_fill_ring_empty_descs,
                    rx_oversized: q.rx_oversized,
                },
            );
        }
    }
}

fn start(cfg: EgressConfig, workers: usize, mode: QueueMode) -> Result<(Egress, Arc<MetricsHub>, Vec<EgressSink>)> {
    let hub = Arc::new(MetricsHub::new(&cfg.sensor_name));
    let mut egress = Egress::start(cfg, hub.clone(), workers, mode).map_err(|e| anyhow!("{e}"))?;
    let blocking = mode == QueueMode::Block;
    let sinks = egress
        .take_senders()
        .into_iter()
        .map(|sender| EgressSink { sender, blocking })
        .collect();
    Ok((egress, hub, sinks))
}

/// `xdpcarve -r FILE`: one worker on this thread; a full egress queue makes it wait (offline,
/// nothing may be lost and there is no line rate to keep).
pub fn run_offline(cli: &Cli, cfg: EngineConfig, egress_cfg: EgressConfig) -> Result<ExitCode> {
    let (mut egress, hub, mut sinks) = start(egress_cfg, 1, QueueMode::Block)?;
    let mut sink = Tallying {
        inner: sinks.pop().expect("one sink"),
        tally: Default::default(),
    };
    let report = offline::run(cli, cfg, &mut sink);
    let tally = sink.tally;
    drop(sink);
    if let Ok(r) = &report {
        hub.publish_worker(0, &r.stats);
    }
    let egress_summary = egress.finish().map_err(|e| anyhow!("{e}"));
    let report = report?;
    let egress_summary = egress_summary?;
    if !cli.quiet {
        eprint!("{}", summary::render(&report, &tally));
        eprintln!("  {egress_summary}");
    }
    egress.join();
    if egress_summary.files_log_errors > 0 {
        eprintln!(
            "xdpcarve: error: the files log could not be written ({} failed writes; disk full?); see the errors above",
            egress_summary.files_log_errors
        );
        return Ok(ExitCode::from(1));
    }
    if let Some(e) = report.stopped {
        eprintln!("xdpcarve: error: {e}; the packets before it were processed and their files logged");
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

/// `xdpcarve -i IFACE`: one worker per queue, each with a non-blocking queue to egress.
pub fn run_live(cli: &Cli, cfg: EngineConfig, egress_cfg: EgressConfig) -> Result<ExitCode> {
    let workers = live::worker_count(&cli.live)?;
    let (mut egress, hub, sinks) = start(egress_cfg, workers, QueueMode::DropWhenFull)?;
    let mut ports: Vec<u16> = cli
        .http_ports
        .0
        .iter()
        .chain(cli.smtp_ports.0.iter())
        .copied()
        .collect();
    ports.sort_unstable();
    ports.dedup();
    let metrics: Arc<dyn live::LiveMetrics> = Arc::new(HubMetrics(hub.clone()));
    let report = live::run(&cli.live, ports, cfg, sinks, Some(metrics), cli.quiet);
    if let Ok(r) = &report {
        for (i, st) in r.workers.iter().enumerate() {
            hub.publish_worker(i, st);
        }
    }
    let egress_summary = egress.finish().map_err(|e| anyhow!("{e}"));
    let report = report?;
    let egress_summary = egress_summary?;
    if !cli.quiet {
        eprint!("{}", live::render(&report, Some(egress_summary.files_logged)));
        eprintln!("  {egress_summary}");
    }
    egress.join();
    Ok(ExitCode::SUCCESS)
}
