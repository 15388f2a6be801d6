//! End-to-end test target `read_inputs`: what `-r` takes besides one plain capture.
//!
//! - A gzip or zstd compressed capture gives the records of the plain one; the summary names the
//!   compression. A compressed capture cut short keeps the records before the cut, says the
//!   stream is broken, and exits 1.
//! - Several captures (`-r b -r a`, or a directory) are read in the order of their first packets,
//!   by one engine: the shipped sample cut in two in the middle of its connections, given in
//!   reverse order, carves exactly as the whole sample does. A file in the directory that is not
//!   a capture is skipped with a warning; an empty directory is an error.

mod support;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use support::netns::TempDir;
use support::{repo_root, xdpcarve_bin};

fn sample() -> PathBuf {
    repo_root().join("bench/samples/sample.pcap")
}

fn carve(reads: &[&Path]) -> Output {
    let mut cmd = Command::new(xdpcarve_bin());
    for r in reads {
        cmd.arg("-r").arg(r);
    }
    cmd.args(["--files-log", "-"]).output().expect("xdpcarve runs")
}

/// The records' (sha256, size, filename), sorted: what must not change with how the bytes came.
fn records(out: &Output) -> Vec<(String, u64, String)> {
    let mut v: Vec<_> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let r: serde_json::Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
            (
                r["sha256"].as_str().unwrap_or_default().to_string(),
                r["size"].as_u64().unwrap_or_default(),
                r["filename"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    v.sort();
    v
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn gzip_and_zstd_captures_carve_as_the_plain_one() {
    let plain = carve(&[&sample()]);
    assert!(plain.status.success(), "{}", stderr(&plain));
    let want = records(&plain);
    assert!(want.len() >= 5);

    let dir = TempDir::new("read-compressed");
    let bytes = std::fs::read(sample()).unwrap();
    let gz = dir.join("sample.pcap.gz");
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(&bytes).unwrap();
    std::fs::write(&gz, enc.finish().unwrap()).unwrap();
    let zst = dir.join("sample.pcap.zst");
    std::fs::write(&zst, zstd::encode_all(&bytes[..], 3).unwrap()).unwrap();
    // Told by content, not name.
    let unnamed = dir.join("capture");
    std::fs::copy(&zst, &unnamed).unwrap();

    for (path, kind) in [(&gz, "pcap, gzip"), (&zst, "pcap, zstd"), (&unnamed, "pcap, zstd")] {
        let out = carve(&[path]);
        assert!(out.status.success(), "{}: {}", path.display(), stderr(&out));
        assert_eq!(records(&out), want, "{}", path.display());
        assert!(stderr(&out).contains(&format!("({kind}, ")), "{}", stderr(&out));
    }

    // Cut in the middle: what came before is carved, the break is said, the run fails.
    let gz_bytes = std::fs::read(&gz).unwrap();
    let cut = dir.join("cut.pcap.gz");
    std::fs::write(&cut, &gz_bytes[..gz_bytes.len() * 2 / 3]).unwrap();
    let out = carve(&[&cut]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("gzip stream"), "{}", stderr(&out));
    assert!(!records(&out).is_empty(), "records before the cut are kept");
}

/// Writes the pcap records `range` of `src` (a classic pcap) with its header to `dst`.
fn split_pcap(src: &[u8], range: std::ops::Range<usize>, dst: &Path) {
    let little = src[0..4] == [0xd4, 0xc3, 0xb2, 0xa1] || src[0..4] == [0x4d, 0x3c, 0xb2, 0xa1];
    let mut out = src[..24].to_vec();
    let mut at = 24;
    let mut n = 0;
    while at + 16 <= src.len() {
        let raw: [u8; 4] = src[at + 8..at + 12].try_into().unwrap();
        let caplen = if little {
            u32::from_le_bytes(raw)
        } else {
            u32::from_be_bytes(raw)
        } as usize;
        let end = at + 16 + caplen;
        if range.contains(&n) {
            out.extend_from_slice(&src[at..end]);
        }
        at = end;
        n += 1;
    }
    std::fs::write(dst, out).unwrap();
}

#[test]
fn several_captures_are_read_in_timestamp_order_by_one_engine() {
    let whole = carve(&[&sample()]);
    let want = records(&whole);
    let bytes = std::fs::read(sample()).unwrap();
    let dir = TempDir::new("read-many");
    let parts = dir.join("parts");
    std::fs::create_dir_all(&parts).unwrap();
    // Named so that the file order is the reverse of the time order.
    let (early, late) = (parts.join("b-early.pcap"), parts.join("a-late.pcap"));
    split_pcap(&bytes, 0..380, &early);
    split_pcap(&bytes, 380..usize::MAX, &late);

    let late_alone = carve(&[&late]);
    assert!(
        records(&late_alone).len() < want.len(),
        "the cut must fall inside transfers"
    );

    let out = carve(&[&late, &early]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(records(&out), want, "files continue from one capture into the next");
    assert!(stderr(&out).contains("read 2 captures"), "{}", stderr(&out));

    // A directory, with a file that is not a capture in it.
    std::fs::write(parts.join("NOTES.txt"), "not a capture\n").unwrap();
    let out = carve(&[&parts]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(records(&out), want);
    assert!(stderr(&out).contains("NOTES.txt: not read"), "{}", stderr(&out));

    let empty = dir.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let out = carve(&[&empty]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("holds no files to read"), "{}", stderr(&out));
}

fn carve_with_workers(path: &Path, workers: usize) -> Output {
    let out = Command::new(xdpcarve_bin())
        .arg("-r")
        .arg(path)
        .args(["--workers", &workers.to_string(), "--files-log", "-"])
        .output()
        .expect("xdpcarve runs");
    assert!(out.status.success(), "--workers {workers}: {}", stderr(&out));
    out
}

#[test]
fn several_workers_carve_the_same_records_as_one() {
    use xdpcarve_bench::gen::{self, shape::ShapeOptions, PlanOptions};
    // A busy link: interleaved connections, late and repeated segments, TLS beside.
    let dir = TempDir::new("read-workers");
    let plan = gen::plan(&PlanOptions {
        http: 120,
        smtp: 30,
        sizes: vec![4 << 10, 64 << 10, 256 << 10],
        seed: 5,
        ..PlanOptions::default()
    });
    let (generated, sequential) = gen::write(&plan, 5, Vec::new(), false).unwrap();
    let shape = ShapeOptions {
        concurrent: 200,
        reorder_permille: 10,
        retransmit_permille: 10,
        background: 50,
    };
    let (_, shaped) = gen::shape::shape(&sequential, &shape, 5, Vec::new()).unwrap();
    let busy = dir.join("busy.pcap");
    std::fs::write(&busy, shaped).unwrap();
    let one = carve_with_workers(&busy, 1);
    let mut want: Vec<String> = generated
        .manifest
        .files
        .iter()
        .filter(|f| !f.container)
        .map(|f| f.sha256.clone())
        .collect();
    want.sort();
    let mut got: Vec<String> = records(&one).into_iter().map(|r| r.0).collect();
    got.retain(|sha| want.binary_search(sha).is_ok());
    assert_eq!(got.len(), want.len(), "one worker carves every file of the manifest");

    let mut captures = vec![busy];
    let corpus = support::corpus_dir();
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&corpus)
        .unwrap_or_else(|e| panic!("{}: {e}", corpus.display()))
        .flatten()
        .map(|e| e.path().join("trace.pcap"))
        .filter(|p| p.exists())
        .collect();
    cases.sort();
    assert!(cases.len() >= 10, "the corpus cases");
    captures.extend(cases);
    for capture in &captures {
        let want = records(&carve_with_workers(capture, 1));
        for workers in [2, 3] {
            let out = carve_with_workers(capture, workers);
            assert_eq!(records(&out), want, "{} with --workers {workers}", capture.display());
        }
    }
}

#[test]
fn several_workers_reading_a_pipe_carve_each_packet_as_it_comes() {
    // The writer keeps the pipe open after the capture: every file of it must come out all the
    // same, not wait in a batch for packets that may never follow.
    let dir = TempDir::new("read-pipe");
    let log = dir.join("files.log");
    let whole = records(&carve(&[&sample()]));
    let mut child = Command::new(xdpcarve_bin())
        .args(["-r", "/dev/stdin", "--workers", "2", "--quiet", "--files-log"])
        .arg(&log)
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("xdpcarve runs");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(&std::fs::read(sample()).unwrap()).unwrap();
    stdin.flush().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let logged = || std::fs::read_to_string(&log).map_or(0, |s| s.lines().count());
    while logged() < whole.len() {
        assert!(
            std::time::Instant::now() < deadline,
            "{} of {} records while the pipe stays open",
            logged(),
            whole.len()
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    drop(stdin);
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}");
}
