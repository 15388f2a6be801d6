//! End-to-end test target `burst_loss`: offline burst loss costs only the bytes lost.
//!
//! A real bulk capture is made first: `tests/support/http_server.py` in one namespace serves 40
//! pseudo-random files (every fourth a PE executable; 100 KiB - 3 MiB, ~50 MiB in all; some as `/chunked/`, some as `/gzip/`,
//! some as `/named/`), and one curl invocation in another namespace fetches them one after another
//! over ONE keep-alive connection (checked: one SYN in the capture, curl's `num_connects` sums to
//! 1), while the Lab's tcpdump captures the link (offloads off: wire-sized segments). The expected
//! hash of each response is the sha256 of the served file; `xdpcarve -r` of the clean capture
//! must carve every one exact (the baseline).
//!
//! Then captures with loss are cut from it: three with 6 bursts each of 300-1500 consecutive
//! packets at seeded positions, and one with 2.5 % of the packets lost one at a time at random
//! (the rate of the bursts on its 315 MB capture). From the clean capture the test knows the layout of both byte streams (each request's
//! and each response's byte range, found by reassembling the clean streams and walking the
//! `HTTP/1.1` heads, Content-Length and chunked bodies) and which stream bytes every dropped
//! packet carried (bytes another surviving packet also carried are not lost). A response is
//! *untouched* when none of its bytes and none of its request's bytes were lost (a lost request
//! costs the pairing, not the response's bytes). For every capture it asserts:
//!
//! - every untouched response has a record with its `http_uri` and the exact sha256 and size;
//! - every response of which any byte survived has a record (found by `http_uri`; else by its
//!   sha256; else the next record no response claimed, in files-log order);
//! - a record of a response that lost bytes says so (`missing_bytes` > 0 or `truncated`) unless
//!   it is exact anyway (only head bytes lost);
//! - no record claims a complete hash (sha256 set, no missing bytes, not truncated) of content
//!   that was never served.
//!
//! The table it prints (`-- --nocapture`) gives the figures per capture.
//!
//! Capture for the benchmarks:
//!
//! - With `XDPCARVE_BULK_OUT=DIR` this test also keeps its clean capture and manifest there, as
//!   `DIR/bulk-40.pcap` and `DIR/bulk-40.manifest.json` (a JSON list of `{uri, sha256, size}`,
//!   in request order; sha256 and size of the decoded file).
//! - The ignored test `make_bulk_capture_for_bench` makes a big one the same way:
//!   `XDPCARVE_BULK_OUT=DIR [XDPCARVE_BULK_FILES=131] cargo test --release -p xdpcarve --test
//!   burst_loss -- --ignored make_bulk_capture_for_bench --nocapture` writes `DIR/bulk-N.pcap`
//!   and `DIR/bulk-N.manifest.json`: N files (default 131) of 100 KiB - 4.5 MiB, ~2.4 MB on
//!   average, ~315 MB in all, checked with `xdpcarve -r` like the baseline here.
//!
//! Needs root, iproute2 (ip, tc), tcpdump, python3 and curl (tests/setup.sh installs them). Without them
//! the tests print SKIPPED; with `CI` set they fail instead.

mod support;

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::content::{pe_like, pseudo_random};
use support::live::carve_offline;
use support::netns::{require_root_or_skip, run_with_timeout, Lab, TempDir};
use support::pcap::{Pcap, SYN};
use support::{sha256_hex, support_script};

const HTTP_PORT: u16 = 80;
/// The server's link is shaped to this rate (tc tbf; tcpdump sees egress after the qdisc), so
/// tcpdump keeps up on a loaded machine: a capture that dropped packets is no baseline. (curl's
/// --limit-rate does not pace a keep-alive download of files that fit in the socket buffers.)
const RATE: &str = "400mbit";

/// xorshift64*: deterministic draws, so a failure reproduces with the same files and losses.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in 0..n.
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// One served file and how it is fetched.
#[derive(Clone, Debug)]
struct Served {
    uri: String,
    sha256: String,
    size: u64,
}

/// Writes `n` files into `www` (pseudo-random data, every fourth a PE executable) and returns the URIs to fetch them by: every 8th
/// through `/named/`, `/chunked/` and `/gzip/`, the rest through `/files/`. Sizes are
/// `min + (max - min) * u^skew` with u stratified (one draw in each n-th of [0, 1), in shuffled
/// order), so the total is close to its mean, `n * (min + (max - min) / (1 + skew))`.
fn serve_plan(www: &Path, n: usize, seed: u64, min: u64, max: u64, skew: f64) -> Vec<Served> {
    std::fs::create_dir_all(www).expect("mkdir www");
    let mut rng = Rng::new(seed);
    let mut strata: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        strata.swap(i, rng.below(i as u64 + 1) as usize);
    }
    (0..n)
        .map(|i| {
            let u = (strata[i] as f64 + rng.unit()) / n as f64;
            let size = min + ((max - min) as f64 * u.powf(skew)) as u64;
            // Every fourth a Windows executable, which the default policy wants (shedding keeps
            // its MD5 and SHA-256): the rest random data, which it does not.
            let exe = i % 4 == 0;
            let data = if exe {
                pe_like(seed * 1_000_003 + i as u64, size as usize)
            } else {
                pseudo_random(seed * 1_000_003 + i as u64, size as usize)
            };
            let name = format!("f{i:03}.{}", if exe { "exe" } else { "bin" });
            std::fs::write(www.join(&name), &data).expect("write served file");
            let kind = match i % 8 {
                1 => "named",
                3 => "chunked",
                6 => "gzip",
                _ => "files",
            };
            Served {
                uri: format!("/{kind}/{name}"),
                sha256: sha256_hex(&data),
                size,
            }
        })
        .collect()
}

/// Serves `served` from `www` and fetches them all with one curl over one keep-alive connection
/// while tcpdump captures the link into `pcap`. Checks curl got every file intact and used one
/// connection. Returns the seconds the transfer took.
fn capture_bulk(tmp: &TempDir, www: &Path, served: &[Served], pcap: &Path) -> f64 {
    let mut lab = Lab::new();
    let client_ns = lab.add_ns();
    let server_ns = lab.add_ns();
    let link = lab.link(Some(&client_ns), Some(&server_ns), true);
    let server_ip = link.b.addr.clone().expect("server address");
    let shape = ["tc", "qdisc", "add", "dev", &link.b.ifname, "root", "tbf", "rate", RATE];
    lab.exec_ok(
        Some(&server_ns),
        &[&shape[..], &["burst", "256kb", "latency", "200ms"]].concat(),
    );
    let cap = lab.tcpdump(Some(&server_ns), &link.b.ifname, pcap);
    let srv = lab.spawn(
        "http_server",
        Some(&server_ns),
        &[
            "python3",
            &support_script("http_server.py"),
            &server_ip,
            &HTTP_PORT.to_string(),
            www.to_str().unwrap(),
        ],
    );
    lab.bg(srv).wait_for_line("READY", false, Duration::from_secs(15));

    let got = tmp.join("got");
    std::fs::create_dir_all(&got).expect("mkdir got");
    let outs: Vec<String> = (0..served.len())
        .map(|i| got.join(format!("{i:03}")).to_str().unwrap().to_string())
        .collect();
    let urls: Vec<String> = served
        .iter()
        .map(|s| format!("http://{server_ip}:{HTTP_PORT}{}", s.uri))
        .collect();
    let mut argv: Vec<&str> = vec![
        "curl",
        "-sS",
        "--fail",
        "--noproxy",
        "*",
        // Sent on every request; the server gzips only /gzip/ and curl decodes it.
        "--compressed",
        "--max-time",
        "300",
        "-w",
        "%{num_connects} %{http_code}\\n",
    ];
    for (o, u) in outs.iter().zip(&urls) {
        argv.extend_from_slice(&["-o", o, u]);
    }
    let total: u64 = served.iter().map(|s| s.size).sum();
    let timeout = Duration::from_secs(60 + total / 2_000_000);
    let t0 = Instant::now();
    let out = run_with_timeout(&mut lab.command(Some(&client_ns), &argv), timeout).unwrap_or_else(|e| panic!("{e}"));
    let secs = t0.elapsed().as_secs_f64();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "curl failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    lab.stop_tcpdump(cap, pcap);
    drop(lab);

    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), served.len(), "one write-out line per transfer:\n{stdout}");
    let connects: u64 = lines
        .iter()
        .map(|l| {
            l.split_whitespace()
                .next()
                .and_then(|v| v.parse::<u64>().ok())
                .expect("num_connects")
        })
        .sum();
    assert_eq!(
        connects, 1,
        "curl must reuse one connection for every transfer:\n{stdout}"
    );
    assert!(
        lines.iter().all(|l| l.ends_with(" 200")),
        "every transfer 200:\n{stdout}"
    );
    for (s, o) in served.iter().zip(&outs) {
        let data = std::fs::read(o).expect("curl output");
        assert_eq!(sha256_hex(&data), s.sha256, "curl got {} intact", s.uri);
    }
    secs
}

/// The manifest a benchmark reads next to the capture: `[{uri, sha256, size}, ...]`.
fn write_manifest(path: &Path, served: &[Served]) {
    let list: Vec<Value> = served
        .iter()
        .map(|s| serde_json::json!({"uri": s.uri, "sha256": s.sha256, "size": s.size}))
        .collect();
    let text = serde_json::to_string_pretty(&Value::Array(list)).expect("serializes");
    std::fs::write(path, text + "\n").unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

/// Which way a segment went.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Dir {
    ToServer,
    ToClient,
}

/// One request/response exchange of the connection, as byte ranges of the two streams.
#[derive(Clone, Debug)]
struct Exchange {
    uri: String,
    request: Range<u64>,
    response: Range<u64>,
}

/// The layout of the one HTTP connection of the clean capture.
struct Layout {
    /// For each packet of the capture: the stream bytes it carried, if any.
    carried: Vec<Option<(Dir, Range<u64>)>>,
    exchanges: Vec<Exchange>,
}

fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    hay.get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| p + from)
}

/// Parses a message head at `at`: (end of head, start line, headers with lowercase names and values).
fn head(stream: &[u8], at: usize) -> (usize, String, Vec<(String, String)>) {
    let end = find(&stream[..stream.len().min(at + 65_536)], b"\r\n\r\n", at)
        .unwrap_or_else(|| panic!("no end of head at stream offset {at}"))
        + 4;
    let text = std::str::from_utf8(&stream[at..end]).expect("ASCII head");
    let mut lines = text.split("\r\n");
    let start = lines.next().unwrap_or_default().to_string();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_ascii_lowercase()))
        .collect();
    (end, start, headers)
}

/// Walks a chunked body from `at`; returns where it ends (after the last CRLF).
fn chunked_end(stream: &[u8], mut at: usize) -> usize {
    loop {
        let eol = find(stream, b"\r\n", at).expect("chunk size line");
        let line = std::str::from_utf8(&stream[at..eol]).expect("ASCII chunk line");
        let size = usize::from_str_radix(line.split(';').next().unwrap_or("").trim(), 16).expect("hex chunk size");
        at = eol + 2;
        if size == 0 {
            // Trailers, then an empty line.
            loop {
                let eol = find(stream, b"\r\n", at).expect("trailer line");
                let empty = eol == at;
                at = eol + 2;
                if empty {
                    return at;
                }
            }
        }
        at += size + 2;
    }
}

/// Reassembles both directions of the capture's one HTTP connection (each under 4 GiB: sequence
/// numbers are taken relative to the ISN without unwrapping) and finds every exchange.
fn layout(p: &Pcap, served: &[Served]) -> Layout {
    let syns: Vec<usize> = (0..p.len())
        .filter(|&i| p.tcp(i).is_some_and(|s| s.is_syn() && s.dport == HTTP_PORT))
        .collect();
    assert_eq!(syns.len(), 1, "the capture must hold exactly one connection (one SYN)");
    let syn = p.tcp(syns[0]).unwrap();
    let key = syn.conn_key();
    let client = (syn.src, syn.sport);
    let client_isn = syn.seq;
    let server_isn = (0..p.len())
        .filter_map(|i| p.tcp(i))
        .find(|s| s.conn_key() == key && s.flags & SYN != 0 && (s.src, s.sport) != client)
        .expect("SYN-ACK")
        .seq;
    let mut streams = [Vec::<u8>::new(), Vec::<u8>::new()];
    let mut carried = Vec::with_capacity(p.len());
    for i in 0..p.len() {
        let seg = match p.tcp(i) {
            Some(s) if s.conn_key() == key && !s.payload.is_empty() => s,
            _ => {
                carried.push(None);
                continue;
            }
        };
        let (dir, isn, s) = if (seg.src, seg.sport) == client {
            (Dir::ToServer, client_isn, 0)
        } else {
            (Dir::ToClient, server_isn, 1)
        };
        let start = u64::from(seg.seq.wrapping_sub(isn.wrapping_add(1)));
        let end = start + seg.payload.len() as u64;
        let buf = &mut streams[s];
        if buf.len() < end as usize {
            buf.resize(end as usize, 0);
        }
        buf[start as usize..end as usize].copy_from_slice(seg.payload);
        carried.push(Some((dir, start..end)));
    }
    // The clean capture has every byte (else it is no baseline).
    for dir in [Dir::ToServer, Dir::ToClient] {
        let merged = merged_coverage(&carried, dir, |_| true);
        let len = streams[(dir == Dir::ToClient) as usize].len() as u64;
        assert_eq!(
            merged,
            vec![0..len],
            "the clean capture has holes in the {dir:?} stream"
        );
    }
    let (c2s, s2c) = (&streams[0], &streams[1]);
    let mut requests = Vec::new();
    let mut at = 0;
    while at < c2s.len() {
        let (end, start, _) = head(c2s, at);
        let uri = start.split_whitespace().nth(1).expect("request target").to_string();
        requests.push((uri, at as u64..end as u64));
        at = end;
    }
    let mut responses = Vec::new();
    let mut at = 0;
    while at < s2c.len() {
        let (end, start, headers) = head(s2c, at);
        assert!(start.starts_with("HTTP/1."), "response head at {at}: {start}");
        let get = |k: &str| headers.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        let body_end = if get("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
            chunked_end(s2c, end)
        } else {
            end + get("content-length")
                .and_then(|v| v.parse::<usize>().ok())
                .expect("Content-Length")
        };
        responses.push(at as u64..body_end as u64);
        at = body_end;
    }
    assert_eq!(requests.len(), served.len(), "one request per file");
    assert_eq!(responses.len(), served.len(), "one response per file");
    let exchanges = requests
        .into_iter()
        .zip(responses)
        .zip(served)
        .map(|(((uri, request), response), s)| {
            assert_eq!(uri, s.uri, "requests in the order curl was given them");
            Exchange { uri, request, response }
        })
        .collect();
    Layout { carried, exchanges }
}

/// The stream byte ranges (sorted, merged) carried by the packets `kept` accepts, in `dir`.
fn merged_coverage(
    carried: &[Option<(Dir, Range<u64>)>],
    dir: Dir,
    mut kept: impl FnMut(usize) -> bool,
) -> Vec<Range<u64>> {
    let mut ranges: Vec<Range<u64>> = carried
        .iter()
        .enumerate()
        .filter_map(|(i, c)| match c {
            Some((d, r)) if *d == dir && kept(i) => Some(r.clone()),
            _ => None,
        })
        .collect();
    ranges.sort_by_key(|r| r.start);
    let mut merged: Vec<Range<u64>> = Vec::new();
    for r in ranges {
        match merged.last_mut() {
            Some(last) if r.start <= last.end => last.end = last.end.max(r.end),
            _ => merged.push(r),
        }
    }
    merged
}

/// How many bytes of `range` the merged ranges cover.
fn covered(merged: &[Range<u64>], range: &Range<u64>) -> u64 {
    let first = merged.partition_point(|m| m.end <= range.start);
    merged[first..]
        .iter()
        .take_while(|m| m.start < range.end)
        .map(|m| m.end.min(range.end) - m.start.max(range.start))
        .sum()
}

/// Packet indices to drop: `bursts` runs of `min..=max` consecutive packets at seeded positions
/// (not overlapping, not adjacent).
fn burst_drops(n: usize, seed: u64, bursts: usize, min: usize, max: usize) -> Vec<bool> {
    let mut rng = Rng::new(seed);
    let mut drop = vec![false; n];
    let mut placed = 0;
    while placed < bursts {
        let len = min + rng.below((max - min + 1) as u64) as usize;
        // A fraction of the capture rather than `below(n - len)`: two captures of the same
        // transfer differ by a few ACKs, and the bursts should land in about the same place.
        let start = (rng.unit() * (n - len) as f64) as usize;
        let lo = start.saturating_sub(1);
        let hi = (start + len + 1).min(n);
        if drop[lo..hi].iter().any(|&d| d) {
            continue;
        }
        drop[start..start + len].iter_mut().for_each(|d| *d = true);
        placed += 1;
    }
    drop
}

/// `count` packet indices drawn at random (seeded), each dropped alone.
fn single_drops(n: usize, seed: u64, count: usize) -> Vec<bool> {
    let mut rng = Rng::new(seed);
    let mut drop = vec![false; n];
    let mut placed = 0;
    while placed < count {
        let i = (rng.unit() * n as f64) as usize;
        if !drop[i] {
            drop[i] = true;
            placed += 1;
        }
    }
    drop
}

/// The figures of one capture.
#[derive(Default)]
struct Row {
    name: String,
    dropped: usize,
    packets: usize,
    responses: usize,
    /// Responses that lost bytes of their own.
    touched: usize,
    /// Responses whose request lost bytes (their own bytes may be intact).
    request_lost: usize,
    untouched: usize,
    exact_untouched: usize,
    /// Responses of which at least one byte survived.
    survived: usize,
    with_record: usize,
    records: usize,
    problems: Vec<String>,
}

fn short(s: Option<&str>) -> &str {
    s.map_or("-", |s| &s[..s.len().min(12)])
}

fn describe(r: &Value) -> String {
    format!(
        "uri={} size={} missing={} truncated={}({}) sha256={}",
        r["http_uri"].as_str().unwrap_or("-"),
        r["size"],
        r["missing_bytes"],
        r["truncated"],
        r["truncated_reason"].as_str().unwrap_or("-"),
        short(r["sha256"].as_str()),
    )
}

/// Checks the records `xdpcarve -r` wrote for a capture made from the clean one minus the
/// packets `drop` marks.
fn evaluate(name: &str, lay: &Layout, served: &[Served], drop: &[bool], records: &[Value]) -> Row {
    let keep = |i: usize| !drop[i];
    let to_client = merged_coverage(&lay.carried, Dir::ToClient, keep);
    let to_server = merged_coverage(&lay.carried, Dir::ToServer, keep);
    let downloads: Vec<&Value> = records
        .iter()
        .filter(|r| r["direction"].as_str() == Some("download"))
        .collect();
    let mut row = Row {
        name: name.to_string(),
        dropped: drop.iter().filter(|&&d| d).count(),
        packets: drop.len(),
        responses: served.len(),
        records: downloads.len(),
        ..Row::default()
    };
    let complete = |r: &Value| {
        r["missing_bytes"].as_u64() == Some(0) && r["truncated"].as_bool() != Some(true) && r["sha256"].is_string()
    };
    let exact = |r: &Value, s: &Served| {
        complete(r) && r["sha256"].as_str() == Some(s.sha256.as_str()) && r["size"].as_u64() == Some(s.size)
    };
    // Pass 1: by http_uri.
    let mut claimed = vec![false; downloads.len()];
    let mut matched: Vec<Option<usize>> = vec![None; served.len()];
    for (k, s) in served.iter().enumerate() {
        if let Some(j) =
            (0..downloads.len()).find(|&j| !claimed[j] && downloads[j]["http_uri"].as_str() == Some(&s.uri))
        {
            claimed[j] = true;
            matched[k] = Some(j);
        }
    }
    // Pass 2: by sha256. Pass 3: the next unclaimed record in files-log order.
    for pass in [2, 3] {
        for (k, s) in served.iter().enumerate() {
            if matched[k].is_some() || covered(&to_client, &lay.exchanges[k].response) == 0 {
                continue;
            }
            let hit = (0..downloads.len())
                .find(|&j| !claimed[j] && (pass == 3 || downloads[j]["sha256"].as_str() == Some(s.sha256.as_str())));
            if let Some(j) = hit {
                claimed[j] = true;
                matched[k] = Some(j);
            }
        }
    }
    for (k, (s, x)) in served.iter().zip(&lay.exchanges).enumerate() {
        let resp_len = x.response.end - x.response.start;
        let resp_kept = covered(&to_client, &x.response);
        let req_intact = covered(&to_server, &x.request) == x.request.end - x.request.start;
        let resp_intact = resp_kept == resp_len;
        let rec = matched[k].map(|j| downloads[j]);
        let by_uri = rec.is_some_and(|r| r["http_uri"].as_str() == Some(s.uri.as_str()));
        let label = format!("#{k} {} ({} B)", x.uri, s.size);
        row.touched += usize::from(!resp_intact);
        row.request_lost += usize::from(!req_intact);
        if resp_kept > 0 {
            row.survived += 1;
            match rec {
                Some(_) => row.with_record += 1,
                None => row.problems.push(format!(
                    "{label}: no record ({} of {resp_len} response bytes survived{})",
                    resp_kept,
                    if req_intact { "" } else { ", request lost" }
                )),
            }
        }
        if resp_intact && req_intact {
            row.untouched += 1;
            match rec {
                Some(r) if by_uri && exact(r, s) => row.exact_untouched += 1,
                Some(r) if exact(r, s) => row.problems.push(format!(
                    "{label}: untouched, carved exact but without its uri: {}",
                    describe(r)
                )),
                Some(r) => row
                    .problems
                    .push(format!("{label}: untouched but not exact: {}", describe(r))),
                None => {}
            }
        } else if resp_intact {
            if let Some(r) = rec.filter(|r| !exact(r, s)) {
                row.problems.push(format!(
                    "{label}: response intact (its request lost) but not exact: {}",
                    describe(r)
                ));
            }
        } else if let Some(r) = rec.filter(|r| complete(r) && !exact(r, s)) {
            row.problems.push(format!(
                "{label}: lost {} bytes, yet the record claims to be complete: {}",
                resp_len - resp_kept,
                describe(r)
            ));
        }
    }
    let hashes: Vec<&str> = served.iter().map(|s| s.sha256.as_str()).collect();
    for r in &downloads {
        if complete(r) && !hashes.contains(&r["sha256"].as_str().unwrap_or("")) {
            row.problems
                .push(format!("a complete record of content never served: {}", describe(r)));
        }
    }
    row
}

fn table(rows: &[Row]) -> String {
    let mut s = format!(
        "{:<14} {:>15} {:>9} {:>7} {:>7} {:>9} {:>15} {:>9} {:>11} {:>7} {:>8}\n",
        "capture",
        "dropped/pkts",
        "responses",
        "touched",
        "req-lost",
        "untouched",
        "exact-untouched",
        "survived",
        "with-record",
        "records",
        "problems"
    );
    for r in rows {
        s.push_str(&format!(
            "{:<14} {:>15} {:>9} {:>7} {:>7} {:>9} {:>15} {:>9} {:>11} {:>7} {:>8}\n",
            r.name,
            format!("{}/{}", r.dropped, r.packets),
            r.responses,
            r.touched,
            r.request_lost,
            r.untouched,
            format!("{}/{}", r.exact_untouched, r.untouched),
            r.survived,
            format!("{}/{}", r.with_record, r.survived),
            r.records,
            r.problems.len()
        ));
    }
    s
}

/// `XDPCARVE_BULK_OUT`, when set: where to keep captures for the benchmarks.
fn bulk_out() -> Option<PathBuf> {
    std::env::var_os("XDPCARVE_BULK_OUT").map(PathBuf::from)
}

/// Carves `pcap` and panics unless every served file came out exact: the baseline.
fn check_baseline(pcap: &Path, lay: &Layout, served: &[Served], log: &Path) -> Row {
    let p_len = lay.carried.len();
    let records = carve_offline(pcap, log);
    let row = evaluate("clean", lay, served, &vec![false; p_len], &records);
    assert!(
        row.problems.is_empty() && row.exact_untouched == served.len(),
        "baseline: the clean capture must carve every file exact ({}/{}):\n  {}",
        row.exact_untouched,
        served.len(),
        row.problems.join("\n  ")
    );
    row
}

#[test]
fn burst_loss_costs_only_the_bytes_lost() {
    if !require_root_or_skip(&["tc", "tcpdump", "curl", "python3"]) {
        return;
    }
    let t0 = Instant::now();
    let tmp = TempDir::new("burst-loss");
    let www = tmp.join("www");
    const N: usize = 40;
    let served = serve_plan(&www, N, 7, 100 << 10, 3 << 20, 1.5);
    let total: u64 = served.iter().map(|s| s.size).sum();
    let pcap = tmp.join("clean.pcap");
    let secs = capture_bulk(&tmp, &www, &served, &pcap);
    let clean = Pcap::read(&pcap);
    println!(
        "clean capture: {N} files, {:.1} MB, {} packets, transfer {secs:.1} s",
        total as f64 / 1e6,
        clean.len()
    );
    if let Some(dir) = bulk_out() {
        std::fs::create_dir_all(&dir).expect("mkdir XDPCARVE_BULK_OUT");
        std::fs::copy(&pcap, dir.join(format!("bulk-{N}.pcap"))).expect("keep the capture");
        write_manifest(&dir.join(format!("bulk-{N}.manifest.json")), &served);
        println!("kept {}/bulk-{N}.pcap and its manifest", dir.display());
    }
    let lay = layout(&clean, &served);
    let mut rows = vec![check_baseline(&pcap, &lay, &served, &tmp.join("clean.jsonl"))];

    let n = clean.len();
    let mut cuts: Vec<(String, Vec<bool>)> = (1..=3)
        .map(|seed| (format!("burst-{seed}"), burst_drops(n, seed, 6, 300, 1500)))
        .collect();
    // Single losses at the rate the bursts had on its 315 MB capture (6 bursts of
    // 300-1500 in 227k packets: about 2.4 %); the bursts above are a sixth of this small capture.
    cuts.push(("random-single".to_string(), single_drops(n, 99, n / 40)));
    for (name, drop) in &cuts {
        let lossy = tmp.join(&format!("{name}.pcap"));
        clean.write_subset(&lossy, |i| !drop[i]);
        let records = carve_offline(&lossy, &tmp.join(&format!("{name}.jsonl")));
        rows.push(evaluate(name, &lay, &served, drop, &records));
    }

    println!("\n{}", table(&rows));
    let mut failures = Vec::new();
    for r in &rows {
        for p in &r.problems {
            failures.push(format!("{}: {p}", r.name));
        }
    }
    for f in &failures {
        println!("  {f}");
    }
    println!("burst_loss: {:.1} s", t0.elapsed().as_secs_f64());
    const SHOWN: usize = 20;
    assert!(
        failures.is_empty(),
        "{} problems over {} lossy captures (all of them printed above):\n{}\n  {}{}",
        failures.len(),
        cuts.len(),
        table(&rows),
        failures[..failures.len().min(SHOWN)].join("\n  "),
        if failures.len() > SHOWN { "\n  ..." } else { "" }
    );
}

#[test]
#[ignore = "makes a ~315 MB capture for the benchmarks into XDPCARVE_BULK_OUT (see the top of this file)"]
fn make_bulk_capture_for_bench() {
    let Some(dir) = bulk_out() else {
        panic!("set XDPCARVE_BULK_OUT=DIR: where to write bulk-N.pcap and bulk-N.manifest.json");
    };
    if !require_root_or_skip(&["tc", "tcpdump", "curl", "python3"]) {
        return;
    }
    let n: usize = std::env::var("XDPCARVE_BULK_FILES")
        .ok()
        .map(|v| v.parse().expect("XDPCARVE_BULK_FILES is a number"))
        .unwrap_or(131);
    std::fs::create_dir_all(&dir).expect("mkdir XDPCARVE_BULK_OUT");
    let tmp = TempDir::new("bulk-bench");
    let www = tmp.join("www");
    // Uniform 100 KiB - 4.5 MiB: ~2.4 MB on average.
    let served = serve_plan(&www, n, 131, 100 << 10, 9 << 19, 1.0);
    let total: u64 = served.iter().map(|s| s.size).sum();
    let pcap = dir.join(format!("bulk-{n}.pcap"));
    let secs = capture_bulk(&tmp, &www, &served, &pcap);
    let clean = Pcap::read(&pcap);
    let lay = layout(&clean, &served);
    drop(clean);
    check_baseline(&pcap, &lay, &served, &tmp.join("bulk.jsonl"));
    let manifest = dir.join(format!("bulk-{n}.manifest.json"));
    write_manifest(&manifest, &served);
    println!(
        "wrote {} ({n} files, {:.1} MB of content, transfer {secs:.1} s) and {}; -r carves every file exact",
        pcap.display(),
        total as f64 / 1e6,
        manifest.display()
    );
}
