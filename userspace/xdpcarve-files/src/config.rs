//! Limits and switches of the app layer, one section per parser. The binary fills these from the
//! command line and the config file; defaults are sized for a busy link.

/// Which hashes to compute. All four by default.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct HashSet {
    pub md5: bool,
    pub sha1: bool,
    pub sha256: bool,
    pub blake3: bool,
}

impl Default for HashSet {
    fn default() -> Self {
        HashSet { md5: true, sha1: true, sha256: true, blake3: true }
    }
}

impl HashSet {
    pub const NONE: HashSet = HashSet { md5: false, sha1: false, sha256: false, blake3: false };

    /// Parses a comma-separated list such as `md5,sha256`.
    pub fn parse(list: &str) -> Result<HashSet, String> {
        let mut set = HashSet::NONE;
        for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            match name.to_ascii_lowercase().as_str() {
                "md5" => set.md5 = true,
                "sha1" => set.sha1 = true,
                "sha256" => set.sha256 = true,
                "blake3" => set.blake3 = true,
                "all" => set = HashSet::default(),
                other => {
                    return Err(format!(
                        "unknown hash `{other}`: choose from md5, sha1, sha256, blake3 (or all)"
                    ))
                }
            }
        }
        Ok(set)
    }
}

#[derive(Clone, Debug)]
pub struct FileConfig {
    pub hashes: HashSet,
    /// Bytes of a file that are hashed; past this the file is recorded as truncated with
    /// `overflow_bytes` and no hashes (a hash of a prefix identifies nothing).
    pub max_file_size: u64,
    /// Leading bytes kept for content sniffing.
    pub sniff_bytes: usize,
}

impl Default for FileConfig {
    fn default() -> Self {
        FileConfig { hashes: HashSet::default(), max_file_size: 256 << 20, sniff_bytes: 4096 }
    }
}

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
        }
    }
}

#[derive(Clone, Debug)]
pub struct MimeConfig {
    pub max_depth: u32,
    pub max_header_bytes: usize,
    pub max_parts: u32,
    pub max_line_len: usize,
    /// Record text bodies (text/plain, text/html parts that are not attachments) as files, as Zeek does.
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

#[derive(Clone, Debug)]
pub struct SmtpConfig {
    /// Longest command or reply line kept; longer lines are skipped and counted.
    pub max_line_len: usize,
    /// Commands remembered while waiting for replies (PIPELINING).
    pub max_pipelined: usize,
}

impl Default for SmtpConfig {
    fn default() -> Self {
        SmtpConfig { max_line_len: 4096, max_pipelined: 128 }
    }
}

/// Everything an app parser may consult.
#[derive(Clone, Debug, Default)]
pub struct AppConfig {
    pub files: FileConfig,
    pub http: HttpConfig,
    pub mime: MimeConfig,
    pub smtp: SmtpConfig,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_hash_lists() {
        assert_eq!(HashSet::parse("md5, SHA256").unwrap(), HashSet { md5: true, sha256: true, ..HashSet::NONE });
        assert_eq!(HashSet::parse("all").unwrap(), HashSet::default());
        assert!(HashSet::parse("crc32").unwrap_err().contains("crc32"));
    }
}
