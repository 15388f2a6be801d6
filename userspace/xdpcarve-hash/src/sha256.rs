//! A SHA-256 stream that can start from a state: what is left of a stitched MD5+SHA-256 pass
//! once MD5 is given up. Compression is the sha2 crate's (SHA-NI where the CPU has it).

use crate::blocks::Blocks;
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
    blocks: Blocks,
}

fn compress(state: &mut [u32; 8], blocks: &[u8]) {
    for block in blocks.chunks_exact(64) {
        sha2::compress256(state, std::slice::from_ref(GenericArray::from_slice(block)));
    }
}

impl Sha256 {
    /// Continues a stream: `state` after `len - tail.len()` bytes, then `tail` (under 64 bytes).
    pub(crate) fn resume(state: [u32; 8], len: u64, tail: &[u8]) -> Self {
        Sha256 {
            state,
            blocks: Blocks::resume(len, tail),
        }
    }

    pub fn update(&mut self, data: &[u8]) {
        let state = &mut self.state;
        self.blocks.update(data, |blocks| compress(state, blocks));
    }

    pub fn finalize(mut self) -> [u8; 32] {
        let (block, end) = self.blocks.padding(u64::to_be_bytes);
        compress(&mut self.state, &block[..end]);
        let mut out = [0u8; 32];
        for (o, w) in out.chunks_exact_mut(4).zip(self.state) {
            o.copy_from_slice(&w.to_be_bytes());
        }
        out
    }
}
