use super::*;
use base64::Engine;
use sha2::{Digest, Sha256};
use xdpcarve_contract::{ConnMeta, FileConfig, FileRecord, FileStats, StandaloneApp, Timestamp};
use xdpcarve_mime::MimeStats;

use Side::{Orig as C, Resp as S};

type Harness = StandaloneApp<Smtp>;

/// The counters a session leaves behind.
#[derive(Debug, PartialEq, Eq)]
struct Stats {
    smtp: SmtpStats,
    mime: MimeStats,
    files: FileStats,
}

/// A parser driven alone, on one SMTP connection, at t = 1 s.
fn harness(cfg: Smtp) -> Harness {
    let mut h = StandaloneApp::new(
        cfg,
        FileConfig::default(),
        ConnMeta {
            uid: "C1".into(),
            orig_h: "10.0.0.1".parse().unwrap(),
            orig_p: 40000,
            resp_h: "10.0.0.2".parse().unwrap(),
            resp_p: 25,
            vlan: None,
            start: Timestamp::ZERO,
        },
    );
    h.now = Timestamp::from_secs(1);
    h
}

struct Outcome {
    records: Vec<FileRecord>,
    stats: Stats,
    done: bool,
}

/// Plays a session; `chunking`: None = each event whole, Some(0) = byte at a time, Some(seed) =
/// random splits.
fn play(events: &[(Side, &[u8])], chunking: Option<u64>) -> Outcome {
    let mut h = harness(Smtp::default());
    let mut p = SmtpParser::new(&h.state.cfg);
    let mut x = chunking.unwrap_or(1) | 1;
    for (side, bytes) in events {
        let mut at = 0;
        while at < bytes.len() {
            let n = match chunking {
                None => bytes.len(),
                Some(0) => 1,
                Some(_) => {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    1 + (x % 61) as usize
                }
            };
            let end = (at + n).min(bytes.len());
            if !p.is_done() {
                p.on_data(*side, &bytes[at..end], &mut h.cx());
            }
            at = end;
        }
    }
    p.on_end(C, &mut h.cx());
    p.on_end(S, &mut h.cx());
    p.on_close(CloseReason::Finished, &mut h.cx());
    Outcome {
        stats: Stats {
            smtp: h.state.stats.clone(),
            mime: h.state.mime.stats.clone(),
            files: h.files.stats.clone(),
        },
        records: h.files.records,
        done: p.is_done(),
    }
}

/// Plays whole, byte at a time and in random splits; all must agree.
fn run(events: &[(Side, &[u8])]) -> Outcome {
    let whole = play(events, None);
    for seed in [0u64, 3, 17, 99] {
        let o = play(events, Some(seed));
        let key = |r: &[FileRecord]| {
            r.iter()
                .map(|f| (f.sha256.clone(), f.size, f.filename.clone(), f.truncated))
                .collect::<Vec<_>>()
        };
        assert_eq!(key(&o.records), key(&whole.records), "split seed {seed}");
        assert_eq!(o.stats, whole.stats, "stats with split seed {seed}");
        assert_eq!(o.done, whole.done);
    }
    whole
}

fn sha(data: &[u8]) -> String {
    xdpcarve_files::analyzer::hex(&Sha256::digest(data))
}

fn b64_lines(data: &[u8]) -> String {
    let enc = base64::engine::general_purpose::STANDARD.encode(data);
    enc.as_bytes()
        .chunks(76)
        .map(|c| format!("{}\r\n", std::str::from_utf8(c).unwrap()))
        .collect()
}

fn binary(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 % 253) as u8).collect()
}

const BANNER: &[u8] = b"220 mx.example.org ESMTP\r\n";

#[test]
fn data_message_with_dot_stuffing_and_attachments() {
    let att = binary(3000);
    let message = format!(
        "From: a@example.com\r\nTo: b@example.org\r\nSubject: =?UTF-8?B?UmVwb3J0IMOc?=\r\nMessage-ID: <x1@ex>\r\n\
         Content-Type: multipart/mixed; boundary=\"==b\"\r\n\r\n--==b\r\nContent-Type: text/plain\r\n\r\n\
         ..leading dot\r\n...two\r\n.\r\nx\r\n--==b\r\nContent-Type: application/x-msdownload\r\n\
         Content-Disposition: attachment; filename=\"setup.exe\"\r\nContent-Transfer-Encoding: base64\r\n\r\n{}\
         --==b\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\
         Content-Disposition: attachment; filename*=utf-8''%C3%BCber.txt\r\n\r\n=C3=BCber=\r\nlong\r\n..end\r\n--==b--\r\n",
        b64_lines(&att)
    );
    // The DATA terminator after the message; the stuffed '.' lines above would end DATA if the
    // single-dot line were not stuffed, so stuff it.
    let message = message.replace("\r\n.\r\nx", "\r\n..\r\nx");
    let data = format!("{message}.\r\n");
    let events: Vec<(Side, &[u8])> = vec![
        (S, BANNER),
        (C, b"EHLO client.example.com\r\n"),
        (S, b"250-mx.example.org\r\n250-PIPELINING\r\n250 8BITMIME\r\n"),
        (C, b"MAIL FROM:<a@example.com> SIZE=100\r\n"),
        (S, b"250 ok\r\n"),
        (C, b"RCPT TO:<b@example.org>\r\n"),
        (S, b"250 ok\r\n"),
        (C, b"DATA\r\n"),
        (S, b"354 go ahead\r\n"),
        (C, data.as_bytes()),
        (S, b"250 queued\r\n"),
        (C, b"QUIT\r\n"),
        (S, b"221 bye\r\n"),
    ];
    let o = run(&events);
    let r = &o.records;
    assert_eq!(r.len(), 3, "{r:#?}");
    assert_eq!(
        r[0].sha256.as_deref(),
        Some(sha(b".leading dot\r\n..two\r\n.\r\nx").as_str())
    );
    assert_eq!(r[1].sha256.as_deref(), Some(sha(&att).as_str()));
    assert_eq!(r[1].filename.as_deref(), Some("setup.exe"));
    assert_eq!(
        r[2].sha256.as_deref(),
        Some(sha("überlong\r\n.end".as_bytes()).as_str())
    );
    assert_eq!(r[2].filename.as_deref(), Some("über.txt"));
    for f in r {
        assert_eq!(f.fields.str("smtp_helo"), Some("client.example.com"));
        assert_eq!(f.fields.str("smtp_mail_from"), Some("a@example.com"));
        assert_eq!(f.fields.strs("smtp_rcpt_to"), vec!["b@example.org".to_string()]);
        assert_eq!(f.fields.str("smtp_subject"), Some("Report Ü"));
        assert_eq!(f.fields.str("smtp_message_id"), Some("<x1@ex>"));
        assert_eq!(f.direction, Direction::Upload);
        assert!(f.is_orig && !f.truncated);
    }
    let s = &o.stats.smtp;
    assert_eq!(
        (s.sessions, s.transactions, s.data_commands, s.rejected_transactions),
        (1, 1, 1, 0)
    );
    assert_eq!((s.unknown_commands, s.malformed_lines), (0, 0));
}

#[test]
fn bdat_chunks_form_one_message_then_data_message() {
    let msg1 = b"From: a@x\r\nSubject: chunked subject\r\n\r\nbody one\r\n";
    let (c1, c2) = msg1.split_at(20); // the chunk boundary falls inside the Subject header
    let mut client = format!("MAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nBDAT {}\r\n", c1.len()).into_bytes();
    client.extend_from_slice(c1);
    client.extend_from_slice(format!("BDAT {} LAST\r\n", c2.len()).as_bytes());
    client.extend_from_slice(c2);
    let events: Vec<(Side, &[u8])> = vec![
        (S, BANNER),
        (C, b"EHLO c\r\n"),
        (S, b"250-mx\r\n250-CHUNKING\r\n250 PIPELINING\r\n"),
        (C, &client),
        (S, b"250 ok\r\n250 ok\r\n250 chunk\r\n250 queued\r\n"),
        (C, b"MAIL FROM:<c@x>\r\nRCPT TO:<d@y>\r\nDATA\r\n"),
        (S, b"250 ok\r\n250 ok\r\n354 go\r\n"),
        (C, b"Subject: second\r\n\r\nbody two\r\n.\r\n"),
        (S, b"250 queued\r\n"),
        (C, b"QUIT\r\n"),
    ];
    let o = run(&events);
    let r = &o.records;
    assert_eq!(r.len(), 2);
    assert_eq!(r[0].sha256.as_deref(), Some(sha(b"body one\r\n").as_str()));
    assert_eq!(r[0].fields.str("smtp_subject"), Some("chunked subject"));
    assert_eq!(r[0].fields.str("smtp_mail_from"), Some("a@x"));
    assert_eq!(r[1].sha256.as_deref(), Some(sha(b"body two\r\n").as_str()));
    assert_eq!(r[1].fields.str("smtp_mail_from"), Some("c@x"));
    assert_eq!(r[1].fields.strs("smtp_rcpt_to"), vec!["d@y".to_string()]);
    let s = &o.stats.smtp;
    assert_eq!((s.transactions, s.bdat_chunks, s.data_commands), (2, 2, 1));
}

#[test]
fn bdat_zero_last_and_binary_chunk_with_dots() {
    // BDAT carries raw bytes: no dot-unstuffing, and ".\r\n" inside is content.
    let chunk = b"Subject: b\r\n\r\n.\r\n..x\r\n";
    let mut client = format!("EHLO c\r\nMAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nBDAT {}\r\n", chunk.len()).into_bytes();
    client.extend_from_slice(chunk);
    client.extend_from_slice(b"BDAT 0 LAST\r\nQUIT\r\n");
    let o = run(&[(S, BANNER), (C, &client)]);
    assert_eq!(o.records.len(), 1);
    assert_eq!(o.records[0].sha256.as_deref(), Some(sha(b".\r\n..x\r\n").as_str()));
    assert_eq!(o.stats.smtp.unknown_commands, 0);
}

#[test]
fn pipelined_commands_and_several_recipients() {
    let events: Vec<(Side, &[u8])> = vec![
        (S, BANNER),
        (C, b"EHLO c\r\n"),
        (S, b"250-mx\r\n250 PIPELINING\r\n"),
        (
            C,
            b"MAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nRCPT TO:<bad@y>\r\nRCPT TO: <c@y>\r\nDATA\r\n",
        ),
        (S, b"250 ok\r\n250 ok\r\n550 no such user\r\n250 ok\r\n354 go\r\n"),
        (C, b"\r\nbody\r\n.\r\nRSET\r\n"),
        (S, b"250 queued\r\n250 reset\r\n"),
    ];
    let o = run(&events);
    assert_eq!(o.records.len(), 1);
    assert_eq!(o.records[0].fields.strs("smtp_rcpt_to"), vec!["b@y", "bad@y", "c@y"]);
    assert_eq!(o.records[0].sha256.as_deref(), Some(sha(b"body\r\n").as_str()));
    assert_eq!(o.stats.smtp.rset, 1);
}

#[test]
fn rejected_data_is_not_a_message() {
    let events: Vec<(Side, &[u8])> = vec![
        (S, BANNER),
        (C, b"HELO c\r\n"),
        (S, b"250 hi\r\n"),
        (C, b"MAIL FROM:<a@x>\r\n"),
        (S, b"250 ok\r\n"),
        (C, b"RCPT TO:<b@y>\r\n"),
        (S, b"550 unknown user\r\n"),
        (C, b"DATA\r\n"),
        (S, b"554 no valid recipients\r\n"),
        (C, b"RSET\r\nMAIL FROM:<a@x>\r\n"),
        (S, b"250 reset\r\n250 ok\r\n"),
        (C, b"QUIT\r\n"),
        (S, b"221 bye\r\n"),
    ];
    let o = run(&events);
    assert!(o.records.is_empty());
    let s = &o.stats.smtp;
    assert_eq!(
        (s.rejected_transactions, s.rset, s.transactions, s.unknown_commands),
        (1, 1, 2, 0)
    );

    // The client did not wait for the verdict: the held bytes are commands again.
    let events: Vec<(Side, &[u8])> = vec![
        (S, BANNER),
        (C, b"HELO c\r\nMAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\nQUIT\r\n"),
        (S, b"250 hi\r\n250 ok\r\n250 ok\r\n451 try later\r\n221 bye\r\n"),
    ];
    let o = run(&events);
    assert!(o.records.is_empty());
    assert_eq!(o.stats.smtp.rejected_transactions, 1);
    assert_eq!(o.stats.smtp.unknown_commands, 0);
}

#[test]
fn final_5xx_still_records_the_files() {
    let events: Vec<(Side, &[u8])> = vec![
        (S, BANNER),
        (C, b"HELO c\r\nMAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\n"),
        (S, b"250 hi\r\n250 ok\r\n250 ok\r\n"),
        (C, b"DATA\r\n"),
        (S, b"354 go\r\n"),
        (C, b"Subject: spam\r\n\r\nvirus\r\n.\r\n"),
        (S, b"554 5.7.1 rejected: virus found\r\n"),
    ];
    let o = run(&events);
    assert_eq!(o.records.len(), 1);
    assert!(!o.records[0].truncated);
    assert_eq!(o.stats.smtp.rejected_transactions, 1);
}

#[test]
fn starttls_makes_the_rest_opaque() {
    let events: Vec<(Side, &[u8])> = vec![
        (S, BANNER),
        (C, b"EHLO c\r\n"),
        (S, b"250-mx\r\n250 STARTTLS\r\n"),
        (C, b"STARTTLS\r\n"),
        (S, b"220 ready\r\n"),
        (
            C,
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 MAIL FROM:<a@x>\r\nDATA\r\n",
        ),
    ];
    let o = run(&events);
    assert!(o.done);
    assert!(o.records.is_empty());
    assert_eq!(o.stats.smtp.starttls, 1);
    assert_eq!(o.stats.smtp.unknown_commands, 0);
    // STARTTLS refused: parsing continues.
    let events: Vec<(Side, &[u8])> = vec![
        (S, BANNER),
        (C, b"STARTTLS\r\n"),
        (S, b"454 TLS not available\r\n"),
        (C, b"MAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\n"),
        (S, b"250 ok\r\n250 ok\r\n354 go\r\n"),
        (C, b"\r\nplain\r\n.\r\n"),
    ];
    let o = run(&events);
    assert!(!o.done);
    assert_eq!(o.records.len(), 1);
}

#[test]
fn auth_login_exchange_is_skipped() {
    let events: Vec<(Side, &[u8])> = vec![
        (S, BANNER),
        (C, b"EHLO c\r\n"),
        (S, b"250-mx\r\n250 AUTH LOGIN PLAIN\r\n"),
        (C, b"AUTH LOGIN\r\n"),
        (S, b"334 VXNlcm5hbWU6\r\n"),
        (C, b"dXNlcg==\r\n"),
        (S, b"334 UGFzc3dvcmQ6\r\n"),
        (C, b"cGFzcw==\r\n"),
        (S, b"235 ok\r\n"),
        (C, b"AUTH PLAIN AHVzZXIAcGFzcw==\r\n"),
        (S, b"503 already authenticated\r\n"),
        (C, b"MAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\n"),
        (S, b"250 ok\r\n250 ok\r\n354 go\r\n"),
        (C, b"\r\nhello\r\n.\r\n"),
        (S, b"250 queued\r\n"),
    ];
    let o = run(&events);
    assert_eq!(o.records.len(), 1);
    let s = &o.stats.smtp;
    assert_eq!((s.auth, s.unknown_commands, s.malformed_lines), (2, 0, 0));
}

#[test]
fn forwarded_message_and_utf8_names_through_smtp() {
    let pdf = b"%PDF-1.4 fake pdf".to_vec();
    let message = format!(
        "Subject: fwd\r\nContent-Type: multipart/mixed; boundary=outer\r\n\r\n--outer\r\n\
         Content-Type: multipart/alternative; boundary=alt\r\n\r\n--alt\r\nContent-Type: text/plain\r\n\r\nsee below\r\n\
         --alt\r\nContent-Type: text/html\r\n\r\n<b>see below</b>\r\n--alt--\r\n--outer\r\n\
         Content-Type: message/rfc822; name=\"=?ISO-8859-1?Q?Weitergeleitet_=E4?=.eml\"\r\n\r\n\
         Subject: original\r\nContent-Type: multipart/mixed; boundary=inner\r\n\r\n--inner\r\n\
         Content-Type: application/pdf\r\nContent-Disposition: attachment;\r\n filename*0*=UTF-8''%E5%A0%B1;\r\n filename*1=\"告.pdf\"\r\n\
         Content-Transfer-Encoding: base64\r\n\r\n{}--inner--\r\n--outer--\r\n.\r\n",
        b64_lines(&pdf)
    );
    let events: Vec<(Side, &[u8])> = vec![
        (S, BANNER),
        (C, b"HELO c\r\nMAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\n"),
        (S, b"250 hi\r\n250 ok\r\n250 ok\r\n354 go\r\n"),
        (C, message.as_bytes()),
        (S, b"250 ok\r\n"),
    ];
    let o = run(&events);
    let r = &o.records;
    assert_eq!(r.len(), 4, "{r:#?}");
    let pdf_rec = r
        .iter()
        .find(|f| f.declared_mime_type.as_deref() == Some("application/pdf"))
        .unwrap();
    let eml = r
        .iter()
        .find(|f| f.declared_mime_type.as_deref() == Some("message/rfc822"))
        .unwrap();
    assert_eq!(pdf_rec.filename.as_deref(), Some("報告.pdf"));
    assert_eq!(pdf_rec.sha256.as_deref(), Some(sha(&pdf).as_str()));
    assert_eq!(pdf_rec.mime_type.as_deref(), Some("application/pdf"));
    assert_eq!(pdf_rec.parent_fuid.as_deref(), Some(eml.fuid.as_str()));
    assert_eq!(pdf_rec.depth, 3);
    assert_eq!(eml.filename.as_deref(), Some("Weitergeleitet ä.eml"));
    assert!(r.iter().all(|f| f.fields.str("smtp_subject") == Some("fwd")));
}

#[test]
fn one_way_capture_and_lost_354_still_carve() {
    // Only the client side was captured.
    let o = run(&[(
        C,
        b"EHLO c\r\nMAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\nSubject: s\r\n\r\nonly client\r\n.\r\nQUIT\r\n",
    )]);
    assert_eq!(o.records.len(), 1);
    assert_eq!(o.records[0].sha256.as_deref(), Some(sha(b"only client\r\n").as_str()));
    // The server spoke but its 354 is missing: the end-of-data line decides.
    let o = run(&[
        (S, BANNER),
        (C, b"HELO c\r\nMAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\n"),
        (S, b"250 hi\r\n250 ok\r\n250 ok\r\n"),
        (C, b"DATA\r\n"),
        (C, b"Subject: s\r\n\r\nno 354\r\n.\r\n"),
        (S, b"250 queued\r\n"),
    ]);
    assert_eq!(o.records.len(), 1);
    assert_eq!(o.records[0].sha256.as_deref(), Some(sha(b"no 354\r\n").as_str()));
}

#[test]
fn midstream_pickup_invents_no_files() {
    let o = run(&[
        (
            C,
            b"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\r\nBBBB\r\n--b--\r\n.\r\n",
        ),
        (S, b"250 queued as 1234\r\n"),
        (C, b"QUIT\r\n"),
        (S, b"221 bye\r\n"),
    ]);
    assert!(o.records.is_empty());
    assert_eq!(o.stats.smtp.midstream_lines, 4);
    assert_eq!((o.stats.smtp.unknown_commands, o.stats.smtp.malformed_lines), (0, 0));
    // Joined inside a message whose text has command-like lines, then the next transaction.
    let o = run(&[
        (C, b"Data follows below\r\nDATA\r\nMail from the office\r\n.\r\n"),
        (S, b"250 queued\r\n"),
        (C, b"MAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\n"),
        (S, b"250 ok\r\n250 ok\r\n354 go\r\n"),
        (C, b"\r\nnext message\r\n.\r\n"),
        (S, b"250 queued\r\n"),
    ]);
    assert_eq!(o.records.len(), 1);
    assert_eq!(o.records[0].sha256.as_deref(), Some(sha(b"next message\r\n").as_str()));
    assert_eq!(o.stats.smtp.midstream_lines, 4);
}

#[test]
fn malformed_sessions_are_bounded_and_counted() {
    let huge_server = {
        let mut v = b"220 banner\r\n".to_vec();
        v.extend(std::iter::repeat_n(b'A', 5000));
        v.extend_from_slice(b"250-mx\r\n250 PIPELINING\r\n");
        v
    };
    let mut endless_headers = Vec::new();
    for i in 0..5000 {
        endless_headers.extend_from_slice(format!("X-H{i}: {}\r\n", "v".repeat(30)).as_bytes());
    }
    endless_headers.extend_from_slice(b"\r\nbody\r\n.\r\n");
    let mut huge_cmd = b"NOOP ".to_vec();
    huge_cmd.extend(std::iter::repeat_n(b'x', 10_000));
    huge_cmd.extend_from_slice(b"\r\n");
    let events: Vec<(Side, &[u8])> = vec![
        (S, &huge_server),
        (C, b"EHLO c\r\n"),
        (C, &huge_cmd),
        (C, b"\x00\x01garbage\r\nFOO bar\r\nMAIL without colon\r\nBDAT nope\r\n"),
        (S, b"500 what\r\n500 what\r\n500 what\r\n500 what\r\n500 what\r\nnot a reply\r\n"),
        (C, b"MAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\n"),
        (S, b"250 ok\r\n250 ok\r\n354 go\r\n"),
        (C, &endless_headers),
        (S, b"250 ok\r\n"),
        (C, b"MAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\n"),
        (S, b"250 ok\r\n250 ok\r\n354 go\r\n"),
        (C, b"Content-Type: multipart/mixed; boundary=q\r\n\r\n--q\r\nContent-Transfer-Encoding: base64\r\n\r\n!!!!QUJD\r\nQUJD"),
    ];
    let o = run(&events);
    let s = &o.stats.smtp;
    assert_eq!(s.line_too_long, 2);
    assert_eq!(s.unknown_commands, 1);
    assert_eq!(s.malformed_lines, 4);
    assert_eq!(o.stats.mime.header_too_large, 1);
    assert_eq!(o.stats.mime.base64_invalid_chars, 4);
    // The header bomb's body is still carved (its headers were cut); the cut-off message's
    // open part is truncated at close.
    assert_eq!(o.records.len(), 2, "{:#?}", o.records);
    assert_eq!(o.records[0].sha256.as_deref(), Some(sha(b"body\r\n").as_str()));
    assert!(o.records[1].truncated);
    assert_eq!(o.records[1].sha256, None);
    assert_eq!(o.stats.files.files_truncated, 1);

    // Random bytes on both sides: never a panic.
    let mut x = 0x1234_5678_9abc_def1u64;
    let mut junk = Vec::new();
    for _ in 0..20_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let piece: &[u8] = match x % 9 {
            0 => b"DATA\r\n",
            1 => b"BDAT 5\r\n",
            2 => b".\r\n",
            3 => b"\r\n",
            _ => &[(x >> 8) as u8, (x >> 16) as u8][..],
        };
        junk.extend_from_slice(piece);
    }
    let (a, b) = junk.split_at(junk.len() / 2);
    let _ = run(&[(C, a), (S, b), (C, b), (S, a)]);
}

#[test]
fn gaps_in_message_and_replies() {
    let mut h = harness(Smtp::default());
    let mut p = SmtpParser::new(&h.state.cfg);
    p.on_data(S, BANNER, &mut h.cx());
    p.on_data(
        C,
        b"HELO c\r\nMAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\n",
        &mut h.cx(),
    );
    p.on_data(S, b"250 hi\r\n250 ok\r\n250 ok\r\n354 go\r\n", &mut h.cx());
    p.on_data(C, b"Content-Type: application/octet-stream\r\n\r\nabc", &mut h.cx());
    p.on_gap(C, 500, &mut h.cx());
    // The end-of-data line was in a lost segment too; the server's verdict resyncs.
    p.on_data(C, b"def\r\n", &mut h.cx());
    p.on_data(S, b"250 queued\r\n", &mut h.cx());
    p.on_data(C, b"MAIL FROM:<c@x>\r\nRCPT TO:<d@y>\r\nDATA\r\n", &mut h.cx());
    p.on_data(S, b"250 ok\r\n250 ok\r\n354 go\r\n", &mut h.cx());
    p.on_data(C, b"\r\nsecond\r\n.\r\n", &mut h.cx());
    p.on_close(CloseReason::Finished, &mut h.cx());
    let r = &h.files.records;
    assert_eq!(r.len(), 2);
    assert_eq!((r[0].size, r[0].missing_bytes), (8, 500));
    assert!(r[0].truncated);
    assert_eq!(r[1].sha256.as_deref(), Some(sha(b"second\r\n").as_str()));
    assert_eq!(r[1].fields.str("smtp_mail_from"), Some("c@x"));
}

#[test]
fn connection_closed_mid_message_truncates() {
    let o = run(&[
        (S, BANNER),
        (C, b"HELO c\r\nMAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\n"),
        (S, b"250 hi\r\n250 ok\r\n250 ok\r\n"),
        (C, b"DATA\r\n"),
        (S, b"354 go\r\n"),
        (C, b"Subject: s\r\n\r\npartial body"),
    ]);
    assert_eq!(o.records.len(), 1);
    assert!(o.records[0].truncated);
    assert_eq!(o.records[0].truncated_reason.as_deref(), Some("conn_closed"));
}

#[test]
fn endless_server_garbage_like_bug_5989() {
    // The server's replies are hidden behind a 5 KB line that never ends (suricata bug 5989):
    // nothing is answered, the AUTH exchange and the message are still followed.
    let mut server = BANNER.to_vec();
    server.extend(std::iter::repeat_n(b'A', 5000));
    let o = run(&[
        (S, &server),
        (C, b"EHLO c\r\nAUTH LOGIN\r\n"),
        (
            C,
            b"dXNlcg==\r\ncGFzcw==\r\nMAIL FROM: <a@x>\r\nRCPT TO: <b@y>\r\nDATA\r\n",
        ),
        (C, b"Subject: s\r\n\r\nstill carved\r\n"),
        (C, b".\r\nQUIT\r\n"),
    ]);
    assert_eq!(o.records.len(), 1);
    assert_eq!(o.records[0].sha256.as_deref(), Some(sha(b"still carved\r\n").as_str()));
    assert_eq!(o.records[0].fields.str("smtp_mail_from"), Some("a@x"));
    let s = &o.stats.smtp;
    assert_eq!(
        (s.line_too_long, s.auth, s.unknown_commands, s.malformed_lines),
        (1, 1, 0, 0)
    );
}

#[test]
fn a_354_is_recognised_when_replies_are_out_of_step() {
    // The server does not answer the empty line, so every reply lands one command early.
    let mut h = harness(Smtp::default());
    let mut p = SmtpParser::new(&h.state.cfg);
    p.on_data(S, BANNER, &mut h.cx());
    p.on_data(
        C,
        b"HELO c\r\n\r\nMAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\n",
        &mut h.cx(),
    );
    p.on_data(S, b"250 hi\r\n250 ok\r\n250 ok\r\n354 go\r\n", &mut h.cx());
    assert_eq!(p.client, ClientMode::Data, "the 354 itself decides");
    assert!(p.pending.is_empty());
    p.on_data(C, b"Subject: s\r\n\r\nin step again\r\n", &mut h.cx());
    p.on_data(C, b".\r\n", &mut h.cx());
    assert_eq!(h.files.records.len(), 1);
    assert_eq!(
        h.files.records[0].sha256.as_deref(),
        Some(sha(b"in step again\r\n").as_str())
    );
}

#[test]
fn lost_refusal_of_data_is_inferred_from_the_next_command() {
    // The 554 to DATA is lost in a gap of the server stream; the client goes on with RSET.
    let mut h = harness(Smtp::default());
    let mut p = SmtpParser::new(&h.state.cfg);
    p.on_data(S, BANNER, &mut h.cx());
    p.on_data(
        C,
        b"HELO c\r\nMAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\n",
        &mut h.cx(),
    );
    p.on_data(S, b"250 hi\r\n250 ok\r\n250 ok\r\n", &mut h.cx());
    p.on_data(C, b"RSET\r\nQUIT\r\n", &mut h.cx());
    assert_eq!(p.client, ClientMode::Command);
    p.on_gap(S, 30, &mut h.cx());
    p.on_data(S, b"250 reset\r\n221 bye\r\n", &mut h.cx());
    p.on_close(CloseReason::Finished, &mut h.cx());
    assert!(h.files.records.is_empty());
    assert_eq!((h.state.stats.rset, h.state.stats.rejected_transactions), (1, 1));
}

#[test]
fn end_of_data_with_a_bare_lf_marks_the_open_file() {
    let att = binary(600);
    let message = format!(
        "Subject: s\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n{}",
        b64_lines(&att)
    );
    for (eod, anomalies) in [(".\r\n", vec![]), (".\n", vec!["bare_lf"])] {
        let data = format!("{message}{eod}");
        let events: Vec<(Side, &[u8])> = vec![
            (S, BANNER),
            (C, b"HELO c\r\n"),
            (S, b"250 ok\r\n"),
            (C, b"MAIL FROM:<a@b>\r\n"),
            (S, b"250 ok\r\n"),
            (C, b"RCPT TO:<c@d>\r\n"),
            (S, b"250 ok\r\n"),
            (C, b"DATA\r\n"),
            (S, b"354 go\r\n"),
            (C, data.as_bytes()),
            (S, b"250 queued\r\n"),
            (C, b"QUIT\r\n"),
        ];
        let o = run(&events);
        assert_eq!(o.records.len(), 1);
        assert_eq!(o.records[0].sha256.as_deref(), Some(sha(&att).as_str()));
        assert!(!o.records[0].truncated);
        assert_eq!(o.records[0].anomalies.names(), anomalies, "{eod:?}");
    }
}
