//! Structure-aware: one keep-alive HTTP connection carrying a sequence of exchanges the input
//! chooses: downloads framed by Content-Length, chunked (sizes chosen) or the close, gzip or
//! deflate encoded, 206 pieces of one object sent in a chosen order, HEAD / 204 / 304 replies
//! without a body, uploads (plain, chunked, multipart/form-data), duplicated and conflicting
//! framing headers; requests pipelined (up to 64 deep) or in lockstep, both streams cut into segments of chosen
//! sizes. Oracle: every body the generator framed unambiguously is carved with its exact SHA-256
//! and size; one it framed ambiguously on purpose is carved exactly or carries the anomaly that
//! says so (README "Evasion"); no flow memory is left after `finish`.
#![no_main]

use flate2::write::{GzEncoder, ZlibEncoder};
use flate2::Compression;
use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use sha2::{Digest, Sha256};
use std::io::Write;
use xdpcarve_contract::{Anomaly, FileRecord, LinkType, Timestamp};
use xdpcarve_core::wire::{Checksum, IpRepr, TcpRepr};
use xdpcarve_core::{Engine, EngineConfig};

const CLIENT: [u8; 4] = [10, 0, 0, 1];
const SERVER: [u8; 4] = [10, 0, 0, 2];
const SYN: u8 = 0x02;
const ACK: u8 = 0x10;
const PA: u8 = 0x18;
const FA: u8 = 0x11;

/// A frame of the connection, checksums left zero (the engine takes them as offload).
fn frame(from_client: bool, seq: u32, ack: u32, flags: u8, payload: &[u8]) -> Vec<u8> {
    let (src, dst, sport, dport) = match from_client {
        true => (CLIENT, SERVER, 40_000u16, 80u16),
        false => (SERVER, CLIENT, 80, 40_000),
    };
    TcpRepr::new(sport, dport, seq, ack, flags, payload).emit_frame(&IpRepr::new(src, dst), Checksum::Zero)
}

fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data).iter().map(|b| format!("{b:02x}")).collect()
}

/// A file the engine must log.
#[derive(Debug)]
enum Want {
    /// Carved with exactly these bytes (and this name, when the response gave one).
    Exact {
        sha256: String,
        size: u64,
        filename: Option<String>,
    },
    /// Framed ambiguously on purpose: carved exactly, or some record carries the anomaly.
    ExactOrMarked { sha256: String, size: u64, mark: Anomaly },
    /// Framed so that no exact file is defined: some record carries the anomaly.
    Marked(Anomaly),
}

fn exact(body: &[u8]) -> Option<Want> {
    // Empty bodies leave no record.
    (!body.is_empty()).then(|| Want::Exact {
        sha256: sha256_hex(body),
        size: body.len() as u64,
        filename: None,
    })
}

/// Maybe a `Content-Disposition: attachment` naming the download (plain, RFC 6266 `filename*`
/// alone or next to a plain fallback, RFC 2231 continuations), and the name it gives.
fn disposition(u: &mut Unstructured<'_>, n: usize) -> Result<Option<(String, String)>> {
    let utf8 = format!("\u{e9}t\u{e9} {n}.bin");
    let percent: String = utf8
        .bytes()
        .map(|b| match b.is_ascii_alphanumeric() || b == b'.' {
            true => (b as char).to_string(),
            false => format!("%{b:02X}"),
        })
        .collect();
    Ok(match u.int_in_range(0..=4u8)? {
        0 => None,
        1 => Some((format!("attachment; filename=\"dl{n}.bin\""), format!("dl{n}.bin"))),
        2 => Some((format!("attachment; filename*=UTF-8''{percent}"), utf8)),
        3 => Some((
            format!("attachment; filename=\"dl{n}.bin\"; filename*=UTF-8''{percent}"),
            utf8,
        )),
        _ => Some((
            format!("attachment; filename*0=\"dl{n}\"; filename*1=\".bin\""),
            format!("dl{n}.bin"),
        )),
    })
}

/// `exact(body)`, named as `named` says.
fn exact_named(body: &[u8], named: &Option<(String, String)>) -> Option<Want> {
    let mut want = exact(body)?;
    if let (Want::Exact { filename, .. }, Some((_, name))) = (&mut want, named) {
        *filename = Some(name.clone());
    }
    Some(want)
}

/// Body bytes: a pattern (binary or text-like) of a chosen length, cheap to describe.
fn body(u: &mut Unstructured<'_>, max: usize) -> Result<Vec<u8>> {
    let len = u.int_in_range(0..=max)?;
    let seed: u8 = u.arbitrary()?;
    Ok(match u.arbitrary::<bool>()? {
        true => (0..len).map(|i| (i as u8).wrapping_mul(31) ^ seed).collect(),
        false => {
            const TEXT: &[u8] = b"abcdefgh \r\n-.0123";
            (0..len).map(|i| TEXT[(i + seed as usize) % TEXT.len()]).collect()
        }
    })
}

/// `data` chunked at sizes the input picks (out of input: the rest in one chunk).
fn chunked(u: &mut Unstructured<'_>, data: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        let n = match u.is_empty() {
            true => rest.len(),
            false => u.int_in_range(1..=2048usize)?.min(rest.len()),
        };
        out.extend_from_slice(format!("{n:x}\r\n").as_bytes());
        out.extend_from_slice(&rest[..n]);
        out.extend_from_slice(b"\r\n");
        rest = &rest[n..];
    }
    out.extend_from_slice(b"0\r\n\r\n");
    Ok(out)
}

/// One request and its response.
struct Exchange {
    request: Vec<u8>,
    response: Vec<u8>,
}

struct Case {
    exchanges: Vec<Exchange>,
    wants: Vec<Want>,
    /// Requests sent before their responses: 1 is lockstep. At most the parser's `max_pipelined`
    /// (64): past it the oldest request is forgotten, by design, and responses lose their pairing.
    depth: usize,
    /// Segment sizes, used in turn (each 1..=1460).
    cuts: Vec<usize>,
}

/// An upload: the request carrying it, plain, chunked or multipart/form-data.
fn upload(u: &mut Unstructured<'_>, n: usize, wants: &mut Vec<Want>) -> Result<Vec<u8>> {
    let mut req = format!("POST /up{n} HTTP/1.1\r\nHost: h\r\n").into_bytes();
    match u.int_in_range(0..=2u8)? {
        0 => {
            let b = body(u, 4096)?;
            req.extend_from_slice(format!("Content-Length: {}\r\n\r\n", b.len()).as_bytes());
            req.extend_from_slice(&b);
            wants.extend(exact(&b));
        }
        1 => {
            let b = body(u, 4096)?;
            req.extend_from_slice(b"Transfer-Encoding: chunked\r\n\r\n");
            req.extend_from_slice(&chunked(u, &b)?);
            wants.extend(exact(&b));
        }
        _ => {
            let boundary = format!("----fuzzform{n}x{}", u.arbitrary::<u16>()?);
            let mut envelope = Vec::new();
            let parts = u.int_in_range(1..=4u8)?;
            for p in 0..parts {
                let mut content = body(u, 2048)?;
                // Each form field is a file: a non-empty one, so it leaves a record.
                content.push(b'!');
                envelope.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
                let disposition = match u.arbitrary::<bool>()? {
                    true => format!("form-data; name=\"f{p}\"; filename=\"up{p}.bin\""),
                    false => format!("form-data; name=\"f{p}\""),
                };
                envelope.extend_from_slice(format!("Content-Disposition: {disposition}\r\n").as_bytes());
                if u.arbitrary::<bool>()? {
                    envelope.extend_from_slice(b"Content-Type: application/octet-stream\r\n");
                }
                envelope.extend_from_slice(b"\r\n");
                envelope.extend_from_slice(&content);
                envelope.extend_from_slice(b"\r\n");
                wants.extend(exact(&content));
            }
            envelope.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
            req.extend_from_slice(
                format!(
                    "Content-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {}\r\n\r\n",
                    envelope.len()
                )
                .as_bytes(),
            );
            req.extend_from_slice(&envelope);
            // The envelope is recorded too, as sent.
            wants.extend(exact(&envelope));
        }
    }
    Ok(req)
}

fn case(u: &mut Unstructured<'_>) -> Result<Case> {
    let mut exchanges = Vec::new();
    let mut wants = Vec::new();
    let count = u.int_in_range(1..=8usize)?;
    for n in 0..count {
        let last = n + 1 == count;
        let get = format!("GET /f{n} HTTP/1.1\r\nHost: h\r\n\r\n").into_bytes();
        match u.int_in_range(0..=9u8)? {
            // Content-Length, maybe given twice with the same value.
            0 => {
                let b = body(u, 8192)?;
                let mut resp = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n", b.len()).into_bytes();
                if u.arbitrary::<bool>()? {
                    resp.extend_from_slice(format!("Content-Length: {}\r\n", b.len()).as_bytes());
                }
                let named = disposition(u, n)?;
                if let Some((cd, _)) = &named {
                    resp.extend_from_slice(format!("Content-Disposition: {cd}\r\n").as_bytes());
                }
                resp.extend_from_slice(b"\r\n");
                resp.extend_from_slice(&b);
                wants.extend(exact_named(&b, &named));
                exchanges.push(Exchange {
                    request: get,
                    response: resp,
                });
            }
            // Chunked, maybe with a Content-Length too (chunked wins), maybe with TE twice.
            1 => {
                let b = body(u, 8192)?;
                let mut resp = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n".to_vec();
                let mut doubled_te = false;
                match u.int_in_range(0..=2u8)? {
                    0 => resp.extend_from_slice(format!("Content-Length: {}\r\n", b.len() + 1).as_bytes()),
                    1 => {
                        resp.extend_from_slice(b"Transfer-Encoding: chunked\r\n");
                        doubled_te = true;
                    }
                    _ => {}
                }
                resp.extend_from_slice(b"\r\n");
                resp.extend_from_slice(&chunked(u, &b)?);
                if doubled_te && !b.is_empty() {
                    wants.push(Want::ExactOrMarked {
                        sha256: sha256_hex(&b),
                        size: b.len() as u64,
                        mark: Anomaly::TeDuplicate,
                    });
                } else {
                    wants.extend(exact(&b));
                }
                exchanges.push(Exchange {
                    request: get,
                    response: resp,
                });
            }
            // Content-Encoding: the file is the decoded body.
            2 => {
                let b = body(u, 8192)?;
                let (coding, encoded) = match u.arbitrary::<bool>()? {
                    true => {
                        let mut e = GzEncoder::new(Vec::new(), Compression::fast());
                        e.write_all(&b).expect("to a Vec");
                        ("gzip", e.finish().expect("to a Vec"))
                    }
                    false => {
                        let mut e = ZlibEncoder::new(Vec::new(), Compression::fast());
                        e.write_all(&b).expect("to a Vec");
                        ("deflate", e.finish().expect("to a Vec"))
                    }
                };
                let mut resp = format!("HTTP/1.1 200 OK\r\nContent-Encoding: {coding}\r\n").into_bytes();
                match u.arbitrary::<bool>()? {
                    true => {
                        resp.extend_from_slice(format!("Content-Length: {}\r\n\r\n", encoded.len()).as_bytes());
                        resp.extend_from_slice(&encoded);
                    }
                    false => {
                        resp.extend_from_slice(b"Transfer-Encoding: chunked\r\n\r\n");
                        resp.extend_from_slice(&chunked(u, &encoded)?);
                    }
                }
                wants.extend(exact(&b));
                exchanges.push(Exchange {
                    request: get,
                    response: resp,
                });
            }
            // One object in 206 pieces, sent in a chosen order.
            3 => {
                let mut object = body(u, 8192)?;
                object.push(b'#');
                let total = object.len();
                let mut pieces = Vec::new();
                let mut at = 0;
                while at < total {
                    // At most 32 pieces: each is an exchange, and thousands would only be slow.
                    let len = match u.is_empty() || pieces.len() == 31 {
                        true => total - at,
                        false => u.int_in_range(1..=total - at)?,
                    };
                    pieces.push((u.arbitrary::<u8>()?, at, at + len));
                    at += len;
                }
                pieces.sort_by_key(|p| p.0);
                for (_, start, end) in pieces {
                    let last_byte = end - 1;
                    let request =
                        format!("GET /obj{n} HTTP/1.1\r\nHost: h\r\nRange: bytes={start}-{last_byte}\r\n\r\n");
                    let mut resp = format!(
                        "HTTP/1.1 206 Partial Content\r\nETag: \"e{n}\"\r\nContent-Range: bytes {start}-{last_byte}/{total}\r\nContent-Length: {}\r\n\r\n",
                        end - start
                    )
                    .into_bytes();
                    resp.extend_from_slice(&object[start..end]);
                    exchanges.push(Exchange {
                        request: request.into_bytes(),
                        response: resp,
                    });
                }
                wants.extend(exact(&object));
            }
            // HEAD: a Content-Length, no body.
            4 => exchanges.push(Exchange {
                request: format!("HEAD /f{n} HTTP/1.1\r\nHost: h\r\n\r\n").into_bytes(),
                response: format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n",
                    u.int_in_range(1..=99_999u32)?
                )
                .into_bytes(),
            }),
            // 204 and 304 never have a body, whatever the headers say.
            5 => {
                let response = match u.arbitrary::<bool>()? {
                    true => b"HTTP/1.1 204 No Content\r\n\r\n".to_vec(),
                    false => format!(
                        "HTTP/1.1 304 Not Modified\r\nContent-Length: {}\r\n\r\n",
                        u.int_in_range(0..=9999u32)?
                    )
                    .into_bytes(),
                };
                exchanges.push(Exchange { request: get, response });
            }
            // An upload, answered with a small download.
            6 | 7 => {
                let request = upload(u, n, &mut wants)?;
                let answer = b"done";
                let mut response = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", answer.len()).into_bytes();
                response.extend_from_slice(answer);
                wants.extend(exact(answer));
                exchanges.push(Exchange { request, response });
            }
            // Last: a body delimited by the close.
            8 if last => {
                let b = body(u, 8192)?;
                let mut response = b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n".to_vec();
                response.extend_from_slice(&b);
                wants.extend(exact(&b));
                exchanges.push(Exchange { request: get, response });
            }
            // Last: Content-Length twice with different values; the framing is lost.
            9 if last => {
                let b = body(u, 8192)?;
                let mut response = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nContent-Length: {}\r\n\r\n",
                    b.len(),
                    b.len() + 7
                )
                .into_bytes();
                response.extend_from_slice(&b);
                if !b.is_empty() {
                    wants.push(Want::Marked(Anomaly::ClConflict));
                }
                exchanges.push(Exchange { request: get, response });
            }
            // The close-delimited and conflicting kinds anywhere but last: a plain small reply.
            _ => {
                wants.extend(exact(b"ok"));
                exchanges.push(Exchange {
                    request: get,
                    response: b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".to_vec(),
                });
            }
        }
    }
    let depth = u.int_in_range(1..=64usize)?;
    let mut cuts = Vec::new();
    for _ in 0..u.int_in_range(0..=32u8)? {
        cuts.push(u.int_in_range(1..=1460usize)?);
    }
    if cuts.is_empty() {
        cuts.push(1460);
    }
    Ok(Case {
        exchanges,
        wants,
        depth,
        cuts,
    })
}

/// The connection: sends each side's bytes as segments cut at the case's sizes.
struct Wire {
    engine: Engine,
    t: u64,
    client_seq: u32,
    server_seq: u32,
    cut: usize,
}

impl Wire {
    fn send(&mut self, f: Vec<u8>) {
        self.t += 1000;
        self.engine.handle_packet(Timestamp(self.t), LinkType::Ethernet, &f);
    }

    fn data(&mut self, from_client: bool, mut bytes: &[u8], cuts: &[usize]) {
        while !bytes.is_empty() {
            let n = cuts[self.cut % cuts.len()].min(bytes.len());
            self.cut += 1;
            let (seq, ack) = match from_client {
                true => (self.client_seq, self.server_seq),
                false => (self.server_seq, self.client_seq),
            };
            self.send(frame(from_client, seq, ack, PA, &bytes[..n]));
            match from_client {
                true => self.client_seq = self.client_seq.wrapping_add(n as u32),
                false => self.server_seq = self.server_seq.wrapping_add(n as u32),
            }
            bytes = &bytes[n..];
        }
    }
}

/// Takes a record that `want` matches out of `records`; false if none does.
fn take_match(want: &Want, records: &mut Vec<FileRecord>) -> bool {
    let exact_at = |sha256: &str, size: u64, records: &[FileRecord]| {
        records
            .iter()
            .position(|r| r.sha256.as_deref() == Some(sha256) && r.size == size && r.missing_bytes == 0)
    };
    match want {
        Want::Exact {
            sha256,
            size,
            filename: Some(name),
        } => match records.iter().position(|r| {
            r.sha256.as_deref() == Some(sha256.as_str())
                && r.size == *size
                && r.missing_bytes == 0
                && r.filename.as_deref() == Some(name.as_str())
        }) {
            Some(i) => {
                records.swap_remove(i);
                true
            }
            None => false,
        },
        Want::Exact {
            sha256,
            size,
            filename: None,
        } => match exact_at(sha256, *size, records) {
            Some(i) => {
                records.swap_remove(i);
                true
            }
            None => false,
        },
        Want::ExactOrMarked { sha256, size, mark } => match exact_at(sha256, *size, records) {
            Some(i) => {
                records.swap_remove(i);
                true
            }
            None => records.iter().any(|r| r.anomalies.contains(*mark)),
        },
        Want::Marked(mark) => records.iter().any(|r| r.anomalies.contains(*mark)),
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(c) = case(&mut Unstructured::new(data)) else {
        return;
    };
    let engine = Engine::new(EngineConfig {
        protocols: xdpcarve_protocols::registry(&Default::default()),
        max_flows: 16,
        memory: 16 << 20,
        hash_seed: Some(1),
        ..EngineConfig::default()
    });
    let (cisn, sisn) = (1_000u32, 5_000u32);
    let mut w = Wire {
        engine,
        t: 1_000_000_000,
        client_seq: cisn + 1,
        server_seq: sisn + 1,
        cut: 0,
    };
    w.send(frame(true, cisn, 0, SYN, b""));
    w.send(frame(false, sisn, cisn + 1, SYN | ACK, b""));
    w.send(frame(true, cisn + 1, sisn + 1, ACK, b""));
    for batch in c.exchanges.chunks(c.depth) {
        let requests: Vec<u8> = batch.iter().flat_map(|x| x.request.iter().copied()).collect();
        let responses: Vec<u8> = batch.iter().flat_map(|x| x.response.iter().copied()).collect();
        w.data(true, &requests, &c.cuts);
        w.data(false, &responses, &c.cuts);
    }
    let (cseq, sseq) = (w.client_seq, w.server_seq);
    w.send(frame(true, cseq, sseq, ACK, b""));
    w.send(frame(false, sseq, cseq, FA, b""));
    w.send(frame(true, cseq, sseq.wrapping_add(1), FA, b""));
    let t = w.t;
    let mut e = w.engine;
    e.finish(Timestamp(t + 1));
    let mut records: Vec<FileRecord> = e.drain_records().collect();
    let m = e.flow_memory();
    assert_eq!((m.connections, m.reassembly, m.parsers), (0, 0, 0), "{m:?}");
    let all = records.clone();
    // The most specific first, so a looser want cannot take the record a named one needs.
    let specificity = |w: &Want| match w {
        Want::Exact { filename: Some(_), .. } => 0,
        Want::Exact { filename: None, .. } => 1,
        Want::ExactOrMarked { .. } => 2,
        Want::Marked(_) => 3,
    };
    let mut wants: Vec<&Want> = c.wants.iter().collect();
    wants.sort_by_key(|w| specificity(w));
    for want in wants {
        assert!(
            take_match(want, &mut records),
            "not carved: {want:?}\nrecords: {all:#?}"
        );
    }
});
