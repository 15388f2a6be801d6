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
