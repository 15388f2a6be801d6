//! One message body: how it is delimited ([`Framing`]) and where its content goes ([`Content`]):
//! Content-Encoding decoding, then a file, a multipart/form-data parser, or a 206 range object.

use crate::chunked::Dechunker;
use crate::ranged::{RangeKey, RangePiece};
use crate::HttpContext;
use xdpcarve_contract::{Anomalies, Anomaly, FileMeta};
use xdpcarve_files::decode::inflate::{Coding, InflateError, Inflater, Trailer};
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
    /// Framing that could not be followed (conflicting lengths, a broken chunk size): the rest of
    /// the connection is the body, logged as truncated with the reason `framing`.
    Unframed,
}

/// Content-Encoding decoders, outermost first (the coding listed last was applied last).
pub struct Decoders(pub Vec<Inflater>);

impl Decoders {
    fn decode_with(&mut self, data: &[u8], sink: &mut dyn FnMut(&[u8])) -> Result<(), InflateError> {
        feed(&mut self.0, data, sink)
    }

    fn is_finished(&self) -> bool {
        self.0.iter().all(Inflater::is_finished)
    }

    fn produced_nothing(&self) -> bool {
        self.0.first().is_some_and(|d| d.total_out() == 0)
    }

    /// What the decoders noticed about the encoding once the body ended.
    fn anomalies(&self) -> Anomalies {
        let mut out = Anomalies::EMPTY;
        for d in &self.0 {
            if d.raw_deflate() {
                out.insert(Anomaly::CeRawDeflate);
            }
            match d.trailer() {
                Trailer::Bad => out.insert(Anomaly::GzipBadTrailer),
                Trailer::Missing => out.insert(Anomaly::GzipTrailerMissing),
                Trailer::Good | Trailer::NotYet => {}
            }
            if d.coding() == Coding::Gzip && d.trailing_bytes > 0 {
                out.insert(Anomaly::GzipExtraData);
            }
        }
        out
    }

    /// Whether a body starting with `earlier` then `data` cannot start the outermost coding at all: a gzip
    /// body without the gzip magic, a deflate body that is not deflate.
    fn not_encoded(&self, earlier: &[u8], data: &[u8]) -> bool {
        match self.0.first().map(Inflater::coding) {
            Some(Coding::Gzip) => !earlier
                .iter()
                .chain(data)
                .zip([0x1f, 0x8b])
                .all(|(&b, magic)| b == magic),
            Some(Coding::Deflate) => true,
            None => false,
        }
    }
}

fn feed(chain: &mut [Inflater], data: &[u8], sink: &mut dyn FnMut(&[u8])) -> Result<(), InflateError> {
    match chain.split_first_mut() {
        None => {
            sink(data);
            Ok(())
        }
        Some((first, rest)) => {
            let mut inner = Ok(());
            first.decode_with(data, |d| {
                if inner.is_ok() {
                    inner = feed(rest, d, sink);
                }
            })?;
            inner
        }
    }
}

/// Compressed data broke off or is corrupt: what decoded before the damage is the file, as
/// browsers save it (Chromium keeps the output of a stream that fails or ends early).
const DECODE_FAILED: &str = "decompression_error";

/// Encoded bytes kept until the decoder produced its first output: a body that was never
/// encoded the way its header says is then hashed as sent (what a permissive client shows).
const RAW_PREFIX: usize = 512;

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
    decoder: Option<Decoders>,
    /// The first encoded bytes, while the decoder has produced nothing.
    /// None once a fallback is no longer possible (output came, or the bytes did not fit).
    raw_prefix: Option<Vec<u8>>,
    /// Set when the rest of the content cannot be used (corrupt or bounded decoding, a hole in
    /// compressed data): later bytes are skipped and the file ends truncated with this reason,
    /// except for corrupt compressed data ([`DECODE_FAILED`]).
    spoiled: Option<&'static str>,
    opened: bool,
    /// Record the file even if no byte comes (a download a browser saves empty).
    keep_empty: bool,
}

pub struct Body {
    pub framing: Framing,
    pub content: Content,
}

impl Content {
    pub fn new(sink: Sink, decoder: Option<Decoders>) -> Self {
        Content {
            sink,
            decoder,
            raw_prefix: Some(Vec::new()),
            spoiled: None,
            opened: false,
            keep_empty: false,
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
            sink,
            decoder,
            raw_prefix,
            spoiled,
            ..
        } = self;
        let Some(dec) = decoder else {
            write(sink, data, cx);
            return;
        };
        // `raw_prefix` holds every earlier byte while the decoder has produced nothing (and they
        // fit); past that, a late failure cannot fall back to the bytes as sent.
        let held = raw_prefix.take().filter(|_| dec.produced_nothing());
        match dec.decode_with(data, &mut |d| write(sink, d, cx)) {
            Ok(()) => {
                *raw_prefix = held.filter(|h| dec.produced_nothing() && h.len() + data.len() < RAW_PREFIX);
                if let Some(h) = raw_prefix {
                    h.extend_from_slice(data);
                }
            }
            Err(InflateError::Corrupt)
                if dec.produced_nothing() && held.as_ref().is_some_and(|h| dec.not_encoded(h, data)) =>
            {
                // Not encoded as declared: the bytes as sent are the file.
                cx.state.stats.decompress_errors += 1;
                let prefix = held.unwrap_or_default();
                *decoder = None;
                flag(sink, Anomaly::CeNotEncoded);
                write(sink, &prefix, cx);
                write(sink, data, cx);
            }
            Err(e) => {
                flag(sink, Anomaly::CeDecodeError);
                *spoiled = Some(match e {
                    InflateError::Corrupt => {
                        cx.state.stats.decompress_errors += 1;
                        DECODE_FAILED
                    }
                    InflateError::Limit => {
                        cx.state.stats.decompress_limited += 1;
                        "decompression_limit"
                    }
                });
            }
        }
    }

    /// The body was content-encoded and its decoders reached the end of the stream.
    pub fn decoded_to_end(&self) -> bool {
        self.spoiled.is_none() && self.decoder.as_ref().is_some_and(Decoders::is_finished)
    }

    /// Marks the file (or the file to be) with an anomaly.
    pub fn flag(&mut self, a: Anomaly) {
        flag(&mut self.sink, a);
    }

    /// Marks the file with every anomaly of `set`.
    pub fn flag_all(&mut self, set: Anomalies) {
        for a in set.iter() {
            flag(&mut self.sink, a);
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

    /// The metadata of a file not opened yet (no byte came).
    pub fn unopened_meta(&self) -> Option<FileMeta> {
        match &self.sink {
            Sink::File { meta: Some(m), .. } if !self.opened => Some(m.clone()),
            _ => None,
        }
    }

    /// Records the file even when the body turns out empty.
    pub fn keep_if_empty(&mut self) {
        self.keep_empty = true;
    }

    /// The body ended (`Complete`: its framing said so) or was cut off.
    pub fn end(mut self, end: FileEnd, cx: &mut HttpContext<'_>) {
        if self.keep_empty {
            self.open(cx);
        }
        let Content {
            mut sink,
            decoder,
            spoiled,
            opened,
            ..
        } = self;
        if !opened {
            return;
        }
        let end = match spoiled {
            Some(why) if why != DECODE_FAILED => FileEnd::Truncated(why),
            _ => end,
        };
        if let Some(dec) = &decoder {
            for a in dec.anomalies().iter() {
                flag(&mut sink, a);
            }
        }
        if let (FileEnd::Complete, Some(dec), None) = (end, &decoder, spoiled) {
            if !dec.is_finished() {
                // Framing complete but the compressed stream is not: the decoded bytes are a
                // prefix, and the file browsers save.
                cx.state.stats.decompress_errors += 1;
                flag(&mut sink, Anomaly::CeDecodeError);
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

fn flag(sink: &mut Sink, a: Anomaly) {
    match sink {
        Sink::File { meta, file } => match (file, meta) {
            (Some(f), _) => f.flag(a),
            (None, Some(m)) => m.anomalies.insert(a),
            (None, None) => {}
        },
        Sink::Form {
            envelope_meta,
            envelope,
            ..
        } => match (envelope, envelope_meta) {
            (Some(f), _) => f.flag(a),
            (None, Some(m)) => m.anomalies.insert(a),
            (None, None) => {}
        },
        Sink::Range { meta, .. } => {
            if let Some(m) = meta {
                m.anomalies.insert(a);
            }
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
