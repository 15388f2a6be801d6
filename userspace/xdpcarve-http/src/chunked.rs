//! Streaming de-chunker (RFC 9112 7.1): chunk sizes, extensions and trailers may be split across
//! inputs anywhere. Lines end at LF, as in Chromium's and Firefox's decoders. Where Chromium
//! accepts a chunk, we read it the same; where it gives up, we read on as the most permissive
//! decoder does (Firefox's `strtoul`: blanks and control bytes around the size, junk after its
//! digits; a missing CRLF after the data) and note the [`Anomaly`]. Only a line with no hex digit
//! where a size belongs, or one longer than the bound, breaks the framing.

use memchr::memchr;
use xdpcarve_contract::{Anomalies, Anomaly};

/// What one step over the input found.
#[derive(Debug, PartialEq, Eq)]
pub enum Step<'a> {
    /// Framing consumed; nothing for the body.
    Framing,
    /// Body bytes.
    Data(&'a [u8]),
    /// The last chunk and the trailers are through: the body is complete.
    Done,
    /// The framing is broken; [`Dechunker::take_line`] has the bytes of the line it broke on.
    Error,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum State {
    /// Reading a chunk-size line.
    Size,
    /// Reading the line that ends chunk data (empty when the sender is well-behaved).
    AfterData,
    Data,
    /// Reading trailer lines after the last chunk, up to an empty one.
    Trailer,
    Done,
    Error,
}

#[derive(Clone, Debug)]
pub struct Dechunker {
    state: State,
    /// The line being read (bounded by `max_framing`), with its LF once complete.
    line: Vec<u8>,
    /// Bytes of all trailers (bounded by `max_framing` too).
    trailer_len: usize,
    max_framing: usize,
    /// Data bytes left in the current chunk.
    remaining: u64,
    anomalies: Anomalies,
}

impl Dechunker {
    /// `max_framing`: longest size line (with extensions) and largest trailer block accepted.
    pub fn new(max_framing: usize) -> Self {
        Dechunker {
            state: State::Size,
            line: Vec::new(),
            trailer_len: 0,
            max_framing,
            remaining: 0,
            anomalies: Anomalies::EMPTY,
        }
    }

    /// The ways the framing was bent so far.
    pub fn anomalies(&self) -> Anomalies {
        self.anomalies
    }

    /// After [`Step::Error`]: the bytes of the line the framing broke on (they belong to the body
    /// read to the close).
    pub fn take_line(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.line)
    }

    /// Between chunks: the body could have ended here without losing a byte of data.
    pub fn between_chunks(&self) -> bool {
        matches!(self.state, State::Size | State::AfterData) && self.line.iter().all(|b| b.is_ascii_whitespace())
    }

    /// Data bytes left in the current chunk, if inside chunk data.
    pub fn in_data(&self) -> Option<u64> {
        (self.state == State::Data).then_some(self.remaining)
    }

    /// Skips `len` bytes of chunk data that were lost. False if the gap is not inside one chunk's
    /// data (the framing is then unknown).
    pub fn skip_data(&mut self, len: u64) -> bool {
        if self.state != State::Data || len > self.remaining {
            return false;
        }
        self.remaining -= len;
        if self.remaining == 0 {
            self.state = State::AfterData;
        }
        true
    }

    /// Consumes a prefix of `input`; returns how much and what it was.
    pub fn step<'a>(&mut self, input: &'a [u8]) -> (usize, Step<'a>) {
        if input.is_empty() {
            return (0, Step::Framing);
        }
        match self.state {
            State::Done => (0, Step::Done),
            State::Error => (0, Step::Error),
            State::Data => {
                let n = (input.len() as u64).min(self.remaining) as usize;
                self.remaining -= n as u64;
                if self.remaining == 0 {
                    self.state = State::AfterData;
                }
                (n, Step::Data(&input[..n]))
            }
            State::Size | State::AfterData | State::Trailer => {
                let (n, eol) = match memchr(b'\n', input) {
                    Some(i) => (i + 1, true),
                    None => (input.len(), false),
                };
                if self.line.len() + n > self.max_framing {
                    let room = self.max_framing.saturating_sub(self.line.len()).min(n);
                    self.line.extend_from_slice(&input[..room]);
                    self.anomalies.insert(Anomaly::ChunkSizeInvalid);
                    self.state = State::Error;
                    return (room, Step::Error);
                }
                self.line.extend_from_slice(&input[..n]);
                if !eol {
                    return (n, Step::Framing);
                }
                let step = self.end_line();
                if step != Step::Error {
                    self.line.clear();
                }
                (n, step)
            }
        }
    }

    /// A whole line (ending in LF) is in `self.line`.
    fn end_line<'a>(&mut self) -> Step<'a> {
        // Taken out while it is read, put back after: its capacity is reused line after line.
        let buf = std::mem::take(&mut self.line);
        let with_cr = &buf[..buf.len() - 1];
        let bare_lf = !with_cr.ends_with(b"\r");
        let line = with_cr.strip_suffix(b"\r").unwrap_or(with_cr);
        let step = match self.state {
            State::Trailer if line.is_empty() => {
                self.state = State::Done;
                Step::Done
            }
            State::Trailer => {
                self.trailer_len += buf.len();
                if self.trailer_len > self.max_framing {
                    self.anomalies.insert(Anomaly::ChunkSizeInvalid);
                    self.state = State::Error;
                    Step::Error
                } else {
                    Step::Framing
                }
            }
            State::AfterData if line.is_empty() => {
                self.state = State::Size;
                Step::Framing
            }
            State::AfterData => {
                // Data not followed by CRLF: Firefox reads this line as the next size.
                self.anomalies.insert(Anomaly::ChunkDataNoCrlf);
                self.size_line(line, bare_lf)
            }
            _ => self.size_line(line, bare_lf),
        };
        self.line = buf;
        step
    }

    fn size_line<'a>(&mut self, line: &[u8], bare_lf: bool) -> Step<'a> {
        if line.iter().all(|&b| is_blank(b)) {
            // An empty line where a size belongs: skipped (Chromium gives up here).
            self.anomalies.insert(Anomaly::ChunkSizeWhitespace);
            self.state = State::Size;
            return Step::Framing;
        }
        if bare_lf {
            self.anomalies.insert(Anomaly::ChunkSizeBareLf);
        }
        let (size_part, ext) = match line.iter().position(|&b| b == b';') {
            Some(i) => (&line[..i], true),
            None => (line, false),
        };
        if ext {
            self.anomalies.insert(Anomaly::ChunkExtension);
        }
        if size_part.contains(&b'\r') {
            self.anomalies.insert(Anomaly::ChunkSizeBareCr);
        }
        let start = size_part.iter().position(|&b| !is_blank(b)).unwrap_or(size_part.len());
        let end = size_part.iter().rposition(|&b| !is_blank(b)).map_or(start, |i| i + 1);
        if (start > 0 || end < size_part.len()) && size_part.iter().any(|&b| is_blank(b) && b != b'\r') {
            self.anomalies.insert(Anomaly::ChunkSizeWhitespace);
        }
        let mut size = &size_part[start..end];
        if let Some(hex) = size.strip_prefix(b"0x").or_else(|| size.strip_prefix(b"0X")) {
            // `strtoul(.., 16)` takes a 0x prefix.
            self.anomalies.insert(Anomaly::ChunkSizeJunk);
            size = hex;
        }
        let digits = size.iter().take_while(|b| b.is_ascii_hexdigit()).count();
        if digits == 0 || size[..digits].iter().skip_while(|&&b| b == b'0').count() > 16 {
            self.anomalies.insert(Anomaly::ChunkSizeInvalid);
            self.state = State::Error;
            return Step::Error;
        }
        if digits < size.len() {
            self.anomalies.insert(Anomaly::ChunkSizeJunk);
        }
        let value = size[..digits]
            .iter()
            .fold(0u64, |v, &b| v << 4 | (b as char).to_digit(16).unwrap_or(0) as u64);
        if value == 0 {
            self.state = State::Trailer;
            self.trailer_len = 0;
        } else {
            self.remaining = value;
            self.state = State::Data;
        }
        Step::Framing
    }
}

/// What `strtoul` skips before a number, and what may trail a size: blanks and control bytes.
fn is_blank(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | 0x0b | 0x0c | 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the whole input through in pieces of `piece` bytes; returns (body, done, error, rest).
    fn run(input: &[u8], piece: usize) -> (Vec<u8>, bool, bool, usize) {
        let mut d = Dechunker::new(1024);
        let mut body = Vec::new();
        let (mut done, mut err) = (false, false);
        let mut rest = 0;
        'outer: for (pi, p) in input.chunks(piece).enumerate() {
            let mut p = p;
            while !p.is_empty() {
                let (n, s) = d.step(p);
                p = &p[n..];
                match s {
                    Step::Data(x) => body.extend_from_slice(x),
                    Step::Done => {
                        done = true;
                        rest = input.len() - (pi * piece + (input.chunks(piece).nth(pi).unwrap().len() - p.len()));
                        break 'outer;
                    }
                    Step::Error => {
                        err = true;
                        break 'outer;
                    }
                    Step::Framing => {}
                }
            }
        }
        (body, done, err, rest)
    }

    #[test]
    fn extensions_and_trailers_at_every_split() {
        let input =
            b"5;name=val;x\r\nhello\r\n1A \r\nabcdefghijklmnopqrstuvwxyz\r\n0;last\r\nX-Trailer: 1\r\nY: 2\r\n\r\nNEXT";
        for piece in 1..input.len() {
            let (body, done, err, rest) = run(input, piece);
            assert_eq!(body, b"helloabcdefghijklmnopqrstuvwxyz", "piece {piece}");
            assert!(done && !err);
            assert_eq!(rest, 4, "bytes after the body are left, piece {piece}");
        }
    }

    #[test]
    fn bare_lf_is_accepted() {
        let (body, done, err, _) = run(b"3\nabc\n0\n\n", 2);
        assert_eq!((body.as_slice(), done, err), (&b"abc"[..], true, false));
    }

    #[test]
    fn bad_size_is_an_error() {
        assert!(run(b"zz\r\nabc", 3).2);
        assert!(run(b"3\r\nabcX\r\n", 3).2, "junk after data that is not a size");
        assert!(run(b"11111111111111111\r\n", 100).2, "size overflows u64");
    }

    /// Runs `input` whole; returns (body, done, error, anomalies).
    fn run_anomalies(input: &[u8]) -> (Vec<u8>, bool, bool, Anomalies) {
        let mut d = Dechunker::new(1024);
        let (body, done, err, _) = run(input, input.len());
        for piece in 1..input.len() {
            assert_eq!(run(input, piece).0, body, "piece {piece}");
        }
        let mut rest = input;
        while !rest.is_empty() {
            let (n, s) = d.step(rest);
            rest = &rest[n..];
            if matches!(s, Step::Done | Step::Error) {
                break;
            }
        }
        (body, done, err, d.anomalies())
    }

    #[test]
    fn bent_size_lines_are_read_as_firefox_reads_them() {
        let cases: &[(&[u8], Anomaly)] = &[
            (b"3\r\r\nabc\r\n0\r\n\r\n", Anomaly::ChunkSizeBareCr),
            (b"\r3\r\nabc\r\n0\r\n\r\n", Anomaly::ChunkSizeBareCr),
            (b"\x0b3\r\nabc\r\n0\r\n\r\n", Anomaly::ChunkSizeWhitespace),
            (b" 3 \r\nabc\r\n0\r\n\r\n", Anomaly::ChunkSizeWhitespace),
            (b"3zz\r\nabc\r\n0\r\n\r\n", Anomaly::ChunkSizeJunk),
            (b"3;a=b\r\nabc\r\n0\r\n\r\n", Anomaly::ChunkExtension),
            (b"3\nabc\n0\n\n", Anomaly::ChunkSizeBareLf),
            (b"3\r\nabc0\r\n\r\n", Anomaly::ChunkDataNoCrlf),
            (b"\r\n3\r\nabc\r\n0\r\n\r\n", Anomaly::ChunkSizeWhitespace),
            (b"0003\r\nabc\r\n0\r\nX-T: 1\r\n\r\n", Anomaly::ChunkSizeInvalid),
        ];
        for (i, &(input, anomaly)) in cases.iter().enumerate() {
            let (body, done, err, a) = run_anomalies(input);
            assert_eq!((body.as_slice(), done, err), (&b"abc"[..], true, false), "case {i}");
            if anomaly == Anomaly::ChunkSizeInvalid {
                assert!(a.is_empty(), "case {i}: leading zeros and trailers are fine: {a:?}");
            } else {
                assert!(a.contains(anomaly), "case {i}: {a:?}");
            }
        }
    }

    #[test]
    fn a_broken_line_is_handed_back() {
        let mut d = Dechunker::new(1024);
        let (n, s) = d.step(b"3\r\nabc\r\nzz\r\nrest");
        assert_eq!((n, s), (3, Step::Framing));
        let mut rest: &[u8] = b"abc\r\nzz\r\nrest";
        loop {
            let (n, s) = d.step(rest);
            rest = &rest[n..];
            if s == Step::Error {
                break;
            }
        }
        assert_eq!(d.take_line(), b"zz\r\n");
        assert_eq!(rest, b"rest");
        assert!(d.anomalies().contains(Anomaly::ChunkSizeInvalid));
    }

    #[test]
    fn framing_is_bounded() {
        let mut long = b"5;".to_vec();
        long.extend(std::iter::repeat_n(b'x', 5000));
        assert!(run(&long, 100).2);
        let mut trailers = b"0\r\n".to_vec();
        for _ in 0..200 {
            trailers.extend_from_slice(b"X-Long-Trailer: 0123456789\r\n");
        }
        assert!(run(&trailers, 100).2);
    }

    #[test]
    fn data_gap_keeps_framing() {
        let mut d = Dechunker::new(100);
        for b in b"a\r\n" {
            assert_eq!(d.step(&[*b]), (1, Step::Framing));
        }
        assert_eq!(d.in_data(), Some(10));
        assert_eq!(d.step(b"abc"), (3, Step::Data(b"abc")));
        assert!(!d.skip_data(8), "gap past the chunk");
        assert!(d.skip_data(7));
        let mut rest: &[u8] = b"\r\n0\r\n\r\n";
        let mut last = Step::Framing;
        while !rest.is_empty() {
            let (n, s) = d.step(rest);
            rest = &rest[n..];
            last = s;
        }
        assert_eq!(last, Step::Done);
    }
}
