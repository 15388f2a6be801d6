//! The file record: one per file seen on the wire. Field names follow Zeek's files.log
//! (`fuid`, `uid`, `seen_bytes` as `size`, `missing_bytes`, `total_bytes`, `depth`, `parent_fuid`)
//! flattened the way the issue fixes them (`orig_h` rather than `id.orig_h`).

use crate::time::Timestamp;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::IpAddr;

#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    Http,
    Smtp,
}

impl Proto {
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Http => "http",
            Proto::Smtp => "smtp",
        }
    }
}

/// Which way the file travelled relative to the connection: an upload is sent by the
/// originator (HTTP request body, SMTP message), a download by the responder.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Upload,
    Download,
}

/// A connection's identity as the app layer and the records see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnMeta {
    /// Zeek-style connection uid ("C" + base62), unique per sensor run.
    pub uid: String,
    pub orig_h: IpAddr,
    pub orig_p: u16,
    pub resp_h: IpAddr,
    pub resp_p: u16,
    /// Outer VLAN id if the packets were tagged.
    pub vlan: Option<u16>,
    pub start: Timestamp,
}

/// HTTP transaction context of a file.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpInfo {
    pub method: Option<String>,
    pub uri: Option<String>,
    pub status: Option<u16>,
    pub host: Option<String>,
    pub user_agent: Option<String>,
    pub referrer: Option<String>,
    /// Content-Range of a 206 response, as "first-last/total".
    pub range: Option<String>,
}

/// SMTP transaction context of a file.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SmtpInfo {
    pub helo: Option<String>,
    pub mail_from: Option<String>,
    pub rcpt_to: Vec<String>,
    pub subject: Option<String>,
    pub message_id: Option<String>,
}

/// What the application parser knows about a file when it starts (or learns before it ends).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileMeta {
    pub proto: Proto,
    pub direction: Direction,
    pub filename: Option<String>,
    /// What the protocol claimed (HTTP Content-Type, MIME part Content-Type), parameters stripped.
    pub declared_mime_type: Option<String>,
    /// Size the protocol announced (Content-Length, Content-Range total), if any.
    pub total_bytes: Option<u64>,
    /// MIME nesting depth (0 = the transfer itself).
    pub depth: u32,
    pub parent_fuid: Option<String>,
    /// The file is one piece of a larger object (206 range that could not be completed).
    pub partial: bool,
    pub http: Option<HttpInfo>,
    pub smtp: Option<SmtpInfo>,
}

impl FileMeta {
    pub fn new(proto: Proto, direction: Direction) -> Self {
        FileMeta {
            proto,
            direction,
            filename: None,
            declared_mime_type: None,
            total_bytes: None,
            depth: 0,
            parent_fuid: None,
            partial: false,
            http: None,
            smtp: None,
        }
    }
}

/// One finished file. Serialized as one JSON line of the files log.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FileRecord {
    /// First packet of the file, RFC 3339 UTC.
    pub ts: String,
    pub fuid: String,
    pub uid: String,
    pub proto: Proto,
    pub orig_h: String,
    pub orig_p: u16,
    pub resp_h: String,
    pub resp_p: u16,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub vlan: Option<u16>,
    pub direction: Direction,
    /// Zeek's `is_orig`: the originator sent the file.
    pub is_orig: bool,
    pub filename: Option<String>,
    /// Sniffed from content.
    pub mime_type: Option<String>,
    pub declared_mime_type: Option<String>,
    /// Type guessed from the filename's extension (mime_guess).
    pub extension_mime_type: Option<String>,
    /// Decoded bytes seen (Zeek's seen_bytes).
    pub size: u64,
    pub total_bytes: Option<u64>,
    pub missing_bytes: u64,
    /// Bytes past the hashing limit that were not hashed.
    pub overflow_bytes: u64,
    pub truncated: bool,
    /// Why the file ended early, when it did ("limit", "conn_closed", "timeout", "gap", ...).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub truncated_reason: Option<String>,
    pub partial: bool,
    pub depth: u32,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub parent_fuid: Option<String>,
    /// Seconds from first to last byte.
    pub duration: f64,
    /// Hashes of the whole decoded content; absent when bytes are missing (a hash of a file with
    /// holes identifies nothing) or the hash is disabled.
    pub md5: Option<String>,
    pub sha1: Option<String>,
    pub sha256: Option<String>,
    pub blake3: Option<String>,

    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub http_method: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub http_uri: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub http_status: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub http_host: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub http_user_agent: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub http_referrer: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub http_range: Option<String>,

    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub smtp_helo: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub smtp_mail_from: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub smtp_rcpt_to: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub smtp_subject: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub smtp_message_id: Option<String>,
}

impl FileRecord {
    pub fn to_json_line(&self) -> String {
        // Serializing plain owned data cannot fail.
        let mut s = serde_json::to_string(self).expect("FileRecord serializes");
        s.push('\n');
        s
    }
}

/// Zeek-style unique ids: a letter and base62 digits.
pub fn zeek_id(prefix: char, mut n: u64) -> String {
    const DIGITS: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut buf = [0u8; 11];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = DIGITS[(n % 62) as usize];
        n /= 62;
        if n == 0 {
            break;
        }
    }
    let mut s = String::with_capacity(12);
    s.push(prefix);
    s.push_str(std::str::from_utf8(&buf[i..]).expect("ascii"));
    s
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zeek_ids_are_base62() {
        assert_eq!(zeek_id('C', 0), "C0");
        assert_eq!(zeek_id('F', 61), "Fz");
        assert_eq!(zeek_id('F', 62), "F10");
        assert_eq!(zeek_id('C', u64::MAX).len(), 12);
    }
}
