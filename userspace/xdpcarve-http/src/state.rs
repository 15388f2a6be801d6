//! HTTP's per-worker state: its limits, its counters, the MIME state of form uploads, and the
//! 206 objects being put together across connections. [`Http`] is what the engine registers.

use std::time::Duration;

use xdpcarve_contract::{ConnMeta, CounterSet, FileSink, Opener, Protocol, Timestamp};
use xdpcarve_mime::{MimeConfig, MimeState};

use crate::ranged::RangedFiles;
use crate::{detect, HttpParser};

/// Limits of HTTP parsing.
#[derive(Clone, Debug)]
pub struct HttpConfig {
    /// Largest request/response header block accepted.
    pub max_header_bytes: usize,
    /// Largest output of Content-Encoding decoding per body, and the largest ratio of decoded to
    /// encoded bytes (decompression-bomb guard). Past either, the file is truncated.
    pub max_decompressed_bytes: u64,
    pub max_decompression_ratio: u64,
    /// Requests remembered while waiting for responses (pipelining).
    pub max_pipelined: usize,
    /// Out-of-order bytes buffered per 206 range object before giving up on the gap.
    pub max_range_buffer: usize,
    /// 206 objects assembled at once per worker; past it the idlest is closed as truncated.
    pub max_range_objects: usize,
    /// A 206 object with no new piece for this long is logged as incomplete (the runtime sets it
    /// to the connection idle timeout).
    pub range_idle_timeout: Duration,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            max_header_bytes: 64 << 10,
            max_decompressed_bytes: 256 << 20,
            max_decompression_ratio: 1000,
            max_pipelined: 64,
            max_range_buffer: 16 << 20,
            max_range_objects: 1024,
            range_idle_timeout: Duration::from_secs(300),
        }
    }
}

xdpcarve_contract::counters! {
    pub struct HttpStats {
        requests, responses, pipelined_requests,
        interim_responses,
        malformed_requests, malformed_responses,
        header_too_large,
        /// Responses with no request to pair with (picked up mid-stream).
        unmatched_responses,
        chunked_errors,
        decompress_errors,
        /// Bodies whose decoding hit the size or ratio bound.
        decompress_limited,
        multipart_uploads,
        partial_content,
        /// CONNECT or Upgrade: the rest of the connection is not HTTP.
        tunnels,
        /// Requests that came while `max_pipelined` were already waiting for a response: the oldest
        /// waiting one then gives up its fields (`http_uri`, ...) but keeps its place in line, so
        /// responses stay paired.
        pipeline_overflow,
        /// Requests dropped because 1024 were waiting: responses after them may pair wrongly.
        pipeline_dropped,
        /// Times the parser skipped ahead to find the next request/response start.
        resyncs,
        /// Of those, after a hole (capture loss) where the parser's place was lost.
        gap_resyncs,
        /// Status lines found after a hole that led no head (they were body data).
        resync_rejects,
        /// Pending requests whose responses vanished inside a response-side hole.
        responses_lost,
        /// Responses whose head was lost in a hole, recorded from the body bytes that survived.
        headless_responses,
        /// Headless bodies cut at a second hole because a request was sent in between.
        headless_splits,
        /// Bytes after a hole left unrecorded: only blanks, or what may be a chunked body's tail.
        orphans_dropped,
        /// Gaps inside a body (the file goes on, with missing bytes).
        body_gaps,
        /// Bodies with a Content-Encoding we do not decode (br, compress, ...): hashed as sent.
        unknown_encodings,
        /// 206 holes given up because the out-of-order buffer was full.
        range_gaps,
        /// 206 objects evicted to respect `max_range_objects`.
        range_evicted,
    }
}

/// HTTP as the engine runs it: one per worker, seen by its parsers as `AppContext::state`.
#[derive(Default)]
pub struct Http {
    pub cfg: HttpConfig,
    pub stats: HttpStats,
    /// MIME parsing of multipart/form-data uploads.
    pub mime: MimeState,
    pub ranged: RangedFiles,
}

impl Http {
    pub fn new(cfg: HttpConfig, mime: MimeConfig) -> Self {
        Http {
            cfg,
            stats: HttpStats::default(),
            mime: MimeState::new(mime),
            ranged: RangedFiles::new(),
        }
    }
}

impl Protocol for Http {
    type Parser = HttpParser;
    const NAME: &'static str = crate::NAME;

    fn new_parser(&mut self, _conn: &ConnMeta) -> HttpParser {
        HttpParser::new(&self.cfg)
    }

    fn detect(payload: &[u8]) -> Option<Opener> {
        detect::detect(payload)
    }

    fn poll_timeout(&self) -> Option<Timestamp> {
        self.ranged.next_expiry(self.cfg.range_idle_timeout)
    }

    fn handle_timeout(&mut self, now: Timestamp, files: &mut FileSink) {
        self.ranged.expire(now, self.cfg.range_idle_timeout, files);
    }

    fn finish(&mut self, now: Timestamp, files: &mut FileSink) {
        self.ranged.flush_all(now, files);
    }

    fn counters(&self, out: &mut CounterSet) {
        self.stats.add_to(Self::NAME, out);
        self.mime.stats.add_to(xdpcarve_mime::AREA, out);
    }
}
