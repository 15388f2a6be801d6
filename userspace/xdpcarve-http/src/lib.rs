//! HTTP/1.x parser that carves request and response bodies as files.
//!
//! One [`HttpParser`] per connection, one state machine per direction (Suricata-style: every byte
//! handed in is consumed; an incomplete header block waits in a bounded buffer, bodies are never
//! held). Requests come from `Side::Orig`, responses from `Side::Resp`, paired FIFO (pipelining,
//! keep-alive). Bodies are delimited by Content-Length, chunked encoding, or the connection's end;
//! gzip/x-gzip/deflate content is decoded before hashing (other codings are hashed as sent and
//! counted in `unknown_encodings`). multipart/form-data uploads go through the MIME parser: each
//! part with a filename is a file (depth 1) whose `parent_fuid` is the envelope, which is recorded
//! too (depth 0, declared multipart/form-data; the corpus expects the raw body as tshark exports
//! it). Empty bodies leave no record. 206 pieces are placed into one object per resource via
//! [`RangedFiles`] (HTTP's per-worker state, [`Http`]) when Content-Range gives the total and the body is not
//! content-encoded; other 206 shapes (multipart/byteranges, `*` total, encoded) are files of their
//! own marked `partial`. CONNECT (2xx) and 101 Switching Protocols end parsing (`is_done`).
//!
//! Bodies delimited by the connection's end are complete on FIN (`on_end`) or a `Finished` close,
//! truncated on timeout/eviction/shutdown; the engine's contract does not tell RST from FIN.
//!
//! Broken input never stalls the parser: an unparsable or oversized header block, broken chunk
//! framing or a hole outside a body makes it skip ahead to the next line that starts a request
//! (`GET `, `POST `, ...) or a response (`HTTP/1.`), counting `resyncs`.

#![forbid(unsafe_code)]

mod body;
mod chunked;
mod detect;
mod head;
pub mod info;
pub mod ranged;
mod state;

pub use info::HttpInfo;
pub use ranged::RangedFiles;
pub use state::{Http, HttpConfig, HttpStats};

use body::{Body, Content, Framing, Sink};
use chunked::{Dechunker, Step};
use head::{disposition_filename, parse_content_range, uri_filename, Head};
use memchr::memchr;
use ranged::RangeKey;
use std::collections::VecDeque;
use xdpcarve_contract::{AppContext, CloseReason, Direction, FileMeta, Proto, Side, StreamParser};
use xdpcarve_files::decode::inflate::{Coding, Inflater};
use xdpcarve_files::FileEnd;

/// The name HTTP registers: `proto` of its records, area of its counters.
pub const NAME: &str = "http";
pub const PROTO: Proto = Proto::new(NAME);

/// The context of HTTP events.
pub type HttpContext<'a> = AppContext<'a, Http>;

/// Headers per message handed to httparse; more is malformed (a header flood).
const MAX_HEADERS: usize = 128;
/// Request methods the resync looks for at the start of a line.
const REQUEST_STARTS: &[&[u8]] = &[
    b"GET ",
    b"POST ",
    b"PUT ",
    b"HEAD ",
    b"DELETE ",
    b"OPTIONS ",
    b"CONNECT ",
    b"PATCH ",
    b"TRACE ",
];
const RESPONSE_STARTS: &[&[u8]] = &[b"HTTP/1."];
/// Longest request method accepted at the start of a message.
const MAX_METHOD: usize = 20;

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum MethodKind {
    Head,
    Connect,
    Other,
}

/// A request waiting for its response.
struct Pending {
    info: HttpInfo,
    kind: MethodKind,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Phase {
    /// Between messages (leading empty lines are skipped).
    Start,
    /// Inside a header block.
    Headers,
    Body,
    /// Skipping to the next line that starts a message.
    Resync,
    /// Client bytes after a CONNECT request, until its response says whether a tunnel opened.
    AwaitTunnel,
    /// The direction ended (FIN/RST): anything later is ignored.
    Ended,
}

/// Matches the start of a line against the message starts during a resync.
#[derive(Default)]
struct LineMatch {
    line_start: bool,
    buf: [u8; 8],
    n: usize,
}

/// One direction of the connection.
struct Half {
    phase: Phase,
    /// The header block read so far (bounded by `max_header_bytes`); reused across messages.
    hdr: Vec<u8>,
    /// End-of-header scanner: 0 inside a line, 1 right after LF, 2 after LF CR.
    eol: u8,
    body: Option<Body>,
    resync: LineMatch,
}

impl Half {
    fn new() -> Self {
        Half {
            phase: Phase::Start,
            hdr: Vec::new(),
            eol: 0,
            body: None,
            resync: LineMatch::default(),
        }
    }
}

/// One HTTP connection: requests from `Side::Orig`, responses from `Side::Resp`.
pub struct HttpParser {
    halves: [Half; 2],
    pending: VecDeque<Pending>,
    /// CONNECT accepted or protocol switched: the rest is opaque.
    tunnel: bool,
    max_header_bytes: usize,
    max_pipelined: usize,
    parse_cfg: httparse::ParserConfig,
}

impl HttpParser {
    pub fn new(cfg: &HttpConfig) -> Self {
        let mut parse_cfg = httparse::ParserConfig::default();
        parse_cfg
            .allow_spaces_after_header_name_in_responses(true)
            .allow_obsolete_multiline_headers_in_responses(true)
            .allow_multiple_spaces_in_request_line_delimiters(true)
            .allow_multiple_spaces_in_response_status_delimiters(true)
            .ignore_invalid_headers_in_responses(true)
            .ignore_invalid_headers_in_requests(true);
        HttpParser {
            halves: [Half::new(), Half::new()],
            pending: VecDeque::new(),
            tunnel: false,
            max_header_bytes: cfg.max_header_bytes.max(64),
            max_pipelined: cfg.max_pipelined.max(1),
            parse_cfg,
        }
    }

    /// Reads (part of) a header block; returns the bytes consumed.
    fn read_headers(&mut self, side: Side, input: &[u8], cx: &mut HttpContext<'_>) -> usize {
        let max = self.max_header_bytes;
        let h = &mut self.halves[side.index()];
        let mut i = 0;
        if h.phase == Phase::Start {
            while i < input.len() && (input[i] == b'\r' || input[i] == b'\n') {
                i += 1;
            }
            if i == input.len() {
                return i;
            }
            h.phase = Phase::Headers;
            h.hdr.clear();
            h.eol = 0;
        }
        // The first bytes must look like a message start; otherwise this is not HTTP here (a
        // mid-stream pickup, garbage, an HTTP/0.9 reply) and we look for the next start.
        if h.hdr.len() < MAX_METHOD + 1 {
            let mut probe = [0u8; MAX_METHOD + 1];
            let have = h.hdr.len();
            probe[..have].copy_from_slice(&h.hdr);
            let more = (probe.len() - have).min(input.len() - i);
            probe[have..have + more].copy_from_slice(&input[i..i + more]);
            if plausible_start(side, &probe[..have + more]) == Some(false) {
                match side {
                    Side::Orig => cx.state.stats.malformed_requests += 1,
                    Side::Resp => cx.state.stats.malformed_responses += 1,
                }
                self.start_resync(side, false, cx);
                return i;
            }
        }
        let h = &mut self.halves[side.index()];
        let (end, found) = scan_header_end(&mut h.eol, &input[i..]);
        if h.hdr.len() + end > max {
            cx.state.stats.header_too_large += 1;
            self.start_resync(side, false, cx);
            return i + end;
        }
        if !found {
            h.hdr.extend_from_slice(&input[i..i + end]);
            return i + end;
        }
        let whole: &[u8] = if h.hdr.is_empty() {
            &input[i..i + end]
        } else {
            h.hdr.extend_from_slice(&input[i..i + end]);
            &h.hdr
        };
        let parsed = parse_head(&self.parse_cfg, side, whole);
        release_header_buffer(&mut self.halves[side.index()].hdr);
        match parsed {
            Some(head) => match side {
                Side::Orig => self.on_request(head, cx),
                Side::Resp => self.on_response(head, cx),
            },
            None => {
                match side {
                    Side::Orig => cx.state.stats.malformed_requests += 1,
                    Side::Resp => cx.state.stats.malformed_responses += 1,
                }
                self.start_resync(side, false, cx);
            }
        }
        i + end
    }

    fn on_request(&mut self, head: Head, cx: &mut HttpContext<'_>) {
        cx.state.stats.requests += 1;
        let kind = if head.method.eq_ignore_ascii_case("HEAD") {
            MethodKind::Head
        } else if head.method.eq_ignore_ascii_case("CONNECT") {
            MethodKind::Connect
        } else {
            MethodKind::Other
        };
        let info = HttpInfo {
            method: Some(head.method.clone()),
            uri: Some(head.uri.clone()),
            status: None,
            host: head.host.clone(),
            user_agent: head.user_agent.clone(),
            referrer: head.referrer.clone(),
            range: None,
        };
        if self.pending.len() >= self.max_pipelined {
            self.pending.pop_front();
            cx.state.stats.pipeline_overflow += 1;
        }
        if !self.pending.is_empty() {
            cx.state.stats.pipelined_requests += 1;
        }
        let framing = if head.is_chunked() {
            Some(Framing::Chunked(Dechunker::new(self.max_header_bytes)))
        } else if head.transfer_encoding.is_some() {
            // A request body with a transfer coding other than chunked cannot be delimited.
            cx.state.stats.malformed_requests += 1;
            None
        } else {
            match head.content_length {
                Some(Ok(n)) if n > 0 => Some(Framing::Length(n)),
                Some(Err(())) => {
                    cx.state.stats.malformed_requests += 1;
                    None
                }
                _ => None,
            }
        };
        let half = &mut self.halves[Side::Orig.index()];
        match framing {
            Some(framing) => {
                let content = match head.form_data_boundary() {
                    Some(boundary) => {
                        let mut template = FileMeta::new(PROTO, Direction::Upload);
                        info.clone().write_fields(&mut template.fields);
                        let mut envelope = file_meta(Direction::Upload, &head, info.clone(), false);
                        envelope.filename = None;
                        Content::new(
                            Sink::Form {
                                template: Some(template),
                                boundary,
                                parser: None,
                                envelope_meta: Some(envelope),
                                envelope: None,
                            },
                            None,
                        )
                    }
                    None => {
                        let (decoder, decoded) = decoder_for(&head, cx);
                        let meta = file_meta(Direction::Upload, &head, info.clone(), decoded);
                        Content::new(
                            Sink::File {
                                meta: Some(meta),
                                file: None,
                            },
                            decoder,
                        )
                    }
                };
                half.body = Some(Body { framing, content });
                half.phase = Phase::Body;
            }
            None if kind == MethodKind::Connect => half.phase = Phase::AwaitTunnel,
            None => half.phase = Phase::Start,
        }
        self.pending.push_back(Pending { info, kind });
    }

    fn on_response(&mut self, head: Head, cx: &mut HttpContext<'_>) {
        let status = head.status;
        let resp = Side::Resp.index();
        if (100..200).contains(&status) {
            if status == 101 {
                cx.state.stats.tunnels += 1;
                self.tunnel = true;
            } else {
                // 100 Continue and friends: the final response is still to come.
                cx.state.stats.interim_responses += 1;
                self.halves[resp].phase = Phase::Start;
            }
            return;
        }
        cx.state.stats.responses += 1;
        let (mut info, kind) = match self.pending.pop_front() {
            Some(p) => (p.info, p.kind),
            None => {
                cx.state.stats.unmatched_responses += 1;
                (HttpInfo::default(), MethodKind::Other)
            }
        };
        info.status = Some(status);
        self.halves[resp].phase = Phase::Start;
        if kind == MethodKind::Connect {
            if (200..300).contains(&status) {
                cx.state.stats.tunnels += 1;
                self.tunnel = true;
                return;
            }
            let orig = &mut self.halves[Side::Orig.index()];
            if orig.phase == Phase::AwaitTunnel {
                orig.phase = Phase::Start;
            }
        }
        if kind == MethodKind::Head || status == 204 || status == 304 {
            return;
        }
        let framing = if head.is_chunked() {
            Framing::Chunked(Dechunker::new(self.max_header_bytes))
        } else if head.transfer_encoding.is_some() {
            Framing::UntilClose
        } else {
            match head.content_length {
                Some(Ok(0)) => return,
                Some(Ok(n)) => Framing::Length(n),
                Some(Err(())) => {
                    cx.state.stats.malformed_responses += 1;
                    Framing::UntilClose
                }
                None => Framing::UntilClose,
            }
        };
        let content = if status == 206 {
            cx.state.stats.partial_content += 1;
            self.partial_content(&head, info, cx)
        } else {
            let (decoder, decoded) = decoder_for(&head, cx);
            let meta = file_meta(Direction::Download, &head, info, decoded);
            Content::new(
                Sink::File {
                    meta: Some(meta),
                    file: None,
                },
                decoder,
            )
        };
        let half = &mut self.halves[resp];
        half.body = Some(Body { framing, content });
        half.phase = Phase::Body;
    }

    /// A 206 body: a piece of a ranged object when the range and resource are known; otherwise
    /// (multipart/byteranges, `*` total, an encoded representation, no request seen) a file of
    /// its own, marked partial.
    fn partial_content(&self, head: &Head, mut info: HttpInfo, cx: &mut HttpContext<'_>) -> Content {
        let cr = head.content_range.as_deref().and_then(parse_content_range);
        info.range = cr.map(|c| match c.total {
            Some(t) => format!("{}-{}/{}", c.first, c.last, t),
            None => format!("{}-{}/*", c.first, c.last),
        });
        let encoded = head
            .content_encoding
            .as_deref()
            .is_some_and(|e| !e.trim().eq_ignore_ascii_case("identity"));
        let (uri, host) = (info.uri.clone(), info.host.clone());
        let mut meta = file_meta(Direction::Download, head, info, encoded);
        if let (Some(cr), Some(uri), false) = (cr, uri, encoded) {
            if let Some(total) = cr.total {
                let host = host.unwrap_or_else(|| cx.conn.resp_h.to_string());
                let key = RangeKey {
                    host,
                    uri,
                    etag: head.etag.clone(),
                    total,
                };
                meta.total_bytes = Some(total);
                return Content::new(
                    Sink::Range {
                        key,
                        first: cr.first,
                        last: cr.last,
                        meta: Some(meta),
                        piece: None,
                    },
                    None,
                );
            }
        }
        meta.partial = true;
        if encoded {
            cx.state.stats.unknown_encodings += 1;
        }
        Content::new(
            Sink::File {
                meta: Some(meta),
                file: None,
            },
            None,
        )
    }

    /// Feeds body bytes; returns the bytes consumed.
    fn read_body(&mut self, side: Side, input: &[u8], cx: &mut HttpContext<'_>) -> usize {
        let h = &mut self.halves[side.index()];
        let Some(body) = h.body.as_mut() else {
            h.phase = Phase::Start;
            return 0;
        };
        match &mut body.framing {
            Framing::Length(rem) => {
                let n = (input.len() as u64).min(*rem) as usize;
                *rem -= n as u64;
                let done = *rem == 0;
                body.content.data(&input[..n], cx);
                if done {
                    self.end_body(side, FileEnd::Complete, cx);
                }
                n
            }
            Framing::UntilClose => {
                body.content.data(input, cx);
                input.len()
            }
            Framing::Chunked(d) => {
                let mut used = 0;
                while used < input.len() {
                    let (n, step) = d.step(&input[used..]);
                    used += n;
                    match step {
                        Step::Framing => {}
                        Step::Data(x) => body.content.data(x, cx),
                        Step::Done => {
                            self.end_body(side, FileEnd::Complete, cx);
                            return used;
                        }
                        Step::Error => {
                            cx.state.stats.chunked_errors += 1;
                            self.end_body(side, FileEnd::Truncated("chunked_error"), cx);
                            self.start_resync(side, false, cx);
                            return used;
                        }
                    }
                }
                used
            }
        }
    }

    fn end_body(&mut self, side: Side, end: FileEnd, cx: &mut HttpContext<'_>) {
        let h = &mut self.halves[side.index()];
        if let Some(body) = h.body.take() {
            body.content.end(end, cx);
        }
        if h.phase == Phase::Body {
            h.phase = Phase::Start;
        }
    }

    /// Drops the message in progress and skips to the next line that starts one.
    fn start_resync(&mut self, side: Side, at_line_start: bool, cx: &mut HttpContext<'_>) {
        cx.state.stats.resyncs += 1;
        let h = &mut self.halves[side.index()];
        release_header_buffer(&mut h.hdr);
        h.eol = 0;
        h.phase = Phase::Resync;
        h.resync = LineMatch {
            line_start: at_line_start,
            ..LineMatch::default()
        };
    }

    /// Skips bytes until a line starts like a message; returns the bytes consumed.
    fn read_resync(&mut self, side: Side, input: &[u8]) -> usize {
        let starts = match side {
            Side::Orig => REQUEST_STARTS,
            Side::Resp => RESPONSE_STARTS,
        };
        let h = &mut self.halves[side.index()];
        let m = &mut h.resync;
        let mut i = 0;
        while i < input.len() {
            if !m.line_start {
                match memchr(b'\n', &input[i..]) {
                    Some(k) => {
                        i += k + 1;
                        m.line_start = true;
                        m.n = 0;
                    }
                    None => return input.len(),
                }
                continue;
            }
            let b = input[i];
            i += 1;
            m.buf[m.n] = b;
            m.n += 1;
            let cand = &m.buf[..m.n];
            if starts.contains(&cand) {
                h.hdr.clear();
                h.hdr.extend_from_slice(cand);
                h.eol = 0;
                h.phase = Phase::Headers;
                h.resync = LineMatch::default();
                return i;
            }
            if m.n == m.buf.len() || !starts.iter().any(|s| s.starts_with(cand)) {
                m.line_start = b == b'\n';
                m.n = 0;
            }
        }
        i
    }
}

impl StreamParser for HttpParser {
    type State = Http;

    fn on_data(&mut self, from: Side, data: &[u8], cx: &mut HttpContext<'_>) {
        let mut input = data;
        while !input.is_empty() && !self.tunnel {
            let phase = self.halves[from.index()].phase;
            let used = match phase {
                Phase::Start | Phase::Headers => self.read_headers(from, input, cx),
                Phase::Body => self.read_body(from, input, cx),
                Phase::Resync => self.read_resync(from, input),
                Phase::AwaitTunnel | Phase::Ended => input.len(),
            };
            if used == 0 && self.halves[from.index()].phase == phase {
                // Cannot happen by construction; never spin on it.
                debug_assert!(false, "HTTP parser made no progress in {phase:?}");
                break;
            }
            input = &input[used..];
        }
    }

    fn on_gap(&mut self, from: Side, len: u64, cx: &mut HttpContext<'_>) {
        if self.tunnel || len == 0 {
            return;
        }
        let h = &mut self.halves[from.index()];
        match h.phase {
            Phase::Body => {
                let Some(body) = h.body.as_mut() else { return };
                match &mut body.framing {
                    Framing::Length(rem) => {
                        let n = len.min(*rem);
                        *rem -= n;
                        let done = *rem == 0;
                        body.content.gap(n, cx);
                        if done {
                            // The body's end is known: the file is whole but for the hole.
                            self.end_body(from, FileEnd::Complete, cx);
                            if len > n {
                                self.start_resync(from, true, cx);
                            }
                        }
                    }
                    Framing::UntilClose => body.content.gap(len, cx),
                    Framing::Chunked(d) => {
                        if d.skip_data(len) {
                            body.content.gap(len, cx);
                        } else {
                            body.content.gap(d.in_data().unwrap_or(0), cx);
                            self.end_body(from, FileEnd::Truncated("gap"), cx);
                            self.start_resync(from, true, cx);
                        }
                    }
                }
            }
            Phase::Start | Phase::Headers => {
                if h.phase == Phase::Headers && from == Side::Resp {
                    // The response whose header was cut belonged to the oldest request.
                    self.pending.pop_front();
                }
                self.start_resync(from, true, cx);
            }
            Phase::Resync | Phase::AwaitTunnel | Phase::Ended => {}
        }
    }

    fn on_end(&mut self, from: Side, cx: &mut HttpContext<'_>) {
        let h = &mut self.halves[from.index()];
        if h.phase == Phase::Body {
            let until_close = matches!(h.body.as_ref().map(|b| &b.framing), Some(Framing::UntilClose));
            let end = if until_close {
                FileEnd::Complete
            } else {
                FileEnd::Truncated(CloseReason::Finished.as_str())
            };
            self.end_body(from, end, cx);
        }
        let h = &mut self.halves[from.index()];
        h.hdr.clear();
        h.phase = Phase::Ended;
    }

    fn on_close(&mut self, reason: CloseReason, cx: &mut HttpContext<'_>) {
        for side in [Side::Orig, Side::Resp] {
            let h = &mut self.halves[side.index()];
            let until_close = matches!(h.body.as_ref().map(|b| &b.framing), Some(Framing::UntilClose));
            if h.body.is_some() {
                let end = if until_close && reason == CloseReason::Finished {
                    FileEnd::Complete
                } else {
                    FileEnd::Truncated(reason.as_str())
                };
                self.end_body(side, end, cx);
            }
            let h = &mut self.halves[side.index()];
            h.phase = Phase::Ended;
            h.hdr = Vec::new();
        }
        self.pending.clear();
    }

    fn is_done(&self) -> bool {
        self.tunnel
    }
}

/// Header buffers are reused across messages; one grown by an unusually large header block is
/// given back, so idle connections hold little (a busy sensor keeps many connections open).
const KEEP_HEADER_CAPACITY: usize = 8 << 10;

fn release_header_buffer(hdr: &mut Vec<u8>) {
    if hdr.capacity() > KEEP_HEADER_CAPACITY {
        *hdr = Vec::new();
    } else {
        hdr.clear();
    }
}

/// Whether `b` (the first bytes of a message) can start a request / response. None: too few
/// bytes to tell.
fn plausible_start(side: Side, b: &[u8]) -> Option<bool> {
    match side {
        Side::Orig => {
            for (i, &c) in b.iter().enumerate() {
                match c {
                    b'A'..=b'Z' | b'_' | b'-' => {}
                    b'a'..=b'z' if i > 0 => {}
                    b' ' => return Some(i > 0),
                    _ => return Some(false),
                }
            }
            if b.len() > MAX_METHOD {
                Some(false)
            } else {
                None
            }
        }
        Side::Resp => {
            let p = b"HTTP/";
            let n = b.len().min(p.len());
            if b[..n] != p[..n] {
                Some(false)
            } else if n == p.len() {
                Some(true)
            } else {
                None
            }
        }
    }
}

/// Scans for the empty line ending a header block. Returns (bytes up to and including it or the
/// whole input, found).
fn scan_header_end(eol: &mut u8, s: &[u8]) -> (usize, bool) {
    let mut j = 0;
    while j < s.len() {
        if *eol == 0 {
            match memchr(b'\n', &s[j..]) {
                Some(k) => {
                    j += k + 1;
                    *eol = 1;
                }
                None => return (s.len(), false),
            }
            continue;
        }
        let b = s[j];
        j += 1;
        *eol = match (*eol, b) {
            (_, b'\n') => return (j, true),
            (1, b'\r') => 2,
            _ => 0,
        };
    }
    (s.len(), false)
}

/// Parses a complete header block.
fn parse_head(cfg: &httparse::ParserConfig, side: Side, block: &[u8]) -> Option<Head> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    match side {
        Side::Orig => {
            let mut req = httparse::Request::new(&mut headers);
            match cfg.parse_request(&mut req, block) {
                Ok(httparse::Status::Complete(_)) => {
                    let mut head = Head::from_headers(req.headers);
                    head.method = req.method?.to_owned();
                    head.uri = req.path?.to_owned();
                    Some(head)
                }
                _ => None,
            }
        }
        Side::Resp => {
            let mut resp = httparse::Response::new(&mut headers);
            match cfg.parse_response(&mut resp, block) {
                Ok(httparse::Status::Complete(_)) => {
                    let mut head = Head::from_headers(resp.headers);
                    head.status = resp.code?;
                    Some(head)
                }
                _ => None,
            }
        }
    }
}

/// The Content-Encoding decoder for a body, and whether the content will be decoded.
fn decoder_for(head: &Head, cx: &mut HttpContext<'_>) -> (Option<Inflater>, bool) {
    let Some(ce) = head.content_encoding.as_deref() else {
        return (None, false);
    };
    let codings: Vec<&str> = ce
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty() && !t.eq_ignore_ascii_case("identity"))
        .collect();
    match codings.as_slice() {
        [] => (None, false),
        [one] => match Coding::from_token(one) {
            Some(c) => {
                let h = &cx.state.cfg;
                (
                    Some(Inflater::new(c, h.max_decompressed_bytes, h.max_decompression_ratio)),
                    true,
                )
            }
            None => {
                cx.state.stats.unknown_encodings += 1;
                (None, false)
            }
        },
        // Stacked codings (rare): hashed as sent.
        _ => {
            cx.state.stats.unknown_encodings += 1;
            (None, false)
        }
    }
}

/// The metadata of a body file. `decoded`: Content-Length counts encoded bytes, so it is not the
/// file's size and is left out.
fn file_meta(direction: Direction, head: &Head, info: HttpInfo, decoded: bool) -> FileMeta {
    let mut m = FileMeta::new(PROTO, direction);
    m.declared_mime_type = head.mime_type();
    m.filename = head
        .content_disposition
        .as_deref()
        .and_then(disposition_filename)
        .or_else(|| info.uri.as_deref().and_then(uri_filename));
    if !decoded {
        m.total_bytes = head.content_length.and_then(Result::ok);
    }
    info.write_fields(&mut m.fields);
    m
}

#[cfg(test)]
mod tests;
