//! A SHA-256 stream that can start from a state: what is left of a stitched MD5+SHA-256 pass
//! once MD5 is given up. Compression is the sha2 crate's (SHA-NI where the CPU has it).

use sha2::digest::generic_array::GenericArray;

pub(crate) const INIT: [u32; 8] = [
    0x6a09_e667,
    0xbb67_ae85,
    0x3c6e_f372,
    0xa54f_f53a,
    0x510e_527f,
    0x9b05_688c,
    0x1f83_d9ab,
    0x5be0_cd19,
];

/// One stream's SHA-256.
#[derive(Clone, Debug)]
pub struct Sha256 {
    state: [u32; 8],
    len: u64,
    tail: [u8; 64],
    tail_len: usize,
}

fn compress(state: &mut [u32; 8], blocks: &[u8]) {
    for block in blocks.chunks_exact(64) {
        sha2::compress256(state, std::slice::from_ref(GenericArray::from_slice(block)));
    }
}

impl Sha256 {
    /// Continues a stream: `state` after `len - tail.len()` bytes, then `tail` (under 64 bytes).
    pub(crate) fn resume(state: [u32; 8], len: u64, tail: &[u8]) -> Self {
        let mut sha = Sha256 {
            state,
            len: len - tail.len() as u64,
            tail: [0; 64],
            tail_len: 0,
        };
        sha.update(tail);
        sha
    }

    pub fn update(&mut self, mut data: &[u8]) {
        self.len = self.len.wrapping_add(data.len() as u64);
        if self.tail_len > 0 {
            let n = (64 - self.tail_len).min(data.len());
            self.tail[self.tail_len..self.tail_len + n].copy_from_slice(&data[..n]);
            self.tail_len += n;
            data = &data[n..];
            if self.tail_len < 64 {
                return;
            }
            compress(&mut self.state, &self.tail);
            self.tail_len = 0;
        }
        let whole = data.len() - data.len() % 64;
        compress(&mut self.state, &data[..whole]);
        let rest = &data[whole..];
        self.tail[..rest.len()].copy_from_slice(rest);
        self.tail_len = rest.len();
    }

    pub fn finalize(mut self) -> [u8; 32] {
        let mut block = [0u8; 128];
        let tail = self.tail_len;
        block[..tail].copy_from_slice(&self.tail[..tail]);
        block[tail] = 0x80;
        let end = if tail < 56 { 64 } else { 128 };
        block[end - 8..end].copy_from_slice(&self.len.wrapping_mul(8).to_be_bytes());
        compress(&mut self.state, &block[..end]);
        let mut out = [0u8; 32];
        for (o, w) in out.chunks_exact_mut(4).zip(self.state) {
            o.copy_from_slice(&w.to_be_bytes());
        }
        out
    }
}
