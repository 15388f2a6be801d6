//! Single-stream MD5.

use crate::blocks::Blocks;

/// MD5's initial state.
pub(crate) const INIT: [u32; 4] = [0x6745_2301, 0xefcd_ab89, 0x98ba_dcfe, 0x1032_5476];

macro_rules! f1 {
    ($a:ident, $b:ident, $c:ident, $d:ident, $m:expr, $k:expr, $s:expr) => {
        $a = $b.wrapping_add(
            $a.wrapping_add($d ^ ($b & ($c ^ $d)))
                .wrapping_add($m)
                .wrapping_add($k)
                .rotate_left($s),
        )
    };
}
macro_rules! g1 {
    ($a:ident, $b:ident, $c:ident, $d:ident, $m:expr, $k:expr, $s:expr) => {
        // (b & d) | (c & !d): the two halves never both have a bit set, so + is |, and the
        // additions need not wait for each other.
        $a = $b.wrapping_add(
            $a.wrapping_add($c & !$d)
                .wrapping_add($m)
                .wrapping_add($k)
                .wrapping_add($b & $d)
                .rotate_left($s),
        )
    };
}
macro_rules! h1 {
    ($a:ident, $b:ident, $c:ident, $d:ident, $m:expr, $k:expr, $s:expr) => {
        $a = $b.wrapping_add(
            $a.wrapping_add($b ^ $c ^ $d)
                .wrapping_add($m)
                .wrapping_add($k)
                .rotate_left($s),
        )
    };
}
macro_rules! i1 {
    ($a:ident, $b:ident, $c:ident, $d:ident, $m:expr, $k:expr, $s:expr) => {
        $a = $b.wrapping_add(
            $a.wrapping_add($c ^ ($b | !$d))
                .wrapping_add($m)
                .wrapping_add($k)
                .rotate_left($s),
        )
    };
}

/// Runs MD5's compression over whole 64-byte blocks; `blocks.len()` must be a multiple of 64
/// (a tail is left alone).
pub fn compress(state: &mut [u32; 4], blocks: &[u8]) {
    for block in blocks.chunks_exact(64) {
        let mut m = [0u32; 16];
        for (w, b) in m.iter_mut().zip(block.chunks_exact(4)) {
            *w = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        }
        let [mut a, mut b, mut c, mut d] = *state;
        md5_steps!(f1, g1, h1, i1, a, b, c, d, m);
        state[0] = state[0].wrapping_add(a);
        state[1] = state[1].wrapping_add(b);
        state[2] = state[2].wrapping_add(c);
        state[3] = state[3].wrapping_add(d);
    }
}

/// One stream's MD5.
#[derive(Clone, Debug)]
pub struct Md5 {
    state: [u32; 4],
    blocks: Blocks,
}

impl Default for Md5 {
    fn default() -> Self {
        Md5::new()
    }
}

impl Md5 {
    pub fn new() -> Self {
        Md5 {
            state: INIT,
            blocks: Blocks::new(),
        }
    }

    /// Continues a stream: `state` after `len - tail.len()` bytes, then `tail` (under 64 bytes)
    /// not yet compressed.
    pub(crate) fn resume(state: [u32; 4], len: u64, tail: &[u8]) -> Self {
        Md5 {
            state,
            blocks: Blocks::resume(len, tail),
        }
    }

    pub fn update(&mut self, data: &[u8]) {
        let state = &mut self.state;
        self.blocks.update(data, |blocks| compress(state, blocks));
    }

    pub fn finalize(self) -> [u8; 16] {
        finish(self.state, self.blocks.len(), self.blocks.tail())
    }

    /// The one-shot digest of `data`.
    pub fn digest(data: &[u8]) -> [u8; 16] {
        let mut h = Md5::new();
        h.update(data);
        h.finalize()
    }
}

/// Pads and finishes a stream of `len` bytes whose last `tail` bytes (under 64) are not yet
/// compressed into `state`.
pub(crate) fn finish(mut state: [u32; 4], len: u64, tail: &[u8]) -> [u8; 16] {
    let (block, end) = Blocks::resume(len, tail).padding(u64::to_le_bytes);
    compress(&mut state, &block[..end]);
    let mut out = [0u8; 16];
    for (o, w) in out.chunks_exact_mut(4).zip(state) {
        o.copy_from_slice(&w.to_le_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use md5::Digest;
    use proptest::prelude::*;

    #[test]
    fn rfc_1321_test_suite() {
        let cases: [(&str, &str); 7] = [
            ("", "d41d8cd98f00b204e9800998ecf8427e"),
            ("a", "0cc175b9c0f1b6a831c399e269772661"),
            ("abc", "900150983cd24fb0d6963f7d28e17f72"),
            ("message digest", "f96b697d7cb7938d525a2f31aaf161d0"),
            ("abcdefghijklmnopqrstuvwxyz", "c3fcd3d76192e4007dfb496cca67e13b"),
            (
                "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
                "d174ab98d277d9f5a5611c2c9f419d9f",
            ),
            (
                "12345678901234567890123456789012345678901234567890123456789012345678901234567890",
                "57edf4a22be3c955ac49da2e2107b67a",
            ),
        ];
        for (input, want) in cases {
            assert_eq!(crate::hex(&Md5::digest(input.as_bytes())), want, "{input:?}");
        }
    }

    proptest! {
        #[test]
        fn same_as_rustcrypto_whatever_the_pieces(data in proptest::collection::vec(any::<u8>(), 0..600),
                                                 cuts in proptest::collection::vec(0usize..600, 0..6)) {
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(data.len())).collect();
            cuts.sort_unstable();
            let mut h = Md5::new();
            let mut at = 0;
            for c in cuts.into_iter().chain([data.len()]) {
                h.update(&data[at..c]);
                at = c;
            }
            prop_assert_eq!(h.finalize(), <[u8; 16]>::from(md5::Md5::digest(&data)));
        }
    }
}
