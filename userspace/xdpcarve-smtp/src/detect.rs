//! Recognising SMTP on a port not configured for it: the session opens with a greeting that
//! names SMTP, or with the client's EHLO/HELO. Only unambiguous openings are accepted.

use xdpcarve_contract::Opener;

/// Bytes of the first line examined at most.
const MAX_LINE: usize = 4096;

/// Who opened the SMTP session `payload` starts, if it is one.
pub fn detect(payload: &[u8]) -> Option<Opener> {
    if is_smtp_greeting(payload) {
        return Some(Opener::Server);
    }
    if starts_with_ignore_case(payload, b"EHLO ") || starts_with_ignore_case(payload, b"HELO ") {
        return Some(Opener::Client);
    }
    None
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
        assert_eq!(detect(b"220 mx.example.com ESMTP Postfix\r\n"), Some(Opener::Server));
        assert_eq!(detect(b"ehlo client.example\r\n"), Some(Opener::Client));
        assert_eq!(detect(b"HELO x\r\n"), Some(Opener::Client));
    }

    #[test]
    fn ignores_other_traffic() {
        assert_eq!(detect(b"220 (vsFTPd 3.0.3)\r\n"), None);
        assert_eq!(detect(b"GET / HTTP/1.1\r\n"), None);
        assert_eq!(detect(b"SSH-2.0-OpenSSH_9.6\r\n"), None);
        assert_eq!(detect(b""), None);
    }
}
