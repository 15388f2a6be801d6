use super::*;
use base64::Engine;
use sha2::{Digest, Sha256};
use xdpcarve_contract::{ConnMeta, Direction, FileConfig, FileRecord, Proto, StandaloneApp, Timestamp};

type Harness = StandaloneApp<MimeState>;

/// A parser driven alone, on one SMTP connection, at t = 1 s.
fn harness(cfg: MimeConfig) -> Harness {
    let mut h = StandaloneApp::new(
        MimeState::new(cfg),
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

fn smtp_template() -> FileMeta {
    let mut t = FileMeta::new(Proto::new("smtp"), Direction::Upload);
    t.fields.set("smtp_helo", "client");
    t
}

/// What the SMTP parser adds from a message's headers.
fn message_fields(fields: &mut AppFields, h: &header::EntityHeaders) {
    fields.set_opt("smtp_subject", h.subject.clone());
    fields.set_opt("smtp_message_id", h.message_id.clone());
}

fn sha(data: &[u8]) -> String {
    xdpcarve_files::analyzer::hex(&Sha256::digest(data))
}

/// Deterministic split points: xorshift.
fn splits(len: usize, seed: u64) -> Vec<usize> {
    let mut x = seed | 1;
    let mut cuts = vec![0];
    let mut at = 0;
    while at < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        at += 1 + (x % 97) as usize;
        cuts.push(at.min(len));
    }
    cuts
}

fn run_with(cfg: MimeConfig, start: MimeStart, msg: &[u8], chunking: Option<u64>) -> (Vec<FileRecord>, MimeStats) {
    let mut h = harness(cfg);
    let mut p = MimeParser::new(start, smtp_template()).with_message_fields(message_fields);
    match chunking {
        None => p.feed(msg, &mut h.cx()),
        Some(0) => {
            for b in msg {
                p.feed(std::slice::from_ref(b), &mut h.cx());
            }
        }
        Some(seed) => {
            let cuts = splits(msg.len(), seed);
            for w in cuts.windows(2) {
                p.feed(&msg[w[0]..w[1]], &mut h.cx());
            }
        }
    }
    p.finish(FileEnd::Complete, &mut h.cx());
    (h.files.records, h.state.stats)
}

/// Runs the message whole, byte by byte and in several random splits; all must agree.
fn run(start: MimeStart, msg: &[u8]) -> (Vec<FileRecord>, MimeStats) {
    run_cfg(MimeConfig::default(), start, msg)
}

fn run_cfg(cfg: MimeConfig, start: MimeStart, msg: &[u8]) -> (Vec<FileRecord>, MimeStats) {
    let (whole, stats) = run_with(cfg, start.clone(), msg, None);
    for seed in [0u64, 1, 7, 42, 1234] {
        let (r, s) = run_with(cfg, start.clone(), msg, Some(seed));
        let key = |v: &[FileRecord]| {
            v.iter()
                .map(|r| (r.sha256.clone(), r.size, r.filename.clone(), r.depth, r.missing_bytes))
                .collect::<Vec<_>>()
        };
        assert_eq!(key(&r), key(&whole), "split seed {seed} differs");
        assert_eq!(s, stats, "stats differ with split seed {seed}");
    }
    (whole, stats)
}

fn b64_lines(data: &[u8]) -> String {
    let enc = base64::engine::general_purpose::STANDARD.encode(data);
    enc.as_bytes()
        .chunks(76)
        .map(|c| format!("{}\r\n", std::str::from_utf8(c).unwrap()))
        .collect()
}

fn binary(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

#[test]
fn multipart_text_base64_and_qp_parts() {
    let attachment = binary(5000);
    let msg = format!(
        "From: a@example.com\r\nSubject: =?UTF-8?Q?Invoice_=E2=82=AC?=\r\nMessage-ID: <m1@example.com>\r\n\
         MIME-Version: 1.0\r\nContent-Type: multipart/mixed;\r\n boundary=\"XYZ\"\r\n\r\n\
         This is the preamble.\r\n--XYZ\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\nHello\r\nworld\r\n\
         --XYZ\r\nContent-Type: application/octet-stream; name=\"data.bin\"\r\n\
         Content-Transfer-Encoding: base64\r\nContent-Disposition: attachment\r\n\r\n{}\r\n\
         --XYZ\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: quoted-printable\r\n\
         Content-Disposition: attachment; filename=notes.txt\r\n\r\ncaf=C3=A9 soft=\r\nbreak   \r\nend=\r\n\
         --XYZ--\r\nepilogue\r\n",
        b64_lines(&attachment)
    );
    let (r, s) = run(MimeStart::Message, msg.as_bytes());
    assert_eq!(r.len(), 3);
    assert_eq!(r[0].sha256.as_deref(), Some(sha(b"Hello\r\nworld").as_str()));
    assert_eq!(r[0].filename, None);
    assert_eq!(r[0].declared_mime_type.as_deref(), Some("text/plain"));
    assert_eq!(r[1].sha256.as_deref(), Some(sha(&attachment).as_str()));
    assert_eq!(r[1].size, 5000);
    assert_eq!(r[1].filename.as_deref(), Some("data.bin"));
    assert_eq!(
        r[2].sha256.as_deref(),
        Some(sha("café softbreak\r\nend".as_bytes()).as_str())
    );
    assert_eq!(r[2].filename.as_deref(), Some("notes.txt"));
    for f in &r {
        assert_eq!(f.depth, 1);
        assert_eq!(f.fields.str("smtp_subject"), Some("Invoice €"));
        assert_eq!(f.fields.str("smtp_message_id"), Some("<m1@example.com>"));
        assert_eq!(f.fields.str("smtp_helo"), Some("client"));
        assert!(!f.truncated);
    }
    assert_eq!((s.messages, s.parts, s.missing_final_boundary), (1, 3, 0));
}

#[test]
fn single_part_body_keeps_its_last_crlf() {
    let (r, _) = run(MimeStart::Message, b"Subject: hi\r\n\r\nline one\r\nline two\r\n");
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].sha256.as_deref(), Some(sha(b"line one\r\nline two\r\n").as_str()));
    assert_eq!(r[0].declared_mime_type.as_deref(), Some("text/plain"));
    assert_eq!(r[0].depth, 0);
    // Bare LF mail, and a single-part base64 body.
    let (r, _) = run(MimeStart::Message, b"Subject: hi\n\nx\n--not a boundary\n");
    assert_eq!(r[0].sha256.as_deref(), Some(sha(b"x\n--not a boundary\n").as_str()));
    let msg = format!(
        "Content-Type: image/png\r\nContent-Transfer-Encoding: base64\r\n\r\n{}",
        b64_lines(b"\x89PNG")
    );
    let (r, _) = run(MimeStart::Message, msg.as_bytes());
    assert_eq!(r[0].sha256.as_deref(), Some(sha(b"\x89PNG").as_str()));
}

#[test]
fn nested_multipart_and_forwarded_message() {
    let inner_att = binary(300);
    let msg = format!(
        "Subject: outer\r\nContent-Type: multipart/mixed; boundary=\"o\"\r\n\r\n\
         --o\r\nContent-Type: multipart/alternative; boundary=\"o2\"\r\n\r\n\
         --o2\r\nContent-Type: text/plain\r\n\r\nplain\r\n--o2\r\nContent-Type: text/html\r\n\r\n<p>html</p>\r\n--o2--\r\n\
         --o\r\nContent-Type: message/rfc822\r\nContent-Disposition: attachment; filename=\"fwd.eml\"\r\n\r\n\
         Subject: inner\r\nContent-Type: multipart/mixed; boundary=\"i\"\r\n\r\n\
         --i\r\nContent-Type: text/plain\r\n\r\ninner body\r\n\
         --i\r\nContent-Type: application/pdf; name=x.pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n{}--i--\r\n\
         --o--\r\n",
        b64_lines(&inner_att)
    );
    let (r, s) = run(MimeStart::Message, msg.as_bytes());
    let names: Vec<_> = r
        .iter()
        .map(|f| (f.declared_mime_type.clone().unwrap(), f.depth))
        .collect();
    assert_eq!(
        names,
        vec![
            ("text/plain".to_string(), 2),
            ("text/html".to_string(), 2),
            ("text/plain".to_string(), 3),
            ("application/pdf".to_string(), 3),
            ("message/rfc822".to_string(), 1),
        ]
    );
    assert_eq!(r[0].sha256.as_deref(), Some(sha(b"plain").as_str()));
    assert_eq!(r[1].sha256.as_deref(), Some(sha(b"<p>html</p>").as_str()));
    assert_eq!(r[2].sha256.as_deref(), Some(sha(b"inner body").as_str()));
    assert_eq!(r[3].sha256.as_deref(), Some(sha(&inner_att).as_str()));
    let container = &r[4];
    assert_eq!(container.filename.as_deref(), Some("fwd.eml"));
    assert_eq!(r[2].parent_fuid.as_deref(), Some(container.fuid.as_str()));
    assert_eq!(r[3].parent_fuid.as_deref(), Some(container.fuid.as_str()));
    assert_eq!(r[0].parent_fuid, None);
    // The forwarded message's own subject does not replace the transaction's.
    assert!(r.iter().all(|f| f.fields.str("smtp_subject") == Some("outer")));
    assert_eq!(s.messages, 2);
    assert_eq!(s.missing_final_boundary, 0);
}

#[test]
fn boundary_that_prefixes_another_is_not_confused() {
    let msg = b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\
        Content-Type: multipart/mixed; boundary=b2\r\n\r\n--b2\r\n\r\nin\r\n--b2--\r\n--b\r\n\r\nnext\r\n--b--\r\n";
    let (r, s) = run(MimeStart::Message, msg);
    let hashes: Vec<_> = r.iter().map(|f| f.sha256.clone().unwrap()).collect();
    assert_eq!(hashes, vec![sha(b"in"), sha(b"next")]);
    assert_eq!(s.missing_final_boundary, 0);
}

#[test]
fn utf8_filenames_rfc2047_and_rfc2231() {
    let msg = "Content-Type: multipart/mixed; boundary=\"=_b\"\r\n\r\n\
        --=_b\r\nContent-Type: application/pdf;\r\n name=\"=?UTF-8?B?UmVjaG51bmdfw5xiZXI=?=\r\n =?UTF-8?B?c2ljaHQucGRm?=\"\r\n\r\nA\r\n\
        --=_b\r\nContent-Disposition: attachment;\r\n filename*0*=UTF-8''%E6%97%A5%E6%9C%AC;\r\n filename*1*=%E8%AA%9E.txt\r\n\r\nB\r\n\
        --=_b\r\nContent-Disposition: attachment; filename=\"=?iso-8859-1?q?r=E9sum=E9.doc?=\"\r\n\r\nC\r\n--=_b--\r\n";
    let (r, s) = run(MimeStart::Message, msg.as_bytes());
    let names: Vec<_> = r.iter().map(|f| f.filename.clone().unwrap()).collect();
    assert_eq!(names, vec!["Rechnung_Übersicht.pdf", "日本語.txt", "résumé.doc"]);
    assert_eq!(r[1].declared_mime_type.as_deref(), Some("text/plain"));
    assert_eq!(s.encoded_word_errors, 0);
}

#[test]
fn missing_final_boundary_closes_parts_complete() {
    let msg = b"Content-Type: multipart/mixed; boundary=zz\r\n\r\n--zz\r\n\r\nfirst\r\n--zz\r\n\
        Content-Disposition: attachment; filename=a.txt\r\n\r\nlast line\r\n";
    let (r, s) = run(MimeStart::Message, msg);
    assert_eq!(r.len(), 2);
    assert_eq!(r[1].sha256.as_deref(), Some(sha(b"last line\r\n").as_str()));
    assert!(!r[1].truncated);
    assert_eq!(s.missing_final_boundary, 1);
    // An inner multipart ended by the outer boundary.
    let msg =
        b"Content-Type: multipart/mixed; boundary=o\r\n\r\n--o\r\nContent-Type: multipart/mixed; boundary=i\r\n\r\n\
        --i\r\n\r\ninner\r\n--o\r\n\r\nouter\r\n--o--\r\n";
    let (r, s) = run(MimeStart::Message, msg);
    let hashes: Vec<_> = r.iter().map(|f| f.sha256.clone().unwrap()).collect();
    assert_eq!(hashes, vec![sha(b"inner"), sha(b"outer")]);
    assert_eq!(s.missing_final_boundary, 1);
}

#[test]
fn form_data_upload_carves_file_parts_only() {
    let file = binary(2000);
    let mut body = b"--AaB03x\r\nContent-Disposition: form-data; name=\"field\"\r\n\r\nvalue\r\n\
        --AaB03x\r\nContent-Disposition: form-data; name=\"upload\"; filename=\"pic.bin\"\r\n\
        Content-Type: application/octet-stream\r\n\r\n"
        .to_vec();
    body.extend_from_slice(&file);
    body.extend_from_slice(b"\r\n--AaB03x--\r\n");
    let mut t = FileMeta::new(Proto::new("http"), Direction::Upload);
    t.fields.set("http_method", "POST");
    let start = MimeStart::Multipart {
        boundary: b"AaB03x".to_vec(),
    };
    let mut h = harness(MimeConfig::default());
    let mut p = MimeParser::new(start, t);
    for c in body.chunks(100) {
        p.feed(c, &mut h.cx());
    }
    p.finish(FileEnd::Complete, &mut h.cx());
    assert_eq!(h.files.records.len(), 1);
    let r = &h.files.records[0];
    assert_eq!(r.filename.as_deref(), Some("pic.bin"));
    assert_eq!(r.sha256.as_deref(), Some(sha(&file).as_str()));
    assert_eq!(r.fields.str("http_method"), Some("POST"));
    assert_eq!(r.depth, 1);
    assert_eq!(h.state.stats.messages, 0);
}

#[test]
fn text_bodies_switch() {
    let msg = b"Content-Type: multipart/mixed; boundary=q\r\n\r\n--q\r\n\r\nbody\r\n--q\r\n\
        Content-Type: text/plain; name=n.txt\r\n\r\nnamed\r\n--q--\r\n";
    let cfg = MimeConfig {
        text_bodies_as_files: false,
        ..MimeConfig::default()
    };
    let (r, _) = run_cfg(cfg, MimeStart::Message, msg);
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].filename.as_deref(), Some("n.txt"));
}

#[test]
fn bounds_are_enforced_and_counted() {
    // Endless headers.
    let mut msg = Vec::new();
    for i in 0..20_000 {
        msg.extend_from_slice(format!("X-Junk-{i}: {}\r\n", "y".repeat(20)).as_bytes());
    }
    let (r, s) = run(MimeStart::Message, &msg);
    assert!(r.is_empty());
    assert_eq!(s.header_too_large, 1);

    // Depth.
    let cfg = MimeConfig {
        max_depth: 2,
        ..MimeConfig::default()
    };
    let msg = b"Content-Type: multipart/mixed; boundary=a\r\n\r\n--a\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n\
        --b\r\nContent-Type: multipart/mixed; boundary=c\r\n\r\n--c\r\n\r\ndeep\r\n--c--\r\n--b\r\n\r\nok\r\n--b--\r\n--a--\r\n";
    let (r, s) = run_cfg(cfg, MimeStart::Message, msg);
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].sha256.as_deref(), Some(sha(b"ok").as_str()));
    assert_eq!(s.depth_exceeded, 1);

    // Parts.
    let cfg = MimeConfig {
        max_parts: 3,
        ..MimeConfig::default()
    };
    let mut msg = b"Content-Type: multipart/mixed; boundary=p\r\n\r\n".to_vec();
    for i in 0..10 {
        msg.extend_from_slice(format!("--p\r\n\r\npart {i}\r\n").as_bytes());
    }
    msg.extend_from_slice(b"--p--\r\n");
    let (r, s) = run_cfg(cfg, MimeStart::Message, &msg);
    assert_eq!(r.len(), 3);
    assert_eq!(s.parts_exceeded, 1);

    // A huge header line.
    let mut msg = b"Subject: ".to_vec();
    msg.extend(std::iter::repeat_n(b'x', 100_000));
    msg.extend_from_slice(b"\r\n\r\nbody\r\n");
    let (r, s) = run(MimeStart::Message, &msg);
    assert_eq!(s.line_too_long, 1);
    assert_eq!(s.header_too_large, 1);
    assert!(r.is_empty() || r[0].sha256.as_deref() == Some(sha(b"body\r\n").as_str()));
}

#[test]
fn garbage_base64_and_broken_mime_are_counted_not_fatal() {
    let msg = b"Content-Type: multipart/mixed; boundary=g\r\n\r\n--g\r\nContent-Transfer-Encoding: base64\r\n\
        Content-Disposition: attachment; filename=bad.bin\r\n\r\nQUJD!!**\r\nRA==\r\n--g\r\n\
        Content-Transfer-Encoding: quoted-printable\r\n\r\n=ZZ=4\r\n--g--\r\n";
    let (r, s) = run(MimeStart::Message, msg);
    assert_eq!(r[0].sha256.as_deref(), Some(sha(b"ABCD").as_str()));
    assert_eq!(s.base64_invalid_chars, 4);
    assert_eq!(r[1].sha256.as_deref(), Some(sha(b"=ZZ=4").as_str()));
    assert_eq!(s.qp_invalid_sequences, 2);

    // Deterministic junk, with and without MIME-looking pieces: never panics, always bounded.
    let mut x = 0x9e3779b97f4a7c15u64;
    for round in 0..40 {
        let mut junk = b"Content-Type: multipart/mixed; boundary=j\r\n\r\n".to_vec();
        for _ in 0..3000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let piece: &[u8] = match x % 11 {
                0 => b"\r\n--j\r\n",
                1 => b"\r\n--j--",
                2 => b"Content-Type: message/rfc822\r\n\r\n",
                3 => b"Content-Type: multipart/mixed; boundary=j\r\n\r\n",
                4 => b"Content-Transfer-Encoding: base64\r\n",
                5 => b"\r\n",
                6 => b"=?utf-8?B?",
                _ => &[(x >> 8) as u8, (x >> 16) as u8, b'\n'][..((x >> 24) % 4) as usize],
            };
            junk.extend_from_slice(piece);
        }
        let (_r, s) = run_with(MimeConfig::default(), MimeStart::Message, &junk, Some(round));
        assert!(s.parts <= 1000 * 17);
    }
}

#[test]
fn gaps_mark_files_and_resync_headers() {
    let mut h = harness(MimeConfig::default());
    let mut p = MimeParser::new(MimeStart::Message, smtp_template()).with_message_fields(message_fields);
    p.feed(b"Content-Type: multipart/mixed; boundary=k\r\n\r\n--k\r\nContent-Disposition: attachment; filename=a\r\n\r\nabc", &mut h.cx());
    p.gap(100, &mut h.cx());
    p.feed(b"def\r\n--k\r\nContent-Ty", &mut h.cx());
    p.gap(10, &mut h.cx());
    p.feed(b"junk\r\n\r\nlost part\r\n--k\r\n\r\nafter\r\n--k--\r\n", &mut h.cx());
    p.finish(FileEnd::Complete, &mut h.cx());
    let r = &h.files.records;
    assert_eq!(r.len(), 2);
    assert_eq!((r[0].size, r[0].missing_bytes), (6, 100));
    assert!(r[0].sha256.is_none());
    assert_eq!(r[1].sha256.as_deref(), Some(sha(b"after").as_str()));
    assert_eq!(h.state.stats.gap_resyncs, 1);
}

#[test]
fn truncated_message_truncates_open_part() {
    let mut h = harness(MimeConfig::default());
    let mut p = MimeParser::new(MimeStart::Message, smtp_template()).with_message_fields(message_fields);
    p.feed(
        b"Content-Type: multipart/mixed; boundary=t\r\n\r\n--t\r\n\r\npartial\r\n--",
        &mut h.cx(),
    );
    p.finish(FileEnd::Truncated("conn_closed"), &mut h.cx());
    assert_eq!(h.files.records.len(), 1);
    assert!(h.files.records[0].truncated);
    assert_eq!(h.files.records[0].size, b"partial\r\n--".len() as u64);
}

#[test]
fn part_without_headers_and_headerless_message() {
    // A part that starts directly with content (no blank line): the line is content.
    let (r, _) = run(
        MimeStart::Message,
        b"Content-Type: multipart/mixed; boundary=h\r\n\r\n--h\r\nno headers here\r\nmore\r\n--h--\r\n",
    );
    assert_eq!(r[0].sha256.as_deref(), Some(sha(b"no headers here\r\nmore").as_str()));
    // An empty part directly followed by the next delimiter.
    let (r, _) = run(
        MimeStart::Message,
        b"Content-Type: multipart/mixed; boundary=h\r\n\r\n--h\r\n\r\n--h\r\n\r\nx\r\n--h--\r\n",
    );
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].sha256.as_deref(), Some(sha(b"x").as_str()));
    // Delimiter with transport padding and a close delimiter followed by junk.
    let (r, _) = run(
        MimeStart::Message,
        b"Content-Type: multipart/mixed; boundary=h\r\n\r\n--h  \r\n\r\ny\r\n--h--junk\r\n",
    );
    assert_eq!(r[0].sha256.as_deref(), Some(sha(b"y").as_str()));
}

#[test]
fn mbox_from_line_is_not_the_body() {
    let (r, _) = run(
        MimeStart::Message,
        b"From alice@example.com Mon Jan  1 00:00:00 2024\r\nSubject: s\r\n\r\nbody\r\n",
    );
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].sha256.as_deref(), Some(sha(b"body\r\n").as_str()));
    assert_eq!(r[0].fields.str("smtp_subject"), Some("s"));
}

#[test]
fn gap_keeps_bytes_that_looked_like_a_delimiter_start() {
    let mut h = harness(MimeConfig::default());
    let mut p = MimeParser::new(MimeStart::Message, smtp_template()).with_message_fields(message_fields);
    p.feed(
        b"Content-Type: multipart/mixed; boundary=abc\r\n\r\n--abc\r\n\r\nxy\r\n--ab",
        &mut h.cx(),
    );
    p.gap(10, &mut h.cx());
    p.feed(b"z\r\n--abc--\r\n", &mut h.cx());
    p.finish(FileEnd::Complete, &mut h.cx());
    assert_eq!(h.files.records.len(), 1);
    // "xy" + "\r\n--ab" (seen, not a delimiter after all) + 10 missing + "z".
    assert_eq!((h.files.records[0].size, h.files.records[0].missing_bytes), (9, 10));
}
