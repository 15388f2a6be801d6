//! Recovery after capture loss: what the parser does with a hole (`on_gap`) and with the bytes
//! after it, so that a hole costs only the messages it touched.
//!
//! - **Inside a body** whose framing survives (a Content-Length body the hole does not pass, or
//!   chunk data within one chunk), the hole is counted down: the file goes on with missing bytes and
//!   nothing is resynchronised (a status line inside the rest of the body stays body).
//! - **Anywhere else** (between messages, in a head, past a body's end, in chunk framing) the
//!   position is lost. Requests resume at the next line starting with a method (the byte right after
//!   the hole counts as a line start: with whole-packet loss a message very often starts there).
//!   Responses resume at the next `HTTP/1.d ddd` followed by SP, CR or LF found *anywhere*, not
//!   only at a line start, since binary bodies do not end in LF; such a candidate is taken only if
//!   a head that reads as header lines follows (else it was data, and the search goes on from its
//!   second byte).
//! - **Pairing.** A response-side hole may have swallowed whole responses: the first response found
//!   after it answers the newest pending request sent at or before its first byte; older pending
//!   requests lost their responses in the hole (`responses_lost`), and each still gets a record
//!   (empty, truncated `gap`, with its URI), so no download goes unlogged. Without such a hole
//!   pairing stays FIFO (pipelining).
//!
//! **Bytes between the hole and the next status line** ([`Orphan`]) are the body of a response
//! whose head was lost, and recorded as a file (truncated `gap`, with missing bytes, no hashes),
//! when the previous response is known to have ended before them: the hole began between messages,
//! in a head, or in a Content-Length body it ran past. They are never the previous body's tail
//! there, since that body's end lies inside the hole. When the hole cut a chunked body's framing,
//! that body's end is unknown and the bytes may be its tail: they are recorded only if they do not
//! end like a chunked body (a last chunk, `0` and an empty line, right before the status line
//! found; trailers are not looked for), since a chunked tail must end that way; at the close they
//! are recorded only if a pending request can own them. Nothing is recorded for bytes that are only
//! blanks, nor after a hole in bytes that were already being skipped (a resync, a tunnel).

use crate::head::uri_filename;
use crate::{HttpContext, HttpParser, MethodKind, Pending, Phase, PROTO};
use memchr::memchr;
use xdpcarve_contract::{Direction, FileMeta, Side, Timestamp};
use xdpcarve_files::{FileAnalyzer, FileEnd};

/// Status line bytes a response candidate found after a hole must match: `HTTP/1.` digit SP three
/// digits, then SP, CR or LF.
pub const STATUS_PATTERN_LEN: usize = 13;
/// Candidates after one hole whose rejected bytes are searched again; past that they are skipped as
/// data (bounds the work hostile input can cause: each retry rescans up to a header block).
const MAX_REJECTS: u8 = 8;
/// Last bytes of an orphan kept to tell whether they end like a chunked body.
const TAIL: usize = 8;

fn status_pattern_ok(i: usize, b: u8) -> bool {
    const START: &[u8] = b"HTTP/1.";
    match i {
        0..=6 => b == START[i],
        7 | 9..=11 => b.is_ascii_digit(),
        8 => b == b' ',
        12 => matches!(b, b' ' | b'\r' | b'\n'),
        _ => false,
    }
}

/// Where a hole began, which decides whose the bytes after it can be.
pub enum HoleAt {
    /// The previous response is known to have ended: later bytes belong to a newer response.
    AfterEnd,
    /// Inside a chunked body's framing: the bytes after it may be that body's tail. The body's file
    /// if no byte of it came before the hole (its tail is then its only record).
    ChunkFraming(Option<FileMeta>),
    /// In bytes already being skipped: nothing is known.
    Unknown,
}

/// Response bytes after a hole that no status line explains yet (see the module doc).
pub struct Orphan {
    maybe_tail: bool,
    /// The chunked body cut before any of its bytes came, whose tail these may be.
    tail_of: Option<FileMeta>,
    /// Bytes lost before these (not the previous body's), counted as the file's missing bytes.
    missing: u64,
    file: Option<FileAnalyzer>,
    /// When the first of these bytes came: which pending request they answer.
    first_at: Timestamp,
    /// Only blanks so far.
    blank: bool,
    tail: [u8; TAIL],
    /// Another hole came inside these bytes (its length), not yet looked at.
    after_hole: Option<u64>,
}

impl Orphan {
    fn new(maybe_tail: bool, tail_of: Option<FileMeta>, missing: u64) -> Self {
        Orphan {
            maybe_tail,
            tail_of,
            missing: missing.max(1),
            file: None,
            first_at: Timestamp::ZERO,
            blank: true,
            tail: [0; TAIL],
            after_hole: None,
        }
    }

    pub fn data(&mut self, data: &[u8], cx: &mut HttpContext<'_>) {
        if data.is_empty() {
            return;
        }
        let f = self.file.get_or_insert_with(|| {
            self.first_at = cx.now;
            let mut f = FileAnalyzer::open(cx, FileMeta::new(PROTO, Direction::Download));
            f.gap(self.missing);
            f
        });
        f.update(data);
        self.blank &= data.iter().all(u8::is_ascii_whitespace);
        let n = data.len().min(TAIL);
        self.tail.copy_within(n.., 0);
        self.tail[TAIL - n..].copy_from_slice(&data[data.len() - n..]);
    }

    fn gap(&mut self, len: u64) {
        match &mut self.file {
            Some(f) => f.gap(len),
            None => self.missing += len,
        }
    }

    /// The bytes end like a chunked body.
    fn ends_like_last_chunk(&self) -> bool {
        let size = self.file.as_ref().map_or(0, FileAnalyzer::size);
        ends_like_last_chunk(&self.tail[TAIL - (size.min(TAIL as u64) as usize)..])
    }
}

/// `tail` (the last bytes of a stretch) ends with a last chunk (`0` on a line of its own) and an empty line.
fn ends_like_last_chunk(tail: &[u8]) -> bool {
    let body = tail
        .iter()
        .rposition(|&b| b != b'\r' && b != b'\n')
        .map_or(0, |i| i + 1);
    let lfs = tail[body..].iter().filter(|&&b| b == b'\n').count();
    lfs >= 2 && body > 0 && tail[body - 1] == b'0' && (body == 1 || tail[body - 2] == b'\n')
}

impl HttpParser {
    pub(crate) fn handle_gap(&mut self, from: Side, len: u64, cx: &mut HttpContext<'_>) {
        use crate::body::Framing;
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
                                self.gap_resync(from, len - n, HoleAt::AfterEnd, cx);
                            }
                        }
                    }
                    Framing::UntilClose | Framing::Unframed => body.content.gap(len, cx),
                    Framing::Chunked(d) => {
                        if d.skip_data(len) {
                            body.content.gap(len, cx);
                        } else {
                            let in_data = d.in_data().unwrap_or(0);
                            let unopened = body.content.unopened_meta();
                            if unopened.is_none() {
                                // How much of the hole was this body's is unknown: all of it may be.
                                body.content.gap(len, cx);
                            }
                            self.end_body(from, FileEnd::Truncated("gap"), cx);
                            self.gap_resync(from, len - in_data, HoleAt::ChunkFraming(unopened), cx);
                        }
                    }
                }
            }
            Phase::Start | Phase::Headers => {
                if from == Side::Resp && self.resp.candidate {
                    // A status line found after an earlier hole was being checked: if it was one,
                    // the bytes before it ended there.
                    self.resp.candidate = false;
                    self.finish_orphan(false, cx);
                }
                self.gap_resync(from, len, HoleAt::AfterEnd, cx);
            }
            Phase::Resync if h.resync.anywhere => {
                // Still looking after an earlier hole: a partial match is cut, the bytes go on.
                let m = std::mem::take(&mut h.resync);
                h.resync.anywhere = true;
                h.resync.line_start = true;
                if from == Side::Resp {
                    if let Some(o) = self.resp.orphan.as_mut() {
                        o.data(m.matched(), cx);
                        o.gap(len);
                        o.after_hole = Some(len);
                    }
                    self.resp_hole = true;
                }
            }
            Phase::Resync => self.gap_resync(from, len, HoleAt::Unknown, cx),
            Phase::AwaitTunnel | Phase::Ended => {}
        }
    }

    /// After a hole of which `missing` bytes were not the previous body's: skip to the next message,
    /// starting with the byte right after the hole.
    fn gap_resync(&mut self, side: Side, missing: u64, at: HoleAt, cx: &mut HttpContext<'_>) {
        cx.state.stats.gap_resyncs += 1;
        self.start_resync(side, true, cx);
        self.halves[side.index()].resync.anywhere = true;
        if side == Side::Resp {
            self.resp.rejects = 0;
            self.resp_hole = true;
            self.resp.orphan = match at {
                HoleAt::AfterEnd => Some(Box::new(Orphan::new(false, None, missing))),
                HoleAt::ChunkFraming(meta) => Some(Box::new(Orphan::new(true, meta, missing))),
                HoleAt::Unknown => None,
            };
        }
    }

    /// Skips response bytes after a hole until a status line candidate (see [`status_pattern_ok`]);
    /// the bytes skipped go to the orphan. Returns the bytes consumed.
    pub(crate) fn read_resync_anywhere(&mut self, input: &[u8], cx: &mut HttpContext<'_>) -> usize {
        self.split_orphan_after_hole(cx);
        let (h, r) = (&mut self.halves[Side::Resp.index()], &mut self.resp);
        let m = &mut h.resync;
        let mut i = 0;
        while i < input.len() {
            if m.n == 0 {
                let next = memchr(b'H', &input[i..]).map_or(input.len(), |k| i + k);
                if let Some(o) = r.orphan.as_mut() {
                    o.data(&input[i..next], cx);
                }
                i = next;
                if i == input.len() {
                    break;
                }
                r.match_at = cx.now;
            }
            let b = input[i];
            if !status_pattern_ok(usize::from(m.n), b) {
                // Not a status line: what matched is data, and this byte is looked at again.
                if let Some(o) = r.orphan.as_mut() {
                    o.data(m.matched(), cx);
                }
                m.n = 0;
                continue;
            }
            m.push(b);
            i += 1;
            if m.matched().len() == STATUS_PATTERN_LEN {
                h.hdr.clear();
                h.hdr.extend_from_slice(m.matched());
                r.head_at = r.match_at;
                r.reader = crate::response::HeadReader::new(false);
                r.candidate = true;
                h.phase = Phase::Headers;
                m.n = 0;
                return i;
            }
        }
        i
    }

    /// A second hole inside a headless body: when a request was sent after the body's first byte
    /// and before the bytes now arriving (their capture time), the hole took this body's end and
    /// the head of that request's response, since a client asks again once a response is in. The
    /// bytes from here are then that response's, recorded apart.
    fn split_orphan_after_hole(&mut self, cx: &mut HttpContext<'_>) {
        let Some(o) = self.resp.orphan.as_mut() else {
            return;
        };
        let Some(hole) = o.after_hole.take() else { return };
        if o.file.is_none() {
            return;
        }
        let first_at = o.first_at;
        let owner = self.pending.iter().rposition(|p| p.at <= first_at);
        let newest = self.pending.iter().rposition(|p| p.at <= cx.now);
        if newest.is_some() && newest != owner {
            cx.state.stats.headless_splits += 1;
            self.finish_orphan(false, cx);
            self.resp_hole = true;
            self.resp.orphan = Some(Box::new(Orphan::new(false, None, hole)));
        }
    }

    /// The status line candidate in `hdr[..upto]` leads no head: it was data. Its first byte goes to
    /// the orphan and the rest is searched again. Returns the bytes of the current input used
    /// (`before` of `hdr` came with earlier inputs).
    pub(crate) fn reject_candidate(&mut self, upto: usize, before: usize, cx: &mut HttpContext<'_>) -> usize {
        cx.state.stats.resync_rejects += 1;
        let (h, r) = (&mut self.halves[Side::Resp.index()], &mut self.resp);
        let mut held = std::mem::take(&mut h.hdr);
        let upto = upto.min(held.len());
        held.truncate(upto);
        r.candidate = false;
        h.phase = Phase::Resync;
        h.resync = crate::LineMatch {
            anywhere: true,
            ..Default::default()
        };
        r.rejects = r.rejects.saturating_add(1);
        let retry = r.rejects <= MAX_REJECTS;
        let split = if retry { held.len().min(1) } else { held.len() };
        if let Some(o) = r.orphan.as_mut() {
            o.data(&held[..split], cx);
        }
        // Bounded recursion: at most MAX_REJECTS nested retries per hole.
        self.feed(Side::Resp, &held[split..], cx);
        self.replayed = true;
        upto.saturating_sub(before)
    }

    /// A candidate head checked out: the search after the hole is over.
    pub(crate) fn candidate_accepted(&mut self, cx: &mut HttpContext<'_>) {
        self.resp.candidate = false;
        self.resp.rejects = 0;
        self.finish_orphan(false, cx);
    }

    /// The response side ends while a candidate is being checked: its bytes are data.
    pub(crate) fn candidate_at_end(&mut self, cx: &mut HttpContext<'_>) {
        let (h, r) = (&mut self.halves[Side::Resp.index()], &mut self.resp);
        if !r.candidate {
            return;
        }
        r.candidate = false;
        h.phase = Phase::Resync;
        if let Some(o) = r.orphan.as_mut() {
            o.data(&h.hdr, cx);
        }
        crate::release_header_buffer(&mut h.hdr);
    }

    /// The orphan bytes end (a status line follows, or the connection ends: `at_close`): they are
    /// recorded as the body of the response whose head was lost, or dropped (module doc).
    pub(crate) fn finish_orphan(&mut self, at_close: bool, cx: &mut HttpContext<'_>) {
        let Some(mut o) = self.resp.orphan.take() else { return };
        let chunked_tail = o.maybe_tail && o.ends_like_last_chunk();
        let Some(mut file) = o.file.take() else { return };
        if o.blank {
            cx.state.stats.orphans_dropped += 1;
            return;
        }
        if chunked_tail {
            // Most likely the tail of the chunked body the hole cut: its record if it has none.
            match o.tail_of.take() {
                Some(meta) => {
                    let (missing, size) = (file.missing_bytes(), file.size());
                    *file.meta_mut() = meta;
                    debug_assert!(missing > 0 && size > 0);
                    file.close(cx, FileEnd::Truncated("gap"));
                }
                None => cx.state.stats.orphans_dropped += 1,
            }
            return;
        }
        let pending = self.pending_index(Some(o.first_at));
        if pending.is_none() && o.maybe_tail && at_close {
            cx.state.stats.orphans_dropped += 1;
            return;
        }
        let info = match self.take_pending(Some(o.first_at), cx) {
            Some(p) => p.info.unpack(),
            None => {
                cx.state.stats.unmatched_responses += 1;
                Default::default()
            }
        };
        self.resp_hole = false;
        self.replied = true;
        cx.state.stats.responses += 1;
        cx.state.stats.headless_responses += 1;
        let meta = file.meta_mut();
        meta.filename = info.uri.as_deref().and_then(uri_filename);
        info.write_fields(&mut meta.fields);
        file.close(cx, FileEnd::Truncated("gap"));
    }

    /// Which pending request a response whose first byte came at `at` answers: the oldest (FIFO),
    /// or after a response-side hole the newest one sent at or before `at`.
    pub(crate) fn pending_index(&self, at: Option<Timestamp>) -> Option<usize> {
        if self.resp_hole {
            let at = at?;
            self.pending.iter().rposition(|p| p.at <= at)
        } else {
            (!self.pending.is_empty()).then_some(0)
        }
    }

    /// Takes the request a final response answers ([`Self::pending_index`]); the older ones lost
    /// their responses in a hole.
    pub(crate) fn take_pending(&mut self, at: Option<Timestamp>, cx: &mut HttpContext<'_>) -> Option<Pending> {
        let i = self.pending_index(at);
        self.resp_hole = false;
        let i = i?;
        cx.state.stats.responses_lost += i as u64;
        // Requests whose responses vanished in the hole still get a record, empty and truncated
        // by the gap: a file was asked for there and not seen (HEAD asks for none).
        for lost in self.pending.drain(..i).collect::<Vec<_>>() {
            if lost.kind == MethodKind::Head {
                continue;
            }
            let info = lost.info.unpack();
            let mut meta = FileMeta::new(PROTO, Direction::Download);
            meta.filename = info.uri.as_deref().and_then(uri_filename);
            info.write_fields(&mut meta.fields);
            FileAnalyzer::open(cx, meta).close(cx, FileEnd::Truncated("gap"));
        }
        self.pop_pending()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn orphan_of(bytes: &[u8]) -> bool {
        ends_like_last_chunk(&bytes[bytes.len().saturating_sub(TAIL)..])
    }

    #[test]
    fn last_chunk_shapes() {
        assert!(orphan_of(b"abc\r\n0\r\n\r\n"));
        assert!(orphan_of(b"0\r\n\r\n"));
        assert!(orphan_of(b"x\n0\n\n"));
        assert!(!orphan_of(b"abc10\r\n\r\n"));
        assert!(!orphan_of(b"abc\r\n0\r\n"));
        assert!(!orphan_of(b"binary"));
    }

    #[test]
    fn status_pattern() {
        let ok = |s: &[u8]| s.iter().enumerate().all(|(i, &b)| status_pattern_ok(i, b));
        assert!(ok(b"HTTP/1.1 200 "));
        assert!(ok(b"HTTP/1.0 404\r"));
        assert!(!ok(b"HTTP/1.1 20x "));
        assert!(!ok(b"HTTP/1.1  200"));
    }
}
