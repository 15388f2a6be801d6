//! Prometheus metrics of the whole sensor. The [`MetricsHub`] is shared (`Arc`) by the runtime
//! (which publishes worker, queue and XDP counter snapshots periodically — never from the hot
//! path) and the egress thread (which counts its own work and serves `/metrics`).
//!
//! Names follow the Prometheus conventions: `xdpcarve_<area>_<what>_total` for counters,
//! `_bytes` / `_seconds` units, gauges without a suffix.

use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};
use std::collections::HashMap;
use std::sync::Mutex;
use xdpcarve_contract::CounterSet;

/// Counters of one AF_XDP socket (one NIC queue), as the live runtime reads them (ring
/// bookkeeping plus the kernel's `XDP_STATISTICS`). Totals since the socket was created.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueueCounters {
    /// Frames taken off the RX ring.
    pub rx_packets: u64,
    /// Bytes of those frames.
    pub rx_bytes: u64,
    /// Kernel `rx_dropped`: frames dropped for other reasons than a full ring.
    pub rx_dropped: u64,
    /// Kernel `rx_invalid_descs`.
    pub rx_invalid_descs: u64,
    /// Kernel `rx_ring_full`: frames dropped because the RX ring was full (the worker fell behind).
    pub rx_ring_full: u64,
    /// Kernel `rx_fill_ring_empty_descs`: times the fill ring had no buffer for a frame.
    pub fill_ring_empty: u64,
    /// Multi-buffer packets too large to put back together: dropped by the worker.
    pub rx_oversized: u64,
    /// Most frames that waited in the RX ring at once (a gauge: the high-water mark so far).
    pub rx_ring_high_water: u64,
    /// Frames that can wait in the RX ring before the kernel drops.
    pub rx_ring_capacity: u64,
}

/// Counters of the XDP program (summed over CPUs), as the live runtime reads them from its map.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XdpCounters {
    /// Packets steered into an AF_XDP socket.
    pub redirected: u64,
    /// Packets passed to the kernel stack (not ours).
    pub passed: u64,
    /// Packets whose headers the program could not parse (passed on).
    pub parse_failures: u64,
    /// Redirects that failed (no socket bound on that queue, ...).
    pub redirect_failures: u64,
    /// Bytes of the redirected packets.
    pub redirected_bytes: u64,
    /// IP fragments seen (never steered).
    pub ip_fragments: u64,
    /// Packets whose tunnel (GRE, ERSPAN, VXLAN) the program opened.
    pub tunneled: u64,
}

/// Egress counters that also make up the end-of-run summary.
pub struct EgressMetrics {
    pub files_logged: IntCounter,
    pub files_log_errors: IntCounter,
    pub files_by_type: IntCounterVec,
    pub policy_matched: IntCounter,
    pub no_hash: IntCounter,
    pub deduped: IntCounter,
    /// Items accepted for submission (after dedup).
    pub submitted: IntCounter,
    /// Items the receiver accepted.
    pub sent: IntCounter,
    /// Items the receiver rejected for good (4xx other than 401, 403 and 429).
    pub failed: IntCounter,
    /// 1 while the receiver refuses the token (401/403): submissions wait, queued.
    pub unauthorized: IntGauge,
    /// Requests repeated after a connection error, timeout, 5xx or 429.
    pub retried: IntCounter,
    /// Items written to the spill journal.
    pub spilled: IntCounter,
    /// Items lost: journal full, journal write error, no journal.
    pub dropped: IntCounterVec,
    /// Records a worker could not queue (live mode, queue full).
    pub queue_full: IntCounterVec,
    pub requests: IntCounterVec,
    pub batch_items: Histogram,
    pub delivery_seconds: Histogram,
    pub queue_depth: IntGauge,
    pub memory_batches: IntGauge,
    pub journal_batches: IntGauge,
    pub journal_bytes: IntGauge,
    pub journal_errors: IntCounter,
    pub dedup_entries: IntGauge,
}

pub struct MetricsHub {
    registry: Registry,
    pub egress: EgressMetrics,
    /// Worker counters by (area, name), registered when a worker first reports them: the set of
    /// counters depends on the protocols the engine runs.
    worker_stats: Mutex<HashMap<(&'static str, &'static str), IntCounterVec>>,
    flows_active: IntGaugeVec,
    /// Each worker's shedding level now (0 full work .. 3).
    shed_level: IntGaugeVec,
    /// Each worker's attempts without a byte, and whether its tables are under pressure.
    embryonic: IntGaugeVec,
    under_pressure: IntGaugeVec,
    /// Each queue's RX ring high-water mark and capacity.
    ring_gauges: [IntGaugeVec; 2],
    queue: [IntCounterVec; 7],
    xdp: [IntCounter; 7],
}

pub(crate) fn counter(r: &Registry, name: &str, help: &str) -> IntCounter {
    let c = IntCounter::new(name, help).expect("valid metric");
    r.register(Box::new(c.clone())).expect("unique metric");
    c
}

pub(crate) fn counter_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
    r.register(Box::new(c.clone())).expect("unique metric");
    c
}

pub(crate) fn gauge(r: &Registry, name: &str, help: &str) -> IntGauge {
    let g = IntGauge::new(name, help).expect("valid metric");
    r.register(Box::new(g.clone())).expect("unique metric");
    g
}

pub(crate) fn histogram(r: &Registry, name: &str, help: &str, buckets: Vec<f64>) -> Histogram {
    let h = Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets)).expect("valid metric");
    r.register(Box::new(h.clone())).expect("unique metric");
    h
}

/// Raises a counter to a published total (totals only grow; a smaller value is a restart of the
/// source and is ignored rather than going backwards).
fn raise_to(c: &IntCounter, total: u64) {
    let now = c.get();
    if total > now {
        c.inc_by(total - now);
    }
}

impl MetricsHub {
    pub fn new(sensor_name: &str) -> MetricsHub {
        let r = Registry::new();
        let build = IntGaugeVec::new(
            Opts::new("xdpcarve_build_info", "Build of this sensor (value is always 1)."),
            &["version", "sensor"],
        )
        .expect("valid metric");
        r.register(Box::new(build.clone())).expect("unique metric");
        build
            .with_label_values(&[env!("CARGO_PKG_VERSION"), sensor_name])
            .set(1);

        let egress = EgressMetrics {
            files_logged: counter(
                &r,
                "xdpcarve_files_logged_total",
                "File records written to the files log.",
            ),
            files_log_errors: counter(&r, "xdpcarve_files_log_errors_total", "Files log writes that failed."),
            files_by_type: counter_vec(
                &r,
                "xdpcarve_egress_files_total",
                "Finished files by protocol and sniffed type family.",
                &["proto", "mime_family"],
            ),
            policy_matched: counter(
                &r,
                "xdpcarve_policy_matched_total",
                "Files the submission policy matched.",
            ),
            no_hash: counter(
                &r,
                "xdpcarve_submissions_no_hash_total",
                "Matching files not submitted because they have no hash (gaps, limits).",
            ),
            deduped: counter(
                &r,
                "xdpcarve_submissions_deduped_total",
                "Matching files whose hash was already submitted within the TTL.",
            ),
            submitted: counter(
                &r,
                "xdpcarve_submissions_queued_total",
                "Hashes accepted for submission.",
            ),
            sent: counter(&r, "xdpcarve_submissions_sent_total", "Hashes the receiver accepted."),
            failed: counter(
                &r,
                "xdpcarve_submissions_failed_total",
                "Hashes the receiver rejected (4xx other than 401, 403, 429); not retried, written to the dead-letter file.",
            ),
            unauthorized: gauge(
                &r,
                "xdpcarve_webhook_unauthorized",
                "1 while the receiver refuses the token (401/403); submissions stay queued and are retried.",
            ),
            retried: counter(
                &r,
                "xdpcarve_submissions_retried_total",
                "Webhook requests retried (connection error, timeout, 5xx, 429).",
            ),
            spilled: counter(
                &r,
                "xdpcarve_submissions_spilled_total",
                "Hashes written to the spill journal.",
            ),
            dropped: counter_vec(
                &r,
                "xdpcarve_submissions_dropped_total",
                "Hashes lost, by reason (disk_full, journal_full, journal_error, no_journal).",
                &["reason"],
            ),
            queue_full: counter_vec(
                &r,
                "xdpcarve_egress_queue_full_drops_total",
                "File records a worker dropped because its egress queue was full.",
                &["worker"],
            ),
            requests: counter_vec(
                &r,
                "xdpcarve_webhook_requests_total",
                "Webhook requests by outcome (ok, retryable, rejected).",
                &["outcome"],
            ),
            batch_items: histogram(
                &r,
                "xdpcarve_webhook_batch_items",
                "Items per delivered batch.",
                vec![1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0],
            ),
            delivery_seconds: histogram(
                &r,
                "xdpcarve_webhook_delivery_seconds",
                "Time from a batch's first attempt to its delivery, retries included.",
                prometheus::exponential_buckets(0.001, 4.0, 10).expect("buckets"),
            ),
            queue_depth: gauge(
                &r,
                "xdpcarve_egress_queue_depth",
                "File records waiting in the workers' egress queues.",
            ),
            memory_batches: gauge(
                &r,
                "xdpcarve_webhook_memory_batches",
                "Batches waiting for delivery in memory.",
            ),
            journal_batches: gauge(
                &r,
                "xdpcarve_spill_journal_batches",
                "Batches waiting for delivery in the spill journal.",
            ),
            journal_bytes: gauge(&r, "xdpcarve_spill_journal_bytes", "Size of the spill journal on disk."),
            journal_errors: counter(
                &r,
                "xdpcarve_spill_journal_errors_total",
                "Spill journal I/O errors (write, sync, cursor).",
            ),
            dedup_entries: gauge(&r, "xdpcarve_dedup_entries", "Hashes remembered for deduplication."),
        };

        let flows_active = IntGaugeVec::new(
            Opts::new("xdpcarve_tcp_flows_active", "Flows tracked now."),
            &["worker"],
        )
        .expect("valid metric");
        r.register(Box::new(flows_active.clone())).expect("unique metric");
        let gauge_vec = |name: &str, help: &str, label: &str| {
            let g = IntGaugeVec::new(Opts::new(name, help), &[label]).expect("valid metric");
            r.register(Box::new(g.clone())).expect("unique metric");
            g
        };
        let shed_level = gauge_vec(
            "xdpcarve_overload_shed_level",
            "File work the worker sheds now: 0 none, 1 BLAKE3, 2 also SHA-1, 3 also every hash of files no \
             policy wants (time spent shedding: xdpcarve_overload_shed_ns_total).",
            "worker",
        );
        let embryonic = gauge_vec(
            "xdpcarve_tcp_embryonic_flows",
            "Flows that carried no byte yet (SYN or handshake only), kept apart from connections.",
            "worker",
        );
        let under_pressure = gauge_vec(
            "xdpcarve_flows_under_pressure",
            "1 while the worker's connection table or attempt pool is at least 90 % full (evictions near).",
            "worker",
        );
        let ring_gauges = [
            gauge_vec(
                "xdpcarve_queue_rx_ring_high_water",
                "Most frames that waited in the RX ring at once since start.",
                "queue",
            ),
            gauge_vec(
                "xdpcarve_queue_rx_ring_capacity",
                "Frames that can wait in the RX ring before the kernel drops.",
                "queue",
            ),
        ];

        let q = |name: &str, help: &str| counter_vec(&r, name, help, &["queue"]);
        let queue = [
            q(
                "xdpcarve_queue_rx_packets_total",
                "Frames received on the AF_XDP socket.",
            ),
            q("xdpcarve_queue_rx_bytes_total", "Bytes received on the AF_XDP socket."),
            q(
                "xdpcarve_queue_rx_dropped_total",
                "Frames the kernel dropped (XDP_STATISTICS rx_dropped).",
            ),
            q(
                "xdpcarve_queue_rx_invalid_descs_total",
                "Invalid RX descriptors (XDP_STATISTICS).",
            ),
            q(
                "xdpcarve_queue_rx_ring_full_drops_total",
                "Frames dropped because the RX ring was full.",
            ),
            q(
                "xdpcarve_queue_fill_ring_empty_total",
                "Times the fill ring was empty when a frame arrived.",
            ),
            q(
                "xdpcarve_queue_rx_oversized_drops_total",
                "Multi-buffer packets too large to reassemble: dropped.",
            ),
        ];
        let xdp = [
            counter(
                &r,
                "xdpcarve_xdp_redirected_packets_total",
                "Packets the XDP program steered to AF_XDP.",
            ),
            counter(
                &r,
                "xdpcarve_xdp_passed_packets_total",
                "Packets the XDP program passed to the kernel.",
            ),
            counter(
                &r,
                "xdpcarve_xdp_parse_failures_total",
                "Packets the XDP program could not parse.",
            ),
            counter(
                &r,
                "xdpcarve_xdp_redirect_failures_total",
                "Redirects to AF_XDP that failed.",
            ),
            counter(
                &r,
                "xdpcarve_xdp_redirected_bytes_total",
                "Bytes of the packets steered to AF_XDP.",
            ),
            counter(
                &r,
                "xdpcarve_xdp_ip_fragments_total",
                "IP fragments the XDP program saw (never steered).",
            ),
            counter(
                &r,
                "xdpcarve_xdp_tunneled_packets_total",
                "Packets whose GRE/ERSPAN/VXLAN tunnel the program opened.",
            ),
        ];
        MetricsHub {
            registry: r,
            egress,
            worker_stats: Mutex::new(HashMap::new()),
            flows_active,
            shed_level,
            embryonic,
            under_pressure,
            ring_gauges,
            queue,
            xdp,
        }
    }

    /// Publishes a snapshot of one worker's counters (totals since start). Call periodically
    /// (e.g. once a second) and once at the end; cheap enough, but not for the per-packet path.
    /// The registry, for parts that register their own metrics (the scan stage).
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    pub fn publish_worker(&self, worker_id: usize, counters: &CounterSet) {
        let label = worker_id.to_string();
        let mut stats = self
            .worker_stats
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        counters.for_each(|area, name, value| {
            let vec = stats.entry((area, name)).or_insert_with(|| {
                let metric = format!("xdpcarve_{area}_{name}_total");
                let help = format!("Worker counter {area}.{name}.");
                counter_vec(&self.registry, &metric, &help, &["worker"])
            });
            raise_to(&vec.with_label_values(&[&label]), value);
        });
    }

    /// Publishes how many flows a worker tracks now.
    pub fn publish_flows_active(&self, worker_id: usize, flows: u64) {
        self.flows_active
            .with_label_values(&[&worker_id.to_string()])
            .set(flows as i64);
    }

    /// Publishes a worker's attempts without a byte and whether its tables are under pressure.
    pub fn publish_flow_pool(&self, worker_id: usize, embryonic: u64, under_pressure: bool) {
        let label = worker_id.to_string();
        self.embryonic
            .with_label_values(&[&label])
            .set(i64::try_from(embryonic).unwrap_or(i64::MAX));
        self.under_pressure
            .with_label_values(&[&label])
            .set(i64::from(under_pressure));
    }

    /// Publishes a worker's shedding level now (0..3, [`xdpcarve_contract::ShedLevel`]).
    pub fn publish_shed_level(&self, worker_id: usize, level: u8) {
        self.shed_level
            .with_label_values(&[&worker_id.to_string()])
            .set(i64::from(level));
    }

    /// Publishes the counters of one AF_XDP socket (totals since it was created).
    pub fn publish_queue(&self, queue_id: u32, c: &QueueCounters) {
        let label = queue_id.to_string();
        let values = [
            c.rx_packets,
            c.rx_bytes,
            c.rx_dropped,
            c.rx_invalid_descs,
            c.rx_ring_full,
            c.fill_ring_empty,
            c.rx_oversized,
        ];
        for (vec, v) in self.queue.iter().zip(values) {
            raise_to(&vec.with_label_values(&[&label]), v);
        }
        for (g, v) in self.ring_gauges.iter().zip([c.rx_ring_high_water, c.rx_ring_capacity]) {
            g.with_label_values(&[&label]).set(i64::try_from(v).unwrap_or(i64::MAX));
        }
    }

    /// Publishes the XDP program's counters (totals, summed over CPUs).
    pub fn publish_xdp(&self, c: &XdpCounters) {
        for (ctr, v) in self.xdp.iter().zip([
            c.redirected,
            c.passed,
            c.parse_failures,
            c.redirect_failures,
            c.redirected_bytes,
            c.ip_fragments,
            c.tunneled,
        ]) {
            raise_to(ctr, v);
        }
    }

    /// The exposition text served on `/metrics`.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buf)
            .expect("text encoding into a Vec");
        String::from_utf8(buf).unwrap_or_default()
    }

    /// Sum of a labelled counter over all its label values.
    pub(crate) fn sum(vec: &IntCounterVec) -> u64 {
        use prometheus::core::Collector;
        vec.collect()
            .iter()
            .flat_map(|mf| mf.get_metric().iter().map(|m| m.get_counter().get_value() as u64))
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worker_and_queue_snapshots_export() {
        let hub = MetricsHub::new("s1");
        let snapshot = |gaps| {
            let mut st = CounterSet::new();
            st.add("tcp", "gaps", gaps);
            st.add("files", "bytes_hashed", 1000);
            st
        };
        hub.publish_worker(0, &snapshot(3));
        hub.publish_worker(0, &snapshot(5));
        // An older snapshot does not take a counter back.
        hub.publish_worker(0, &snapshot(4));
        hub.publish_worker(1, &snapshot(4));
        hub.publish_queue(
            2,
            &QueueCounters {
                rx_packets: 10,
                rx_ring_full: 1,
                rx_ring_high_water: 300,
                rx_ring_capacity: 4096,
                ..Default::default()
            },
        );
        hub.publish_shed_level(1, 2);
        hub.publish_flow_pool(0, 12, true);
        hub.publish_xdp(&XdpCounters {
            redirected: 7,
            ..Default::default()
        });
        let text = hub.render();
        assert!(text.contains("xdpcarve_tcp_gaps_total{worker=\"0\"} 5\n"), "{text}");
        assert!(text.contains("xdpcarve_tcp_gaps_total{worker=\"1\"} 4\n"));
        assert!(text.contains("xdpcarve_files_bytes_hashed_total{worker=\"0\"} 1000\n"));
        assert!(text.contains("xdpcarve_queue_rx_ring_full_drops_total{queue=\"2\"} 1\n"));
        assert!(text.contains("xdpcarve_xdp_redirected_packets_total 7\n"));
        assert!(
            text.contains("xdpcarve_queue_rx_ring_high_water{queue=\"2\"} 300\n"),
            "{text}"
        );
        assert!(text.contains("xdpcarve_queue_rx_ring_capacity{queue=\"2\"} 4096\n"));
        assert!(text.contains("xdpcarve_overload_shed_level{worker=\"1\"} 2\n"));
        assert!(text.contains("xdpcarve_tcp_embryonic_flows{worker=\"0\"} 12\n"));
        assert!(text.contains("xdpcarve_flows_under_pressure{worker=\"0\"} 1\n"));
        assert!(text.contains("xdpcarve_build_info{sensor=\"s1\",version="));
        let lines: Vec<_> = text.lines().map(|l| Ok(l.to_string())).collect();
        let parsed = prometheus_parse::Scrape::parse(lines.into_iter()).unwrap();
        assert!(parsed.samples.len() > 40, "{}", parsed.samples.len());
    }
}
