//! Deterministic file contents for the end-to-end tests, so a failure reproduces with the same files.

/// Deterministic bytes (xorshift64*), so a failure reproduces with the same files.
pub fn pseudo_random(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// A PE-like executable: DOS header with `MZ` and `e_lfanew`, a DOS stub, a `PE\0\0` signature,
/// then pseudo-random "sections".
pub fn pe_like(seed: u64, len: usize) -> Vec<u8> {
    let mut v = pseudo_random(seed, len);
    v[..64].fill(0);
    v[0] = b'M';
    v[1] = b'Z';
    v[0x3c] = 0x80; // e_lfanew
    let stub = b"This program cannot be run in DOS mode.\r\r\n$";
    v[0x4e..0x4e + stub.len()].copy_from_slice(stub);
    v[0x80..0x84].copy_from_slice(b"PE\0\0");
    v[0x84..0x86].copy_from_slice(&0x14cu16.to_le_bytes()); // i386
    v
}
