//! Streaming MIME parser: carves every leaf part of a message (or of an HTTP multipart body) as a
//! file, transfer-decoded, without ever holding the message whole.
//!
//! How it reads a message:
//! - header blocks are collected line by line into one bounded buffer (`max_header_bytes`);
//! - bodies are scanned with `memchr` for a line break followed by `--`, and only the few bytes
//!   that may start a delimiter are carried between calls; everything else streams straight into
//!   the part's decoder and file;
//! - lines end in CRLF, LF or a bare CR (Python's `email` and Thunderbird split lines at a bare
//!   CR too);
//! - a delimiter is `--boundary` at the start of a line followed by optional spaces and a line
//!   break, or by `--`, optional spaces and a line break (close delimiter). The line break before
//!   it belongs to the delimiter (RFC 2046 5.1.1), so a part's content never ends with it. Outer
//!   boundaries also end inner parts (their missing close delimiters are counted);
//! - `message/rfc822` parts are files themselves (the attached message) and are parsed again by a
//!   nested parser whose files name them as `parent_fuid`.
//!
//! Which leaf parts are files: every part with a filename or `attachment` disposition; every
//! non-text part; every `form-data` part (each form field, as Zeek logs them; its field name is
//! `mime_field_name`); text parts (no filename, not attachments) when `text_bodies_as_files`; the
//! body of a single-part message always. Parts with no content bytes produce no file unless they
//! are named or attachments.
//!
//! Bent framing is read the way the most permissive mail reader reads it, and every file it touched
//! says so in its `anomalies` (names in `xdpcarve_contract::anomaly`):
//! - a line that starts with `--boundary` but goes on with anything but whitespace is content, as
//!   Python's `email` and Thunderbird take it (`boundary_trailing_junk`), also after a close `--`;
//! - a multipart that never closes ends its last part at the end of what encloses it, without the
//!   line break before that end (`boundary_close_missing`); one whose boundary never occurs, or
//!   that has none, is one file of its whole body (`boundary_not_found`, `boundary_missing`): a
//!   body is never dropped;
//! - a header block is read to its blank line, skipping lines that are not fields, when a field
//!   follows them (Thunderbird; `header_without_colon`); lines that are not fields and are followed
//!   by no field start the body (Python's `email`): a part without headers, or whose blank line is
//!   missing, keeps every line as content (`part_without_headers`, `header_without_colon`);
//! - repeated fields and parameters: the first counts; RFC 2231 sections are put in order;
//! - base64 skips characters outside its alphabet, decodes a final quantum without padding and goes
//!   on after padding; quoted-printable keeps malformed escapes; x-uuencode is decoded.
//!
//! Capture loss (`gap`): the part a hole hits is marked (its missing bytes; no hashes), and the
//! next delimiter restarts cleanly, so every later part is exact. A delimiter right after the hole
//! counts (the hole may end at a line start). The bytes after a hole in a multipart's body are
//! held (bounded) until they tell whether it swallowed a delimiter: the tail of a delimiter line
//! (the part after it is whole), or header lines with a `Content-*` field and a blank line (a
//! part that lost its delimiter, marked). A hole in a header block drops the line it cut and
//! reads on; a line that is no field then starts the body (the blank line was lost); the entity
//! is marked, and if its Content-Type is lost, a `--token` line followed by a `Content-*` field
//! is taken as the delimiter of the multipart it was. None of this applies without a hole.

#![forbid(unsafe_code)]

pub mod header;
mod state;
mod uu;

pub use state::{MimeConfig, MimeState, MimeStats, AREA};

use header::{EntityHeaders, TransferEncoding};
use uu::UuDecoder;
use xdpcarve_contract::{Anomalies, Anomaly, AppContext, AppFields, FileMeta};
use xdpcarve_files::decode::base64::Base64Decoder;
use xdpcarve_files::decode::qp::QpDecoder;
use xdpcarve_files::{FileAnalyzer, FileEnd};

/// The context of MIME events: the carrier's event, with MIME's own state.
pub type MimeContext<'a> = AppContext<'a, MimeState>;

/// Writes the carrier's fields learnt from a message's top-level headers (SMTP: Subject and
/// Message-ID) into the file template, before any part of the message is opened.
pub type MessageFields = fn(&mut AppFields, &EntityHeaders);

/// The record field naming the form field (Content-Disposition `name`) a `multipart/form-data`
/// part was sent as.
pub const FIELD_NAME: &str = "mime_field_name";

/// Longest boundary accepted (RFC 2046 allows 70; some generators exceed it). A multipart with a
/// longer one is carved as a single leaf.
const MAX_BOUNDARY: usize = 256;
/// Transport padding accepted between a boundary and its line break.
const MAX_DELIM_SPACE: usize = 64;
/// Bytes after a hole held at most while telling whether it swallowed a delimiter.
const MAX_PROBE: usize = 8 << 10;
/// Most bytes before a delimiter found after a hole taken as a preamble (not a part's tail).
const MAX_PREAMBLE: u64 = 512;
/// Shortest tail of a delimiter line taken as the rest of a delimiter a hole cut.
const MIN_DELIM_TAIL: usize = 4;

/// Where parsing starts.
#[derive(Clone, Debug)]
pub enum MimeStart {
    /// A whole message, headers first (SMTP DATA / BDAT payload).
    Message,
    /// A multipart body whose boundary the carrier already gave (HTTP multipart/form-data).
    Multipart { boundary: Vec<u8> },
}

struct Frame {
    boundary: Vec<u8>,
    /// multipart/digest: parts default to message/rfc822.
    digest: bool,
    /// A delimiter of this multipart was seen. Until then its body is preamble, logged as a file
    /// of its own in case no delimiter ever comes.
    started: bool,
    /// Anomalies of every entity inside (a reused boundary).
    anomalies: Anomalies,
}

enum Decoder {
    Identity,
    Base64(Base64Decoder),
    Qp(QpDecoder),
    Uu(UuDecoder),
}

/// The leaf part whose body is streaming.
struct Leaf {
    decoder: Decoder,
    /// Meta of a file not opened yet (opened at its first content byte); None if not a file.
    meta: Option<FileMeta>,
    file: Option<FileAnalyzer>,
    /// Parser of an attached message (message/rfc822).
    child: Option<Box<MimeParser>>,
    /// The preamble of a multipart whose first delimiter has not come: dropped when it comes,
    /// logged as the multipart's whole body if it never does.
    speculative: bool,
    /// base64: a `=` was seen (content after it is data after padding).
    pad_seen: bool,
    /// Missing bytes of a preamble whose file is not open: counted if it is ever opened (a
    /// preamble dropped at its multipart's first delimiter was never a file).
    pending_gap: u64,
}

fn is_b64_alphabet(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'+' || b == b'/'
}

impl Leaf {
    fn new(decoder: Decoder, meta: Option<FileMeta>) -> Leaf {
        Leaf {
            decoder,
            meta,
            file: None,
            child: None,
            speculative: false,
            pad_seen: false,
            pending_gap: 0,
        }
    }

    /// Marks the part's file (open or still to open) with an anomaly.
    fn flag(&mut self, a: Anomaly) {
        if let Some(f) = &mut self.file {
            f.flag(a);
        } else if let Some(m) = &mut self.meta {
            m.anomalies.insert(a);
        }
    }

    fn flag_all(&mut self, set: Anomalies) {
        for a in set.iter() {
            self.flag(a);
        }
    }

    fn has(&self, a: Anomaly) -> bool {
        match (&self.file, &self.meta) {
            (Some(f), _) => f.meta().anomalies.contains(a),
            (None, Some(m)) => m.anomalies.contains(a),
            (None, None) => true,
        }
    }

    /// Cheap checks of base64 text the decoder does not report: whitespace inside lines (which
    /// it skips silently) and data after padding.
    fn check_base64(&mut self, data: &[u8]) {
        if !self.has(Anomaly::Base64InvalidChars) && memchr::memchr2(b' ', b'\t', data).is_some() {
            self.flag(Anomaly::Base64InvalidChars);
        }
        if self.has(Anomaly::Base64DataAfterPadding) {
            return;
        }
        let mut rest = data;
        if !self.pad_seen {
            match memchr::memchr(b'=', rest) {
                Some(i) => {
                    self.pad_seen = true;
                    rest = &rest[i..];
                }
                None => return,
            }
        }
        if rest.iter().any(|&b| is_b64_alphabet(b)) {
            self.flag(Anomaly::Base64DataAfterPadding);
        }
    }

    fn write(&mut self, data: &[u8], out: &mut Vec<u8>, cx: &mut MimeContext<'_>) {
        if data.is_empty() {
            return;
        }
        let mut flags = Anomalies::EMPTY;
        match &mut self.decoder {
            Decoder::Identity => return self.deliver(data, cx),
            Decoder::Base64(d) => {
                out.clear();
                let bad = d.invalid_chars;
                d.decode(data, out);
                if d.invalid_chars > bad {
                    flags.insert(Anomaly::Base64InvalidChars);
                }
                self.check_base64(data);
            }
            Decoder::Qp(d) => {
                out.clear();
                d.decode(data, out);
                if d.invalid_sequences > 0 {
                    flags.insert(Anomaly::QpInvalidEscape);
                }
            }
            Decoder::Uu(d) => {
                out.clear();
                d.decode(data, out);
            }
        }
        self.flag_all(flags);
        self.deliver(out, cx);
    }

    fn deliver(&mut self, data: &[u8], cx: &mut MimeContext<'_>) {
        if data.is_empty() {
            return;
        }
        if let Some(meta) = self.meta.take() {
            let mut f = FileAnalyzer::open(cx, meta);
            if self.pending_gap > 0 {
                f.gap(std::mem::take(&mut self.pending_gap));
            }
            self.file = Some(f);
        }
        if let Some(f) = &mut self.file {
            f.update(data);
        }
        if let Some(c) = &mut self.child {
            c.feed(data, cx);
        }
    }

    fn gap(&mut self, len: u64, cx: &mut MimeContext<'_>) {
        // Decoded size of the hole, as well as it can be told.
        let decoded = match &mut self.decoder {
            Decoder::Identity => len,
            Decoder::Base64(d) => {
                d.reset();
                len / 4 * 3
            }
            Decoder::Qp(d) => {
                d.reset();
                len
            }
            Decoder::Uu(d) => {
                d.reset();
                len / 4 * 3
            }
        };
        if self.speculative && self.file.is_none() {
            self.pending_gap += decoded.max(1);
            return;
        }
        if let Some(meta) = self.meta.take() {
            self.file = Some(FileAnalyzer::open(cx, meta));
        }
        if let Some(f) = &mut self.file {
            f.gap(decoded.max(1));
        }
        if let Some(c) = &mut self.child {
            c.gap(decoded.max(1), cx);
        }
    }

    fn close(mut self, end: FileEnd, out: &mut Vec<u8>, cx: &mut MimeContext<'_>) {
        out.clear();
        let mut flags = Anomalies::EMPTY;
        match &mut self.decoder {
            Decoder::Identity => {}
            Decoder::Base64(d) => {
                let bad = d.invalid_chars;
                d.finish(out);
                if !out.is_empty() || d.invalid_chars > bad {
                    // The last quantum had no padding (or was a lone character, no byte).
                    flags.insert(Anomaly::Base64PaddingMissing);
                }
                cx.state.stats.base64_invalid_chars += d.invalid_chars;
            }
            Decoder::Qp(d) => {
                d.finish(out);
                if d.invalid_sequences > 0 {
                    flags.insert(Anomaly::QpInvalidEscape);
                }
                cx.state.stats.qp_invalid_sequences += d.invalid_sequences;
            }
            Decoder::Uu(d) => d.finish(out),
        }
        self.flag_all(flags);
        if !out.is_empty() {
            let tail = std::mem::take(out);
            self.deliver(&tail, cx);
            *out = tail;
        }
        if let Some(mut c) = self.child.take() {
            c.finish(end, cx);
        }
        if let Some(f) = self.file.take() {
            f.close(cx, end);
        }
    }
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Mode {
    /// Reading the header block of an entity.
    Headers,
    /// Streaming a leaf part's content (or a preamble kept in case no delimiter comes).
    Body,
    /// Discarding: preamble, epilogue, the rest of a part that is not parsed.
    Skip,
}

/// A line break seen in a body but not yet delivered: it belongs to the next line if that is a
/// delimiter, to the content otherwise.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Held {
    None,
    /// A CR that ended the bytes so far: CRLF if an LF follows, a bare CR line break otherwise.
    Cr,
    /// A CR followed by something else than LF: a line break of its own.
    BareCr,
    Lf,
    CrLf,
}

impl Held {
    fn bytes(self) -> &'static [u8] {
        match self {
            Held::None => b"",
            Held::Cr | Held::BareCr => b"\r",
            Held::Lf => b"\n",
            Held::CrLf => b"\r\n",
        }
    }

    fn anomaly(self) -> Option<Anomaly> {
        match self {
            Held::Lf => Some(Anomaly::BareLf),
            Held::BareCr => Some(Anomaly::BareCr),
            _ => None,
        }
    }
}

/// How the line of a delimiter ended.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum LineEnd {
    CrLf,
    Lf,
    Cr,
    Eof,
}

impl LineEnd {
    fn anomaly(self) -> Option<Anomaly> {
        match self {
            LineEnd::Lf => Some(Anomaly::BareLf),
            LineEnd::Cr => Some(Anomaly::BareCr),
            _ => None,
        }
    }
}

/// Index of the next line break at or after `pos` that is followed by "--" (or by "-" at the end
/// of `buf`): an LF, or a bare CR. Searching for '-' rather than line breaks keeps the search at
/// memchr speed over base64 bodies, whose alphabet has no '-', and over text, where lines are many
/// and dashes are few.
fn find_dash_line(buf: &[u8], pos: usize) -> Option<usize> {
    let mut from = pos;
    while let Some(k) = memchr::memchr(b'-', &buf[from..]) {
        let j = from + k;
        if j > pos && matches!(buf[j - 1], b'\n' | b'\r') && buf.get(j + 1).is_none_or(|&c| c == b'-') {
            return Some(j - 1);
        }
        from = j + 1;
    }
    None
}

enum Delim {
    /// Not enough bytes to tell.
    Need,
    No,
    /// `--boundary` of a multipart followed by something that makes it no delimiter.
    Junk,
    /// `len` bytes from the line start belong to the delimiter.
    Found {
        frame: usize,
        close: bool,
        len: usize,
        end: LineEnd,
    },
}

/// Is `s`, at the start of a line, a delimiter of one of `frames` (innermost first)?
fn check_delim(frames: &[Frame], s: &[u8], eof: bool) -> Delim {
    if s.len() < 2 {
        return if !eof && (s.is_empty() || s[0] == b'-') {
            Delim::Need
        } else {
            Delim::No
        };
    }
    if &s[..2] != b"--" {
        return Delim::No;
    }
    let (mut need, mut junk) = (false, false);
    for (idx, frame) in frames.iter().enumerate().rev() {
        let b = &frame.boundary[..];
        let avail = &s[2..];
        if avail.len() < b.len() {
            need |= !eof && b.starts_with(avail);
            continue;
        }
        if &avail[..b.len()] != b {
            continue;
        }
        let mut off = 2 + b.len();
        let mut rest = &avail[b.len()..];
        let close = rest.starts_with(b"--");
        if close {
            off += 2;
            rest = &rest[2..];
        } else if rest == b"-" && !eof {
            need = true;
            continue;
        }
        let ws = rest
            .iter()
            .take(MAX_DELIM_SPACE + 1)
            .take_while(|&&c| c == b' ' || c == b'\t')
            .count();
        if ws > MAX_DELIM_SPACE {
            junk = true;
            continue;
        }
        let found = |len, end| Delim::Found {
            frame: idx,
            close,
            len,
            end,
        };
        match rest.get(ws) {
            None if eof => return found(off + ws, LineEnd::Eof),
            None => need = true,
            Some(b'\n') => return found(off + ws + 1, LineEnd::Lf),
            Some(b'\r') => match rest.get(ws + 1) {
                Some(b'\n') => return found(off + ws + 2, LineEnd::CrLf),
                None if !eof => need = true,
                // A bare CR ends the line.
                _ => return found(off + ws + 1, LineEnd::Cr),
            },
            Some(_) => junk = true,
        }
    }
    if need {
        Delim::Need
    } else if junk {
        Delim::Junk
    } else {
        Delim::No
    }
}

/// Parses one message or multipart body as it streams in, carving each leaf part as a file.
pub struct MimeParser {
    template: FileMeta,
    message_fields: Option<MessageFields>,
    is_message: bool,
    /// An attached message parsed inside another: its Subject is not the transaction's.
    nested: bool,
    /// Depth of this message's own body; multipart parts are one deeper per level.
    base_depth: u32,
    frames: Vec<Frame>,
    mode: Mode,

    /// Header block of the entity being read (bounded by `max_header_bytes`).
    hdr: Vec<u8>,
    hdr_line_start: usize,
    hdr_line_len: usize,
    hdr_line_blank: bool,
    hdr_too_large: bool,
    /// The block's last byte is a CR: the line ends there (bare CR) unless an LF follows.
    hdr_cr: bool,
    /// Field lines of the block so far.
    hdr_fields: u32,
    /// Start (in `hdr`) of lines that are not fields, read after a field: skipped if a field
    /// follows them, the start of the body otherwise.
    hdr_bad: Option<usize>,
    /// How the block's lines were bent (line ends, colons).
    hdr_anomalies: Anomalies,
    /// The header block is the message's own (top level), not a part's.
    hdr_top: bool,
    /// Anomalies of the delimiter line that started the entity whose headers are being read.
    pending: Anomalies,

    /// At the start of a line whose preceding line break is `held` (or was structure).
    bol: bool,
    held: Held,
    /// Bytes that may start a delimiter, waiting for the rest (bounded: see `check_delim`).
    carry: Vec<u8>,
    leaf: Option<Leaf>,
    /// Decoder output, reused.
    out: Vec<u8>,

    parts: u32,
    parts_exhausted: bool,
    /// The multipart (its frame) whose parts past the limit are being logged as one file.
    rest_of: Option<usize>,
    started: bool,
    finished: bool,

    /// Bytes after a hole in a multipart's body, held until they tell what the hole swallowed.
    probe: Option<Probe>,
    /// Bytes lost in holes inside the header block being read: the entity's file is marked.
    hdr_gap: u64,
    /// The header line being read started inside a hole.
    hdr_partial: bool,
    /// The leaf's headers were hit by a hole (its Content-Type may be lost): a `--token` line
    /// followed by a `Content-*` field is taken as the delimiter of a multipart it belonged to.
    discover: bool,
}

/// What follows a hole in a multipart's body, while it is being told.
struct Probe {
    buf: Vec<u8>,
    /// Length of the hole.
    gap: u64,
}

/// What the bytes after a hole in a multipart's body say.
#[derive(Debug, PartialEq, Eq)]
enum ProbeEnd {
    Wait,
    /// More of the same content (or a delimiter right at the start, which the scan finds).
    Content,
    /// The hole ended inside a delimiter line of `frames[frame]`: `skip` bytes are its rest.
    Delimiter {
        frame: usize,
        close: bool,
        skip: usize,
    },
    /// The hole swallowed a delimiter: a part's header block starts `skip` bytes in.
    Part {
        skip: usize,
    },
}

fn is_content_field(line: &[u8]) -> bool {
    line.len() > 8 && line[..8].eq_ignore_ascii_case(b"content-") && header::is_field_line(line)
}

/// Tells what the bytes after a hole (`buf`, from the hole's end) are, in a body inside `frames`:
/// the tail of a delimiter line (at least [`MIN_DELIM_TAIL`] bytes of it) followed by a field,
/// a blank line or (close delimiter) nothing; or, with `allow_part`, header lines with a
/// `Content-*` field ending in a blank line (the delimiter and maybe the first fields were lost).
/// Anything else is content. `force`: no more bytes will come before a decision is needed.
fn tell_probe(frames: &[Frame], buf: &[u8], eof: bool, force: bool, allow_part: bool) -> ProbeEnd {
    let undecided = if eof || force || buf.len() >= MAX_PROBE {
        ProbeEnd::Content
    } else {
        ProbeEnd::Wait
    };
    match check_delim(frames, buf, eof) {
        Delim::Found { .. } => return ProbeEnd::Content,
        Delim::Need => return undecided,
        _ => {}
    }
    // Complete lines: (text without its line break, offset of the next line).
    let line_at = |at: usize| -> Option<(&[u8], usize)> {
        let nl = memchr::memchr(b'\n', &buf[at..])?;
        let text = &buf[at..at + nl];
        Some((text.strip_suffix(b"\r").unwrap_or(text), at + nl + 1))
    };
    let Some((first, second)) = line_at(0) else {
        return undecided;
    };
    let tail = first.trim_ascii_end();
    for (idx, f) in frames.iter().enumerate().rev() {
        for close in [false, true] {
            let mut full = Vec::with_capacity(f.boundary.len() + 4);
            full.extend_from_slice(b"--");
            full.extend_from_slice(&f.boundary);
            if close {
                full.extend_from_slice(b"--");
            }
            if tail.len() < MIN_DELIM_TAIL.min(full.len()) || !full.ends_with(tail) {
                continue;
            }
            // What follows must be what follows a delimiter.
            let fits = match line_at(second) {
                None if second == buf.len() && eof => close,
                None => return undecided,
                Some((next, _)) if close => {
                    next.is_empty() || matches!(check_delim(frames, &buf[second..], true), Delim::Found { .. })
                }
                Some((next, _)) => next.is_empty() || header::is_field_line(next),
            };
            if fits {
                return ProbeEnd::Delimiter {
                    frame: idx,
                    close,
                    skip: second,
                };
            }
        }
    }
    if !allow_part {
        return ProbeEnd::Content;
    }
    let starts_field = |t: &[u8]| header::is_field_line(t) && !t.starts_with(b" ") && !t.starts_with(b"\t");
    let (mut fields, mut content, mut skip) = (0u32, false, second);
    if starts_field(first) {
        // The hole ended at a line start: the line is whole.
        (fields, content, skip) = (1, is_content_field(first), 0);
    }
    let mut at = second;
    while let Some((text, next)) = line_at(at) {
        if text.is_empty() {
            if fields > 0 && content {
                return ProbeEnd::Part { skip };
            }
            // Or the block of a nested multipart whose Content-Type the hole cut: its first
            // delimiter follows.
            if matches!(check_delim(frames, &buf[next..], true), Delim::Found { .. }) {
                return ProbeEnd::Content;
            }
            return match check_discover(&buf[next..], eof || force) {
                Discover::Found { .. } => ProbeEnd::Part { skip },
                Discover::Need => undecided,
                _ => ProbeEnd::Content,
            };
        }
        if matches!(check_delim(frames, &buf[at..], true), Delim::Found { .. }) {
            return ProbeEnd::Content;
        }
        if fields > 0 && (text[0] == b' ' || text[0] == b'\t') {
            // A folded field.
        } else if starts_field(text) {
            fields += 1;
            content |= is_content_field(text);
        } else {
            return ProbeEnd::Content;
        }
        at = next;
    }
    undecided
}

enum Discover {
    Need,
    No,
    /// `len` bytes from the line start are the delimiter line of `boundary`.
    Found {
        boundary: Vec<u8>,
        len: usize,
    },
}

/// After a hole hit an entity's headers: is `s`, at a line start, `--token` followed by a
/// `Content-*` field, the delimiter of a multipart whose Content-Type was lost?
fn check_discover(s: &[u8], eof: bool) -> Discover {
    if s.len() < 2 {
        return if !eof && (s.is_empty() || s[0] == b'-') {
            Discover::Need
        } else {
            Discover::No
        };
    }
    if &s[..2] != b"--" {
        return Discover::No;
    }
    let limit = 2 + MAX_BOUNDARY + MAX_DELIM_SPACE + 2;
    let Some(e) = memchr::memchr2(b'\n', b'\r', &s[..s.len().min(limit)]) else {
        return if !eof && s.len() < limit {
            Discover::Need
        } else {
            Discover::No
        };
    };
    let eol = match (s[e], s.get(e + 1)) {
        (b'\r', Some(b'\n')) => 2,
        (b'\r', None) if !eof => return Discover::Need,
        _ => 1,
    };
    let token = s[2..e].trim_ascii_end();
    if token.is_empty()
        || token.len() > MAX_BOUNDARY
        || token.ends_with(b"--")
        || !token.iter().all(|&c| (32..=126).contains(&c))
    {
        return Discover::No;
    }
    let next = &s[e + eol..];
    const NAME_MAX: usize = 80;
    let head = &next[..next.len().min(NAME_MAX)];
    let prefix = &head[..head.len().min(8)];
    if !b"content-"[..prefix.len()].eq_ignore_ascii_case(prefix) {
        return Discover::No;
    }
    match memchr::memchr3(b':', b'\n', b'\r', head) {
        Some(c) if head[c] == b':' && is_content_field(&head[..=c]) => Discover::Found {
            boundary: token.to_vec(),
            len: e + eol,
        },
        None if !eof && next.len() < NAME_MAX => Discover::Need,
        _ => Discover::No,
    }
}

impl MimeParser {
    /// `template` carries proto, direction and the carrier's transaction fields, copied into
    /// every part's file.
    pub fn new(start: MimeStart, template: FileMeta) -> Self {
        let base_depth = template.depth;
        let mut p = MimeParser {
            template,
            message_fields: None,
            is_message: true,
            nested: false,
            base_depth,
            frames: Vec::new(),
            mode: Mode::Headers,
            hdr: Vec::new(),
            hdr_line_start: 0,
            hdr_line_len: 0,
            hdr_line_blank: true,
            hdr_too_large: false,
            hdr_cr: false,
            hdr_fields: 0,
            hdr_bad: None,
            hdr_anomalies: Anomalies::EMPTY,
            hdr_top: true,
            pending: Anomalies::EMPTY,
            bol: true,
            held: Held::None,
            carry: Vec::new(),
            leaf: None,
            out: Vec::new(),
            parts: 0,
            parts_exhausted: false,
            rest_of: None,
            started: false,
            finished: false,
            probe: None,
            hdr_gap: 0,
            hdr_partial: false,
            discover: false,
        };
        if let MimeStart::Multipart { boundary } = start {
            p.is_message = false;
            p.hdr_top = false;
            // The carrier framed the body: its preamble is not kept (the carrier logs the body).
            p.frames.push(Frame {
                boundary,
                digest: false,
                started: true,
                anomalies: Anomalies::EMPTY,
            });
            p.mode = Mode::Skip; // preamble
        }
        p
    }

    /// The next bytes of the message (already dot-unstuffed / de-chunked by the carrier).
    pub fn feed(&mut self, data: &[u8], cx: &mut MimeContext<'_>) {
        if self.finished || data.is_empty() {
            return;
        }
        self.start(cx);
        if let Some(p) = &mut self.probe {
            let take = data.len().min(MAX_PROBE.saturating_sub(p.buf.len()));
            p.buf.extend_from_slice(&data[..take]);
            let replay = self.tell_probe(false, false, cx);
            if let Some(replay) = replay {
                self.feed_bytes(&replay, cx);
                self.feed_bytes(&data[take..], cx);
            }
            return;
        }
        self.feed_bytes(data, cx);
    }

    fn feed_bytes(&mut self, data: &[u8], cx: &mut MimeContext<'_>) {
        if data.is_empty() {
            return;
        }
        if self.carry.is_empty() {
            let n = self.process(data, false, cx);
            // `process` may have put back bytes it could not tell yet (after a hole).
            self.carry.extend_from_slice(&data[n..]);
        } else {
            // A possible delimiter straddles the calls: join it with the new bytes. The carry
            // is a few dozen bytes; this copies one packet now and then.
            let mut buf = std::mem::take(&mut self.carry);
            buf.extend_from_slice(data);
            let n = self.process(&buf, false, cx);
            let mut rest = std::mem::take(&mut self.carry);
            rest.extend_from_slice(&buf[n..]);
            self.carry = rest;
        }
    }

    /// Decides what the bytes held after a hole are, if they tell (or must: `force`, `eof`), and
    /// acts on it. Returns the held bytes still to parse (None while undecided).
    fn tell_probe(&mut self, eof: bool, force: bool, cx: &mut MimeContext<'_>) -> Option<Vec<u8>> {
        let p = self.probe.as_ref()?;
        let allow_part = self.leaf.as_ref().is_none_or(|l| l.child.is_none());
        let end = tell_probe(&self.frames, &p.buf, eof, force, allow_part);
        if end == ProbeEnd::Wait {
            return None;
        }
        let p = self.probe.take()?;
        let mut buf = p.buf;
        match end {
            ProbeEnd::Wait | ProbeEnd::Content => {}
            ProbeEnd::Delimiter { frame, close, skip } => {
                cx.state.stats.gap_resyncs += 1;
                self.on_delimiter(frame, close, Anomalies::EMPTY, Anomalies::EMPTY, cx);
                buf.drain(..skip);
            }
            ProbeEnd::Part { skip } => {
                // The part that starts here lost its delimiter and maybe some of its fields.
                cx.state.stats.gap_resyncs += 1;
                let innermost = self.frames.len() - 1;
                self.on_delimiter(innermost, false, Anomalies::EMPTY, Anomalies::EMPTY, cx);
                if self.mode == Mode::Headers {
                    self.hdr_gap = p.gap;
                }
                buf.drain(..skip);
            }
        }
        self.bol = true;
        self.held = Held::None;
        Some(buf)
    }

    /// `len` bytes of the message are missing.
    pub fn gap(&mut self, len: u64, cx: &mut MimeContext<'_>) {
        if self.finished || len == 0 {
            return;
        }
        self.start(cx);
        if let Some(replay) = self.tell_probe(false, true, cx) {
            // A second hole before the first was told: what came between is parsed as it is.
            self.feed_bytes(&replay, cx);
        }
        if self.mode == Mode::Headers {
            if let Some(bad) = self.hdr_bad {
                // Lines that were not fields, and the hole instead of a field: they start the body.
                let end = self.hdr.len();
                self.commit_body(bad, end, false, cx);
            }
        }
        // Bytes that might have started a delimiter cannot now: in a part they are content.
        let carry = std::mem::take(&mut self.carry);
        match self.mode {
            Mode::Body => {
                let held = self.held;
                self.held = Held::None;
                if let Some(leaf) = &mut self.leaf {
                    leaf.write(held.bytes(), &mut self.out, cx);
                    leaf.write(&carry, &mut self.out, cx);
                    leaf.gap(len, cx);
                }
            }
            Mode::Headers => {
                // The block goes on after the hole, without the line it cut; the entity's file
                // is marked (see `header_line_done`).
                cx.state.stats.gap_resyncs += 1;
                self.hdr.truncate(self.hdr_line_start);
                self.hdr_line_len = 0;
                self.hdr_line_blank = true;
                self.hdr_cr = false;
                self.hdr_gap = self.hdr_gap.saturating_add(len);
                self.hdr_partial = true;
            }
            Mode::Skip => {}
        }
        self.held = Held::None;
        // The hole may have ended at a line start: a delimiter right after it counts.
        self.bol = true;
        self.carry = carry;
        self.carry.clear();
        if self.mode != Mode::Headers && !self.frames.is_empty() {
            // It may also have swallowed a delimiter: hold what follows until it tells.
            self.probe = Some(Probe {
                buf: Vec::new(),
                gap: len,
            });
        }
    }

    /// Marks every file of the message from now on, and the one open, with an anomaly the carrier
    /// saw (SMTP: an end-of-data line ended by a bare LF).
    pub fn flag_message(&mut self, a: Anomaly) {
        self.template.anomalies.insert(a);
        if let Some(leaf) = &mut self.leaf {
            leaf.flag(a);
            if let Some(c) = &mut leaf.child {
                c.flag_message(a);
            }
        }
    }

    /// The message ended (`Complete`) or was cut off: closes every open part.
    pub fn finish(&mut self, end: FileEnd, cx: &mut MimeContext<'_>) {
        if self.finished {
            return;
        }
        self.start(cx);
        if let Some(replay) = self.tell_probe(true, true, cx) {
            self.feed_bytes(&replay, cx);
        }
        // Bytes put back after a hole may put back more once (see `gap_body`); with `eof` they
        // are all consumed.
        for _ in 0..3 {
            let buf = std::mem::take(&mut self.carry);
            if buf.is_empty() {
                break;
            }
            self.process(&buf, true, cx);
        }
        if self.mode == Mode::Headers && (self.hdr_cr || !self.hdr_line_blank) && !self.hdr_too_large {
            // The last header line had no line break (or a CR that nothing followed): still a
            // header line.
            if !self.hdr_cr {
                self.hdr.extend_from_slice(b"\n");
            }
            self.hdr_cr = false;
            self.header_line_done(cx);
            let buf = std::mem::take(&mut self.carry);
            if !buf.is_empty() {
                self.process(&buf, true, cx);
            }
        }
        if self.mode == Mode::Headers {
            if let Some(bad) = self.hdr_bad {
                // Lines that were not fields, and no field after them: they are the body.
                let end = self.hdr.len();
                self.commit_body(bad, end, true, cx);
            }
        }
        if self.mode == Mode::Body {
            let held = std::mem::replace(&mut self.held, Held::None);
            let speculative = self.leaf.as_ref().is_some_and(|l| l.speculative);
            if let Some(leaf) = &mut self.leaf {
                if self.frames.is_empty() || speculative || end != FileEnd::Complete {
                    leaf.write(held.bytes(), &mut self.out, cx);
                }
                // Else the part of an unclosed multipart ends at the message's end, without the
                // line break before it (as if a delimiter followed, as Python's email reads it).
            }
        }
        if !self.frames.is_empty() {
            if let Some(leaf) = &mut self.leaf {
                leaf.flag(if leaf.speculative {
                    Anomaly::BoundaryNotFound
                } else {
                    Anomaly::BoundaryCloseMissing
                });
            }
        }
        self.close_leaf(end, cx);
        if !self.frames.is_empty() {
            cx.state.stats.missing_final_boundary += self.frames.len() as u64;
            self.frames.clear();
        }
        self.finished = true;
    }

    /// Counts the message once, when its first byte (or its end) arrives.
    fn start(&mut self, cx: &mut MimeContext<'_>) {
        if !self.started {
            self.started = true;
            if self.is_message {
                cx.state.stats.messages += 1;
            }
        }
    }

    /// Consumes what it can of `buf`; returns how many bytes were consumed (the rest may start a
    /// delimiter and waits for more bytes). With `eof`, consumes everything.
    fn process(&mut self, buf: &[u8], eof: bool, cx: &mut MimeContext<'_>) -> usize {
        let mut pos = 0;
        while pos < buf.len() {
            match self.mode {
                Mode::Headers => {
                    pos = self.headers(buf, pos, cx);
                    if !self.carry.is_empty() {
                        // A line was put back (see `gap_body`): the rest waits behind it.
                        return pos;
                    }
                }
                Mode::Body | Mode::Skip if self.frames.is_empty() && !self.discover => {
                    // No boundary can end this: the rest of the message is the body (or junk).
                    let held = std::mem::replace(&mut self.held, Held::None);
                    self.emit(held.bytes(), cx);
                    self.emit(&buf[pos..], cx);
                    pos = buf.len();
                }
                Mode::Body | Mode::Skip => match self.scan(buf, pos, eof, cx) {
                    Ok(p) => pos = p,
                    Err(p) => return p,
                },
            }
        }
        pos
    }

    /// Scans content for the next delimiter. Ok(position to continue at, possibly in another
    /// mode), or Err(position from which bytes must wait for more).
    fn scan(&mut self, buf: &[u8], mut pos: usize, eof: bool, cx: &mut MimeContext<'_>) -> Result<usize, usize> {
        loop {
            if self.held == Held::Cr {
                let Some(&b) = buf.get(pos) else { return Ok(pos) };
                if b == b'\n' {
                    self.held = Held::CrLf;
                    pos += 1;
                } else {
                    self.held = Held::BareCr;
                }
                self.bol = true;
            }
            if self.bol {
                match check_delim(&self.frames, &buf[pos..], eof) {
                    Delim::Need => return Err(pos),
                    Delim::Found { frame, close, len, end } => {
                        let held = std::mem::replace(&mut self.held, Held::None);
                        // The delimiter took its line break: what follows starts a line.
                        self.bol = true;
                        let before: Anomalies = held.anomaly().into_iter().collect();
                        let after: Anomalies = end.anomaly().into_iter().collect();
                        self.on_delimiter(frame, close, before, after, cx);
                        return Ok(pos + len);
                    }
                    Delim::Junk => {
                        if self.mode == Mode::Body {
                            if let Some(leaf) = &mut self.leaf {
                                leaf.flag(Anomaly::BoundaryTrailingJunk);
                            }
                        }
                        self.flush_held(cx);
                        self.bol = false;
                    }
                    Delim::No if self.discover && self.mode == Mode::Body => match check_discover(&buf[pos..], eof) {
                        Discover::Need => return Err(pos),
                        Discover::Found { boundary, len } => {
                            // The multipart the entity was: its parts from here on are whole.
                            cx.state.stats.gap_resyncs += 1;
                            self.held = Held::None;
                            self.bol = true;
                            self.frames.push(Frame {
                                boundary,
                                digest: false,
                                started: true,
                                anomalies: Anomalies::EMPTY,
                            });
                            let frame = self.frames.len() - 1;
                            if let Some(leaf) = &mut self.leaf {
                                // What came before is the multipart's preamble, unless it is
                                // more than a preamble (a part's tail, its delimiter lost too).
                                leaf.speculative = leaf.file.as_ref().is_none_or(|f| f.size() <= MAX_PREAMBLE);
                            }
                            self.on_delimiter(frame, false, Anomalies::EMPTY, Anomalies::EMPTY, cx);
                            return Ok(pos + len);
                        }
                        Discover::No => {
                            self.flush_held(cx);
                            self.bol = false;
                        }
                    },
                    Delim::No => {
                        self.flush_held(cx);
                        self.bol = false;
                    }
                }
            }
            let rest = &buf[pos..];
            let nl = match find_dash_line(buf, pos) {
                Some(nl) => nl,
                None if rest.ends_with(b"\n") && !eof => buf.len() - 1,
                None => {
                    if rest.ends_with(b"\r") && !eof {
                        self.emit(&rest[..rest.len() - 1], cx);
                        self.held = Held::Cr;
                    } else {
                        self.emit(rest, cx);
                    }
                    return Ok(buf.len());
                }
            };
            let (lb_start, held) = match buf[nl] {
                b'\n' if nl > pos && buf[nl - 1] == b'\r' => (nl - 1, Held::CrLf),
                b'\n' => (nl, Held::Lf),
                _ => (nl, Held::BareCr),
            };
            self.emit(&buf[pos..lb_start], cx);
            self.held = held;
            self.bol = true;
            pos = nl + 1;
        }
    }

    fn flush_held(&mut self, cx: &mut MimeContext<'_>) {
        let held = std::mem::replace(&mut self.held, Held::None);
        self.emit(held.bytes(), cx);
    }

    fn emit(&mut self, data: &[u8], cx: &mut MimeContext<'_>) {
        if data.is_empty() || self.mode != Mode::Body {
            return;
        }
        if let Some(leaf) = &mut self.leaf {
            leaf.write(data, &mut self.out, cx);
        }
    }

    /// A delimiter of `frames[frame]`: `before` are the anomalies of the line break before it,
    /// `after` those of its own line end.
    fn on_delimiter(
        &mut self,
        frame: usize,
        close: bool,
        before: Anomalies,
        after: Anomalies,
        cx: &mut MimeContext<'_>,
    ) {
        let unclosed = self.frames.len() - 1 - frame;
        if self.rest_of == Some(frame) && unclosed == 0 && !close {
            // Inside the file of a multipart's parts past the limit: its delimiters are content.
            if let Some(leaf) = &mut self.leaf {
                let line = [b"\r\n--".as_slice(), &self.frames[frame].boundary, b"\r\n"].concat();
                leaf.write(&line, &mut self.out, cx);
            }
            return;
        }
        self.rest_of = None;
        self.discover = false;
        if let Some(mut leaf) = self.leaf.take() {
            if leaf.speculative && unclosed == 0 {
                // The multipart's first delimiter: its preamble was only preamble.
                drop(leaf);
            } else {
                leaf.flag_all(before);
                leaf.flag_all(after);
                if leaf.speculative {
                    // An enclosing delimiter came first: the inner multipart's whole body.
                    leaf.flag(Anomaly::BoundaryNotFound);
                } else if unclosed > 0 {
                    leaf.flag(Anomaly::BoundaryCloseMissing);
                }
                leaf.close(FileEnd::Complete, &mut self.out, cx);
            }
        }
        if unclosed > 0 {
            cx.state.stats.missing_final_boundary += unclosed as u64;
            self.frames.truncate(frame + 1);
        }
        self.frames[frame].started = true;
        self.reset_headers();
        if close {
            self.frames.pop();
            self.mode = Mode::Skip; // epilogue
        } else if self.parts >= cx.state.cfg.max_parts {
            if !self.parts_exhausted {
                self.parts_exhausted = true;
                cx.state.stats.parts_exceeded += 1;
            }
            // The rest of this multipart is one file: a part cannot hide behind the limit.
            let mut meta = self.template.clone();
            meta.depth = self.base_depth + self.frames.len() as u32;
            meta.anomalies.insert(Anomaly::MimePartsExceeded);
            self.leaf = Some(Leaf::new(Decoder::Identity, Some(meta)));
            self.rest_of = Some(frame);
            self.mode = Mode::Body;
        } else {
            self.pending = before;
            self.pending.extend(after);
            self.mode = Mode::Headers;
        }
    }

    fn close_leaf(&mut self, end: FileEnd, cx: &mut MimeContext<'_>) {
        if let Some(leaf) = self.leaf.take() {
            leaf.close(end, &mut self.out, cx);
        }
    }

    fn reset_headers(&mut self) {
        self.hdr.clear();
        self.hdr_line_start = 0;
        self.hdr_line_len = 0;
        self.hdr_line_blank = true;
        self.hdr_too_large = false;
        self.hdr_cr = false;
        self.hdr_fields = 0;
        self.hdr_bad = None;
        self.hdr_anomalies = Anomalies::EMPTY;
        self.hdr_gap = 0;
        self.hdr_partial = false;
    }

    /// Appends a piece of the current header line to the block (unless it grew too large).
    fn push_header_bytes(&mut self, piece: &[u8], cx: &mut MimeContext<'_>) {
        self.hdr_line_len += piece.len();
        self.hdr_line_blank &= piece.iter().all(|&b| b == b'\r' || b == b'\n');
        if self.hdr_too_large {
            return;
        }
        if self.hdr.len() + piece.len() > cx.state.cfg.max_header_bytes {
            // Too big to be headers worth reading: keep discarding until the blank line. Lines
            // that were waiting to be told fields or body are taken as skipped.
            self.hdr_too_large = true;
            self.hdr_bad = None;
            cx.state.stats.header_too_large += 1;
        } else {
            self.hdr.extend_from_slice(piece);
        }
    }

    /// Header mode: takes bytes up to and including the next line break (CRLF, LF, bare CR).
    fn headers(&mut self, buf: &[u8], pos: usize, cx: &mut MimeContext<'_>) -> usize {
        if self.hdr_cr {
            // The line so far ends in a CR: CRLF if an LF follows, else the CR ended it.
            self.hdr_cr = false;
            if buf[pos] == b'\n' {
                self.push_header_bytes(b"\n", cx);
                self.header_line_done(cx);
                return pos + 1;
            }
            self.header_line_done(cx);
            return pos;
        }
        let rest = &buf[pos..];
        let (piece, complete) = match memchr::memchr2(b'\n', b'\r', rest) {
            Some(i) if rest[i] == b'\n' => (&rest[..=i], true),
            Some(i) => match rest.get(i + 1) {
                Some(b'\n') => (&rest[..i + 2], true),
                Some(_) => (&rest[..=i], true),
                None => {
                    self.hdr_cr = true;
                    (&rest[..=i], false)
                }
            },
            None => (rest, false),
        };
        self.push_header_bytes(piece, cx);
        if complete {
            self.header_line_done(cx);
        }
        pos + piece.len()
    }

    fn header_line_done(&mut self, cx: &mut MimeContext<'_>) {
        if self.hdr_line_len > cx.state.cfg.max_line_len {
            cx.state.stats.line_too_long += 1;
        }
        let blank = self.hdr_line_blank;
        self.hdr_line_len = 0;
        self.hdr_line_blank = true;
        let start = self.hdr_line_start;
        if std::mem::take(&mut self.hdr_partial) && !self.hdr_too_large {
            // The line started in a hole: kept only if it is whole after all (a field, or a
            // delimiter). An empty rest is the end of a lost line, not the blank line.
            let line = &self.hdr[start..];
            let text = line.strip_suffix(b"\n").unwrap_or(line);
            let text = text.strip_suffix(b"\r").unwrap_or(text);
            let whole = !blank
                && !text.starts_with(b" ")
                && !text.starts_with(b"\t")
                && (header::is_field_line(text)
                    || matches!(check_delim(&self.frames, line, true), Delim::Found { .. }));
            if !whole {
                self.hdr.truncate(start);
                return;
            }
        }
        if !self.hdr_too_large {
            let line = &self.hdr[start..];
            if line.ends_with(b"\r") {
                self.hdr_anomalies.insert(Anomaly::BareCr);
            } else if line.ends_with(b"\n") && !line.ends_with(b"\r\n") {
                self.hdr_anomalies.insert(Anomaly::BareLf);
            }
        }
        if blank {
            match self.hdr_bad {
                // Lines that were not fields, then the blank line: they start the body.
                Some(bad) => {
                    let end = self.hdr.len();
                    self.commit_body(bad, end, false, cx)
                }
                None => self.end_headers(start, cx),
            }
            return;
        }
        if self.hdr_too_large {
            return;
        }
        let line = &self.hdr[start..];
        let text = line.strip_suffix(b"\n").unwrap_or(line);
        let text = text.strip_suffix(b"\r").unwrap_or(text);
        if text.starts_with(b"--") && !self.frames.is_empty() {
            if let Delim::Found { frame, close, end, .. } = check_delim(&self.frames, line, true) {
                let mut before = Anomalies::EMPTY;
                if let Some(bad) = self.hdr_bad {
                    // Body lines, then the delimiter: the lines are the part's content.
                    self.commit_body(bad, start, false, cx);
                    let held = match std::mem::replace(&mut self.held, Held::None) {
                        Held::Cr => Held::BareCr,
                        h => h,
                    };
                    before.extend(held.anomaly().into_iter().collect());
                } else if self.hdr_gap > 0 && self.hdr_fields > 0 {
                    // A part whose body a hole took: its fields survived, so it is recorded.
                    self.end_headers(start, cx);
                } else {
                    // A part that ended inside its headers (no body).
                    self.reset_headers();
                }
                let after: Anomalies = end.anomaly().into_iter().collect();
                self.on_delimiter(frame, close, before, after, cx);
                self.bol = true;
                self.held = Held::None;
                return;
            }
        }
        if self.hdr_top && start == 0 && text.starts_with(b"From ") {
            // An mbox separator line before the headers (as a saved message has): not a field.
            self.hdr.truncate(start);
            return;
        }
        let continuation = text.first().is_some_and(|&b| b == b' ' || b == b'\t');
        let is_field = header::is_field_line(text) && !(continuation && self.hdr_bad.is_some());
        if !is_field && self.hdr_gap > 0 {
            // After a hole, a line that is no field means the blank line was lost too: the body
            // starts here.
            self.gap_body(start, cx);
            return;
        }
        if is_field {
            if !continuation {
                if header::has_space_before_colon(text) {
                    self.hdr_anomalies.insert(Anomaly::SpaceBeforeColon);
                }
                if self.hdr_bad.take().is_some() {
                    // Lines without a colon between fields: skipped, as mail clients do.
                    self.hdr_anomalies.insert(Anomaly::HeaderWithoutColon);
                }
                self.hdr_fields += 1;
            }
        } else if self.hdr_bad.is_none() {
            if self.hdr_fields == 0 {
                // No header block: this line is content.
                self.hdr_anomalies.insert(Anomaly::PartWithoutHeaders);
                let end = self.hdr.len();
                self.commit_body(start, end, false, cx);
                return;
            }
            self.hdr_bad = Some(start);
        }
        self.hdr_line_start = self.hdr.len();
    }

    /// The header block ended at `hdr[bad..]`, lines that are not fields: the entity starts with
    /// the block before them, and they (`hdr[bad..upto]`: complete lines, no delimiter among
    /// them) are its first content.
    fn commit_body(&mut self, bad: usize, upto: usize, eof: bool, cx: &mut MimeContext<'_>) {
        if !self.hdr_anomalies.contains(Anomaly::PartWithoutHeaders) {
            self.hdr_anomalies.insert(Anomaly::HeaderWithoutColon);
        }
        let mut hdr = std::mem::take(&mut self.hdr);
        self.open_entity(&hdr[..bad], cx);
        // Complete lines, none a delimiter: scanning them ends at a line start with nothing left
        // waiting (or with their last line break held), so this never comes back here.
        let body = &hdr[bad..upto];
        let n = self.process(body, eof, cx);
        if n < body.len() {
            self.flush_held(cx);
            self.emit(&body[n..], cx);
        }
        hdr.clear();
        if self.hdr.is_empty() {
            self.hdr = hdr;
        }
    }

    /// After a hole in a header block: the block ended before `hdr[start..]`, a body line. The
    /// line is put back into `carry`, to be scanned as the body's first (it may be a delimiter
    /// of a multipart the lost fields declared, which takes the next line to tell).
    fn gap_body(&mut self, start: usize, cx: &mut MimeContext<'_>) {
        let mut hdr = std::mem::take(&mut self.hdr);
        self.open_entity(&hdr[..start], cx);
        self.carry.extend_from_slice(&hdr[start..]);
        hdr.clear();
        if self.hdr.is_empty() {
            self.hdr = hdr;
        }
    }

    /// The header block `hdr[..end]` is complete.
    fn end_headers(&mut self, end: usize, cx: &mut MimeContext<'_>) {
        let hdr = std::mem::take(&mut self.hdr);
        self.open_entity(&hdr[..end], cx);
        self.hdr = hdr;
        self.hdr.clear();
    }

    /// Starts the entity whose header block is `block`.
    fn open_entity(&mut self, block: &[u8], cx: &mut MimeContext<'_>) {
        let gap = self.hdr_gap;
        let mut h = header::parse_block(block);
        cx.state.stats.encoded_word_errors += h.decode_errors;
        h.anomalies.extend(self.hdr_anomalies);
        h.anomalies.extend(std::mem::take(&mut self.pending));
        if self.hdr_top {
            self.hdr_top = false;
            if self.is_message && !self.nested {
                if let Some(write) = self.message_fields {
                    write(&mut self.template.fields, &h);
                }
            }
            // The message's own headers: every file of the message is touched.
            self.template.anomalies.extend(h.anomalies);
        }
        self.reset_headers();
        self.start_entity(h, cx);
        self.bol = true;
        self.held = Held::None;
        if gap > 0 {
            // Its header block lost bytes: its file is marked, and its fields may be wrong or
            // missing (a Content-Type with the boundary of the multipart it was).
            if let Some(leaf) = &mut self.leaf {
                leaf.gap(gap, cx);
                self.discover = !leaf.speculative && self.mode == Mode::Body;
            }
        }
    }

    /// Decides what the entity whose headers were just read is, and sets the mode for its body.
    fn start_entity(&mut self, h: EntityHeaders, cx: &mut MimeContext<'_>) {
        let cfg = cx.state.cfg;
        let depth = self.base_depth + self.frames.len() as u32;
        let in_digest = self.frames.last().is_some_and(|f| f.digest);
        let ctype = h
            .content_type
            .clone()
            .unwrap_or_else(|| if in_digest { "message/rfc822" } else { "text/plain" }.to_string());
        let mut anomalies = h.anomalies;
        for f in &self.frames {
            anomalies.extend(f.anomalies);
        }
        let filename = h
            .filename
            .clone()
            .or_else(|| h.ct_name.clone())
            .filter(|f| !f.is_empty());
        let decoder = match h.transfer_encoding {
            TransferEncoding::Identity => Decoder::Identity,
            TransferEncoding::Base64 => Decoder::Base64(Base64Decoder::new()),
            TransferEncoding::QuotedPrintable => Decoder::Qp(QpDecoder::new()),
            TransferEncoding::Uuencode => Decoder::Uu(UuDecoder::new()),
        };
        let mut meta = self.template.clone();
        meta.filename = filename;
        meta.declared_mime_type = Some(ctype.clone());
        meta.depth = depth;
        meta.anomalies.extend(anomalies);
        if h.disposition.as_deref() == Some("form-data") {
            meta.fields.set_opt(FIELD_NAME, h.field_name.clone());
        }

        if ctype.starts_with("multipart/") {
            match h.boundary.as_ref().filter(|b| b.len() <= MAX_BOUNDARY) {
                Some(_) if depth + 1 > cfg.max_depth => {
                    // Too deep to follow: one file of its whole body, as without a boundary.
                    cx.state.stats.depth_exceeded += 1;
                    meta.anomalies.insert(Anomaly::MimeTooDeep);
                }
                Some(boundary) => {
                    let mut frame = Frame {
                        boundary: boundary.clone(),
                        digest: ctype == "multipart/digest",
                        started: false,
                        anomalies: Anomalies::EMPTY,
                    };
                    if self.frames.iter().any(|f| f.boundary == frame.boundary) {
                        frame.anomalies.insert(Anomaly::BoundaryReused);
                    }
                    self.frames.push(frame);
                    // The preamble: kept as the multipart's body until its first delimiter.
                    let mut leaf = Leaf::new(Decoder::Identity, Some(meta));
                    leaf.speculative = true;
                    self.leaf = Some(leaf);
                    self.mode = Mode::Body;
                    return;
                }
                // Without a usable boundary it cannot be split: carved as one leaf.
                None => meta.anomalies.insert(Anomaly::BoundaryMissing),
            }
        }
        self.parts += 1;
        cx.state.stats.parts += 1;

        let attachment = h.disposition.as_deref() == Some("attachment");
        let top_body = self.frames.is_empty() && self.is_message;
        let form_part = h.disposition.as_deref() == Some("form-data");
        let is_file = top_body
            || form_part
            || !(ctype.starts_with("text/") && meta.filename.is_none() && !attachment)
            || cfg.text_bodies_as_files;
        let mut leaf = Leaf::new(decoder, None);
        if is_file {
            let named = meta.filename.is_some() || attachment;
            let is_message = ctype == "message/rfc822" || ctype == "message/global";
            leaf.meta = Some(meta);
            if is_message && depth + 1 > cfg.max_depth {
                // Logged as one file, not parsed.
                cx.state.stats.depth_exceeded += 1;
                leaf.flag(Anomaly::MimeTooDeep);
            } else if is_message {
                // The attached message is a file and the parent of the files inside it.
                let file = FileAnalyzer::open(cx, leaf.meta.take().expect("meta set above"));
                let mut child_meta = self.template.clone();
                child_meta.depth = depth + 1;
                child_meta.parent_fuid = Some(file.fuid().to_string());
                let mut child = MimeParser::new(MimeStart::Message, child_meta);
                child.nested = true;
                leaf.child = Some(Box::new(child));
                leaf.file = Some(file);
            } else if named {
                leaf.file = Some(FileAnalyzer::open(cx, leaf.meta.take().expect("meta set above")));
            }
        }
        self.leaf = Some(leaf);
        self.mode = Mode::Body;
    }

    /// Lets the carrier add fields from the message's top-level headers to every file of the
    /// message (see [`MessageFields`]).
    pub fn with_message_fields(mut self, write: MessageFields) -> Self {
        self.message_fields = Some(write);
        self
    }
}

#[cfg(test)]
mod tests;
