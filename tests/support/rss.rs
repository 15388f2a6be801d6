//! Peak memory of an `xdpcarve --read` run, measured from outside: the binary runs under GNU
//! time (`/usr/bin/time -f %M`, Debian package `time`, installed by tests/setup.sh), which reports
//! the child's peak resident set size in KiB.

use std::ffi::OsStr;
use std::path::Path;
use std::time::{Duration, Instant};

use super::carve::{run_read, run_read_via, Run, TempDir};

const GNU_TIME: &str = "/usr/bin/time";

/// A run and what it cost.
pub struct Measured {
    pub run: Run,
    /// Peak RSS in KiB; None when GNU time is not installed (and CI is not set).
    pub peak_rss_kib: Option<u64>,
    pub wall: Duration,
}

/// [`run_read`] under GNU time. Without /usr/bin/time the run happens unmeasured and prints
/// SKIPPED for the measurement, unless CI is set, where it fails.
pub fn run_read_measured(capture: &Path, extra: &[&str]) -> Measured {
    let started = Instant::now();
    if !Path::new(GNU_TIME).exists() {
        assert!(
            std::env::var_os("CI").is_none(),
            "{GNU_TIME} is missing (Debian package `time`; tests/setup.sh installs it)"
        );
        println!("SKIPPED: peak RSS not measured: {GNU_TIME} is missing (Debian package `time`)");
        let run = run_read(capture, extra);
        return Measured {
            run,
            peak_rss_kib: None,
            wall: started.elapsed(),
        };
    }
    let tmp = TempDir::new("rss");
    let report = tmp.path("time.txt");
    let wrapper: [&OsStr; 5] = [
        GNU_TIME.as_ref(),
        "-o".as_ref(),
        report.as_os_str(),
        "-f".as_ref(),
        "peak_rss_kib=%M".as_ref(),
    ];
    let mut run = run_read_via(&wrapper, capture, extra);
    let wall = started.elapsed();
    let text = std::fs::read_to_string(&report).unwrap_or_else(|e| panic!("{}: {e}", report.display()));
    if text.contains("terminated by signal") {
        // GNU time exits 128 + signal: say the run did not end by itself.
        run.code = None;
        run.stderr.push_str(&text);
    }
    let kib = text
        .lines()
        .find_map(|l| l.strip_prefix("peak_rss_kib="))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no peak RSS in GNU time's report {text:?}"));
    Measured {
        run,
        peak_rss_kib: Some(kib),
        wall,
    }
}
