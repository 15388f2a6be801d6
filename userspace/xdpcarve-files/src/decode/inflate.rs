//! Streaming gzip / deflate (zlib or raw) for HTTP Content-Encoding, bounded against bombs.
//!
//! Input arrives in pieces of any size (TCP segments, chunks). The gzip member header (RFC 1952) is
//! parsed here byte by byte, so a header split across packets is fine; the deflate data goes
//! through flate2's [`Decompress`]. Output is produced into a fixed internal window and handed out
//! slice by slice ([`Inflater::decode_with`]), so the memory of one decoder is bounded whatever the
//! compression ratio. Browsers decode only a body's first gzip member and ignore what follows it
//! (Chromium's `STATE_IGNORING_EXTRA_BYTES`, as Firefox does); so do we, since what a browser saves
//! is what we hash. The gzip trailer is not required, but it is checked, so a damaged or missing
//! one can be reported ([`Inflater::trailer`]).

use flate2::{Crc, Decompress, FlushDecompress, Status};

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Coding {
    Gzip,
    /// "deflate": zlib-wrapped per the RFC, raw deflate in practice too; detected from the first bytes.
    Deflate,
}

impl Coding {
    /// Maps a Content-Encoding token (case-insensitive; spaces and tabs around it ignored, other
    /// bytes not, as browsers do) to a coding this decoder handles.
    pub fn from_token(token: &str) -> Option<Coding> {
        let t = token.trim_matches([' ', '\t']);
        if t.eq_ignore_ascii_case("gzip") || t.eq_ignore_ascii_case("x-gzip") {
            Some(Coding::Gzip)
        } else if t.eq_ignore_ascii_case("deflate") {
            Some(Coding::Deflate)
        } else {
            None
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum InflateError {
    /// The stream is corrupt.
    Corrupt,
    /// Output passed the byte or ratio bound.
    Limit,
}

/// Output window: decoded bytes are handed out in pieces of at most this size.
const WINDOW: usize = 32 << 10;
/// The ratio bound only applies past this much output: small, highly compressible bodies (a page
/// of spaces) legitimately pass 1000:1 and are no threat.
const RATIO_FLOOR: u64 = 1 << 20;

/// Where the decoder is in the stream.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Stage {
    /// Deflate: waiting for the first two bytes to tell zlib from raw deflate.
    Sniff,
    /// Gzip member header, fixed part (10 bytes).
    GzFixed,
    /// FEXTRA: the 2-byte length, then that many bytes.
    GzExtraLen,
    GzExtra(u16),
    /// FNAME / FCOMMENT: zero-terminated strings.
    GzName,
    GzComment,
    /// FHCRC: 2 bytes.
    GzHcrc(u8),
    /// Compressed data.
    Data,
    /// Gzip trailer (CRC32 + ISIZE, 8 bytes): checked, never required.
    GzTrailer(u8),
    /// Deflate stream ended; anything after it is ignored.
    Done,
    /// A previous error: everything is rejected.
    Failed,
}

pub struct Inflater {
    coding: Coding,
    stage: Stage,
    /// Small staging for headers that straddle inputs (gzip fixed header, zlib sniff, extra length).
    head: [u8; 10],
    head_len: usize,
    gz_flags: u8,
    z: Option<Decompress>,
    window: Box<[u8]>,
    max_out: u64,
    max_ratio: u64,
    total_in: u64,
    total_out: u64,
    /// Bytes received after the end of the compressed stream (ignored).
    pub trailing_bytes: u64,
    /// Deflate: the stream had no zlib header.
    raw_deflate: bool,
    /// Gzip: CRC-32 and size of the output, and the trailer as received.
    crc: Crc,
    trailer_bytes: [u8; 8],
}

/// What the gzip trailer said about the decoded content.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Trailer {
    /// Not gzip, or the stream has not ended yet.
    NotYet,
    /// CRC-32 and size match.
    Good,
    /// CRC-32 or size differ from the content.
    Bad,
    /// The stream ended but the trailer was cut short or missing.
    Missing,
}

impl Inflater {
    /// `max_out`: largest decoded size; `max_ratio`: largest decoded/encoded ratio (0 = unbounded),
    /// applied once the output passes 1 MiB.
    pub fn new(coding: Coding, max_out: u64, max_ratio: u64) -> Self {
        Inflater {
            coding,
            stage: match coding {
                Coding::Gzip => Stage::GzFixed,
                Coding::Deflate => Stage::Sniff,
            },
            head: [0; 10],
            head_len: 0,
            gz_flags: 0,
            z: None,
            window: vec![0u8; WINDOW].into_boxed_slice(),
            max_out,
            max_ratio,
            total_in: 0,
            total_out: 0,
            trailing_bytes: 0,
            raw_deflate: false,
            crc: Crc::new(),
            trailer_bytes: [0; 8],
        }
    }

    /// Deflate only: the stream was raw deflate, without the zlib header the RFC asks for.
    pub fn raw_deflate(&self) -> bool {
        self.raw_deflate
    }

    /// Gzip only: what the trailer said.
    pub fn trailer(&self) -> Trailer {
        match self.stage {
            Stage::GzTrailer(_) => Trailer::Missing,
            Stage::Done if self.coding == Coding::Gzip => {
                let crc = u32::from_le_bytes([
                    self.trailer_bytes[0],
                    self.trailer_bytes[1],
                    self.trailer_bytes[2],
                    self.trailer_bytes[3],
                ]);
                let size = u32::from_le_bytes([
                    self.trailer_bytes[4],
                    self.trailer_bytes[5],
                    self.trailer_bytes[6],
                    self.trailer_bytes[7],
                ]);
                if crc == self.crc.sum() && size == self.crc.amount() {
                    Trailer::Good
                } else {
                    Trailer::Bad
                }
            }
            _ => Trailer::NotYet,
        }
    }

    pub fn coding(&self) -> Coding {
        self.coding
    }
    /// Decoded bytes produced so far.
    pub fn total_out(&self) -> u64 {
        self.total_out
    }
    /// True once the compressed stream ended (the final deflate block was seen). A gzip trailer
    /// cut short does not count against it: every byte of content was already decoded.
    pub fn is_finished(&self) -> bool {
        matches!(self.stage, Stage::Done | Stage::GzTrailer(_))
    }

    /// Decodes `input`, appending to `out`.
    pub fn decode(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<(), InflateError> {
        self.decode_with(input, |d| out.extend_from_slice(d))
    }

    /// Decodes `input`, handing each decoded piece to `sink` (at most 32 KiB at a time). On an
    /// error, the pieces already handed out are valid; the decoder rejects everything after.
    pub fn decode_with(&mut self, mut input: &[u8], mut sink: impl FnMut(&[u8])) -> Result<(), InflateError> {
        if self.stage == Stage::Failed {
            return Err(InflateError::Corrupt);
        }
        self.total_in += input.len() as u64;
        while !input.is_empty() {
            let used = match self.stage {
                Stage::Failed => return Err(InflateError::Corrupt),
                Stage::Done => {
                    self.trailing_bytes += input.len() as u64;
                    input.len()
                }
                Stage::Sniff => {
                    self.head[self.head_len] = input[0];
                    self.head_len += 1;
                    if self.head_len == 2 {
                        let (cmf, flg) = (self.head[0], self.head[1]);
                        let zlib = cmf & 0x0f == 8 && cmf >> 4 <= 7 && (u16::from(cmf) << 8 | u16::from(flg)) % 31 == 0;
                        self.z = Some(Decompress::new(zlib));
                        self.raw_deflate = !zlib;
                        self.stage = Stage::Data;
                        self.head_len = 0;
                        let head = [cmf, flg];
                        if let Err(e) = self.inflate(&head, &mut sink) {
                            self.stage = Stage::Failed;
                            return Err(e);
                        }
                    }
                    1
                }
                Stage::Data => match self.inflate(input, &mut sink) {
                    Ok(n) => n,
                    Err(e) => {
                        self.stage = Stage::Failed;
                        return Err(e);
                    }
                },
                _ => match self.header_byte(input[0]) {
                    Ok(()) => 1,
                    Err(e) => {
                        self.stage = Stage::Failed;
                        return Err(e);
                    }
                },
            };
            input = &input[used..];
        }
        Ok(())
    }

    /// One byte of framing outside the deflate data. Headers are tiny, so byte steps cost nothing.
    fn header_byte(&mut self, b: u8) -> Result<(), InflateError> {
        match self.stage {
            Stage::GzFixed => {
                self.head[self.head_len] = b;
                self.head_len += 1;
                let ok = match self.head_len {
                    1 => b == 0x1f,
                    2 => b == 0x8b,
                    3 => b == 8, // CM = deflate
                    // Reserved flag bits are ignored, as browsers ignore them.
                    _ => true,
                };
                if !ok {
                    return Err(InflateError::Corrupt);
                }
                if self.head_len == 10 {
                    self.gz_flags = self.head[3] & (FEXTRA | FNAME | FCOMMENT | FHCRC);
                    self.head_len = 0;
                    self.next_gz_field(0);
                }
            }
            Stage::GzExtraLen => {
                self.head[self.head_len] = b;
                self.head_len += 1;
                if self.head_len == 2 {
                    let len = u16::from_le_bytes([self.head[0], self.head[1]]);
                    self.head_len = 0;
                    if len == 0 {
                        self.next_gz_field(FEXTRA);
                    } else {
                        self.stage = Stage::GzExtra(len);
                    }
                }
            }
            Stage::GzExtra(left) => {
                if left <= 1 {
                    self.next_gz_field(FEXTRA);
                } else {
                    self.stage = Stage::GzExtra(left - 1);
                }
            }
            Stage::GzName => {
                if b == 0 {
                    self.next_gz_field(FNAME);
                }
            }
            Stage::GzComment => {
                if b == 0 {
                    self.next_gz_field(FCOMMENT);
                }
            }
            Stage::GzHcrc(n) => {
                if n == 0 {
                    self.stage = Stage::GzHcrc(1);
                } else {
                    self.next_gz_field(FHCRC);
                }
            }
            Stage::GzTrailer(n) => {
                self.trailer_bytes[usize::from(n)] = b;
                self.stage = if n == 7 { Stage::Done } else { Stage::GzTrailer(n + 1) };
            }
            Stage::Sniff | Stage::Data | Stage::Done | Stage::Failed => unreachable!("handled by decode_with"),
        }
        Ok(())
    }

    /// Moves to the next optional gzip header field after `done` (its flag bit; 0 right after the
    /// fixed header), or to the data. Fields come in flag order: FEXTRA, FNAME, FCOMMENT, FHCRC.
    fn next_gz_field(&mut self, done: u8) {
        self.gz_flags &= !done;
        let pending = self.gz_flags;
        self.stage = if pending & FEXTRA != 0 {
            Stage::GzExtraLen
        } else if pending & FNAME != 0 {
            Stage::GzName
        } else if pending & FCOMMENT != 0 {
            Stage::GzComment
        } else if pending & FHCRC != 0 {
            Stage::GzHcrc(0)
        } else {
            self.z = Some(Decompress::new(false));
            Stage::Data
        };
    }

    /// Feeds deflate data; returns how many input bytes were consumed.
    fn inflate(&mut self, input: &[u8], sink: &mut impl FnMut(&[u8])) -> Result<usize, InflateError> {
        let Some(z) = self.z.as_mut() else {
            return Err(InflateError::Corrupt);
        };
        let room = self.max_out.saturating_sub(self.total_out);
        let ratio_cap = if self.max_ratio == 0 {
            u64::MAX
        } else {
            self.total_in
                .saturating_mul(self.max_ratio)
                .max(RATIO_FLOOR)
                .saturating_sub(self.total_out)
        };
        let cap = room.min(ratio_cap);
        let mut produced = 0u64;
        let mut over = false;
        let gzip = self.coding == Coding::Gzip;
        let crc = &mut self.crc;
        let (used, _, ended) = Self::run(z, input, &mut self.window, |d| {
            let keep = (d.len() as u64).min(cap.saturating_sub(produced)) as usize;
            if keep > 0 {
                if gzip {
                    crc.update(&d[..keep]);
                }
                sink(&d[..keep]);
            }
            if keep < d.len() {
                over = true;
            }
            produced += keep as u64;
        })?;
        self.total_out += produced;
        if over {
            return Err(InflateError::Limit);
        }
        if ended {
            self.z = None;
            self.stage = match self.coding {
                Coding::Gzip => Stage::GzTrailer(0),
                Coding::Deflate => Stage::Done,
            };
        }
        Ok(used)
    }

    /// Runs the decompressor over `input` until it is consumed or the stream ends, emitting each
    /// filled window. Returns (input used, bytes produced, stream ended).
    fn run(
        z: &mut Decompress,
        input: &[u8],
        window: &mut [u8],
        mut emit: impl FnMut(&[u8]),
    ) -> Result<(usize, u64, bool), InflateError> {
        let mut used = 0usize;
        let mut produced = 0u64;
        loop {
            let (in0, out0) = (z.total_in(), z.total_out());
            let status = z
                .decompress(&input[used..], window, FlushDecompress::None)
                .map_err(|_| InflateError::Corrupt)?;
            let took = (z.total_in() - in0) as usize;
            let made = (z.total_out() - out0) as usize;
            used += took;
            produced += made as u64;
            if made > 0 {
                emit(&window[..made]);
            }
            match status {
                Status::StreamEnd => return Ok((used, produced, true)),
                // No progress possible: all input consumed and the window was not filled.
                Status::BufError => return Ok((used, produced, false)),
                Status::Ok => {
                    if used == input.len() && made < window.len() {
                        return Ok((used, produced, false));
                    }
                    if took == 0 && made == 0 {
                        return Ok((used, produced, false));
                    }
                }
            }
        }
    }
}

const FHCRC: u8 = 0x02;
const FEXTRA: u8 = 0x04;
const FNAME: u8 = 0x08;
const FCOMMENT: u8 = 0x10;

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::write::{DeflateEncoder, GzEncoder, ZlibEncoder};
    use flate2::{Compression, GzBuilder};
    use std::io::Write;

    fn sample() -> Vec<u8> {
        (0..200_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8 % 7 + b'a')
            .collect()
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = GzEncoder::new(Vec::new(), Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn decode_in_pieces(coding: Coding, enc: &[u8], piece: usize) -> Result<Vec<u8>, InflateError> {
        let mut d = Inflater::new(coding, u64::MAX, 0);
        let mut out = Vec::new();
        for p in enc.chunks(piece) {
            d.decode(p, &mut out)?;
        }
        Ok(out)
    }

    #[test]
    fn gzip_any_split() {
        let data = sample();
        let enc = gzip(&data);
        for piece in [1, 2, 3, 7, 10, 11, 1460, enc.len()] {
            assert_eq!(
                decode_in_pieces(Coding::Gzip, &enc, piece).unwrap(),
                data,
                "piece {piece}"
            );
        }
    }

    #[test]
    fn gzip_optional_header_fields() {
        let data = b"hello with a gzip header full of options".to_vec();
        let mut e = GzBuilder::new()
            .filename("name.txt")
            .comment("a comment")
            .extra(vec![1, 2, 3, 4, 5])
            .write(Vec::new(), Compression::best());
        e.write_all(&data).unwrap();
        let mut enc = e.finish().unwrap();
        // Set FHCRC by hand (flate2 does not write it): flag bit + 2 bytes after the comment.
        let hdr_end = 10 + 2 + 5 + "name.txt".len() + 1 + "a comment".len() + 1;
        enc[3] |= FHCRC;
        enc.splice(hdr_end..hdr_end, [0xaa, 0xbb]);
        for piece in [1, 3, enc.len()] {
            assert_eq!(decode_in_pieces(Coding::Gzip, &enc, piece).unwrap(), data);
        }
    }

    #[test]
    fn only_the_first_gzip_member_is_the_content_as_in_browsers() {
        let mut enc = gzip(b"first ");
        enc.extend(gzip(b"second"));
        assert_eq!(decode_in_pieces(Coding::Gzip, &enc, 5).unwrap(), b"first ");
    }

    #[test]
    fn gzip_trailer_is_checked_not_required() {
        let enc = gzip(&sample());
        let run = |enc: &[u8]| {
            let mut d = Inflater::new(Coding::Gzip, u64::MAX, 0);
            let mut out = Vec::new();
            d.decode(enc, &mut out).unwrap();
            (out, d.trailer())
        };
        assert_eq!(run(&enc), (sample(), Trailer::Good));
        let mut bad = enc.clone();
        let n = bad.len();
        bad[n - 6] ^= 0xff;
        assert_eq!(run(&bad), (sample(), Trailer::Bad));
        assert_eq!(run(&enc[..n - 3]), (sample(), Trailer::Missing));
        assert_eq!(run(&enc[..n - 8]), (sample(), Trailer::Missing));
    }

    #[test]
    fn deflate_zlib_and_raw() {
        let data = sample();
        let mut z = ZlibEncoder::new(Vec::new(), Compression::default());
        z.write_all(&data).unwrap();
        let zlib = z.finish().unwrap();
        let mut r = DeflateEncoder::new(Vec::new(), Compression::default());
        r.write_all(&data).unwrap();
        let raw = r.finish().unwrap();
        for piece in [1, 2, 999] {
            assert_eq!(decode_in_pieces(Coding::Deflate, &zlib, piece).unwrap(), data);
            assert_eq!(decode_in_pieces(Coding::Deflate, &raw, piece).unwrap(), data);
        }
    }

    #[test]
    fn corrupt_is_an_error_not_a_panic() {
        assert_eq!(
            decode_in_pieces(Coding::Gzip, b"not gzip at all", 4),
            Err(InflateError::Corrupt)
        );
        let mut enc = gzip(&sample());
        for b in &mut enc[20..60] {
            *b ^= 0x5a;
        }
        assert_eq!(decode_in_pieces(Coding::Gzip, &enc, 100), Err(InflateError::Corrupt));
        // After an error everything is rejected.
        let mut d = Inflater::new(Coding::Gzip, u64::MAX, 0);
        assert!(d.decode(b"xx", &mut Vec::new()).is_err());
        assert!(d.decode(&gzip(b"ok"), &mut Vec::new()).is_err());
    }

    #[test]
    fn byte_bound_stops_output_exactly() {
        let enc = gzip(&vec![0u8; 10 << 20]);
        let mut d = Inflater::new(Coding::Gzip, 100_000, 0);
        let mut out = Vec::new();
        let mut err = None;
        for p in enc.chunks(512) {
            if let Err(e) = d.decode(p, &mut out) {
                err = Some(e);
                break;
            }
        }
        assert_eq!(err, Some(InflateError::Limit));
        assert_eq!(out.len(), 100_000);
    }

    #[test]
    fn ratio_bound_catches_a_bomb() {
        // 64 MiB of zeros compress to ~64 KiB: a 1000:1 bomb.
        let enc = gzip(&vec![0u8; 64 << 20]);
        let mut d = Inflater::new(Coding::Gzip, u64::MAX, 100);
        let mut produced = 0u64;
        let mut err = None;
        for p in enc.chunks(1460) {
            if let Err(e) = d.decode_with(p, |s| produced += s.len() as u64) {
                err = Some(e);
                break;
            }
        }
        assert_eq!(err, Some(InflateError::Limit));
        assert!((RATIO_FLOOR..8 << 20).contains(&produced), "produced {produced}");
    }

    #[test]
    fn trailing_garbage_after_stream_is_ignored() {
        let mut enc = gzip(b"payload");
        enc.extend_from_slice(b"\r\n");
        let mut d = Inflater::new(Coding::Gzip, u64::MAX, 0);
        let mut out = Vec::new();
        d.decode(&enc, &mut out).unwrap();
        assert_eq!(out, b"payload");
        assert!(d.is_finished());
    }

    #[test]
    fn finished_only_after_the_final_block() {
        let enc = gzip(&sample());
        let mut d = Inflater::new(Coding::Gzip, u64::MAX, 0);
        d.decode(&enc[..enc.len() / 2], &mut Vec::new()).unwrap();
        assert!(!d.is_finished());
        d.decode(&enc[enc.len() / 2..enc.len() - 4], &mut Vec::new()).unwrap();
        assert!(d.is_finished(), "a cut trailer does not hide a complete body");
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            /// Valid gzip, fed in pieces of any size, inflates to what was compressed (flate2
            /// made it: the reference), and arbitrary bytes never panic.
            #[test]
            fn inflates_what_flate2_compressed_however_split(
                data in proptest::collection::vec(any::<u8>(), 0..20_000),
                piece in 1usize..5000,
                noise in proptest::collection::vec(any::<u8>(), 0..2000),
            ) {
                let enc = gzip(&data);
                prop_assert_eq!(decode_in_pieces(Coding::Gzip, &enc, piece).unwrap(), data);
                let _ = decode_in_pieces(Coding::Gzip, &noise, piece);
                let _ = decode_in_pieces(Coding::Deflate, &noise, piece);
            }
        }
    }
}
