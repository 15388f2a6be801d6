//! SIGINT and SIGTERM on `xdpcarve -r`: the read stops at the next packet and the run ends as at
//! the end of the file (connections closed, open files logged as truncated, egress drained, the
//! summary printed), with 128 + the signal's number; a second signal exits at once. The capture
//! comes through a named pipe, so the signal lands while the read is really halfway.

mod support;

use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::carve::TempDir;
use support::{repo_root, xdpcarve_bin};

/// A fifo, and xdpcarve reading it into a files log in `dir`.
fn start_reading(dir: &TempDir) -> (std::path::PathBuf, Child) {
    let fifo = dir.path("capture.fifo");
    let made = Command::new("mkfifo").arg(&fifo).status().expect("mkfifo");
    assert!(made.success(), "mkfifo failed");
    let child = Command::new(xdpcarve_bin())
        .arg("-r")
        .arg(&fifo)
        .arg("--files-log")
        .arg(dir.path("files.log"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start xdpcarve");
    (fifo, child)
}

fn signal(child: &Child, name: &str) {
    let ok = Command::new("kill")
        .args([format!("-{name}"), child.id().to_string()])
        .status()
        .expect("kill");
    assert!(ok.success());
}

/// Waits for the child to end (at most `limit`); its exit code and stderr.
fn wait(child: Child, limit: Duration) -> (Option<i32>, String) {
    let started = Instant::now();
    let mut child = child;
    while child.try_wait().expect("try_wait").is_none() {
        assert!(started.elapsed() < limit, "xdpcarve did not exit within {limit:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().expect("output");
    (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn sigterm_halfway_ends_the_read_like_the_end_of_the_file() {
    let dir = TempDir::new("sigterm");
    let sample = std::fs::read(repo_root().join("bench/samples/sample.pcap")).expect("sample");
    let (fifo, child) = start_reading(&dir);
    let mut pipe = std::fs::OpenOptions::new().write(true).open(&fifo).expect("open fifo");
    let half = sample.len() / 2;
    pipe.write_all(&sample[..half]).expect("first half");
    pipe.flush().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    signal(&child, "TERM");
    // The rest trickles in: the read stops at the next packet and closes the pipe.
    for chunk in sample[half..].chunks(512) {
        if pipe.write_all(chunk).is_err() {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    drop(pipe);
    let (code, stderr) = wait(child, Duration::from_secs(30));
    assert_eq!(code, Some(143), "{stderr}");
    assert!(
        stderr.contains("egress: files_logged="),
        "the summary is printed\n{stderr}"
    );
    let last = stderr.lines().last().unwrap_or("");
    assert!(last.starts_with("xdpcarve: stopped by SIGTERM after "), "{stderr}");
    let log = std::fs::read_to_string(dir.path("files.log")).expect("files log");
    let logged: u64 = stderr
        .split("files_logged=")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .expect("files_logged in the summary");
    assert_eq!(
        log.lines().count() as u64,
        logged,
        "every record the summary counts is in the log"
    );
    for line in log.lines() {
        serde_json::from_str::<serde_json::Value>(line).expect("each record is whole JSON");
    }
}

#[test]
fn a_second_signal_exits_at_once() {
    let dir = TempDir::new("sigint2");
    let sample = std::fs::read(repo_root().join("bench/samples/sample.pcap")).expect("sample");
    let (fifo, child) = start_reading(&dir);
    let mut pipe = std::fs::OpenOptions::new().write(true).open(&fifo).expect("open fifo");
    // Some packets, then nothing: the read waits on the pipe and cannot reach its next packet.
    pipe.write_all(&sample[..sample.len() / 3]).expect("a third");
    pipe.flush().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    signal(&child, "INT");
    std::thread::sleep(Duration::from_millis(200));
    signal(&child, "INT");
    let (code, stderr) = wait(child, Duration::from_secs(10));
    drop(pipe);
    assert_eq!(code, Some(130), "{stderr}");
    assert!(
        !stderr.contains("egress: files_logged="),
        "no drain after the second signal\n{stderr}"
    );
}
