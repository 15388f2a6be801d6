//! One message body: how it is delimited ([`Framing`]) and where its content goes ([`Content`]):
//! Content-Encoding decoding, then a file, a multipart/form-data parser, or a 206 range object.

use crate::chunked::Dechunker;
use crate::ranged::{RangeKey, RangePiece};
use crate::HttpContext;
use xdpcarve_contract::FileMeta;
use xdpcarve_files::decode::inflate::{InflateError, Inflater};
use xdpcarve_files::{FileAnalyzer, FileEnd};
use xdpcarve_mime::{MimeContext, MimeParser, MimeStart};

/// The event as the MIME parser of a form upload sees it.
fn mime_cx<'b>(cx: &'b mut HttpContext<'_>) -> MimeContext<'b> {
    cx.with_state(|http| &mut http.mime)
}

/// How the end of the body is found.
pub enum Framing {
    /// Content-Length: bytes still to come.
    Length(u64),
    Chunked(Dechunker),
    /// Until the sender closes the connection (responses without a length).
    UntilClose,
}

/// Where decoded content goes. Files are opened on the first byte, so an empty body leaves no
/// record (as Zeek does). One per message body, so variant sizes do not matter.
#[allow(clippy::large_enum_variant)]
pub enum Sink {
    File {
        meta: Option<FileMeta>,
        file: Option<FileAnalyzer>,
    },
    /// multipart/form-data upload: each part with a filename is its own file (depth 1, from the MIME parser), and the
    /// envelope (the raw body, as tshark exports it) is recorded too, as the parts' parent at
    /// depth 0 with declared type multipart/form-data, so consumers can tell it from the parts.
    Form {
        template: Option<FileMeta>,
        boundary: Vec<u8>,
        parser: Option<MimeParser>,
        envelope_meta: Option<FileMeta>,
        envelope: Option<FileAnalyzer>,
    },
    /// A 206 piece of an object assembled across responses and connections.
    Range {
        key: RangeKey,
        first: u64,
        last: u64,
        meta: Option<FileMeta>,
        piece: Option<RangePiece>,
    },
}

pub struct Content {
    sink: Sink,
    decoder: Option<Inflater>,
    /// Set when the rest of the content cannot be used (corrupt or bounded decoding, a hole in
    /// compressed data): later bytes are skipped and the file ends truncated with this reason.
    spoiled: Option<&'static str>,
    opened: bool,
}

pub struct Body {
    pub framing: Framing,
    pub content: Content,
}

impl Content {
    pub fn new(sink: Sink, decoder: Option<Inflater>) -> Self {
        Content {
            sink,
            decoder,
            spoiled: None,
            opened: false,
        }
    }

    fn open(&mut self, cx: &mut HttpContext<'_>) {
        if self.opened {
            return;
        }
        self.opened = true;
        match &mut self.sink {
            Sink::File { meta, file } => {
                if let Some(m) = meta.take() {
                    *file = Some(FileAnalyzer::open(cx, m));
                }
            }
            Sink::Form {
                template,
                boundary,
                parser,
                envelope_meta,
                envelope,
            } => {
                if let Some(mut t) = template.take() {
                    cx.state.stats.multipart_uploads += 1;
                    if let Some(m) = envelope_meta.take() {
                        let env = FileAnalyzer::open(cx, m);
                        t.parent_fuid = Some(env.fuid().to_owned());
                        *envelope = Some(env);
                    }
                    *parser = Some(MimeParser::new(
                        MimeStart::Multipart {
                            boundary: std::mem::take(boundary),
                        },
                        t,
                    ));
                }
            }
            Sink::Range {
                key,
                first,
                last,
                meta,
                piece,
            } => {
                if !cx.state.ranged.contains(key) {
                    let Some(m) = meta.take() else { return };
                    let f = FileAnalyzer::open(cx, m);
                    let max = cx.state.cfg.max_range_objects;
                    if let Some(evicted) = cx.state.ranged.add_object(key.clone(), f, cx.now, max) {
                        cx.state.stats.range_evicted += 1;
                        evicted.close(cx, FileEnd::Truncated("range_evicted"));
                    }
                }
                *piece = cx.state.ranged.start_piece(key, *first, *last, cx.now);
            }
        }
    }

    /// Body bytes with the transfer framing removed.
    pub fn data(&mut self, data: &[u8], cx: &mut HttpContext<'_>) {
        if data.is_empty() {
            return;
        }
        self.open(cx);
        if self.spoiled.is_some() {
            return;
        }
        let Content {
            sink, decoder, spoiled, ..
        } = self;
        match decoder {
            None => write(sink, data, cx),
            Some(dec) => {
                if let Err(e) = dec.decode_with(data, |d| write(sink, d, cx)) {
                    *spoiled = Some(match e {
                        InflateError::Corrupt => {
                            cx.state.stats.decompress_errors += 1;
                            "decompression_error"
                        }
                        InflateError::Limit => {
                            cx.state.stats.decompress_limited += 1;
                            "decompression_limit"
                        }
                    });
                }
            }
        }
    }

    /// `len` body bytes (as sent, before decoding) were lost.
    pub fn gap(&mut self, len: u64, cx: &mut HttpContext<'_>) {
        if len == 0 {
            return;
        }
        self.open(cx);
        cx.state.stats.body_gaps += 1;
        if self.decoder.is_some() {
            // A hole in compressed data ends decoding: nothing after it can be inflated. The raw
            // length is the best estimate of what is missing.
            if self.spoiled.is_none() {
                self.spoiled = Some("gap");
                if let Sink::File { file: Some(f), .. } = &mut self.sink {
                    f.gap(len);
                }
            }
            return;
        }
        match &mut self.sink {
            Sink::File { file, .. } => {
                if let Some(f) = file {
                    f.gap(len);
                }
            }
            Sink::Form { parser, envelope, .. } => {
                if let Some(e) = envelope {
                    e.gap(len);
                }
                if let Some(p) = parser {
                    p.gap(len, &mut mime_cx(cx));
                }
            }
            Sink::Range { piece, .. } => {
                if let Some(p) = piece {
                    if let Some(f) = cx.state.ranged.gap(p, len, cx.now) {
                        f.close(cx, FileEnd::Complete);
                    }
                }
            }
        }
    }

    /// The body ended (`Complete`: its framing said so) or was cut off.
    pub fn end(self, end: FileEnd, cx: &mut HttpContext<'_>) {
        let Content {
            sink,
            decoder,
            spoiled,
            opened,
        } = self;
        if !opened {
            return;
        }
        let mut end = match spoiled {
            Some(why) => FileEnd::Truncated(why),
            None => end,
        };
        if let (FileEnd::Complete, Some(dec)) = (end, &decoder) {
            if !dec.is_finished() {
                // Framing complete but the compressed stream is not: the decoded bytes are a prefix.
                cx.state.stats.decompress_errors += 1;
                end = FileEnd::Truncated("decompression_incomplete");
            }
        }
        match sink {
            Sink::File { file, .. } => {
                if let Some(f) = file {
                    f.close(cx, end);
                }
            }
            Sink::Form { parser, envelope, .. } => {
                if let Some(mut p) = parser {
                    p.finish(end, &mut mime_cx(cx));
                }
                if let Some(e) = envelope {
                    e.close(cx, end);
                }
            }
            // An unfinished piece leaves the object waiting for the rest (another response or
            // connection); it is flushed as partial if the rest never comes.
            Sink::Range { .. } => {}
        }
    }
}

fn write(sink: &mut Sink, data: &[u8], cx: &mut HttpContext<'_>) {
    match sink {
        Sink::File { file, .. } => {
            if let Some(f) = file {
                f.update(data);
            }
        }
        Sink::Form { parser, envelope, .. } => {
            if let Some(e) = envelope {
                e.update(data);
            }
            if let Some(p) = parser {
                p.feed(data, &mut mime_cx(cx));
            }
        }
        Sink::Range { piece, .. } => {
            if let Some(p) = piece {
                let max = cx.state.cfg.max_range_buffer;
                if let Some(f) = cx.state.ranged.write(p, data, cx.now, max, &mut cx.state.stats) {
                    f.close(cx, FileEnd::Complete);
                }
            }
        }
    }
}
