//! The end-of-run summary on stderr, for a read and a live capture alike: what was read, what
//! was found, and every counter of a skip or a limit that fired (a silent skip is a lost file
//! nobody hears about).

use std::fmt::Write;

use xdpcarve_contract::CounterSet;
use xdpcarve_core::{FlowMemory, WorkerReport};
use xdpcarve_egress::EgressSummary;

use crate::live::LiveReport;
use crate::offline::ReadReport;

/// Where the packets came from.
pub enum Source<'a> {
    Read(&'a ReadReport),
    Live(&'a LiveReport),
}

impl Source<'_> {
    pub fn workers(&self) -> &[WorkerReport] {
        match self {
            Source::Read(r) => &r.workers,
            Source::Live(l) => &l.workers,
        }
    }
}

/// Counters shown in the headline lines; everything else nonzero is listed below them.
const HEADLINE: &[(&str, &str)] = &[
    ("capture", "packets"),
    ("capture", "bytes"),
    ("tcp", "flows_created"),
    ("tcp", "flows_midstream"),
    ("tcp", "flows_ignored"),
    ("files", "files"),
    ("tcp", "gaps"),
    ("tcp", "gap_bytes"),
    ("tcp", "overlaps_conflicting"),
    ("tcp", "retransmitted_bytes"),
];

/// Where a run's records go, for the summary's last line.
pub fn outputs(egress: &xdpcarve_egress::EgressConfig, scan: &xdpcarve_scan::ScanConfig) -> String {
    let place = |p: &str| {
        if p == "-" {
            "standard output".to_string()
        } else {
            p.to_string()
        }
    };
    let mut parts = vec![format!(
        "records: files log {}",
        place(egress.files_log.path.as_deref().unwrap_or("files.log"))
    )];
    if let Some(url) = &egress.webhook.url {
        let journal = egress
            .spill
            .dir
            .as_deref()
            .map_or("none".into(), |d| d.display().to_string());
        parts.push(format!("submissions to {url} (spill journal {journal})"));
    }
    if let Some(d) = &scan.store.dir {
        parts.push(format!("files kept in {}", d.display()));
    }
    if let Some(p) = &scan.scan.scans_log {
        parts.push(format!("scans log {}", place(&p.to_string_lossy())));
    }
    if let Some(p) = &scan.scan.alerts_log {
        parts.push(format!("alerts log {}", place(&p.to_string_lossy())));
    }
    parts.join("; ")
}

/// The summary of a run: its source, the workers' counters (`protocols` names the protocols
/// whose file counts are shown), and what egress did.
pub fn render(source: &Source<'_>, protocols: &[&'static str], egress: &EgressSummary) -> String {
    let workers = source.workers();
    let mut c = CounterSet::new();
    for w in workers {
        c.merge(&w.counters);
    }
    let mut out = String::new();
    match source {
        Source::Read(r) => read_header(&mut out, r, &c),
        Source::Live(l) => live_header(&mut out, l),
    }
    let max_flows: usize = workers.iter().map(|w| w.max_flows).sum();
    let _ = writeln!(
        out,
        "  flows: {} tracked ({} picked up mid-stream, {} ignored by port, {} at most at once); {} attempts \
         that carried no byte (SYN or handshake only, kept apart)",
        c.get("tcp", "flows_created"),
        c.get("tcp", "flows_midstream"),
        c.get("tcp", "flows_ignored"),
        max_flows,
        c.get("tcp", "embryos_created")
            .saturating_sub(c.get("tcp", "embryos_promoted"))
    );
    let _ = writeln!(out, "{}", memory_line(workers, &c));
    let per_proto: Vec<String> = protocols.iter().map(|p| format!("{p} {}", c.get(p, "files"))).collect();
    let _ = writeln!(
        out,
        "  files: {} logged ({}), {} of file data, {} with missing bytes",
        workers.iter().map(|w| w.files).sum::<u64>(),
        per_proto.join(", "),
        human_bytes(workers.iter().map(|w| w.file_bytes).sum()),
        workers.iter().map(|w| w.files_with_gaps).sum::<u64>()
    );
    let _ = writeln!(
        out,
        "  reassembly: {} gaps ({} missing), {} conflicting overlap bytes, {} retransmitted bytes",
        c.get("tcp", "gaps"),
        human_bytes(c.get("tcp", "gap_bytes")),
        c.get("tcp", "overlaps_conflicting"),
        human_bytes(c.get("tcp", "retransmitted_bytes"))
    );
    overload_line(&mut out, source, &c);
    let mut rest = Vec::new();
    c.for_each(|area, name, v| {
        let shown = HEADLINE.contains(&(area, name)) || (name == "files" && protocols.contains(&area));
        if v > 0 && !shown {
            rest.push(format!("{area}.{name}={v}"));
        }
    });
    if let Source::Read(r) = source {
        if r.skipped_unsupported > 0 {
            rest.push(format!("capture.unsupported_link_packets={}", r.skipped_unsupported));
        }
    }
    if !rest.is_empty() {
        let _ = writeln!(out, "  counters: {}", rest.join(" "));
    }
    if let Source::Live(_) = source {
        let one_sided = c.get("tcp", "synack_without_syn");
        if one_sided > 0 {
            let _ = writeln!(
                out,
                "  warning: {one_sided} connections were seen from one side only on their queue (SYN-ACK without \
                 SYN): the NIC's RSS hash is not symmetric, see deploy/nic-setup.sh"
            );
        }
    }
    if let Source::Read(ReadReport { truncated: Some(t), .. }) = source {
        let _ = writeln!(out, "  warning: {t}");
    }
    let _ = writeln!(out, "  {egress}");
    if let Some(scan) = &egress.scan {
        let _ = writeln!(out, "  {scan}");
    }
    out
}

/// What overload control did: shown whenever a worker shed, or a ring was simulated.
fn overload_line(out: &mut String, source: &Source<'_>, c: &CounterSet) {
    if let Source::Read(ReadReport {
        simulated: Some(ring), ..
    }) = source
    {
        let _ = writeln!(
            out,
            "  simulated ring (--simulate-mbps): high water {} of {} frames, {} frames a live ring would have dropped",
            ring.high_water, ring.capacity, ring.overflow
        );
    }
    if c.get("overload", "episodes") == 0 {
        return;
    }
    let _ = writeln!(
        out,
        "  overload: shed file work {} times for {:.2} s ({:.2} s at the last level); {} files affected: \
         blake3 shed on {}, sha1 on {}, md5 on {} and sha256 on {} (files no policy wants), {} not hashed",
        c.get("overload", "episodes"),
        c.get("overload", "shed_ns") as f64 / 1e9,
        c.get("overload", "shed_unwanted_ns") as f64 / 1e9,
        c.get("files", "files_overload"),
        c.get("files", "blake3_shed"),
        c.get("files", "sha1_shed"),
        c.get("files", "md5_shed"),
        c.get("files", "sha256_shed"),
        human_bytes(c.get("files", "bytes_unhashed")),
    );
}

fn read_header(out: &mut String, r: &ReadReport, c: &CounterSet) {
    let secs = r.elapsed.as_secs_f64().max(1e-6);
    let fmt = match r.compression.name() {
        _ if r.inputs > 1 => "in all".to_string(),
        Some(c) => format!("{}, {c}", r.format.name()),
        None => r.format.name().to_string(),
    };
    let (packets, bytes) = (c.get("capture", "packets"), c.get("capture", "bytes"));
    let _ = writeln!(
        out,
        "xdpcarve: read {} ({fmt}, {}): {} packets, {} in {:.2} s ({}/s, {:.0} packets/s); capture spans {:.1} s",
        r.file,
        human_bytes(r.file_len),
        packets,
        human_bytes(bytes),
        secs,
        human_bytes((bytes as f64 / secs) as u64),
        packets as f64 / secs,
        r.workers
            .iter()
            .map(|w| w.capture_span)
            .max()
            .unwrap_or_default()
            .as_secs_f64(),
    );
}

/// The capture side of a live run: XDP program, queues, kernel drops.
fn live_header(out: &mut String, r: &LiveReport) {
    let x = &r.summary.xdp;
    let t = r.summary.total();
    let secs = r.elapsed.as_secs_f64().max(1e-6);
    let _ = writeln!(out, "xdpcarve: live capture on {} for {:.1} s", r.description, secs);
    let _ = writeln!(
        out,
        "  xdp: {} packets seen, {} redirected ({}), {} passed (of which {} parse failures, {} IP fragments, \
         {} redirect failures); {} tunneled",
        x.packets(),
        x.redirected,
        human_bytes(x.redirected_bytes),
        x.passed,
        x.parse_failed,
        x.ip_fragments,
        x.redirect_failed,
        x.tunneled
    );
    for q in &r.summary.queues {
        let mut line = format!(
            "  queue {}: {} packets, {} ({:.0} packets/s)",
            q.queue,
            q.rx_packets,
            human_bytes(q.rx_bytes),
            q.rx_packets as f64 / secs
        );
        let _ = write!(
            line,
            ", ring high water {} of {} frames",
            q.rx_ring_high_water, q.rx_ring_capacity
        );
        q.for_each(|name, v| {
            let shown = matches!(
                name,
                "rx_packets" | "rx_bytes" | "rx_batches" | "rx_ring_high_water" | "rx_ring_capacity"
            );
            if v > 0 && !shown {
                let _ = write!(line, " {name}={v}");
            }
        });
        let _ = writeln!(out, "{line}");
    }
    if t.kernel_drops() > 0 {
        let _ = writeln!(
            out,
            "  warning: the kernel dropped {} steered packets (rx_dropped {}, rx_ring_full {}, fill ring empty {}): \
             raise --capture-memory or add queues (README \"Sizing\")",
            t.kernel_drops(),
            t.kernel_rx_dropped,
            t.kernel_rx_ring_full,
            t.kernel_rx_fill_ring_empty_descs
        );
    }
}

/// 1234567 → "1.2 MB" (decimal units, as throughput is usually quoted).
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1000.0 && i + 1 < UNITS.len() {
        v /= 1000.0;
        i += 1;
    }
    if i == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[i])
    }
}

/// Peak flow state of the busiest worker, by category, against its budget.
fn memory_line(workers: &[WorkerReport], c: &CounterSet) -> String {
    let busiest = workers.iter().max_by_key(|w| w.memory_peak_total);
    let (peak, total, budget) = busiest.map_or((FlowMemory::default(), 0, 0), |w| {
        (w.memory_peak, w.memory_peak_total, w.memory_budget)
    });
    format!(
        "  flow memory: peak {} of {} (--memory{}): connections {}, attempts {}, reassembly {}, parsers {}; \
         {} evictions for memory, {} for --max-flows",
        iec_bytes(total),
        iec_bytes(budget),
        if workers.len() > 1 { ", busiest worker" } else { "" },
        iec_bytes(peak.connections),
        iec_bytes(peak.attempts),
        iec_bytes(peak.reassembly),
        iec_bytes(peak.parsers),
        c.get("tcp", "evictions_memory"),
        c.get("tcp", "evictions_table_full"),
    )
}

/// Bytes in binary units, as --memory takes them (512M is 512 MiB).
fn iec_bytes(n: usize) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1024.0 && i + 1 < UNITS.len() {
        v /= 1024.0;
        i += 1;
    }
    match i {
        0 => format!("{n} B"),
        _ => format!("{v:.1} {}", UNITS[i]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_are_human() {
        assert_eq!(human_bytes(999), "999 B");
        assert_eq!(human_bytes(1_234_567), "1.2 MB");
    }
}
