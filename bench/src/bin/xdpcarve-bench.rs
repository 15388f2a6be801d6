//! `xdpcarve-bench`: carving throughput of the sans-IO engine on one core, next to raw hashing.
//!
//! For each traffic mix it generates a capture in memory (xdpcarve-gen's generator), runs the
//! engine over it with no I/O, checks every file of the manifest came out with the right sha256,
//! and times it against MD5+SHA-1+SHA-256 (and BLAKE3, the default set) over the same decoded
//! bytes, in the same run. Best of `--runs`, pipeline and raw runs interleaved.
//!
//!     cargo run --release -p xdpcarve-bench --bin xdpcarve-bench
//!     cargo run --release -p xdpcarve-bench --bin xdpcarve-bench -- --mix http-64k --runs 9
//!     target/release/xdpcarve-bench --mix busy --json figures.jsonl
//!     valgrind --tool=callgrind --toggle-collect='*run_pipeline*' \
//!         target/release/xdpcarve-bench --callgrind          # repeatable instruction counts

#![forbid(unsafe_code)]

use anyhow::{bail, Context, Result};
use clap::Parser;
use std::time::{Duration, Instant};
use xdpcarve_bench::bench::{self, CLASSIC_HASHES};
use xdpcarve_bench::gen::{self, content::Kind, shape::ShapeOptions, HttpStyle, PlanOptions};
use xdpcarve_bench::pcap;
use xdpcarve_contract::{HashSet, LinkType};

#[derive(Parser, Debug)]
#[command(
    name = "xdpcarve-bench",
    about = "Carving throughput of the xdpcarve engine vs raw hashing (one core)"
)]
struct Args {
    /// Mixes to run (default: all): http-4k, http-64k, http-1m, http-mixed-1m, smtp-b64, http-16x1m,
    /// busy.
    #[arg(long, value_delimiter = ',')]
    mix: Vec<String>,
    /// Timed runs per measurement; the best is reported.
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Multiply the number of files of every mix (smaller for a quick look).
    #[arg(long, default_value_t = 1.0)]
    scale: f64,
    /// Small fixed input, pipeline run once: for valgrind --tool=callgrind.
    #[arg(long)]
    callgrind: bool,
    /// Only print each hash function's speed on this machine, over whole buffers and fed in
    /// segment-sized (1460-byte) pieces as a streaming carver must.
    #[arg(long)]
    hash_speeds: bool,
    /// Also write every figure as JSON lines to this file (one object per mix and hash set).
    #[arg(long, value_name = "FILE")]
    json: Option<std::path::PathBuf>,
}

fn sink<T>(t: T) {
    std::hint::black_box(t);
}

/// Speed of each hash alone, whole-buffer and in TCP-segment-sized updates.
fn hash_speeds(runs: usize) {
    use md5::Digest;
    let data = xdpcarve_bench::gen::content::Rng::new(1).bytes(32 << 20);
    fn time(runs: usize, mut f: impl FnMut()) -> Duration {
        (0..runs.max(1))
            .map(|_| bench::measure(&mut f).1)
            .min()
            .unwrap_or_default()
    }
    fn streamed<D: Digest>(data: &[u8], piece: usize) -> u8 {
        let mut h = D::new();
        for c in data.chunks(piece) {
            h.update(c);
        }
        h.finalize()[0]
    }
    let n = data.len() as u64;
    println!(
        "hash speeds over {} MB, best of {runs} (MB per CPU-second):",
        n / 1_000_000
    );
    println!("  {:<20} {:>10} {:>16}", "hash", "whole", "1460-B updates");
    let row = |name: &str, whole: Duration, pieces: Duration| {
        println!("  {name:<20} {:>10.0} {:>16.0}", mbps(n, whole), mbps(n, pieces));
    };
    row(
        "md5",
        time(runs, || sink(md5::Md5::digest(&data))),
        time(runs, || sink(streamed::<md5::Md5>(&data, 1460))),
    );
    row(
        "md5 (xdpcarve-hash)",
        time(runs, || sink(xdpcarve_hash::Md5::digest(&data))),
        time(runs, || {
            let mut h = xdpcarve_hash::Md5::new();
            for c in data.chunks(1460) {
                h.update(c);
            }
            sink(h.finalize());
        }),
    );
    // The same bytes as 16 files arriving a segment at a time, round robin, as 16 concurrent
    // downloads reach one worker: single-stream, and through the worker's SIMD lanes.
    let files = 16;
    let interleaved = |lanes: &xdpcarve_hash::Md5Lanes| {
        let part = data.len() / files;
        let mut hashers: Vec<_> = (0..files).map(|_| lanes.hasher()).collect();
        for at in (0..part).step_by(1460) {
            for (f, h) in hashers.iter_mut().enumerate() {
                let file = &data[f * part..(f + 1) * part];
                h.update(&file[at..(at + 1460).min(part)]);
            }
        }
        for h in hashers {
            sink(h.finalize());
        }
    };
    let single = time(runs, || interleaved(&xdpcarve_hash::Md5Lanes::single_stream()));
    print!(
        "  md5 of {files} files interleaved in 1460-B pieces: single-stream {:.0}",
        mbps(n, single)
    );
    for lanes in [xdpcarve_hash::Md5Lanes::avx2(), xdpcarve_hash::Md5Lanes::new()] {
        let Some(kernel) = lanes.kernel() else {
            print!(", no SIMD kernel here");
            break;
        };
        let simd = time(runs, || interleaved(&lanes));
        print!(
            ", {kernel} {:.0} ({:.2}x)",
            mbps(n, simd),
            single.as_secs_f64() / simd.as_secs_f64()
        );
    }
    println!();
    row(
        "sha1",
        time(runs, || sink(sha1::Sha1::digest(&data))),
        time(runs, || sink(streamed::<sha1::Sha1>(&data, 1460))),
    );
    row(
        "sha256",
        time(runs, || sink(sha2::Sha256::digest(&data))),
        time(runs, || sink(streamed::<sha2::Sha256>(&data, 1460))),
    );
    row(
        "blake3",
        time(runs, || sink(blake3::hash(&data))),
        time(runs, || {
            let mut h = blake3::Hasher::new();
            for c in data.chunks(1460) {
                h.update(c);
            }
            sink(h.finalize());
        }),
    );
    // MD5 and SHA-256 of one stream: one pass after the other, and stitched into one.
    let apart = time(runs, || {
        sink(xdpcarve_hash::Md5::digest(&data));
        sink(sha2::Sha256::digest(&data));
    });
    match xdpcarve_hash::Md5Sha256::new() {
        Some(_) => {
            let stitched = time(runs, || {
                let mut h = xdpcarve_hash::Md5Sha256::new().expect("SHA-NI");
                for c in data.chunks(1460) {
                    h.update(c);
                }
                sink(h.finalize());
            });
            println!(
                "  md5+sha256 of one stream: two passes {:.0}, stitched (1460-B updates) {:.0} ({:.2}x)",
                mbps(n, apart),
                mbps(n, stitched),
                apart.as_secs_f64() / stitched.as_secs_f64()
            );
        }
        None => println!(
            "  md5+sha256 of one stream: two passes {:.0}, no SHA-NI here to stitch",
            mbps(n, apart)
        ),
    }
    for alg in ["md5", "sha1", "sha256"] {
        match openssl_dgst(alg, &[&data], runs) {
            Ok(wall) => println!(
                "  {:<20} {:>10.0}   (openssl dgst, wall)",
                format!("{alg} (OpenSSL)"),
                mbps(n, wall)
            ),
            Err(e) => println!("  {alg} (OpenSSL): not measured ({e})"),
        }
    }
    // BLAKE3 only vectorises across 1 KiB chunks within one update call; segment-sized updates
    // hash one chunk at a time. Staging them into 16 KiB before updating gets the speed back.
    let staged = time(runs, || {
        let mut h = blake3::Hasher::new();
        let mut stage: Vec<u8> = Vec::with_capacity(16 << 10);
        for c in data.chunks(1460) {
            if stage.len() + c.len() > stage.capacity() {
                h.update(&stage);
                stage.clear();
            }
            stage.extend_from_slice(c);
        }
        h.update(&stage);
        sink(h.finalize());
    });
    println!(
        "  blake3 fed 1460-B pieces through a 16 KiB staging buffer: {:.0}",
        mbps(n, staged)
    );
}

struct Mix {
    name: &'static str,
    what: &'static str,
    opts: PlanOptions,
    /// How the sequential capture is turned into a busy link (nothing for most mixes).
    shape: ShapeOptions,
}

fn mixes(scale: f64) -> Vec<Mix> {
    let n = |x: usize| ((x as f64 * scale).round() as usize).max(1);
    let length = vec![HttpStyle::Length];
    let base = PlanOptions {
        seed: 7,
        ..PlanOptions::default()
    };
    vec![
        Mix {
            name: "http-4k",
            what: "HTTP GET, Content-Length, 4 KiB files, keep-alive",
            opts: PlanOptions {
                http: n(8192),
                sizes: vec![4 << 10],
                http_styles: length.clone(),
                ..base.clone()
            },
            shape: ShapeOptions::default(),
        },
        Mix {
            name: "http-64k",
            what: "HTTP GET, Content-Length, 64 KiB files",
            opts: PlanOptions {
                http: n(1536),
                sizes: vec![64 << 10],
                http_styles: length.clone(),
                ..base.clone()
            },
            shape: ShapeOptions::default(),
        },
        Mix {
            name: "http-1m",
            what: "HTTP GET, Content-Length, 1 MiB files",
            opts: PlanOptions {
                http: n(96),
                sizes: vec![1 << 20],
                http_styles: length,
                ..base.clone()
            },
            shape: ShapeOptions::default(),
        },
        Mix {
            name: "http-mixed-1m",
            what: "HTTP 1 MiB: Content-Length, chunked, gzip, multipart upload",
            opts: PlanOptions {
                http: n(96),
                sizes: vec![1 << 20],
                http_styles: vec![
                    HttpStyle::Length,
                    HttpStyle::Chunked,
                    HttpStyle::Gzip,
                    HttpStyle::Upload,
                ],
                ..base.clone()
            },
            shape: ShapeOptions::default(),
        },
        Mix {
            name: "smtp-b64",
            what: "SMTP, 2 base64 attachments per mail, 64 KiB and 1 MiB",
            opts: PlanOptions {
                smtp: n(64),
                sizes: vec![64 << 10, 1 << 20],
                kinds: vec![Kind::Exe, Kind::Pdf, Kind::Zip],
                attachments_per_mail: 2,
                ..base.clone()
            },
            shape: ShapeOptions::default(),
        },
        Mix {
            name: "http-16x1m",
            what: "HTTP GET, Content-Length, 1 MiB files, 16 downloads at once",
            opts: PlanOptions {
                http: n(128),
                sizes: vec![1 << 20],
                http_styles: vec![HttpStyle::Length],
                ..base.clone()
            },
            shape: ShapeOptions {
                concurrent: 16,
                ..ShapeOptions::default()
            },
        },
        Mix {
            name: "busy",
            what: "HTTP (all styles) and SMTP, 4 KiB to 1 MiB, 1000 connections at once, 1% of data \
                   segments late and 1% twice, TLS background",
            opts: PlanOptions {
                http: n(480),
                smtp: n(60),
                sizes: vec![4 << 10, 64 << 10, 256 << 10, 1 << 20],
                ..base
            },
            shape: ShapeOptions {
                concurrent: 1000,
                reorder_permille: 10,
                retransmit_permille: 10,
                background: n(500) as u64,
            },
        },
    ]
}

fn hash_set_name(h: HashSet) -> &'static str {
    if h == HashSet::default() {
        "md5+sha1+sha256+blake3"
    } else if h == CLASSIC_HASHES {
        "md5+sha1+sha256"
    } else if h == MD5_ONLY {
        "md5"
    } else {
        "custom"
    }
}

fn mbps(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / 1e6 / d.as_secs_f64()
}

/// One line of `--json`: a mix's figures for one hash set (or none).
#[derive(serde::Serialize)]
struct Figure<'a> {
    mix: &'a str,
    hashes: &'a str,
    files: usize,
    content_bytes: u64,
    packets: usize,
    pipeline_mb_per_cpu_s: f64,
    /// Absent for the carving-only run.
    raw_hash_mb_per_cpu_s: Option<f64>,
    pipeline_over_raw: Option<f64>,
}

fn run_mix(mix: &Mix, runs: usize, figures: &mut Vec<String>) -> Result<()> {
    let t0 = Instant::now();
    let plan = gen::plan(&mix.opts);
    let (generated, buf) = gen::write(&plan, mix.opts.seed, Vec::new(), true)?;
    let buf = if mix.shape.is_empty() {
        buf
    } else {
        gen::shape::shape(&buf, &mix.shape, mix.opts.seed, Vec::new())?.1
    };
    let (lt, frames) = pcap::parse(&buf).map_err(anyhow::Error::msg)?;
    let link = LinkType::from_linktype(lt).context("link type")?;
    // Raw hashing covers the files themselves; a multipart envelope's bytes are its parts' bytes.
    let contents: Vec<&[u8]> = generated
        .manifest
        .files
        .iter()
        .zip(&generated.contents)
        .filter(|(f, _)| !f.container)
        .map(|(_, c)| c.as_slice())
        .collect();
    let content_bytes: u64 = contents.iter().map(|c| c.len() as u64).sum();
    let wire_bytes: u64 = frames.iter().map(|f| f.data.len() as u64).sum();
    println!(
        "\n{} — {}\n  {} files, {:.1} MB content, {} packets, {:.1} MB on the wire (generated in {:.1} s)",
        mix.name,
        mix.what,
        contents.len(),
        content_bytes as f64 / 1e6,
        frames.len(),
        wire_bytes as f64 / 1e6,
        t0.elapsed().as_secs_f64()
    );
    println!(
        "  {:<24} {:>14} {:>14} {:>12} {:>12} {:>10}",
        "hashes", "pipeline MB/s", "raw hash MB/s", "pipeline/raw", "Mpackets/s", "wall MB/s"
    );
    let mut md5_cpu = Duration::MAX;
    for hashes in [HashSet::default(), CLASSIC_HASHES, MD5_ONLY] {
        let (mut pipe_cpu, mut pipe_wall, mut raw_cpu) = (Duration::MAX, Duration::MAX, Duration::MAX);
        for run in 0..runs.max(1) {
            let (records, cpu, wall) = bench::measure(|| bench::run_pipeline(&frames, link, hashes));
            pipe_cpu = pipe_cpu.min(cpu);
            pipe_wall = pipe_wall.min(wall);
            // The manifest names files by SHA-256.
            if run == 0 && hashes.sha256 {
                if let Err(e) = bench::verify(&generated.manifest, &records) {
                    bail!("{}: carved files differ from the manifest:\n{e}", mix.name);
                }
            }
            drop(records);
            let (_, cpu, _) = bench::measure(|| bench::raw_hash(&contents, hashes));
            raw_cpu = raw_cpu.min(cpu);
        }
        if hashes == MD5_ONLY {
            md5_cpu = pipe_cpu;
        }
        figures.push(serde_json::to_string(&Figure {
            mix: mix.name,
            hashes: hash_set_name(hashes),
            files: contents.len(),
            content_bytes,
            packets: frames.len(),
            pipeline_mb_per_cpu_s: mbps(content_bytes, pipe_cpu),
            raw_hash_mb_per_cpu_s: Some(mbps(content_bytes, raw_cpu)),
            pipeline_over_raw: Some(pipe_cpu.as_secs_f64() / raw_cpu.as_secs_f64()),
        })?);
        println!(
            "  {:<24} {:>14.1} {:>14.1} {:>11.2}x {:>12.2} {:>10.1}",
            hash_set_name(hashes),
            mbps(content_bytes, pipe_cpu),
            mbps(content_bytes, raw_cpu),
            pipe_cpu.as_secs_f64() / raw_cpu.as_secs_f64(),
            frames.len() as f64 / 1e6 / pipe_cpu.as_secs_f64(),
            mbps(content_bytes, pipe_wall),
        );
    }
    // Everything but hashing: reassembly, parsing, decoding, sniffing, records. Output cannot be
    // checked by sha256 here, so check the count and sizes.
    let mut none_cpu = Duration::MAX;
    for _ in 0..runs.max(1) {
        let (records, cpu, _) = bench::measure(|| bench::run_pipeline(&frames, link, HashSet::NONE));
        none_cpu = none_cpu.min(cpu);
        let mut got: Vec<u64> = records.iter().map(|r| r.size).collect();
        let mut want: Vec<u64> = generated.manifest.files.iter().map(|f| f.size).collect();
        got.sort_unstable();
        want.sort_unstable();
        if got != want {
            bail!(
                "{}: without hashes the carved file sizes differ from the manifest",
                mix.name
            );
        }
    }
    figures.push(serde_json::to_string(&Figure {
        mix: mix.name,
        hashes: "none",
        files: contents.len(),
        content_bytes,
        packets: frames.len(),
        pipeline_mb_per_cpu_s: mbps(content_bytes, none_cpu),
        raw_hash_mb_per_cpu_s: None,
        pipeline_over_raw: None,
    })?);
    println!(
        "  {:<24} {:>14.1} {:>14} {:>12} {:>12.2}",
        "none (carving only)",
        mbps(content_bytes, none_cpu),
        "-",
        "-",
        frames.len() as f64 / 1e6 / none_cpu.as_secs_f64(),
    );
    match openssl_dgst("md5", &contents, runs) {
        Ok(wall) => println!(
            "  openssl md5 (one stream, the same bytes, wall): {:.1} MB/s; the md5 pipeline is {:.2}x that",
            mbps(content_bytes, wall),
            wall.as_secs_f64() / md5_cpu.as_secs_f64()
        ),
        Err(e) => println!("  openssl md5: not measured ({e})"),
    }
    println!(
        "  (MB/s of file content per CPU-second of this thread; pipeline/raw = pipeline CPU time ÷ raw hashing CPU \
         time of the same decoded bytes, 1.00x = free carving; wall MB/s = best wall-clock pipeline run)"
    );
    Ok(())
}

/// MD5 only.
const MD5_ONLY: HashSet = HashSet {
    md5: true,
    ..HashSet::NONE
};

/// Wall time of `openssl dgst -<alg>` over the files (best of `runs`), less its start-up (the
/// same command over an empty file): OpenSSL's single-stream hash of the same bytes, in the same
/// run.
fn openssl_dgst(alg: &str, contents: &[&[u8]], runs: usize) -> Result<Duration> {
    let dir = std::env::temp_dir().join(format!("xdpcarve-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let (files, empty) = (dir.join("contents"), dir.join("empty"));
    std::fs::write(&files, contents.concat())?;
    std::fs::write(&empty, b"")?;
    let time = |path: &std::path::Path| -> Result<Duration> {
        let mut best = Duration::MAX;
        for _ in 0..runs.max(1) {
            let t = Instant::now();
            let out = std::process::Command::new("openssl")
                .arg("dgst")
                .arg(format!("-{alg}"))
                .arg(path)
                .output()
                .context("running openssl (apt install openssl)")?;
            if !out.status.success() {
                bail!(
                    "openssl dgst -md5 failed: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                );
            }
            best = best.min(t.elapsed());
        }
        Ok(best)
    };
    let result = (|| Ok(time(&files)?.saturating_sub(time(&empty)?)))();
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn callgrind() -> Result<()> {
    // Small and fixed: 16 × 64 KiB HTTP downloads (mixed encodings) and 4 mails, ~1.5 MB.
    let opts = PlanOptions {
        http: 16,
        smtp: 4,
        sizes: vec![64 << 10],
        seed: 3,
        ..PlanOptions::default()
    };
    let (generated, buf) = gen::write(&gen::plan(&opts), opts.seed, Vec::new(), false)?;
    let (lt, frames) = pcap::parse(&buf).map_err(anyhow::Error::msg)?;
    let link = LinkType::from_linktype(lt).context("link type")?;
    let records = bench::run_pipeline(&frames, link, HashSet::default());
    bench::verify(&generated.manifest, &records).map_err(anyhow::Error::msg)?;
    let bytes: u64 = generated
        .manifest
        .files
        .iter()
        .filter(|f| !f.container)
        .map(|f| f.size)
        .sum();
    println!(
        "callgrind input: {} packets, {} files, {} content bytes; all carved correctly",
        frames.len(),
        records.len(),
        bytes
    );
    Ok(())
}

fn main() -> Result<()> {
    let args = Args::parse();
    if args.callgrind {
        return callgrind();
    }
    if args.hash_speeds {
        hash_speeds(args.runs);
        return Ok(());
    }
    let all = mixes(args.scale);
    let chosen: Vec<&Mix> = if args.mix.is_empty() {
        all.iter().collect()
    } else {
        let mut v = Vec::new();
        for name in &args.mix {
            match all.iter().find(|m| m.name == name) {
                Some(m) => v.push(m),
                None => bail!(
                    "unknown mix `{name}`: choose from {}",
                    all.iter().map(|m| m.name).collect::<Vec<_>>().join(", ")
                ),
            }
        }
        v
    };
    println!(
        "xdpcarve-bench: one engine on one core, capture in memory, best of {} runs (thread CPU time)",
        args.runs
    );
    let mut figures = Vec::new();
    for mix in chosen {
        run_mix(mix, args.runs, &mut figures)?;
    }
    if let Some(path) = &args.json {
        let mut text = figures.join("\n");
        text.push('\n');
        std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}
