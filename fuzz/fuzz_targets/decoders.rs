//! The content decoders on any bytes, fed in pieces: base64, quoted-printable, gzip and
//! deflate (with bounds on output and ratio). The first byte picks the decoder and the piece
//! size. No panic, and inflated output never exceeds its bound.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xdpcarve_files::decode::base64::Base64Decoder;
use xdpcarve_files::decode::inflate::{Coding, Inflater};
use xdpcarve_files::decode::qp::QpDecoder;

const MAX_OUT: u64 = 1 << 20;

fuzz_target!(|data: &[u8]| {
    let Some((&sel, input)) = data.split_first() else {
        return;
    };
    let piece = 1 + (sel as usize >> 2) * 7;
    let mut out = Vec::new();
    match sel & 3 {
        0 => {
            let mut d = Base64Decoder::new();
            for p in input.chunks(piece) {
                d.decode(p, &mut out);
            }
            d.finish(&mut out);
            assert!(out.len() <= input.len());
        }
        1 => {
            let mut d = QpDecoder::new();
            for p in input.chunks(piece) {
                d.decode(p, &mut out);
            }
            d.finish(&mut out);
            assert!(out.len() <= input.len());
        }
        c => {
            let coding = if c == 2 { Coding::Gzip } else { Coding::Deflate };
            let mut d = Inflater::new(coding, MAX_OUT, 1000);
            for p in input.chunks(piece) {
                if d.decode(p, &mut out).is_err() {
                    break;
                }
            }
            assert!(
                out.len() as u64 <= MAX_OUT,
                "inflated {} bytes past the bound",
                out.len()
            );
        }
    }
});
