//! Anomalies: the ways a sender bent a protocol to carry a file. Each has one name, defined
//! here and nowhere else; a record lists those that touched its file (`anomalies`), so an
//! analyst sees that framing was bent even when the file was carved exactly. The README's
//! "Evasion" section lists the same names (a test keeps the two in step).
//!
//! A record keeps its anomalies in an [`Anomalies`] set: a bit per name, no allocation on the
//! hot path, serialized as the list of names in the order declared here.

use serde::de::{self, SeqAccess, Visitor};
use serde::ser::SerializeSeq;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

macro_rules! anomalies {
    ($( $(#[doc = $doc:literal])+ $variant:ident = $name:literal, )*) => {
        /// One way a protocol was bent. Names are `snake_case` and stable: users filter on them.
        #[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
        #[repr(u8)]
        pub enum Anomaly {
            $( $(#[doc = $doc])+ $variant, )*
        }

        impl Anomaly {
            /// Every anomaly, in declaration order.
            pub const ALL: &'static [Anomaly] = &[$(Anomaly::$variant),*];

            /// The name records carry.
            pub const fn name(self) -> &'static str {
                match self { $(Anomaly::$variant => $name,)* }
            }

            /// What it means, for people (the README's table is this text).
            pub fn description(self) -> &'static str {
                match self { $(Anomaly::$variant => concat!($($doc),+).trim(),)* }
            }

            pub fn from_name(name: &str) -> Option<Anomaly> {
                match name { $($name => Some(Anomaly::$variant),)* _ => None }
            }
        }
    };
}

anomalies! {
    // ---- HTTP: status line ----
    /// A response with no status line (HTTP/0.9 style): everything up to the close is the body.
    Http09Response = "http09_response",
    /// A status line whose version is neither 1.0 nor 1.1 (`HTTP/1.01`, `HTTP/2.0`, `http/1.1`).
    StatusVersionOdd = "status_version_odd",
    /// A status line missing its reason, its spaces, or carrying junk.
    StatusLineMalformed = "status_line_malformed",
    /// Bytes or blank lines before the status line.
    JunkBeforeStatus = "junk_before_status",
    /// A line of the head ended by a bare LF instead of CRLF.
    BareLf = "bare_lf",
    /// A line of the head ended by a bare CR.
    BareCr = "bare_cr",
    /// Interim (1xx) responses before the final one.
    InterimResponse = "interim_response",
    // ---- HTTP: headers ----
    /// A header continued on the next line (obsolete folding).
    HeaderFolding = "header_folding",
    /// Whitespace (space, tab, CR) between a header's name and its colon.
    SpaceBeforeColon = "space_before_colon",
    /// A header line without a colon.
    HeaderWithoutColon = "header_without_colon",
    /// NUL or other control bytes in a header.
    HeaderControlBytes = "header_control_bytes",
    /// Bytes outside ASCII in a header name.
    HeaderNonAscii = "header_non_ascii",
    /// Both Transfer-Encoding and Content-Length: chunked framing wins.
    TeAndCl = "te_and_cl",
    /// Content-Length given more than once with the same value.
    ClDuplicate = "cl_duplicate",
    /// Content-Length given more than once with different values.
    ClConflict = "cl_conflict",
    /// A Content-Length that is not a plain decimal number.
    ClInvalid = "cl_invalid",
    /// The connection closed before Content-Length bytes arrived.
    ClShort = "cl_short",
    /// Transfer-Encoding given more than once.
    TeDuplicate = "te_duplicate",
    /// A Transfer-Encoding that is not exactly `chunked` (`xchunked`, `chunked-x`, `chunked;`):
    /// what a browser does with it decides the framing.
    TeUnknown = "te_unknown",
    /// `chunked` on an HTTP/1.0 response, where browsers ignore it and read to the close.
    TeOnHttp10 = "te_on_http10",
    // ---- HTTP: chunked framing ----
    /// A chunk-size line ended by a bare CR or extra CRs (`f\r\r\n`).
    ChunkSizeBareCr = "chunk_size_bare_cr",
    /// A chunk-size line ended by a bare LF.
    ChunkSizeBareLf = "chunk_size_bare_lf",
    /// Whitespace or control bytes before or after the chunk size.
    ChunkSizeWhitespace = "chunk_size_whitespace",
    /// Bytes after the chunk size that are not an extension.
    ChunkSizeJunk = "chunk_size_junk",
    /// A chunk extension (`;name=value`).
    ChunkExtension = "chunk_extension",
    /// Chunk data not followed by CRLF.
    ChunkDataNoCrlf = "chunk_data_no_crlf",
    /// The body ended (connection closed) before the last chunk.
    ChunkFinalMissing = "chunk_final_missing",
    /// A chunk size that could not be read: the rest of the connection is the body.
    ChunkSizeInvalid = "chunk_size_invalid",
    // ---- HTTP: content encoding ----
    /// A content encoding nobody decodes: the bytes are kept as sent.
    CeUnknown = "ce_unknown",
    /// More than one content encoding (`gzip, gzip`, two headers).
    CeStacked = "ce_stacked",
    /// `deflate` sent as raw deflate, without the zlib header.
    CeRawDeflate = "ce_raw_deflate",
    /// Content-Encoding declared but the body is not encoded that way: kept as sent.
    CeNotEncoded = "ce_not_encoded",
    /// Compressed data that breaks off or is corrupt: what decoded before the damage is the file.
    CeDecodeError = "ce_decode_error",
    /// A gzip member whose trailer (CRC-32, size) is wrong.
    GzipBadTrailer = "gzip_bad_trailer",
    /// A gzip member without its trailer.
    GzipTrailerMissing = "gzip_trailer_missing",
    /// Bytes after the first gzip member (another member, or junk).
    GzipExtraData = "gzip_extra_data",
    // ---- HTTP: after the head ----
    /// Bytes after a response's framed body that are not a response.
    DataAfterBody = "data_after_body",
    /// A body whose framing could not be followed: logged to the connection's end, truncated
    /// with `truncated_reason: "framing"`.
    FramingLost = "framing_lost",
}

/// A set of anomalies: one bit each.
#[derive(Copy, Clone, Default, PartialEq, Eq, Hash)]
pub struct Anomalies(u128);

// One bit per anomaly: the set is a u128.
const _: () = assert!(Anomaly::ALL.len() <= 128);

impl Anomalies {
    pub const EMPTY: Anomalies = Anomalies(0);

    pub fn insert(&mut self, a: Anomaly) {
        self.0 |= 1u128 << a as u8;
    }
    pub fn contains(&self, a: Anomaly) -> bool {
        self.0 & (1u128 << a as u8) != 0
    }
    pub fn is_empty(&self) -> bool {
        self.0 == 0
    }
    pub fn len(&self) -> usize {
        self.0.count_ones() as usize
    }
    /// Adds every anomaly of `other`.
    pub fn extend(&mut self, other: Anomalies) {
        self.0 |= other.0;
    }
    /// The anomalies present, in declaration order.
    pub fn iter(&self) -> impl Iterator<Item = Anomaly> + '_ {
        Anomaly::ALL.iter().copied().filter(|a| self.contains(*a))
    }
    /// Their names, in declaration order.
    pub fn names(&self) -> Vec<&'static str> {
        self.iter().map(Anomaly::name).collect()
    }
}

impl From<Anomaly> for Anomalies {
    fn from(a: Anomaly) -> Self {
        let mut s = Anomalies::EMPTY;
        s.insert(a);
        s
    }
}

impl FromIterator<Anomaly> for Anomalies {
    fn from_iter<I: IntoIterator<Item = Anomaly>>(iter: I) -> Self {
        let mut s = Anomalies::EMPTY;
        for a in iter {
            s.insert(a);
        }
        s
    }
}

impl fmt::Debug for Anomalies {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter().map(Anomaly::name)).finish()
    }
}

impl fmt::Display for Anomaly {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Serialize for Anomalies {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.len()))?;
        for a in self.iter() {
            seq.serialize_element(a.name())?;
        }
        seq.end()
    }
}

impl<'de> Deserialize<'de> for Anomalies {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct NamesVisitor;
        impl<'de> Visitor<'de> for NamesVisitor {
            type Value = Anomalies;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of anomaly names")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Anomalies, A::Error> {
                let mut s = Anomalies::EMPTY;
                while let Some(name) = seq.next_element::<String>()? {
                    let a = Anomaly::from_name(&name)
                        .ok_or_else(|| de::Error::custom(format!("unknown anomaly {name:?}")))?;
                    s.insert(a);
                }
                Ok(s)
            }
        }
        deserializer.deserialize_seq(NamesVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_snake_case_and_round_trip() {
        let mut seen = std::collections::HashSet::new();
        for &a in Anomaly::ALL {
            assert!(seen.insert(a.name()), "duplicate {}", a.name());
            assert!(a
                .name()
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'));
            assert_eq!(Anomaly::from_name(a.name()), Some(a));
            assert!(!a.description().is_empty());
        }
    }

    #[test]
    fn a_set_serializes_as_names_in_declaration_order() {
        let s: Anomalies = [Anomaly::TeAndCl, Anomaly::ChunkSizeBareCr, Anomaly::TeAndCl]
            .into_iter()
            .collect();
        assert_eq!(s.len(), 2);
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(json, r#"["te_and_cl","chunk_size_bare_cr"]"#);
        assert_eq!(serde_json::from_str::<Anomalies>(&json).unwrap(), s);
        assert!(serde_json::from_str::<Anomalies>(r#"["no_such"]"#).is_err());
    }
}
