//! MD5 and SHA-256 of one stream in one pass ("stitched"): four MD5 steps beside every four
//! SHA-NI SHA-256 rounds. MD5 is one long chain of dependent scalar operations and leaves most of
//! a core idle; SHA-NI's rounds run on other execution units, so interleaved the pair costs
//! little more than MD5 alone (`xdpcarve-bench --hash-speeds`).

// Pointer loads and stores are the kernel's only unsafe operations.
#![allow(unsafe_code)]

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

use crate::blocks::Blocks;
use crate::sha256::Sha256;
use crate::single::{self, Md5};

/// MD5's step constants (RFC 1321), its shifts per round, and the message word of each step.
const K: [u32; 64] = [
    0xd76aa478, 0xe8c7b756, 0x242070db, 0xc1bdceee, 0xf57c0faf, 0x4787c62a, 0xa8304613, 0xfd469501, 0x698098d8,
    0x8b44f7af, 0xffff5bb1, 0x895cd7be, 0x6b901122, 0xfd987193, 0xa679438e, 0x49b40821, 0xf61e2562, 0xc040b340,
    0x265e5a51, 0xe9b6c7aa, 0xd62f105d, 0x02441453, 0xd8a1e681, 0xe7d3fbc8, 0x21e1cde6, 0xc33707d6, 0xf4d50d87,
    0x455a14ed, 0xa9e3e905, 0xfcefa3f8, 0x676f02d9, 0x8d2a4c8a, 0xfffa3942, 0x8771f681, 0x6d9d6122, 0xfde5380c,
    0xa4beea44, 0x4bdecfa9, 0xf6bb4b60, 0xbebfbc70, 0x289b7ec6, 0xeaa127fa, 0xd4ef3085, 0x04881d05, 0xd9d4d039,
    0xe6db99e5, 0x1fa27cf8, 0xc4ac5665, 0xf4292244, 0x432aff97, 0xab9423a7, 0xfc93a039, 0x655b59c3, 0x8f0ccc92,
    0xffeff47d, 0x85845dd1, 0x6fa87e4f, 0xfe2ce6e0, 0xa3014314, 0x4e0811a1, 0xf7537e82, 0xbd3af235, 0x2ad7d2bb,
    0xeb86d391,
];
const S: [u32; 16] = [7, 12, 17, 22, 5, 9, 14, 20, 4, 11, 16, 23, 6, 10, 15, 21];
const MI: [usize; 64] = {
    let mut m = [0usize; 64];
    let mut i = 0;
    while i < 64 {
        m[i] = match i / 16 {
            0 => i,
            1 => (5 * i + 1) % 16,
            2 => (3 * i + 5) % 16,
            _ => (7 * i) % 16,
        };
        i += 1;
    }
    m
};

macro_rules! step {
    ($i:expr, $a:ident, $b:ident, $c:ident, $d:ident, $m:ident) => {{
        let f = match $i / 16 {
            0 => $d ^ ($b & ($c ^ $d)),
            1 => $c ^ ($d & ($b ^ $c)),
            2 => $b ^ $c ^ $d,
            _ => $c ^ ($b | !$d),
        };
        $a = $b.wrapping_add(
            $a.wrapping_add(f)
                .wrapping_add($m[MI[$i]])
                .wrapping_add(K[$i])
                .rotate_left(S[($i / 16) * 4 + $i % 4]),
        );
    }};
}
macro_rules! quad {
    ($i:expr, $a:ident, $b:ident, $c:ident, $d:ident, $m:ident) => {{
        step!($i, $a, $b, $c, $d, $m);
        step!($i + 1, $d, $a, $b, $c, $m);
        step!($i + 2, $c, $d, $a, $b, $m);
        step!($i + 3, $b, $c, $d, $a, $m);
    }};
}

/// SHA-256's round constants, four a group, in the order `_mm_set_epi32` takes them.
const K32X4: [[u32; 4]; 16] = {
    const K32: [u32; 64] = [
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5, 0xd807aa98,
        0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786,
        0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8,
        0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
        0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819,
        0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a,
        0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
        0xc67178f2,
    ];
    let mut out = [[0u32; 4]; 16];
    let mut i = 0;
    while i < 16 {
        out[i] = [K32[4 * i + 3], K32[4 * i + 2], K32[4 * i + 1], K32[4 * i]];
        i += 1;
    }
    out
};

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
fn schedule(v0: __m128i, v1: __m128i, v2: __m128i, v3: __m128i) -> __m128i {
    let t1 = _mm_sha256msg1_epu32(v0, v1);
    let t2 = _mm_alignr_epi8(v3, v2, 4);
    let t3 = _mm_add_epi32(t1, t2);
    _mm_sha256msg2_epu32(t3, v3)
}
macro_rules! rounds4 {
    ($abef:ident, $cdgh:ident, $rest:expr, $i:expr) => {{
        let k = K32X4[$i];
        let kv = _mm_set_epi32(k[0] as i32, k[1] as i32, k[2] as i32, k[3] as i32);
        let t1 = _mm_add_epi32($rest, kv);
        $cdgh = _mm_sha256rnds2_epu32($cdgh, $abef, t1);
        let t2 = _mm_shuffle_epi32(t1, 0x0E);
        $abef = _mm_sha256rnds2_epu32($abef, $cdgh, t2);
    }};
}
macro_rules! sr4 {
    ($abef:ident, $cdgh:ident, $w0:expr, $w1:expr, $w2:expr, $w3:expr, $w4:expr, $i:expr) => {{
        $w4 = schedule($w0, $w1, $w2, $w3);
        rounds4!($abef, $cdgh, $w4, $i);
    }};
}

/// # Safety
/// The CPU must have SHA-NI, SSE2, SSSE3 and SSE4.1.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
unsafe fn md5_sha256_shani(md5: &mut [u32; 4], sha: &mut [u32; 8], blocks: &[u8]) {
    let mask: __m128i = _mm_set_epi64x(0x0C0D_0E0F_0809_0A0Bu64 as i64, 0x0405_0607_0001_0203u64 as i64);
    // SAFETY: `sha` is 32 readable bytes, two unaligned 16-byte loads.
    let (dcba, efgh) = unsafe {
        (
            _mm_loadu_si128(sha.as_ptr().cast()),
            _mm_loadu_si128(sha.as_ptr().add(4).cast()),
        )
    };
    let cdab = _mm_shuffle_epi32(dcba, 0xB1);
    let efgh = _mm_shuffle_epi32(efgh, 0x1B);
    let mut abef = _mm_alignr_epi8(cdab, efgh, 8);
    let mut cdgh = _mm_blend_epi16(efgh, cdab, 0xF0);
    for block in blocks.chunks_exact(64) {
        let mut m = [0u32; 16];
        for (w, b) in m.iter_mut().zip(block.chunks_exact(4)) {
            *w = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        }
        let [mut a, mut b, mut c, mut d] = *md5;
        let (abef_save, cdgh_save) = (abef, cdgh);
        let mut w = [_mm_setzero_si128(); 4];
        for (i, v) in w.iter_mut().enumerate() {
            // SAFETY: `block` is 64 bytes; this loads its bytes 16*i..16*i+16, unaligned.
            *v = _mm_shuffle_epi8(unsafe { _mm_loadu_si128(block.as_ptr().add(16 * i).cast()) }, mask);
        }
        let [mut w0, mut w1, mut w2, mut w3] = w;
        let mut w4;
        rounds4!(abef, cdgh, w0, 0);
        quad!(0, a, b, c, d, m);
        rounds4!(abef, cdgh, w1, 1);
        quad!(4, a, b, c, d, m);
        rounds4!(abef, cdgh, w2, 2);
        quad!(8, a, b, c, d, m);
        rounds4!(abef, cdgh, w3, 3);
        quad!(12, a, b, c, d, m);
        sr4!(abef, cdgh, w0, w1, w2, w3, w4, 4);
        quad!(16, a, b, c, d, m);
        sr4!(abef, cdgh, w1, w2, w3, w4, w0, 5);
        quad!(20, a, b, c, d, m);
        sr4!(abef, cdgh, w2, w3, w4, w0, w1, 6);
        quad!(24, a, b, c, d, m);
        sr4!(abef, cdgh, w3, w4, w0, w1, w2, 7);
        quad!(28, a, b, c, d, m);
        sr4!(abef, cdgh, w4, w0, w1, w2, w3, 8);
        quad!(32, a, b, c, d, m);
        sr4!(abef, cdgh, w0, w1, w2, w3, w4, 9);
        quad!(36, a, b, c, d, m);
        sr4!(abef, cdgh, w1, w2, w3, w4, w0, 10);
        quad!(40, a, b, c, d, m);
        sr4!(abef, cdgh, w2, w3, w4, w0, w1, 11);
        quad!(44, a, b, c, d, m);
        sr4!(abef, cdgh, w3, w4, w0, w1, w2, 12);
        quad!(48, a, b, c, d, m);
        sr4!(abef, cdgh, w4, w0, w1, w2, w3, 13);
        quad!(52, a, b, c, d, m);
        sr4!(abef, cdgh, w0, w1, w2, w3, w4, 14);
        quad!(56, a, b, c, d, m);
        sr4!(abef, cdgh, w1, w2, w3, w4, w0, 15);
        quad!(60, a, b, c, d, m);
        let _ = w4;
        abef = _mm_add_epi32(abef, abef_save);
        cdgh = _mm_add_epi32(cdgh, cdgh_save);
        md5[0] = md5[0].wrapping_add(a);
        md5[1] = md5[1].wrapping_add(b);
        md5[2] = md5[2].wrapping_add(c);
        md5[3] = md5[3].wrapping_add(d);
    }
    let feba = _mm_shuffle_epi32(abef, 0x1B);
    let dchg = _mm_shuffle_epi32(cdgh, 0xB1);
    let dcba = _mm_blend_epi16(feba, dchg, 0xF0);
    let hgef = _mm_alignr_epi8(dchg, feba, 8);
    // SAFETY: `sha` is 32 writable bytes, two unaligned 16-byte stores.
    unsafe {
        _mm_storeu_si128(sha.as_mut_ptr().cast(), dcba);
        _mm_storeu_si128(sha.as_mut_ptr().add(4).cast(), hgef);
    }
}

/// Proof that this CPU has SHA-NI (and the SSE levels the kernel uses).
#[derive(Copy, Clone, Debug)]
struct ShaNi(());

impl ShaNi {
    fn detect() -> Option<ShaNi> {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("sha")
            && std::arch::is_x86_feature_detected!("sse2")
            && std::arch::is_x86_feature_detected!("ssse3")
            && std::arch::is_x86_feature_detected!("sse4.1")
        {
            return Some(ShaNi(()));
        }
        None
    }

    /// Compresses whole blocks (`blocks.len()` a multiple of 64) into both states.
    fn compress(self, md5: &mut [u32; 4], sha: &mut [u32; 8], blocks: &[u8]) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: a `ShaNi` exists only where `detect` saw every feature the kernel enables; it
        // reads whole 64-byte chunks of `blocks` only.
        unsafe {
            md5_sha256_shani(md5, sha, blocks)
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = (md5, sha, blocks);
            unreachable!("no SHA-NI off x86_64")
        }
    }
}

/// One stream's MD5 and SHA-256, in one stitched pass.
#[derive(Clone, Debug)]
pub struct Md5Sha256 {
    shani: ShaNi,
    md5: [u32; 4],
    sha: [u32; 8],
    blocks: Blocks,
}

impl Md5Sha256 {
    /// `None` on a CPU without SHA-NI (there, separate passes are as fast).
    pub fn new() -> Option<Self> {
        Some(Md5Sha256 {
            shani: ShaNi::detect()?,
            md5: single::INIT,
            sha: crate::sha256::INIT,
            blocks: Blocks::new(),
        })
    }

    pub fn update(&mut self, data: &[u8]) {
        let (shani, md5, sha) = (self.shani, &mut self.md5, &mut self.sha);
        self.blocks.update(data, |blocks| shani.compress(md5, sha, blocks));
    }

    /// The two streams apart, to go on (or stop) one by one.
    pub fn split(self) -> (Md5, Sha256) {
        let (len, tail) = (self.blocks.len(), self.blocks.tail());
        (Md5::resume(self.md5, len, tail), Sha256::resume(self.sha, len, tail))
    }

    /// (MD5, SHA-256).
    pub fn finalize(self) -> ([u8; 16], [u8; 32]) {
        let (md5, sha) = self.split();
        (md5.finalize(), sha.finalize())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use sha2::Digest;

    proptest! {
        #[test]
        fn stitched_is_md5_and_sha256_whatever_the_pieces(
            data in proptest::collection::vec(any::<u8>(), 0..3000),
            cuts in proptest::collection::vec(0usize..3000, 0..6),
            split_at in 0usize..3000,
        ) {
            let Some(mut h) = Md5Sha256::new() else { return Ok(()) };
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(data.len())).collect();
            cuts.sort_unstable();
            let split_at = split_at.min(data.len());
            let mut at = 0;
            for c in cuts.into_iter().chain([data.len()]) {
                h.update(&data[at..c]);
                at = c;
            }
            let want_md5: [u8; 16] = ::md5::Md5::digest(&data).into();
            let want_sha: [u8; 32] = sha2::Sha256::digest(&data).into();
            prop_assert_eq!(h.finalize(), (want_md5, want_sha));
            // Split midway, each stream goes on alone.
            let mut h = Md5Sha256::new().unwrap();
            h.update(&data[..split_at]);
            let (mut md5, mut sha) = h.split();
            md5.update(&data[split_at..]);
            sha.update(&data[split_at..]);
            prop_assert_eq!((md5.finalize(), sha.finalize()), (want_md5, want_sha));
        }
    }
}
