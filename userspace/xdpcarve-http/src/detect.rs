//! Recognising HTTP on a port not configured for it: the session's first payload is a request
//! line. Only unambiguous openings are accepted, so other traffic is not mistaken for HTTP.

use xdpcarve_contract::Opener;

/// Bytes of the first line examined at most.
const MAX_LINE: usize = 4096;

/// `Some(Opener::Client)` when `payload` opens an HTTP session.
pub fn detect(payload: &[u8]) -> Option<Opener> {
    is_http_request(payload).then_some(Opener::Client)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_request_lines() {
        assert_eq!(
            detect(b"GET /index.html HTTP/1.1\r\nHost: x\r\n\r\n"),
            Some(Opener::Client)
        );
        assert_eq!(detect(b"PROPFIND /dav HTTP/1.1\r\n"), Some(Opener::Client));
        assert_eq!(detect(b"POST /upload?very-long-uri"), Some(Opener::Client));
    }

    #[test]
    fn ignores_other_traffic() {
        assert_eq!(detect(b"SSH-2.0-OpenSSH_9.6\r\n"), None);
        assert_eq!(detect(b"220 mx.example.com ESMTP Postfix\r\n"), None);
        assert_eq!(detect(b"ehlo client.example\r\n"), None);
        assert_eq!(detect(b"HTTP/1.1 200 OK\r\n"), None);
        assert_eq!(detect(b"GET"), None);
        assert_eq!(detect(b"\x16\x03\x01\x02\x00\x01"), None);
        assert_eq!(detect(b"FOO bar baz\r\n"), None);
        assert_eq!(detect(b""), None);
    }
}
