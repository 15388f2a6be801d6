//! Streaming MIME parser: carves every leaf part of a message (or of an HTTP multipart body) as a
//! file, transfer-decoded, without ever holding the message whole.
//!
//! How it reads a message:
//! - header blocks are collected line by line into one bounded buffer (`max_header_bytes`);
//! - bodies are scanned with `memchr` for `\n--` and only the few bytes that may start a delimiter
//!   are carried between calls; everything else streams straight into the part's decoder and file;
//! - a delimiter is `--boundary` at the start of a line followed by optional spaces and a line
//!   break, or by `--` (close delimiter). The line break before it belongs to the delimiter
//!   (RFC 2046 5.1.1), so a part's content never ends with it. Outer boundaries also end inner
//!   parts (their missing close delimiters are counted);
//! - `message/rfc822` parts are files themselves (the attached message) and are parsed again by a
//!   nested parser whose files name them as `parent_fuid`.
//!
//! Which leaf parts are files: every part with a filename or `attachment` disposition; every
//! non-text part; text parts (no filename, not attachments) when `text_bodies_as_files`; the body
//! of a single-part message always. `form-data` fields without a filename are form values, not
//! files. Parts with no content bytes produce no file unless they are named or attachments.

#![forbid(unsafe_code)]

pub mod header;
mod state;

pub use state::{MimeConfig, MimeState, MimeStats, AREA};

use header::{EntityHeaders, TransferEncoding};
use xdpcarve_contract::{AppContext, AppFields, FileMeta};
use xdpcarve_files::decode::base64::Base64Decoder;
use xdpcarve_files::decode::qp::QpDecoder;
use xdpcarve_files::{FileAnalyzer, FileEnd};

/// The context of MIME events: the carrier's event, with MIME's own state.
pub type MimeContext<'a> = AppContext<'a, MimeState>;

/// Writes the carrier's fields learnt from a message's top-level headers (SMTP: Subject and
/// Message-ID) into the file template, before any part of the message is opened.
pub type MessageFields = fn(&mut AppFields, &EntityHeaders);

/// Longest boundary accepted (RFC 2046 allows 70; some generators exceed it). A multipart with a
/// longer one is carved as a single leaf.
const MAX_BOUNDARY: usize = 256;
/// Transport padding accepted between a boundary and its line break.
const MAX_DELIM_SPACE: usize = 64;

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
}

enum Decoder {
    Identity,
    Base64(Base64Decoder),
    Qp(QpDecoder),
}

/// The leaf part whose body is streaming.
struct Leaf {
    decoder: Decoder,
    /// Meta of a file not opened yet (opened at its first content byte); None if not a file.
    meta: Option<FileMeta>,
    file: Option<FileAnalyzer>,
    /// Parser of an attached message (message/rfc822).
    child: Option<Box<MimeParser>>,
}

impl Leaf {
    fn write(&mut self, data: &[u8], out: &mut Vec<u8>, cx: &mut MimeContext<'_>) {
        match &mut self.decoder {
            Decoder::Identity => self.deliver(data, cx),
            Decoder::Base64(d) => {
                out.clear();
                d.decode(data, out);
                self.deliver(out, cx);
            }
            Decoder::Qp(d) => {
                out.clear();
                d.decode(data, out);
                self.deliver(out, cx);
            }
        }
    }

    fn deliver(&mut self, data: &[u8], cx: &mut MimeContext<'_>) {
        if data.is_empty() {
            return;
        }
        if let Some(meta) = self.meta.take() {
            self.file = Some(FileAnalyzer::open(cx, meta));
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
        };
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
        match &mut self.decoder {
            Decoder::Identity => {}
            Decoder::Base64(d) => {
                d.finish(out);
                cx.state.stats.base64_invalid_chars += d.invalid_chars;
            }
            Decoder::Qp(d) => {
                d.finish(out);
                cx.state.stats.qp_invalid_sequences += d.invalid_sequences;
            }
        }
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
    /// Streaming a leaf part's content.
    Body,
    /// Discarding: preamble, epilogue, the rest of a part that is not parsed.
    Skip,
}

/// A line break seen in a body but not yet delivered: it belongs to the next line if that is a
/// delimiter, to the content otherwise.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Held {
    None,
    Cr,
    Lf,
    CrLf,
}

impl Held {
    fn bytes(self) -> &'static [u8] {
        match self {
            Held::None => b"",
            Held::Cr => b"\r",
            Held::Lf => b"\n",
            Held::CrLf => b"\r\n",
        }
    }
}

/// Index of the next '\n' at or after `pos` that is followed by "--" (or by "-" at the end of
/// `buf`). Searching for '-' rather than '\n' keeps the search at memchr speed over base64
/// bodies, whose alphabet has no '-', and over text, where lines are many and dashes are few.
fn find_dash_line(buf: &[u8], pos: usize) -> Option<usize> {
    let mut from = pos;
    while let Some(k) = memchr::memchr(b'-', &buf[from..]) {
        let j = from + k;
        if j > pos && buf[j - 1] == b'\n' && buf.get(j + 1).is_none_or(|&c| c == b'-') {
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
    /// `len` bytes from the line start belong to the delimiter.
    Found {
        frame: usize,
        close: bool,
        len: usize,
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
    let mut need = false;
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
        let off = 2 + b.len();
        let rest = &avail[b.len()..];
        if rest.starts_with(b"--") {
            // Close delimiter; whatever follows on its line is epilogue.
            return Delim::Found {
                frame: idx,
                close: true,
                len: off + 2,
            };
        }
        if rest == b"-" && !eof {
            need = true;
            continue;
        }
        let ws = rest
            .iter()
            .take(MAX_DELIM_SPACE + 1)
            .take_while(|&&c| c == b' ' || c == b'\t')
            .count();
        if ws > MAX_DELIM_SPACE {
            continue;
        }
        match rest.get(ws) {
            None if eof => {
                return Delim::Found {
                    frame: idx,
                    close: false,
                    len: off + ws,
                }
            }
            None => need = true,
            Some(b'\n') => {
                return Delim::Found {
                    frame: idx,
                    close: false,
                    len: off + ws + 1,
                }
            }
            Some(b'\r') => match rest.get(ws + 1) {
                Some(b'\n') => {
                    return Delim::Found {
                        frame: idx,
                        close: false,
                        len: off + ws + 2,
                    }
                }
                None if eof => {
                    return Delim::Found {
                        frame: idx,
                        close: false,
                        len: off + ws + 1,
                    }
                }
                None => need = true,
                Some(_) => {}
            },
            Some(_) => {}
        }
    }
    if need {
        Delim::Need
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
    /// The header block is the message's own (top level), not a part's.
    hdr_top: bool,

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
    started: bool,
    finished: bool,
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
            hdr_top: true,
            bol: true,
            held: Held::None,
            carry: Vec::new(),
            leaf: None,
            out: Vec::new(),
            parts: 0,
            parts_exhausted: false,
            started: false,
            finished: false,
        };
        if let MimeStart::Multipart { boundary } = start {
            p.is_message = false;
            p.hdr_top = false;
            p.frames.push(Frame {
                boundary,
                digest: false,
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
        if self.carry.is_empty() {
            let n = self.process(data, false, cx);
            self.carry.extend_from_slice(&data[n..]);
        } else {
            // A possible delimiter straddles the calls: join it with the new bytes. The carry
            // is a few dozen bytes; this copies one packet now and then.
            let mut buf = std::mem::take(&mut self.carry);
            buf.extend_from_slice(data);
            let n = self.process(&buf, false, cx);
            buf.drain(..n);
            self.carry = buf;
        }
    }

    /// `len` bytes of the message are missing.
    pub fn gap(&mut self, len: u64, cx: &mut MimeContext<'_>) {
        if self.finished || len == 0 {
            return;
        }
        self.start(cx);
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
                // The entity's headers are incomplete: skip to the next delimiter.
                cx.state.stats.gap_resyncs += 1;
                self.reset_headers();
                self.mode = Mode::Skip;
            }
            Mode::Skip => {}
        }
        self.held = Held::None;
        self.bol = false;
        self.carry = carry;
        self.carry.clear();
    }

    /// The message ended (`Complete`) or was cut off: closes every open part.
    pub fn finish(&mut self, end: FileEnd, cx: &mut MimeContext<'_>) {
        if self.finished {
            return;
        }
        self.start(cx);
        let buf = std::mem::take(&mut self.carry);
        if !buf.is_empty() {
            self.process(&buf, true, cx);
        }
        if self.mode == Mode::Headers && !self.hdr_line_blank && !self.hdr_too_large {
            // The last header line had no line break: still a header line.
            self.hdr.extend_from_slice(b"\n");
            self.header_line_done(cx);
        }
        if self.mode == Mode::Body {
            let held = std::mem::replace(&mut self.held, Held::None);
            if let Some(leaf) = &mut self.leaf {
                leaf.write(held.bytes(), &mut self.out, cx);
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
                Mode::Headers => pos = self.headers(buf, pos, cx),
                Mode::Body | Mode::Skip if self.frames.is_empty() => {
                    // No boundary can end this: the rest of the message is the body (or junk).
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
                    self.bol = true;
                    pos += 1;
                } else {
                    self.held = Held::None;
                    self.emit(b"\r", cx);
                }
            }
            if self.bol {
                match check_delim(&self.frames, &buf[pos..], eof) {
                    Delim::Need => return Err(pos),
                    Delim::Found { frame, close, len } => {
                        self.held = Held::None;
                        self.bol = false;
                        self.on_delimiter(frame, close, cx);
                        return Ok(pos + len);
                    }
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
            let (lb_start, held) = if nl > pos && buf[nl - 1] == b'\r' {
                (nl - 1, Held::CrLf)
            } else {
                (nl, Held::Lf)
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

    fn on_delimiter(&mut self, frame: usize, close: bool, cx: &mut MimeContext<'_>) {
        self.close_leaf(FileEnd::Complete, cx);
        let unclosed = self.frames.len() - 1 - frame;
        if unclosed > 0 {
            cx.state.stats.missing_final_boundary += unclosed as u64;
            self.frames.truncate(frame + 1);
        }
        self.reset_headers();
        if close {
            self.frames.pop();
            self.mode = Mode::Skip; // epilogue
        } else if self.parts >= cx.state.cfg.max_parts {
            if !self.parts_exhausted {
                self.parts_exhausted = true;
                cx.state.stats.parts_exceeded += 1;
            }
            self.mode = Mode::Skip;
        } else {
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
    }

    /// Header mode: takes bytes up to and including the next line break.
    fn headers(&mut self, buf: &[u8], pos: usize, cx: &mut MimeContext<'_>) -> usize {
        let rest = &buf[pos..];
        let (piece, complete) = match memchr::memchr(b'\n', rest) {
            Some(i) => (&rest[..=i], true),
            None => (rest, false),
        };
        self.hdr_line_len += piece.len();
        self.hdr_line_blank &= piece.iter().all(|&b| b == b'\r' || b == b'\n');
        if !self.hdr_too_large {
            if self.hdr.len() + piece.len() > cx.state.cfg.max_header_bytes {
                // Too big to be headers worth reading: keep discarding until the blank line.
                self.hdr_too_large = true;
                cx.state.stats.header_too_large += 1;
            } else {
                self.hdr.extend_from_slice(piece);
            }
        }
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
        if blank {
            let end = self.hdr_line_start;
            self.end_headers(end, None, cx);
            return;
        }
        if self.hdr_too_large {
            return;
        }
        let start = self.hdr_line_start;
        let line = &self.hdr[start..];
        let text = line.strip_suffix(b"\n").unwrap_or(line);
        let text = text.strip_suffix(b"\r").unwrap_or(text);
        if text.starts_with(b"--") && !self.frames.is_empty() {
            if let Delim::Found { frame, close, .. } = check_delim(&self.frames, line, true) {
                // A part that ended inside its headers (no body).
                self.on_delimiter(frame, close, cx);
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
        if !header::is_field_line(text) {
            // Not a header: the headers are over (no blank line) and this line is content.
            let body_line = (start, start + text.len(), &line[text.len()..] == b"\r\n");
            self.end_headers(start, Some(body_line), cx);
            return;
        }
        self.hdr_line_start = self.hdr.len();
    }

    /// The header block `hdr[..end]` is complete. `body_line` is a line already read that starts
    /// the body: (start, end without its line break, line break is CRLF).
    fn end_headers(&mut self, end: usize, body_line: Option<(usize, usize, bool)>, cx: &mut MimeContext<'_>) {
        let h = header::parse_block(&self.hdr[..end]);
        cx.state.stats.encoded_word_errors += h.decode_errors;
        if self.hdr_top {
            self.hdr_top = false;
            if self.is_message && !self.nested {
                if let Some(write) = self.message_fields {
                    write(&mut self.template.fields, &h);
                }
            }
        }
        let hdr = std::mem::take(&mut self.hdr);
        self.start_entity(h, cx);
        self.bol = true;
        self.held = Held::None;
        if let Some((s, e, crlf)) = body_line {
            // The line is content of whatever started (its break may still precede a delimiter).
            self.emit(&hdr[s..e], cx);
            self.bol = !self.frames.is_empty();
            self.held = if crlf { Held::CrLf } else { Held::Lf };
            if self.frames.is_empty() {
                self.flush_held(cx);
            }
        }
        self.hdr = hdr;
        self.reset_headers();
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
        if ctype.starts_with("multipart/") {
            if let Some(boundary) = h.boundary.as_ref().filter(|b| b.len() <= MAX_BOUNDARY) {
                if depth + 1 > cfg.max_depth {
                    cx.state.stats.depth_exceeded += 1;
                    self.mode = Mode::Skip;
                } else {
                    self.frames.push(Frame {
                        boundary: boundary.clone(),
                        digest: ctype == "multipart/digest",
                    });
                    self.mode = Mode::Skip; // preamble
                }
                return;
            }
            // Without a usable boundary it cannot be split: carved as one leaf.
        }
        self.parts += 1;
        cx.state.stats.parts += 1;

        let filename = h
            .filename
            .clone()
            .or_else(|| h.ct_name.clone())
            .filter(|f| !f.is_empty());
        let attachment = h.disposition.as_deref() == Some("attachment");
        let top_body = self.frames.is_empty() && self.is_message;
        let is_file = if top_body {
            true
        } else if h.disposition.as_deref() == Some("form-data") && h.filename.is_none() {
            false
        } else if ctype.starts_with("text/") && filename.is_none() && !attachment {
            cfg.text_bodies_as_files
        } else {
            true
        };
        let decoder = match h.transfer_encoding {
            TransferEncoding::Identity => Decoder::Identity,
            TransferEncoding::Base64 => Decoder::Base64(Base64Decoder::new()),
            TransferEncoding::QuotedPrintable => Decoder::Qp(QpDecoder::new()),
        };
        let mut leaf = Leaf {
            decoder,
            meta: None,
            file: None,
            child: None,
        };
        if is_file {
            let mut meta = self.template.clone();
            meta.filename = filename;
            meta.declared_mime_type = Some(ctype.clone());
            meta.depth = depth;
            let named = meta.filename.is_some() || attachment;
            leaf.meta = Some(meta);
            let is_message = ctype == "message/rfc822" || ctype == "message/global";
            if is_message && depth + 1 > cfg.max_depth {
                cx.state.stats.depth_exceeded += 1;
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
