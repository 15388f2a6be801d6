//! Streaming, whitespace-tolerant base64 (MIME bodies). Invalid characters are skipped and counted.
//!
//! Behaviour where RFC 2045 leaves room:
//! - line breaks and other whitespace are ignored wherever they appear (any line length);
//! - characters outside the alphabet are skipped and counted in `invalid_chars`;
//! - `=` completes the current quantum (2 or 3 sextets give 1 or 2 bytes); further `=` are
//!   swallowed; base64 that follows padding starts a new quantum (concatenated encodings, as some
//!   mailers produce). A stray `=` that cannot be padding (quantum of 0 or 1 sextets) is counted;
//! - a final quantum without padding is flushed by [`Base64Decoder::finish`]; a lone sextet
//!   carries less than a byte and is counted as invalid.

/// Sextet value of each byte, or a class marker.
const INVALID: u8 = 0xff;
const SPACE: u8 = 0xfe;
const PAD: u8 = 0xfd;

const TABLE: [u8; 256] = {
    let mut t = [INVALID; 256];
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut i = 0;
    while i < 64 {
        t[alphabet[i] as usize] = i as u8;
        i += 1;
    }
    t[b' ' as usize] = SPACE;
    t[b'\t' as usize] = SPACE;
    t[b'\r' as usize] = SPACE;
    t[b'\n' as usize] = SPACE;
    t[0x0b] = SPACE;
    t[0x0c] = SPACE;
    t[b'=' as usize] = PAD;
    t
};

#[derive(Debug, Default)]
pub struct Base64Decoder {
    /// Characters outside the alphabet that were skipped.
    pub invalid_chars: u64,
    /// Sextets of the quantum in progress, packed from the top.
    acc: u32,
    /// How many sextets `acc` holds (0..=3).
    n: u8,
}

impl Base64Decoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Decodes `input`, appending to `out`; carries an incomplete quantum to the next call.
    pub fn decode(&mut self, input: &[u8], out: &mut Vec<u8>) {
        out.reserve(input.len() / 4 * 3 + 3);
        let (mut acc, mut n) = (self.acc, self.n);
        let mut rest = input;
        // Fast path: whole groups of 4 valid characters when no quantum is pending. MIME lines
        // are multiples of 4 characters, so this covers nearly all of a body.
        loop {
            if n == 0 {
                while rest.len() >= 4 {
                    let (a, b, c, d) = (
                        TABLE[rest[0] as usize],
                        TABLE[rest[1] as usize],
                        TABLE[rest[2] as usize],
                        TABLE[rest[3] as usize],
                    );
                    if (a | b | c | d) & 0xc0 != 0 {
                        break;
                    }
                    let v = (a as u32) << 18 | (b as u32) << 12 | (c as u32) << 6 | d as u32;
                    out.extend_from_slice(&[(v >> 16) as u8, (v >> 8) as u8, v as u8]);
                    rest = &rest[4..];
                }
            }
            let Some((&byte, tail)) = rest.split_first() else { break };
            rest = tail;
            match TABLE[byte as usize] {
                SPACE => {}
                PAD => {
                    // Padding ends the quantum: emit what the sextets so far carry.
                    match n {
                        2 => out.push((acc >> 16) as u8),
                        3 => out.extend_from_slice(&[(acc >> 16) as u8, (acc >> 8) as u8]),
                        0 => {} // extra '=' after a completed quantum
                        _ => self.invalid_chars += 1,
                    }
                    acc = 0;
                    n = 0;
                }
                INVALID => self.invalid_chars += 1,
                v => {
                    acc |= (v as u32) << (18 - 6 * n as u32);
                    n += 1;
                    if n == 4 {
                        out.extend_from_slice(&[(acc >> 16) as u8, (acc >> 8) as u8, acc as u8]);
                        acc = 0;
                        n = 0;
                    }
                }
            }
        }
        self.acc = acc;
        self.n = n;
    }

    /// Flushes a final incomplete quantum (missing padding is tolerated).
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        match self.n {
            2 => out.push((self.acc >> 16) as u8),
            3 => out.extend_from_slice(&[(self.acc >> 16) as u8, (self.acc >> 8) as u8]),
            1 => self.invalid_chars += 1,
            _ => {}
        }
        self.acc = 0;
        self.n = 0;
    }

    /// Forgets a partial quantum (after a gap in the input: alignment is lost).
    pub fn reset(&mut self) {
        self.acc = 0;
        self.n = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    fn decode_in(chunks: &[&[u8]]) -> (Vec<u8>, u64) {
        let mut d = Base64Decoder::new();
        let mut out = Vec::new();
        for c in chunks {
            d.decode(c, &mut out);
        }
        d.finish(&mut out);
        (out, d.invalid_chars)
    }

    /// Deterministic pseudo-random bytes.
    fn noise(len: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    fn mime_wrap(encoded: &str, line: usize) -> Vec<u8> {
        let mut v = Vec::new();
        for chunk in encoded.as_bytes().chunks(line) {
            v.extend_from_slice(chunk);
            v.extend_from_slice(b"\r\n");
        }
        v
    }

    #[test]
    fn matches_oracle_byte_at_a_time_any_line_length() {
        let eng = base64::engine::general_purpose::STANDARD;
        for len in [0usize, 1, 2, 3, 4, 5, 57, 58, 59, 1000, 4099] {
            let data = noise(len, len as u64 + 7);
            let enc = eng.encode(&data);
            for line in [1usize, 3, 76, 77, 1000] {
                let wrapped = mime_wrap(&enc, line);
                let bytes: Vec<&[u8]> = wrapped.chunks(1).collect();
                let (out, bad) = decode_in(&bytes);
                assert_eq!(out, data, "len {len} line {line}");
                assert_eq!(bad, 0);
                // Odd split sizes too.
                let (out, _) = decode_in(&wrapped.chunks(7).collect::<Vec<_>>());
                assert_eq!(out, data);
            }
        }
    }

    #[test]
    fn missing_padding_is_tolerated() {
        assert_eq!(decode_in(&[b"QUJD", b"RA"]).0, b"ABCD");
        assert_eq!(decode_in(&[b"QUJDRE"]).0, b"ABCD");
        assert_eq!(decode_in(&[b"QUJDREU"]).0, b"ABCDE");
    }

    #[test]
    fn invalid_characters_are_skipped_and_counted() {
        let (out, bad) = decode_in(&[b"QU*JD\x00RA!=="]);
        assert_eq!(out, b"ABCD");
        assert_eq!(bad, 3);
        // A lone trailing sextet carries no byte.
        let (out, bad) = decode_in(&[b"QUJDR"]);
        assert_eq!((out.as_slice(), bad), (&b"ABC"[..], 1));
    }

    #[test]
    fn data_after_padding_starts_a_new_quantum() {
        // "QQ==" is "A", "Qg==" is "B": concatenated encodings.
        assert_eq!(decode_in(&[b"QQ==\r\nQg=", b"="]).0, b"AB");
        // Padding split across calls, then more data.
        assert_eq!(decode_in(&[b"QUI", b"=", b"QUJD"]).0, b"ABABC");
        // A stray '=' at a quantum start is swallowed; one after a single sextet is counted.
        assert_eq!(decode_in(&[b"=QUJD"]), (b"ABC".to_vec(), 0));
        assert_eq!(decode_in(&[b"Q=QUJD"]).1, 1);
    }

    #[test]
    fn garbage_never_panics() {
        let junk = noise(10_000, 99);
        let (out, _) = decode_in(&junk.chunks(13).collect::<Vec<_>>());
        assert!(out.len() <= junk.len());
    }
}
