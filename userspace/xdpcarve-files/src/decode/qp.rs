//! Streaming quoted-printable (RFC 2045 6.7): soft line breaks, =XX escapes split across calls.
//!
//! - `=XX` with hex digits of either case decodes to the byte;
//! - `=` followed by optional spaces/tabs and a line break (CRLF or bare LF) is a soft line break
//!   and produces nothing; `=` at the very end of the input is one too (a part's last line, whose
//!   CRLF belongs to the MIME boundary);
//! - any other `=` sequence is malformed: passed through literally and counted;
//! - spaces and tabs at the end of a line are transport padding and are deleted (RFC 2045 rule 3);
//! - hard line breaks (CRLF or LF) are kept as they are.

/// Longest run of spaces/tabs held back to see whether it ends a line. A longer run cannot be
/// transport padding of a valid QP line (76 characters at most), so it is emitted as text.
const MAX_HELD_SPACE: usize = 256;

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Pending {
    #[default]
    None,
    /// Saw `=`.
    Eq,
    /// Saw `=` and one hex digit.
    EqHex(u8),
    /// Saw `=` then spaces/tabs (held in `space`): a soft break if a line break follows.
    EqSpace,
    /// Saw a soft-break `=`[ws] and CR: a following LF is part of the break.
    SoftCr,
    /// Saw a CR in text: CRLF is a hard break (deletes held spaces), anything else is text.
    Cr,
}

#[derive(Debug, Default)]
pub struct QpDecoder {
    /// Malformed `=` sequences, passed through literally.
    pub invalid_sequences: u64,
    pending: Pending,
    /// Spaces/tabs not yet emitted: trailing whitespace is deleted if a line break follows.
    space: Vec<u8>,
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

impl QpDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn decode(&mut self, input: &[u8], out: &mut Vec<u8>) {
        out.reserve(input.len());
        let mut i = 0;
        while i < input.len() {
            let b = input[i];
            match self.pending {
                Pending::None => {
                    // Copy the run of plain bytes at once.
                    let run = input[i..]
                        .iter()
                        .position(|&c| matches!(c, b'=' | b' ' | b'\t' | b'\r' | b'\n'))
                        .unwrap_or(input.len() - i);
                    if run > 0 {
                        self.flush_space(out);
                        out.extend_from_slice(&input[i..i + run]);
                        i += run;
                        continue;
                    }
                    match b {
                        b'=' => {
                            // Spaces before '=' are protected text, not trailing whitespace.
                            self.flush_space(out);
                            self.pending = Pending::Eq;
                        }
                        b' ' | b'\t' => {
                            if self.space.len() >= MAX_HELD_SPACE {
                                self.flush_space(out);
                            }
                            self.space.push(b);
                        }
                        b'\r' => self.pending = Pending::Cr,
                        _ => {
                            // LF: hard line break; held spaces were trailing whitespace.
                            self.space.clear();
                            out.push(b'\n');
                        }
                    }
                    i += 1;
                }
                Pending::Cr => {
                    self.pending = Pending::None;
                    if b == b'\n' {
                        self.space.clear();
                        out.extend_from_slice(b"\r\n");
                        i += 1;
                    } else {
                        // A bare CR is text.
                        self.flush_space(out);
                        out.push(b'\r');
                    }
                }
                Pending::Eq => {
                    if let Some(h) = hex_val(b) {
                        self.pending = Pending::EqHex(h);
                        i += 1;
                    } else {
                        match b {
                            b'\n' => {
                                self.pending = Pending::None;
                                i += 1;
                            }
                            b'\r' => {
                                self.pending = Pending::SoftCr;
                                i += 1;
                            }
                            b' ' | b'\t' => {
                                // Spaces after '=': a soft break padded by transport, if a
                                // line break follows. Spaces before the '=' were text.
                                self.flush_space(out);
                                self.pending = Pending::EqSpace;
                                self.space.push(b);
                                i += 1;
                            }
                            _ => {
                                // "=Z": malformed, '=' passes through; Z is read again.
                                self.invalid_sequences += 1;
                                self.flush_space(out);
                                out.push(b'=');
                                self.pending = Pending::None;
                            }
                        }
                    }
                }
                Pending::EqHex(h) => {
                    self.flush_space(out);
                    self.pending = Pending::None;
                    if let Some(l) = hex_val(b) {
                        out.push(h << 4 | l);
                        i += 1;
                    } else {
                        self.invalid_sequences += 1;
                        out.extend_from_slice(&[b'=', HEX_UPPER[h as usize]]);
                        // b is read again.
                    }
                }
                Pending::EqSpace => match b {
                    b' ' | b'\t' if self.space.len() < MAX_HELD_SPACE => {
                        self.space.push(b);
                        i += 1;
                    }
                    b'\n' => {
                        self.space.clear();
                        self.pending = Pending::None;
                        i += 1;
                    }
                    b'\r' => {
                        self.space.clear();
                        self.pending = Pending::SoftCr;
                        i += 1;
                    }
                    _ => {
                        // "=  x": not a soft break; '=' and the spaces are text.
                        self.invalid_sequences += 1;
                        out.push(b'=');
                        self.flush_space(out);
                        self.pending = Pending::None;
                    }
                },
                Pending::SoftCr => {
                    self.pending = Pending::None;
                    if b == b'\n' {
                        i += 1;
                    }
                    // "=\r" then not LF: still treated as a soft break; b is read again.
                }
            }
        }
    }

    pub fn finish(&mut self, out: &mut Vec<u8>) {
        match self.pending {
            // '=' (with optional padding) at the end: soft break of the last line.
            Pending::None | Pending::Eq | Pending::EqSpace | Pending::SoftCr => {}
            Pending::EqHex(h) => {
                self.invalid_sequences += 1;
                out.extend_from_slice(&[b'=', HEX_UPPER[h as usize]]);
            }
            Pending::Cr => out.push(b'\r'),
        }
        // Whitespace at the end of the last line is trailing whitespace too.
        self.space.clear();
        self.pending = Pending::None;
    }

    /// Forgets pending state (after a gap in the input).
    pub fn reset(&mut self) {
        self.space.clear();
        self.pending = Pending::None;
    }

    fn flush_space(&mut self, out: &mut Vec<u8>) {
        if !self.space.is_empty() {
            out.extend_from_slice(&self.space);
            self.space.clear();
        }
    }
}

const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";

#[cfg(test)]
mod tests {
    use super::*;

    fn all_splits(input: &[u8]) -> (Vec<u8>, u64) {
        // One shot.
        let mut d = QpDecoder::new();
        let mut whole = Vec::new();
        d.decode(input, &mut whole);
        d.finish(&mut whole);
        let bad = d.invalid_sequences;
        // Byte at a time, and every two-piece split, must agree.
        let mut d = QpDecoder::new();
        let mut out = Vec::new();
        for b in input {
            d.decode(std::slice::from_ref(b), &mut out);
        }
        d.finish(&mut out);
        assert_eq!(
            out,
            whole,
            "byte-at-a-time differs for {:?}",
            String::from_utf8_lossy(input)
        );
        assert_eq!(d.invalid_sequences, bad);
        for cut in 0..=input.len() {
            let mut d = QpDecoder::new();
            let mut out = Vec::new();
            d.decode(&input[..cut], &mut out);
            d.decode(&input[cut..], &mut out);
            d.finish(&mut out);
            assert_eq!(out, whole, "split at {cut}");
        }
        (whole, bad)
    }

    #[test]
    fn escapes_either_case_and_soft_breaks() {
        assert_eq!(all_splits(b"caf=C3=a9 =3D ok").0, "café = ok".as_bytes());
        assert_eq!(
            all_splits(b"long li=\r\nne and=\nmore\r\nnext").0,
            b"long line andmore\r\nnext"
        );
        // Soft break with transport padding after '='.
        assert_eq!(all_splits(b"ab= \t\r\ncd").0, b"abcd");
        // '=' ending the input (part end before the boundary's CRLF).
        assert_eq!(all_splits(b"tail=").0, b"tail");
    }

    #[test]
    fn trailing_whitespace_is_deleted_inner_kept() {
        assert_eq!(all_splits(b"a b  \r\nc\t\nd ").0, b"a b\r\nc\nd");
        assert_eq!(all_splits(b"x =41").0, b"x A");
    }

    #[test]
    fn malformed_sequences_pass_through_and_count() {
        let (out, bad) = all_splits(b"=ZZ a=4 =G1 =");
        assert_eq!(out, b"=ZZ a=4 =G1 ");
        assert_eq!(bad, 3);
        let (out, bad) = all_splits(b"=4");
        assert_eq!((out.as_slice(), bad), (&b"=4"[..], 1));
        let (out, bad) = all_splits(b"= x");
        assert_eq!((out.as_slice(), bad), (&b"= x"[..], 1));
    }

    #[test]
    fn bare_cr_is_text() {
        assert_eq!(all_splits(b"a\rb\r").0, b"a\rb\r");
    }
}
