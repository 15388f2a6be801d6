//! Live-capture helpers: run `xdpcarve -i` inside a namespace, stop it with SIGINT, read its
//! summary's XDP and queue counters, and compare files-log records between runs.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use super::netns::{run_with_timeout, Lab};

/// A live sensor started by [`start_sensor`].
pub struct Sensor {
    pub bg: usize,
    pub files_log: std::path::PathBuf,
}

/// Starts `xdpcarve -i IFACE` in `ns` writing `files_log`, and returns once it is capturing.
pub fn start_sensor(lab: &mut Lab, ns: &str, ifname: &str, files_log: &Path, extra: &[&str]) -> Sensor {
    let bin = super::xdpcarve_bin();
    let mut argv = vec![
        bin.to_str().expect("utf-8 path"),
        "--interface",
        ifname,
        "--files-log",
        files_log.to_str().expect("utf-8 path"),
    ];
    argv.extend_from_slice(extra);
    let bg = lab.spawn("xdpcarve -i", Some(ns), &argv);
    lab.bg(bg).wait_for_line("capturing on", true, Duration::from_secs(30));
    Sensor {
        bg,
        files_log: files_log.to_path_buf(),
    }
}

/// What the sensor's end-of-run summary says.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct LiveCounters {
    pub xdp_seen: u64,
    pub redirected: u64,
    pub passed: u64,
    pub rx_packets: u64,
    /// kernel_rx_dropped + kernel_rx_ring_full + kernel_rx_fill_ring_empty_descs over all queues.
    pub kernel_drops: u64,
}

/// Stops the sensor with SIGINT, checks it exited 0, and returns its counters and records.
pub fn stop_sensor(lab: &mut Lab, sensor: &Sensor) -> (LiveCounters, Vec<serde_json::Value>, String) {
    let bg = lab.bg(sensor.bg);
    let status = bg.interrupt_and_wait(Duration::from_secs(60));
    let stderr = bg.stderr();
    assert!(
        matches!(status, Some(s) if s.success()),
        "xdpcarve -i did not exit cleanly on SIGINT ({status:?}):\n{stderr}"
    );
    let counters = parse_summary(&stderr).unwrap_or_else(|| panic!("no live summary in:\n{stderr}"));
    (counters, read_records(&sensor.files_log), stderr)
}

fn number_before(line: &str, word: &str) -> Option<u64> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let i = words.iter().position(|w| w.trim_end_matches(',') == word)?;
    words.get(i.checked_sub(1)?)?.parse().ok()
}

fn named(line: &str, name: &str) -> u64 {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(name).and_then(|v| v.strip_prefix('=')))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Reads "  xdp: N packets seen, R redirected (..), P passed (..)" and the "  queue Q: N packets,
/// ... kernel_rx_dropped=.." lines of the summary.
pub fn parse_summary(stderr: &str) -> Option<LiveCounters> {
    let xdp = stderr.lines().find(|l| l.trim_start().starts_with("xdp: "))?;
    let mut c = LiveCounters {
        xdp_seen: number_before(xdp, "packets")?,
        redirected: number_before(xdp, "redirected")?,
        passed: number_before(xdp, "passed")?,
        ..Default::default()
    };
    for q in stderr.lines().filter(|l| l.trim_start().starts_with("queue ")) {
        c.rx_packets += number_before(q, "packets")?;
        c.kernel_drops += named(q, "kernel_rx_dropped")
            + named(q, "kernel_rx_ring_full")
            + named(q, "kernel_rx_fill_ring_empty_descs");
    }
    Some(c)
}

/// One "  queue Q: N packets, ..." line of a live summary.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct QueueCounters {
    pub queue: u32,
    pub rx_packets: u64,
    /// kernel_rx_dropped + kernel_rx_ring_full + kernel_rx_fill_ring_empty_descs of this queue.
    pub kernel_drops: u64,
    /// "ring high water H of C frames": the most frames that waited, and how many can.
    pub ring_high_water: Option<(u64, u64)>,
}

/// The per-queue lines of a live summary, in the order printed.
pub fn parse_queues(stderr: &str) -> Vec<QueueCounters> {
    stderr
        .lines()
        .filter_map(|l| {
            let rest = l.trim_start().strip_prefix("queue ")?;
            let (q, _) = rest.split_once(':')?;
            Some(QueueCounters {
                queue: q.trim().parse().ok()?,
                rx_packets: number_before(l, "packets")?,
                kernel_drops: named(l, "kernel_rx_dropped")
                    + named(l, "kernel_rx_ring_full")
                    + named(l, "kernel_rx_fill_ring_empty_descs"),
                ring_high_water: l.split_once("ring high water ").and_then(|(_, rest)| {
                    let mut w = rest.split_whitespace();
                    let high = w.next()?.parse().ok()?;
                    let capacity = w.nth(1)?.parse().ok()?;
                    Some((high, capacity))
                }),
            })
        })
        .collect()
}

/// The records of a files log (JSON lines).
pub fn read_records(path: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("files log line is not JSON ({e}): {l}")))
        .collect()
}

/// `xdpcarve --read PCAP` into `files_log`; returns its records.
pub fn carve_offline(pcap: &Path, files_log: &Path) -> Vec<serde_json::Value> {
    carve_offline_with(pcap, files_log, &[])
}

/// `xdpcarve --read PCAP EXTRA...` into `files_log`; returns its records.
pub fn carve_offline_with(pcap: &Path, files_log: &Path, extra: &[&str]) -> Vec<serde_json::Value> {
    let out = run_with_timeout(
        Command::new(super::xdpcarve_bin())
            .arg("--read")
            .arg(pcap)
            .arg("--files-log")
            .arg(files_log)
            .args(extra),
        Duration::from_secs(120),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        out.status.success(),
        "xdpcarve --read {} failed ({}):\n{}",
        pcap.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    read_records(files_log)
}

/// Fields that depend on the run rather than the traffic: ids, wall-clock times, durations.
const RUN_DEPENDENT: &[&str] = &["ts", "uid", "fuid", "parent_fuid", "duration", "truncated_reason"];

/// A record without its run-dependent fields, as a canonical string (keys sorted).
pub fn record_key(r: &serde_json::Value) -> String {
    let obj = r.as_object().expect("record is an object");
    let kept: BTreeMap<&String, &serde_json::Value> = obj
        .iter()
        .filter(|(k, _)| !RUN_DEPENDENT.contains(&k.as_str()))
        .collect();
    serde_json::to_string(&kept).expect("serializes")
}

/// Sorted record keys: equal multisets of records compare equal regardless of order.
pub fn record_keys(records: &[serde_json::Value]) -> Vec<String> {
    let mut keys: Vec<String> = records.iter().map(record_key).collect();
    keys.sort();
    keys
}

/// Panics with a readable diff unless both runs produced the same records.
pub fn assert_same_records(what: &str, live: &[serde_json::Value], offline: &[serde_json::Value]) {
    let (l, o) = (record_keys(live), record_keys(offline));
    if l != o {
        let only_live: Vec<&String> = l.iter().filter(|k| !o.contains(k)).collect();
        let only_offline: Vec<&String> = o.iter().filter(|k| !l.contains(k)).collect();
        panic!(
            "{what}: live records differ from --read of the same traffic ({} live, {} offline)\n\
             only live:\n  {}\nonly offline:\n  {}",
            l.len(),
            o.len(),
            only_live.iter().map(|s| s.as_str()).collect::<Vec<_>>().join("\n  "),
            only_offline.iter().map(|s| s.as_str()).collect::<Vec<_>>().join("\n  ")
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_counters_parse() {
        let s = "xdpcarve: live capture on x\n  xdp: 120 packets seen, 100 redirected (5.0 kB), 20 passed (of which 0 \
                 parse failures)\n  queue 0: 60 packets, 3.0 kB (10 packets/s) kernel_rx_ring_full=2\n  queue 1: 40 \
                 packets, 2.0 kB (5 packets/s)\n";
        let c = parse_summary(s).unwrap();
        assert_eq!(
            c,
            LiveCounters {
                xdp_seen: 120,
                redirected: 100,
                passed: 20,
                rx_packets: 100,
                kernel_drops: 2
            }
        );
    }

    #[test]
    fn queue_lines_parse() {
        let s = "xdpcarve: live capture on x\n  xdp: 120 packets seen, 100 redirected (5.0 kB), 20 passed\n  queue 0: \
                 60 packets, 3.0 kB (10 packets/s), ring high water 7 of 4096 frames kernel_rx_ring_full=2 \
                 kernel_rx_dropped=1\n  queue 1: 40 packets, 2.0 kB (5 packets/s)\n";
        assert_eq!(
            parse_queues(s),
            vec![
                QueueCounters {
                    queue: 0,
                    rx_packets: 60,
                    kernel_drops: 3,
                    ring_high_water: Some((7, 4096)),
                },
                QueueCounters {
                    queue: 1,
                    rx_packets: 40,
                    kernel_drops: 0,
                    ring_high_water: None,
                }
            ]
        );
    }

    #[test]
    fn record_keys_ignore_run_dependent_fields() {
        let a = serde_json::json!({"ts": "1", "uid": "C1", "fuid": "F1", "sha256": "ab", "size": 3, "duration": 0.5});
        let b = serde_json::json!({"size": 3, "sha256": "ab", "ts": "2", "uid": "C9", "fuid": "F7", "duration": 9.0});
        let c = serde_json::json!({"size": 4, "sha256": "ab", "ts": "2", "uid": "C9", "fuid": "F7"});
        assert_eq!(record_key(&a), record_key(&b));
        assert_ne!(record_key(&a), record_key(&c));
    }
}
