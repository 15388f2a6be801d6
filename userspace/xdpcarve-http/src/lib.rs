//! HTTP/1.x parser that carves request and response bodies as files.
//!
//! One [`HttpParser`] per connection, one state machine per direction (Suricata-style: every byte
//! handed in is consumed; an incomplete header block waits in a bounded buffer, bodies are never
//! held). Requests come from `Side::Orig`, responses from `Side::Resp`, paired FIFO (pipelining,
//! keep-alive).
//!
//! Responses are read the way browsers read them (module `response`): what Chromium would save as the
//! download is what we hash, and where Chromium gives up we read on as the most permissive
//! client does, marking the file with the [`Anomaly`] that bent the framing (README "Evasion").
//! Bodies are delimited by chunked encoding (HTTP/1.1 and later, Transfer-Encoding naming
//! `chunked`), Content-Length, or the connection's end; lengths that disagree or a chunk size
//! nobody can read make the rest of the connection the body, logged truncated with the reason
//! `framing`. No status line at all on a connection's first reply is HTTP/0.9: the body runs to the
//! close. Every Content-Encoding listed is undone (gzip/x-gzip, deflate with or without its zlib
//! header; the first gzip member only, as browsers do); one we do not know anywhere in the list
//! leaves the body as sent (counted in `unknown_encodings`).
//!
//! multipart/form-data uploads go through the MIME parser: each part is a file (depth 1) whose
//! `parent_fuid` is the envelope, which is recorded too (depth 0, declared multipart/form-data;
//! the corpus expects the raw body as tshark exports it). Empty bodies leave no record (as in Zeek),
//! except an attachment a browser would save as an empty file. 206 pieces
//! are placed into one object per resource via [`RangedFiles`] (HTTP's per-worker state, [`Http`])
//! when Content-Range gives the total and the body is not content-encoded; other 206 shapes
//! (multipart/byteranges, `*` total, encoded) are files of their own marked `partial`. CONNECT
//! (2xx) and 101 Switching Protocols end parsing (`is_done`).
//!
//! Bodies delimited by the connection's end are complete on FIN (`on_end`) or a `Finished` close,
//! truncated on timeout/eviction/shutdown; the engine's contract does not tell RST from FIN.
//!
//! Broken input never stalls the parser: an unparsable or oversized header block or a hole outside
//! a body makes it skip ahead to the next line that starts a request (`GET `, `POST `, ...) or a
//! response (`HTTP/1.`), counting `resyncs`.

#![forbid(unsafe_code)]

mod body;
mod chunked;
mod detect;
mod gap;
mod head;
pub mod info;
pub mod ranged;
mod response;
mod state;

pub use info::HttpInfo;
use info::PackedInfo;
pub use ranged::RangedFiles;
pub use state::{Http, HttpConfig, HttpStats};

use body::{Body, Content, Decoders, Framing, Sink};
use chunked::{Dechunker, Step};
use head::{disposition_filename, parse_content_range, uri_filename, Head};
use memchr::memchr;
use ranged::RangeKey;
use response::{Found, HeadReader, ResponseHead};
use std::collections::VecDeque;
use xdpcarve_contract::{
    Anomalies, Anomaly, AppContext, CloseReason, Direction, FileMeta, Proto, Side, StreamParser, Timestamp,
};
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

/// A request waiting for its response: small, since a flood of unanswered requests is held.
/// Requests waiting for their responses at most, fields kept or not (see `on_request`); past it
/// the oldest is dropped and counted (`http.pipeline_dropped`).
const MAX_IN_LINE: usize = 1024;

struct Pending {
    info: PackedInfo,
    kind: MethodKind,
    /// It asked for a protocol switch (`Upgrade`): only then does a 101 end HTTP.
    upgrade: bool,
    /// When its head was complete: after a response-side hole, responses are paired by time.
    at: Timestamp,
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
    /// After a hole: responses look for a status line anywhere (module `gap`).
    anywhere: bool,
    buf: [u8; gap::STATUS_PATTERN_LEN],
    /// Bytes of `buf` matched.
    n: u8,
}

impl LineMatch {
    fn matched(&self) -> &[u8] {
        &self.buf[..usize::from(self.n)]
    }

    fn push(&mut self, b: u8) {
        self.buf[usize::from(self.n)] = b;
        self.n += 1;
    }
}

/// One direction of the connection: what requests and responses both need.
struct Half {
    phase: Phase,
    /// Requests: end-of-header scanner: 0 inside a line, 1 right after LF, 2 after LF CR.
    eol: u8,
    /// The header block read so far (bounded by `max_header_bytes`). Freed once the head has been
    /// parsed: a connection between messages or waiting for a response holds none.
    hdr: Vec<u8>,
    /// Boxed: a connection between messages (idle keep-alive) holds no body state.
    body: Option<Box<Body>>,
    resync: LineMatch,
}

impl Half {
    fn new() -> Self {
        Half {
            phase: Phase::Start,
            eol: 0,
            hdr: Vec::new(),
            body: None,
            resync: LineMatch::default(),
        }
    }
}

/// What only the response side needs (held once, not in both halves).
struct RespState {
    /// Where the status line and the head's end are.
    reader: HeadReader,
    /// Anomalies of interim (1xx) responses, carried to the final one. Boxed: rare, and a u128
    /// inline would align the parser to 16 bytes.
    carried: Option<Box<Anomalies>>,
    /// Bytes after a hole that no status line explains yet.
    orphan: Option<Box<gap::Orphan>>,
    /// The head being read starts at a status line found after a hole, still to be checked (it
    /// may be body data).
    candidate: bool,
    /// Candidates rejected since the hole.
    rejects: u8,
    /// When the head being read (or the candidate) began.
    head_at: Timestamp,
    /// When the bytes the resync after a hole is matching started.
    match_at: Timestamp,
}

impl RespState {
    fn new() -> Self {
        RespState {
            reader: HeadReader::new(true),
            carried: None,
            orphan: None,
            candidate: false,
            rejects: 0,
            head_at: Timestamp::ZERO,
            match_at: Timestamp::ZERO,
        }
    }

    /// Parses the head the reader read, `block` (up to its end), into owned values, with the
    /// anomalies carried from interim responses.
    fn parse_head(&mut self, block: &[u8], bent: bool) -> ResponseHead {
        let at = self.reader.status_at();
        let mut rh = response::parse(&block[at..], at > 0);
        if let Some(carried) = self.carried.take() {
            rh.anomalies.extend(*carried);
        }
        if bent {
            rh.anomalies.insert(Anomaly::HeadEndBent);
        }
        rh
    }
}

/// Where a response head the reader found ending at `end` of `buf` ends: at a blank-looking line
/// before that (bent) when what lies between reads as no header lines.
fn bent_end(reader: &HeadReader, buf: &[u8], end: usize) -> (usize, bool) {
    match reader.suspect_end() {
        Some(s) if s < end && !response::looks_like_headers(&buf[s..end]) => (s, true),
        _ => (end, false),
    }
}

/// One HTTP connection: requests from `Side::Orig`, responses from `Side::Resp`.
///
/// Kept small (one per connection, a flood of them is held): response-only state is held once,
/// rare state is boxed, and a connection between messages or waiting for a response holds no
/// header buffer and no body state.
pub struct HttpParser {
    halves: [Half; 2],
    resp: RespState,
    /// Requests waiting for their responses: no buffer while none waits.
    pending: VecDeque<Pending>,
    /// CONNECT accepted or protocol switched: the rest is opaque.
    tunnel: bool,
    /// A final response was seen: only a connection's first reply may be HTTP/0.9.
    replied: bool,
    /// The response side lost bytes where whole responses may have vanished, and no response was
    /// paired since: the next one is paired by time, not FIFO.
    resp_hole: bool,
    /// A rejected candidate's bytes were fed again (the caller's loop made progress).
    replayed: bool,
    /// The limits of `HttpConfig` (saturated: more than 4 Gi is as good as no bound).
    max_header_bytes: u32,
    max_pipelined: u32,
}

impl HttpParser {
    pub fn new(cfg: &HttpConfig) -> Self {
        HttpParser {
            halves: [Half::new(), Half::new()],
            resp: RespState::new(),
            pending: VecDeque::new(),
            tunnel: false,
            replied: false,
            resp_hole: false,
            replayed: false,
            max_header_bytes: u32::try_from(cfg.max_header_bytes.max(64)).unwrap_or(u32::MAX),
            max_pipelined: u32::try_from(cfg.max_pipelined.max(1)).unwrap_or(u32::MAX),
        }
    }

    /// The header block bound.
    fn max_header_bytes(&self) -> usize {
        self.max_header_bytes as usize
    }

    /// Queues a request until its response comes: the queue's first buffer holds one (a
    /// connection rarely has more waiting), later ones grow it as usual.
    fn push_pending(&mut self, p: Pending) {
        if self.pending.capacity() == 0 {
            self.pending.reserve_exact(1);
        }
        self.pending.push_back(p);
    }

    /// The oldest request waiting; the queue's buffer is freed once none waits (an idle
    /// keep-alive connection holds none).
    fn pop_pending(&mut self) -> Option<Pending> {
        let p = self.pending.pop_front();
        if self.pending.is_empty() {
            self.pending = VecDeque::new();
        }
        p
    }

    /// Reads (part of) a response head, the way browsers find and read it; returns the bytes
    /// consumed. The head (and any junk before it) is gathered in `hdr`, bounded.
    fn read_response_head(&mut self, input: &[u8], cx: &mut HttpContext<'_>) -> usize {
        let limit = self.max_header_bytes() + response::MAX_STATUS_SEARCH;
        let first = !self.replied;
        let (h, r) = (&mut self.halves[Side::Resp.index()], &mut self.resp);
        if h.phase == Phase::Start {
            h.phase = Phase::Headers;
            h.hdr.clear();
            r.reader = HeadReader::new(first);
            r.head_at = cx.now;
        }
        let before = h.hdr.len();
        let take = input.len().min(limit.saturating_sub(before)).max(1);
        let found = if before == 0 && !r.candidate {
            // A head that starts here is read in place; only one going on past this input is
            // copied (a head whole in its segment, the common case, costs no buffer).
            let found = r.reader.step(&input[..take], false);
            if let Found::Head(end) = found {
                let (end, bent) = bent_end(&r.reader, &input[..take], end);
                let rh = r.parse_head(&input[..end], bent);
                h.phase = Phase::Start;
                self.on_response(rh, cx);
                return end;
            }
            // The reader goes on over the same bytes at the same offsets in `hdr`.
            h.hdr.extend_from_slice(&input[..take]);
            found
        } else {
            h.hdr.extend_from_slice(&input[..take]);
            r.reader.step(&h.hdr, false)
        };
        if r.candidate {
            return self.read_candidate_head(found, before, take, cx);
        }
        let (h, r) = (&mut self.halves[Side::Resp.index()], &self.resp);
        match found {
            Found::More if h.hdr.len() >= limit => match r.reader.suspect_end() {
                Some(end) => self.head_ends_at(end, before, true, cx).unwrap_or(take),
                None => {
                    cx.state.stats.header_too_large += 1;
                    self.start_resync(Side::Resp, false, cx);
                    take
                }
            },
            Found::More => take,
            Found::Head(end) => {
                let (end, bent) = bent_end(&r.reader, &h.hdr, end);
                self.head_ends_at(end, before, bent, cx).unwrap_or(take)
            }
            Found::NoStatusLine => self.no_status_line(cx).unwrap_or(take),
        }
    }

    /// A head that starts at a status line found after a hole: taken if it reads as a head (header
    /// lines up to an empty line, within the bound), else its bytes are data.
    fn read_candidate_head(&mut self, found: Found, before: usize, take: usize, cx: &mut HttpContext<'_>) -> usize {
        let limit = self.max_header_bytes() + response::MAX_STATUS_SEARCH;
        let (h, r) = (&self.halves[Side::Resp.index()], &self.resp);
        let len = h.hdr.len();
        match found {
            Found::More if len >= limit => self.reject_candidate(len, before, cx),
            Found::More => take,
            Found::NoStatusLine => self.reject_candidate(len, before, cx),
            Found::Head(end) => {
                let (end, bent) = bent_end(&r.reader, &h.hdr, end);
                let status_end = memchr(b'\n', &h.hdr[..end])
                    .unwrap_or(end)
                    .min(h.hdr[..end].iter().position(|&b| b == b'\r').unwrap_or(end));
                // At least one header: a bare status line in body text would frame the rest of the
                // connection as its body.
                let lines = &h.hdr[status_end..end];
                if !lines.contains(&b':') || !response::looks_like_headers(lines) {
                    return self.reject_candidate(end.max(before), before, cx);
                }
                self.candidate_accepted(cx);
                self.head_ends_at(end, before, bent, cx).unwrap_or(take)
            }
        }
    }

    /// The head ends at `end` of `hdr`, which held `before` bytes before this input. Returns the
    /// bytes of this input the head used, or None when it ended inside earlier bytes (those after
    /// it have been read as the body; the whole input is left to the caller's loop).
    fn head_ends_at(&mut self, end: usize, before: usize, bent: bool, cx: &mut HttpContext<'_>) -> Option<usize> {
        let h = &mut self.halves[Side::Resp.index()];
        let early = (end < before).then(|| h.hdr[end..before].to_vec());
        self.response_head_done(end, bent, cx);
        match early {
            None => Some(end - before),
            Some(rest) => {
                let mut rest = rest.as_slice();
                while !rest.is_empty() && self.halves[Side::Resp.index()].phase == Phase::Body {
                    let n = self.read_body(Side::Resp, rest, cx);
                    rest = &rest[n..];
                }
                Some(0)
            }
        }
    }

    /// What comes where a reply belongs has no status line: HTTP/0.9 on a connection's first
    /// reply; after a reply, bytes no client reads as one, kept as a file to the close (never
    /// silently dropped). Returns None when the whole input was taken.
    fn no_status_line(&mut self, cx: &mut HttpContext<'_>) -> Option<usize> {
        cx.state.stats.malformed_responses += 1;
        if self.http09_plausible() {
            self.unframed_reply(Anomaly::Http09Response, cx);
            None
        } else if self.replied {
            self.unframed_reply(Anomaly::DataAfterBody, cx);
            None
        } else {
            // Not HTTP here (picked up mid-stream): look for the next reply; the new bytes are
            // looked at again by the resync.
            self.start_resync(Side::Resp, false, cx);
            Some(0)
        }
    }

    /// The response head ends at `end` in `hdr`: parse it and set up its body.
    fn response_head_done(&mut self, end: usize, bent: bool, cx: &mut HttpContext<'_>) {
        let h = &mut self.halves[Side::Resp.index()];
        let rh = self.resp.parse_head(&h.hdr[..end], bent);
        release_header_buffer(&mut h.hdr);
        h.phase = Phase::Start;
        self.on_response(rh, cx);
    }

    /// A reply with no status line is HTTP/0.9 only where a browser would take it as one: the
    /// connection's first reply, to a request we saw.
    fn http09_plausible(&self) -> bool {
        !self.replied && !self.pending.is_empty()
    }

    /// A reply without a head (`why`: HTTP/0.9, or junk after a reply): everything up to the
    /// close is its body, starting with what is in `hdr`. Junk frames nothing, so it is logged
    /// as truncated by `framing`; an HTTP/0.9 reply is complete at the close.
    fn unframed_reply(&mut self, why: Anomaly, cx: &mut HttpContext<'_>) {
        let http09 = why == Anomaly::Http09Response;
        if http09 {
            cx.state.stats.responses += 1;
        }
        self.replied = true;
        let info = if http09 {
            self.pop_pending().map(|p| p.info.unpack()).unwrap_or_default()
        } else {
            HttpInfo::default()
        };
        let mut meta = file_meta(Direction::Download, &Head::default(), info, false);
        meta.anomalies.insert(why);
        if !http09 {
            meta.anomalies.insert(Anomaly::FramingLost);
        }
        let mut content = Content::new(
            Sink::File {
                meta: Some(meta),
                file: None,
            },
            None,
        );
        let h = &mut self.halves[Side::Resp.index()];
        let buffered = std::mem::take(&mut h.hdr);
        if buffered.iter().any(|b| !b.is_ascii_whitespace()) {
            content.data(&buffered, cx);
        }
        drop(buffered);
        let h = &mut self.halves[Side::Resp.index()];
        h.body = Some(Box::new(Body {
            framing: if http09 { Framing::UntilClose } else { Framing::Unframed },
            content,
        }));
        h.phase = Phase::Body;
    }

    /// The response side ended inside a head: what came is read as the whole head (no body,
    /// unless a blank-looking line ended it), as an HTTP/0.9 body, or as junk after a reply.
    fn response_ended_in_head(&mut self, cx: &mut HttpContext<'_>) {
        let h = &mut self.halves[Side::Resp.index()];
        if h.phase != Phase::Headers || h.hdr.iter().all(|b| b.is_ascii_whitespace()) {
            return;
        }
        let len = h.hdr.len();
        let r = &mut self.resp;
        match r.reader.step(&h.hdr, true) {
            Found::Head(end) => {
                let (end, bent) = match r.reader.suspect_end() {
                    Some(s) if s < end || end == len => (s, true),
                    _ => (end, false),
                };
                self.head_ends_at(end, len, bent, cx);
            }
            Found::NoStatusLine => {
                self.no_status_line(cx);
            }
            Found::More => cx.state.stats.malformed_responses += 1,
        }
    }

    /// Reads (part of) a request header block; returns the bytes consumed.
    fn read_request_head(&mut self, input: &[u8], cx: &mut HttpContext<'_>) -> usize {
        let side = Side::Orig;
        let max = self.max_header_bytes();
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
        // The first bytes must look like a request; otherwise this is not HTTP here (a mid-stream
        // pickup, garbage) and we look for the next start.
        if h.hdr.len() < MAX_METHOD + 1 {
            let mut probe = [0u8; MAX_METHOD + 1];
            let have = h.hdr.len();
            probe[..have].copy_from_slice(&h.hdr);
            let more = (probe.len() - have).min(input.len() - i);
            probe[have..have + more].copy_from_slice(&input[i..i + more]);
            if plausible_request_start(&probe[..have + more]) == Some(false) {
                cx.state.stats.malformed_requests += 1;
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
        let parsed = parse_request_head(whole);
        release_header_buffer(&mut self.halves[side.index()].hdr);
        match parsed {
            Some(head) => self.on_request(head, cx),
            None => {
                cx.state.stats.malformed_requests += 1;
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
        let request = PackedInfo::pack([
            Some(head.method.as_str()),
            Some(head.uri.as_str()),
            head.host.as_deref(),
            head.user_agent.as_deref(),
            head.referrer.as_deref(),
        ]);
        if self.pending.len() >= self.max_pipelined as usize {
            // Past max_pipelined the oldest request still holding its fields gives them up but
            // keeps its place in line: dropping it would pair every later response with the
            // wrong request, and a GET's body read as a HEAD's answer is a file hidden.
            cx.state.stats.pipeline_overflow += 1;
            if self.pending.len() >= MAX_IN_LINE {
                self.pending.pop_front();
                cx.state.stats.pipeline_dropped += 1;
            }
            if let Some(oldest) = self.pending.iter_mut().find(|p| !p.info.is_empty()) {
                oldest.info = PackedInfo::default();
            }
        }
        if !self.pending.is_empty() {
            cx.state.stats.pipelined_requests += 1;
        }
        let framing = if head.is_chunked() {
            Some(Framing::Chunked(Dechunker::new(self.max_header_bytes())))
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
                let info = request.unpack();
                let content = match head.form_data_boundary() {
                    Some(boundary) => {
                        let mut template = FileMeta::new(PROTO, Direction::Upload);
                        info.clone().write_fields(&mut template.fields);
                        let mut envelope = file_meta(Direction::Upload, &head, info, false);
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
                        let (decoder, decoded, anomalies) = decoder_for(&head, cx);
                        let mut meta = file_meta(Direction::Upload, &head, info, decoded);
                        meta.anomalies.extend(anomalies);
                        Content::new(
                            Sink::File {
                                meta: Some(meta),
                                file: None,
                            },
                            decoder,
                        )
                    }
                };
                half.body = Some(Box::new(Body { framing, content }));
                half.phase = Phase::Body;
            }
            None if kind == MethodKind::Connect => half.phase = Phase::AwaitTunnel,
            None => half.phase = Phase::Start,
        }
        self.push_pending(Pending {
            info: request,
            kind,
            upgrade: head.upgrade,
            at: cx.now,
        });
    }

    fn on_response(&mut self, rh: ResponseHead, cx: &mut HttpContext<'_>) {
        let ResponseHead {
            head,
            anomalies,
            cl_conflict,
            ..
        } = &rh;
        let status = head.status;
        let resp = Side::Resp.index();
        // The first byte of a head found after a hole (pairing by time), else of this one.
        let at = self.resp.head_at;
        let upgrade_asked = self
            .pending_index(Some(at))
            .and_then(|i| self.pending.get(i))
            .is_some_and(|p| p.upgrade);
        if (100..200).contains(&status) {
            if status == 101 && upgrade_asked {
                cx.state.stats.tunnels += 1;
                self.tunnel = true;
            } else {
                // 100 Continue and friends: the final response is still to come.
                cx.state.stats.interim_responses += 1;
                let carried = self.resp.carried.get_or_insert_default();
                carried.extend(*anomalies);
                carried.insert(Anomaly::InterimResponse);
                self.halves[resp].phase = Phase::Start;
            }
            return;
        }
        cx.state.stats.responses += 1;
        self.replied = true;
        let (mut info, kind) = match self.take_pending(Some(at), cx) {
            Some(p) => (p.info.unpack(), p.kind),
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
        let attachment = head.content_disposition.as_deref().is_some_and(|cd| {
            cd.trim_start()
                .get(..10)
                .is_some_and(|t| t.eq_ignore_ascii_case("attachment"))
        });
        // The statuses Chromium saves a download under.
        let saved_as_download = attachment && ((200..=203).contains(&status) || status == 206);
        // Chromium's order: chunked (HTTP/1.1 and later only), then Content-Length, then the
        // close. Lengths that disagree frame nothing: the rest of the connection is the body.
        let framing = if rh.is_chunked() {
            Framing::Chunked(Dechunker::new(self.max_header_bytes()))
        } else if *cl_conflict {
            cx.state.stats.malformed_responses += 1;
            Framing::Unframed
        } else {
            match head.content_length {
                Some(Ok(0)) if !saved_as_download => return,
                Some(Ok(n)) => Framing::Length(n),
                Some(Err(())) => {
                    cx.state.stats.malformed_responses += 1;
                    Framing::UntilClose
                }
                None => Framing::UntilClose,
            }
        };
        let mut content = if status == 206 {
            cx.state.stats.partial_content += 1;
            self.partial_content(head, info, cx)
        } else {
            let (decoder, decoded, ce_anomalies) = decoder_for(head, cx);
            let mut meta = file_meta(Direction::Download, head, info, decoded);
            meta.anomalies.extend(ce_anomalies);
            Content::new(
                Sink::File {
                    meta: Some(meta),
                    file: None,
                },
                decoder,
            )
        };
        content.flag_all(*anomalies);
        if attachment && !saved_as_download {
            content.flag(Anomaly::StatusRefusedDownload);
        }
        if saved_as_download && status != 206 {
            // A browser saves this download even when it is empty: so is its record.
            content.keep_if_empty();
        }
        if matches!(framing, Framing::Unframed) {
            content.flag(Anomaly::FramingLost);
        }
        let empty = matches!(framing, Framing::Length(0));
        let half = &mut self.halves[resp];
        half.body = Some(Box::new(Body { framing, content }));
        half.phase = Phase::Body;
        if empty {
            self.end_body(Side::Resp, FileEnd::Complete, cx);
        }
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
        if cr.is_none() {
            meta.anomalies.insert(Anomaly::RangeMissing);
        }
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
            Framing::UntilClose | Framing::Unframed => {
                body.content.data(input, cx);
                input.len()
            }
            Framing::Chunked(d) => {
                let mut used = 0;
                let mut outcome = None;
                while used < input.len() {
                    let (n, step) = d.step(&input[used..]);
                    used += n;
                    match step {
                        Step::Framing => {}
                        Step::Data(x) => body.content.data(x, cx),
                        Step::Done => {
                            outcome = Some(Step::Done);
                            break;
                        }
                        Step::Error => {
                            outcome = Some(Step::Error);
                            break;
                        }
                    }
                }
                body.content.flag_all(d.anomalies());
                match outcome {
                    Some(Step::Done) => self.end_body(side, FileEnd::Complete, cx),
                    Some(Step::Error) => {
                        // A size no client can read: the rest of the connection is the body,
                        // starting with the line that broke the framing.
                        cx.state.stats.chunked_errors += 1;
                        let line = d.take_line();
                        body.content.flag(Anomaly::FramingLost);
                        body.content.data(&line, cx);
                        body.content.data(&input[used..], cx);
                        body.framing = Framing::Unframed;
                        return input.len();
                    }
                    _ => {}
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
    fn read_resync(&mut self, side: Side, input: &[u8], cx: &mut HttpContext<'_>) -> usize {
        if side == Side::Resp && self.halves[side.index()].resync.anywhere {
            return self.read_resync_anywhere(input, cx);
        }
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
            m.push(b);
            let cand = m.matched();
            if starts.contains(&cand) {
                h.hdr.clear();
                h.hdr.extend_from_slice(cand);
                h.eol = 0;
                h.phase = Phase::Headers;
                h.resync = LineMatch::default();
                return i;
            }
            if cand.len() == m.buf.len() || !starts.iter().any(|s| s.starts_with(cand)) {
                m.line_start = b == b'\n';
                m.n = 0;
            }
        }
        i
    }

    /// Runs `input` through the state machines of `from`'s direction.
    fn feed(&mut self, from: Side, data: &[u8], cx: &mut HttpContext<'_>) {
        let mut input = data;
        while !input.is_empty() && !self.tunnel {
            let phase = self.halves[from.index()].phase;
            self.replayed = false;
            let used = match phase {
                Phase::Start | Phase::Headers => match from {
                    Side::Orig => self.read_request_head(input, cx),
                    Side::Resp => self.read_response_head(input, cx),
                },
                Phase::Body => self.read_body(from, input, cx),
                Phase::Resync => self.read_resync(from, input, cx),
                Phase::AwaitTunnel | Phase::Ended => input.len(),
            };
            if used == 0 && self.halves[from.index()].phase == phase && !self.replayed {
                // Cannot happen by construction; never spin on it.
                debug_assert!(false, "HTTP parser made no progress in {phase:?}");
                break;
            }
            input = &input[used..];
        }
    }
}

impl StreamParser for HttpParser {
    type State = Http;

    fn on_data(&mut self, from: Side, data: &[u8], cx: &mut HttpContext<'_>) {
        self.feed(from, data, cx);
    }

    fn on_gap(&mut self, from: Side, len: u64, cx: &mut HttpContext<'_>) {
        if self.tunnel || len == 0 {
            return;
        }
        self.handle_gap(from, len, cx);
    }

    fn on_end(&mut self, from: Side, cx: &mut HttpContext<'_>) {
        if from == Side::Resp {
            self.candidate_at_end(cx);
            self.finish_orphan(true, cx);
            self.response_ended_in_head(cx);
        }
        let h = &mut self.halves[from.index()];
        if h.phase == Phase::Body {
            let end = match h.body.as_mut() {
                Some(body) => end_at_close(body, CloseReason::Finished),
                None => FileEnd::Complete,
            };
            self.end_body(from, end, cx);
        }
        let h = &mut self.halves[from.index()];
        release_header_buffer(&mut h.hdr);
        h.phase = Phase::Ended;
    }

    fn on_close(&mut self, reason: CloseReason, cx: &mut HttpContext<'_>) {
        for side in [Side::Orig, Side::Resp] {
            if side == Side::Resp {
                self.candidate_at_end(cx);
                self.finish_orphan(true, cx);
            }
            if side == Side::Resp && reason == CloseReason::Finished {
                self.response_ended_in_head(cx);
            }
            let h = &mut self.halves[side.index()];
            if let Some(body) = h.body.as_mut() {
                let end = end_at_close(body, reason);
                self.end_body(side, end, cx);
            }
            let h = &mut self.halves[side.index()];
            h.phase = Phase::Ended;
            release_header_buffer(&mut h.hdr);
        }
        self.pending = VecDeque::new();
    }

    fn is_done(&self) -> bool {
        self.tunnel
    }
}

#[cfg(test)]
impl HttpParser {
    /// Heap bytes held beyond the parser itself, by capacity (what was asked of the allocator):
    /// the pending queue and its requests' fields, header buffers, and the boxes of body and
    /// hole state (not what those hold in turn).
    fn heap_bytes(&self) -> usize {
        let pending = self.pending.capacity() * std::mem::size_of::<Pending>()
            + self.pending.iter().map(|p| p.info.heap_bytes()).sum::<usize>();
        let halves = self
            .halves
            .iter()
            .map(|h| h.hdr.capacity() + h.body.as_ref().map_or(0, |_| std::mem::size_of::<Body>()));
        let carried = self
            .resp
            .carried
            .as_ref()
            .map_or(0, |_| std::mem::size_of::<Anomalies>());
        let orphan = self
            .resp
            .orphan
            .as_ref()
            .map_or(0, |_| std::mem::size_of::<gap::Orphan>());
        pending + halves.sum::<usize>() + carried + orphan
    }
}

/// How a body still open when its side of the connection ends (`reason`) is recorded.
fn end_at_close(body: &mut Body, reason: CloseReason) -> FileEnd {
    let finished = reason == CloseReason::Finished;
    match &body.framing {
        Framing::UntilClose if finished => FileEnd::Complete,
        Framing::Unframed => FileEnd::Truncated("framing"),
        // Closed between chunks: no data byte is missing, only the last chunk (Firefox keeps it).
        Framing::Chunked(d) if finished && d.between_chunks() => {
            body.content.flag(Anomaly::ChunkFinalMissing);
            FileEnd::Complete
        }
        Framing::Chunked(_) if finished => {
            body.content.flag(Anomaly::ChunkFinalMissing);
            FileEnd::Truncated(reason.as_str())
        }
        Framing::Length(_) if finished => {
            body.content.flag(Anomaly::ClShort);
            // Chromium (like Firefox) forgives a compressed body shorter than its length once the
            // decoder reached the end: servers announce the uncompressed size.
            if body.content.decoded_to_end() {
                FileEnd::Complete
            } else {
                FileEnd::Truncated(reason.as_str())
            }
        }
        Framing::Chunked(_) | Framing::Length(_) | Framing::UntilClose => FileEnd::Truncated(reason.as_str()),
    }
}

/// Frees a header buffer once its head has been parsed into owned values (or given up): a
/// connection between messages or waiting for a response holds none (a busy sensor, or a flood of
/// unanswered requests, keeps many connections open).
fn release_header_buffer(hdr: &mut Vec<u8>) {
    *hdr = Vec::new();
}

/// Whether `b` (the first bytes of a message) can start a request. None: too few bytes to tell.
fn plausible_request_start(b: &[u8]) -> Option<bool> {
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

/// Parses a complete request header block.
fn parse_request_head(block: &[u8]) -> Option<Head> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    match parser_config().parse_request(&mut req, block) {
        Ok(httparse::Status::Complete(_)) => {
            let mut head = Head::from_headers(req.headers);
            head.method = req.method?.to_owned();
            head.uri = req.path?.to_owned();
            Some(head)
        }
        _ => None,
    }
}

/// How httparse reads request heads (a few flags: built where used rather than held per
/// connection).
fn parser_config() -> httparse::ParserConfig {
    let mut cfg = httparse::ParserConfig::default();
    cfg.allow_spaces_after_header_name_in_responses(true)
        .allow_obsolete_multiline_headers_in_responses(true)
        .allow_multiple_spaces_in_request_line_delimiters(true)
        .allow_multiple_spaces_in_response_status_delimiters(true)
        .ignore_invalid_headers_in_responses(true)
        .ignore_invalid_headers_in_requests(true);
    cfg
}

/// Codings stacked deeper than this are hashed as sent.
const MAX_CODINGS: usize = 4;

/// The Content-Encoding decoders for a body, whether the content will be decoded, and what was
/// unusual. Chromium's rule: every coding listed (across headers) is undone, last first; one it
/// does not know (or `identity`) anywhere in the list leaves the body as sent.
fn decoder_for(head: &Head, cx: &mut HttpContext<'_>) -> (Option<Decoders>, bool, Anomalies) {
    let mut anomalies = Anomalies::EMPTY;
    let Some(ce) = head.content_encoding.as_deref() else {
        return (None, false, anomalies);
    };
    // An empty coding (`, gzip`) is one Chromium does not know.
    let tokens: Vec<&str> = ce.split(',').map(|t| t.trim_matches([' ', '\t'])).collect();
    let codings: Option<Vec<Coding>> = tokens.iter().map(|t| Coding::from_token(t)).collect();
    if tokens.len() > 1 {
        anomalies.insert(Anomaly::CeStacked);
    }
    match codings {
        Some(codings) if !codings.is_empty() && codings.len() <= MAX_CODINGS => {
            let h = &cx.state.cfg;
            let chain = codings
                .iter()
                .rev()
                .map(|&c| Inflater::new(c, h.max_decompressed_bytes, h.max_decompression_ratio))
                .collect();
            (Some(Decoders(chain)), true, anomalies)
        }
        _ => {
            cx.state.stats.unknown_encodings += 1;
            anomalies.insert(Anomaly::CeUnknown);
            (None, false, anomalies)
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
