//! HTTP evasion (README "Evasion"): every committed capture of `tests/evasion/http/` delivers one
//! known file through one framing trick. Each is carved with `xdpcarve --read`, and the result is
//! held against what headless Chromium saved from the same server (`manifest.json`):
//! - where Chromium saved a download, a record carries exactly its sha256;
//! - where it saved nothing, the body is still logged, marked with `anomalies`.
//!
//! One kind of verdict needs no more: a page Chromium displayed instead of saving ([`DISPLAYED`]:
//! a well-formed response with no download intent), whose body must be logged as curl got it.

mod support;

use serde_json::Value;
use std::collections::BTreeMap;
use support::carve::run_read;
use support::repo_root;

/// Variants the manifest must hold, at least, and per family of the four.
const MIN_VARIANTS: usize = 500;
const FAMILIES: [&str; 4] = ["status", "header", "chunked", "encoding"];

/// Variants Chromium displayed as a page rather than saved: nothing was bent.
const DISPLAYED: &[&str] = &["header/ct_html_only"];

#[derive(Default)]
struct Tally {
    variants: usize,
    saved: usize,
    exact: usize,
    marked: usize,
}

#[test]
fn every_variant_is_carved_as_the_browser_saved_it() {
    let dir = repo_root().join("tests/evasion/http");
    let text = std::fs::read_to_string(dir.join("manifest.json")).expect("tests/evasion/http/manifest.json");
    let manifest: Value = serde_json::from_str(&text).expect("manifest.json is JSON");
    let variants = manifest["variants"].as_array().expect("manifest has variants");
    assert!(
        variants.len() >= MIN_VARIANTS,
        "{} variants, want {MIN_VARIANTS}",
        variants.len()
    );

    let mut tally: BTreeMap<String, Tally> = BTreeMap::new();
    let mut failures = Vec::new();
    for v in variants {
        let id = v["id"].as_str().expect("variant id");
        let family = v["family"].as_str().expect("variant family").to_owned();
        let capture = dir.join(v["capture"].as_str().expect("variant capture"));
        let run = run_read(&capture, &[]);
        let t = tally.entry(family).or_default();
        t.variants += 1;
        if run.code != Some(0) {
            failures.push(format!("{id}: exit {:?}\n{}", run.code, run.describe()));
            continue;
        }
        let downloads: Vec<&Value> = run
            .records
            .iter()
            .filter(|r| r["proto"] == "http" && r["direction"] == "download")
            .collect();
        match v["browser_sha256"].as_str() {
            None if DISPLAYED.contains(&id) => {
                let curl = v["curl_sha256"].as_str().unwrap_or("none");
                if !downloads.iter().any(|r| r["sha256"] == curl) {
                    failures.push(format!(
                        "{id}: displayed page not logged as curl got it ({curl}):\n{}",
                        run.describe()
                    ));
                }
            }
            Some(want) => {
                t.saved += 1;
                if downloads.iter().any(|r| r["sha256"] == want) {
                    t.exact += 1;
                } else {
                    failures.push(format!(
                        "{id}: Chromium saved sha256 {want}; carved:\n{}",
                        run.describe()
                    ));
                }
            }
            None => {
                let marked = downloads
                    .iter()
                    .any(|r| r["anomalies"].as_array().is_some_and(|a| !a.is_empty()));
                if marked {
                    t.marked += 1;
                } else {
                    failures.push(format!(
                        "{id}: Chromium saved nothing; want a record marked with anomalies; carved:\n{}",
                        run.describe()
                    ));
                }
            }
        }
    }
    eprintln!("family     variants  browser-saved  exact  saved-nothing  marked");
    for (family, t) in &tally {
        eprintln!(
            "{family:<10} {:>8} {:>14} {:>6} {:>14} {:>7}",
            t.variants,
            t.saved,
            t.exact,
            t.variants - t.saved,
            t.marked
        );
    }
    for family in FAMILIES {
        let n = tally.get(family).map_or(0, |t| t.variants);
        assert!(n >= 50, "family {family} has {n} variants");
    }
    assert!(
        failures.is_empty(),
        "{} of {} variants fail:\n{}",
        failures.len(),
        variants.len(),
        failures.join("\n")
    );
}
