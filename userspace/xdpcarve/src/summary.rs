//! The end-of-run summary on stderr: what was read, what was found, and every counter of a skip
//! or a limit that fired (a silent skip is a lost file nobody hears about).

use std::fmt::Write;

use xdpcarve_capture::Format;

use crate::offline::ReadReport;
use crate::sink::SinkTally;

/// Counters shown in the headline lines; everything else nonzero is listed below them.
const HEADLINE: &[(&str, &str)] = &[
    ("capture", "packets"),
    ("capture", "bytes"),
    ("tcp", "flows_created"),
    ("tcp", "flows_midstream"),
    ("files", "files"),
    ("files", "http_files"),
    ("files", "smtp_files"),
    ("tcp", "gaps"),
    ("tcp", "gap_bytes"),
    ("tcp", "overlaps_conflicting"),
];

pub fn render(r: &ReadReport, tally: &SinkTally) -> String {
    let s = &r.stats;
    let secs = r.elapsed.as_secs_f64().max(1e-6);
    let mut out = String::new();
    let fmt = match r.format {
        Format::Pcap => "pcap",
        Format::PcapNg => "pcapng",
    };
    let _ = writeln!(
        out,
        "xdpcarve: read {} ({fmt}, {}): {} packets, {} in {:.2} s ({}/s, {:.0} packets/s); capture spans {:.1} s",
        r.file,
        human_bytes(r.file_len),
        s.capture.packets,
        human_bytes(s.capture.bytes),
        secs,
        human_bytes((s.capture.bytes as f64 / secs) as u64),
        s.capture.packets as f64 / secs,
        r.capture_span.as_secs_f64(),
    );
    let _ = writeln!(
        out,
        "  flows: {} tracked ({} picked up mid-stream, {} ignored by port, {} at most at once)",
        s.tcp.flows_created, s.tcp.flows_midstream, s.tcp.flows_ignored, r.max_flows_seen
    );
    let _ = writeln!(
        out,
        "  files: {} logged (http {}, smtp {}), {} of file data, {} with missing bytes",
        tally.files,
        s.files.http_files,
        s.files.smtp_files,
        human_bytes(tally.file_bytes),
        tally.files_with_gaps
    );
    let _ = writeln!(
        out,
        "  reassembly: {} gaps ({} missing), {} conflicting overlap bytes, {} retransmitted bytes",
        s.tcp.gaps,
        human_bytes(s.tcp.gap_bytes),
        s.tcp.overlaps_conflicting,
        human_bytes(s.tcp.retransmitted_bytes)
    );
    let mut rest = Vec::new();
    s.for_each(|area, name, v| {
        if v > 0 && !HEADLINE.contains(&(area, name)) && !(area == "tcp" && name == "retransmitted_bytes") {
            rest.push(format!("{area}.{name}={v}"));
        }
    });
    if r.skipped_unsupported > 0 {
        rest.push(format!("capture.unsupported_link_packets={}", r.skipped_unsupported));
    }
    if !rest.is_empty() {
        let _ = writeln!(out, "  counters: {}", rest.join(" "));
    }
    if let Some(t) = &r.truncated {
        let _ = writeln!(out, "  warning: {t}");
    }
    out
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_are_human() {
        assert_eq!(human_bytes(999), "999 B");
        assert_eq!(human_bytes(1_234_567), "1.2 MB");
    }
}
