//! Egress benchmark: synthetic file events from worker threads through the whole egress path
//! (files log, policy, dedup, batching, HTTP delivery) into a real HTTP receiver on loopback.
//!
//!     cargo run --release -p xdpcarve-egress --example egress_bench -- [EVENTS] [PACED_RATE]
//!
//! Phase 1 (throughput): EVENTS (default 100000) events from 2 workers in blocking mode, timed
//! from the first send to the last hash acknowledged by the receiver: events/s, requests/s.
//! Phase 2 (worker side): the same events in live mode (non-blocking push, drop when full),
//! paced at PACED_RATE events/s per worker (default 50000): send() latency and drops.
//! Peak RSS of the process at the end (the receiver runs in the same process, on its own thread).

use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use xdpcarve_contract::FileRecord;
use xdpcarve_egress::config::EgressConfig;
use xdpcarve_egress::{Egress, MetricsHub, QueueMode};

#[derive(Default)]
struct Received {
    requests: AtomicU64,
    items: AtomicU64,
    bytes: AtomicU64,
}

/// A real HTTP/1.1 server on its own thread and runtime: counts requests and items.
fn start_receiver(rx: Arc<Received>) -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                let rx = rx.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                        let rx = rx.clone();
                        async move {
                            let body = req
                                .into_body()
                                .collect()
                                .await
                                .map(|b| b.to_bytes())
                                .unwrap_or_default();
                            let items = memchr_count(&body, b"\"fuid\"");
                            rx.items.fetch_add(items, Ordering::Relaxed);
                            rx.bytes.fetch_add(body.len() as u64, Ordering::Relaxed);
                            rx.requests.fetch_add(1, Ordering::Relaxed);
                            Ok::<_, Infallible>(Response::new(Full::new(bytes::Bytes::from_static(b"{}"))))
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
    });
    port
}

fn memchr_count(hay: &[u8], needle: &[u8]) -> u64 {
    hay.windows(needle.len()).filter(|w| *w == needle).count() as u64
}

fn record(n: u64, run: u64) -> FileRecord {
    // One file in five is a PDF (submitted); one PDF in ten repeats an earlier hash (deduplicated).
    let pdf = n % 5 == 0;
    let id = if pdf && n % 50 == 0 && n > 0 { n - 5 } else { n };
    let line = format!(
        r#"{{"ts":"2024-01-01T00:00:00.000000Z","fuid":"F{n}","uid":"C{n}","proto":"http","orig_h":"10.0.{}.{}","orig_p":{},
        "resp_h":"192.0.2.7","resp_p":80,"direction":"download","is_orig":false,"filename":"file{n}.bin",
        "mime_type":"{}","declared_mime_type":"application/octet-stream","extension_mime_type":null,"size":{},
        "total_bytes":null,"missing_bytes":0,"overflow_bytes":0,"truncated":false,"partial":false,"depth":0,
        "duration":0.25,"md5":"{:016x}{:016x}","sha1":"{:040x}","sha256":"{:064x}","blake3":"{:064x}"}}"#,
        (n >> 8) & 255,
        n & 255,
        1024 + n % 60000,
        if pdf { "application/pdf" } else { "text/html" },
        1000 + n % 100_000,
        run,
        id,
        id,
        id,
        id
    );
    serde_json::from_str(&line).unwrap()
}

fn config(dir: &std::path::Path, port: u16, tag: &str) -> EgressConfig {
    let mut cfg = EgressConfig {
        sensor_name: "bench".into(),
        ..Default::default()
    };
    cfg.files_log.path = Some(dir.join(format!("files-{tag}.log")).to_string_lossy().into_owned());
    cfg.webhook.url = Some(format!("http://127.0.0.1:{port}/submit"));
    cfg.webhook.batch_max_items = 100;
    cfg.webhook.batch_max_delay = Duration::from_millis(200);
    cfg.webhook.drain_timeout = Duration::from_secs(120);
    cfg.spill.dir = Some(dir.join(format!("spill-{tag}")));
    if std::env::var_os("BENCH_NOFSYNC").is_some() {
        cfg.spill.fsync = xdpcarve_egress::FsyncPolicy::Never;
    }
    cfg.metrics.addr = None;
    cfg
}

fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let events: u64 = args.next().map(|s| s.parse().expect("EVENTS")).unwrap_or(100_000);
    let paced_rate: u64 = args.next().map(|s| s.parse().expect("PACED_RATE")).unwrap_or(50_000);
    let workers = 2u64;
    let dir = tempfile::tempdir().unwrap();
    let rx = Arc::new(Received::default());
    let port = start_receiver(rx.clone());

    // Phase 1: throughput.
    let batches: Vec<Vec<FileRecord>> = (0..workers)
        .map(|w| (0..events).filter(|n| n % workers == w).map(|n| record(n, 1)).collect())
        .collect();
    let rss_before = status_kib("VmRSS:");
    let hub = Arc::new(MetricsHub::new("bench"));
    let mut egress = Egress::start(
        config(dir.path(), port, "1"),
        hub.clone(),
        workers as usize,
        QueueMode::Block,
    )
    .unwrap();
    let senders = egress.take_senders();
    let started = Instant::now();
    let threads: Vec<_> = senders
        .into_iter()
        .zip(batches)
        .map(|(mut s, recs)| {
            std::thread::spawn(move || {
                for r in recs {
                    s.send(r);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let summary = egress.finish().unwrap();
    let elapsed = started.elapsed().as_secs_f64();
    egress.join();
    let requests = rx.requests.load(Ordering::Relaxed);
    assert_eq!(
        rx.items.load(Ordering::Relaxed),
        summary.sent,
        "receiver and sender disagree"
    );
    assert_eq!(summary.files_logged, events);
    println!("egress throughput: {events} file events from {workers} workers (blocking mode), files log + policy + dedup + batches of 100 over HTTP");
    println!(
        "  {:.0} events/s; {} submitted ({} deduped) in {} requests = {:.0} requests/s, {:.0} hashes/s acknowledged; {:.2} s total",
        events as f64 / elapsed,
        summary.submitted,
        summary.deduped,
        requests,
        requests as f64 / elapsed,
        summary.sent as f64 / elapsed,
        elapsed
    );
    println!("  {summary}");
    let hwm = status_kib("VmHWM:");
    println!(
        "  memory: peak RSS {:.1} MiB, of which {:.1} MiB held the pre-generated events before egress started (egress + receiver: {:.1} MiB)",
        hwm as f64 / 1024.0,
        rss_before as f64 / 1024.0,
        hwm.saturating_sub(rss_before) as f64 / 1024.0
    );

    // Phase 2: live mode, paced producers: how long does a worker spend handing a record over?
    let hub = Arc::new(MetricsHub::new("bench"));
    let mut egress = Egress::start(
        config(dir.path(), port, "2"),
        hub.clone(),
        workers as usize,
        QueueMode::DropWhenFull,
    )
    .unwrap();
    let senders = egress.take_senders();
    let threads: Vec<_> = senders
        .into_iter()
        .enumerate()
        .map(|(w, mut s)| {
            let recs: Vec<FileRecord> = (0..events)
                .filter(|n| n % workers == w as u64)
                .map(|n| record(n, 2))
                .collect();
            std::thread::spawn(move || {
                let mut lat = Vec::with_capacity(recs.len());
                let interval = Duration::from_secs_f64(1.0 / paced_rate as f64);
                let start = Instant::now();
                for (i, r) in recs.into_iter().enumerate() {
                    // Paced in bursts of 32 with sleeps between, as a worker between packets would.
                    if i % 32 == 0 {
                        let due = start + interval * i as u32;
                        let now = Instant::now();
                        if due > now {
                            std::thread::sleep(due - now);
                        }
                    }
                    let t = Instant::now();
                    s.send(r);
                    lat.push(t.elapsed().as_nanos() as u64);
                }
                lat
            })
        })
        .collect();
    let mut lat: Vec<u64> = threads.into_iter().flat_map(|t| t.join().unwrap()).collect();
    let summary = egress.finish().unwrap();
    egress.join();
    lat.sort_unstable();
    let pct = |p: f64| lat[((lat.len() as f64 - 1.0) * p) as usize];
    println!(
        "worker side (live mode, non-blocking push, {workers} workers paced at {paced_rate} events/s each): send() p50 {} ns, p99 {} ns, p99.9 {} ns, max {} ns; queue-full drops {}",
        pct(0.5),
        pct(0.99),
        pct(0.999),
        lat.last().unwrap(),
        summary.queue_full
    );
}
