//! Streaming, whitespace-tolerant base64 (MIME bodies). Invalid characters are skipped and counted.

#[derive(Debug, Default)]
pub struct Base64Decoder {
    /// Characters outside the alphabet that were skipped.
    pub invalid_chars: u64,
}

impl Base64Decoder {
    pub fn new() -> Self {
        Self::default()
    }
    /// Decodes `input`, appending to `out`; carries an incomplete quantum to the next call.
    pub fn decode(&mut self, _input: &[u8], _out: &mut Vec<u8>) {
        unimplemented!("streaming base64: being written")
    }
    /// Flushes a final incomplete quantum (missing padding is tolerated).
    pub fn finish(&mut self, _out: &mut Vec<u8>) {
        unimplemented!("streaming base64: being written")
    }
}
