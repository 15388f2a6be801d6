//! Sixteen MD5 streams at once with AVX-512: lane `i` of every 512-bit register belongs to stream
//! `i`. Besides twice the lanes of [`crate::x8`], AVX-512 has a rotate (`vprold`, one instruction
//! where AVX2 needs three) and a three-input logic instruction (`vpternlogd`) that computes each
//! round's function in one, which shortens the dependency chain of every step.

// Pointer loads and stores are the kernel's only unsafe operations.
#![allow(unsafe_code)]

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

/// Streams per kernel call.
pub const LANES: usize = 16;

/// Proof that this CPU runs AVX-512F (and AVX2): the only way to reach the kernel.
#[derive(Copy, Clone, Debug)]
pub struct Avx512(());

impl Avx512 {
    /// `Some` when the CPU this runs on has AVX-512F and AVX2.
    pub fn detect() -> Option<Avx512> {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx512f") && std::arch::is_x86_feature_detected!("avx2") {
            return Some(Avx512(()));
        }
        None
    }

    /// Compresses `blocks` 64-byte blocks of each of sixteen streams: stream `i` has state
    /// `(state[0][i], .., state[3][i])` and its blocks start at `input[i]`.
    ///
    /// # Panics
    /// When an input is shorter than `blocks * 64` bytes.
    pub fn compress(self, state: &mut [[u32; LANES]; 4], input: [&[u8]; LANES], blocks: usize) {
        for lane in &input {
            assert!(lane.len() >= blocks * 64, "an MD5 lane shorter than its blocks");
        }
        #[cfg(target_arch = "x86_64")]
        // SAFETY: an `Avx512` exists only where `detect` saw AVX-512F and AVX2; every input holds
        // `blocks` whole blocks (asserted above), which is all the kernel reads.
        unsafe {
            compress_avx512(state, input.map(<[u8]>::as_ptr), blocks)
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = (state, input, blocks);
            unreachable!("no AVX-512 off x86_64")
        }
    }
}

#[cfg(target_arch = "x86_64")]
macro_rules! step16 {
    ($a:ident, $b:ident, $c:ident, $d:ident, $logic:expr, $m:expr, $k:expr, $s:expr) => {
        let fun = _mm512_ternarylogic_epi32::<$logic>($b, $c, $d);
        let sum = _mm512_add_epi32(
            _mm512_add_epi32($a, fun),
            _mm512_add_epi32($m, _mm512_set1_epi32($k as u32 as i32)),
        );
        $a = _mm512_add_epi32($b, _mm512_rol_epi32::<$s>(sum));
    };
}
// vpternlogd truth tables over (b, c, d) = (0xF0, 0xCC, 0xAA).
#[cfg(target_arch = "x86_64")]
macro_rules! f16 {
    // (b & c) | (!b & d)
    ($a:ident, $b:ident, $c:ident, $d:ident, $m:expr, $k:expr, $s:expr) => {
        step16!($a, $b, $c, $d, 0xCA, $m, $k, $s)
    };
}
#[cfg(target_arch = "x86_64")]
macro_rules! g16 {
    // (b & d) | (c & !d)
    ($a:ident, $b:ident, $c:ident, $d:ident, $m:expr, $k:expr, $s:expr) => {
        step16!($a, $b, $c, $d, 0xE4, $m, $k, $s)
    };
}
#[cfg(target_arch = "x86_64")]
macro_rules! h16 {
    // b ^ c ^ d
    ($a:ident, $b:ident, $c:ident, $d:ident, $m:expr, $k:expr, $s:expr) => {
        step16!($a, $b, $c, $d, 0x96, $m, $k, $s)
    };
}
#[cfg(target_arch = "x86_64")]
macro_rules! i16_ {
    // c ^ (b | !d)
    ($a:ident, $b:ident, $c:ident, $d:ident, $m:expr, $k:expr, $s:expr) => {
        step16!($a, $b, $c, $d, 0x39, $m, $k, $s)
    };
}

/// # Safety
/// The CPU must have AVX-512F and AVX2, and each `input[i]` must point at `blocks * 64`
/// readable bytes.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,avx512f")]
unsafe fn compress_avx512(state: &mut [[u32; LANES]; 4], input: [*const u8; LANES], blocks: usize) {
    let mut s = [_mm512_setzero_si512(); 4];
    for (v, lane) in s.iter_mut().zip(state.iter()) {
        // SAFETY: `[u32; 16]` is 64 readable bytes; the unaligned load accepts any alignment.
        *v = unsafe { _mm512_loadu_si512(lane.as_ptr().cast()) };
    }
    let [mut sa, mut sb, mut sc, mut sd] = s;
    for block in 0..blocks {
        let mut m = [_mm512_setzero_si512(); 16];
        for half in 0..2 {
            // Words 8*half.. of streams 0-7 and of streams 8-15, each turned into columns.
            let mut cols = [[_mm256_setzero_si256(); 8]; 2];
            for (group, out) in cols.iter_mut().enumerate() {
                let mut rows = [_mm256_setzero_si256(); 8];
                for (row, p) in rows.iter_mut().zip(&input[group * 8..group * 8 + 8]) {
                    // SAFETY: `p` points at `blocks * 64` readable bytes (the caller's promise)
                    // and `block < blocks`, so these 32 bytes are inside them.
                    *row = unsafe { _mm256_loadu_si256(p.add(block * 64 + half * 32).cast()) };
                }
                *out = crate::x8::transpose(rows);
            }
            for j in 0..8 {
                m[half * 8 + j] = _mm512_inserti64x4::<1>(_mm512_castsi256_si512(cols[0][j]), cols[1][j]);
            }
        }
        let (mut a, mut b, mut c, mut d) = (sa, sb, sc, sd);
        md5_steps!(f16, g16, h16, i16_, a, b, c, d, m);
        sa = _mm512_add_epi32(sa, a);
        sb = _mm512_add_epi32(sb, b);
        sc = _mm512_add_epi32(sc, c);
        sd = _mm512_add_epi32(sd, d);
    }
    for (lane, v) in state.iter_mut().zip([sa, sb, sc, sd]) {
        // SAFETY: `[u32; 16]` is 64 writable bytes; the unaligned store accepts any alignment.
        unsafe { _mm512_storeu_si512(lane.as_mut_ptr().cast(), v) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sixteen_lanes_match_sixteen_single_streams() {
        let Some(avx512) = Avx512::detect() else {
            eprintln!("no AVX-512 on this CPU: nothing to compare");
            return;
        };
        let data: Vec<Vec<u8>> = (0..LANES)
            .map(|i| (0..64 * 5).map(|j| (j * 7 + i * 131 + j / 64) as u8).collect())
            .collect();
        let mut state = [[0u32; LANES]; 4];
        for (w, init) in state.iter_mut().zip(crate::single::INIT) {
            *w = [init; LANES];
        }
        avx512.compress(&mut state, std::array::from_fn(|i| &data[i][..]), 5);
        for (i, lane) in data.iter().enumerate() {
            let mut want = crate::single::INIT;
            crate::single::compress(&mut want, lane);
            assert_eq!([state[0][i], state[1][i], state[2][i], state[3][i]], want, "lane {i}");
        }
    }
}
