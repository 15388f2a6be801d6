//! Overload control, end to end: a worker that falls behind sheds file work in the documented
//! order and never loses a record. Offline nothing is ever shed (there is no line rate to keep up
//! with) unless `--simulate-mbps` models a link faster than the worker: here 1 Tbit/s, so the
//! worker is behind from the first packet and climbs to the last level within ~40 ms of its run.

mod support;

use serde_json::Value;
use support::carve::{run_read, tcp_conversation, write_pcap, TempDir};
use support::content::{pe_like, pseudo_random};
use support::sha256_hex;

/// Files served over one keep-alive connection: every fourth one a Windows executable (which the
/// default policy wants), the rest random data (which it does not). 48 files of 1.5 MiB: enough
/// work that the run lasts well past the climb to the last level on any machine.
fn bulk_capture(dir: &TempDir) -> (std::path::PathBuf, Vec<(String, bool, String)>) {
    let mut turns: Vec<(bool, Vec<u8>)> = Vec::new();
    let mut files = Vec::new();
    for i in 0..48u64 {
        let exe = i % 4 == 0;
        let body = if exe {
            pe_like(i + 1, 1536 << 10)
        } else {
            pseudo_random(i + 1, 1536 << 10)
        };
        let uri = format!("/f/{i}.{}", if exe { "exe" } else { "bin" });
        files.push((uri.clone(), exe, sha256_hex(&body)));
        turns.push((true, format!("GET {uri} HTTP/1.1\r\nHost: t\r\n\r\n").into_bytes()));
        let mut resp = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        resp.extend_from_slice(&body);
        for seg in resp.chunks(1448) {
            turns.push((false, seg.to_vec()));
        }
    }
    let turns: Vec<(bool, &[u8])> = turns.iter().map(|(c, d)| (*c, d.as_slice())).collect();
    let pcap = dir.path("bulk.pcap");
    write_pcap(&pcap, 1, &tcp_conversation(40000, 80, &turns));
    (pcap, files)
}

fn by_uri<'a>(records: &'a [Value], uri: &str) -> &'a Value {
    records
        .iter()
        .find(|r| r["http_uri"] == uri)
        .unwrap_or_else(|| panic!("no record for {uri}"))
}

#[test]
fn an_overloaded_worker_sheds_hashes_in_order_and_keeps_every_record() {
    let dir = TempDir::new("overload");
    let (pcap, files) = bulk_capture(&dir);

    // Without a simulated link nothing is shed.
    let calm = run_read(&pcap, &[]);
    assert!(calm.clean(), "{}", calm.describe());
    assert_eq!(calm.records.len(), files.len());
    for (uri, _, sha256) in &files {
        let r = by_uri(&calm.records, uri);
        assert_eq!(r["sha256"], sha256.as_str());
        assert!(r["blake3"].is_string() && r.get("overload").is_none() && r.get("hashes_shed").is_none());
    }
    assert!(!calm.stderr.contains("overload:"), "{}", calm.stderr);

    let busy = run_read(&pcap, &["--simulate-mbps", "1000000"]);
    assert_eq!(busy.code, Some(0), "shedding is not a failure:\n{}", busy.describe());
    assert_eq!(busy.records.len(), files.len(), "every file keeps its record");
    let order = ["blake3", "sha1", "md5", "sha256"];
    for (uri, exe, sha256) in &files {
        let r = by_uri(&busy.records, uri);
        assert_eq!(r["size"], 1536 << 10, "{uri}: shedding never loses bytes");
        assert_eq!(r["missing_bytes"], 0);
        let want_type = if *exe {
            "application/x-dosexec"
        } else {
            "application/octet-stream"
        };
        assert_eq!(r["mime_type"], want_type, "{uri}: sniffing is never shed");
        let shed: Vec<&str> = r["hashes_shed"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        // What was shed is a prefix of the order, and exactly the hashes that are missing.
        assert_eq!(shed, order[..shed.len()], "{uri}: shed out of order");
        for name in order {
            assert_eq!(
                r[name].is_null(),
                shed.contains(&name),
                "{uri}: {name} vs hashes_shed {shed:?}"
            );
        }
        if *exe {
            assert_eq!(
                r["sha256"],
                sha256.as_str(),
                "{uri}: a file the policy wants keeps MD5 and SHA-256"
            );
            assert!(r["md5"].is_string());
        } else if r["sha256"].is_string() {
            assert_eq!(r["sha256"], sha256.as_str(), "{uri}: a hash that is kept is exact");
        }
        if !shed.is_empty() {
            assert_eq!(r["overload"], true, "{uri}: a record whose hashing was shed says so");
        }
    }
    // The last files are carved at the last level: executables keep exactly MD5 and SHA-256,
    // the others lose every hash.
    for (uri, exe, _) in &files[files.len() - 4..] {
        let r = by_uri(&busy.records, uri);
        assert_eq!(r["overload"], true, "{uri}");
        let expect: &[&str] = if *exe { &order[..2] } else { &order };
        assert_eq!(r["hashes_shed"], serde_json::json!(expect), "{uri}");
    }
    assert!(busy.stderr.contains("overload: shed file work"), "{}", busy.stderr);
    assert!(
        busy.stderr.contains("simulated ring (--simulate-mbps)"),
        "{}",
        busy.stderr
    );
}

#[test]
fn overload_flags_are_checked() {
    let dir = TempDir::new("overload-flags");
    let pcap = dir.path("empty.pcap");
    write_pcap(&pcap, 1, &[]);
    let bad = run_read(&pcap, &["--overload-low-water", "0.9"]);
    assert_eq!(bad.code, Some(1), "{}", bad.stderr);
    assert!(bad.stderr.contains("--overload-low-water"), "{}", bad.stderr);
    let rate = run_read(&pcap, &["--simulate-mbps", "fast"]);
    assert_eq!(rate.code, Some(2), "{}", rate.stderr);
    assert!(rate.stderr.contains("Mbit/s"), "{}", rate.stderr);
}

#[test]
fn hash_threads_give_the_same_records() {
    let dir = TempDir::new("hash-threads");
    let (pcap, files) = bulk_capture(&dir);
    let key = |r: &Value| {
        [
            "fuid",
            "http_uri",
            "size",
            "md5",
            "sha1",
            "sha256",
            "blake3",
            "mime_type",
        ]
        .map(|f| r[f].to_string())
        .join(" ")
    };
    // The same seed gives the same ids: records must be equal to the last field.
    let inline = run_read(&pcap, &["--seed", "1"]);
    for threads in ["1", "3"] {
        let offloaded = run_read(&pcap, &["--seed", "1", "--hash-threads", threads]);
        assert!(offloaded.clean(), "{}", offloaded.describe());
        let mut a: Vec<String> = inline.records.iter().map(key).collect();
        let mut b: Vec<String> = offloaded.records.iter().map(key).collect();
        a.sort();
        b.sort();
        assert_eq!(a, b, "--hash-threads {threads}");
    }
    // Overloaded with hash threads: the order and the policy's hashes hold as without them.
    let busy = run_read(&pcap, &["--hash-threads", "2", "--simulate-mbps", "1000000"]);
    assert_eq!(busy.records.len(), files.len());
    for (uri, exe, sha256) in &files[files.len() - 4..] {
        let r = by_uri(&busy.records, uri);
        if *exe {
            assert_eq!(r["sha256"], sha256.as_str(), "{uri}");
            assert_eq!(r["hashes_shed"], serde_json::json!(["blake3", "sha1"]), "{uri}");
        } else {
            assert!(r["sha256"].is_null() && r["md5"].is_null(), "{uri}: {r}");
        }
    }
}
