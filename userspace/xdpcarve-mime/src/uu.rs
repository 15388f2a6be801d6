//! Streaming uudecoding (`Content-Transfer-Encoding: x-uuencode`), as Python's `email` and mail
//! clients decode it: lines up to `begin <octal mode> <name>` are skipped, each line after it
//! carries `(first char - 32) & 63` bytes in groups of four characters, and `end` (or an empty
//! line) ends the data. Lines are bounded; a body whose first line is not `begin` is passed through
//! as it is (nothing to decode), so no content is lost.

/// Longest line looked at; uuencoded lines have 61 characters.
const MAX_LINE: usize = 1024;

#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
enum State {
    /// Before the `begin` line.
    #[default]
    Begin,
    Data,
    /// After `end`: the rest is ignored.
    End,
    /// No `begin` line came first: bytes pass through.
    Raw,
}

#[derive(Debug, Default)]
pub struct UuDecoder {
    state: State,
    /// The line being assembled (with its line break), bounded by `MAX_LINE`.
    line: Vec<u8>,
    overlong: bool,
}

impl UuDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn decode(&mut self, mut input: &[u8], out: &mut Vec<u8>) {
        while !input.is_empty() {
            if self.state == State::Raw {
                out.extend_from_slice(input);
                return;
            }
            let (piece, complete) = match memchr::memchr(b'\n', input) {
                Some(i) => (&input[..=i], true),
                None => (input, false),
            };
            input = &input[piece.len()..];
            if self.line.len() + piece.len() > MAX_LINE {
                self.overlong = true;
            }
            if !self.overlong {
                self.line.extend_from_slice(piece);
            } else if self.state == State::Begin {
                // Not uuencode: pass everything through.
                self.state = State::Raw;
                out.extend_from_slice(&self.line);
                out.extend_from_slice(piece);
                self.line.clear();
                continue;
            }
            if complete {
                self.line_done(out);
            }
        }
    }

    pub fn finish(&mut self, out: &mut Vec<u8>) {
        if !self.line.is_empty() {
            self.line_done(out);
        }
    }

    /// Forgets a partial line (after a gap in the input).
    pub fn reset(&mut self) {
        self.line.clear();
        self.overlong = false;
    }

    fn line_done(&mut self, out: &mut Vec<u8>) {
        let raw = std::mem::take(&mut self.line);
        let overlong = std::mem::replace(&mut self.overlong, false);
        let text = raw.strip_suffix(b"\n").unwrap_or(&raw);
        let text = text.strip_suffix(b"\r").unwrap_or(text);
        match self.state {
            State::Begin if text.trim_ascii().is_empty() => {}
            State::Begin => {
                let mode = text
                    .strip_prefix(b"begin ")
                    .and_then(|r| r.split(|&b| b == b' ').next());
                if mode.is_some_and(|m| !m.is_empty() && m.iter().all(|b| (b'0'..=b'7').contains(b))) {
                    self.state = State::Data;
                } else {
                    self.state = State::Raw;
                    out.extend_from_slice(&raw);
                }
            }
            // An overlong line is no uuencoded line: skipped.
            State::Data if overlong => {}
            State::Data if text.is_empty() || text.trim_ascii() == b"end" => self.state = State::End,
            State::Data => decode_line(text, out),
            State::End | State::Raw => {}
        }
        self.line = raw;
        self.line.clear();
    }
}

fn decode_line(line: &[u8], out: &mut Vec<u8>) {
    let Some((&len, chars)) = line.split_first() else {
        return;
    };
    let mut want = (len.wrapping_sub(32) & 63) as usize;
    let sextet = |i: usize| chars.get(i).map_or(0, |&c| (c.wrapping_sub(32) & 63) as u32);
    let mut i = 0;
    while want > 0 {
        let v = sextet(i) << 18 | sextet(i + 1) << 12 | sextet(i + 2) << 6 | sextet(i + 3);
        let bytes = v.to_be_bytes();
        let n = want.min(3);
        out.extend_from_slice(&bytes[1..1 + n]);
        want -= n;
        i += 4;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(chunks: &[&[u8]]) -> Vec<u8> {
        let mut d = UuDecoder::new();
        let mut out = Vec::new();
        for c in chunks {
            d.decode(c, &mut out);
        }
        d.finish(&mut out);
        out
    }

    #[test]
    fn decodes_begin_data_end_in_any_split() {
        // "Cat" and "ABCDEFGH"; the data after `end` is ignored.
        let text = b"\r\nbegin 644 a.txt\r\n#0V%T\r\n(04)#1$5&1T@`\r\n`\r\nend\r\nignored\r\n";
        assert_eq!(decode(&[text]), b"CatABCDEFGH");
        let bytes: Vec<&[u8]> = text.chunks(1).collect();
        assert_eq!(decode(&bytes), b"CatABCDEFGH");
        // Bare LF lines and a missing `end`.
        assert_eq!(decode(&[b"begin 600 x\n#0V%T\n"]), b"Cat");
    }

    #[test]
    fn without_begin_the_bytes_pass_through() {
        assert_eq!(decode(&[b"not uuencoded\r\n", b"more"]), b"not uuencoded\r\nmore");
        let long = vec![b'x'; 5000];
        assert_eq!(decode(&[&long]), long);
    }

    #[test]
    fn hostile_lines_stay_bounded() {
        let mut d = UuDecoder::new();
        let mut out = Vec::new();
        d.decode(b"begin 644 x\r\n", &mut out);
        for _ in 0..100 {
            d.decode(&[b'M'; 4096], &mut out);
        }
        d.decode(b"\r\n#0V%T\r\n", &mut out);
        d.finish(&mut out);
        assert_eq!(out, b"Cat");
        assert!(d.line.capacity() <= 2 * MAX_LINE + 4096);
    }
}
