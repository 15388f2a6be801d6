//! Drives `HttpParser` with a hand-built `AppContext`, checking records against hashes computed here.

use super::*;
use flate2::write::{DeflateEncoder, GzEncoder, ZlibEncoder};
use flate2::Compression;
use sha2::{Digest, Sha256};
use std::io::Write;
use xdpcarve_contract::{ConnMeta, FileConfig, FileSink, Timestamp};
use xdpcarve_mime::MimeConfig;

/// Owns everything an `AppContext` borrows.
struct Harness {
    http: Http,
    files: FileSink,
    conn: ConnMeta,
    now: Timestamp,
}

fn conn(port: u16) -> ConnMeta {
    ConnMeta {
        id: 1,
        files_opened: Default::default(),
        uid: format!("C{port}"),
        orig_h: "10.0.0.1".parse().unwrap(),
        orig_p: port,
        resp_h: "10.0.0.2".parse().unwrap(),
        resp_p: 80,
        vlan: None,
        start: Timestamp::ZERO,
    }
}

impl Harness {
    fn new() -> Self {
        Self::with(HttpConfig::default())
    }
    fn with(cfg: HttpConfig) -> Self {
        Harness {
            http: Http::new(cfg, MimeConfig::default()),
            files: FileSink::new(FileConfig::default()),
            conn: conn(40000),
            now: Timestamp::from_secs(100),
        }
    }
    fn parser(&self) -> HttpParser {
        HttpParser::new(&self.http.cfg)
    }
    fn cx(&mut self) -> HttpContext<'_> {
        AppContext {
            conn: &self.conn,
            now: self.now,
            files: &mut self.files,
            state: &mut self.http,
        }
    }
    fn send(&mut self, p: &mut HttpParser, side: Side, bytes: &[u8]) {
        p.on_data(side, bytes, &mut self.cx());
    }
    /// Sends in pieces of `n` bytes.
    fn send_split(&mut self, p: &mut HttpParser, side: Side, bytes: &[u8], n: usize) {
        for c in bytes.chunks(n) {
            p.on_data(side, c, &mut self.cx());
        }
    }
    fn gap(&mut self, p: &mut HttpParser, side: Side, len: u64) {
        p.on_gap(side, len, &mut self.cx());
    }
    fn end(&mut self, p: &mut HttpParser, side: Side) {
        p.on_end(side, &mut self.cx());
    }
    fn close(&mut self, p: &mut HttpParser, reason: CloseReason) {
        p.on_close(reason, &mut self.cx());
    }
    fn finish(&mut self, mut p: HttpParser) {
        self.end(&mut p, Side::Orig);
        self.end(&mut p, Side::Resp);
        self.close(&mut p, CloseReason::Finished);
    }
}

fn sha(d: &[u8]) -> String {
    Sha256::digest(d).iter().map(|b| format!("{b:02x}")).collect()
}

fn body_bytes(n: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

fn get(uri: &str) -> Vec<u8> {
    format!("GET {uri} HTTP/1.1\r\nHost: example.com\r\nUser-Agent: test/1.0\r\nReferer: http://r/\r\n\r\n")
        .into_bytes()
}

fn ok(ctype: &str, body: &[u8]) -> Vec<u8> {
    let mut r = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    r.extend_from_slice(body);
    r
}

fn chunked(body: &[u8], sizes: &[usize]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rest = body;
    let mut i = 0;
    while !rest.is_empty() {
        let n = sizes[i % sizes.len()].min(rest.len());
        out.extend_from_slice(format!("{n:x};ext{i}=\"v\"\r\n").as_bytes());
        out.extend_from_slice(&rest[..n]);
        out.extend_from_slice(b"\r\n");
        rest = &rest[n..];
        i += 1;
    }
    out.extend_from_slice(b"0\r\nX-Checksum: abc\r\nX-Other: 1\r\n\r\n");
    out
}

#[test]
fn simple_get_carves_the_response_body() {
    let body = body_bytes(5000, 1);
    let mut h = Harness::new();
    let mut p = h.parser();
    h.send(&mut p, Side::Orig, &get("/dir/file%20one.bin?x=1"));
    h.send(&mut p, Side::Resp, &ok("Application/Octet-Stream; charset=x", &body));
    assert_eq!(
        h.files.records.len(),
        1,
        "the file is closed when its Content-Length is reached"
    );
    h.finish(p);
    let r = &h.files.records[0];
    assert_eq!(r.sha256.as_deref(), Some(sha(&body).as_str()));
    assert_eq!(r.size, 5000);
    assert_eq!(r.total_bytes, Some(5000));
    assert_eq!(r.filename.as_deref(), Some("file one.bin"));
    assert_eq!(r.declared_mime_type.as_deref(), Some("application/octet-stream"));
    assert_eq!(r.direction, Direction::Download);
    assert_eq!(r.fields.str("http_method"), Some("GET"));
    assert_eq!(r.fields.str("http_uri"), Some("/dir/file%20one.bin?x=1"));
    assert_eq!(r.fields.u64("http_status"), Some(200));
    assert_eq!(r.fields.str("http_host"), Some("example.com"));
    assert_eq!(r.fields.str("http_user_agent"), Some("test/1.0"));
    assert_eq!(r.fields.str("http_referrer"), Some("http://r/"));
    assert!(!r.truncated);
    assert_eq!((h.http.stats.requests, h.http.stats.responses), (1, 1));
}

#[test]
fn every_split_point_gives_the_same_record() {
    let body = b"%PDF-1.4 small body over a keep-alive connection\n".to_vec();
    let mut post = b"POST /up HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\nhello world".to_vec();
    post.extend_from_slice(&get("/second.pdf"));
    let resp = [
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".to_vec(),
        ok("application/pdf", &body),
    ]
    .concat();
    for n in 1..=resp.len().max(post.len()) {
        let mut h = Harness::new();
        let mut p = h.parser();
        h.send_split(&mut p, Side::Orig, &post, n);
        h.send_split(&mut p, Side::Resp, &resp, n);
        h.finish(p);
        assert_eq!(h.files.records.len(), 3, "split {n}");
        let up = &h.files.records[0];
        assert_eq!((up.direction, up.size), (Direction::Upload, 11), "split {n}");
        assert_eq!(up.sha256.as_deref(), Some(sha(b"hello world").as_str()));
        assert_eq!(h.files.records[1].sha256.as_deref(), Some(sha(b"ok").as_str()));
        let pdf = &h.files.records[2];
        assert_eq!(pdf.sha256.as_deref(), Some(sha(&body).as_str()), "split {n}");
        assert_eq!(pdf.filename.as_deref(), Some("second.pdf"));
        assert_eq!(pdf.mime_type.as_deref(), Some("application/pdf"));
        assert_eq!(h.http.stats.resyncs, 0);
    }
}

#[test]
fn one_byte_at_a_time_chunked_with_extensions_and_trailers() {
    let body = body_bytes(3000, 2);
    let mut resp = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    resp.extend(chunked(&body, &[1, 700, 16, 2000]));
    resp.extend(ok("text/plain", b"next"));
    let mut h = Harness::new();
    let mut p = h.parser();
    h.send(&mut p, Side::Orig, &[get("/a"), get("/b")].concat());
    h.send_split(&mut p, Side::Resp, &resp, 1);
    h.finish(p);
    assert_eq!(h.files.records.len(), 2);
    assert_eq!(h.files.records[0].sha256.as_deref(), Some(sha(&body).as_str()));
    assert_eq!(h.files.records[0].total_bytes, None);
    assert_eq!(h.files.records[1].sha256.as_deref(), Some(sha(b"next").as_str()));
    assert_eq!(h.files.records[1].fields.str("http_uri"), Some("/b"));
    assert_eq!(h.http.stats.chunked_errors, 0);
}

#[test]
fn pipelined_requests_pair_fifo_including_head() {
    let mut h = Harness::new();
    let mut p = h.parser();
    let reqs = [
        get("/one"),
        b"HEAD /two HTTP/1.1\r\nHost: h\r\n\r\n".to_vec(),
        get("/three"),
    ]
    .concat();
    h.send(&mut p, Side::Orig, &reqs);
    let resps = [
        ok("text/plain", b"first"),
        // HEAD: Content-Length describes the GET body, none follows.
        b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n".to_vec(),
        ok("text/plain", b"third"),
    ]
    .concat();
    h.send(&mut p, Side::Resp, &resps);
    h.finish(p);
    let got: Vec<_> = h
        .files
        .records
        .iter()
        .map(|r| (r.fields.str("http_uri").unwrap().to_string(), r.size))
        .collect();
    assert_eq!(got, vec![("/one".to_string(), 5), ("/three".to_string(), 5)]);
    assert_eq!(h.http.stats.pipelined_requests, 2);
    assert_eq!(h.http.stats.responses, 3);
}

#[test]
fn no_body_for_204_304_and_empty_bodies() {
    let mut h = Harness::new();
    let mut p = h.parser();
    h.send(
        &mut p,
        Side::Orig,
        &[get("/a"), get("/b"), get("/c"), get("/d")].concat(),
    );
    let resps = [
        b"HTTP/1.1 204 No Content\r\n\r\n".to_vec(),
        b"HTTP/1.1 304 Not Modified\r\nContent-Length: 50\r\n\r\n".to_vec(),
        b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n".to_vec(),
        ok("text/plain", b"d-body"),
    ]
    .concat();
    h.send(&mut p, Side::Resp, &resps);
    h.finish(p);
    assert_eq!(h.files.records.len(), 1);
    assert_eq!(h.files.records[0].fields.str("http_uri"), Some("/d"));
    assert_eq!(h.files.records[0].size, 6);
}

#[test]
fn several_100_continue_before_the_final_response() {
    let body = body_bytes(4000, 3);
    let mut h = Harness::new();
    let mut p = h.parser();
    let head = b"PUT /up/data.bin HTTP/1.1\r\nHost: h\r\nContent-Length: 4000\r\nExpect: 100-continue\r\n\r\n".to_vec();
    h.send(&mut p, Side::Orig, &head);
    h.send(&mut p, Side::Resp, b"HTTP/1.1 100 Continue\r\n\r\n");
    h.send(&mut p, Side::Orig, &body[..1000]);
    h.send(
        &mut p,
        Side::Resp,
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 100 Continue\r\n\r\n",
    );
    h.send(&mut p, Side::Orig, &body[1000..]);
    h.send(&mut p, Side::Resp, &ok("text/html", b"<p>stored</p>"));
    h.finish(p);
    assert_eq!(h.files.records.len(), 2);
    let up = &h.files.records[0];
    assert_eq!(
        (up.direction, up.size, up.filename.as_deref()),
        (Direction::Upload, 4000, Some("data.bin"))
    );
    assert_eq!(up.sha256.as_deref(), Some(sha(&body).as_str()));
    assert_eq!(up.fields.str("http_method"), Some("PUT"));
    let down = &h.files.records[1];
    assert_eq!(
        (down.fields.u64("http_status"), down.fields.str("http_uri")),
        (Some(200), Some("/up/data.bin"))
    );
    assert_eq!(h.http.stats.interim_responses, 3);
    assert_eq!(h.http.stats.unmatched_responses, 0);
}

#[test]
fn close_delimited_body_complete_on_fin_truncated_on_timeout() {
    let body = body_bytes(10_000, 4);
    let mut resp = b"HTTP/1.0 200 OK\r\nContent-Type: image/gif\r\n\r\n".to_vec();
    resp.extend_from_slice(&body);

    let mut h = Harness::new();
    let mut p = h.parser();
    h.send(&mut p, Side::Orig, &get("/img.gif"));
    h.send_split(&mut p, Side::Resp, &resp, 1460);
    assert!(h.files.records.is_empty(), "no end yet");
    h.finish(p);
    assert_eq!(h.files.records.len(), 1);
    assert!(!h.files.records[0].truncated);
    assert_eq!(h.files.records[0].sha256.as_deref(), Some(sha(&body).as_str()));

    let mut h = Harness::new();
    let mut p = h.parser();
    h.send(&mut p, Side::Orig, &get("/img.gif"));
    h.send(&mut p, Side::Resp, &resp);
    h.close(&mut p, CloseReason::Timeout);
    assert_eq!(h.files.records.len(), 1);
    assert_eq!(h.files.records[0].truncated_reason.as_deref(), Some("timeout"));
    assert!(h.files.records[0].sha256.is_none());
}

#[test]
fn content_length_body_cut_short_is_truncated() {
    let mut h = Harness::new();
    let mut p = h.parser();
    h.send(&mut p, Side::Orig, &get("/x"));
    h.send(
        &mut p,
        Side::Resp,
        b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this",
    );
    h.finish(p);
    let r = &h.files.records[0];
    assert_eq!(
        (r.size, r.truncated, r.truncated_reason.as_deref()),
        (9, true, Some("conn_closed"))
    );
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

#[test]
fn gzip_and_deflate_bodies_are_hashed_decoded() {
    let body: Vec<u8> = b"<html>"
        .iter()
        .chain(b"compressible text ".repeat(2000).iter())
        .copied()
        .collect();
    let mut zlib = ZlibEncoder::new(Vec::new(), Compression::default());
    zlib.write_all(&body).unwrap();
    let mut raw = DeflateEncoder::new(Vec::new(), Compression::default());
    raw.write_all(&body).unwrap();
    let cases = [
        ("gzip", gzip(&body)),
        ("x-gzip", gzip(&body)),
        ("deflate", zlib.finish().unwrap()),
        ("Deflate", raw.finish().unwrap()),
    ];
    for (coding, enc) in cases {
        for chunk in [false, true] {
            let mut resp =
                format!("HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Encoding: {coding}\r\n").into_bytes();
            if chunk {
                resp.extend_from_slice(b"Transfer-Encoding: chunked\r\n\r\n");
                resp.extend(chunked(&enc, &[100, 3]));
            } else {
                resp.extend_from_slice(format!("Content-Length: {}\r\n\r\n", enc.len()).as_bytes());
                resp.extend_from_slice(&enc);
            }
            let mut h = Harness::new();
            let mut p = h.parser();
            h.send(&mut p, Side::Orig, &get("/page"));
            h.send_split(&mut p, Side::Resp, &resp, 77);
            h.finish(p);
            assert_eq!(h.files.records.len(), 1, "{coding} chunked={chunk}");
            let r = &h.files.records[0];
            assert_eq!(
                r.sha256.as_deref(),
                Some(sha(&body).as_str()),
                "{coding} chunked={chunk}"
            );
            assert_eq!((r.size, r.total_bytes, r.truncated), (body.len() as u64, None, false));
        }
    }
}

#[test]
fn decompression_bomb_is_bounded() {
    let bomb = gzip(&vec![0u8; 20 << 20]);
    let cfg = HttpConfig {
        max_decompressed_bytes: 5 << 20,
        ..HttpConfig::default()
    };
    let mut h = Harness::with(cfg);
    let mut p = h.parser();
    h.send(&mut p, Side::Orig, &[get("/bomb"), get("/after")].concat());
    let mut resp = format!(
        "HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: {}\r\n\r\n",
        bomb.len()
    )
    .into_bytes();
    resp.extend_from_slice(&bomb);
    resp.extend(ok("text/plain", b"after"));
    h.send_split(&mut p, Side::Resp, &resp, 1460);
    h.finish(p);
    assert_eq!(h.files.records.len(), 2);
    let r = &h.files.records[0];
    assert!(r.truncated);
    assert_eq!(r.truncated_reason.as_deref(), Some("decompression_limit"));
    assert!(r.size <= 5 << 20);
    assert!(r.sha256.is_none());
    assert_eq!(h.http.stats.decompress_limited, 1);
    assert_eq!(
        h.files.records[1].sha256.as_deref(),
        Some(sha(b"after").as_str()),
        "framing kept after the limit"
    );

    // The ratio bound alone stops it too (20 MiB out of ~20 KiB in).
    let mut h = Harness::new();
    let mut p = h.parser();
    h.send(&mut p, Side::Orig, &get("/bomb"));
    h.send_split(&mut p, Side::Resp, &resp, 1460);
    h.finish(p);
    assert_eq!(
        h.files.records[0].truncated_reason.as_deref(),
        Some("decompression_limit")
    );
}

#[test]
fn corrupt_gzip_keeps_what_decoded_as_browsers_do() {
    let mut h = Harness::new();
    let mut p = h.parser();
    h.send(&mut p, Side::Orig, &get("/bad"));
    let junk = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03this is not deflate data at all!";
    let mut resp = format!(
        "HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: {}\r\n\r\n",
        junk.len()
    )
    .into_bytes();
    resp.extend_from_slice(junk);
    h.send(&mut p, Side::Resp, &resp);
    h.finish(p);
    assert_eq!(h.files.records.len(), 1);
    let rec = &h.files.records[0];
    assert_eq!(rec.size, 0, "nothing decoded before the damage");
    assert!(rec.anomalies.contains(Anomaly::CeDecodeError));
    assert_eq!(h.http.stats.decompress_errors, 1);
}

#[test]
fn unknown_encoding_is_hashed_as_sent() {
    let mut h = Harness::new();
    let mut p = h.parser();
    h.send(&mut p, Side::Orig, &get("/br"));
    h.send(
        &mut p,
        Side::Resp,
        b"HTTP/1.1 200 OK\r\nContent-Encoding: br\r\nContent-Length: 4\r\n\r\n\x0b\x01\x80\x03",
    );
    h.finish(p);
    assert_eq!(
        h.files.records[0].sha256.as_deref(),
        Some(sha(b"\x0b\x01\x80\x03").as_str())
    );
    assert_eq!(h.http.stats.unknown_encodings, 1);
}

#[test]
fn connect_and_upgrade_end_parsing() {
    let mut h = Harness::new();
    let mut p = h.parser();
    h.send(
        &mut p,
        Side::Orig,
        b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n\x16\x03\x01 tls hello",
    );
    assert!(!p.is_done());
    h.send(
        &mut p,
        Side::Resp,
        b"HTTP/1.1 200 Connection established\r\n\r\n\x16\x03\x03",
    );
    assert!(p.is_done());
    assert_eq!(h.http.stats.tunnels, 1);
    assert_eq!(
        h.http.stats.malformed_requests, 0,
        "tunnel bytes are not parsed as requests"
    );

    // A refused CONNECT leaves the connection HTTP.
    let mut h = Harness::new();
    let mut p = h.parser();
    h.send(&mut p, Side::Orig, b"CONNECT example.com:443 HTTP/1.1\r\n\r\n");
    h.send(
        &mut p,
        Side::Resp,
        b"HTTP/1.1 407 Proxy Auth\r\nContent-Length: 4\r\n\r\ndeny",
    );
    assert!(!p.is_done());
    h.send(&mut p, Side::Orig, &get("/after"));
    h.send(&mut p, Side::Resp, &ok("text/plain", b"fine"));
    h.finish(p);
    assert_eq!(h.files.records.len(), 2);
    assert_eq!(h.files.records[1].fields.str("http_uri"), Some("/after"));

    let mut h = Harness::new();
    let mut p = h.parser();
    h.send(
        &mut p,
        Side::Orig,
        b"GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
    );
    h.send(
        &mut p,
        Side::Resp,
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n\x81\x05hello",
    );
    assert!(p.is_done());
}

/// Two connections of one worker fetch two ranges of the same object: one file.
fn range_pieces(order: &[usize]) -> Harness {
    let object = body_bytes(100_000, 5);
    let ranges = [(0usize, 32_767usize), (32_768, 99_999)];
    let mut h = Harness::new();
    let mut parsers: Vec<HttpParser> = (0..2).map(|_| h.parser()).collect();
    // Headers of both first, then the bodies in `order`, interleaved by segment.
    let mut bodies = Vec::new();
    for (i, &(a, b)) in ranges.iter().enumerate() {
        h.conn = conn(40000 + i as u16);
        let req = format!("GET /files/report.pdf HTTP/1.1\r\nHost: dl.example\r\nRange: bytes={a}-{b}\r\n\r\n");
        h.send(&mut parsers[i], Side::Orig, req.as_bytes());
        let head = format!(
            "HTTP/1.1 206 Partial Content\r\nContent-Type: application/pdf\r\nETag: \"abc\"\r\nContent-Range: bytes {a}-{b}/100000\r\nContent-Length: {}\r\n\r\n",
            b - a + 1
        );
        h.send(&mut parsers[i], Side::Resp, head.as_bytes());
        bodies.push(object[a..=b].to_vec());
    }
    for &i in order {
        h.conn = conn(40000 + i as u16);
        h.send_split(&mut parsers[i], Side::Resp, &bodies[i], 1460);
    }
    for (i, p) in parsers.into_iter().enumerate() {
        h.conn = conn(40000 + i as u16);
        h.finish(p);
    }
    h
}

#[test]
fn range_pieces_in_order_make_one_file() {
    let h = range_pieces(&[0, 1]);
    let object = body_bytes(100_000, 5);
    assert_eq!(h.files.records.len(), 1);
    let r = &h.files.records[0];
    assert_eq!(r.sha256.as_deref(), Some(sha(&object).as_str()));
    assert_eq!(
        (r.size, r.total_bytes, r.partial, r.truncated),
        (100_000, Some(100_000), false, false)
    );
    assert_eq!(r.fields.str("http_range"), Some("0-99999/100000"));
    assert_eq!(r.fields.u64("http_status"), Some(206));
    assert_eq!(r.filename.as_deref(), Some("report.pdf"));
    assert_eq!(h.http.stats.partial_content, 2);
}

#[test]
fn range_pieces_out_of_order_make_one_file() {
    let h = range_pieces(&[1, 0]);
    assert_eq!(h.files.records.len(), 1);
    assert_eq!(
        h.files.records[0].sha256.as_deref(),
        Some(sha(&body_bytes(100_000, 5)).as_str())
    );
    assert!(h.http.ranged.is_empty());
}

#[test]
fn a_lone_range_piece_is_flushed_as_partial() {
    let mut h = range_pieces(&[0]);
    assert!(h.files.records.is_empty());
    h.http.ranged.flush_all(Timestamp::from_secs(200), &mut h.files);
    let out = &h.files.records;
    assert_eq!(out.len(), 1);
    assert!(out[0].partial && out[0].truncated);
    assert_eq!((out[0].size, out[0].missing_bytes), (32_768, 100_000 - 32_768));
}

#[test]
fn multipart_byteranges_is_a_partial_file() {
    let mut h = Harness::new();
    let mut p = h.parser();
    h.send(&mut p, Side::Orig, &get("/f"));
    h.send(&mut p, Side::Resp, b"HTTP/1.1 206 Partial Content\r\nContent-Type: multipart/byteranges; boundary=x\r\nContent-Length: 5\r\n\r\nabcde");
    h.finish(p);
    assert_eq!(h.files.records.len(), 1);
    assert!(h.files.records[0].partial);
}

#[test]
fn unmatched_response_is_still_carved() {
    let mut h = Harness::new();
    let mut p = h.parser();
    // Mid-stream pickup: the client side starts inside something that is not a request.
    h.send(&mut p, Side::Orig, b"\x85\x00\x00\x00%lG\x81binary");
    h.send(&mut p, Side::Resp, &ok("text/html", b"<html>400</html>"));
    h.finish(p);
    assert_eq!(h.files.records.len(), 1);
    assert_eq!(h.files.records[0].size, 16);
    assert_eq!(h.http.stats.unmatched_responses, 1);
    assert_eq!(h.http.stats.malformed_requests, 1);
}

#[test]
fn http09_style_reply_is_not_a_file() {
    let mut h = Harness::new();
    let mut p = h.parser();
    h.send(&mut p, Side::Orig, b"GET /\r\n\r\n");
    h.send(&mut p, Side::Resp, b"<html>just bytes, no status line</html>\r\n");
    h.finish(p);
    assert!(h.files.records.is_empty());
    assert_eq!(h.http.stats.malformed_responses, 1);
}

#[test]
fn garbage_never_panics_and_recovery_follows() {
    for seed in 0..50u32 {
        let junk = body_bytes(3000, seed);
        let mut h = Harness::new();
        let mut p = h.parser();
        for (i, c) in junk.chunks(97).enumerate() {
            let side = if i % 2 == 0 { Side::Orig } else { Side::Resp };
            h.send(&mut p, side, c);
            if i % 7 == 0 {
                h.gap(&mut p, side, (i * 13) as u64);
            }
        }
        // A fresh transaction after line breaks is found again.
        h.send(&mut p, Side::Orig, b"\r\n");
        h.send(&mut p, Side::Orig, &get("/ok"));
        h.send(&mut p, Side::Resp, b"\r\n");
        h.send(&mut p, Side::Resp, &ok("text/plain", b"recovered"));
        h.finish(p);
        assert!(
            h.files
                .records
                .iter()
                .any(|r| r.sha256.as_deref() == Some(sha(b"recovered").as_str())),
            "seed {seed}: {:?}",
            h.files.records
        );
    }
}

#[test]
fn header_too_large_is_skipped() {
    let cfg = HttpConfig {
        max_header_bytes: 1024,
        ..HttpConfig::default()
    };
    let mut h = Harness::with(cfg);
    let mut p = h.parser();
    let mut big = b"GET /big HTTP/1.1\r\n".to_vec();
    for i in 0..100 {
        big.extend_from_slice(format!("X-Filler-{i}: 0123456789012345678901234567890123456789\r\n").as_bytes());
    }
    big.extend_from_slice(b"\r\n");
    big.extend(get("/small"));
    h.send_split(&mut p, Side::Orig, &big, 100);
    h.send(&mut p, Side::Resp, &ok("text/plain", b"small"));
    h.finish(p);
    assert_eq!(h.http.stats.header_too_large, 1);
    assert_eq!(h.http.stats.requests, 1);
    assert_eq!(h.files.records[0].fields.str("http_uri"), Some("/small"));
}

#[test]
fn gap_in_a_body_keeps_the_file_and_the_framing() {
    let body = body_bytes(5000, 6);
    let mut h = Harness::new();
    let mut p = h.parser();
    h.send(&mut p, Side::Orig, &[get("/a.bin"), get("/b")].concat());
    let resp = ok("application/octet-stream", &body);
    let head_len = resp.len() - body.len();
    h.send(&mut p, Side::Resp, &resp[..head_len + 1000]);
    h.gap(&mut p, Side::Resp, 1500);
    h.send(&mut p, Side::Resp, &resp[head_len + 2500..]);
    h.send(&mut p, Side::Resp, &ok("text/plain", b"second"));
    h.finish(p);
    assert_eq!(h.files.records.len(), 2);
    let r = &h.files.records[0];
    assert_eq!((r.size, r.missing_bytes, r.truncated), (3500, 1500, false));
    assert!(r.sha256.is_none());
    assert_eq!(h.files.records[1].sha256.as_deref(), Some(sha(b"second").as_str()));

    // Chunked: a gap inside chunk data keeps the framing.
    let mut h = Harness::new();
    let mut p = h.parser();
    h.send(&mut p, Side::Orig, &get("/c"));
    h.send(
        &mut p,
        Side::Resp,
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n100\r\nabc",
    );
    h.gap(&mut p, Side::Resp, 200);
    h.send(&mut p, Side::Resp, &[&[b'z'; 53][..], b"\r\n0\r\n\r\n"].concat());
    h.finish(p);
    assert_eq!(
        (
            h.files.records[0].size,
            h.files.records[0].missing_bytes,
            h.files.records[0].truncated
        ),
        (56, 200, false)
    );
}

#[test]
fn gap_in_headers_resyncs_to_the_next_message() {
    let mut h = Harness::new();
    let mut p = h.parser();
    h.send(&mut p, Side::Orig, b"GET /lost HTTP/1.1\r\nHost: ");
    h.gap(&mut p, Side::Orig, 40);
    h.send(&mut p, Side::Orig, b"rest-of-a-header\r\n\r\n");
    h.send(&mut p, Side::Orig, &get("/found"));
    h.send(&mut p, Side::Resp, &ok("text/plain", b"found"));
    h.finish(p);
    assert_eq!(h.http.stats.resyncs, 1);
    assert_eq!(h.files.records.len(), 1);
    assert_eq!(h.files.records[0].fields.str("http_uri"), Some("/found"));
}

#[test]
fn on_close_truncates_open_files_with_the_reason() {
    let mut h = Harness::new();
    let mut p = h.parser();
    h.send(
        &mut p,
        Side::Orig,
        b"POST /u HTTP/1.1\r\nContent-Length: 100\r\n\r\npartial",
    );
    h.close(&mut p, CloseReason::Evicted);
    assert_eq!(h.files.records.len(), 1);
    assert_eq!(h.files.records[0].truncated_reason.as_deref(), Some("evicted"));
}

#[test]
fn content_disposition_names_the_file() {
    let mut h = Harness::new();
    let mut p = h.parser();
    h.send(&mut p, Side::Orig, &get("/download?id=7"));
    h.send(
        &mut p,
        Side::Resp,
        b"HTTP/1.1 200 OK\r\nContent-Disposition: attachment; filename=\"a.txt\"; filename*=UTF-8''%C3%A9t%C3%A9.exe\r\nContent-Length: 2\r\n\r\nMZ",
    );
    h.send(&mut p, Side::Orig, &get("/download?id=8"));
    h.send(&mut p, Side::Resp, &ok("text/plain", b"x"));
    h.finish(p);
    assert_eq!(h.files.records[0].filename.as_deref(), Some("été.exe"));
    assert_eq!(h.files.records[1].filename.as_deref(), Some("download"));
}

#[test]
fn form_data_upload_carves_each_part_under_the_envelope() {
    let file = body_bytes(20_000, 7);
    let mut body = b"--XyZ\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhello\r\n".to_vec();
    body.extend_from_slice(
        b"--XyZ\r\nContent-Disposition: form-data; name=\"up\"; filename=\"tool.exe\"\r\nContent-Type: application/x-msdownload\r\n\r\n",
    );
    body.extend_from_slice(&file);
    body.extend_from_slice(b"\r\n--XyZ--\r\n");
    let mut req = format!(
        "POST /submit HTTP/1.1\r\nHost: up.example\r\nContent-Type: multipart/form-data; boundary=\"XyZ\"\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(&body);
    for split in [1, 1460] {
        let mut h = Harness::new();
        let mut p = h.parser();
        h.send_split(&mut p, Side::Orig, &req, split);
        h.send(&mut p, Side::Resp, &ok("text/plain", b"thanks"));
        h.finish(p);
        let part = h
            .files
            .records
            .iter()
            .find(|r| r.filename.as_deref() == Some("tool.exe"))
            .expect("file part");
        assert_eq!(part.sha256.as_deref(), Some(sha(&file).as_str()), "split {split}");
        assert_eq!((part.size, part.direction), (20_000, Direction::Upload));
        assert_eq!(part.fields.str("http_method"), Some("POST"));
        assert_eq!(part.fields.str("http_uri"), Some("/submit"));
        // The envelope is recorded as the parts' parent, typed so it is not mistaken for a part.
        let env = h
            .files
            .records
            .iter()
            .find(|r| r.sha256.as_deref() == Some(sha(&body).as_str()))
            .expect("envelope");
        assert_eq!(
            (env.depth, env.declared_mime_type.as_deref()),
            (0, Some("multipart/form-data"))
        );
        assert_eq!((part.depth, part.parent_fuid.as_deref()), (1, Some(env.fuid.as_str())));
        assert_eq!(
            h.files.records.len(),
            4,
            "envelope, text field, file part, response: each form field is a file too"
        );
        assert_eq!(h.http.stats.multipart_uploads, 1);
        assert_eq!(
            h.files.records.last().unwrap().sha256.as_deref(),
            Some(sha(b"thanks").as_str())
        );
    }
}

/// One bent response to `GET /f`, delivered in pieces of every size in `pieces`, then FIN.
/// Returns the download records.
fn carve_bent(response: &[u8], pieces: &[usize]) -> Vec<xdpcarve_contract::FileRecord> {
    let mut out: Option<Vec<xdpcarve_contract::FileRecord>> = None;
    for &n in pieces {
        let mut h = Harness::new();
        let mut p = h.parser();
        h.send(&mut p, Side::Orig, &get("/f"));
        h.send_split(&mut p, Side::Resp, response, n);
        h.end(&mut p, Side::Resp);
        h.finish(p);
        let recs = std::mem::take(&mut h.files.records);
        if let Some(prev) = &out {
            let sums = |r: &[xdpcarve_contract::FileRecord]| r.iter().map(|r| r.sha256.clone()).collect::<Vec<_>>();
            assert_eq!(sums(prev), sums(&recs), "pieces of {n} disagree");
        }
        out = Some(recs);
    }
    out.unwrap_or_default()
}

fn has(rec: &xdpcarve_contract::FileRecord, a: Anomaly) -> bool {
    rec.anomalies.contains(a)
}

const PIECES: &[usize] = &[1, 2, 7, 64, 100_000];

#[test]
fn evasion_chunk_size_lines_bent_as_browsers_tolerate() {
    let body = body_bytes(300, 9);
    let sizes: [&[u8]; 6] = [
        b"12c\r\r\n",
        b"\r12c\r\n",
        b"\x0b12c\r\n",
        b"012C\r\n",
        b"12c;x=y\r\n",
        b"12c \t\r\n",
    ];
    let anomalies = [
        Some(Anomaly::ChunkSizeBareCr),
        Some(Anomaly::ChunkSizeBareCr),
        Some(Anomaly::ChunkSizeWhitespace),
        None,
        Some(Anomaly::ChunkExtension),
        Some(Anomaly::ChunkSizeWhitespace),
    ];
    for (size, anomaly) in sizes.iter().zip(anomalies) {
        let mut r = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        r.extend_from_slice(size);
        r.extend_from_slice(&body);
        r.extend_from_slice(b"\r\n0\r\n\r\n");
        let recs = carve_bent(&r, PIECES);
        assert_eq!(recs.len(), 1, "{size:?}");
        assert_eq!(recs[0].sha256.as_deref(), Some(sha(&body).as_str()), "{size:?}");
        if let Some(a) = anomaly {
            assert!(has(&recs[0], a), "{size:?}: {:?}", recs[0].anomalies);
        } else {
            assert!(recs[0].anomalies.is_empty(), "{size:?}: {:?}", recs[0].anomalies);
        }
    }
}

#[test]
fn evasion_transfer_encodings_browsers_do_not_take_as_chunked() {
    let body = body_bytes(200, 3);
    let framed = chunked(&body, &[50, 150]);
    // Not `chunked` to a browser: the body is read by Content-Length, or to the close, as sent.
    for te in ["chunked;", "xchunked", "chunked-x", "chunked x"] {
        let mut r = format!("HTTP/1.1 200 OK\r\nTransfer-Encoding: {te}\r\n\r\n").into_bytes();
        r.extend_from_slice(&framed);
        let recs = carve_bent(&r, PIECES);
        assert_eq!(recs[0].sha256.as_deref(), Some(sha(&framed).as_str()), "{te}");
        assert!(has(&recs[0], Anomaly::TeUnknown), "{te}");
        let mut r = format!(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: {te}\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        r.extend_from_slice(&body);
        assert_eq!(
            carve_bent(&r, PIECES)[0].sha256.as_deref(),
            Some(sha(&body).as_str()),
            "{te} + CL"
        );
    }
    // chunked on HTTP/1.0 is ignored by browsers.
    let mut r = b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    r.extend_from_slice(&framed);
    let recs = carve_bent(&r, PIECES);
    assert_eq!(recs[0].sha256.as_deref(), Some(sha(&framed).as_str()));
    assert!(has(&recs[0], Anomaly::TeOnHttp10));
    // Whitespace before the colon is trimmed; a CR there splits the line and loses the header.
    for (sep, dechunked) in [(" :", true), ("\t:", true), ("\r:", false)] {
        let mut r = format!("HTTP/1.1 200 OK\r\nTransfer-Encoding{sep} chunked\r\n\r\n").into_bytes();
        r.extend_from_slice(&framed);
        let want = if dechunked { &body } else { &framed };
        assert_eq!(
            carve_bent(&r, PIECES)[0].sha256.as_deref(),
            Some(sha(want).as_str()),
            "{sep:?}"
        );
    }
    // Chunked wins over Content-Length.
    let mut r = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    r.extend_from_slice(&framed);
    let recs = carve_bent(&r, PIECES);
    assert_eq!(recs[0].sha256.as_deref(), Some(sha(&body).as_str()));
    assert!(has(&recs[0], Anomaly::TeAndCl));
}

#[test]
fn evasion_status_lines_browsers_accept() {
    let body = body_bytes(100, 5);
    for status in [
        "HTTP/1.01 200 OK",
        "HTTP/1.10 200 OK",
        "HTTP/2.0 200 OK",
        "HTTP/0.9 200 OK",
        "http/1.1 200 OK",
        "HTTP/1.1 200",
        "HTTP/1.1",
        "HTTP/1.1  200  OK",
        "\r\n\r\nHTTP/1.1 200 OK",
        "junkHTTP/1.1 200 OK",
    ] {
        let mut r = format!("{status}\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes();
        r.extend_from_slice(&body);
        let recs = carve_bent(&r, PIECES);
        assert_eq!(recs.len(), 1, "{status:?}");
        assert_eq!(recs[0].sha256.as_deref(), Some(sha(&body).as_str()), "{status:?}");
        assert_eq!(recs[0].fields.u64("http_status"), Some(200), "{status:?}");
        assert!(!recs[0].anomalies.is_empty() || status == "HTTP/1.1 200", "{status:?}");
    }
    // Bare LF and bare CR line ends.
    for head in [
        "HTTP/1.1 200 OK\nContent-Length: 100\n\n",
        "HTTP/1.1 200 OK\rContent-Length: 100\r\r",
    ] {
        let mut r = head.as_bytes().to_vec();
        r.extend_from_slice(&body);
        let recs = carve_bent(&r, PIECES);
        assert_eq!(recs[0].sha256.as_deref(), Some(sha(&body).as_str()), "{head:?}");
        assert!(has(&recs[0], Anomaly::BareLf) || has(&recs[0], Anomaly::BareCr));
    }
}

#[test]
fn evasion_http09_reply_is_the_body_to_the_close() {
    let body = b"MZ\x90\x00 an HTTP/0.9 reply has no status line and no headers".to_vec();
    let recs = carve_bent(&body, PIECES);
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].sha256.as_deref(), Some(sha(&body).as_str()));
    assert!(has(&recs[0], Anomaly::Http09Response));
    assert_eq!(recs[0].fields.str("http_uri"), Some("/f"));
}

#[test]
fn evasion_content_encodings_as_browsers_decode_them() {
    let body = body_bytes(5000, 11);
    let gz = gzip(&body);
    let raw_deflate = {
        let mut e = DeflateEncoder::new(Vec::new(), Compression::default());
        e.write_all(&body).unwrap();
        e.finish().unwrap()
    };
    let with = |ce: &str, payload: &[u8]| {
        let mut r = format!("HTTP/1.1 200 OK\r\n{ce}Content-Length: {}\r\n\r\n", payload.len()).into_bytes();
        r.extend_from_slice(payload);
        carve_bent(&r, PIECES)
    };
    let recs = with("Content-Encoding: deflate\r\n", &raw_deflate);
    assert_eq!(recs[0].sha256.as_deref(), Some(sha(&body).as_str()));
    assert!(has(&recs[0], Anomaly::CeRawDeflate));
    // Doubled: undone twice, last first.
    let twice = gzip(&gz);
    for ce in [
        "Content-Encoding: gzip, gzip\r\n",
        "Content-Encoding: gzip\r\nContent-Encoding: x-gzip\r\n",
    ] {
        let recs = with(ce, &twice);
        assert_eq!(recs[0].sha256.as_deref(), Some(sha(&body).as_str()), "{ce:?}");
        assert!(has(&recs[0], Anomaly::CeStacked));
    }
    // An unknown coding anywhere leaves the body as sent.
    let recs = with("Content-Encoding: gzip, foo\r\n", &gz);
    assert_eq!(recs[0].sha256.as_deref(), Some(sha(&gz).as_str()));
    assert!(has(&recs[0], Anomaly::CeUnknown));
    // Damaged, missing trailer; extra member ignored.
    let mut bad = gz.clone();
    let n = bad.len();
    bad[n - 7] ^= 0x55;
    let recs = with("Content-Encoding: gzip\r\n", &bad);
    assert_eq!(recs[0].sha256.as_deref(), Some(sha(&body).as_str()));
    assert!(has(&recs[0], Anomaly::GzipBadTrailer));
    let recs = with("Content-Encoding: gzip\r\n", &gz[..n - 8]);
    assert_eq!(recs[0].sha256.as_deref(), Some(sha(&body).as_str()));
    assert!(has(&recs[0], Anomaly::GzipTrailerMissing));
    let mut two = gz.clone();
    two.extend(gzip(b"second member"));
    let recs = with("Content-Encoding: gzip\r\n", &two);
    assert_eq!(recs[0].sha256.as_deref(), Some(sha(&body).as_str()));
    assert!(has(&recs[0], Anomaly::GzipExtraData));
    // Declared but not encoded: kept as sent.
    let recs = with("Content-Encoding: gzip\r\n", &body);
    assert_eq!(recs[0].sha256.as_deref(), Some(sha(&body).as_str()));
    assert!(has(&recs[0], Anomaly::CeNotEncoded));
}

#[test]
fn evasion_unframeable_bodies_are_logged_to_the_close() {
    let body = body_bytes(400, 2);
    // Conflicting lengths: no client frames it; the rest of the connection is the body.
    let mut r = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\nContent-Length: 400\r\n\r\n".to_vec();
    r.extend_from_slice(&body);
    let recs = carve_bent(&r, PIECES);
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].size, 400);
    assert_eq!(recs[0].truncated_reason.as_deref(), Some("framing"));
    assert!(has(&recs[0], Anomaly::ClConflict) && has(&recs[0], Anomaly::FramingLost));
    // A chunk size nobody can read: the rest is the body, from the line that broke.
    let mut r = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n0123456789abcdef\r\nzz\r\n".to_vec();
    r.extend_from_slice(&body);
    let recs = carve_bent(&r, PIECES);
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].size, 16 + 4 + 400);
    assert_eq!(recs[0].truncated_reason.as_deref(), Some("framing"));
    assert!(has(&recs[0], Anomaly::ChunkSizeInvalid) && has(&recs[0], Anomaly::FramingLost));
    // Closed between chunks, before the last one: every data byte is there.
    let mut r = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    r.extend_from_slice(format!("{:x}\r\n", body.len()).as_bytes());
    r.extend_from_slice(&body);
    r.extend_from_slice(b"\r\n");
    let recs = carve_bent(&r, PIECES);
    assert_eq!(recs[0].sha256.as_deref(), Some(sha(&body).as_str()));
    assert!(has(&recs[0], Anomaly::ChunkFinalMissing));
}

#[test]
fn evasion_headers_folded_or_broken() {
    let body = body_bytes(120, 4);
    let framed = chunked(&body, &[60, 60]);
    for head in [
        "HTTP/1.1 200 OK\r\nTransfer-Encoding:\r\n chunked\r\n\r\n",
        "HTTP/1.1 200 OK\r\nX-A: b\r\nTransfer-Encoding: identity,\r\n\tchunked\r\n\r\n",
        "HTTP/1.1 200 OK\r\nnocolon\r\nTransfer-Encoding: chunked\r\n\r\n",
        "HTTP/1.1 200 OK\r\nX-\x00: y\r\nTransfer-Encoding: chunked\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTRANSFER-ENCODING: CHUNKED\r\n\r\n",
    ] {
        let mut r = head.as_bytes().to_vec();
        r.extend_from_slice(&framed);
        let recs = carve_bent(&r, PIECES);
        assert_eq!(recs[0].sha256.as_deref(), Some(sha(&body).as_str()), "{head:?}");
    }
}

#[test]
fn an_empty_attachment_is_recorded_as_the_empty_file_a_browser_saves() {
    let cd = "Content-Disposition: attachment; filename=\"e.bin\"\r\n";
    for (head, recorded) in [
        (format!("HTTP/1.1 200 OK\r\n{cd}Content-Length: 0\r\n\r\n"), true),
        (
            format!("HTTP/1.1 200 OK\r\n{cd}Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
            true,
        ),
        ("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n".to_string(), false),
        (
            format!("HTTP/1.1 404 Not Found\r\n{cd}Content-Length: 0\r\n\r\n"),
            false,
        ),
    ] {
        let recs = carve_bent(head.as_bytes(), PIECES);
        assert_eq!(recs.len(), usize::from(recorded), "{head:?}");
        if recorded {
            assert_eq!(recs[0].size, 0);
            assert_eq!(recs[0].sha256.as_deref(), Some(sha(b"").as_str()));
            assert_eq!(recs[0].filename.as_deref(), Some("e.bin"));
        }
    }
}

/// One response of a keep-alive connection built for the hole sweep.
struct Msg {
    bytes: Vec<u8>,
    /// Offsets (in `bytes`) of the body bytes that carry content: the body, or chunk data.
    content: Vec<(usize, usize)>,
    /// sha256 of the decoded body.
    sha: String,
    uri: String,
    chunked: bool,
}

/// Chunked framing of `body` with the offsets of its data in the output (relative to `at`).
fn chunked_with_ranges(body: &[u8], size: usize, at: usize) -> (Vec<u8>, Vec<(usize, usize)>) {
    let mut out = Vec::new();
    let mut ranges = Vec::new();
    for c in body.chunks(size) {
        out.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
        ranges.push((at + out.len(), at + out.len() + c.len()));
        out.extend_from_slice(c);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    (out, ranges)
}

/// A keep-alive connection's responses: Content-Length, chunked, gzip, chunked gzip, and a text
/// body holding a status line that is not one.
fn keep_alive_responses() -> Vec<Msg> {
    let mut text = b"<html>\r\nsee: HTTP/1.1 200 OK\r\nnot a header line\r\n\r\nHTTP/1.0 404 \n".to_vec();
    text.extend(std::iter::repeat_n(b'x', 300));
    text.extend_from_slice(b"\r\n</html>\r\n");
    let kinds: [(&str, Vec<u8>); 7] = [
        ("length", body_bytes(900, 11)),
        ("chunked", body_bytes(1300, 12)),
        ("gzip", body_bytes(700, 13)),
        ("length", text),
        ("chunked-gzip", body_bytes(1100, 14)),
        ("length", body_bytes(1500, 15)),
        ("chunked", body_bytes(600, 16)),
    ];
    kinds
        .into_iter()
        .enumerate()
        .map(|(i, (kind, body))| {
            let uri = format!("/f{i}.bin");
            let sha = sha(&body);
            let (mut bytes, content, chunked) = match kind {
                "length" | "gzip" => {
                    let payload = if kind == "gzip" { gzip(&body) } else { body };
                    let ce = if kind == "gzip" {
                        "Content-Encoding: gzip\r\n"
                    } else {
                        ""
                    };
                    let head = format!(
                        "HTTP/1.1 200 OK\r\nServer: t\r\n{ce}Content-Length: {}\r\n\r\n",
                        payload.len()
                    );
                    let at = head.len();
                    let mut b = head.into_bytes();
                    b.extend_from_slice(&payload);
                    (b, vec![(at, at + payload.len())], false)
                }
                _ => {
                    let payload = if kind == "chunked-gzip" { gzip(&body) } else { body };
                    let ce = if kind == "chunked-gzip" {
                        "Content-Encoding: gzip\r\n"
                    } else {
                        ""
                    };
                    let head = format!("HTTP/1.1 200 OK\r\n{ce}Transfer-Encoding: chunked\r\n\r\n");
                    let (framed, ranges) = chunked_with_ranges(&payload, 257, head.len());
                    let mut b = head.into_bytes();
                    b.extend(framed);
                    (b, ranges, true)
                }
            };
            bytes.shrink_to_fit();
            Msg {
                bytes,
                content,
                sha,
                uri,
                chunked,
            }
        })
        .collect()
}

/// Runs the connection (request i at 10i s, response i right after it, as a client fetching one
/// file after another) with one hole of `len` bytes at offset `at` of `side`'s stream, in pieces of
/// `piece` bytes. Returns the records.
fn run_with_hole(msgs: &[Msg], side: Side, at: usize, len: usize, piece: usize) -> (Harness, Vec<FileRecord>) {
    let reqs: Vec<Vec<u8>> = msgs.iter().map(|m| get(&m.uri)).collect();
    let mut h = Harness::new();
    let mut p = h.parser();
    let mut off = [0usize; 2];
    let hole = at..at + len;
    let mut gapped = [false; 2];
    // Delivers `bytes` (the next of `s`'s stream), skipping the hole and reporting it where it ends.
    let mut deliver = |h: &mut Harness, p: &mut HttpParser, s: Side, bytes: &[u8]| {
        let base = off[s.index()];
        off[s.index()] += bytes.len();
        let mut i = 0;
        while i < bytes.len() {
            let pos = base + i;
            if s == side && hole.contains(&pos) {
                let skip = (hole.end - pos).min(bytes.len() - i);
                i += skip;
                continue;
            }
            if s == side && pos >= hole.end && !gapped[s.index()] {
                gapped[s.index()] = true;
                h.gap(p, s, len as u64);
            }
            let n = piece.min(bytes.len() - i);
            let n = if s == side && pos < hole.start {
                n.min(hole.start - pos)
            } else {
                n
            };
            h.send(p, s, &bytes[i..i + n]);
            i += n;
        }
    };
    for (i, m) in msgs.iter().enumerate() {
        h.now = Timestamp::from_secs(100 + 10 * i as u64);
        deliver(&mut h, &mut p, Side::Orig, &reqs[i]);
        h.now = Timestamp::from_secs(101 + 10 * i as u64);
        deliver(&mut h, &mut p, Side::Resp, &m.bytes);
    }
    for s in [Side::Orig, Side::Resp] {
        if s == side && !gapped[s.index()] && at < off[s.index()] {
            h.gap(&mut p, s, len as u64);
        }
    }
    h.finish(p);
    let recs = std::mem::take(&mut h.files.records);
    (h, recs)
}

use xdpcarve_contract::FileRecord;

/// Checks the records of a run with a response-side hole `at..at+len` against the rules: every
/// response with a surviving content byte has a record (with its URI); every untouched one is
/// exact; a file that lost bytes has missing bytes and no hashes; no record is made up.
fn check_response_hole(msgs: &[Msg], at: usize, len: usize, recs: &[FileRecord], what: &str) {
    let hole = at..at + len;
    let mut start = 0;
    let mut ambiguous_after = None;
    let mut expected = 0;
    for (i, m) in msgs.iter().enumerate() {
        let end = start + m.bytes.len();
        let touched = hole.start < end && hole.end > start;
        let survived = m
            .content
            .iter()
            .any(|&(a, b)| (start + a..start + b).any(|x| !hole.contains(&x)));
        // A hole that starts in a chunked body outside one chunk's data: the body's end is lost,
        // and a chunked response after it cannot be told from its tail.
        if m.chunked && hole.start >= start && hole.start < end {
            let in_one_chunk = m
                .content
                .iter()
                .any(|&(a, b)| hole.start >= start + a && hole.end <= start + b);
            if !in_one_chunk && hole.end > end {
                ambiguous_after = Some(i);
            }
        }
        let rec: Vec<&FileRecord> = recs
            .iter()
            .filter(|r| r.fields.str("http_uri") == Some(m.uri.as_str()))
            .collect();
        assert!(rec.len() <= 1, "{what}: two records for response {i}: {recs:#?}");
        if !touched {
            expected += 1;
            let r = rec
                .first()
                .unwrap_or_else(|| panic!("{what}: untouched response {i} has no record: {recs:#?}"));
            assert_eq!(r.sha256.as_deref(), Some(m.sha.as_str()), "{what}: response {i} {r:#?}");
            assert_eq!((r.missing_bytes, r.truncated), (0, false), "{what}: response {i}");
        } else {
            // A record may come from any byte kept (a head without its body too), and a response
            // the hole took whole is recorded empty for its request; one must come from a content
            // byte kept.
            expected += 1;
        }
        if touched && survived {
            let excused = m.chunked && ambiguous_after.is_some_and(|j| j < i);
            if rec.is_empty() && !excused {
                panic!("{what}: response {i} kept bytes but has no record: {recs:#?}");
            }
        }
        start = end;
    }
    for r in recs {
        match &r.sha256 {
            Some(s) => {
                assert!(msgs.iter().any(|m| &m.sha == s), "{what}: a hash of no body: {r:#?}");
                assert_eq!(r.missing_bytes, 0, "{what}");
            }
            // A response the hole took whole: the empty record of its request.
            None if r.size == 0 && r.truncated_reason.as_deref() == Some("gap") => {}
            None => assert!(r.missing_bytes > 0, "{what}: no hash, no missing bytes: {r:#?}"),
        }
        assert!(
            r.fields.str("http_uri").is_some(),
            "{what}: a record no request owns: {r:#?}"
        );
    }
    assert!(
        recs.len() <= expected,
        "{what}: more records than responses kept: {recs:#?}"
    );
}

/// Hole positions: every few bytes, and around each message boundary; lengths: short ones, ones
/// ending exactly at the next 1..3 message starts, and ones ending a few bytes into a head.
fn hole_sweep(stream_lens: &[usize], step: usize) -> Vec<(usize, usize)> {
    let total: usize = stream_lens.iter().sum();
    let mut starts_of = vec![0];
    for l in stream_lens {
        starts_of.push(starts_of.last().unwrap() + l);
    }
    let mut starts: Vec<usize> = (0..total).step_by(step).collect();
    for &b in &starts_of {
        starts.extend(b.saturating_sub(2)..(b + 3).min(total));
    }
    starts.sort_unstable();
    starts.dedup();
    let mut holes = Vec::new();
    for &s in &starts {
        let mut lens = vec![1, 9, 120, 700];
        let next: Vec<usize> = starts_of.iter().copied().filter(|&b| b > s).take(3).collect();
        for b in next {
            for extra in [0, 1, 5, 30] {
                lens.push(b + extra - s);
            }
        }
        for l in lens {
            if s + l <= total + 10 {
                holes.push((s, l));
            }
        }
    }
    holes
}

#[test]
fn response_holes_anywhere_cost_only_the_bytes_lost() {
    let msgs = keep_alive_responses();
    let lens: Vec<usize> = msgs.iter().map(|m| m.bytes.len()).collect();
    let holes = hole_sweep(&lens, 13);
    assert!(holes.len() > 2000, "{}", holes.len());
    for (i, &(at, len)) in holes.iter().enumerate() {
        let piece = [1460, 700, 97][i % 3];
        let (_, recs) = run_with_hole(&msgs, Side::Resp, at, len, piece);
        check_response_hole(&msgs, at, len, &recs, &format!("hole {at}+{len} piece {piece}"));
    }
}

#[test]
fn request_holes_lose_only_their_requests() {
    let msgs = keep_alive_responses();
    let req_lens: Vec<usize> = msgs.iter().map(|m| get(&m.uri).len()).collect();
    let holes = hole_sweep(&req_lens, 3);
    for &(at, len) in &holes {
        let (h, recs) = run_with_hole(&msgs, Side::Orig, at, len, 1460);
        let what = format!("request hole {at}+{len}");
        assert_eq!(recs.len(), msgs.len(), "{what}: {recs:#?}");
        let mut start = 0;
        for (m, (r, l)) in msgs.iter().zip(recs.iter().zip(&req_lens)) {
            assert_eq!(r.sha256.as_deref(), Some(m.sha.as_str()), "{what}");
            let touched = at < start + l && at + len > start;
            match r.fields.str("http_uri") {
                Some(u) => assert_eq!(u, m.uri, "{what}"),
                None => assert!(touched, "{what}: an untouched request lost its response: {r:#?}"),
            }
            start += l;
        }
        assert_eq!(h.http.stats.responses_lost, 0, "{what}");
    }
}

#[test]
fn pending_requests_whose_responses_vanished_are_counted_and_bounded() {
    let msgs = keep_alive_responses();
    let lens: Vec<usize> = msgs.iter().map(|m| m.bytes.len()).collect();
    // A hole from inside response 1's body to the start of response 5: 2, 3 and 4 vanished.
    let at = lens[0] + 200;
    let end: usize = lens[..5].iter().sum();
    let (h, recs) = run_with_hole(&msgs, Side::Resp, at, end - at, 1460);
    assert_eq!(h.http.stats.responses_lost, 3);
    assert_eq!(h.http.stats.unmatched_responses, 0);
    // Each vanished response is still logged, empty and truncated by the gap, under its URI.
    for m in &msgs[2..5] {
        let r = recs
            .iter()
            .find(|r| r.fields.str("http_uri") == Some(m.uri.as_str()))
            .unwrap_or_else(|| panic!("no record for the vanished {}", m.uri));
        assert_eq!(
            (r.size, r.truncated_reason.as_deref(), r.sha256.as_deref()),
            (0, Some("gap"), None)
        );
    }
    for (i, m) in msgs.iter().enumerate().skip(5) {
        let r = recs
            .iter()
            .find(|r| r.fields.str("http_uri") == Some(m.uri.as_str()))
            .unwrap();
        assert_eq!(r.sha256.as_deref(), Some(m.sha.as_str()), "response {i}");
    }
    // Many responses lost in holes never grow the queue past its bound.
    let mut h = Harness::new();
    let mut p = h.parser();
    for i in 0..1000u64 {
        h.now = Timestamp::from_secs(100 + i);
        h.send(&mut p, Side::Orig, &get(&format!("/x{i}")));
        h.gap(&mut p, Side::Resp, 500);
    }
    assert!(p.pending.len() <= crate::MAX_IN_LINE);
    h.send(&mut p, Side::Resp, &ok("text/plain", b"last"));
    h.finish(p);
    let r = h.files.records.last().unwrap();
    assert_eq!(r.fields.str("http_uri"), Some("/x999"));
    assert_eq!(r.sha256.as_deref(), Some(sha(b"last").as_str()));
}

#[test]
fn a_status_line_inside_a_body_after_a_gap_in_that_body_is_body() {
    let mut body = body_bytes(2000, 21);
    let fake = ok("text/plain", b"fake!");
    body[1200..1200 + fake.len()].copy_from_slice(&fake);
    let resp = ok("application/octet-stream", &body);
    let head = resp.len() - body.len();
    let mut h = Harness::new();
    let mut p = h.parser();
    h.send(&mut p, Side::Orig, &[get("/real"), get("/next")].concat());
    h.send(&mut p, Side::Resp, &resp[..head + 100]);
    h.gap(&mut p, Side::Resp, 1000);
    h.send(&mut p, Side::Resp, &resp[head + 1100..]);
    h.send(&mut p, Side::Resp, &ok("text/plain", b"next"));
    h.finish(p);
    assert_eq!(h.files.records.len(), 2, "{:#?}", h.files.records);
    let r = &h.files.records[0];
    assert_eq!((r.size, r.missing_bytes, r.truncated), (1000, 1000, false));
    assert_eq!(h.files.records[1].sha256.as_deref(), Some(sha(b"next").as_str()));
    assert_eq!(h.files.records[1].fields.str("http_uri"), Some("/next"));
    assert_eq!((h.http.stats.resyncs, h.http.stats.headless_responses), (0, 0));
}

#[test]
fn a_second_hole_after_the_next_request_starts_another_headless_body() {
    let a = ok("application/octet-stream", &body_bytes(3000, 41));
    let b = ok("application/octet-stream", &body_bytes(3000, 42));
    let c = ok("text/plain", b"third");
    let mut h = Harness::new();
    let mut p = h.parser();
    h.now = Timestamp::from_secs(100);
    h.send(&mut p, Side::Orig, &get("/a"));
    // a's head and first bytes lost; some of its body comes.
    h.now = Timestamp::from_secs(101);
    h.gap(&mut p, Side::Resp, 500);
    h.send(&mut p, Side::Resp, &a[500..1500]);
    // The client had all of a and asked for b; a's end and b's head are lost.
    h.now = Timestamp::from_secs(102);
    h.send(&mut p, Side::Orig, &get("/b"));
    h.now = Timestamp::from_secs(103);
    h.gap(&mut p, Side::Resp, (a.len() - 1500 + 400) as u64);
    h.send(&mut p, Side::Resp, &b[400..]);
    h.now = Timestamp::from_secs(104);
    h.send(&mut p, Side::Orig, &get("/c"));
    h.send(&mut p, Side::Resp, &c);
    h.finish(p);
    let recs = &h.files.records;
    let uris: Vec<Option<&str>> = recs.iter().map(|r| r.fields.str("http_uri")).collect();
    assert_eq!(uris, [Some("/a"), Some("/b"), Some("/c")], "{recs:#?}");
    assert_eq!(recs[0].size, 1000);
    assert_eq!(recs[1].size, b.len() as u64 - 400);
    assert!(recs[..2]
        .iter()
        .all(|r| r.missing_bytes > 0 && r.truncated_reason.as_deref() == Some("gap")));
    assert_eq!(recs[2].sha256.as_deref(), Some(sha(b"third").as_str()));
    assert_eq!(h.http.stats.headless_splits, 1);

    // Without a request in between, a second hole is one more gap in the same body.
    let mut h = Harness::new();
    let mut p = h.parser();
    h.now = Timestamp::from_secs(100);
    h.send(&mut p, Side::Orig, &get("/a"));
    h.now = Timestamp::from_secs(101);
    h.gap(&mut p, Side::Resp, 500);
    h.send(&mut p, Side::Resp, &a[500..1500]);
    h.gap(&mut p, Side::Resp, 100);
    h.send(&mut p, Side::Resp, &a[1600..]);
    h.now = Timestamp::from_secs(104);
    h.send(&mut p, Side::Orig, &get("/c"));
    h.send(&mut p, Side::Resp, &c);
    h.finish(p);
    let recs = &h.files.records;
    assert_eq!(recs.len(), 2, "{recs:#?}");
    assert_eq!((recs[0].size, recs[0].missing_bytes), (a.len() as u64 - 600, 600));
    assert_eq!(h.http.stats.headless_splits, 0);
}

#[test]
fn body_after_a_lost_head_is_recorded_for_its_request() {
    let a = ok("text/plain", &body_bytes(800, 31));
    let b_body = body_bytes(3000, 32);
    let b = ok("application/octet-stream", &b_body);
    let c = ok("text/plain", b"third");
    let mut h = Harness::new();
    let mut p = h.parser();
    h.send(&mut p, Side::Orig, &get("/a"));
    h.send(&mut p, Side::Resp, &a[..a.len() - 100]);
    h.now = Timestamp::from_secs(110);
    h.send(&mut p, Side::Orig, &get("/b.bin"));
    h.now = Timestamp::from_secs(111);
    // The end of a, and b's head and first 1000 body bytes, are lost.
    let lost_b = b.len() - b_body.len() + 1000;
    h.gap(&mut p, Side::Resp, (100 + lost_b) as u64);
    h.send(&mut p, Side::Resp, &b[lost_b..]);
    h.now = Timestamp::from_secs(120);
    h.send(&mut p, Side::Orig, &get("/c"));
    h.send(&mut p, Side::Resp, &c);
    h.finish(p);
    let recs = &h.files.records;
    assert_eq!(recs.len(), 3, "{recs:#?}");
    assert_eq!(
        (recs[0].missing_bytes, recs[0].fields.str("http_uri")),
        (100, Some("/a"))
    );
    let r = &recs[1];
    assert_eq!(r.fields.str("http_uri"), Some("/b.bin"));
    assert_eq!(r.filename.as_deref(), Some("b.bin"));
    assert_eq!((r.size, r.truncated_reason.as_deref()), (2000, Some("gap")));
    assert!(r.missing_bytes > 0 && r.sha256.is_none());
    assert_eq!(recs[2].sha256.as_deref(), Some(sha(b"third").as_str()));
    assert_eq!(recs[2].fields.str("http_uri"), Some("/c"));
    assert_eq!(h.http.stats.headless_responses, 1);
}

#[test]
fn hostile_status_lines_after_a_gap_are_bounded() {
    // Status lines that lead no head, nested in one another, after a hole: linear work, no
    // record for them, and the real response after them is found.
    let mut junk = Vec::new();
    for _ in 0..3000 {
        junk.extend_from_slice(b"HTTP/1.1 200 x");
    }
    junk.extend_from_slice(b"\r\n\r\n");
    let mut h = Harness::new();
    let mut p = h.parser();
    h.send(&mut p, Side::Orig, &get("/a"));
    h.gap(&mut p, Side::Resp, 10);
    h.send_split(&mut p, Side::Resp, &junk, 1000);
    h.send(&mut p, Side::Resp, &ok("text/plain", b"real"));
    h.finish(p);
    let recs = &h.files.records;
    assert!(
        recs.iter().any(|r| r.sha256.as_deref() == Some(sha(b"real").as_str())),
        "{recs:#?}"
    );
    assert!(h.http.stats.resync_rejects <= 20, "{}", h.http.stats.resync_rejects);
}

#[test]
fn parser_and_pending_requests_stay_small() {
    // One parser per connection, boxed: response-only state is held once, rare state boxed.
    let (size, pending) = (std::mem::size_of::<HttpParser>(), std::mem::size_of::<Pending>());
    eprintln!("HttpParser {size} B, Pending {pending} B");
    assert!(size <= 256, "HttpParser is {size} bytes");
    assert!(pending <= 56, "Pending is {pending} bytes");
}

#[test]
fn a_request_waiting_for_its_response_holds_little_heap() {
    // A flood of unanswered GETs: each connection holds one packed request and no header buffer,
    // whether its head came in one piece or several.
    let req = b"GET /x HTTP/1.1\r\nHost: example.com\r\n\r\n";
    for piece in [req.len(), 10, 1] {
        let mut h = Harness::new();
        let mut p = h.parser();
        h.send_split(&mut p, Side::Orig, req, piece);
        assert_eq!(p.pending.len(), 1);
        assert_eq!(p.pending.capacity(), 1, "one request pays for one slot");
        assert!(p.halves.iter().all(|h| h.hdr.capacity() == 0 && h.body.is_none()));
        let heap = p.heap_bytes();
        eprintln!("pending GET in pieces of {piece}: {heap} B of heap");
        assert!(
            heap <= 96,
            "a pending GET holds {heap} bytes of heap (pieces of {piece})"
        );
        h.send(&mut p, Side::Resp, &ok("text/plain", b"answer"));
        assert_eq!(p.heap_bytes(), 0, "answered, its head read in place: nothing held");
        h.finish(p);
        let r = &h.files.records[0];
        assert_eq!(
            (
                r.fields.str("http_method"),
                r.fields.str("http_uri"),
                r.fields.str("http_host")
            ),
            (Some("GET"), Some("/x"), Some("example.com"))
        );
        assert_eq!(r.fields.str("http_user_agent"), None);
    }
}

#[test]
fn an_idle_keep_alive_connection_holds_no_heap() {
    // Between transactions (after pipelined ones too, heads split across segments): no pending
    // queue, no header buffer, no body.
    let mut h = Harness::new();
    let mut p = h.parser();
    for round in 0..3 {
        let n = round + 1;
        for i in 0..n {
            h.send_split(&mut p, Side::Orig, &get(&format!("/r{round}/{i}")), 7);
        }
        assert_eq!(p.pending.len(), n);
        assert!(p.halves.iter().all(|h| h.hdr.capacity() == 0));
        for i in 0..n {
            let resp = ok("text/plain", format!("body {round} {i}").as_bytes());
            let (head, body) = resp.split_at(resp.len() - 4);
            h.send_split(&mut p, Side::Resp, head, 5);
            assert_eq!(p.halves[Side::Resp.index()].hdr.capacity(), 0, "the head is parsed");
            h.send(&mut p, Side::Resp, body);
        }
        assert_eq!(p.heap_bytes(), 0, "idle after round {round}");
        assert_eq!(p.pending.capacity(), 0);
    }
    h.finish(p);
    assert_eq!(h.files.records.len(), 6);
    assert!(h.files.records.iter().all(|r| r.sha256.is_some() && !r.truncated));
}

#[test]
fn past_max_pipelined_requests_keep_their_place_so_a_head_cannot_hide_a_body() {
    // 70 requests in flight (max_pipelined is 64), the 67th a HEAD: its response has a
    // Content-Length and no body. Had the oldest requests been dropped, the HEAD would pair with
    // an earlier response and a body would be read as the next response's head.
    let mut h = Harness::new();
    let mut p = h.parser();
    let n = 70;
    let mut requests = Vec::new();
    for i in 0..n {
        if i == 66 {
            requests.extend_from_slice(format!("HEAD /h{i} HTTP/1.1\r\nHost: a\r\n\r\n").as_bytes());
        } else {
            requests.extend_from_slice(&get(&format!("/f{i}")));
        }
    }
    h.send(&mut p, Side::Orig, &requests);
    let mut responses = Vec::new();
    for i in 0..n {
        if i == 66 {
            responses.extend_from_slice(b"HTTP/1.1 200 OK\r\nContent-Length: 9999\r\n\r\n");
        } else {
            responses.extend_from_slice(&ok("application/octet-stream", &body_bytes(100 + i, i as u32)));
        }
    }
    h.send(&mut p, Side::Resp, &responses);
    h.finish(p);
    assert_eq!(h.http.stats.pipeline_overflow, 6);
    assert_eq!(h.http.stats.pipeline_dropped, 0);
    let bodies: Vec<_> = h.files.records.iter().filter(|r| r.size > 0).collect();
    assert_eq!(bodies.len(), n - 1, "every GET's body carved");
    for (i, r) in (0..n).filter(|&i| i != 66).zip(&bodies) {
        assert_eq!(
            r.sha256.as_deref(),
            Some(sha(&body_bytes(100 + i, i as u32)).as_str()),
            "body {i}"
        );
    }
}
