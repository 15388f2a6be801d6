//! Which files are submitted: type regexes over the sniffed type (and, optionally, the declared
//! type and the filename's extension), within size bounds, and only with a hash to submit.

use crate::config::PolicyConfig;
use regex::{Regex, RegexBuilder};
use xdpcarve_contract::{FileInterest, FileRecord};

/// What the policy says about one record.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Submit it.
    Submit,
    /// No type list matched, or the size is out of bounds.
    NotMatched,
    /// It matched but has no hash (bytes missing, over the hashing limit, hash disabled).
    NoHash,
}

#[derive(Clone, Debug)]
pub struct Policy {
    mime: Option<Regex>,
    declared: Option<Regex>,
    extension: Option<Regex>,
    min_size: u64,
    max_size: Option<u64>,
    /// md5 compatibility mode needs the md5 specifically.
    require_md5: bool,
}

/// A `[policy]` type list that does not compile. The regex compiler's complaint is the source.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// One entry is not a regex (each is compiled alone first, so the error names it).
    #[error("{key}[{index}] `{pattern}`: not a valid regex")]
    Pattern {
        key: &'static str,
        index: usize,
        pattern: String,
        #[source]
        source: regex::Error,
    },
    /// Each entry compiles, but their alternation does not (too big, usually).
    #[error("{key}: the patterns together do not compile")]
    Combined {
        key: &'static str,
        #[source]
        source: regex::Error,
    },
}

/// Compiles a list of patterns into one anchored, case-insensitive alternation.
fn compile(key: &'static str, patterns: &[String]) -> Result<Option<Regex>, PolicyError> {
    if patterns.is_empty() {
        return Ok(None);
    }
    for (index, p) in patterns.iter().enumerate() {
        // Compile each alone first so the error names the one that is wrong.
        Regex::new(p).map_err(|source| PolicyError::Pattern {
            key,
            index,
            pattern: p.clone(),
            source,
        })?;
    }
    let joined = patterns
        .iter()
        .map(|p| format!("(?:{p})"))
        .collect::<Vec<_>>()
        .join("|");
    RegexBuilder::new(&format!("^(?:{joined})$"))
        .case_insensitive(true)
        .size_limit(16 << 20)
        .build()
        .map(Some)
        .map_err(|source| PolicyError::Combined { key, source })
}

impl Policy {
    pub fn new(cfg: &PolicyConfig) -> Result<Policy, PolicyError> {
        Ok(Policy {
            mime: compile("policy.mime_types", &cfg.mime_types)?,
            declared: compile("policy.declared_mime_types", &cfg.declared_mime_types)?,
            extension: compile("policy.extensions", &cfg.extensions)?,
            min_size: cfg.min_size,
            max_size: cfg.max_size,
            require_md5: false,
        })
    }

    /// In md5 compatibility mode a file without an md5 has nothing to submit.
    pub fn require_md5(mut self, yes: bool) -> Policy {
        self.require_md5 = yes;
        self
    }

    pub fn decide(&self, rec: &FileRecord) -> Decision {
        if !self.type_matches(rec) || rec.size < self.min_size || self.max_size.is_some_and(|m| rec.size > m) {
            return Decision::NotMatched;
        }
        let has_hash = if self.require_md5 {
            rec.md5.is_some()
        } else {
            rec.md5.is_some() || rec.sha1.is_some() || rec.sha256.is_some() || rec.blake3.is_some()
        };
        if has_hash && rec.missing_bytes == 0 {
            Decision::Submit
        } else {
            Decision::NoHash
        }
    }

    fn type_matches(&self, rec: &FileRecord) -> bool {
        self.types_match(
            rec.mime_type.as_deref(),
            rec.declared_mime_type.as_deref(),
            rec.filename.as_deref(),
        )
    }

    fn types_match(&self, mime: Option<&str>, declared: Option<&str>, filename: Option<&str>) -> bool {
        let hit = |re: &Option<Regex>, s: Option<&str>| matches!((re, s), (Some(re), Some(s)) if re.is_match(s));
        hit(&self.mime, mime) || hit(&self.declared, declared) || hit(&self.extension, extension_of(filename))
    }
}

/// What an overloaded worker asks before it sheds a file's MD5 and SHA-256: the type lists alone
/// (the size is not known yet).
impl FileInterest for Policy {
    fn wants(&self, mime_type: Option<&str>, declared_mime_type: Option<&str>, filename: Option<&str>) -> bool {
        self.types_match(mime_type, declared_mime_type, filename)
    }
}

/// The part of a filename after its last dot (`archive.tar.gz` gives `gz`), if any.
fn extension_of(filename: Option<&str>) -> Option<&str> {
    let name = filename?;
    let base = name.rsplit(['/', '\\']).next().unwrap_or(name);
    match base.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() && !ext.is_empty() => Some(ext),
        _ => None,
    }
}

/// The top-level family of a MIME type for metrics (`application`, `text`, `image`, ...), so the
/// label's values stay few; anything odd is `other`, no type is `unknown`.
pub fn mime_family(mime: Option<&str>) -> &'static str {
    let Some(m) = mime else { return "unknown" };
    match m.split('/').next().unwrap_or("") {
        "application" => "application",
        "text" => "text",
        "image" => "image",
        "audio" => "audio",
        "video" => "video",
        "message" => "message",
        "multipart" => "multipart",
        "font" => "font",
        "model" => "model",
        _ => "other",
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use xdpcarve_contract::{Direction, Proto};

    pub(crate) fn record(mime: Option<&str>, size: u64, md5: Option<&str>) -> FileRecord {
        FileRecord {
            ts: "2024-01-01T00:00:00.000000Z".into(),
            fuid: "F1".into(),
            uid: "C1".into(),
            proto: Proto::new("http"),
            orig_h: "10.0.0.1".into(),
            orig_p: 40000,
            resp_h: "10.0.0.2".into(),
            resp_p: 80,
            vlan: None,
            direction: Direction::Download,
            is_orig: false,
            filename: None,
            mime_type: mime.map(str::to_string),
            declared_mime_type: None,
            extension_mime_type: None,
            size,
            total_bytes: Some(size),
            missing_bytes: 0,
            overflow_bytes: 0,
            truncated: false,
            truncated_reason: None,
            anomalies: Default::default(),
            partial: false,
            depth: 0,
            parent_fuid: None,
            duration: 0.0,
            md5: md5.map(str::to_string),
            sha1: None,
            sha256: None,
            blake3: None,
            hashes_shed: Vec::new(),
            overload: false,
            scan: Default::default(),
            fields: Default::default(),
        }
    }

    const MD5: &str = "44d88612fea8a8f36de82e1278abb02f";

    #[test]
    fn default_policy_takes_dangerous_types_only() {
        let p = Policy::new(&PolicyConfig::default()).unwrap();
        assert_eq!(
            p.decide(&record(Some("application/x-dosexec"), 10, Some(MD5))),
            Decision::Submit
        );
        assert_eq!(
            p.decide(&record(Some("application/PDF"), 10, Some(MD5))),
            Decision::Submit
        );
        assert_eq!(
            p.decide(&record(Some("text/plain"), 10, Some(MD5))),
            Decision::NotMatched
        );
        // Anchored: a type that merely contains a listed one is not it.
        assert_eq!(
            p.decide(&record(Some("application/pdfx"), 10, Some(MD5))),
            Decision::NotMatched
        );
        assert_eq!(p.decide(&record(None, 10, Some(MD5))), Decision::NotMatched);
        assert_eq!(p.decide(&record(Some("application/pdf"), 10, None)), Decision::NoHash);
        assert_eq!(
            p.decide(&record(Some("application/pdf"), 0, Some(MD5))),
            Decision::NotMatched
        );
    }

    #[test]
    fn declared_type_extension_and_sizes() {
        let cfg = PolicyConfig {
            mime_types: vec!["text/.*".into()],
            declared_mime_types: vec!["application/msword".into()],
            extensions: vec!["exe|scr".into()],
            min_size: 5,
            max_size: Some(100),
        };
        let p = Policy::new(&cfg).unwrap();
        let mut r = record(Some("application/octet-stream"), 10, Some(MD5));
        assert_eq!(p.decide(&r), Decision::NotMatched);
        r.filename = Some("C:\\x\\setup.EXE".into());
        assert_eq!(p.decide(&r), Decision::Submit);
        r.filename = Some("exe".into());
        assert_eq!(p.decide(&r), Decision::NotMatched);
        r.declared_mime_type = Some("application/msword".into());
        assert_eq!(p.decide(&r), Decision::Submit);
        assert_eq!(
            p.decide(&record(Some("text/html"), 101, Some(MD5))),
            Decision::NotMatched
        );
        assert_eq!(p.decide(&record(Some("text/html"), 4, Some(MD5))), Decision::NotMatched);
        let mut gap = record(Some("text/html"), 50, Some(MD5));
        gap.missing_bytes = 3;
        assert_eq!(p.decide(&gap), Decision::NoHash);
    }

    #[test]
    fn md5_mode_needs_md5() {
        let p = Policy::new(&PolicyConfig::default()).unwrap().require_md5(true);
        let mut r = record(Some("application/pdf"), 10, None);
        r.sha256 = Some("ab".repeat(32));
        assert_eq!(p.decide(&r), Decision::NoHash);
        let p = Policy::new(&PolicyConfig::default()).unwrap();
        assert_eq!(p.decide(&r), Decision::Submit);
    }

    #[test]
    fn bad_regex_names_the_key() {
        let cfg = PolicyConfig {
            extensions: vec!["ok".into(), "(".into()],
            ..PolicyConfig::default()
        };
        let err = Policy::new(&cfg).unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("policy.extensions[1] `(`"), "{text}");
        // The compiler's complaint is the source, not part of the message.
        let source = std::error::Error::source(&err)
            .expect("the regex error is kept")
            .to_string();
        assert!(
            source.contains("unclosed group") && !text.contains(&source),
            "{text} / {source}"
        );
    }

    #[test]
    fn families() {
        assert_eq!(mime_family(Some("application/pdf")), "application");
        assert_eq!(mime_family(Some("x-weird/thing")), "other");
        assert_eq!(mime_family(None), "unknown");
    }
}
