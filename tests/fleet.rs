//! The fleet (`[fleet]`) against real redis-server processes (Debian's package; started here on
//! loopback, killed at the end) and a real loopback receiver (tests/support/receiver.py):
//! - two sensors reading overlapping captures submit each policy hash once in all, and both
//!   sensors' records are in the stream, each the files log's JSON line as it is, with the
//!   file's sightings beside it, readable by a consumer group;
//! - the same on a three-node Redis Cluster;
//! - TLS (`rediss://`, a test CA) with a password from `fleet.password_file`;
//! - Redis killed mid-run and restarted: nothing lost from the stream or the submissions, and the
//!   duplicates within the bound the README states.
//!
//! The captures come from the generator (`xdpcarve-gen`'s library); what "each policy hash" means
//! comes from one sensor without a fleet reading the same captures (its local dedup submits each
//! hash once).

mod support;

use support::receiver::Receiver;
use support::redis::{make_certs, stream_entries, RedisCluster, RedisServer};
use support::{carve::TempDir, xdpcarve_bin};

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const STREAM: &str = "xdpcarve:files";

fn have_redis() -> bool {
    support::netns::require_tool_or_skip("redis-server") && support::netns::require_tool_or_skip("redis-cli")
}

/// A generated capture of `http` downloads and a few mails, its files drawn from `seed`.
fn generated_capture(seed: u64, http: usize, smtp: usize) -> Vec<u8> {
    use xdpcarve_bench::gen::{self, PlanOptions};
    let plan = gen::plan(&PlanOptions {
        http,
        smtp,
        sizes: vec![8 << 10, 48 << 10],
        seed,
        ..PlanOptions::default()
    });
    gen::write(&plan, seed, Vec::new(), false).unwrap().1
}

fn write_capture(dir: &TempDir, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.path(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

/// A sensor's config: submit every type, small quick batches, the fleet's timings short.
fn sensor_config(dir: &TempDir, sensor: &str, receiver: &Receiver, fleet: &str) -> PathBuf {
    let state = dir.path(&format!("{sensor}-state"));
    let path = dir.path(&format!("{sensor}.toml"));
    std::fs::write(
        &path,
        format!(
            "[sensor]\nname = \"{sensor}\"\nstate_dir = \"{}\"\n\n[policy]\nmime_types = [\".*\"]\n\n\
             [webhook]\nurl = \"{}\"\nbatch_max_items = 20\nbatch_max_delay = \"20ms\"\n\
             retry_initial_delay = \"50ms\"\nretry_max_delay = \"200ms\"\n\n{fleet}\n",
            state.display(),
            receiver.url()
        ),
    )
    .unwrap();
    path
}

/// The fleet's settings for a test: a generous call timeout (a loaded machine must not turn
/// into an outage the test did not make), the default lease, quick reconnects.
fn fleet_section(redis: &str, extra: &str) -> String {
    format!("[fleet]\nredis = \"{redis}\"\ntimeout = \"3s\"\nreconnect_max_delay = \"200ms\"\n{extra}\n")
}

fn files_log(dir: &TempDir, sensor: &str) -> PathBuf {
    dir.path(&format!("{sensor}.files.log"))
}

fn sensor_command(dir: &TempDir, sensor: &str, config: &Path, captures: &[&Path]) -> Command {
    let mut cmd = Command::new(xdpcarve_bin());
    cmd.arg("--config").arg(config);
    for c in captures {
        cmd.arg("-r").arg(c);
    }
    cmd.arg("--files-log").arg(files_log(dir, sensor));
    cmd
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The files log's records of a sensor, in order.
fn logged(dir: &TempDir, sensor: &str) -> Vec<Value> {
    std::fs::read_to_string(files_log(dir, sensor))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// How often the receiver accepted each hash.
fn submissions(receiver: &Receiver) -> BTreeMap<String, usize> {
    let mut n = BTreeMap::new();
    for item in receiver.items() {
        let sha = item["sha256"].as_str().expect("items carry sha256").to_string();
        *n.entry(sha).or_insert(0) += 1;
    }
    n
}

/// The hashes one sensor without a fleet submits for `captures`: each policy hash, once.
fn policy_hashes(dir: &TempDir, tag: &str, captures: &[&Path]) -> BTreeSet<String> {
    let receiver = Receiver::start(0, &dir.path(&format!("{tag}.receiver.log")));
    let config = sensor_config(dir, tag, &receiver, "");
    let out = sensor_command(dir, tag, &config, captures).output().unwrap();
    assert!(out.status.success(), "control run: {}", stderr(&out));
    let subs = submissions(&receiver);
    assert!(subs.values().all(|&n| n == 1), "local dedup: each once");
    assert!(subs.len() >= 20, "the captures carry files to submit: {}", subs.len());
    subs.into_keys().collect()
}

/// Checks that the stream holds exactly each sensor's files log, in its order.
fn assert_stream_is_the_files_logs(entries: &[support::redis::Entry], dir: &TempDir, sensors: &[&str]) {
    for sensor in sensors {
        let want = logged(dir, sensor);
        let got: Vec<Value> = entries
            .iter()
            .filter(|e| e.sensor == *sensor)
            .map(|e| {
                assert_eq!(e.kind, "file", "{e:?}");
                let count = e.sightings.as_ref().and_then(|s| s["count"].as_u64());
                assert!(count >= Some(1), "a file's entry carries its sightings: {e:?}");
                e.record.clone()
            })
            .collect();
        assert_eq!(got.len(), want.len(), "{sensor}: every record in the stream");
        assert!(
            got == want,
            "{sensor}: the stream holds the files log's records, in order"
        );
    }
    assert_eq!(
        entries.len(),
        sensors.iter().map(|s| logged(dir, s).len()).sum::<usize>()
    );
}

/// Two sensors at once on overlapping captures (A+B and B+C) against `redis`: each policy hash
/// submitted once in all, both sensors' records in the stream. Returns the stream's entries.
fn two_sensors_on_overlapping_captures(
    dir: &TempDir,
    redis: &str,
    fleet_extra: &str,
    con: &mut dyn redis::ConnectionLike,
) -> Vec<support::redis::Entry> {
    let a = write_capture(dir, "a.pcap", &generated_capture(11, 25, 3));
    let b = write_capture(dir, "b.pcap", &generated_capture(12, 25, 3));
    let c = write_capture(dir, "c.pcap", &generated_capture(13, 25, 3));
    let want = policy_hashes(dir, "control", &[&a, &b, &c]);

    let receiver = Receiver::start(0, &dir.path("receiver.log"));
    let fleet = fleet_section(redis, fleet_extra);
    let s1 = sensor_config(dir, "s1", &receiver, &fleet);
    let s2 = sensor_config(dir, "s2", &receiver, &fleet);
    let p1 = sensor_command(dir, "s1", &s1, &[&a, &b])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let p2 = sensor_command(dir, "s2", &s2, &[&b, &c])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (o1, o2) = (p1.wait_with_output().unwrap(), p2.wait_with_output().unwrap());
    assert!(o1.status.success(), "s1: {}", stderr(&o1));
    assert!(o2.status.success(), "s2: {}", stderr(&o2));
    for o in [&o1, &o2] {
        let e = stderr(o);
        assert!(e.contains("fleet: stream_added="), "the fleet's summary line: {e}");
        assert!(e.contains("stream_lost=0") && e.contains("up=1"), "{e}");
    }

    let subs = submissions(&receiver);
    let dups: Vec<_> = subs.iter().filter(|(_, &n)| n > 1).collect();
    assert!(
        dups.is_empty(),
        "each policy hash submitted once in all; more than once: {dups:?}"
    );
    let got: BTreeSet<String> = subs.into_keys().collect();
    assert_eq!(got, want, "the fleet submits what one sensor alone would");
    let items = receiver.items();
    let by_sensor: BTreeSet<&str> = items.iter().filter_map(|i| i["sensor"].as_str()).collect();
    assert_eq!(by_sensor, BTreeSet::from(["s1", "s2"]), "both sensors submitted some");
    for i in &items {
        assert_eq!(i["dedup_scope"], "fleet", "Redis decided: {i}");
        assert!(
            i["sightings"]["count"].as_u64().unwrap() >= 1,
            "sightings in the payload: {i}"
        );
    }

    let entries = stream_entries(con, STREAM);
    assert_stream_is_the_files_logs(&entries, dir, &["s1", "s2"]);
    // B was read by both: its files' sightings name both sensors (read back from Redis).
    let shared = entries
        .iter()
        .filter(|e| {
            e.sightings
                .as_ref()
                .and_then(|s| s["sensors"].as_array())
                .is_some_and(|s| s.len() == 2)
        })
        .count();
    assert!(shared > 0, "files both sensors saw carry both names in their sightings");
    entries
}

#[test]
fn two_sensors_submit_each_policy_hash_once_and_both_stream_their_records() {
    if !have_redis() {
        return;
    }
    let dir = TempDir::new("fleet-two");
    let server = RedisServer::start(&dir.path("redis"));
    let mut con = redis::Client::open(server.url()).unwrap().get_connection().unwrap();
    let entries = two_sensors_on_overlapping_captures(&dir, &server.url(), "", &mut con);

    // The README's consumer-group example: a SIEM reader gets every entry, then acknowledges it.
    let _: () = redis::cmd("XGROUP")
        .arg(&["CREATE", STREAM, "siem", "0"])
        .query(&mut con)
        .unwrap();
    let read: redis::streams::StreamReadReply = redis::cmd("XREADGROUP")
        .arg(&["GROUP", "siem", "reader-1", "COUNT", "100000", "STREAMS", STREAM, ">"])
        .query(&mut con)
        .unwrap();
    let ids: Vec<String> = read.keys[0].ids.iter().map(|e| e.id.clone()).collect();
    assert_eq!(ids, entries.iter().map(|e| e.id.clone()).collect::<Vec<_>>());
    let acked: usize = redis::cmd("XACK")
        .arg(STREAM)
        .arg("siem")
        .arg(&ids)
        .query(&mut con)
        .unwrap();
    assert_eq!(acked, ids.len());
}

#[test]
fn a_three_node_redis_cluster_gives_the_same_result() {
    if !have_redis() {
        return;
    }
    let dir = TempDir::new("fleet-cluster");
    let cluster = RedisCluster::start(&dir.path("redis"));
    let seeds: Vec<String> = cluster.nodes.iter().map(RedisServer::url).collect();
    let mut con = redis::cluster::ClusterClient::new(seeds)
        .unwrap()
        .get_connection()
        .unwrap();
    two_sensors_on_overlapping_captures(&dir, &cluster.urls(), "", &mut con);
    // The keys spread over the nodes (the hash tag keeps each file's keys together, not all
    // files on one node).
    let holding = cluster
        .nodes
        .iter()
        .filter(|n| {
            let out = Command::new("redis-cli")
                .args(["-p", &n.port.to_string(), "--scan", "--pattern", "xdpcarve:{*}:seen"])
                .output()
                .unwrap();
            !out.stdout.is_empty()
        })
        .count();
    assert!(holding >= 2, "file keys on {holding} of 3 nodes");
}

#[test]
fn tls_and_a_password_from_a_file() {
    if !have_redis() || !support::netns::require_tool_or_skip("openssl") {
        return;
    }
    let dir = TempDir::new("fleet-tls");
    let certs = make_certs(dir.0.as_path());
    let password = "fleet-secret-7f3a";
    let tls_args: Vec<String> = [
        "--tls-cert-file",
        certs.cert.to_str().unwrap(),
        "--tls-key-file",
        certs.key.to_str().unwrap(),
        "--tls-ca-cert-file",
        certs.ca.to_str().unwrap(),
        "--tls-auth-clients",
        "no",
        "--requirepass",
        password,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let server = RedisServer::start_with(&dir.path("redis"), &tls_args, true);
    std::fs::write(dir.path("redis.password"), format!("{password}\n")).unwrap();
    let a = write_capture(&dir, "a.pcap", &generated_capture(21, 15, 0));
    let receiver = Receiver::start(0, &dir.path("receiver.log"));
    let fleet = fleet_section(
        &server.url(),
        &format!(
            "password_file = \"{}\"\ntls_ca_file = \"{}\"\n",
            dir.path("redis.password").display(),
            certs.ca.display()
        ),
    );
    let config = sensor_config(&dir, "s1", &receiver, &fleet);
    let out = sensor_command(&dir, "s1", &config, &[&a]).output().unwrap();
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("up=1") && err.contains("decided_locally=0"),
        "Redis answered over TLS: {err}"
    );
    assert!(!err.contains(password), "the password is never printed");
    let items = receiver.items();
    assert!(!items.is_empty() && items.iter().all(|i| i["dedup_scope"] == "fleet"));

    let ca = std::fs::read(&certs.ca).unwrap();
    let info =
        redis::IntoConnectionInfo::into_connection_info(format!("rediss://:{password}@127.0.0.1:{}", server.port))
            .unwrap();
    let client = redis::Client::build_with_tls(
        info,
        redis::TlsCertificates {
            client_tls: None,
            root_cert: Some(ca),
        },
    )
    .unwrap();
    let mut con = client.get_connection().unwrap();
    let entries = stream_entries(&mut con, STREAM);
    assert_stream_is_the_files_logs(&entries, &dir, &["s1"]);

    // A wrong password: the sensor says so, decides alone, and still logs and submits everything.
    std::fs::write(dir.path("redis.password"), "not-the-password\n").unwrap();
    let receiver2 = Receiver::start(0, &dir.path("receiver2.log"));
    let config = sensor_config(&dir, "s2", &receiver2, &fleet);
    let out = sensor_command(&dir, "s2", &config, &[&a]).output().unwrap();
    let err = stderr(&out);
    assert!(out.status.success(), "records kept for the stream are not lost: {err}");
    assert!(err.to_lowercase().contains("authentication failed"), "says why: {err}");
    assert!(err.contains("up=0"), "{err}");
    assert_eq!(
        submissions(&receiver2).len(),
        items.len(),
        "decided locally, nothing missed"
    );
}

/// A capture's packet records (without the 24-byte pcap header), stamped `shift_s` later.
fn shifted_records(capture: &[u8], shift_s: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(capture.len());
    let mut at = 24;
    while at + 16 <= capture.len() {
        let len = u32::from_le_bytes(capture[at + 8..at + 12].try_into().unwrap()) as usize;
        let ts = u32::from_le_bytes(capture[at..at + 4].try_into().unwrap()) + shift_s;
        out.extend_from_slice(&ts.to_le_bytes());
        out.extend_from_slice(&capture[at + 4..at + 16 + len]);
        at += 16 + len;
    }
    out
}

/// A sensor reading a capture from its standard input, fed part by part.
struct PipedSensor {
    child: Child,
    metrics: String,
}

impl PipedSensor {
    fn start(dir: &TempDir, sensor: &str, config: &Path, header: &[u8]) -> PipedSensor {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut child = sensor_command(dir, sensor, config, &[Path::new("/dev/stdin")])
            .arg("--metrics-addr")
            .arg(format!("127.0.0.1:{port}"))
            .stdin(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.as_mut().unwrap().write_all(header).unwrap();
        PipedSensor {
            child,
            metrics: format!("127.0.0.1:{port}"),
        }
    }

    fn feed(&mut self, bytes: &[u8]) {
        let stdin = self.child.stdin.as_mut().unwrap();
        stdin.write_all(bytes).unwrap();
        stdin.flush().unwrap();
    }

    /// A metric's value from /metrics (None before the server answers).
    fn metric(&self, name: &str) -> Option<f64> {
        use std::io::Read;
        let mut s = std::net::TcpStream::connect(&self.metrics).ok()?;
        s.write_all(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n").ok()?;
        let mut text = String::new();
        s.read_to_string(&mut text).ok()?;
        text.lines()
            .find(|l| l.split([' ', '{']).next() == Some(name))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
    }

    fn finish(mut self) -> Output {
        drop(self.child.stdin.take());
        self.child.wait_with_output().unwrap()
    }
}

fn wait_for(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn redis_killed_mid_run_loses_nothing_and_duplicates_stay_within_the_bound() {
    if !have_redis() {
        return;
    }
    let dir = TempDir::new("fleet-outage");
    // Three parts of traffic: before, during and after the outage, an hour apart.
    let parts: Vec<Vec<u8>> = (0..3).map(|k| generated_capture(31 + k, 15, 2)).collect();
    let header = parts[0][..24].to_vec();
    let shifted: Vec<Vec<u8>> = parts
        .iter()
        .enumerate()
        .map(|(k, p)| shifted_records(p, k as u32 * 3600))
        .collect();
    let part_files: Vec<PathBuf> = shifted
        .iter()
        .enumerate()
        .map(|(k, s)| write_capture(&dir, &format!("part{k}.pcap"), &[header.as_slice(), s].concat()))
        .collect();
    let per_part: Vec<BTreeSet<String>> = part_files
        .iter()
        .enumerate()
        .map(|(k, p)| policy_hashes(&dir, &format!("control{k}"), &[p]))
        .collect();

    let mut server = RedisServer::start(&dir.path("redis"));
    let receiver = Receiver::start(0, &dir.path("receiver.log"));
    let fleet = fleet_section(&server.url(), "");
    let sensors = ["s1", "s2"];
    let mut running: Vec<PipedSensor> = sensors
        .iter()
        .map(|s| PipedSensor::start(&dir, s, &sensor_config(&dir, s, &receiver, &fleet), &header))
        .collect();
    let submitted_all = |want: &BTreeSet<String>| {
        let got = submissions(&receiver);
        want.iter().all(|h| got.contains_key(h))
    };
    let up = |s: &PipedSensor| s.metric("xdpcarve_fleet_up") == Some(1.0);
    let settled = |s: &PipedSensor| {
        s.metric("xdpcarve_fleet_commits_pending") == Some(0.0)
            && s.metric("xdpcarve_fleet_stream_pending") == Some(0.0)
    };
    wait_for("both sensors connected", Duration::from_secs(20), || {
        running.iter().all(up)
    });

    // Before: Redis up; every part-0 hash submitted once and recorded fleet-wide.
    for s in &mut running {
        s.feed(&shifted[0]);
    }
    wait_for("part 0 submitted", Duration::from_secs(30), || {
        submitted_all(&per_part[0])
    });
    wait_for("part 0 recorded in Redis", Duration::from_secs(30), || {
        running.iter().all(settled)
    });

    // During: Redis killed (SIGKILL). Both sensors decide alone and keep the stream on disk.
    server.kill();
    for s in &mut running {
        s.feed(&shifted[1]);
    }
    wait_for("part 1 submitted while Redis is down", Duration::from_secs(30), || {
        submitted_all(&per_part[1])
    });
    wait_for("both sensors see Redis down", Duration::from_secs(20), || {
        running.iter().all(|s| s.metric("xdpcarve_fleet_up") == Some(0.0))
    });

    // After: Redis back on its data; the sensors reconnect, replay and commit, then part 2.
    server.restart();
    wait_for("both sensors back and caught up", Duration::from_secs(30), || {
        running.iter().all(|s| up(s) && settled(s))
    });
    for s in &mut running {
        s.feed(&shifted[2]);
    }
    let outs: Vec<Output> = running.into_iter().map(PipedSensor::finish).collect();
    for (s, o) in sensors.iter().zip(&outs) {
        assert!(o.status.success(), "{s}: {}", stderr(o));
        let e = stderr(o);
        assert!(e.contains("stream_lost=0") && e.contains("commits_lost=0"), "{s}: {e}");
        assert!(
            !e.contains("stream_replayed=0 "),
            "{s} replayed what waited for Redis: {e}"
        );
    }

    // No submission lost; duplicates only among the hashes seen during the outage, at most
    // (sensors - 1) per hash: the README's bound with the window's distinct policy hashes.
    let subs = submissions(&receiver);
    let all: BTreeSet<String> = per_part.iter().flatten().cloned().collect();
    assert_eq!(
        subs.keys().cloned().collect::<BTreeSet<_>>(),
        all,
        "every policy hash submitted"
    );
    let window: BTreeSet<&String> = per_part[1].iter().collect();
    let extra: usize = subs.values().map(|n| n - 1).sum();
    for (sha, n) in &subs {
        if !window.contains(sha) {
            assert_eq!(*n, 1, "{sha}: outside the outage window, submitted once in all");
        } else {
            assert!(*n <= sensors.len(), "{sha}: at most once per sensor");
        }
    }
    assert!(
        extra <= (sensors.len() - 1) * window.len(),
        "{extra} duplicates > (sensors - 1) x {} hashes seen in the window",
        window.len()
    );
    println!(
        "outage: {} policy hashes, {} seen during the outage, {extra} duplicate submissions (bound {})",
        all.len(),
        window.len(),
        (sensors.len() - 1) * window.len()
    );
    assert!(
        extra > 0,
        "both sensors decided alone during the outage (else this test tests nothing)"
    );

    // Nothing lost from the stream, each sensor's order kept.
    let mut con = redis::Client::open(server.url()).unwrap().get_connection().unwrap();
    assert_stream_is_the_files_logs(&stream_entries(&mut con, STREAM), &dir, &sensors);
}

#[test]
fn check_says_whether_redis_answers_and_names_the_key_to_fix() {
    if !have_redis() {
        return;
    }
    let dir = TempDir::new("fleet-check");
    let mut server = RedisServer::start(&dir.path("redis"));
    let url = server.url();
    let check = |extra: &[&str]| {
        Command::new(xdpcarve_bin())
            .arg("check")
            .args(["--redis-url", &url])
            .args(extra)
            .output()
            .unwrap()
    };
    let out = check(&[]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &stderr(&out);
    assert!(out.status.success(), "{text}");
    assert!(text.contains(&format!("fleet {url}: Redis answers")), "{text}");
    assert!(text.contains("add every record to the stream xdpcarve:files"), "{text}");

    std::fs::write(
        dir.path("fleet.toml"),
        "[fleet]\npassword_file = \"/nonexistent/redis.password\"\n",
    )
    .unwrap();
    let cfg = dir.path("fleet.toml");
    let out = check(&["--config", cfg.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &stderr(&out);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("fleet.password_file /nonexistent/redis.password"),
        "{text}"
    );

    // A password in the URL is refused, and not echoed.
    let out = Command::new(xdpcarve_bin())
        .args(["check", "--redis-url", "redis://:hunter2-secret@127.0.0.1:6379"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &stderr(&out);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("put it in fleet.password_file") && !text.contains("hunter2"),
        "{text}"
    );

    server.kill();
    let out = check(&[]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &stderr(&out);
    assert!(!out.status.success(), "Redis down is a problem before a run: {text}");
    assert!(
        text.contains("FAIL  fleet:") && text.contains("decide dedup locally"),
        "{text}"
    );
}

#[test]
fn scanned_files_reach_the_stream_as_verdict_entries() {
    if !have_redis() {
        return;
    }
    let dir = TempDir::new("fleet-verdicts");
    let server = RedisServer::start(&dir.path("redis"));
    let a = write_capture(&dir, "a.pcap", &generated_capture(41, 8, 0));
    let receiver = Receiver::start(0, &dir.path("receiver.log"));
    let status = support::repo_root().join("tests/scanners/status.sh");
    let scan = format!(
        "[store]\ndir = \"{}\"\n\n[scanners.flag]\nkind = \"command\"\nargv = [\"{}\", \"1\", \"{{path}}\"]\n\n\
         [[pipelines]]\nname = \"all\"\nmatch = \".*\"\nscanners = [\"flag\"]\n",
        dir.path("store").display(),
        status.display()
    );
    let config = sensor_config(
        &dir,
        "s1",
        &receiver,
        &format!("{}\n{scan}", fleet_section(&server.url(), "")),
    );
    let out = sensor_command(&dir, "s1", &config, &[&a]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let mut con = redis::Client::open(server.url()).unwrap().get_connection().unwrap();
    let entries = stream_entries(&mut con, STREAM);
    let files: BTreeSet<&str> = entries
        .iter()
        .filter(|e| e.kind == "file")
        .filter_map(|e| e.record["fuid"].as_str())
        .collect();
    let verdicts: Vec<&support::redis::Entry> = entries.iter().filter(|e| e.kind == "verdict").collect();
    assert_eq!(files.len(), logged(&dir, "s1").len(), "every file record in the stream");
    assert_eq!(
        verdicts.len(),
        files.len(),
        "every file scanned, its verdict in the stream"
    );
    for v in &verdicts {
        assert!(files.contains(v.record["fuid"].as_str().unwrap()), "{v:?}");
        assert_eq!(v.record["verdict"], "malicious", "{v:?}");
        assert!(v.sightings.is_none(), "a verdict is not a sighting: {v:?}");
    }
}

#[test]
fn redis_out_of_memory_is_an_outage_not_a_loss_and_the_link_backs_off() {
    if !have_redis() {
        return;
    }
    let dir = TempDir::new("fleet-oom");
    // maxmemory 1 byte: PING answers, every write (claims, sightings, XADD) is refused with OOM.
    let server = RedisServer::start_with(
        &dir.path("redis"),
        &["--maxmemory".into(), "1".into(), "--appendonly".into(), "no".into()],
        false,
    );
    let a = write_capture(&dir, "a.pcap", &generated_capture(51, 15, 0));
    let receiver = Receiver::start(0, &dir.path("receiver.log"));
    let config = sensor_config(&dir, "s1", &receiver, &fleet_section(&server.url(), ""));
    let started = Instant::now();
    let out = sensor_command(&dir, "s1", &config, &[&a]).output().unwrap();
    let err = stderr(&out);
    assert!(out.status.success(), "kept for later is not lost: {err}");
    assert!(err.contains("OOM"), "says why: {err}");
    assert!(
        err.contains("stream_lost=0") && !err.contains("stream_pending=0 "),
        "{err}"
    );
    let reconnects: u64 = err
        .split("reconnects=")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .expect("the fleet line");
    let secs = started.elapsed().as_secs_f64();
    assert!(
        (reconnects as f64) <= 2.0 + secs / 0.1,
        "{reconnects} reconnects in {secs:.1} s: the link backs off"
    );
    let want = logged(&dir, "s1").len();
    assert_eq!(
        submissions(&receiver).len(),
        receiver.items().len(),
        "decided locally, once each"
    );

    // Memory back: the next run adds what waited, then its own records.
    let ok = Command::new("redis-cli")
        .args(["-p", &server.port.to_string(), "config", "set", "maxmemory", "0"])
        .output()
        .unwrap();
    assert!(ok.status.success());
    let out = sensor_command(&dir, "s1", &config, &[&a]).output().unwrap();
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("stream_pending=0 ") && err.contains("up=1"), "{err}");
    let mut con = redis::Client::open(server.url()).unwrap().get_connection().unwrap();
    let entries = stream_entries(&mut con, STREAM);
    assert_eq!(
        entries.len(),
        2 * want,
        "the first run's records replayed, then the second's"
    );
}
