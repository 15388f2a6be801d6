//! Streaming MIME parser. API fixed here so SMTP and HTTP (multipart/form-data) can code against
//! it; the body is being written.

use xdpcarve_files::{AppContext, FileEnd, FileMeta};

/// Where parsing starts.
#[derive(Clone, Debug)]
pub enum MimeStart {
    /// A whole message, headers first (SMTP DATA / BDAT payload).
    Message,
    /// A multipart body whose boundary the carrier already gave (HTTP multipart/form-data).
    Multipart { boundary: Vec<u8> },
}

/// Parses one message or multipart body as it streams in, carving each leaf part as a file.
pub struct MimeParser {
    _start: MimeStart,
    _template: FileMeta,
}

impl MimeParser {
    /// `template` carries proto, direction and transaction context (HTTP/SMTP info) copied into
    /// every part's file; for a `Message`, the top-level Subject and Message-ID are added to its
    /// `smtp` info.
    pub fn new(start: MimeStart, template: FileMeta) -> Self {
        MimeParser { _start: start, _template: template }
    }
    /// The next bytes of the message (already dot-unstuffed / de-chunked by the carrier).
    pub fn feed(&mut self, _data: &[u8], _cx: &mut AppContext<'_>) {
        unimplemented!("streaming MIME: being written")
    }
    /// `len` bytes of the message are missing.
    pub fn gap(&mut self, _len: u64, _cx: &mut AppContext<'_>) {
        unimplemented!("streaming MIME: being written")
    }
    /// The message ended (`Complete`) or was cut off: closes every open part.
    pub fn finish(&mut self, _end: FileEnd, _cx: &mut AppContext<'_>) {
        unimplemented!("streaming MIME: being written")
    }
}
