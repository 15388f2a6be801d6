//! MIME header fields: unfolding, Content-Type/Content-Disposition parameters (RFC 2045, RFC 2231
//! continuations and charsets), RFC 2047 encoded-words, and the few charsets mail names use.
//! Everything here works on one bounded header block, so plain allocation is fine.
//!
//! Where senders bend the fields, the first of a repeated field or parameter counts (as Python's
//! `email` and most clients read them), and the bend is noted in [`EntityHeaders::anomalies`].

use xdpcarve_contract::{Anomalies, Anomaly};

/// Longest encoded-word looked for (RFC 2047 allows 75 characters; some mailers exceed it).
const MAX_WORD: usize = 1024;
/// Parameters (or RFC 2231 sections) of one field considered; real ones have a handful.
const MAX_PARAMS: usize = 128;

/// The header fields of one entity that the parser acts on.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct EntityHeaders {
    /// `type/subtype`, lowercased, parameters stripped; None when absent or unparsable.
    pub content_type: Option<String>,
    pub boundary: Option<Vec<u8>>,
    /// Content-Type `name` parameter, decoded.
    pub ct_name: Option<String>,
    /// Content-Disposition type, lowercased (`attachment`, `inline`, `form-data`).
    pub disposition: Option<String>,
    /// Content-Disposition `filename` parameter, decoded.
    pub filename: Option<String>,
    /// Content-Disposition `name` parameter (form-data field name).
    pub field_name: Option<String>,
    pub transfer_encoding: TransferEncoding,
    pub subject: Option<String>,
    pub message_id: Option<String>,
    /// Encoded-words or RFC 2231 values that could not be decoded (left literal).
    pub decode_errors: u64,
    /// How the fields were bent (duplicates, unknown encodings, RFC 2231 disorder).
    pub anomalies: Anomalies,
}

#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub enum TransferEncoding {
    /// 7bit, 8bit, binary, absent, or unknown: bytes are the content.
    #[default]
    Identity,
    Base64,
    QuotedPrintable,
    /// x-uuencode (not MIME, but decoded by mail clients and Python's `email`).
    Uuencode,
}

/// Reads a Content-Transfer-Encoding value. Folding and surrounding whitespace are not part of a
/// structured value; anything else that is not a known name (a quoted `"base64"` included, as
/// Python's `email` reads it) is unknown and leaves the bytes as sent.
fn transfer_encoding(value: &[u8], anomalies: &mut Anomalies) -> TransferEncoding {
    let v = String::from_utf8_lossy(value).trim().to_ascii_lowercase();
    match v.as_str() {
        "base64" => TransferEncoding::Base64,
        "quoted-printable" => TransferEncoding::QuotedPrintable,
        "x-uuencode" | "uuencode" | "x-uue" | "uue" => {
            anomalies.insert(Anomaly::CteUuencode);
            TransferEncoding::Uuencode
        }
        "7bit" | "8bit" | "binary" | "" => TransferEncoding::Identity,
        _ => {
            anomalies.insert(Anomaly::CteUnknown);
            TransferEncoding::Identity
        }
    }
}

/// Parses a header block (raw bytes; lines end in CRLF, LF or a bare CR; folded lines unfolded).
pub fn parse_block(block: &[u8]) -> EntityHeaders {
    let mut h = EntityHeaders::default();
    let (mut seen_ct, mut seen_cte) = (false, false);
    for (name, value) in fields(block) {
        let name = name.trim_ascii();
        let value = value.trim_ascii();
        if name.eq_ignore_ascii_case(b"content-type") {
            if seen_ct {
                h.anomalies.insert(Anomaly::ContentTypeDuplicate);
                continue; // the first one wins, like most parsers
            }
            seen_ct = true;
            let (ty, params) = parse_params(value, &mut h.decode_errors, &mut h.anomalies);
            let ty = ty.to_ascii_lowercase();
            if ty.contains('/') {
                h.content_type = Some(ty);
            }
            for (k, v) in params {
                match k.as_str() {
                    "boundary" if !v.is_empty() => h.boundary = Some(v.into_bytes()),
                    "name" => h.ct_name = Some(v),
                    _ => {}
                }
            }
        } else if name.eq_ignore_ascii_case(b"content-disposition") {
            if h.disposition.is_some() {
                h.anomalies.insert(Anomaly::DispositionDuplicate);
                continue;
            }
            let (ty, params) = parse_params(value, &mut h.decode_errors, &mut h.anomalies);
            h.disposition = Some(ty.to_ascii_lowercase());
            for (k, v) in params {
                match k.as_str() {
                    "filename" => h.filename = Some(v),
                    "name" => h.field_name = Some(v),
                    _ => {}
                }
            }
        } else if name.eq_ignore_ascii_case(b"content-transfer-encoding") {
            if seen_cte {
                h.anomalies.insert(Anomaly::CteDuplicate);
                continue;
            }
            seen_cte = true;
            h.transfer_encoding = transfer_encoding(value, &mut h.anomalies);
        } else if name.eq_ignore_ascii_case(b"subject") {
            if h.subject.is_none() {
                h.subject = Some(decode_words(value, &mut h.decode_errors));
            }
        } else if name.eq_ignore_ascii_case(b"message-id") && h.message_id.is_none() {
            h.message_id = Some(bytes_to_text(value));
        }
    }
    h
}

/// The lines of a header block without their line breaks: CRLF, LF and a bare CR each end a line
/// (as Python's `email` and Thunderbird split them).
pub fn lines(block: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = block;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let (line, next) = match memchr::memchr2(b'\n', b'\r', rest) {
            None => (rest, &rest[rest.len()..]),
            Some(i) if rest[i] == b'\r' && rest.get(i + 1) == Some(&b'\n') => (&rest[..i], &rest[i + 2..]),
            Some(i) => (&rest[..i], &rest[i + 1..]),
        };
        rest = next;
        Some(line)
    })
}

/// Splits a header block into (name, unfolded value) pairs. Lines that are not fields (no colon,
/// or a name that is not a field name), and continuations of such lines, are skipped.
pub fn fields(block: &[u8]) -> Vec<(&[u8], Vec<u8>)> {
    let mut out: Vec<(&[u8], Vec<u8>)> = Vec::new();
    // The last line was a field, so a continuation line belongs to it.
    let mut in_field = false;
    for line in lines(block) {
        if line.is_empty() {
            in_field = false;
            continue;
        }
        if line[0] == b' ' || line[0] == b'\t' {
            // Continuation: unfolding removes the line break, keeps the whitespace.
            if let (true, Some((_, v))) = (in_field, out.last_mut()) {
                v.extend_from_slice(line);
            }
            continue;
        }
        in_field = is_field_line(line);
        if in_field {
            let colon = memchr::memchr(b':', line).expect("a field line has a colon");
            out.push((&line[..colon], line[colon + 1..].to_vec()));
        }
    }
    out
}

/// True if a field line (see [`is_field_line`]) has whitespace between its name and colon.
pub fn has_space_before_colon(line: &[u8]) -> bool {
    match memchr::memchr(b':', line) {
        Some(colon) if colon > 0 => matches!(line[colon - 1], b' ' | b'\t'),
        _ => false,
    }
}

/// True if `line` (without its line break) can be a header field or its continuation.
pub fn is_field_line(line: &[u8]) -> bool {
    if line.first().is_some_and(|&b| b == b' ' || b == b'\t') {
        return true;
    }
    match memchr::memchr(b':', line) {
        // A field name is printable ASCII without spaces (RFC 5322 ftext); mail in the wild
        // sometimes has a space before the colon, which Thunderbird accepts (it backs up over
        // whitespace before the colon; Python's email ends the header block there instead).
        Some(colon) if colon > 0 => {
            let name = line[..colon].trim_ascii_end();
            !name.is_empty() && name.iter().all(|&b| (33..=126).contains(&b))
        }
        _ => false,
    }
}

/// `value; k=v; k2="v2"` → (value, [(k lowercased, decoded v)]), with RFC 2231 parameter
/// continuations and charsets assembled.
pub fn parse_value_with_params(raw: &[u8], errors: &mut u64) -> (String, Vec<(String, String)>) {
    let mut anomalies = Anomalies::EMPTY;
    parse_params(raw, errors, &mut anomalies)
}

/// [`parse_value_with_params`], noting how the parameters were bent: a parameter given twice
/// (the first counts), RFC 2231 sections out of order (assembled in order) or with one missing
/// or repeated (the sections there are joined, a repeated one counted once).
pub fn parse_params(raw: &[u8], errors: &mut u64, anomalies: &mut Anomalies) -> (String, Vec<(String, String)>) {
    let mut p = Cursor { s: raw, i: 0 };
    let value = p.take_until(b';');
    let value = bytes_to_text(strip_comments(value).trim_ascii());
    // (name, section, extended, raw value bytes)
    let mut pieces: Vec<(String, Option<u32>, bool, Vec<u8>)> = Vec::new();
    while p.i < p.s.len() {
        p.i += 1; // ';'
        p.skip_ws();
        let name_raw = p.take_while(|b| b != b'=' && b != b';');
        let name = String::from_utf8_lossy(name_raw.trim_ascii()).to_ascii_lowercase();
        if p.peek() != Some(b'=') {
            continue; // parameter without a value
        }
        p.i += 1;
        p.skip_ws();
        let val = if p.peek() == Some(b'"') {
            p.quoted()
        } else {
            p.take_until(b';').trim_ascii().to_vec()
        };
        if name.is_empty() {
            continue;
        }
        // RFC 2231: name*N*, name*N, name*
        let (base, section, extended) = split_2231_name(&name);
        if pieces.len() < MAX_PARAMS {
            pieces.push((base.to_string(), section, extended, val));
        }
    }

    let mut params: Vec<(String, String)> = Vec::new();
    let mut done: Vec<&str> = Vec::new();
    for (idx, (base, section, extended, val)) in pieces.iter().enumerate() {
        if done.contains(&base.as_str()) {
            continue;
        }
        let plain = |(b, s, e, _): &&(String, Option<u32>, bool, Vec<u8>)| b == base && s.is_none() && !*e;
        if pieces.iter().filter(plain).count() > 1 {
            anomalies.insert(Anomaly::ParamDuplicate);
        }
        if section.is_none() && !extended {
            // Plain parameter: prefer an RFC 2231 form of the same name if one exists.
            if pieces.iter().any(|(b, s, e, _)| b == base && (s.is_some() || *e)) {
                continue;
            }
            done.push(base);
            params.push((base.clone(), decode_words(val, errors)));
            continue;
        }
        done.push(base);
        // Gather every section of this parameter, in section order (`name*` is section 0).
        let mut parts: Vec<(u32, bool, &[u8])> = pieces[idx..]
            .iter()
            .filter(|(b, s, e, _)| b == base && (s.is_some() || *e))
            .map(|(_, s, e, v)| (s.unwrap_or(0), *e, v.as_slice()))
            .collect();
        if parts.windows(2).any(|w| w[1].0 < w[0].0) {
            anomalies.insert(Anomaly::Rfc2231OutOfOrder);
        }
        parts.sort_by_key(|&(s, ..)| s);
        let sections = parts.len();
        parts.dedup_by_key(|&mut (s, ..)| s);
        if parts.len() != sections || parts.iter().enumerate().any(|(n, &(s, ..))| s as usize != n) {
            anomalies.insert(Anomaly::Rfc2231SectionMissing);
        }
        let mut charset = String::new();
        let mut bytes = Vec::new();
        for (n, (_, ext, v)) in parts.iter().enumerate() {
            let mut v: &[u8] = v;
            if *ext {
                if n == 0 {
                    // charset'language'value
                    let mut it = v.splitn(3, |&b| b == b'\'');
                    let (a, b, c) = (it.next(), it.next(), it.next());
                    if let (Some(cs), Some(_lang), Some(rest)) = (a, b, c) {
                        charset = String::from_utf8_lossy(cs).to_ascii_lowercase();
                        v = rest;
                    } else {
                        *errors += 1;
                    }
                }
                percent_decode(v, &mut bytes);
            } else {
                bytes.extend_from_slice(v);
            }
        }
        let text = if charset.is_empty() {
            bytes_to_text(&bytes)
        } else {
            decode_charset(&charset, &bytes)
        };
        params.push((base.clone(), text));
    }
    (value, params)
}

fn split_2231_name(name: &str) -> (&str, Option<u32>, bool) {
    let (name, extended) = match name.strip_suffix('*') {
        Some(n) => (n, true),
        None => (name, false),
    };
    if let Some(star) = name.rfind('*') {
        if let Ok(n) = name[star + 1..].parse::<u32>() {
            return (&name[..star], Some(n), extended);
        }
    }
    (name, None, extended)
}

fn percent_decode(v: &[u8], out: &mut Vec<u8>) {
    let mut i = 0;
    while i < v.len() {
        if v[i] == b'%' {
            if let (Some(h), Some(l)) = (v.get(i + 1).and_then(|&b| hex(b)), v.get(i + 2).and_then(|&b| hex(b))) {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
        }
        out.push(v[i]);
        i += 1;
    }
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// Removes RFC 5322 comments `( ... )` outside quoted strings (rare in Content-Type, but seen).
fn strip_comments(s: &[u8]) -> &[u8] {
    match memchr::memchr(b'(', s) {
        Some(i) => &s[..i],
        None => s,
    }
}

struct Cursor<'a> {
    s: &'a [u8],
    i: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }
    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\r' | b'\n')) {
            self.i += 1;
        }
    }
    fn take_while(&mut self, f: impl Fn(u8) -> bool) -> &'a [u8] {
        let start = self.i;
        while self.peek().is_some_and(&f) {
            self.i += 1;
        }
        &self.s[start..self.i]
    }
    /// Up to the next unquoted `stop` (quotes inside are kept).
    fn take_until(&mut self, stop: u8) -> &'a [u8] {
        let start = self.i;
        let mut quoted = false;
        while let Some(b) = self.peek() {
            if b == b'"' {
                quoted = !quoted;
            } else if b == b'\\' && quoted {
                self.i += 1;
            } else if b == stop && !quoted {
                break;
            }
            self.i += 1;
        }
        self.i = self.i.min(self.s.len());
        &self.s[start..self.i]
    }
    /// A quoted string at the cursor, unescaped; then skips to the next `;`.
    fn quoted(&mut self) -> Vec<u8> {
        self.i += 1;
        let mut v = Vec::new();
        while let Some(b) = self.peek() {
            self.i += 1;
            match b {
                b'"' => break,
                b'\\' => {
                    if let Some(n) = self.peek() {
                        v.push(n);
                        self.i += 1;
                    }
                }
                _ => v.push(b),
            }
        }
        self.take_until(b';');
        v
    }
}

/// Raw header bytes to text: UTF-8 (RFC 6532) if valid, else Windows-1252 (the usual culprit).
pub fn bytes_to_text(b: &[u8]) -> String {
    match std::str::from_utf8(b) {
        Ok(s) => s.to_string(),
        Err(_) => decode_charset("windows-1252", b),
    }
}

/// Decodes RFC 2047 encoded-words in an unstructured value (Subject, or a parameter value that
/// carries them, as many mailers do against the RFC). Whitespace between adjacent encoded-words is
/// dropped and their bytes joined before charset decoding, so a UTF-8 character split across two
/// words comes out whole. Undecodable words stay literal and are counted.
pub fn decode_words(raw: &[u8], errors: &mut u64) -> String {
    if memchr::memmem::find(raw, b"=?").is_none() {
        return bytes_to_text(raw);
    }
    let mut out = String::new();
    // Decoded bytes of a run of adjacent encoded-words in the same charset.
    let mut run: Option<(String, Vec<u8>)> = None;
    let mut literal_start = 0;
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'=' && raw.get(i + 1) == Some(&b'?') {
            if let Some((cs, bytes, len)) = parse_word(&raw[i..]) {
                let between = &raw[literal_start..i];
                let joins = run.is_some() && between.iter().all(|b| b.is_ascii_whitespace());
                if !joins {
                    flush_run(&mut run, &mut out);
                    out.push_str(&bytes_to_text(between));
                }
                match &mut run {
                    Some((rcs, rbytes)) if *rcs == cs => rbytes.extend_from_slice(&bytes),
                    _ => {
                        flush_run(&mut run, &mut out);
                        run = Some((cs, bytes));
                    }
                }
                i += len;
                literal_start = i;
                continue;
            } else if looks_like_word(&raw[i..]) {
                *errors += 1;
            }
        }
        i += 1;
    }
    flush_run(&mut run, &mut out);
    out.push_str(&bytes_to_text(&raw[literal_start..]));
    out
}

fn flush_run(run: &mut Option<(String, Vec<u8>)>, out: &mut String) {
    if let Some((cs, bytes)) = run.take() {
        out.push_str(&decode_charset(&cs, &bytes));
    }
}

/// `=?charset?X?text?=` at the start of `s`, decoded to bytes: (charset lowercased, bytes, length).
fn parse_word(s: &[u8]) -> Option<(String, Vec<u8>, usize)> {
    let body = &s[2..];
    let q1 = memchr::memchr(b'?', body)?;
    let charset = &body[..q1];
    let enc = *body.get(q1 + 1)?;
    if body.get(q1 + 2) != Some(&b'?') {
        return None;
    }
    let text_start = q1 + 3;
    // RFC 2047 words are at most 75 characters; a bounded search keeps hostile headers linear.
    let window = &body[text_start.min(body.len())..body.len().min(text_start + MAX_WORD)];
    let end = memchr::memmem::find(window, b"?=")? + text_start;
    let text = &body[text_start..end];
    if text.iter().any(|b| b.is_ascii_whitespace()) || charset.is_empty() {
        return None;
    }
    // RFC 2231 section 5: charset*language
    let charset = charset.split(|&b| b == b'*').next().unwrap_or(charset);
    let charset = String::from_utf8_lossy(charset).to_ascii_lowercase();
    let bytes = match enc {
        b'B' | b'b' => {
            let mut d = xdpcarve_files::decode::base64::Base64Decoder::new();
            let mut out = Vec::new();
            d.decode(text, &mut out);
            d.finish(&mut out);
            if d.invalid_chars > 0 {
                return None;
            }
            out
        }
        b'Q' | b'q' => {
            let mut out = Vec::with_capacity(text.len());
            let mut i = 0;
            while i < text.len() {
                match text[i] {
                    b'_' => out.push(b' '),
                    b'=' => match (
                        text.get(i + 1).and_then(|&b| hex(b)),
                        text.get(i + 2).and_then(|&b| hex(b)),
                    ) {
                        (Some(h), Some(l)) => {
                            out.push(h << 4 | l);
                            i += 2;
                        }
                        _ => return None,
                    },
                    b => out.push(b),
                }
                i += 1;
            }
            out
        }
        _ => return None,
    };
    Some((charset, bytes, 2 + end + 2))
}

fn looks_like_word(s: &[u8]) -> bool {
    // "=?" followed by something word-shaped before the next whitespace.
    let s = &s[..s.len().min(MAX_WORD)];
    let end = s.iter().position(|b| b.is_ascii_whitespace()).unwrap_or(s.len());
    let w = &s[..end];
    w.len() > 6 && w.ends_with(b"?=") && w.iter().filter(|&&b| b == b'?').count() >= 4
}

/// Decodes `bytes` in `charset` (lowercase). UTF-8, US-ASCII, ISO-8859-1/-15 and Windows-1252
/// are decoded exactly; anything else is taken as UTF-8 if valid, else Windows-1252.
pub fn decode_charset(charset: &str, bytes: &[u8]) -> String {
    match charset {
        "utf-8" | "utf8" | "us-ascii" | "ascii" => String::from_utf8_lossy(bytes).into_owned(),
        "iso-8859-1" | "latin1" | "latin-1" | "iso8859-1" | "l1" => bytes.iter().map(|&b| b as char).collect(),
        "iso-8859-15" | "latin-9" | "iso8859-15" => bytes.iter().map(|&b| latin9(b)).collect(),
        "windows-1252" | "cp1252" => bytes.iter().map(|&b| cp1252(b)).collect(),
        _ => match std::str::from_utf8(bytes) {
            Ok(s) => s.to_string(),
            Err(_) => bytes.iter().map(|&b| cp1252(b)).collect(),
        },
    }
}

fn cp1252(b: u8) -> char {
    const HIGH: [char; 32] = [
        '€', '\u{81}', '‚', 'ƒ', '„', '…', '†', '‡', 'ˆ', '‰', 'Š', '‹', 'Œ', '\u{8d}', 'Ž', '\u{8f}', '\u{90}', '‘',
        '’', '“', '”', '•', '–', '—', '˜', '™', 'š', '›', 'œ', '\u{9d}', 'ž', 'Ÿ',
    ];
    match b {
        0x80..=0x9f => HIGH[(b - 0x80) as usize],
        _ => b as char,
    }
}

fn latin9(b: u8) -> char {
    match b {
        0xa4 => '€',
        0xa6 => 'Š',
        0xa8 => 'š',
        0xb4 => 'Ž',
        0xb8 => 'ž',
        0xbc => 'Œ',
        0xbd => 'œ',
        0xbe => 'Ÿ',
        _ => b as char,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_type_params_quoted_and_plain() {
        let h = parse_block(
            b"Content-Type: Multipart/Mixed;\r\n\tboundary=\"----=_Part_1 \\\"x\\\"\"; charset=utf-8\r\n\
              Content-Transfer-Encoding: BASE64\r\n",
        );
        assert_eq!(h.content_type.as_deref(), Some("multipart/mixed"));
        assert_eq!(h.boundary.as_deref(), Some(&b"----=_Part_1 \"x\""[..]));
        assert_eq!(h.transfer_encoding, TransferEncoding::Base64);
        let h = parse_block(b"content-type: text/plain; name=report.pdf\r\nContent-Transfer-Encoding: x-binhex\r\n");
        assert_eq!(h.ct_name.as_deref(), Some("report.pdf"));
        assert_eq!(h.transfer_encoding, TransferEncoding::Identity);
        assert_eq!(h.anomalies.names(), ["cte_unknown"]);
    }

    #[test]
    fn rfc2231_filename_and_continuations() {
        let h = parse_block(b"Content-Disposition: attachment; filename*=utf-8''%E2%82%AC%20rates.pdf\r\n");
        assert_eq!(h.filename.as_deref(), Some("€ rates.pdf"));
        assert_eq!(h.disposition.as_deref(), Some("attachment"));
        let h = parse_block(
            b"Content-Disposition: attachment;\r\n filename*1*=%C3%A9.txt; filename*0*=UTF-8'en'r%C3%A9sum;\r\n \
              filename=\"fallback.txt\"\r\n",
        );
        assert_eq!(h.filename.as_deref(), Some("résumé.txt"));
        let h = parse_block(b"Content-Disposition: attachment; filename*0=\"long \"; filename*1=\"name.doc\"\r\n");
        assert_eq!(h.filename.as_deref(), Some("long name.doc"));
        let h = parse_block(b"Content-Disposition: attachment; filename*=iso-8859-1''caf%E9.txt\r\n");
        assert_eq!(h.filename.as_deref(), Some("café.txt"));
    }

    #[test]
    fn rfc2047_words_joined_and_charsets() {
        let mut e = 0;
        // A UTF-8 character split across two adjacent B words.
        assert_eq!(decode_words(b"=?UTF-8?B?w6k=?= =?UTF-8?B?w6k=?=", &mut e), "éé");
        assert_eq!(decode_words(b"=?utf-8?B?4oI=?=\r\n =?utf-8?B?rA==?=", &mut e), "€");
        assert_eq!(
            decode_words(b"Re: =?ISO-8859-1?Q?caf=E9_au_lait?= now", &mut e),
            "Re: café au lait now"
        );
        assert_eq!(decode_words(b"=?windows-1252?Q?=80uro?=", &mut e), "€uro");
        assert_eq!(decode_words(b"plain subject", &mut e), "plain subject");
        assert_eq!(e, 0);
        assert_eq!(decode_words(b"a =?utf-8?Q?bad=Z?= b", &mut e), "a =?utf-8?Q?bad=Z?= b");
        assert_eq!(e, 1);
        let h = parse_block(b"Content-Type: application/pdf; name=\"=?UTF-8?B?w7xiZXIucGRm?=\"\r\n");
        assert_eq!(h.ct_name.as_deref(), Some("über.pdf"));
    }

    #[test]
    fn unfolding_and_first_field_wins() {
        let h = parse_block(b"Subject: part one\r\n  part two\r\nMessage-ID: <a@b>\r\nSubject: second\r\n");
        assert_eq!(h.subject.as_deref(), Some("part one  part two"));
        assert_eq!(h.message_id.as_deref(), Some("<a@b>"));
    }

    #[test]
    fn hostile_values_stay_bounded() {
        let mut e = 0;
        let junk = "=?utf-8?B?".repeat(6000);
        assert_eq!(decode_words(junk.as_bytes(), &mut e), junk);
        let many = (0..5000).map(|i| format!("; p{i}*{i}*=x")).collect::<String>();
        let (v, params) = parse_value_with_params(format!("text/plain{many}").as_bytes(), &mut e);
        assert_eq!(v, "text/plain");
        assert!(params.len() <= MAX_PARAMS);
    }

    #[test]
    fn bent_parameters_and_fields_are_noted() {
        let names = |h: &EntityHeaders| h.anomalies.names();
        let h =
            parse_block(b"Content-Disposition: attachment; filename*2=\".exe\"; filename*0=inv; filename*1=oice\r\n");
        assert_eq!(
            (h.filename.as_deref(), names(&h)),
            (Some("invoice.exe"), vec!["rfc2231_out_of_order"])
        );
        // A missing section: the ones there are joined (as Python's compat32); a repeated one once.
        let h = parse_block(b"Content-Disposition: attachment; filename*0=inv; filename*2=oice.exe\r\n");
        assert_eq!(
            (h.filename.as_deref(), names(&h)),
            (Some("invoice.exe"), vec!["rfc2231_section_missing"])
        );
        let h = parse_block(b"Content-Disposition: attachment; filename*0=a; filename*0=b; filename*1=c\r\n");
        assert_eq!(
            (h.filename.as_deref(), names(&h)),
            (Some("ac"), vec!["rfc2231_section_missing"])
        );
        // The plain and the RFC 2231 form together are no anomaly (the RFC 2231 one wins).
        let h = parse_block(b"Content-Disposition: attachment; filename=a.pdf; filename*=utf-8''b.exe\r\n");
        assert_eq!((h.filename.as_deref(), names(&h)), (Some("b.exe"), vec![]));
        let h = parse_block(b"Content-Type: multipart/mixed; boundary=A; BOUNDARY=B\r\n");
        assert_eq!(
            (h.boundary.as_deref(), names(&h)),
            (Some(&b"A"[..]), vec!["param_duplicate"])
        );
        // Repeated fields: the first counts, even an unparsable first Content-Type.
        let h = parse_block(
            b"Content-Type: garbage\r\nContent-Type: text/html\r\nContent-Transfer-Encoding: 8bit\r\n\
                              Content-Transfer-Encoding: base64\r\n",
        );
        assert_eq!(h.content_type, None);
        assert_eq!(h.transfer_encoding, TransferEncoding::Identity);
        assert_eq!(names(&h), ["content_type_duplicate", "cte_duplicate"]);
        // Folded values are unfolded before they are read.
        let h = parse_block(b"Content-Transfer-Encoding:\r\n  base64\r\n");
        assert_eq!((h.transfer_encoding, names(&h)), (TransferEncoding::Base64, vec![]));
    }

    #[test]
    fn lines_end_at_crlf_lf_and_bare_cr() {
        let got: Vec<&[u8]> = lines(b"a\r\nb\nc\rd\r\r\ne").collect();
        assert_eq!(got, [&b"a"[..], b"b", b"c", b"d", b"", b"e"]);
        // A line that is not a field, and its continuation, are skipped.
        let f = fields(b"Subject: a\r\nno colon\r\n folded junk\r\nContent Type: x\r\nX-A: b\r\n c\r\n");
        let f: Vec<(&[u8], &[u8])> = f.iter().map(|(n, v)| (*n, v.as_slice())).collect();
        assert_eq!(f, [(&b"Subject"[..], &b" a"[..]), (b"X-A", b" b c")]);
        assert!(has_space_before_colon(b"Content-Type : x"));
        assert!(!has_space_before_colon(b"Content-Type: x"));
    }

    #[test]
    fn field_lines() {
        assert!(is_field_line(b"Subject: x"));
        assert!(is_field_line(b"\tcontinued"));
        assert!(!is_field_line(b"just text: with colon later"));
        assert!(!is_field_line(b"--boundary"));
    }
}
