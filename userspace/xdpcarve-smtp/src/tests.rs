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
            id: 1,
            files_opened: Default::default(),
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

// ---- capture loss: holes cut systematically through a session ----

/// A leaf part of the loss session: its decoded content's hash and the client-stream bytes
/// that carry it (from the delimiter line before it to the end of the delimiter line after).
struct Part {
    sha: String,
    span: std::ops::Range<usize>,
}

/// Dot-stuffing plus the end-of-data line.
fn stuffed(msg: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut bol = true;
    for &b in msg {
        if bol && b == b'.' {
            out.push(b'.');
        }
        out.push(b);
        bol = b == b'\n';
    }
    out.extend_from_slice(b".\r\n");
    out
}

/// Quoted-printable of text lines (only '=' escaped, lines kept short).
fn qp_lines(text: &str) -> String {
    text.replace('=', "=3D")
}

/// A multipart message: (message text, [(decoded content, part text as it appears)]).
fn loss_message(tag: &str, nested: bool) -> (String, Vec<Vec<u8>>) {
    let b = format!("=_outer_{tag}");
    let mut contents = Vec::new();
    let text = format!("Hello,\r\n.a line starting with a dot\r\nsee attached ({tag}).\r\n");
    let att = (0..2500u32)
        .map(|i| (i * 13 + tag.len() as u32) as u8)
        .collect::<Vec<u8>>();
    let qp_text = format!("price = 10 {tag}\r\nsecond line of the notes\r\n");
    let mut m = format!(
        "From: a@example.com\r\nTo: b@example.org\r\nSubject: loss {tag}\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"{b}\"\r\n\r\nThis is a multi-part message.\r\n"
    );
    m += &format!("--{b}\r\nContent-Type: text/plain\r\n\r\n{text}");
    contents.push(text.into_bytes());
    m += &format!(
        "\r\n--{b}\r\nContent-Type: application/octet-stream; name=\"{tag}.bin\"\r\n\
         Content-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename=\"{tag}.bin\"\r\n\r\n{}",
        b64_lines(&att).trim_end()
    );
    contents.push(att);
    m += &format!(
        "\r\n--{b}\r\nContent-Type: text/plain; name=\"{tag}.txt\"\r\nContent-Transfer-Encoding: quoted-printable\r\n\
         Content-Disposition: attachment; filename=\"{tag}.txt\"\r\n\r\n{}",
        qp_lines(&qp_text)
    );
    contents.push(qp_text.into_bytes());
    if nested {
        let ib = format!("=_inner_{tag}");
        let plain = format!("alternative plain {tag}\r\n");
        let html = format!("<p>alternative html {tag}</p>\r\n");
        m += &format!(
            "\r\n--{b}\r\nContent-Type: multipart/alternative; boundary=\"{ib}\"\r\n\r\n\
             --{ib}\r\nContent-Type: text/plain\r\n\r\n{plain}\r\n--{ib}\r\nContent-Type: text/html\r\n\
             Content-Transfer-Encoding: quoted-printable\r\n\r\n{}\r\n--{ib}--\r\n",
            qp_lines(&html)
        );
        contents.push(plain.into_bytes());
        contents.push(html.into_bytes());
    }
    let last = binary(1800);
    m += &format!(
        "\r\n--{b}\r\nContent-Type: application/pdf; name=\"{tag}.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\n{}",
        b64_lines(&last).trim_end()
    );
    contents.push(last);
    m += &format!("\r\n--{b}--\r\n");
    (m, contents)
}

/// Where each leaf part of `msg` (at `at` in the client stream, stuffed as `wire`) lies.
fn part_spans(wire: &[u8], at: usize, contents: &[Vec<u8>], out: &mut Vec<Part>) {
    // Leaf parts are the bodies that follow a header block that is not a multipart's.
    let find = |from: usize, pat: &[u8]| memchr::memmem::find(&wire[from..], pat).map(|k| from + k);
    let mut delims = Vec::new(); // (start of the line break before "--", end of its line)
    let mut pos = 0;
    while let Some(k) = find(pos, b"\n--") {
        let start = if k > 0 && wire[k - 1] == b'\r' { k - 1 } else { k };
        let end = find(k + 1, b"\n").map_or(wire.len(), |e| e + 1);
        delims.push((start, end));
        pos = k + 1;
    }
    let mut leaves = delims
        .windows(2)
        .filter(|w| !wire[w[0].1..w[1].0].starts_with(b"Content-Type: multipart/"))
        .filter(|w| !wire[w[0].0..w[0].1].ends_with(b"--\r\n"))
        .map(|w| (w[0].0, w[1].1));
    for c in contents {
        let (s, e) = leaves.next().expect("a span per part");
        out.push(Part {
            sha: sha(c),
            span: at + s..at + e,
        });
    }
}

/// Three messages on one connection: DATA with pipelined commands (nested multipart), BDAT in
/// two chunks, and a plain DATA; base64 and quoted-printable attachments in each.
fn loss_session() -> (Vec<(Side, Vec<u8>)>, Vec<Part>) {
    let mut ev: Vec<(Side, Vec<u8>)> = Vec::new();
    let mut parts = Vec::new();
    let mut client_len = 0;
    let mut push = |ev: &mut Vec<(Side, Vec<u8>)>, side: Side, b: &[u8]| {
        if side == C {
            client_len += b.len();
        }
        ev.push((side, b.to_vec()));
        client_len
    };
    push(&mut ev, S, BANNER);
    push(&mut ev, C, b"EHLO client.example\r\n");
    push(&mut ev, S, b"250-mx\r\n250-PIPELINING\r\n250 CHUNKING\r\n");
    // 1: pipelined MAIL, RCPT, DATA.
    push(
        &mut ev,
        C,
        b"MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n",
    );
    push(&mut ev, S, b"250 ok\r\n250 ok\r\n354 go\r\n");
    let (m1, c1) = loss_message("one", true);
    let w1 = stuffed(m1.as_bytes());
    // In packets, as a client writes it.
    let mut at = 0;
    for chunk in w1.chunks(700) {
        let end = push(&mut ev, C, chunk);
        if at == 0 {
            at = end - chunk.len();
        }
    }
    part_spans(&w1, at, &c1, &mut parts);
    push(&mut ev, S, b"250 queued 1\r\n");
    // 2: BDAT in two chunks, the split inside the base64 attachment.
    push(&mut ev, C, b"MAIL FROM:<a@example.com>\r\n");
    push(&mut ev, S, b"250 ok\r\n");
    push(&mut ev, C, b"RCPT TO:<c@example.org>\r\n");
    push(&mut ev, S, b"250 ok\r\n");
    let (m2, c2) = loss_message("two", false);
    let m2 = m2.into_bytes();
    let (k1, k2) = m2.split_at(m2.len() / 2);
    let hdr1 = format!("BDAT {}\r\n", k1.len()).len();
    let start = push(&mut ev, C, format!("BDAT {}\r\n", k1.len()).as_bytes());
    push(&mut ev, C, k1);
    push(&mut ev, S, b"250 chunk\r\n");
    let mid = push(&mut ev, C, format!("BDAT {} LAST\r\n", k2.len()).as_bytes());
    push(&mut ev, C, k2);
    push(&mut ev, S, b"250 queued 2\r\n");
    // Spans as if the chunk header were not there, then shifted past it where it lies.
    let hdr2 = mid - start - k1.len();
    let mut p2 = Vec::new();
    part_spans(&m2, start, &c2, &mut p2);
    for p in &mut p2 {
        let shift = |x: usize| if x >= start + k1.len() { x + hdr2 } else { x };
        p.span = shift(p.span.start)..shift(p.span.end);
    }
    // A chunk whose BDAT line is lost cannot be delimited: its parts count as touched (its
    // line's span is stretched over them).
    let bdat1 = start - hdr1..start;
    let bdat2 = mid - hdr2..mid;
    for p in &mut p2 {
        if p.span.start < bdat2.start {
            p.span.start = p.span.start.min(bdat1.start);
        }
        if p.span.end > bdat2.start {
            p.span.start = p.span.start.min(bdat1.start);
            p.span.end = p.span.end.max(bdat2.end);
        }
    }
    parts.extend(p2);
    // 3: one command per packet.
    push(&mut ev, C, b"MAIL FROM:<a@example.com>\r\n");
    push(&mut ev, S, b"250 ok\r\n");
    push(&mut ev, C, b"RCPT TO:<d@example.org>\r\n");
    push(&mut ev, S, b"250 ok\r\n");
    push(&mut ev, C, b"DATA\r\n");
    push(&mut ev, S, b"354 go\r\n");
    let (m3, c3) = loss_message("three", false);
    let w3 = stuffed(m3.as_bytes());
    let mut at = 0;
    for chunk in w3.chunks(1000) {
        let end = push(&mut ev, C, chunk);
        if at == 0 {
            at = end - chunk.len();
        }
    }
    part_spans(&w3, at, &c3, &mut parts);
    push(&mut ev, S, b"250 queued 3\r\n");
    push(&mut ev, C, b"QUIT\r\n");
    push(&mut ev, S, b"221 bye\r\n");
    (ev, parts)
}

/// Plays `events` with `len` bytes of `side`'s stream from offset `pos` lost. With `late`, the
/// hole is reported as the reassembler does: after the other side's next events (up to 4), the
/// lost side's later bytes waiting behind it.
fn play_with_hole(events: &[(Side, Vec<u8>)], side: Side, pos: usize, len: usize, late: bool) -> Outcome {
    let mut h = harness(Smtp::default());
    let mut p = SmtpParser::new(&h.state.cfg);
    let mut off = 0;
    let mut waiting: Option<(u64, Vec<Vec<u8>>)> = None;
    let mut others_seen = 0;
    for (s, bytes) in events {
        if *s != side {
            p.on_data(*s, bytes, &mut h.cx());
            if let Some((gap, held)) = &waiting {
                others_seen += 1;
                if others_seen >= 4 {
                    p.on_gap(side, *gap, &mut h.cx());
                    for b in held {
                        p.on_data(side, b, &mut h.cx());
                    }
                    waiting = None;
                }
            }
            continue;
        }
        let (a, z) = (off, off + bytes.len());
        off = z;
        let (cut_a, cut_z) = (pos.max(a), (pos + len).min(z));
        if let Some((_, held)) = &mut waiting {
            // Behind the hole: waits (what the hole covers of it is cut out).
            if cut_a < cut_z {
                held.push(bytes[..cut_a - a].to_vec());
                if let Some((gap, _)) = &mut waiting {
                    *gap += (cut_z - cut_a) as u64;
                }
                if let Some((_, held)) = &mut waiting {
                    held.push(bytes[cut_z - a..].to_vec());
                }
            } else {
                held.push(bytes.clone());
            }
            continue;
        }
        if cut_a >= cut_z {
            p.on_data(*s, bytes, &mut h.cx());
            continue;
        }
        p.on_data(*s, &bytes[..cut_a - a], &mut h.cx());
        let rest = bytes[cut_z - a..].to_vec();
        if late && pos + len <= z {
            waiting = Some(((cut_z - cut_a) as u64, vec![rest]));
            others_seen = 0;
        } else if late {
            waiting = Some(((cut_z - cut_a) as u64, vec![]));
            others_seen = 0;
        } else {
            p.on_gap(*s, (cut_z - cut_a) as u64, &mut h.cx());
            p.on_data(*s, &rest, &mut h.cx());
        }
    }
    if let Some((gap, held)) = waiting {
        p.on_gap(side, gap, &mut h.cx());
        for b in held {
            p.on_data(side, &b, &mut h.cx());
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

/// Checks one cut: every part the hole did not touch is exact; records with missing bytes have no
/// hash; no hash is of something that is no part; no record comes from nowhere.
fn check_cut(parts: &[Part], touched: impl Fn(&Part) -> bool, o: &Outcome, what: &str) -> Result<(), String> {
    let mut hashes: Vec<&str> = o.records.iter().filter_map(|r| r.sha256.as_deref()).collect();
    for r in &o.records {
        if r.sha256.is_none() && r.missing_bytes == 0 {
            return Err(format!("{what}: {:?} has no hash and no missing bytes", r.filename));
        }
        if r.missing_bytes > 0 && r.sha256.is_some() {
            return Err(format!("{what}: {:?} has missing bytes and a hash", r.filename));
        }
    }
    for p in parts {
        if touched(p) {
            continue;
        }
        match hashes.iter().position(|h| *h == p.sha) {
            Some(i) => {
                hashes.swap_remove(i);
            }
            None => return Err(format!("{what}: untouched part at {:?} not carved exactly", p.span)),
        }
    }
    // What is left are touched parts that came out whole (a hole in a delimiter only).
    for h in hashes {
        if !parts.iter().any(|p| p.sha == h && touched(p)) {
            return Err(format!("{what}: a hash of nothing sent ({h})"));
        }
    }
    if o.records.len() > parts.len() {
        return Err(format!("{what}: {} records for {} parts", o.records.len(), parts.len()));
    }
    Ok(())
}

#[test]
fn loss_session_is_carved_whole_without_holes() {
    let (events, parts) = loss_session();
    let refs: Vec<(Side, &[u8])> = events.iter().map(|(s, b)| (*s, b.as_slice())).collect();
    let o = run(&refs);
    assert_eq!(o.records.len(), parts.len());
    check_cut(&parts, |_| false, &o, "no hole").unwrap();
    for (r, p) in o.records.iter().zip(&parts) {
        assert_eq!(r.sha256.as_deref(), Some(p.sha.as_str()));
    }
}

#[test]
fn client_holes_anywhere_cost_only_the_parts_they_touch() {
    let (events, parts) = loss_session();
    let total: usize = events.iter().filter(|(s, _)| *s == C).map(|(_, b)| b.len()).sum();
    // Known limit: a hole from inside the DATA message into the next transaction's commands,
    // when that one is sent with BDAT: its chunk is read as the rest of the DATA message
    // (dot-unstuffed, inside the first message's structure), which nothing on the wire refutes.
    let client: Vec<u8> = events
        .iter()
        .filter(|(s, _)| *s == C)
        .flat_map(|(_, b)| b.clone())
        .collect();
    let eod1 = memchr::memmem::find(&client, b"\r\n.\r\nMAIL").unwrap() + 2;
    let bdat1 = memchr::memmem::find(&client, b"BDAT ").unwrap();
    let known_limit = |pos: usize, len: usize| pos < eod1 + 3 && pos + len > eod1 && pos + len <= bdat1 + 800;
    let mut failures = Vec::new();
    let mut lost_untouched = 0;
    let mut limited = 0;
    let mut cuts = 0;
    let mut resyncs = 0;
    for len in [1usize, 7, 60, 700, 2600] {
        let step = if len < 60 { 13 } else { 29 };
        for pos in (0..total).step_by(step) {
            for late in [false, true] {
                let o = play_with_hole(&events, C, pos, len, late);
                cuts += 1;
                resyncs += o.stats.smtp.gap_resyncs + o.stats.mime.gap_resyncs;
                let hole = pos..pos + len;
                let touched = |p: &Part| p.span.start < hole.end && hole.start < p.span.end;
                match check_cut(&parts, touched, &o, &format!("hole {pos}+{len} late={late}")) {
                    Ok(()) => {}
                    Err(_) if known_limit(pos, len) => limited += 1,
                    // A part a hole did not touch but whose framing it took with it (a nested
                    // multipart's headers and first delimiter): rare, and never a wrong hash.
                    Err(e) if e.contains("not carved exactly") => lost_untouched += 1,
                    Err(e) => failures.push(e),
                }
            }
        }
    }
    assert!(resyncs > 0);
    eprintln!("{cuts} cuts: {lost_untouched} lost an untouched part, {limited} in the known limit");
    assert!(
        lost_untouched * 200 <= cuts,
        "{lost_untouched} of {cuts} cuts lost an untouched part"
    );
    assert!(limited * 100 <= cuts, "{limited} of {cuts} cuts in the known limit");
    assert!(
        failures.is_empty(),
        "{} of {cuts} cuts:\n{}",
        failures.len(),
        failures[..failures.len().min(30)].join("\n")
    );
}

#[test]
fn server_holes_do_not_cost_parts() {
    let (events, parts) = loss_session();
    let total: usize = events.iter().filter(|(s, _)| *s == S).map(|(_, b)| b.len()).sum();
    let mut failures = Vec::new();
    for len in [1usize, 5, 20, 60] {
        for pos in 0..total {
            for late in [false, true] {
                let o = play_with_hole(&events, S, pos, len, late);
                if let Err(e) = check_cut(&parts, |_| false, &o, &format!("server hole {pos}+{len} late={late}")) {
                    failures.push(e);
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures[..failures.len().min(30)].join("\n"));
}
