//! Eight MD5 streams at once in one AVX2 instruction stream: lane `i` of every 256-bit register
//! belongs to stream `i`, so each instruction advances eight files by one operation. MD5 is one
//! long chain of dependent 32-bit operations per block, which leaves most of a core idle; eight
//! independent chains side by side fill it.

// Pointer loads and stores are the kernel's only unsafe operations.
#![allow(unsafe_code)]

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

/// Streams per kernel call.
pub const LANES: usize = 8;

/// Proof that this CPU runs AVX2: the only way to reach the kernel.
#[derive(Copy, Clone, Debug)]
pub struct Avx2(());

impl Avx2 {
    /// `Some` when the CPU this runs on has AVX2 (checked at run time, once per call).
    pub fn detect() -> Option<Avx2> {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            return Some(Avx2(()));
        }
        None
    }

    /// Compresses `blocks` 64-byte blocks of each of eight streams: stream `i` has state
    /// `(state[0][i], .., state[3][i])` and its blocks start at `input[i]`.
    ///
    /// # Panics
    /// When an input is shorter than `blocks * 64` bytes.
    pub fn compress(self, state: &mut [[u32; LANES]; 4], input: [&[u8]; LANES], blocks: usize) {
        for lane in &input {
            assert!(lane.len() >= blocks * 64, "an MD5 lane shorter than its blocks");
        }
        #[cfg(target_arch = "x86_64")]
        // SAFETY: an `Avx2` exists only where `detect` saw AVX2; every input holds `blocks`
        // whole blocks (asserted above), which is all the kernel reads.
        unsafe {
            compress_avx2(state, input.map(<[u8]>::as_ptr), blocks)
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = (state, input, blocks);
            unreachable!("no AVX2 off x86_64")
        }
    }
}

#[cfg(target_arch = "x86_64")]
macro_rules! rotl8 {
    ($x:expr, $s:expr) => {
        _mm256_or_si256(_mm256_slli_epi32::<$s>($x), _mm256_srli_epi32::<{ 32 - $s }>($x))
    };
}

#[cfg(target_arch = "x86_64")]
macro_rules! step8 {
    ($a:ident, $b:ident, $fun:expr, $m:expr, $k:expr, $s:expr) => {
        let sum = _mm256_add_epi32(
            _mm256_add_epi32($a, $fun),
            _mm256_add_epi32($m, _mm256_set1_epi32($k as u32 as i32)),
        );
        $a = _mm256_add_epi32($b, rotl8!(sum, $s));
    };
}
#[cfg(target_arch = "x86_64")]
macro_rules! f8 {
    ($a:ident, $b:ident, $c:ident, $d:ident, $m:expr, $k:expr, $s:expr) => {
        step8!(
            $a,
            $b,
            _mm256_xor_si256($d, _mm256_and_si256($b, _mm256_xor_si256($c, $d))),
            $m,
            $k,
            $s
        )
    };
}
#[cfg(target_arch = "x86_64")]
macro_rules! g8 {
    ($a:ident, $b:ident, $c:ident, $d:ident, $m:expr, $k:expr, $s:expr) => {
        step8!(
            $a,
            $b,
            _mm256_xor_si256($c, _mm256_and_si256($d, _mm256_xor_si256($b, $c))),
            $m,
            $k,
            $s
        )
    };
}
#[cfg(target_arch = "x86_64")]
macro_rules! h8 {
    ($a:ident, $b:ident, $c:ident, $d:ident, $m:expr, $k:expr, $s:expr) => {
        step8!($a, $b, _mm256_xor_si256(_mm256_xor_si256($b, $c), $d), $m, $k, $s)
    };
}
#[cfg(target_arch = "x86_64")]
macro_rules! i8_ {
    ($a:ident, $b:ident, $c:ident, $d:ident, $m:expr, $k:expr, $s:expr) => {
        step8!(
            $a,
            $b,
            _mm256_xor_si256($c, _mm256_or_si256($b, _mm256_xor_si256($d, _mm256_set1_epi32(-1)))),
            $m,
            $k,
            $s
        )
    };
}

/// # Safety
/// The CPU must have AVX2, and each `input[i]` must point at `blocks * 64` readable bytes.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn compress_avx2(state: &mut [[u32; LANES]; 4], input: [*const u8; LANES], blocks: usize) {
    let mut s = [_mm256_setzero_si256(); 4];
    for (v, lane) in s.iter_mut().zip(state.iter()) {
        // SAFETY: `[u32; 8]` is 32 readable bytes; the unaligned load accepts any alignment.
        *v = unsafe { _mm256_loadu_si256(lane.as_ptr().cast()) };
    }
    let [mut sa, mut sb, mut sc, mut sd] = s;
    for block in 0..blocks {
        let mut m = [_mm256_setzero_si256(); 16];
        for half in 0..2 {
            let mut rows = [_mm256_setzero_si256(); LANES];
            for (row, p) in rows.iter_mut().zip(input) {
                // SAFETY: `p` points at `blocks * 64` readable bytes (the caller's promise) and
                // `block < blocks`, so these 32 bytes are inside them.
                *row = unsafe { _mm256_loadu_si256(p.add(block * 64 + half * 32).cast()) };
            }
            let cols = transpose(rows);
            m[half * 8..half * 8 + 8].copy_from_slice(&cols);
        }
        let (mut a, mut b, mut c, mut d) = (sa, sb, sc, sd);
        md5_steps!(f8, g8, h8, i8_, a, b, c, d, m);
        sa = _mm256_add_epi32(sa, a);
        sb = _mm256_add_epi32(sb, b);
        sc = _mm256_add_epi32(sc, c);
        sd = _mm256_add_epi32(sd, d);
    }
    for (lane, v) in state.iter_mut().zip([sa, sb, sc, sd]) {
        // SAFETY: `[u32; 8]` is 32 writable bytes; the unaligned store accepts any alignment.
        unsafe { _mm256_storeu_si256(lane.as_mut_ptr().cast(), v) };
    }
}

/// Turns eight rows (row `i`: eight message words of stream `i`) into eight columns (column `j`:
/// word `j` of every stream).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
pub(crate) fn transpose(r: [__m256i; 8]) -> [__m256i; 8] {
    let t0 = _mm256_unpacklo_epi32(r[0], r[1]);
    let t1 = _mm256_unpackhi_epi32(r[0], r[1]);
    let t2 = _mm256_unpacklo_epi32(r[2], r[3]);
    let t3 = _mm256_unpackhi_epi32(r[2], r[3]);
    let t4 = _mm256_unpacklo_epi32(r[4], r[5]);
    let t5 = _mm256_unpackhi_epi32(r[4], r[5]);
    let t6 = _mm256_unpacklo_epi32(r[6], r[7]);
    let t7 = _mm256_unpackhi_epi32(r[6], r[7]);
    let u0 = _mm256_unpacklo_epi64(t0, t2);
    let u1 = _mm256_unpackhi_epi64(t0, t2);
    let u2 = _mm256_unpacklo_epi64(t1, t3);
    let u3 = _mm256_unpackhi_epi64(t1, t3);
    let u4 = _mm256_unpacklo_epi64(t4, t6);
    let u5 = _mm256_unpackhi_epi64(t4, t6);
    let u6 = _mm256_unpacklo_epi64(t5, t7);
    let u7 = _mm256_unpackhi_epi64(t5, t7);
    [
        _mm256_permute2x128_si256::<0x20>(u0, u4),
        _mm256_permute2x128_si256::<0x20>(u1, u5),
        _mm256_permute2x128_si256::<0x20>(u2, u6),
        _mm256_permute2x128_si256::<0x20>(u3, u7),
        _mm256_permute2x128_si256::<0x31>(u0, u4),
        _mm256_permute2x128_si256::<0x31>(u1, u5),
        _mm256_permute2x128_si256::<0x31>(u2, u6),
        _mm256_permute2x128_si256::<0x31>(u3, u7),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eight_lanes_match_eight_single_streams() {
        let Some(avx2) = Avx2::detect() else {
            eprintln!("no AVX2 on this CPU: nothing to compare");
            return;
        };
        let data: Vec<Vec<u8>> = (0..LANES)
            .map(|i| (0..64 * 5).map(|j| (j * 7 + i * 131 + j / 64) as u8).collect())
            .collect();
        let mut state = [[0u32; LANES]; 4];
        for (w, init) in state.iter_mut().zip(crate::single::INIT) {
            *w = [init; LANES];
        }
        avx2.compress(&mut state, std::array::from_fn(|i| &data[i][..]), 5);
        for (i, lane) in data.iter().enumerate() {
            let mut want = crate::single::INIT;
            crate::single::compress(&mut want, lane);
            assert_eq!([state[0][i], state[1][i], state[2][i], state[3][i]], want, "lane {i}");
        }
    }
}
