//! Fleet benchmark against a running Redis: records/s through the event stream and the round
//! trip of a dedup claim, each next to a baseline measured in the same run over a plain
//! connection to the same server.
//!
//!     bench/fleet/run.sh                   # starts a redis-server of its own, runs this, stops it
//!     cargo run --release -p xdpcarve-egress --example fleet_bench -- URL [RECORDS] [CLAIMS]
//!
//! 1. Stream: RECORDS (default 200000) files-log lines of ~600 bytes through `Fleet::add_to_stream`
//!    (batching, pipelined `XADD MAXLEN ~`, sightings counted per batch), timed until Redis has
//!    taken the last one; baseline: the same lines `XADD`ed in pipelines of 256 on a plain
//!    multiplexed connection.
//! 2. Claim latency: CLAIMS (default 20000) claims one after another (the claim script on three
//!    keys), median and p99; baseline: `PING` round trips on the plain connection.
//! 3. Claim throughput: the same number with 64 in flight (what a burst of files costs);
//!    baseline: `SET <claim key> <sensor> NX PX <lease>` alone, 64 in flight.
//!
//! It writes keys under `xdpcarve:{<random>...}` and the stream `xdpcarve:bench:<pid>`, and
//! deletes the stream at the end.

use std::time::{Duration, Instant};

use xdpcarve_egress::config::FleetConfig;
use xdpcarve_egress::fleet::{self, stream::Kind, Claim, Fleet};
use xdpcarve_egress::FsyncPolicy;

const IN_FLIGHT: usize = 64;

fn line(i: u64) -> String {
    let hex = |seed: u64, n: usize| -> String {
        (0..n)
            .map(|k| {
                let x = seed
                    .wrapping_mul(0x9e37_79b9_7f4a_7c15)
                    .wrapping_add(k as u64 * 0x632b_e5ab);
                char::from_digit(((x >> 13) % 16) as u32, 16).unwrap()
            })
            .collect()
    };
    format!(
        concat!(
            r#"{{"ts":"2026-12-03T12:00:{:02}.{:06}Z","sensor":"bench","uid":"F{}","proto":"http","#,
            r#""id.orig_h":"10.1.{}.{}","id.orig_p":{},"id.resp_h":"192.0.2.80","id.resp_p":80,"#,
            r#""fuid":"F{}","source":"HTTP","direction":"download","filename":"setup-{}.exe","#,
            r#""mime_type":"application/x-dosexec","size":{},"complete":true,"missing_bytes":0,"#,
            r#""md5":"{}","sha1":"{}","sha256":"{}","blake3":"{}"}}"#
        ),
        i % 60,
        i % 1_000_000,
        hex(i, 17),
        (i >> 8) % 256,
        i % 256,
        1024 + i % 60000,
        hex(i + 1, 17),
        i,
        4096 + i,
        hex(i + 2, 32),
        hex(i + 3, 40),
        hex(i + 4, 64),
        hex(i + 5, 64)
    )
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

// One thread, as the egress runs.
#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(url) = args.first().cloned() else {
        eprintln!("usage: fleet_bench URL [RECORDS] [CLAIMS]   (bench/fleet.sh starts a Redis for it)");
        std::process::exit(2);
    };
    let records: u64 = args.get(1).map(|s| s.parse().expect("RECORDS")).unwrap_or(200_000);
    let claims: usize = args.get(2).map(|s| s.parse().expect("CLAIMS")).unwrap_or(20_000);
    let pid = std::process::id();
    let stream_name = format!("xdpcarve:bench:{pid}");

    let plain = redis::Client::open(url.as_str()).expect("URL");
    let mut raw = plain.get_multiplexed_async_connection().await.unwrap_or_else(|e| {
        eprintln!("fleet_bench: cannot connect to {url}: {e}");
        std::process::exit(1);
    });

    let cfg = FleetConfig {
        redis: Some(url.clone()),
        stream: stream_name.clone(),
        stream_maxlen: records * 2,
        memory_records: records as usize + 1,
        timeout: Duration::from_secs(2),
        ..FleetConfig::default()
    };
    let registry = prometheus::Registry::new();
    let fleet = Fleet::open(
        &cfg,
        "bench",
        Duration::from_secs(3600),
        true,
        None,
        0,
        FsyncPolicy::Group,
        &registry,
    )
    .expect("fleet");
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let tasks = fleet.spawn(stop_rx);
    let started = Instant::now();
    while !fleet.is_up() {
        assert!(started.elapsed() < Duration::from_secs(5), "fleet link not up");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let lines: Vec<String> = (0..records).map(line).collect();
    let avg_len = lines.iter().map(String::len).sum::<usize>() / lines.len().max(1);

    // 1. Stream. Baseline first: plain pipelined XADD, same lines, same batch size.
    let raw_stream = format!("{stream_name}:raw");
    let t = Instant::now();
    for chunk in lines.chunks(256) {
        let mut p = redis::pipe();
        for l in chunk {
            p.cmd("XADD")
                .arg(&raw_stream)
                .arg("MAXLEN")
                .arg("~")
                .arg(records * 2)
                .arg("*")
                .arg("sensor")
                .arg("bench")
                .arg("kind")
                .arg("file")
                .arg("record")
                .arg(l)
                .ignore();
        }
        let () = p.query_async(&mut raw).await.expect("XADD");
    }
    let raw_secs = t.elapsed().as_secs_f64();
    let t = Instant::now();
    for chunk in lines.chunks(1024) {
        for l in chunk {
            fleet.add_to_stream(Kind::File, l);
        }
        fleet.flush_stream(false);
        tokio::task::yield_now().await;
    }
    fleet.flush_stream(true);
    while fleet.stream_added() < records {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let fleet_secs = t.elapsed().as_secs_f64();
    let xlen: u64 = redis::cmd("XLEN")
        .arg(&stream_name)
        .query_async(&mut raw)
        .await
        .unwrap();
    assert_eq!(xlen, records, "every record in the stream");
    println!("stream: {records} records of {avg_len} B");
    println!(
        "  plain pipelined XADD (baseline): {:>9.0} records/s",
        records as f64 / raw_secs
    );
    println!(
        "  xdpcarve fleet stream:           {:>9.0} records/s  ({:.2} x baseline; sightings counted too: one script per record)",
        records as f64 / fleet_secs,
        raw_secs / fleet_secs
    );

    // 2. Claim latency, one at a time; baseline PING.
    let mut ping = Vec::with_capacity(claims);
    for _ in 0..claims {
        let t = Instant::now();
        let () = redis::cmd("PING").query_async(&mut raw).await.unwrap();
        ping.push(t.elapsed());
    }
    let mut lat = Vec::with_capacity(claims);
    for i in 0..claims {
        let sha = format!("{:064x}", (pid as u128) << 64 | i as u128);
        let t = Instant::now();
        let c = fleet.claim(&sha, "2026-12-03T12:00:00Z").await;
        lat.push(t.elapsed());
        assert!(matches!(c, Claim::Claimed(_)), "{c:?}");
    }
    ping.sort();
    lat.sort();
    println!("claim round trip ({claims} one after another):");
    println!(
        "  PING (baseline):     median {:>6.1} us  p99 {:>6.1} us",
        us(percentile(&ping, 0.5)),
        us(percentile(&ping, 0.99))
    );
    println!(
        "  claim (Lua, 3 keys): median {:>6.1} us  p99 {:>6.1} us  ({:.2} x PING median)",
        us(percentile(&lat, 0.5)),
        us(percentile(&lat, 0.99)),
        us(percentile(&lat, 0.5)) / us(percentile(&ping, 0.5))
    );

    // 3. Claim throughput, IN_FLIGHT at once; baseline the bare SET NX PX.
    let base = claims as u128 * 2;
    let t = Instant::now();
    run_in_flight(claims, |i| {
        let mut c = raw.clone();
        async move {
            let key = fleet::claim_key(&format!("{:064x}", (pid as u128) << 64 | (base + i as u128)));
            let _: Option<String> = redis::cmd("SET")
                .arg(key)
                .arg("bench")
                .arg("NX")
                .arg("PX")
                .arg(30_000)
                .query_async(&mut c)
                .await
                .unwrap();
        }
    })
    .await;
    let set_secs = t.elapsed().as_secs_f64();
    let base = claims as u128 * 4;
    let t = Instant::now();
    let f = &fleet;
    run_in_flight(claims, |i| async move {
        let sha = format!("{:064x}", (pid as u128) << 64 | (base + i as u128));
        let c = f.claim(&sha, "2026-12-03T12:00:00Z").await;
        assert!(matches!(c, Claim::Claimed(_)), "{c:?}");
    })
    .await;
    let claim_secs = t.elapsed().as_secs_f64();
    println!("claims with {IN_FLIGHT} in flight:");
    println!("  SET NX PX (baseline): {:>9.0} /s", claims as f64 / set_secs);
    println!(
        "  claim:                {:>9.0} /s  ({:.2} x baseline)",
        claims as f64 / claim_secs,
        set_secs / claim_secs
    );

    let _ = stop_tx.send(true);
    for t in tasks {
        let _ = t.await;
    }
    let _: () = redis::cmd("DEL")
        .arg(&stream_name)
        .arg(&raw_stream)
        .query_async(&mut raw)
        .await
        .unwrap();
}

/// Runs `n` calls of `f(i)`, at most IN_FLIGHT at once.
async fn run_in_flight<F, Fut>(n: usize, f: F)
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    use futures_util::stream::StreamExt;
    futures_util::stream::iter(0..n)
        .map(f)
        .buffer_unordered(IN_FLIGHT)
        .collect::<()>()
        .await;
}
