//! The carving benchmark: the sans-IO engine over a capture held in memory on one core, checked
//! against the generator's manifest, timed next to raw hashing of the same decoded bytes.

use crate::gen::{Manifest, ManifestFile};
use crate::pcap::Frame;
use sha1::{Digest, Sha1};
use sha2::Sha256;
use std::collections::BTreeMap;
use std::hint::black_box;
use xdpcarve_contract::{FileConfig, FileRecord, HashSet, LinkType, Timestamp};
use xdpcarve_core::{Engine, EngineConfig, Worker};
use xdpcarve_protocols::ProtocolsConfig;

/// Runs one worker (the sensor's: engine, protocols, records into a `Vec`) over every frame and
/// returns the records it produced (in finish order). Not inlined, so
/// `valgrind --tool=callgrind --toggle-collect='*run_pipeline*'` measures exactly the carving and
/// nothing of input generation.
#[inline(never)]
pub fn run_pipeline(frames: &[Frame<'_>], link: LinkType, hashes: HashSet) -> Vec<FileRecord> {
    let cfg = EngineConfig {
        files: FileConfig {
            hashes,
            ..FileConfig::default()
        },
        protocols: xdpcarve_protocols::registry(&ProtocolsConfig::default()),
        ..EngineConfig::default()
    };
    let mut worker = Worker::new(Engine::new(cfg), Vec::new());
    for f in frames {
        worker.handle_packet(Timestamp(f.ts_nanos), link, f.data);
    }
    worker.finish(Timestamp::ZERO);
    worker.into_sink()
}

/// Hashes every buffer with the chosen hashes, whole (the best case for a hash function), one
/// stream at a time with the fastest single-stream code measured here (`--hash-speeds`: MD5 is
/// xdpcarve-hash's, ahead of RustCrypto's; MD5 with SHA-256 its stitched pass), and returns a byte of every digest so nothing can be
/// optimised away.
#[inline(never)]
pub fn raw_hash(contents: &[&[u8]], hashes: HashSet) -> u8 {
    let mut acc = 0u8;
    // MD5 and SHA-256 together: stitched into one pass where the CPU has SHA-NI, the fastest
    // code measured here for the pair, as the pipeline does for a file alone.
    let stitch = hashes.md5 && hashes.sha256 && xdpcarve_hash::Md5Sha256::new().is_some();
    for data in contents {
        if stitch {
            let mut pair = xdpcarve_hash::Md5Sha256::new().expect("SHA-NI");
            pair.update(data);
            let (md5, sha256) = pair.finalize();
            acc ^= md5[0] ^ sha256[0];
        } else {
            if hashes.md5 {
                acc ^= xdpcarve_hash::Md5::digest(data)[0];
            }
            if hashes.sha256 {
                acc ^= Sha256::digest(data)[0];
            }
        }
        if hashes.sha1 {
            acc ^= Sha1::digest(data)[0];
        }
        if hashes.blake3 {
            acc ^= blake3::hash(data).as_bytes()[0];
        }
    }
    black_box(acc)
}

/// Checks the records against the manifest: the same multiset of (sha256, size), nothing
/// truncated or missing. Returns a description of every difference.
pub fn verify(manifest: &Manifest, records: &[FileRecord]) -> Result<(), String> {
    let mut want: BTreeMap<(String, u64), i64> = BTreeMap::new();
    for f in &manifest.files {
        *want.entry((f.sha256.clone(), f.size)).or_default() += 1;
    }
    let mut problems = Vec::new();
    for r in records {
        if r.truncated || r.missing_bytes > 0 {
            problems.push(format!(
                "{} {:?} size {} truncated={} ({:?}) missing_bytes={}",
                r.proto, r.filename, r.size, r.truncated, r.truncated_reason, r.missing_bytes
            ));
        }
        let key = (r.sha256.clone().unwrap_or_default(), r.size);
        *want.entry(key).or_default() -= 1;
    }
    for ((sha, size), n) in &want {
        if *n > 0 {
            let f: Option<&ManifestFile> = manifest.files.iter().find(|f| &f.sha256 == sha);
            problems.push(format!(
                "{n} × expected file not carved: sha256 {sha} size {size} ({f:?})"
            ));
        } else if *n < 0 {
            problems.push(format!("{} × unexpected record: sha256 {sha} size {size}", -n));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n"))
    }
}

/// CPU time this thread has used. Timings in CPU time are not inflated when the scheduler gives
/// the core to someone else, which on a shared 2-core machine happens all the time; wall time
/// is reported next to it.
pub fn thread_cpu_time() -> std::time::Duration {
    cpu_time::ThreadTime::now().as_duration()
}

/// Runs `f` and returns its (CPU, wall) time.
pub fn measure<T>(f: impl FnOnce() -> T) -> (T, std::time::Duration, std::time::Duration) {
    let (c0, w0) = (thread_cpu_time(), std::time::Instant::now());
    let out = f();
    (out, thread_cpu_time().saturating_sub(c0), w0.elapsed())
}

/// md5,sha1,sha256 only.
pub const CLASSIC_HASHES: HashSet = HashSet {
    md5: true,
    sha1: true,
    sha256: true,
    blake3: false,
};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gen::{self, PlanOptions};
    use crate::pcap;

    /// The benchmark's own correctness check passes on a small mixed capture and fails when a
    /// file is missing from the output.
    #[test]
    fn pipeline_carves_a_generated_mix_exactly() {
        let opts = PlanOptions {
            http: 10,
            smtp: 4,
            sizes: vec![3000, 70_000],
            seed: 5,
            ..PlanOptions::default()
        };
        let (g, buf) = gen::write(&gen::plan(&opts), 5, Vec::new(), false).unwrap();
        let (lt, frames) = pcap::parse(&buf).unwrap();
        let link = LinkType::from_linktype(lt).unwrap();
        let records = run_pipeline(&frames, link, HashSet::default());
        verify(&g.manifest, &records).unwrap();
        let records = run_pipeline(&frames, link, CLASSIC_HASHES);
        verify(&g.manifest, &records).unwrap();
        assert!(records.iter().all(|r| r.blake3.is_none() && r.md5.is_some()));
        assert!(verify(&g.manifest, &records[1..]).unwrap_err().contains("not carved"));
    }
}
