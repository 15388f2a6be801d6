//! A response head read the way browsers read it, so that what a browser saves is what we hash.
//!
//! Chromium's rules (net/http: `HttpUtil::LocateStartOfStatusLine`, `LocateEndOfHeaders`,
//! `AssembleRawHeaders`, `HttpResponseHeaders::ParseStatusLine`) decide wherever Chromium accepts
//! a response; where it gives up, we go on the way the most permissive client does (Firefox looks
//! for the status line through the first KiB of junk; lines may end in a bare CR) and mark the
//! file with the [`Anomaly`] that made it unusual. In order:
//!
//! - **Start.** Up to 4 bytes of anything before `http` (any case), as Chromium allows; later
//!   replies on the connection may also follow blank lines. No status line there is an HTTP/0.9
//!   reply (Chromium saves everything up to the close as its body), or junk after a body.
//! - **End of the head.** An empty line: `\n\n` or `\n\r\n`. A bare CR in the head (one followed by
//!   neither CR nor LF) switches to CR line ends, where `\r\r` ends the head too. When that rule
//!   finds no end, or finds one only after lines no header looks like, a blank-looking line (a bare
//!   CR, blanks) ends the head: [`Anomaly::HeadEndBent`].
//! - **Lines.** After the status line, CR, LF and NUL all end a line (Chromium splits there);
//!   a line starting with a space or tab continues a previous valid header; a line without a
//!   colon, or whose name is not a token, is ignored; blanks around the name are trimmed.
//! - **Status line.** `http/` then the first digit before and after the dot is the version
//!   (`HTTP/1.10` is 1.1, `HTTP/2.0` is 2.0, `HTTP/0.9` with headers is 1.0); a missing code is 200.

use crate::head::Head;
use xdpcarve_contract::{Anomalies, Anomaly};

/// Junk bytes held while looking for the status line.
pub const MAX_STATUS_SEARCH: usize = 1024;
/// Chromium's slop: junk bytes accepted before `http`.
const STATUS_SLOP: usize = 4;

/// Where the reader is.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Scan {
    /// Looking for the status line.
    Start,
    /// Inside the status line (which starts at `status_at`).
    StatusLine,
    /// Saw the CR ending the status line: the next byte tells CRLF from a bare CR.
    StatusCr,
    /// LF line ends: 0 inside a line, 1 right after LF, 2 after LF CR, 3 after a CR inside a line.
    Lf(u8),
    /// CR line ends: 0 inside a line, 1 after a line end, 2 after a CR (an LF may pair with it).
    Cr(u8),
}

/// What a step of the reader found.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Found {
    /// Not yet: more bytes are needed.
    More,
    /// The head ends at this offset of the buffer (one past its empty line).
    Head(usize),
    /// No status line within reach: an HTTP/0.9 reply (or not HTTP).
    NoStatusLine,
}

/// Finds a response head in a buffer that grows between calls; resumes where it stopped, so a
/// head delivered a byte at a time costs linear time.
#[derive(Clone, Debug)]
pub struct HeadReader {
    scan: Scan,
    /// Bytes of the buffer already looked at.
    pos: usize,
    /// Where the status line starts.
    status_at: usize,
    /// A bare CR ended a line: the head has CR line ends.
    cr_mode: bool,
    /// The connection's first reply: Chromium's rule for the start, no blank lines skipped.
    first: bool,
    /// Where the current line starts, and whether it holds only blanks so far.
    line_at: usize,
    line_blank: bool,
    /// The first blank-looking line that did not end the head by the rule (offset past it).
    suspect_end: Option<usize>,
}

impl HeadReader {
    /// A reader for the connection's `first` reply, or a later one.
    pub fn new(first: bool) -> Self {
        HeadReader {
            scan: Scan::Start,
            pos: 0,
            status_at: 0,
            cr_mode: false,
            first,
            line_at: 0,
            line_blank: false,
            suspect_end: None,
        }
    }

    /// Where a blank-looking line (a bare CR, blanks) would end the head, if one was seen.
    pub fn suspect_end(&self) -> Option<usize> {
        self.suspect_end
    }

    /// Offset of the status line in the buffer (bytes before it are junk).
    pub fn status_at(&self) -> usize {
        self.status_at
    }

    /// Whether the status line was found.
    pub fn has_status(&self) -> bool {
        self.scan != Scan::Start
    }

    /// Looks at `buf` (everything since the response began). `at_end`: no more bytes will come.
    pub fn step(&mut self, buf: &[u8], at_end: bool) -> Found {
        if self.scan == Scan::Start {
            match locate_status_line(buf, at_end, self.first) {
                Some(Ok(at)) => {
                    self.status_at = at;
                    self.pos = at;
                    self.scan = Scan::StatusLine;
                }
                Some(Err(())) => return Found::NoStatusLine,
                None => return Found::More,
            }
        }
        while self.pos < buf.len() {
            let b = buf[self.pos];
            self.pos += 1;
            if let Scan::Lf(_) = self.scan {
                self.watch_blank_lines(b);
            }
            self.scan = match (self.scan, b) {
                (Scan::StatusLine, b'\n') => self.new_line(Scan::Lf(1)),
                (Scan::StatusLine, b'\r') => Scan::StatusCr,
                (Scan::StatusLine, _) => Scan::StatusLine,
                (Scan::StatusCr, b'\n') => self.new_line(Scan::Lf(1)),
                (Scan::StatusCr, b'\r') => return self.cr_head_end(buf, at_end),
                (Scan::StatusCr, _) => {
                    self.cr_mode = true;
                    Scan::Cr(0)
                }
                (Scan::Lf(1 | 2), b'\n') => return Found::Head(self.pos),
                (Scan::Lf(1), b'\r') => Scan::Lf(2),
                (Scan::Lf(_), b'\n') => self.new_line(Scan::Lf(1)),
                (Scan::Lf(0 | 3), b'\r') => Scan::Lf(3),
                (Scan::Lf(3), _) => {
                    // A bare CR inside the head: it has CR line ends.
                    self.cr_mode = true;
                    Scan::Cr(0)
                }
                (Scan::Lf(_), _) => Scan::Lf(0),
                // CR line ends: CR, LF or CRLF end a line; an empty line ends the head.
                (Scan::Cr(2), b'\n') => Scan::Cr(1),
                (Scan::Cr(1), b'\n') => return Found::Head(self.pos),
                (Scan::Cr(1 | 2), b'\r') => return self.cr_head_end(buf, at_end),
                (Scan::Cr(_), b'\r') => Scan::Cr(2),
                (Scan::Cr(_), b'\n') => Scan::Cr(1),
                (Scan::Cr(_), _) => Scan::Cr(0),
                (Scan::Start, _) => unreachable!("the status line was located above"),
            };
        }
        if at_end && self.has_status() {
            // The connection ended inside the head: what came is the head, and there is no body.
            return Found::Head(buf.len());
        }
        Found::More
    }

    fn new_line(&mut self, next: Scan) -> Scan {
        self.line_at = self.pos;
        self.line_blank = true;
        next
    }

    /// Notes the first line of an LF head that looks blank without being empty (blanks and CRs
    /// then LF), or a bare CR where the empty line belongs.
    fn watch_blank_lines(&mut self, b: u8) {
        if self.suspect_end.is_some() {
            return;
        }
        let len = self.pos - 1 - self.line_at;
        match b {
            b'\n' if self.line_blank && len > 0 && !(len == 1 && self.scan == Scan::Lf(2)) => {
                self.suspect_end = Some(self.pos);
            }
            b' ' | b'\t' | b'\r' | b'\n' => {}
            _ if self.scan == Scan::Lf(2) => self.suspect_end = Some(self.pos - 1),
            _ => self.line_blank = false,
        }
    }

    /// The end of a head whose empty line is the CR just read: an LF right after it belongs to
    /// it, so when the buffer ends here, wait for the next byte (the CR is read again then).
    fn cr_head_end(&mut self, buf: &[u8], at_end: bool) -> Found {
        match buf.get(self.pos) {
            Some(b'\n') => Found::Head(self.pos + 1),
            Some(_) => Found::Head(self.pos),
            None if at_end => Found::Head(self.pos),
            None => {
                self.pos -= 1;
                Found::More
            }
        }
    }
}

/// Where the status line starts: `Some(Ok)`, `Some(Err)` when there is none within reach, `None`
/// when more bytes are needed to tell.
fn locate_status_line(buf: &[u8], at_end: bool, first: bool) -> Option<Result<usize, ()>> {
    let lead = if first {
        0
    } else {
        let blanks = buf
            .iter()
            .take_while(|b| matches!(b, b'\r' | b'\n' | b' ' | b'\t'))
            .count();
        if blanks == buf.len() && !at_end {
            return None;
        }
        blanks
    };
    // Chromium: `http` (any case) within 4 bytes.
    let near = &buf[lead..];
    for i in 0..=STATUS_SLOP {
        match near.get(i..i + 4) {
            Some(w) if w.eq_ignore_ascii_case(b"http") => return Some(Ok(lead + i)),
            Some(_) => {}
            None if at_end => break,
            None => return None,
        }
    }
    Some(Err(()))
}

/// Whether `lines` (a part of a head) reads as header lines: each has a colon or continues the
/// one before, and none holds a NUL.
pub fn looks_like_headers(lines: &[u8]) -> bool {
    lines
        .split(|&b| b == b'\r' || b == b'\n')
        .filter(|l| !l.iter().all(|b| b.is_ascii_whitespace()))
        .all(|l| (l.contains(&b':') || matches!(l[0], b' ' | b'\t')) && !l.contains(&0))
}

/// A parsed response head.
#[derive(Clone, Debug, Default)]
pub struct ResponseHead {
    pub head: Head,
    /// (major, minor) as Chromium clamps it: 0.9, 1.0, 1.1 or 2.0.
    pub version: (u8, u8),
    pub anomalies: Anomalies,
    /// Content-Length given more than once with different values.
    pub cl_conflict: bool,
    /// Transfer-Encoding names `chunked` as one of its codings.
    pub te_chunked: bool,
}

impl ResponseHead {
    /// Chunked framing applies (Chromium ignores it before HTTP/1.1).
    pub fn is_chunked(&self) -> bool {
        self.te_chunked && self.version >= (1, 1)
    }
}

/// Parses a head (`block`: from the status line through the empty line). `junk`: bytes came
/// before the status line.
pub fn parse(block: &[u8], junk: bool) -> ResponseHead {
    let mut r = ResponseHead::default();
    if junk {
        r.anomalies.insert(Anomaly::JunkBeforeStatus);
    }
    line_end_anomalies(block, &mut r.anomalies);
    let status_end = block
        .iter()
        .position(|&b| b == b'\r' || b == b'\n')
        .unwrap_or(block.len());
    let (status_line, rest) = block.split_at(status_end);
    let has_headers = rest.iter().any(|&b| !matches!(b, b'\r' | b'\n'));
    parse_status_line(status_line, has_headers, &mut r);
    let mut headers: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    let mut prev_continuable = false;
    for line in rest
        .split(|&b| b == b'\r' || b == b'\n' || b == 0)
        .filter(|l| !l.is_empty())
    {
        if matches!(line[0], b' ' | b'\t') {
            if prev_continuable {
                if let Some((_, value)) = headers.last_mut() {
                    r.anomalies.insert(Anomaly::HeaderFolding);
                    value.push(b' ');
                    value.extend_from_slice(trim_lws(line));
                }
            }
            continue;
        }
        prev_continuable = false;
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            r.anomalies.insert(Anomaly::HeaderWithoutColon);
            continue;
        };
        let raw_name = &line[..colon];
        let name = trim_lws(raw_name);
        if name.len() != raw_name.len() {
            r.anomalies.insert(Anomaly::SpaceBeforeColon);
        }
        if name.is_empty() {
            continue;
        }
        if !name.iter().all(|&b| is_tchar(b)) {
            r.anomalies.insert(if name.iter().any(|&b| b >= 0x80) {
                Anomaly::HeaderNonAscii
            } else {
                Anomaly::HeaderControlBytes
            });
            continue;
        }
        prev_continuable = true;
        headers.push((name.to_vec(), trim_lws(&line[colon + 1..]).to_vec()));
    }
    if block
        .iter()
        .any(|&b| b == 0 || (b < 0x20 && !matches!(b, b'\r' | b'\n' | b'\t')))
    {
        r.anomalies.insert(Anomaly::HeaderControlBytes);
    }
    apply_headers(&headers, &mut r);
    r
}

/// Bare LF and bare CR line ends anywhere in the head.
fn line_end_anomalies(block: &[u8], out: &mut Anomalies) {
    for (i, &b) in block.iter().enumerate() {
        match b {
            b'\n' if i == 0 || block[i - 1] != b'\r' => out.insert(Anomaly::BareLf),
            b'\r' if block.get(i + 1).is_some_and(|&n| n != b'\n') => out.insert(Anomaly::BareCr),
            _ => {}
        }
    }
}

fn parse_status_line(line: &[u8], has_headers: bool, r: &mut ResponseHead) {
    if !line.starts_with(b"HTTP/1.1 ") && !line.starts_with(b"HTTP/1.0 ") {
        r.anomalies.insert(Anomaly::StatusVersionOdd);
    }
    // Version: `http/`, then the digit after the slash and the one after the first dot.
    let parsed = (line.len() > 4 && line[4] == b'/')
        .then(|| {
            let major = *line.get(5)?;
            let dot = line[5..].iter().position(|&b| b == b'.')? + 5;
            let minor = *line.get(dot + 1)?;
            (major.is_ascii_digit() && minor.is_ascii_digit()).then_some((major - b'0', minor - b'0'))
        })
        .flatten();
    r.version = match parsed {
        Some((0, 9)) if !has_headers => (0, 9),
        Some((2, 0)) => (2, 0),
        Some(v) if v >= (1, 1) => (1, 1),
        _ => (1, 0),
    };
    // Status code: after the first space, skipping spaces; none is 200.
    let code = line.iter().position(|&b| b == b' ').and_then(|sp| {
        let rest = &line[sp..];
        let start = rest.iter().position(|&b| b != b' ')?;
        let digits = rest[start..].iter().take_while(|b| b.is_ascii_digit()).count();
        let well_formed = start == 1 && matches!(rest.get(start + digits), None | Some(b' '));
        if !well_formed || digits != 3 {
            r.anomalies.insert(Anomaly::StatusLineMalformed);
        }
        std::str::from_utf8(&rest[start..start + digits])
            .ok()?
            .parse::<u16>()
            .ok()
    });
    if code.is_none() {
        r.anomalies.insert(Anomaly::StatusLineMalformed);
    }
    if code.is_some_and(|c| !(100..600).contains(&c)) {
        r.anomalies.insert(Anomaly::StatusCodeOdd);
    }
    r.head.status = code.unwrap_or(200);
}

/// The headers that frame and describe the body, with Chromium's rules for repeats.
fn apply_headers(headers: &[(Vec<u8>, Vec<u8>)], r: &mut ResponseHead) {
    let h = &mut r.head;
    let text = |v: &[u8]| String::from_utf8_lossy(v).into_owned();
    let mut lengths: Vec<&[u8]> = Vec::new();
    let mut dispositions: Vec<&[u8]> = Vec::new();
    let mut te_headers = 0;
    let mut te_tokens: Vec<String> = Vec::new();
    let mut ce_tokens: Vec<String> = Vec::new();
    for (name, value) in headers {
        // A folded value was joined after its first line: trim it again.
        let value = trim_lws(value);
        let is = |n: &str| name.eq_ignore_ascii_case(n.as_bytes());
        if is("content-length") {
            // `Content-Length: 5, 5` is one length given twice (RFC 9110 8.6).
            lengths.extend(value.split(|&b| b == b',').map(trim_lws));
        } else if is("transfer-encoding") {
            te_headers += 1;
            te_tokens.extend(tokens(value));
        } else if is("content-encoding") {
            // Empty codings are kept: Chromium leaves a body with one as sent.
            ce_tokens.extend(
                value
                    .split(|&b| b == b',')
                    .map(|t| String::from_utf8_lossy(trim_lws(t)).into_owned()),
            );
        } else if is("content-type") {
            h.content_type.get_or_insert_with(|| text(value));
        } else if is("content-disposition") {
            dispositions.push(value);
            h.content_disposition.get_or_insert_with(|| text(value));
        } else if is("content-range") {
            h.content_range.get_or_insert_with(|| text(value));
        } else if is("etag") {
            h.etag.get_or_insert_with(|| text(value));
        }
    }
    if let Some(first) = lengths.first() {
        if lengths.iter().any(|l| l != first) {
            r.cl_conflict = true;
            r.anomalies.insert(Anomaly::ClConflict);
        } else if lengths.len() > 1 {
            r.anomalies.insert(Anomaly::ClDuplicate);
        }
        // Chromium: the first value, a plain non-negative decimal (no sign); else no length.
        let v = std::str::from_utf8(first)
            .ok()
            .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()));
        h.content_length = Some(v.and_then(|s| s.parse().ok()).ok_or(()));
        if h.content_length == Some(Err(())) {
            r.anomalies.insert(Anomaly::ClInvalid);
        }
    }
    if dispositions.iter().any(|d| *d != dispositions[0]) {
        r.anomalies.insert(Anomaly::CdConflict);
    }
    if te_headers > 0 {
        if te_headers > 1 {
            r.anomalies.insert(Anomaly::TeDuplicate);
        }
        r.te_chunked = te_tokens.iter().any(|t| t.eq_ignore_ascii_case("chunked"));
        if te_tokens.iter().any(|t| !t.eq_ignore_ascii_case("chunked")) {
            r.anomalies.insert(Anomaly::TeUnknown);
        }
        h.transfer_encoding = Some(te_tokens.join(", "));
    }
    if ce_tokens.iter().any(|t| !t.is_empty()) || ce_tokens.len() > 1 {
        h.content_encoding = Some(ce_tokens.join(", "));
    }
    if r.te_chunked && r.version < (1, 1) {
        r.anomalies.insert(Anomaly::TeOnHttp10);
    } else if r.te_chunked && !lengths.is_empty() {
        r.anomalies.insert(Anomaly::TeAndCl);
    }
}

/// The comma-separated values of a header, trimmed, empty ones left out.
fn tokens(value: &[u8]) -> impl Iterator<Item = String> + '_ {
    value
        .split(|&b| b == b',')
        .map(trim_lws)
        .filter(|t| !t.is_empty())
        .map(|t| String::from_utf8_lossy(t).into_owned())
}

fn trim_lws(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// RFC 9110 token characters.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(input: &[u8], piece: usize) -> (Found, usize) {
        let mut r = HeadReader::new(false);
        let mut buf = Vec::new();
        for p in input.chunks(piece.max(1)) {
            buf.extend_from_slice(p);
            match r.step(&buf, false) {
                Found::More => {}
                other => return (other, r.status_at()),
            }
        }
        (r.step(&buf, true), r.status_at())
    }

    #[test]
    fn head_ends_found_at_every_split() {
        let cases: &[(&[u8], usize, usize)] = &[
            (b"HTTP/1.1 200 OK\r\nA: b\r\n\r\nBODY", 0, 25),
            (b"HTTP/1.1 200 OK\nA: b\n\nBODY", 0, 22),
            (b"\r\n\r\nHTTP/1.1 200 OK\r\n\r\nBODY", 4, 23),
            (b"xyHTTP/1.1 200 OK\r\n\r\n", 2, 21),
            (b"HTTP/1.1 200 OK\rA: b\r\rBODY", 0, 22),
            (b"HTTP/1.1 200 OK\rA: b\r\r\nBODY", 0, 23),
            // A bare CR inside an LF head splits a line but does not end the head.
            (b"HTTP/1.1 200 OK\r\nA: b\r\r\nB: c\r\n\r\nBODY", 0, 32),
        ];
        for &(input, at, end) in cases {
            for piece in 1..input.len() {
                assert_eq!(
                    read_all(input, piece),
                    (Found::Head(end), at),
                    "{:?} piece {piece}",
                    String::from_utf8_lossy(input)
                );
            }
        }
    }

    #[test]
    fn status_line_found_within_chromiums_slop_or_not_at_all() {
        let first = |input: &[u8]| {
            let mut r = HeadReader::new(true);
            (r.step(input, true), r.status_at())
        };
        assert_eq!(first(b"xxxxHTTP/1.1 200 OK\r\n\r\n"), (Found::Head(23), 4));
        assert_eq!(first(b"xxxxxHTTP/1.1 200 OK\r\n\r\n").0, Found::NoStatusLine);
        // A first reply may not hide behind blank lines; later ones may.
        assert_eq!(first(b"\r\n\r\n\r\nHTTP/1.1 200 OK\r\n\r\n").0, Found::NoStatusLine);
        assert_eq!(
            read_all(b"\r\n\r\n\r\nHTTP/1.1 200 OK\r\n\r\n", 3),
            (Found::Head(25), 6)
        );
        assert_eq!(read_all(b"<html>hello</html>", 5).0, Found::NoStatusLine);
        // Too short to tell until the end.
        assert_eq!(read_all(b"HT", 1).0, Found::NoStatusLine);
    }

    #[test]
    fn blank_looking_lines_are_noted() {
        for (input, at) in [
            (&b"HTTP/1.1 200 OK\r\nA: b\r\n \r\nBODY\n\nX"[..], 26),
            (b"HTTP/1.1 200 OK\r\nA: b\r\n\rBODY\n\nX", 24),
            (b"HTTP/1.1 200 OK\r\nA: b\r\n\r\r\nBODY\n\nX", 26),
        ] {
            let mut r = HeadReader::new(true);
            assert!(matches!(r.step(input, false), Found::Head(_)));
            assert_eq!(r.suspect_end(), Some(at), "{:?}", String::from_utf8_lossy(input));
            assert!(!looks_like_headers(&input[at..]));
        }
        assert!(looks_like_headers(b"X: y\r\n\tfolded\r\nZ: 1\r\n\r\n"));
    }

    #[test]
    fn versions_clamp_like_chromium() {
        let v = |s: &str| parse(s.as_bytes(), false).version;
        assert_eq!(v("HTTP/1.1 200 OK\r\nA: b\r\n\r\n"), (1, 1));
        assert_eq!(v("HTTP/1.10 200 OK\r\nA: b\r\n\r\n"), (1, 1));
        assert_eq!(v("HTTP/1.01 200 OK\r\nA: b\r\n\r\n"), (1, 0));
        assert_eq!(v("HTTP/2.0 200 OK\r\nA: b\r\n\r\n"), (2, 0));
        assert_eq!(v("HTTP/1.2 200 OK\r\nA: b\r\n\r\n"), (1, 1));
        assert_eq!(v("HTTP/0.9 200 OK\r\nA: b\r\n\r\n"), (1, 0));
        assert_eq!(v("HTTP/01.1 200 OK\r\nA: b\r\n\r\n"), (1, 0));
        assert_eq!(v("http 200 OK\r\nA: b\r\n\r\n"), (1, 0));
        let r = parse(b"HTTP/1.1\r\nA: b\r\n\r\n", false);
        assert_eq!(r.head.status, 200);
        assert!(r.anomalies.contains(Anomaly::StatusLineMalformed));
        assert!(!parse(b"HTTP/1.1 200 OK\r\n\r\n", false)
            .anomalies
            .contains(Anomaly::StatusVersionOdd));
    }

    #[test]
    fn headers_split_fold_and_skip_like_chromium() {
        let r = parse(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding :\r\n chunked\r\nContent-Length: 10\r\nX\x00Y: z\r\nnocolon\r\n\r\n",
            false,
        );
        assert!(r.te_chunked && r.is_chunked());
        for a in [
            Anomaly::SpaceBeforeColon,
            Anomaly::HeaderFolding,
            Anomaly::TeAndCl,
            Anomaly::HeaderWithoutColon,
            Anomaly::HeaderControlBytes,
        ] {
            assert!(r.anomalies.contains(a), "{a}");
        }
        // A CR before the colon splits the line: the header is lost, as in Chromium.
        let r = parse(b"HTTP/1.1 200 OK\r\nTransfer-Encoding\r: chunked\r\n\r\n", false);
        assert!(!r.te_chunked);
        assert!(r.anomalies.contains(Anomaly::BareCr));
        // chunked on HTTP/1.0 is ignored.
        let r = parse(b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", false);
        assert!(r.te_chunked && !r.is_chunked());
        assert!(r.anomalies.contains(Anomaly::TeOnHttp10));
        let r = parse(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked;\r\n\r\n", false);
        assert!(!r.te_chunked && r.anomalies.contains(Anomaly::TeUnknown));
    }

    #[test]
    fn content_lengths() {
        let cl = |s: &str| {
            let r = parse(format!("HTTP/1.1 200 OK\r\n{s}\r\n\r\n").as_bytes(), false);
            (r.head.content_length, r.cl_conflict)
        };
        assert_eq!(cl("Content-Length: 0010"), (Some(Ok(10)), false));
        assert_eq!(cl("Content-Length: +10"), (Some(Err(())), false));
        assert_eq!(cl("Content-Length: 10\r\nContent-Length: 10"), (Some(Ok(10)), false));
        assert_eq!(cl("Content-Length: 10\r\nContent-Length: 11"), (Some(Ok(10)), true));
        assert_eq!(cl("X: y"), (None, false));
    }
}
