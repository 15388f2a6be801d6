//! The file record: one per file seen on the wire. Field names follow Zeek's files.log
//! (`fuid`, `uid`, `seen_bytes` as `size`, `missing_bytes`, `total_bytes`, `depth`, `parent_fuid`)
//! flattened the way the issue fixes them (`orig_h` rather than `id.orig_h`).

use crate::anomaly::Anomalies;
use crate::scan::ScanFields;
use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;
use std::borrow::Cow;
use std::fmt;

/// The protocol that carried a file (`http`, `smtp`, ...): the name its crate registers.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Proto(Cow<'static, str>);

impl Proto {
    pub const fn new(name: &'static str) -> Proto {
        Proto(Cow::Borrowed(name))
    }
    pub fn as_str(&self) -> &str {
        &self.0
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

/// A protocol's own fields of a record, in the order they were set, serialized flat into the
/// record as Zeek's logs carry `http_*`/`smtp_*` columns. Each protocol crate owns its names
/// (prefixed with the protocol's name) and a typed struct that writes them; unset fields are
/// left out, as `null` columns are in Zeek's JSON logs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AppFields(Vec<(Cow<'static, str>, Value)>);

impl AppFields {
    pub const fn new() -> Self {
        AppFields(Vec::new())
    }

    /// Sets `name` (replacing an earlier value in place, keeping its position).
    pub fn set(&mut self, name: &'static str, value: impl Into<Value>) {
        let value = value.into();
        match self.0.iter_mut().find(|(n, _)| n == name) {
            Some(slot) => slot.1 = value,
            None => self.0.push((Cow::Borrowed(name), value)),
        }
    }

    /// Sets `name` when `value` is present.
    pub fn set_opt<T: Into<Value>>(&mut self, name: &'static str, value: Option<T>) {
        if let Some(v) = value {
            self.set(name, v);
        }
    }

    pub fn get(&self, name: &str) -> Option<&Value> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    /// A string field's value.
    pub fn str(&self, name: &str) -> Option<&str> {
        self.get(name).and_then(Value::as_str)
    }

    /// An integer field's value.
    pub fn u64(&self, name: &str) -> Option<u64> {
        self.get(name).and_then(Value::as_u64)
    }

    /// A list-of-strings field's values (empty when unset).
    pub fn strs(&self, name: &str) -> Vec<&str> {
        match self.get(name) {
            Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.0.iter().map(|(n, v)| (n.as_ref(), v))
    }
}

impl Serialize for AppFields {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (name, value) in &self.0 {
            map.serialize_entry(name.as_ref(), value)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for AppFields {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct FieldsVisitor;
        impl<'de> Visitor<'de> for FieldsVisitor {
            type Value = AppFields;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map of protocol fields")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<AppFields, A::Error> {
                let mut fields = Vec::new();
                while let Some((name, value)) = access.next_entry::<String, Value>()? {
                    fields.push((Cow::Owned(name), value));
                }
                Ok(AppFields(fields))
            }
        }
        deserializer.deserialize_map(FieldsVisitor)
    }
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
    /// How the sender bent the protocol to carry this file.
    pub anomalies: Anomalies,
    /// The protocol's own part of the record (`http_uri`, `smtp_mail_from`, ...).
    pub fields: AppFields,
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
            anomalies: Anomalies::EMPTY,
            fields: AppFields::new(),
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
    /// How the sender bent the protocol to carry this file (names in [`crate::anomaly`]);
    /// left out when none.
    #[serde(skip_serializing_if = "Anomalies::is_empty", default)]
    pub anomalies: Anomalies,
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
    /// Hashes the worker stopped computing for this file because it was overloaded (in the
    /// shedding order: "blake3", "sha1", "md5", "sha256"); left out when none.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub hashes_shed: Vec<String>,
    /// The worker was shedding file work while this file was open; left out when not.
    #[serde(skip_serializing_if = "std::ops::Not::not", default)]
    pub overload: bool,

    /// Where the store keeps the file and what the scanners said (left out when neither).
    #[serde(flatten)]
    pub scan: ScanFields,

    /// The protocol's part, flattened into the record (`http_uri`, `smtp_mail_from`, ...).
    #[serde(flatten)]
    pub fields: AppFields,
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
    fn app_fields_flatten_into_the_record_and_back() {
        let mut f = AppFields::new();
        f.set("toy_verb", "PUT");
        f.set_opt("toy_code", Some(200u16));
        f.set_opt::<String>("toy_none", None);
        f.set("toy_list", vec!["a".to_string(), "b".to_string()]);
        f.set("toy_verb", "GET");
        let json = serde_json::to_string(&f).unwrap();
        assert_eq!(json, r#"{"toy_verb":"GET","toy_code":200,"toy_list":["a","b"]}"#);
        assert_eq!(f.str("toy_verb"), Some("GET"));
        assert_eq!(f.u64("toy_code"), Some(200));
        assert_eq!(f.strs("toy_list"), ["a", "b"]);
        assert!(f.strs("toy_none").is_empty());
        let back: AppFields = serde_json::from_str(&json).unwrap();
        assert_eq!(back, f);
    }

    #[test]
    fn zeek_ids_are_base62() {
        assert_eq!(zeek_id('C', 0), "C0");
        assert_eq!(zeek_id('F', 61), "Fz");
        assert_eq!(zeek_id('F', 62), "F10");
        assert_eq!(zeek_id('C', u64::MAX).len(), 12);
    }
}
