//! What MIME parsing needs from the worker: its limits and its counters. HTTP (form uploads) and
//! SMTP (messages) each keep one [`MimeState`] and lend it to their MIME parsers; both count
//! under the `mime` area.

/// Limits of MIME parsing.
#[derive(Copy, Clone, Debug)]
pub struct MimeConfig {
    /// Multipart nesting followed at most; a deeper multipart is one file (`mime_too_deep`).
    pub max_depth: u32,
    pub max_header_bytes: usize,
    /// Parts of one message logged one by one; the rest of the multipart is one file
    /// (`mime_parts_exceeded`).
    pub max_parts: u32,
    pub max_line_len: usize,
    /// Record text bodies (text/plain, text/html parts that are not attachments) as files, as Zeek does.
    /// `multipart/form-data` fields are files either way.
    pub text_bodies_as_files: bool,
}

impl Default for MimeConfig {
    fn default() -> Self {
        MimeConfig {
            max_depth: 16,
            max_header_bytes: 64 << 10,
            max_parts: 1000,
            max_line_len: 64 << 10,
            text_bodies_as_files: true,
        }
    }
}

xdpcarve_contract::counters! {
    pub struct MimeStats {
        messages, parts,
        /// Multiparts or attached messages too deep to follow, logged as one file each.
        depth_exceeded,
        header_too_large,
        /// Messages with more parts than max_parts (the rest logged as one file).
        parts_exceeded,
        line_too_long,
        missing_final_boundary,
        base64_invalid_chars,
        qp_invalid_sequences,
        encoded_word_errors,
        /// Holes after which parsing found its place again: a header block cut, a delimiter (or a
        /// part's start) swallowed, a lost multipart boundary found again.
        gap_resyncs,
    }
}

/// The state MIME parsers see as `AppContext::state`.
#[derive(Clone, Debug, Default)]
pub struct MimeState {
    pub cfg: MimeConfig,
    pub stats: MimeStats,
}

impl MimeState {
    pub fn new(cfg: MimeConfig) -> Self {
        MimeState {
            cfg,
            stats: MimeStats::default(),
        }
    }
}

/// The counter area MIME reports under.
pub const AREA: &str = "mime";
