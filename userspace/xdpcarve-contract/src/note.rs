//! Records that complete a file record later.
//!
//! Some facts about a file arrive after its record was written: a scanner's verdict, a fleet
//! sighting. The file record is never rewritten or held back for them. Each fact is a
//! [`FileNote`]: its own JSON line (its own log or stream entry) carrying the file's `fuid`,
//! `uid` and `sha256`, joined to the file record by `fuid` the way Zeek's logs are joined by
//! `uid`. The `kind` says what the note is; its fields are the kind's own, flattened.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use crate::record::{AppFields, FileRecord};
use crate::time::Timestamp;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FileNote {
    /// When the fact was learnt, RFC 3339 UTC.
    pub ts: String,
    /// The file record this completes.
    pub fuid: String,
    pub uid: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub sha256: Option<String>,
    /// What the note is (`scan`, `sighting`, ...).
    pub kind: Cow<'static, str>,
    /// The kind's own fields.
    #[serde(flatten)]
    pub fields: AppFields,
}

impl FileNote {
    /// A note of `kind` about the file of `rec`, learnt at `ts`.
    pub fn about(rec: &FileRecord, kind: &'static str, ts: Timestamp) -> FileNote {
        FileNote {
            ts: ts.rfc3339(),
            fuid: rec.fuid.clone(),
            uid: rec.uid.clone(),
            sha256: rec.sha256.clone(),
            kind: Cow::Borrowed(kind),
            fields: AppFields::new(),
        }
    }

    pub fn to_json_line(&self) -> String {
        // Serializing plain owned data cannot fail.
        let mut s = serde_json::to_string(self).expect("FileNote serializes");
        s.push('\n');
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Direction, FileRecord, Proto};

    fn record() -> FileRecord {
        let json = r#"{"ts":"2024-01-01T00:00:00.000000Z","fuid":"F1","uid":"C1","proto":"http",
            "orig_h":"10.0.0.1","orig_p":40000,"resp_h":"10.0.0.2","resp_p":80,"direction":"download",
            "is_orig":false,"filename":"a.exe","mime_type":"application/x-dosexec","declared_mime_type":null,
            "extension_mime_type":null,"size":3,"total_bytes":3,"missing_bytes":0,"overflow_bytes":0,
            "truncated":false,"partial":false,"depth":0,"duration":0.0,"md5":null,"sha1":null,
            "sha256":"abc","blake3":null,"http_uri":"/a.exe"}"#;
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn a_record_keeps_its_protocol_fields_through_json() {
        let r = record();
        assert_eq!(r.proto, Proto::new("http"));
        assert_eq!(r.direction, Direction::Download);
        assert_eq!(r.fields.str("http_uri"), Some("/a.exe"));
        let again: FileRecord = serde_json::from_str(&r.to_json_line()).unwrap();
        assert_eq!(again, r);
    }

    #[test]
    fn a_note_joins_its_file_by_fuid() {
        let mut n = FileNote::about(&record(), "scan", Timestamp::from_secs(1_700_000_000));
        n.fields.set("scan_verdict", "malicious");
        let line = n.to_json_line();
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(
            (v["fuid"].as_str(), v["uid"].as_str(), v["sha256"].as_str()),
            (Some("F1"), Some("C1"), Some("abc"))
        );
        assert_eq!(
            (v["kind"].as_str(), v["scan_verdict"].as_str()),
            (Some("scan"), Some("malicious"))
        );
        assert_eq!(v["ts"], "2023-11-14T22:13:20.000000Z");
        let back: FileNote = serde_json::from_str(&line).unwrap();
        assert_eq!(back, n);
    }
}
