//! ClamAV through a running clamd: its INSTREAM command on the daemon's Unix socket (clamd(8)).
//! One connection per file, no process started: `zINSTREAM\0`, then the file as chunks each
//! preceded by its length (4 bytes, network order), a zero length to end, and one reply:
//! `stream: OK`, `stream: <signature> FOUND` or `<reason> ERROR`.

use super::Answer;
use std::path::{Path, PathBuf};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use xdpcarve_contract::Verdict;

/// Bytes per INSTREAM chunk (clamd's StreamMaxLength bounds the total, not the chunk).
const CHUNK: usize = 64 * 1024;
/// The longest reply read: a signature name and a few words.
const MAX_REPLY: usize = 4096;

pub struct Clamd {
    socket: PathBuf,
}

impl Clamd {
    pub fn new(socket: PathBuf) -> Clamd {
        Clamd { socket }
    }

    pub async fn scan(&self, path: &Path) -> Answer {
        match self.instream(path).await {
            Ok(reply) => parse_reply(&reply),
            Err(e) => Answer::error(format!("clamd at {}: {e}", self.socket.display())),
        }
    }

    async fn instream(&self, path: &Path) -> std::io::Result<String> {
        let mut file = tokio::fs::File::open(path).await?;
        let mut sock = tokio::net::UnixStream::connect(&self.socket).await?;
        sock.write_all(b"zINSTREAM\0").await?;
        let mut buf = vec![0u8; CHUNK];
        loop {
            let n = file.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            sock.write_all(&(n as u32).to_be_bytes()).await?;
            if let Err(e) = sock.write_all(&buf[..n]).await {
                // clamd closes the stream once StreamMaxLength is passed, after saying so.
                let reply = read_reply(&mut sock).await.unwrap_or_default();
                return match reply.is_empty() {
                    true => Err(e),
                    false => Ok(reply),
                };
            }
        }
        sock.write_all(&0u32.to_be_bytes()).await?;
        read_reply(&mut sock).await
    }
}

async fn read_reply(sock: &mut tokio::net::UnixStream) -> std::io::Result<String> {
    let mut reply = Vec::new();
    let mut buf = [0u8; 512];
    loop {
        let n = sock.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        reply.extend_from_slice(&buf[..n]);
        if reply.contains(&0) || reply.len() >= MAX_REPLY {
            break;
        }
    }
    let end = reply.iter().position(|&b| b == 0).unwrap_or(reply.len());
    Ok(String::from_utf8_lossy(&reply[..end]).trim().to_owned())
}

/// `stream: OK`, `stream: Eicar-Signature FOUND`, `INSTREAM size limit exceeded. ERROR`.
fn parse_reply(reply: &str) -> Answer {
    let body = reply.strip_prefix("stream:").map(str::trim).unwrap_or(reply);
    if body == "OK" {
        return Answer::clean();
    }
    if let Some(sig) = body.strip_suffix("FOUND") {
        return Answer::flagged(Verdict::Malicious, vec![sig.trim().to_owned()]);
    }
    if reply.is_empty() {
        return Answer::error("clamd closed the connection without a reply");
    }
    Answer::error(format!("clamd: {reply}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_become_verdicts() {
        assert_eq!(parse_reply("stream: OK"), Answer::clean());
        let a = parse_reply("stream: Xdpcarve.Test.Sig FOUND");
        assert_eq!(
            (a.verdict, a.signatures),
            (Verdict::Malicious, vec!["Xdpcarve.Test.Sig".into()])
        );
        let a = parse_reply("INSTREAM size limit exceeded. ERROR");
        assert_eq!(a.verdict, Verdict::Error);
        assert!(a.detail.unwrap().contains("size limit"));
        assert_eq!(parse_reply("").verdict, Verdict::Error);
    }

    /// A clamd stand-in on a socket: checks the framing byte for byte, answers FOUND.
    #[tokio::test]
    async fn instream_frames_the_file_in_length_prefixed_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let sock_path = dir.path().join("clamd.sock");
        let file = dir.path().join("f");
        let data: Vec<u8> = (0..(CHUNK * 2 + 10)).map(|i| i as u8).collect();
        std::fs::write(&file, &data).unwrap();
        let listener = tokio::net::UnixListener::bind(&sock_path).unwrap();
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut cmd = [0u8; 10];
            s.read_exact(&mut cmd).await.unwrap();
            assert_eq!(&cmd, b"zINSTREAM\0");
            let mut got = Vec::new();
            loop {
                let mut len = [0u8; 4];
                s.read_exact(&mut len).await.unwrap();
                let len = u32::from_be_bytes(len) as usize;
                if len == 0 {
                    break;
                }
                let mut chunk = vec![0u8; len];
                s.read_exact(&mut chunk).await.unwrap();
                got.extend_from_slice(&chunk);
            }
            s.write_all(b"stream: Test.Sig FOUND\0").await.unwrap();
            got
        });
        let a = Clamd::new(sock_path).scan(&file).await;
        assert_eq!((a.verdict, a.signatures), (Verdict::Malicious, vec!["Test.Sig".into()]));
        assert_eq!(server.await.unwrap(), data);

        let a = Clamd::new(dir.path().join("absent.sock")).scan(&file).await;
        assert_eq!(a.verdict, Verdict::Error);
    }
}
