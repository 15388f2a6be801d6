//! Glue between the runtimes and the egress thread (xdpcarve-egress): each worker's record sink
//! is its lock-free queue to the egress thread, which writes the files log, applies the
//! submission policy and dedup, delivers to the webhook and serves `/metrics`.

use std::sync::Arc;

use anyhow::{Context, Result};
use xdpcarve_contract::{CounterSet, FileRecord, ShedLevel};
use xdpcarve_core::RecordSink;
use xdpcarve_egress::{Egress, EgressConfig, MetricsHub, QueueCounters, QueueMode, RecordSender, XdpCounters};
use xdpcarve_scan::{ScanConfig, ScanPlan, Store};

use crate::live::{FlowGauges, LiveMetrics};

/// The egress thread is gone, so a worker that must not lose records (offline) cannot go on.
#[derive(Debug, thiserror::Error)]
#[error("the egress thread stopped (see the errors above)")]
pub struct EgressStopped;

/// A worker's end of its queue to the egress thread.
pub struct EgressSink {
    sender: RecordSender,
    blocking: bool,
}

impl RecordSink for EgressSink {
    type Error = EgressStopped;

    fn record(&mut self, rec: FileRecord) -> Result<(), EgressStopped> {
        // Live: a full queue drops the record (counted, logged by the sender) and the worker goes
        // on. Offline: `send` waits for room and fails only when the egress thread has died.
        if !self.sender.send(rec) && self.blocking {
            return Err(EgressStopped);
        }
        Ok(())
    }
}

/// The egress thread (with the scan stage, if `[[pipelines]]` or a store are set), its metrics
/// hub, and one sink per worker.
pub fn start(
    cfg: EgressConfig,
    scan: &ScanConfig,
    store: Option<Arc<Store>>,
    workers: usize,
    mode: QueueMode,
) -> Result<(Egress, Arc<MetricsHub>, Vec<EgressSink>)> {
    let hub = Arc::new(MetricsHub::new(&cfg.sensor_name));
    let scans = ScanPlan::build(scan, store, hub.registry()).context("cannot set up the scanners")?;
    let mut egress =
        Egress::start_with_scans(cfg, hub.clone(), workers, mode, Some(scans)).context("cannot start egress")?;
    let blocking = mode == QueueMode::Block;
    let sinks = egress
        .take_senders()
        .into_iter()
        .map(|sender| EgressSink { sender, blocking })
        .collect();
    Ok((egress, hub, sinks))
}

/// The live runtime publishes through this; the hub turns it into Prometheus metrics.
pub struct HubMetrics(pub Arc<MetricsHub>);

impl LiveMetrics for HubMetrics {
    fn worker(&self, worker_id: usize, counters: &CounterSet, flows: FlowGauges, shed: ShedLevel) {
        self.0.publish_worker(worker_id, counters);
        self.0.publish_flows_active(worker_id, flows.active);
        self.0
            .publish_flow_pool(worker_id, flows.embryonic, flows.under_pressure);
        self.0.publish_shed_level(worker_id, shed as u8);
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
                    rx_ring_high_water: q.rx_ring_high_water,
                    rx_ring_capacity: q.rx_ring_capacity,
                },
            );
        }
    }
}
