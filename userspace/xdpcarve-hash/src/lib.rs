//! Hashing for xdpcarve, as fast as this CPU allows.
//!
//! MD5 is the slowest hash a carver computes (one long dependency chain per block, no CPU has an
//! instruction for it), so this crate owns it:
//!
//! - [`Md5`]: one stream, scalar, as fast as the best single-stream code measured here.
//! - [`Md5Lanes`]: the MD5 of every file one worker carries, hashed many files at a time in SIMD
//!   lanes (16 per AVX-512 instruction stream, 8 with AVX2) when several are in flight; a lone
//!   file, or a CPU without AVX2, takes the single-stream path. Hashes are identical either way.
//!
//! - [`Md5Sha256`]: MD5 and SHA-256 of one stream in one stitched pass (SHA-NI), for a file
//!   with no other file to share lanes with.
//!
//! The only `unsafe` code is in the kernels ([`mod@x8`], [`mod@x16`], and the stitched pass),
//! each called through a safe wrapper that exists only once the CPU was seen to have its instructions.

#![deny(unsafe_code)]

#[macro_use]
mod steps;
mod blocks;
mod lanes;
mod sha256;
mod single;
mod stitch;
pub mod x16;
pub mod x8;

pub use lanes::{LaneStats, Md5Hasher, Md5Lanes, OpenTicket};
pub use sha256::Sha256;
pub use single::{compress, Md5};
pub use stitch::Md5Sha256;

/// Lowercase hex of a digest.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}
