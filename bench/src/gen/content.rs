//! Deterministic file contents of the kinds a sensor cares about: PE executables, PDFs, ZIP-like
//! archives (incompressible), and text/HTML (compressible, for gzip).

/// splitmix64: tiny, fast, and the same sequence on every machine for a seed.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed ^ 0x6a09_e667_f3bc_c908)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (n > 0); the tiny modulo bias does not matter for test data.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
    pub fn fill(&mut self, buf: &mut [u8]) {
        let mut chunks = buf.chunks_exact_mut(8);
        for c in &mut chunks {
            c.copy_from_slice(&self.next_u64().to_le_bytes());
        }
        let rest = chunks.into_remainder();
        let last = self.next_u64().to_le_bytes();
        let n = rest.len();
        rest.copy_from_slice(&last[..n]);
    }
    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        let mut v = vec![0u8; len];
        self.fill(&mut v);
        v
    }
}

/// What a generated file looks like inside.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `MZ` DOS header, PE signature, random sections.
    Exe,
    /// `%PDF-1.x` with a binary stream.
    Pdf,
    /// `PK\x03\x04` local file header, random (incompressible) data.
    Zip,
    /// HTML text: compresses well, the usual gzip'd body.
    Html,
    /// Plain text.
    Text,
}

impl Kind {
    pub const ALL: [Kind; 5] = [Kind::Exe, Kind::Pdf, Kind::Zip, Kind::Html, Kind::Text];

    pub fn extension(self) -> &'static str {
        match self {
            Kind::Exe => "exe",
            Kind::Pdf => "pdf",
            Kind::Zip => "zip",
            Kind::Html => "html",
            Kind::Text => "txt",
        }
    }
    pub fn mime_type(self) -> &'static str {
        match self {
            Kind::Exe => "application/x-msdownload",
            Kind::Pdf => "application/pdf",
            Kind::Zip => "application/zip",
            Kind::Html => "text/html",
            Kind::Text => "text/plain",
        }
    }
    pub fn is_text(self) -> bool {
        matches!(self, Kind::Html | Kind::Text)
    }
}

const WORDS: &[&str] = &[
    "packet",
    "sensor",
    "stream",
    "invoice",
    "report",
    "network",
    "carve",
    "quarterly",
    "the",
    "a",
    "of",
    "and",
    "download",
    "server",
    "client",
    "mail",
    "attachment",
    "budget",
    "review",
    "meeting",
    "please",
    "find",
    "data",
    "result",
    "value",
    "table",
    "row",
    "column",
    "summary",
    "total",
    "amount",
    "customer",
    "order",
    "status",
];

fn text_words(rng: &mut Rng, len: usize, out: &mut Vec<u8>) {
    let start = out.len();
    let mut col = 0;
    while out.len() - start < len {
        let w = WORDS[rng.below(WORDS.len() as u64) as usize];
        out.extend_from_slice(w.as_bytes());
        col += w.len() + 1;
        if col > 70 {
            out.extend_from_slice(b"\r\n");
            col = 0;
        } else {
            out.push(b' ');
        }
    }
    out.truncate(start + len);
}

/// A file of exactly `len` bytes (headers are cut when `len` is smaller than they are).
pub fn make(kind: Kind, len: usize, rng: &mut Rng) -> Vec<u8> {
    let mut v = Vec::with_capacity(len + 256);
    match kind {
        Kind::Exe => {
            let mut hdr = [0u8; 0x98];
            hdr[0..2].copy_from_slice(b"MZ");
            hdr[0x3c] = 0x80;
            let stub = b"This program cannot be run in DOS mode.\r\r\n$";
            hdr[0x4e..0x4e + stub.len()].copy_from_slice(stub);
            hdr[0x80..0x84].copy_from_slice(b"PE\0\0");
            hdr[0x84..0x86].copy_from_slice(&0x8664u16.to_le_bytes());
            v.extend_from_slice(&hdr);
            let rest = len.saturating_sub(v.len());
            v.extend_from_slice(&rng.bytes(rest));
        }
        Kind::Pdf => {
            v.extend_from_slice(b"%PDF-1.5\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n");
            v.extend_from_slice(b"4 0 obj\n<< /Filter /FlateDecode >>\nstream\n");
            let tail = b"\nendstream\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n";
            let rest = len.saturating_sub(v.len() + tail.len());
            v.extend_from_slice(&rng.bytes(rest));
            v.extend_from_slice(tail);
        }
        Kind::Zip => {
            v.extend_from_slice(b"PK\x03\x04\x14\x00\x00\x00\x08\x00");
            let rest = len.saturating_sub(v.len());
            v.extend_from_slice(&rng.bytes(rest));
        }
        Kind::Html => {
            v.extend_from_slice(b"<!DOCTYPE html>\r\n<html><head><title>report</title></head><body>\r\n<p>");
            let tail = b"</p>\r\n</body></html>\r\n";
            let body = len.saturating_sub(v.len() + tail.len());
            text_words(rng, body, &mut v);
            v.extend_from_slice(tail);
        }
        Kind::Text => text_words(rng, len, &mut v),
    }
    v.truncate(len);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_exact_and_deterministic() {
        for kind in Kind::ALL {
            for len in [0, 1, 10, 100, 4096, 70_001] {
                let a = make(kind, len, &mut Rng::new(7));
                assert_eq!(a.len(), len, "{kind:?} {len}");
                assert_eq!(a, make(kind, len, &mut Rng::new(7)));
            }
        }
        assert!(make(Kind::Exe, 4096, &mut Rng::new(1)).starts_with(b"MZ"));
        assert!(make(Kind::Pdf, 4096, &mut Rng::new(1)).starts_with(b"%PDF-"));
    }
}
