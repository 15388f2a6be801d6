//! Streaming quoted-printable (RFC 2045 6.7): soft line breaks, =XX escapes split across calls.

#[derive(Debug, Default)]
pub struct QpDecoder {
    /// Malformed `=` sequences, passed through literally.
    pub invalid_sequences: u64,
}

impl QpDecoder {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn decode(&mut self, _input: &[u8], _out: &mut Vec<u8>) {
        unimplemented!("streaming quoted-printable: being written")
    }
    pub fn finish(&mut self, _out: &mut Vec<u8>) {
        unimplemented!("streaming quoted-printable: being written")
    }
}
