//! A protocol the engine was not written for runs with one registration line: the toy protocol
//! crate (tests/toy-protocol) is registered next to HTTP, and its files come out as records with
//! its own fields and counters, through the same engine and worker as every runtime uses.

use sha2::{Digest, Sha256};
use xdpcarve_contract::{FileRecord, LinkType, Timestamp};
use xdpcarve_core::wire::{Checksum, IpRepr, TcpRepr};
use xdpcarve_core::{Engine, EngineConfig, ProtocolRegistry, Worker};
use xdpcarve_toy::Toy;

const SYN: u8 = 0x02;
const ACK: u8 = 0x10;
const PSH_ACK: u8 = 0x18;
const FIN_ACK: u8 = 0x11;
const CLIENT: [u8; 4] = [10, 9, 0, 1];
const SERVER: [u8; 4] = [10, 9, 0, 2];

/// An Ethernet/IPv4/TCP frame, checksums left zero (taken once the engine assumes offload).
#[allow(clippy::too_many_arguments)] // every field of a TCP/IP header a test sets
fn frame(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, seq: u32, ack: u32, flags: u8, payload: &[u8]) -> Vec<u8> {
    TcpRepr::new(sport, dport, seq, ack, flags, payload).emit_frame(&IpRepr::new(src, dst), Checksum::Zero)
}

/// One TOY session from client port `cport` to `server_port`, the client's bytes in segments of
/// `seg` bytes.
fn session(cport: u16, server_port: u16, client_bytes: &[u8], seg: usize) -> Vec<Vec<u8>> {
    let (mut c, mut s) = (1000u32, 5000u32);
    let mut out = vec![
        frame(CLIENT, SERVER, cport, server_port, c, 0, SYN, b""),
        frame(SERVER, CLIENT, server_port, cport, s, c + 1, SYN | ACK, b""),
    ];
    c += 1;
    s += 1;
    out.push(frame(CLIENT, SERVER, cport, server_port, c, s, ACK, b""));
    for piece in client_bytes.chunks(seg) {
        out.push(frame(CLIENT, SERVER, cport, server_port, c, s, PSH_ACK, piece));
        c += piece.len() as u32;
    }
    out.push(frame(SERVER, CLIENT, server_port, cport, s, c, PSH_ACK, b"OK\n"));
    s += 3;
    out.push(frame(CLIENT, SERVER, cport, server_port, c, s, FIN_ACK, b""));
    out.push(frame(SERVER, CLIENT, server_port, cport, s, c + 1, FIN_ACK, b""));
    out
}

fn toy_message(name: &str, body: &[u8]) -> Vec<u8> {
    [format!("TOY {name} {}\n", body.len()).as_bytes(), body].concat()
}

fn sha256(data: &[u8]) -> String {
    Sha256::digest(data).iter().map(|b| format!("{b:02x}")).collect()
}

fn run(registry: ProtocolRegistry, frames: &[Vec<u8>]) -> (Vec<FileRecord>, xdpcarve_core::WorkerReport) {
    let cfg = EngineConfig {
        protocols: registry,
        ..EngineConfig::default()
    };
    let mut worker = Worker::new(Engine::new(cfg), Vec::new());
    for (i, f) in frames.iter().enumerate() {
        worker.handle_packet(Timestamp::from_secs(1 + i as u64 / 100), LinkType::Ethernet, f);
    }
    let report = worker.finish(Timestamp::ZERO);
    (worker.into_sink(), report)
}

#[test]
fn a_toy_protocol_registered_in_one_line_produces_records() {
    let exe: Vec<u8> = [b"MZ".as_slice(), &[0x90; 5000]].concat();
    let note = b"hello, toy".to_vec();
    let bytes = [toy_message("tool.exe", &exe), toy_message("note.txt", &note)].concat();
    let frames = session(40001, 7777, &bytes, 1460);

    let registry = ProtocolRegistry::new().register(&[7777], || Toy::new(1 << 20));
    let (records, report) = run(registry, &frames);

    assert_eq!(records.len(), 2, "{records:?}");
    let (a, b) = (&records[0], &records[1]);
    assert_eq!(a.proto.as_str(), "toy");
    assert_eq!(a.filename.as_deref(), Some("tool.exe"));
    assert_eq!(a.fields.str(xdpcarve_toy::FIELD_NAME), Some("tool.exe"));
    assert_eq!(a.sha256.as_deref(), Some(sha256(&exe).as_str()));
    assert_eq!(a.mime_type.as_deref(), Some("application/x-dosexec"));
    assert_eq!(
        (a.orig_p, a.resp_p, a.size, a.total_bytes),
        (40001, 7777, exe.len() as u64, Some(exe.len() as u64))
    );
    assert_eq!(b.sha256.as_deref(), Some(sha256(&note).as_str()));
    // The record's JSON carries the protocol's own field, flattened like http_* and smtp_*.
    let json: serde_json::Value = serde_json::from_str(&a.to_json_line()).unwrap();
    assert_eq!(json["toy_name"], "tool.exe");
    assert_eq!(json["proto"], "toy");
    // Its counters reach the run's counter set (summary, /metrics) without the engine naming them.
    assert_eq!(report.counters.get("toy", "messages"), 2);
    assert_eq!(report.counters.get("toy", "files"), 2);
    assert_eq!(report.counters.get("files", "files"), 2);
    assert_eq!(report.files, 2);
}

#[test]
fn the_toy_protocol_is_detected_on_other_ports_and_sits_beside_http() {
    let body = b"detected by content".to_vec();
    let mut frames = session(40002, 9999, &toy_message("d.bin", &body), 7);
    // An HTTP exchange on port 80 in the same capture still goes to HTTP.
    let mut http = session(40003, 80, b"GET /x HTTP/1.1\r\nHost: h\r\n\r\n", 1460);
    frames.append(&mut http);

    let mime = xdpcarve_mime::MimeConfig::default();
    let registry = ProtocolRegistry::new()
        .register(&[80], move || xdpcarve_http::Http::new(Default::default(), mime))
        .register(&[7777], || Toy::new(1 << 20));
    let (records, report) = run(registry, &frames);

    // The server's "OK\n" answers the GET without a status line: an HTTP/0.9 reply, which is
    // HTTP's record, not the toy's.
    assert_eq!(records.len(), 2, "{records:?}");
    assert_eq!(records[0].proto.as_str(), "toy");
    assert_eq!(records[0].sha256.as_deref(), Some(sha256(&body).as_str()));
    assert_eq!(records[1].proto.as_str(), "http");
    assert_eq!(records[1].fields.str("http_uri"), Some("/x"));
    assert_eq!(report.counters.get("tcp", "flows_detected"), 1);
    assert_eq!(report.counters.get("http", "requests"), 1);
}
