//! Streaming de-chunker (RFC 9112 7.1): chunk sizes, extensions and trailers may be split across
//! inputs anywhere. Lenient where real servers are sloppy (bare LF, blanks after the size, empty
//! lines before a size); strict where leniency would desynchronise (a non-hex size, a missing CRLF
//! after the data).

use memchr::memchr;

/// What one step over the input found.
#[derive(Debug, PartialEq, Eq)]
pub enum Step<'a> {
    /// Framing consumed; nothing for the body.
    Framing,
    /// Body bytes.
    Data(&'a [u8]),
    /// The last chunk and the trailers are through: the body is complete.
    Done,
    /// The framing is broken; the rest of the body is unknown.
    Error,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum State {
    /// Before or inside the hex size.
    Size,
    /// After the size: blanks, `;extension`s, up to the LF.
    Ext,
    /// Saw CR at the end of the size line.
    SizeLf,
    Data,
    /// After the data: CR LF expected.
    DataCr,
    DataLf,
    /// At the start of a trailer line (or the final empty line).
    TrailerStart,
    TrailerLine,
    TrailerLf,
    Done,
    Error,
}

#[derive(Clone, Debug)]
pub struct Dechunker {
    state: State,
    size: u64,
    digits: u8,
    /// Bytes of the current size line or of all trailers (bounded).
    framing_len: usize,
    max_framing: usize,
    /// Data bytes left in the current chunk.
    remaining: u64,
}

impl Dechunker {
    /// `max_framing`: longest size line (with extensions) and largest trailer block accepted.
    pub fn new(max_framing: usize) -> Self {
        Dechunker {
            state: State::Size,
            size: 0,
            digits: 0,
            framing_len: 0,
            max_framing,
            remaining: 0,
        }
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
            self.state = State::DataCr;
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
                    self.state = State::DataCr;
                }
                (n, Step::Data(&input[..n]))
            }
            State::Ext | State::TrailerLine => {
                // Skip to the end of the line in one go.
                let (n, eol) = match memchr(b'\n', input) {
                    Some(i) => (i + 1, true),
                    None => (input.len(), false),
                };
                self.framing_len += n;
                if self.framing_len > self.max_framing {
                    return self.fail(n);
                }
                if eol {
                    if self.state == State::Ext {
                        return self.end_size_line(n);
                    }
                    self.state = State::TrailerStart;
                }
                (n, Step::Framing)
            }
            _ => self.byte(input[0]),
        }
    }

    fn byte<'a>(&mut self, b: u8) -> (usize, Step<'a>) {
        match self.state {
            State::Size => {
                self.framing_len += 1;
                if self.framing_len > self.max_framing {
                    return self.fail(1);
                }
                match b {
                    b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F' => {
                        if self.digits >= 16 {
                            return self.fail(1); // would overflow u64
                        }
                        let v = (b as char).to_digit(16).unwrap_or(0) as u64;
                        self.size = self.size << 4 | v;
                        self.digits += 1;
                    }
                    b';' | b' ' | b'\t' if self.digits > 0 => self.state = State::Ext,
                    // Blanks before the size, and stray empty lines between chunks.
                    b' ' | b'\t' => {}
                    b'\r' => self.state = State::SizeLf,
                    b'\n' => return self.end_size_line(1),
                    _ => return self.fail(1),
                }
                (1, Step::Framing)
            }
            State::SizeLf => {
                if b != b'\n' {
                    return self.fail(1);
                }
                self.end_size_line(1)
            }
            State::DataCr => match b {
                b'\r' => {
                    self.state = State::DataLf;
                    (1, Step::Framing)
                }
                b'\n' => {
                    self.next_size();
                    (1, Step::Framing)
                }
                _ => self.fail(1),
            },
            State::DataLf => {
                if b != b'\n' {
                    return self.fail(1);
                }
                self.next_size();
                (1, Step::Framing)
            }
            State::TrailerStart => match b {
                b'\r' => {
                    self.state = State::TrailerLf;
                    (1, Step::Framing)
                }
                b'\n' => {
                    self.state = State::Done;
                    (1, Step::Done)
                }
                _ => {
                    self.state = State::TrailerLine;
                    self.framing_len += 1;
                    (1, Step::Framing)
                }
            },
            State::TrailerLf => {
                self.state = State::Done;
                if b == b'\n' {
                    (1, Step::Done)
                } else {
                    // A lone CR ends the body too; the byte belongs to what follows.
                    (0, Step::Done)
                }
            }
            State::Ext | State::TrailerLine | State::Data | State::Done | State::Error => {
                unreachable!("handled in step")
            }
        }
    }

    fn end_size_line<'a>(&mut self, used: usize) -> (usize, Step<'a>) {
        if self.digits == 0 {
            // An empty line where a size belongs: tolerated, keep looking for the size.
            self.next_size();
            return (used, Step::Framing);
        }
        if self.size == 0 {
            self.state = State::TrailerStart;
            self.framing_len = 0;
        } else {
            self.remaining = self.size;
            self.state = State::Data;
        }
        (used, Step::Framing)
    }

    fn next_size(&mut self) {
        self.state = State::Size;
        self.size = 0;
        self.digits = 0;
        self.framing_len = 0;
    }

    fn fail<'a>(&mut self, used: usize) -> (usize, Step<'a>) {
        self.state = State::Error;
        (used, Step::Error)
    }
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
        assert!(run(b"3\r\nabcX\r\n", 3).2, "missing CRLF after data");
        assert!(run(b"11111111111111111\r\n", 100).2, "size overflows u64");
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
