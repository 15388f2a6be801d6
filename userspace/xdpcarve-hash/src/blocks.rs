//! What every streaming hash here keeps beside its state: the bytes fed so far, and the part of
//! the last block that is not whole yet.

#[derive(Clone, Debug)]
pub(crate) struct Blocks {
    len: u64,
    tail: [u8; 64],
    tail_len: usize,
}

impl Blocks {
    pub(crate) const fn new() -> Self {
        Blocks {
            len: 0,
            tail: [0; 64],
            tail_len: 0,
        }
    }

    /// A stream of `len` bytes whose last `tail` bytes (under 64) are not compressed yet.
    pub(crate) fn resume(len: u64, tail: &[u8]) -> Self {
        let mut blocks = Blocks::new();
        blocks.len = len;
        blocks.tail[..tail.len()].copy_from_slice(tail);
        blocks.tail_len = tail.len();
        blocks
    }

    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    pub(crate) fn tail(&self) -> &[u8] {
        &self.tail[..self.tail_len]
    }

    /// Feeds `data`: whole 64-byte blocks go to `compress` (as many at once as lie side by side
    /// in `data`), the rest waits for the next call.
    pub(crate) fn update(&mut self, mut data: &[u8], mut compress: impl FnMut(&[u8])) {
        self.len = self.len.wrapping_add(data.len() as u64);
        if self.tail_len > 0 {
            let n = (64 - self.tail_len).min(data.len());
            self.tail[self.tail_len..self.tail_len + n].copy_from_slice(&data[..n]);
            self.tail_len += n;
            data = &data[n..];
            if self.tail_len < 64 {
                return;
            }
            compress(&self.tail);
            self.tail_len = 0;
        }
        let whole = data.len() - data.len() % 64;
        if whole > 0 {
            compress(&data[..whole]);
        }
        let rest = &data[whole..];
        self.tail[..rest.len()].copy_from_slice(rest);
        self.tail_len = rest.len();
    }

    /// The stream's last block or two: the tail, 0x80, zeros, and the length in bits as the hash
    /// writes it (`bit_len`: little-endian for MD5, big-endian for SHA-256). Returns the buffer and
    /// how many of its bytes to compress (64 or 128).
    pub(crate) fn padding(&self, bit_len: fn(u64) -> [u8; 8]) -> ([u8; 128], usize) {
        let mut block = [0u8; 128];
        let tail = self.tail();
        block[..tail.len()].copy_from_slice(tail);
        block[tail.len()] = 0x80;
        let end = if tail.len() < 56 { 64 } else { 128 };
        block[end - 8..end].copy_from_slice(&bit_len(self.len.wrapping_mul(8)));
        (block, end)
    }
}
