//! End-to-end test target `sample`: the shipped sample capture `bench/samples/sample.pcap` carves
//! to exactly the files its manifest `sample.expected.json` lists — same sha256 multiset, sizes,
//! protocols, directions, and names where the protocol carries one — and nothing else.

mod support;

use std::collections::BTreeMap;
use std::process::Command;

#[test]
fn sample_capture_carves_to_exactly_the_expected_files() {
    let dir = support::repo_root().join("bench/samples");
    let pcap = dir.join("sample.pcap");
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("sample.expected.json")).expect("sample.expected.json"))
            .expect("manifest is JSON");
    let expected = manifest["files"].as_array().expect("files array");
    assert!(!expected.is_empty());

    // `--files-log -` as the README shows: records on stdout, the summary on stderr.
    let out = Command::new(support::xdpcarve_bin())
        .arg("-r")
        .arg(&pcap)
        .args(["--files-log", "-"])
        .output()
        .expect("run xdpcarve");
    assert!(
        out.status.success(),
        "xdpcarve failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let records: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .expect("utf-8 files log")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();

    let key = |v: &serde_json::Value| v["sha256"].as_str().map(str::to_string);
    let mut want: BTreeMap<Option<String>, Vec<&serde_json::Value>> = BTreeMap::new();
    for e in expected {
        want.entry(key(e)).or_default().push(e);
    }
    let mut got: BTreeMap<Option<String>, Vec<&serde_json::Value>> = BTreeMap::new();
    for r in &records {
        got.entry(key(r)).or_default().push(r);
    }
    let counts = |m: &BTreeMap<Option<String>, Vec<&serde_json::Value>>| {
        m.iter().map(|(k, v)| (k.clone(), v.len())).collect::<BTreeMap<_, _>>()
    };
    assert_eq!(
        counts(&got),
        counts(&want),
        "carved sha256 multiset differs from the manifest"
    );

    for (sha, exps) in &want {
        let recs = &got[sha];
        for (e, r) in exps.iter().zip(recs.iter()) {
            for field in ["size", "proto", "direction"] {
                assert_eq!(r[field], e[field], "{field} of {sha:?}");
            }
            assert_eq!(r["missing_bytes"].as_u64(), Some(0), "missing bytes in {sha:?}");
            assert_eq!(r["truncated"].as_bool(), Some(false), "{sha:?} truncated");
            if let Some(name) = e["filename"].as_str() {
                assert_eq!(r["filename"].as_str(), Some(name), "filename of {sha:?}");
            }
        }
    }
}

/// uids and fuids of the sample under `extra` flags, sorted (several workers log in any order).
fn ids(extra: &[&str]) -> Vec<(String, String)> {
    let pcap = support::repo_root().join("bench/samples/sample.pcap");
    let run = support::carve::run_read(&pcap, extra);
    assert!(run.clean(), "{}", run.describe());
    run.records
        .iter()
        .map(|r| {
            (
                r["uid"].as_str().unwrap().to_string(),
                r["fuid"].as_str().unwrap().to_string(),
            )
        })
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect()
}

#[test]
fn ids_differ_between_runs_and_sensors_and_repeat_with_a_seed() {
    let a = ids(&[]);
    let b = ids(&[]);
    assert!(a.len() > 3);
    assert!(
        a.iter().zip(&b).all(|(x, y)| x.0 != y.0 && x.1 != y.1),
        "two runs share ids: {a:?} {b:?}"
    );
    let seeded = ids(&["--seed", "42", "--sensor-name", "tap-1"]);
    assert_eq!(
        seeded,
        ids(&["--seed", "42", "--sensor-name", "tap-1"]),
        "a seed repeats the ids"
    );
    let other = ids(&["--seed", "42", "--sensor-name", "tap-2"]);
    assert!(
        seeded.iter().zip(&other).all(|(x, y)| x.0 != y.0),
        "two sensors share uids"
    );
    // Every file has its own id; files of one connection share its uid.
    let mut fuids: Vec<&String> = seeded.iter().map(|(_, f)| f).collect();
    fuids.sort();
    fuids.dedup();
    assert_eq!(fuids.len(), seeded.len());
}
