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
    /// Interim (1xx) responses before the final one (a 101 without an Upgrade asked for is one).
    InterimResponse = "interim_response",
    /// A status code outside 100-599.
    StatusCodeOdd = "status_code_odd",
    /// A response asking to be saved (`Content-Disposition: attachment`) under a status browsers
    /// do not save a download for (anything but 200-203, or 206 with a range).
    StatusRefusedDownload = "status_refused_download",
    /// A 206 without a usable Content-Range: browsers refuse it.
    RangeMissing = "range_missing",
    /// The head's empty line was bent (a bare CR, blanks on it): the head is taken to end there.
    HeadEndBent = "head_end_bent",
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
    /// Content-Disposition given more than once with different values (Chromium refuses it).
    CdConflict = "cd_conflict",
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
    /// Compressed data that breaks off or is corrupt: what decoded before the damage is the file
    /// (what browsers save).
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
    // ---- Mail: MIME and SMTP ----
    /// A line that starts with a multipart's `--boundary` but goes on with other bytes (junk, a
    /// longer token, junk after the closing `--`): not a delimiter, as mail clients read it;
    /// parsers that end the part there (Suricata, Wireshark) see less.
    BoundaryTrailingJunk = "boundary_trailing_junk",
    /// A multipart without its close delimiter: its last part runs to the end of the enclosing
    /// part or of the message.
    BoundaryCloseMissing = "boundary_close_missing",
    /// A multipart whose boundary never occurs: its whole body is logged as one file.
    BoundaryNotFound = "boundary_not_found",
    /// A multipart Content-Type without a usable boundary parameter: its body is one file.
    BoundaryMissing = "boundary_missing",
    /// A nested multipart with the same boundary as an enclosing one: delimiters are taken as
    /// the innermost one's.
    BoundaryReused = "boundary_reused",
    /// A MIME part or attached message that starts with content instead of a header block.
    PartWithoutHeaders = "part_without_headers",
    /// Content-Type given more than once in one entity: the first counts.
    ContentTypeDuplicate = "content_type_duplicate",
    /// Content-Disposition given more than once in one entity: the first counts.
    DispositionDuplicate = "disposition_duplicate",
    /// Content-Transfer-Encoding given more than once in one entity: the first counts.
    CteDuplicate = "cte_duplicate",
    /// A Content-Transfer-Encoding that is not 7bit, 8bit, binary, base64, quoted-printable or
    /// x-uuencode: the bytes are kept as sent.
    CteUnknown = "cte_unknown",
    /// x-uuencode content (not a MIME encoding, but mail clients decode it): decoded.
    CteUuencode = "cte_uuencode",
    /// A multipart nested deeper than the MIME depth limit: not split, its whole body is logged
    /// as one file (nesting cannot hide a part).
    MimeTooDeep = "mime_too_deep",
    /// Parts past the per-message limit: the rest of the multipart is logged as one file, its
    /// delimiters included (a part cannot hide behind the limit).
    MimePartsExceeded = "mime_parts_exceeded",
    /// A Content-Type or Content-Disposition parameter given twice: the first counts.
    ParamDuplicate = "param_duplicate",
    /// RFC 2231 continuations of a parameter out of order: assembled by section number.
    Rfc2231OutOfOrder = "rfc2231_out_of_order",
    /// RFC 2231 continuations with a section missing or repeated: the sections there are joined.
    Rfc2231SectionMissing = "rfc2231_section_missing",
    /// Characters outside the base64 alphabet (spaces, tabs, junk) in base64 content: skipped.
    Base64InvalidChars = "base64_invalid_chars",
    /// base64 content that ends inside a quantum, without its `=` padding.
    Base64PaddingMissing = "base64_padding_missing",
    /// base64 content that goes on after `=` padding (encodings back to back): decoded on;
    /// decoders that stop at the padding (Python's `email`) see less.
    Base64DataAfterPadding = "base64_data_after_padding",
    /// In quoted-printable content, `=` followed by neither two hex digits nor a line break:
    /// kept literally.
    QpInvalidEscape = "qp_invalid_escape",
    // ---- TCP: the segments that carried the file ----
    /// Overlapping segments carried different bytes for the same sequence numbers: which copy a
    /// host keeps depends on its stack; `--overlap` (first or last) decides which is logged.
    TcpOverlapConflict = "tcp_overlap_conflict",
    /// Segments with a bad TCP or IPv4 header checksum in the file's direction. Hosts drop them
    /// and so does xdpcarve (`--checksums`), except while a direction has sent nothing but bad
    /// checksums, as a capture on a sending host with checksum offload shows.
    TcpBadChecksum = "tcp_bad_checksum",
    /// Data segments of the file's direction came with different IP TTLs or hop limits: a copy
    /// may expire between the sensor and the host (an insertion), so which copy the host saw is
    /// uncertain.
    TcpTtlChanged = "tcp_ttl_changed",
    /// Data on a SYN (TCP Fast Open): a host without a valid cookie discards it and waits for it
    /// again after the handshake; the first copy is logged.
    TcpSynData = "tcp_syn_data",
    /// A segment with the URG flag: its bytes are kept inline (as Suricata's default); a socket
    /// without SO_OOBINLINE takes the urgent byte out of the stream.
    TcpUrgentData = "tcp_urgent_data",
    /// A RST a host would ignore (its sequence number outside the window, or its TTL not the
    /// sender's): the connection and its files go on.
    TcpRstIgnored = "tcp_rst_ignored",
    /// Data past the window the receiver advertised (its ACK plus its window, scaled as the
    /// handshake said): a host drops it and waits for it again, so its first copy, which is
    /// logged, may not be what the host took.
    TcpOutsideWindow = "tcp_outside_window",
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

    /// The README's "Evasion" table lists exactly these names, with these meanings.
    #[test]
    fn readme_lists_every_anomaly() {
        let readme = include_str!("../../../README.md");
        let table = readme
            .split_once("| anomaly | meaning |")
            .map(|(_, t)| t.split("\n\n").next().unwrap_or(""))
            .expect("README has the anomaly table");
        let rows: Vec<(&str, &str)> = table
            .lines()
            .filter_map(|l| l.strip_prefix("| `"))
            .filter_map(|l| l.split_once("` | "))
            .map(|(name, rest)| (name, rest.trim_end_matches(" |")))
            .collect();
        let names: Vec<&str> = rows.iter().map(|r| r.0).collect();
        let want: Vec<&str> = Anomaly::ALL.iter().map(|a| a.name()).collect();
        assert_eq!(names, want, "README's anomaly table and anomaly.rs differ");
        for (name, meaning) in rows {
            let a = Anomaly::from_name(name).expect("known name");
            assert_eq!(
                meaning,
                a.description().split_whitespace().collect::<Vec<_>>().join(" "),
                "{name}"
            );
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
