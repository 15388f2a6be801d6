//! Floods of connection attempts that never carry a file, end to end (scaled-down versions of
//! `xdpcarve-gen --syn-flood 300000` and `--half-open 100000`): the state each attempt costs stays
//! small, so the run's peak memory is bounded, and the real download in the middle of the flood
//! is still carved exactly.
//!
//! - A SYN-only flow holds no connection: it waits in the pool of flows that carried no byte
//!   (`tcp.embryos_*`) and costs about 100 bytes.
//! - A half-open request (SYN, then one unanswered request) is a one-sided connection with an
//!   HTTP parser waiting for the response: about 400 bytes. Attempts and one-sided connections
//!   together get 1/16 of `--memory`; past it the oldest of them go, never an established one.
//!
//! The bound below holds today with a margin (peak RSS 19 MiB and 32 MiB; 13 MiB for the small
//! bench sample) and breaks if a flow went back to costing ~8 KiB, as before flows got their
//! parser with their first byte (ed04c3b) and parsers boxed their per-message state (a4fa0a7):
//! 415 MiB and 190 MiB there.

mod support;

use std::time::Instant;

use support::carve::{write_pcap, TempDir};
use support::content::pseudo_random;
use support::flood::{flood_capture, Flood};
use support::rss::{run_read_measured, Measured};
use support::sha256_hex;

/// Peak RSS bound of either run.
const MAX_PEAK_RSS_MIB: u64 = 64;

/// Builds the capture, carves it, and checks the download came through; returns the run.
fn carve_flood(kind: Flood, flows: u32, extra: &[&str]) -> Measured {
    let dir = TempDir::new("flood");
    let body = pseudo_random(7, 256 << 10);
    let built = Instant::now();
    let packets = flood_capture(kind, flows, &body);
    let pcap = dir.path("flood.pcap");
    write_pcap(&pcap, 1, &packets);
    let build_time = built.elapsed();
    let m = run_read_measured(&pcap, extra);
    let run = &m.run;
    println!(
        "{kind:?} flood, {flows} flows ({} packets): capture built in {:.2} s; xdpcarve -r: {:.2} s wall, peak RSS {}",
        packets.len(),
        build_time.as_secs_f64(),
        m.wall.as_secs_f64(),
        m.peak_rss_kib.map_or_else(
            || "not measured".to_string(),
            |k| format!("{:.1} MiB", k as f64 / 1024.0)
        )
    );
    assert!(run.clean(), "{}", run.describe());
    assert_eq!(run.code, Some(0), "{}", run.describe());
    assert_eq!(
        run.records.len(),
        1,
        "only the download carries a file\n{}",
        run.describe()
    );
    let r = &run.records[0];
    assert_eq!(r["sha256"], sha256_hex(&body).as_str(), "{}", run.describe());
    assert_eq!(r["size"], body.len() as u64);
    assert_eq!(r["missing_bytes"], 0);
    assert_eq!(r["http_uri"], "/real.bin");
    m
}

fn check_rss(m: &Measured, what: &str) {
    match m.peak_rss_kib {
        Some(kib) => assert!(
            kib <= MAX_PEAK_RSS_MIB << 10,
            "{what}: peak RSS {:.1} MiB > {MAX_PEAK_RSS_MIB} MiB: does a flow cost more than it did?\n{}",
            kib as f64 / 1024.0,
            m.run.stderr
        ),
        None => println!("SKIPPED: {what}: peak RSS bound not checked"),
    }
}

#[test]
fn a_syn_flood_is_kept_as_attempts_and_the_download_is_carved() {
    const FLOWS: u32 = 50_000;
    let m = carve_flood(Flood::Syn, FLOWS, &[]);
    let run = &m.run;
    let created = run.counter("tcp.embryos_created");
    assert!(
        created > FLOWS as u64,
        "every SYN is an attempt: {created}\n{}",
        run.stderr
    );
    assert_eq!(
        run.counter("tcp.embryos_promoted"),
        1,
        "only the download's handshake gets a byte"
    );
    assert_eq!(run.counter("tcp.embryos_evicted"), 0, "the pool holds 50k attempts");
    assert_eq!(run.counter("tcp.syn_without_synack"), FLOWS as u64, "{}", run.stderr);
    assert_eq!(run.flows_tracked(), 1, "no connection for a SYN\n{}", run.stderr);
    check_rss(&m, "SYN flood of 50k flows");
}

#[test]
fn half_open_requests_are_connections_and_the_download_is_carved() {
    const FLOWS: u32 = 20_000;
    let m = carve_flood(Flood::HalfOpen, FLOWS, &[]);
    let run = &m.run;
    let n = FLOWS as u64;
    // Each request is the first byte of an attempt: a connection made from its SYN.
    assert_eq!(run.counter("tcp.embryos_created"), n + 1, "{}", run.stderr);
    assert_eq!(run.counter("tcp.embryos_promoted"), n + 1, "{}", run.stderr);
    assert_eq!(run.flows_tracked(), n + 1, "{}", run.stderr);
    assert_eq!(run.counter("tcp.flows_evicted"), 0, "{}", run.stderr);
    assert_eq!(run.counter("http.requests"), n + 1, "{}", run.stderr);
    assert_eq!(run.counter("http.responses"), 1, "{}", run.stderr);
    check_rss(&m, "20k half-open requests");
}

/// With a small budget the flood no longer fits: attempts and one-sided connections are evicted,
/// oldest first, and the download (an established connection) is not; the summary's flow memory
/// stays within the budget.
#[test]
fn a_flood_over_the_memory_budget_evicts_attempts_never_the_download() {
    for (kind, flows) in [(Flood::Syn, 50_000), (Flood::HalfOpen, 20_000)] {
        // 1/16 of it, 1 MiB, holds about 10k attempts or 2.5k one-sided connections.
        let m = carve_flood(kind, flows, &["--memory", "16M"]);
        let run = &m.run;
        assert!(run.counter("tcp.evictions_memory") > 0, "{kind:?}: {}", run.stderr);
        assert_eq!(
            run.counter("tcp.flows_evicted_established"),
            0,
            "{kind:?}: {}",
            run.stderr
        );
        if kind == Flood::HalfOpen {
            assert!(run.counter("tcp.flows_evicted_one_sided") > 0, "{}", run.stderr);
        } else {
            assert!(run.counter("tcp.embryos_evicted") > 0, "{}", run.stderr);
        }
        let line = run
            .stderr
            .lines()
            .find(|l| l.contains("flow memory: peak"))
            .unwrap_or_else(|| panic!("no flow memory line\n{}", run.stderr));
        assert!(line.contains("of 16.0 MiB"), "{line}");
        let peak_mib: f64 = line
            .split("peak ")
            .nth(1)
            .and_then(leading_mib)
            .unwrap_or_else(|| panic!("cannot read {line}"));
        assert!(peak_mib <= 16.0, "{line}");
    }
}

/// "1.2 MiB of ..." as MiB.
fn leading_mib(s: &str) -> Option<f64> {
    let mut it = s.split_whitespace();
    let v: f64 = it.next()?.parse().ok()?;
    Some(match it.next()? {
        "B" => v / 1048576.0,
        "KiB" => v / 1024.0,
        "MiB" => v,
        "GiB" => v * 1024.0,
        _ => return None,
    })
}
