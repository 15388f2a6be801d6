//! Running `xdpcarve --read` and checking its files log; building small captures for tests.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::Value;
use xdpcarve_core::wire::{ethernet_frame, Checksum, IpRepr, TcpRepr, ETHERTYPE_IPV4};

/// A scratch directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicU64 = AtomicU64::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("xdpcarve-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }
    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The outcome of one `xdpcarve --read` run.
pub struct Run {
    pub code: Option<i32>,
    pub stderr: String,
    pub records: Vec<Value>,
}

impl Run {
    /// True when the process exited by itself (no signal) and did not panic.
    pub fn clean(&self) -> bool {
        self.code.is_some() && !self.stderr.contains("panicked")
    }
    /// A counter of the summary's `counters:` line (`tcp.embryos_created`); 0 when it is not
    /// listed (the line shows only non-zero counters).
    pub fn counter(&self, name: &str) -> u64 {
        let Some(line) = self
            .stderr
            .lines()
            .find_map(|l| l.trim_start().strip_prefix("counters: "))
        else {
            return 0;
        };
        line.split_whitespace()
            .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
            .map_or(0, |v| v.parse().unwrap_or_else(|e| panic!("counter {name}={v}: {e}")))
    }
    /// The summary's connections tracked (`flows: N tracked`, the `tcp.flows_created` counter).
    pub fn flows_tracked(&self) -> u64 {
        let line = self
            .stderr
            .lines()
            .find_map(|l| l.trim_start().strip_prefix("flows: "))
            .unwrap_or_else(|| panic!("no `flows:` line in the summary:\n{}", self.stderr));
        let n = line.split_whitespace().next().unwrap_or("");
        n.parse().unwrap_or_else(|e| panic!("flows line {line:?}: {e}"))
    }
    /// One line per record, for failure messages.
    pub fn describe(&self) -> String {
        let mut s = format!("exit {:?}, {} records:\n", self.code, self.records.len());
        for r in &self.records {
            s.push_str(&format!(
                "  {} {} size={} missing={} sha256={} filename={} mime={}/{} {}:{}->{}:{}\n",
                r["proto"].as_str().unwrap_or("?"),
                r["direction"].as_str().unwrap_or("?"),
                r["size"],
                r["missing_bytes"],
                r["sha256"].as_str().unwrap_or("-"),
                r["filename"].as_str().unwrap_or("-"),
                r["mime_type"].as_str().unwrap_or("-"),
                r["declared_mime_type"].as_str().unwrap_or("-"),
                r["orig_h"].as_str().unwrap_or("?"),
                r["orig_p"],
                r["resp_h"].as_str().unwrap_or("?"),
                r["resp_p"],
            ));
        }
        s.push_str("stderr:\n");
        s.push_str(&self.stderr);
        s
    }
}

/// Runs `xdpcarve --read <capture> --files-log <tmp> <extra...>` and parses the log.
pub fn run_read(capture: &Path, extra: &[&str]) -> Run {
    run_read_via(&[], capture, extra)
}

/// [`run_read`] with the binary started by `wrapper` (a program and its arguments, such as
/// `/usr/bin/time -o FILE -f %M`), when it is not empty.
pub fn run_read_via(wrapper: &[&std::ffi::OsStr], capture: &Path, extra: &[&str]) -> Run {
    let tmp = TempDir::new("run");
    let log = tmp.path("files.log");
    let mut cmd = match wrapper.split_first() {
        Some((program, args)) => {
            let mut c = Command::new(program);
            c.args(args).arg(super::xdpcarve_bin());
            c
        }
        None => Command::new(super::xdpcarve_bin()),
    };
    let out = cmd
        .arg("--read")
        .arg(capture)
        .arg("--files-log")
        .arg(&log)
        .args(extra)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run xdpcarve");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let mut records = Vec::new();
    if let Ok(text) = std::fs::read_to_string(&log) {
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("bad JSON line {line:?}: {e}"));
            records.push(v);
        }
    }
    Run {
        code: out.status.code(),
        stderr,
        records,
    }
}

/// Reads `<corpus>/<case>/expected.json`, carves the case's trace and asserts every expected file
/// of `proto` is there: identical md5, sha1, sha256 and size, no missing bytes, the filename when
/// one is expected, the MIME type (sniffed or declared) when one is expected, and the endpoints
/// and direction when the case gives them.
pub fn check_case(proto: &str, case: &str) {
    let dir = super::corpus_dir().join(case);
    let expected: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("expected.json")).unwrap_or_else(|e| panic!("{case}/expected.json: {e}")),
    )
    .expect("expected.json parses");
    let want: Vec<&Value> = expected["files"]
        .as_array()
        .expect("files array")
        .iter()
        .filter(|f| f["proto"] == proto)
        .collect();
    assert!(!want.is_empty(), "{case}: no {proto} files expected: wrong test?");
    let run = run_read(&dir.join("trace.pcap"), &[]);
    assert!(run.clean(), "{case}: xdpcarve crashed\n{}", run.describe());
    assert_eq!(run.code, Some(0), "{case}: non-zero exit\n{}", run.describe());
    let mut problems = Vec::new();
    for f in &want {
        let sha256 = f["sha256"].as_str().expect("sha256");
        let label = f["filename"]
            .as_str()
            .map_or_else(|| sha256[..12].to_string(), str::to_string);
        let hit = run.records.iter().find(|r| {
            r["sha256"].as_str() == Some(sha256) && r["size"].as_u64() == f["size"].as_u64() && r["proto"] == proto
        });
        let Some(r) = hit else {
            problems.push(format!(
                "{label}: no record with sha256 {sha256} and size {}",
                f["size"]
            ));
            continue;
        };
        for h in ["md5", "sha1"] {
            if r[h] != f[h] {
                problems.push(format!("{label}: {h} {} != expected {}", r[h], f[h]));
            }
        }
        if r["missing_bytes"].as_u64() != Some(0) {
            problems.push(format!("{label}: missing_bytes {}", r["missing_bytes"]));
        }
        if let Some(name) = f["filename"].as_str() {
            if r["filename"].as_str() != Some(name) {
                problems.push(format!("{label}: filename {} != expected {name}", r["filename"]));
            }
        }
        if let Some(mime) = f["mime"].as_str() {
            if r["mime_type"].as_str() != Some(mime) && r["declared_mime_type"].as_str() != Some(mime) {
                problems.push(format!(
                    "{label}: neither mime_type {} nor declared_mime_type {} is {mime}",
                    r["mime_type"], r["declared_mime_type"]
                ));
            }
        }
        if let Some(flow) = f.get("flow").filter(|v| v.is_object()) {
            let ends = |h: &str, p: &str| (r[h].as_str().map(str::to_string), r[p].as_u64());
            let src = (flow["src"].as_str().map(str::to_string), flow["sport"].as_u64());
            let dst = (flow["dst"].as_str().map(str::to_string), flow["dport"].as_u64());
            let (o, rsp) = (ends("orig_h", "orig_p"), ends("resp_h", "resp_p"));
            if !((o == src && rsp == dst) || (o == dst && rsp == src)) {
                problems.push(format!("{label}: endpoints {o:?} {rsp:?} != expected {src:?} {dst:?}"));
            }
        }
        if let Some(dir) = f["direction"].as_str() {
            let want_dir = if dir == "server->client" { "download" } else { "upload" };
            if r["direction"].as_str() != Some(want_dir) {
                problems.push(format!(
                    "{label}: direction {} != expected {want_dir} ({dir})",
                    r["direction"]
                ));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "{case}:\n  {}\n{}",
        problems.join("\n  "),
        run.describe()
    );
}

/// Writes a classic little-endian microsecond pcap.
pub fn write_pcap(path: &Path, linktype: u32, packets: &[(u64, Vec<u8>)]) {
    std::fs::write(path, pcap_bytes(linktype, 65535, packets)).expect("write pcap");
}

/// The bytes of a classic little-endian microsecond pcap; timestamps in microseconds.
pub fn pcap_bytes(linktype: u32, snaplen: u32, packets: &[(u64, Vec<u8>)]) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&0xa1b2c3d4u32.to_le_bytes());
    b.extend_from_slice(&2u16.to_le_bytes());
    b.extend_from_slice(&4u16.to_le_bytes());
    b.extend_from_slice(&0i32.to_le_bytes());
    b.extend_from_slice(&0u32.to_le_bytes());
    b.extend_from_slice(&snaplen.to_le_bytes());
    b.extend_from_slice(&linktype.to_le_bytes());
    for (ts, data) in packets {
        b.extend_from_slice(&((ts / 1_000_000) as u32).to_le_bytes());
        b.extend_from_slice(&((ts % 1_000_000) as u32).to_le_bytes());
        b.extend_from_slice(&(data.len() as u32).to_le_bytes());
        b.extend_from_slice(&(data.len() as u32).to_le_bytes());
        b.extend_from_slice(data);
    }
    b
}

pub const SYN: u8 = 0x02;
pub const ACK: u8 = 0x10;
pub const PSH_ACK: u8 = 0x18;
pub const FIN_ACK: u8 = 0x11;

/// An Ethernet + IPv4 frame around `l4` (checksums left zero, as offloaded captures have them).
pub fn eth_ipv4(src: [u8; 4], dst: [u8; 4], proto: u8, l4: &[u8]) -> Vec<u8> {
    let mut ip = Vec::with_capacity(20 + l4.len());
    IpRepr::new(src, dst).emit(proto, l4, Checksum::Zero, &mut ip);
    ethernet_frame(ETHERTYPE_IPV4, &ip)
}

/// A TCP segment: header without options, then the payload (checksum zero).
pub fn tcp(sport: u16, dport: u16, seq: u32, ack: u32, flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut t = Vec::with_capacity(20 + payload.len());
    // The addresses only enter a computed checksum.
    let unused = IpRepr::new([0; 4], [0; 4]);
    TcpRepr::new(sport, dport, seq, ack, flags, payload).emit_segment(&unused, Checksum::Zero, &mut t);
    t
}

/// A UDP datagram (checksum zero).
pub fn udp(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut u = Vec::new();
    u.extend_from_slice(&sport.to_be_bytes());
    u.extend_from_slice(&dport.to_be_bytes());
    u.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    u.extend_from_slice(&[0, 0]);
    u.extend_from_slice(payload);
    u
}

/// A client→server TCP conversation on IPv4 with a full handshake and FIN close: each
/// `(from_client, bytes)` becomes one segment. Timestamps advance 1 ms per packet.
pub fn tcp_conversation(sport: u16, dport: u16, turns: &[(bool, &[u8])]) -> Vec<(u64, Vec<u8>)> {
    let (c, s) = ([10, 0, 0, 1], [10, 0, 0, 2]);
    let (mut cseq, mut sseq) = (1000u32, 50_000u32);
    let mut t = 1_600_000_000_000_000u64;
    let mut pkts = Vec::new();
    let mut push = |pkts: &mut Vec<(u64, Vec<u8>)>, _from_client: bool, frame: Vec<u8>| {
        t += 1000;
        pkts.push((t, frame));
    };
    push(
        &mut pkts,
        true,
        eth_ipv4(c, s, 6, &tcp(sport, dport, cseq, 0, SYN, b"")),
    );
    push(
        &mut pkts,
        false,
        eth_ipv4(s, c, 6, &tcp(dport, sport, sseq, cseq + 1, SYN | ACK, b"")),
    );
    cseq += 1;
    sseq += 1;
    push(
        &mut pkts,
        true,
        eth_ipv4(c, s, 6, &tcp(sport, dport, cseq, sseq, ACK, b"")),
    );
    for (from_client, data) in turns {
        if *from_client {
            push(
                &mut pkts,
                true,
                eth_ipv4(c, s, 6, &tcp(sport, dport, cseq, sseq, PSH_ACK, data)),
            );
            cseq = cseq.wrapping_add(data.len() as u32);
        } else {
            push(
                &mut pkts,
                false,
                eth_ipv4(s, c, 6, &tcp(dport, sport, sseq, cseq, PSH_ACK, data)),
            );
            sseq = sseq.wrapping_add(data.len() as u32);
        }
    }
    push(
        &mut pkts,
        true,
        eth_ipv4(c, s, 6, &tcp(sport, dport, cseq, sseq, FIN_ACK, b"")),
    );
    push(
        &mut pkts,
        false,
        eth_ipv4(s, c, 6, &tcp(dport, sport, sseq, cseq + 1, FIN_ACK, b"")),
    );
    pkts
}

/// Names of the corpus cases that expect at least one file of `proto`.
pub fn corpus_cases(proto: &str) -> Vec<String> {
    let mut cases = Vec::new();
    let dir = super::corpus_dir();
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("dir entry").path();
        let Ok(text) = std::fs::read_to_string(path.join("expected.json")) else {
            continue;
        };
        let v: Value = serde_json::from_str(&text).expect("expected.json parses");
        if v["files"]
            .as_array()
            .is_some_and(|fs| fs.iter().any(|f| f["proto"] == proto))
        {
            cases.push(path.file_name().expect("name").to_string_lossy().into_owned());
        }
    }
    cases.sort();
    cases
}
