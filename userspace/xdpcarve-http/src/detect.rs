//! Protocol detection for connections on ports with no configured parser: the first payload of
//! a session says what it is. Only unambiguous openings are accepted, so arbitrary traffic on
//! other ports is not mistaken for HTTP or SMTP.

use crate::app::AppKind;

/// Bytes of the first line examined at most.
const MAX_LINE: usize = 4096;

/// Recognises the first payload of a session: `Some((kind, sent_by_client))`.
pub fn detect(payload: &[u8]) -> Option<(AppKind, bool)> {
    if is_http_request(payload) {
        return Some((AppKind::Http, true));
    }
    if is_smtp_greeting(payload) {
        return Some((AppKind::Smtp, false));
    }
    if starts_with_ignore_case(payload, b"EHLO ") || starts_with_ignore_case(payload, b"HELO ") {
        return Some((AppKind::Smtp, true));
    }
    None
}

/// `METHOD SP target SP HTTP/1.x` — or, when the line is longer than the segment, a well-known
/// method followed by a space and a '/' or scheme target.
fn is_http_request(p: &[u8]) -> bool {
    let Some(sp) = p.iter().take(17).position(|&b| b == b' ') else {
        return false;
    };
    if sp < 3 || !p[..sp].iter().all(|b| b.is_ascii_uppercase()) {
        return false;
    }
    let line_end = p.iter().take(MAX_LINE).position(|&b| b == b'\n');
    match line_end {
        Some(end) => {
            let line = p[..end].strip_suffix(b"\r").unwrap_or(&p[..end]);
            line.len() > 9 && line[line.len() - 9..line.len() - 1].eq_ignore_ascii_case(b" HTTP/1.")
        }
        None => {
            const METHODS: [&[u8]; 7] = [b"GET", b"POST", b"PUT", b"HEAD", b"DELETE", b"OPTIONS", b"PATCH"];
            METHODS.contains(&&p[..sp]) && matches!(p.get(sp + 1), Some(b'/') | Some(b'h'))
        }
    }
}

/// `220 host ESMTP ...` / `220-...` with "SMTP" in the first line.
fn is_smtp_greeting(p: &[u8]) -> bool {
    if p.len() < 5 || &p[..3] != b"220" || !(p[3] == b' ' || p[3] == b'-') {
        return false;
    }
    let line = &p[..p
        .iter()
        .take(MAX_LINE)
        .position(|&b| b == b'\n')
        .unwrap_or(p.len().min(MAX_LINE))];
    line.windows(4).any(|w| w.eq_ignore_ascii_case(b"smtp"))
}

fn starts_with_ignore_case(p: &[u8], prefix: &[u8]) -> bool {
    p.len() >= prefix.len() && p[..prefix.len()].eq_ignore_ascii_case(prefix)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_session_openings() {
        assert_eq!(
            detect(b"GET /index.html HTTP/1.1\r\nHost: x\r\n\r\n"),
            Some((AppKind::Http, true))
        );
        assert_eq!(detect(b"PROPFIND /dav HTTP/1.1\r\n"), Some((AppKind::Http, true)));
        assert_eq!(detect(b"POST /upload?very-long-uri"), Some((AppKind::Http, true)));
        assert_eq!(
            detect(b"220 mx.example.com ESMTP Postfix\r\n"),
            Some((AppKind::Smtp, false))
        );
        assert_eq!(detect(b"ehlo client.example\r\n"), Some((AppKind::Smtp, true)));
    }

    #[test]
    fn ignores_other_traffic() {
        assert_eq!(detect(b"SSH-2.0-OpenSSH_9.6\r\n"), None);
        assert_eq!(detect(b"220 (vsFTPd 3.0.3)\r\n"), None);
        assert_eq!(detect(b"HTTP/1.1 200 OK\r\n"), None);
        assert_eq!(detect(b"GET"), None);
        assert_eq!(detect(b"\x16\x03\x01\x02\x00\x01"), None);
        assert_eq!(detect(b"FOO bar baz\r\n"), None);
        assert_eq!(detect(b""), None);
    }
}
