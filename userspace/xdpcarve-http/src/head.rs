//! What the parser keeps of a request or response header block, and the small header-value
//! grammars it needs (parameters, Content-Disposition filenames, Content-Range, URI file names).

use httparse::Header;

/// The fields of one header block that matter for carving. Owned: one per transaction.
#[derive(Clone, Debug, Default)]
pub struct Head {
    pub method: String,
    pub uri: String,
    pub status: u16,
    /// `Some(Err)` when present but unusable (not a number, conflicting values).
    pub content_length: Option<Result<u64, ()>>,
    pub transfer_encoding: Option<String>,
    pub content_type: Option<String>,
    pub content_disposition: Option<String>,
    pub content_encoding: Option<String>,
    pub content_range: Option<String>,
    pub etag: Option<String>,
    pub host: Option<String>,
    pub user_agent: Option<String>,
    pub referrer: Option<String>,
    /// A request's `Upgrade` header was present.
    pub upgrade: bool,
}

impl Head {
    pub fn from_headers(headers: &[Header<'_>]) -> Head {
        let mut h = Head::default();
        for hdr in headers {
            let name = hdr.name;
            let value = || String::from_utf8_lossy(hdr.value).trim().to_owned();
            if name.eq_ignore_ascii_case("content-length") {
                let v = parse_content_length(hdr.value);
                h.content_length = Some(match (h.content_length, v) {
                    (None, v) => v,
                    (Some(Ok(a)), Ok(b)) if a == b => Ok(a),
                    _ => Err(()),
                });
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                // Several TE headers form one list.
                let v = value();
                h.transfer_encoding = Some(match h.transfer_encoding.take() {
                    Some(prev) => format!("{prev}, {v}"),
                    None => v,
                });
            } else if name.eq_ignore_ascii_case("content-type") {
                h.content_type.get_or_insert_with(value);
            } else if name.eq_ignore_ascii_case("content-disposition") {
                h.content_disposition.get_or_insert_with(value);
            } else if name.eq_ignore_ascii_case("content-encoding") {
                h.content_encoding.get_or_insert_with(value);
            } else if name.eq_ignore_ascii_case("content-range") {
                h.content_range.get_or_insert_with(value);
            } else if name.eq_ignore_ascii_case("etag") {
                h.etag.get_or_insert_with(value);
            } else if name.eq_ignore_ascii_case("host") {
                h.host.get_or_insert_with(value);
            } else if name.eq_ignore_ascii_case("user-agent") {
                h.user_agent.get_or_insert_with(value);
            } else if name.eq_ignore_ascii_case("upgrade") {
                h.upgrade = true;
            } else if name.eq_ignore_ascii_case("referer") {
                h.referrer.get_or_insert_with(value);
            }
        }
        h
    }

    /// Transfer-Encoding names `chunked` (as its last coding, or anywhere: what libhtp accepts).
    pub fn is_chunked(&self) -> bool {
        self.transfer_encoding
            .as_deref()
            .is_some_and(|te| te.split(',').any(|t| t.trim().eq_ignore_ascii_case("chunked")))
    }

    /// Content-Type without parameters, lowercased.
    pub fn mime_type(&self) -> Option<String> {
        let ct = self.content_type.as_deref()?;
        let t = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
        (!t.is_empty()).then_some(t)
    }

    /// The boundary of a `multipart/form-data` body.
    pub fn form_data_boundary(&self) -> Option<Vec<u8>> {
        if self.mime_type()? != "multipart/form-data" {
            return None;
        }
        let ct = self.content_type.as_deref()?;
        let (_, params) = ct.split_once(';')?;
        params_of(params)
            .into_iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("boundary"))
            .map(|(_, v)| v.into_bytes())
            .filter(|b| !b.is_empty() && b.len() <= 200)
    }
}

fn parse_content_length(v: &[u8]) -> Result<u64, ()> {
    let s = std::str::from_utf8(v).map_err(|_| ())?.trim();
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(());
    }
    s.parse().map_err(|_| ())
}

/// `name=value` parameters of a header value (the part after the first `;`), values unquoted.
pub fn params_of(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        // name
        while i < b.len() && (b[i] == b';' || b[i].is_ascii_whitespace()) {
            i += 1;
        }
        let ns = i;
        while i < b.len() && b[i] != b'=' && b[i] != b';' {
            i += 1;
        }
        let name = s[ns..i].trim().to_owned();
        if i >= b.len() || b[i] == b';' {
            continue; // a bare token
        }
        i += 1; // '='
        while i < b.len() && (b[i] == b' ' || b[i] == b'\t') {
            i += 1;
        }
        let mut value = String::new();
        if i < b.len() && b[i] == b'"' {
            i += 1;
            let mut bytes = Vec::new();
            while i < b.len() && b[i] != b'"' {
                if b[i] == b'\\' && i + 1 < b.len() {
                    i += 1;
                }
                bytes.push(b[i]);
                i += 1;
            }
            i += 1; // closing quote
            value = String::from_utf8_lossy(&bytes).into_owned();
            while i < b.len() && b[i] != b';' {
                i += 1;
            }
        } else {
            let vs = i;
            while i < b.len() && b[i] != b';' {
                i += 1;
            }
            value.push_str(s[vs..i].trim());
        }
        if !name.is_empty() {
            out.push((name, value));
        }
    }
    out
}

/// The filename a Content-Disposition gives: `filename*` (RFC 5987/8187), its RFC 2231
/// continuations (`filename*0*`, `filename*1`, ...), else plain `filename`.
pub fn disposition_filename(cd: &str) -> Option<String> {
    let params = match cd.split_once(';') {
        Some((_, p)) => params_of(p),
        None => return None,
    };
    let find = |n: &str| {
        params
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(n))
            .map(|(_, v)| v.as_str())
    };
    if let Some(v) = find("filename*") {
        if let Some(name) = decode_ext_value(v) {
            return non_empty(name);
        }
    }
    // RFC 2231 continuations.
    let mut parts: Vec<(u32, bool, &str)> = params
        .iter()
        .filter_map(|(k, v)| {
            let k = k.to_ascii_lowercase();
            let rest = k.strip_prefix("filename*")?;
            let (num, ext) = match rest.strip_suffix('*') {
                Some(n) => (n, true),
                None => (rest, false),
            };
            Some((num.parse().ok()?, ext, v.as_str()))
        })
        .collect();
    if !parts.is_empty() {
        parts.sort_by_key(|p| p.0);
        let mut bytes = Vec::new();
        let mut charset = String::from("utf-8");
        for (i, (n, ext, v)) in parts.iter().enumerate() {
            if *n as usize != i {
                break; // a missing section ends the name
            }
            let mut v = *v;
            if *ext && i == 0 {
                let mut it = v.splitn(3, '\'');
                if let (Some(cs), Some(_lang), Some(rest)) = (it.next(), it.next(), it.next()) {
                    charset = cs.to_ascii_lowercase();
                    v = rest;
                }
            }
            if *ext {
                bytes.extend(percent_decode(v.as_bytes()));
            } else {
                bytes.extend_from_slice(v.as_bytes());
            }
        }
        return non_empty(decode_charset(&charset, &bytes));
    }
    find("filename").map(str::to_owned).and_then(non_empty)
}

/// `charset'lang'pct-encoded`.
fn decode_ext_value(v: &str) -> Option<String> {
    let mut it = v.splitn(3, '\'');
    let (cs, _lang, rest) = (it.next()?, it.next()?, it.next()?);
    Some(decode_charset(
        &cs.to_ascii_lowercase(),
        &percent_decode(rest.as_bytes()),
    ))
}

fn decode_charset(charset: &str, bytes: &[u8]) -> String {
    match charset {
        "iso-8859-1" | "latin1" | "us-ascii" => bytes.iter().map(|&b| b as char).collect(),
        _ => String::from_utf8_lossy(bytes).into_owned(),
    }
}

fn non_empty(s: String) -> Option<String> {
    (!s.trim().is_empty()).then_some(s)
}

pub fn percent_decode(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'%' && i + 2 < s.len() {
            if let (Some(h), Some(l)) = (hex_val(s[i + 1]), hex_val(s[i + 2])) {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
        }
        out.push(s[i]);
        i += 1;
    }
    out
}

fn hex_val(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|v| v as u8)
}

/// The last path segment of a request URI, percent-decoded (query and fragment stripped).
pub fn uri_filename(uri: &str) -> Option<String> {
    let mut path = uri;
    // Absolute form: http://host/path
    if let Some(i) = path.find("://") {
        if path[..i]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'-' || b == b'.')
        {
            let after = &path[i + 3..];
            path = after.find('/').map_or("", |j| &after[j..]);
        }
    }
    let end = path.find(['?', '#']).unwrap_or(path.len());
    let path = &path[..end];
    let seg = path.rsplit('/').next().unwrap_or("");
    let name = String::from_utf8_lossy(&percent_decode(seg.as_bytes())).into_owned();
    non_empty(name)
}

/// `bytes first-last/total` (total may be `*`).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct ContentRange {
    pub first: u64,
    pub last: u64,
    pub total: Option<u64>,
}

pub fn parse_content_range(v: &str) -> Option<ContentRange> {
    let v = v.trim();
    let rest = v
        .get(..5)
        .filter(|u| u.eq_ignore_ascii_case("bytes"))
        .map(|_| v[5..].trim_start())?;
    let rest = rest.strip_prefix('=').unwrap_or(rest).trim();
    let (range, total) = rest.split_once('/')?;
    let (a, b) = range.trim().split_once('-')?;
    let first: u64 = a.trim().parse().ok()?;
    let last: u64 = b.trim().parse().ok()?;
    let total = match total.trim() {
        "*" => None,
        t => Some(t.parse().ok()?),
    };
    if last < first || total.is_some_and(|t| last >= t) {
        return None;
    }
    Some(ContentRange { first, last, total })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filenames_from_disposition() {
        assert_eq!(
            disposition_filename("attachment; filename=\"a b.pdf\"").as_deref(),
            Some("a b.pdf")
        );
        assert_eq!(
            disposition_filename("attachment; filename=plain.exe").as_deref(),
            Some("plain.exe")
        );
        assert_eq!(
            disposition_filename("attachment; filename=\"fallback.txt\"; filename*=UTF-8''%E2%82%AC%20rates.txt")
                .as_deref(),
            Some("€ rates.txt")
        );
        assert_eq!(
            disposition_filename("attachment; filename*=iso-8859-1'en'%A3.txt").as_deref(),
            Some("£.txt")
        );
        assert_eq!(
            disposition_filename("attachment; filename*0*=UTF-8''long%20; filename*1=\"name\"; filename*2=.zip")
                .as_deref(),
            Some("long name.zip")
        );
        assert_eq!(
            disposition_filename("attachment; filename=\"q\\\"uote\"").as_deref(),
            Some("q\"uote")
        );
        assert_eq!(disposition_filename("inline"), None);
        assert_eq!(disposition_filename("attachment; filename=\"\""), None);
    }

    #[test]
    fn filenames_from_uri() {
        assert_eq!(uri_filename("/a/b/file%20x.pdf?x=1#f").as_deref(), Some("file x.pdf"));
        assert_eq!(
            uri_filename("http://host:80/dir/setup.exe").as_deref(),
            Some("setup.exe")
        );
        assert_eq!(uri_filename("http://host").as_deref(), None);
        assert_eq!(uri_filename("/dir/").as_deref(), None);
        assert_eq!(uri_filename("/").as_deref(), None);
        assert_eq!(uri_filename("/%zz%4").as_deref(), Some("%zz%4"));
    }

    #[test]
    fn content_ranges() {
        assert_eq!(
            parse_content_range("bytes 0-32767/555523"),
            Some(ContentRange {
                first: 0,
                last: 32767,
                total: Some(555523)
            })
        );
        assert_eq!(
            parse_content_range("bytes 5-9/*"),
            Some(ContentRange {
                first: 5,
                last: 9,
                total: None
            })
        );
        assert_eq!(parse_content_range("bytes 9-5/10"), None);
        assert_eq!(parse_content_range("bytes 0-10/10"), None);
        assert_eq!(parse_content_range("items 0-1/2"), None);
    }

    #[test]
    fn boundary_and_mime() {
        let h = Head {
            content_type: Some("Multipart/Form-Data; charset=x; boundary=\"--abc\"".into()),
            ..Head::default()
        };
        assert_eq!(h.mime_type().as_deref(), Some("multipart/form-data"));
        assert_eq!(h.form_data_boundary().as_deref(), Some(&b"--abc"[..]));
    }
}
