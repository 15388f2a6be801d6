use super::*;
use base64::Engine;
use sha2::{Digest, Sha256};
use xdpcarve_contract::{Anomaly, ConnMeta, Direction, FileConfig, FileRecord, Proto, StandaloneApp, Timestamp};

type Harness = StandaloneApp<MimeState>;

/// A parser driven alone, on one SMTP connection, at t = 1 s.
fn harness(cfg: MimeConfig) -> Harness {
    let mut h = StandaloneApp::new(
        MimeState::new(cfg),
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
                .map(|r| {
                    (
                        r.sha256.clone(),
                        r.size,
                        r.filename.clone(),
                        r.depth,
                        r.missing_bytes,
                        r.anomalies,
                    )
                })
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
    // The last part ends where the message does, without the line break before that end (as
    // Python's email reads it).
    assert_eq!(r[1].sha256.as_deref(), Some(sha(b"last line").as_str()));
    assert!(!r[1].truncated);
    assert_eq!(r[1].anomalies.names(), ["boundary_close_missing"]);
    assert!(r[0].anomalies.is_empty());
    assert_eq!(s.missing_final_boundary, 1);
    // An inner multipart ended by the outer boundary.
    let msg =
        b"Content-Type: multipart/mixed; boundary=o\r\n\r\n--o\r\nContent-Type: multipart/mixed; boundary=i\r\n\r\n\
        --i\r\n\r\ninner\r\n--o\r\n\r\nouter\r\n--o--\r\n";
    let (r, s) = run(MimeStart::Message, msg);
    let hashes: Vec<_> = r.iter().map(|f| f.sha256.clone().unwrap()).collect();
    assert_eq!(hashes, vec![sha(b"inner"), sha(b"outer")]);
    assert_eq!(r[0].anomalies.names(), ["boundary_close_missing"]);
    assert!(r[1].anomalies.is_empty());
    assert_eq!(s.missing_final_boundary, 1);
}

#[test]
fn form_data_upload_carves_every_part_with_its_field_name() {
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
    // Form fields are files even when text bodies are not (Zeek logs each field).
    let cfg = MimeConfig {
        text_bodies_as_files: false,
        ..MimeConfig::default()
    };
    let mut h = harness(cfg);
    let mut p = MimeParser::new(start, t);
    for c in body.chunks(100) {
        p.feed(c, &mut h.cx());
    }
    p.finish(FileEnd::Complete, &mut h.cx());
    assert_eq!(h.files.records.len(), 2);
    let field = &h.files.records[0];
    assert_eq!(field.filename, None);
    assert_eq!(field.sha256.as_deref(), Some(sha(b"value").as_str()));
    assert_eq!(field.fields.str(FIELD_NAME), Some("field"));
    let r = &h.files.records[1];
    assert_eq!(r.filename.as_deref(), Some("pic.bin"));
    assert_eq!(r.sha256.as_deref(), Some(sha(&file).as_str()));
    assert_eq!(r.fields.str("http_method"), Some("POST"));
    assert_eq!(r.fields.str(FIELD_NAME), Some("upload"));
    assert_eq!(r.depth, 1);
    assert!(h.files.records.iter().all(|r| r.anomalies.is_empty()));
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
    // Too deep to split: the multipart is one file of its whole body, marked; nothing hides.
    assert_eq!(r.len(), 2);
    assert_eq!(r[0].sha256.as_deref(), Some(sha(b"--c\r\n\r\ndeep\r\n--c--").as_str()));
    assert_eq!(r[0].anomalies.names(), ["mime_too_deep"]);
    assert_eq!(r[1].sha256.as_deref(), Some(sha(b"ok").as_str()));
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
    // Three parts, then the rest of the multipart as one marked file: nothing hides past it.
    assert_eq!(r.len(), 4);
    let rest = b"\r\npart 3\r\n--p\r\n\r\npart 4\r\n--p\r\n\r\npart 5\r\n--p\r\n\r\npart 6\r\n--p\r\n\r\npart 7\r\n--p\r\n\r\npart 8\r\n--p\r\n\r\npart 9";
    assert_eq!(r[3].sha256.as_deref(), Some(sha(rest).as_str()));
    assert_eq!(r[3].anomalies.names(), ["mime_parts_exceeded"]);
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
    assert_eq!(r.len(), 3);
    assert_eq!((r[0].size, r[0].missing_bytes), (6, 100));
    assert!(r[0].sha256.is_none());
    // The part whose headers the hole cut: the rest of its block, then its body, marked.
    assert_eq!((r[1].size, r[1].missing_bytes), (9, 10));
    assert!(r[1].sha256.is_none());
    assert_eq!(r[2].sha256.as_deref(), Some(sha(b"after").as_str()));
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
    assert_eq!(r[0].anomalies.names(), ["part_without_headers"]);
    // An empty part directly followed by the next delimiter.
    let (r, _) = run(
        MimeStart::Message,
        b"Content-Type: multipart/mixed; boundary=h\r\n\r\n--h\r\n\r\n--h\r\n\r\nx\r\n--h--\r\n",
    );
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].sha256.as_deref(), Some(sha(b"x").as_str()));
    // Delimiter with transport padding; a close delimiter followed by junk is no delimiter.
    let (r, _) = run(
        MimeStart::Message,
        b"Content-Type: multipart/mixed; boundary=h\r\n\r\n--h  \r\n\r\ny\r\n--h-- \t\r\n",
    );
    assert_eq!(r[0].sha256.as_deref(), Some(sha(b"y").as_str()));
    assert!(r[0].anomalies.is_empty());
    let (r, _) = run(
        MimeStart::Message,
        b"Content-Type: multipart/mixed; boundary=h\r\n\r\n--h\r\n\r\ny\r\n--h--junk\r\nepilogue\r\n",
    );
    assert_eq!(
        r[0].sha256.as_deref(),
        Some(sha(b"y\r\n--h--junk\r\nepilogue").as_str())
    );
    assert_eq!(
        r[0].anomalies.names(),
        ["boundary_trailing_junk", "boundary_close_missing"]
    );
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

// ---- bent framing: each rule, with the anomaly it leaves ----

/// A multipart/mixed message with boundary `B` around `body` (parts and delimiters).
fn mixed(body: &str) -> Vec<u8> {
    format!("Subject: s\r\nContent-Type: multipart/mixed; boundary=\"B\"\r\n\r\n{body}").into_bytes()
}

fn names(r: &FileRecord) -> Vec<&'static str> {
    r.anomalies.names()
}

#[test]
fn a_boundary_line_with_trailing_junk_is_content() {
    let (r, _) = run(
        MimeStart::Message,
        &mixed("--B\r\nContent-Type: application/x\r\n\r\none\r\n--B junk\r\n--Bxyz\r\ntwo\r\n--B--\r\n"),
    );
    assert_eq!(r.len(), 1);
    assert_eq!(
        r[0].sha256.as_deref(),
        Some(sha(b"one\r\n--B junk\r\n--Bxyz\r\ntwo").as_str())
    );
    assert_eq!(names(&r[0]), ["boundary_trailing_junk"]);
    // A longer boundary of an enclosing multipart is its delimiter, not junk of the inner one.
    let (r, _) = run(
        MimeStart::Message,
        b"Content-Type: multipart/mixed; boundary=Bx\r\n\r\n--Bx\r\nContent-Type: multipart/mixed; boundary=B\r\n\r\n\
          --B\r\n\r\ninner\r\n--Bx\r\n\r\nouter\r\n--Bx--\r\n",
    );
    let got: Vec<_> = r.iter().map(|f| (f.sha256.clone().unwrap(), names(f))).collect();
    assert_eq!(
        got,
        [(sha(b"inner"), vec!["boundary_close_missing"]), (sha(b"outer"), vec![])]
    );
}

#[test]
fn a_multipart_whose_boundary_never_comes_is_one_file() {
    let body = "--OTHER\r\nContent-Type: application/x\r\n\r\ndata\r\n--OTHER--\r\n";
    let msg = format!("Content-Type: multipart/mixed; boundary=B\r\n\r\npreamble\r\n{body}");
    let (r, s) = run(MimeStart::Message, msg.as_bytes());
    assert_eq!(r.len(), 1);
    assert_eq!(
        r[0].sha256.as_deref(),
        Some(sha(format!("preamble\r\n{body}").as_bytes()).as_str())
    );
    assert_eq!(r[0].declared_mime_type.as_deref(), Some("multipart/mixed"));
    assert_eq!(names(&r[0]), ["boundary_not_found"]);
    assert_eq!(s.missing_final_boundary, 1);
    // Nested: the enclosing delimiter ends it, without the line break before it.
    let (r, _) = run(
        MimeStart::Message,
        &mixed("--B\r\nContent-Type: multipart/mixed; boundary=Z\r\n\r\nnot split\r\n--B\r\n\r\nnext\r\n--B--\r\n"),
    );
    let got: Vec<_> = r.iter().map(|f| (f.sha256.clone().unwrap(), names(f))).collect();
    assert_eq!(
        got,
        [(sha(b"not split"), vec!["boundary_not_found"]), (sha(b"next"), vec![])]
    );
    // A preamble is no file when the delimiter comes.
    let (r, _) = run(MimeStart::Message, &mixed("preamble\r\n--B\r\n\r\nx\r\n--B--\r\n"));
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].sha256.as_deref(), Some(sha(b"x").as_str()));
    // No boundary parameter at all.
    let (r, _) = run(
        MimeStart::Message,
        b"Content-Type: multipart/mixed\r\n\r\n--B\r\n\r\nx\r\n",
    );
    assert_eq!(r[0].sha256.as_deref(), Some(sha(b"--B\r\n\r\nx\r\n").as_str()));
    assert_eq!(names(&r[0]), ["boundary_missing"]);
}

#[test]
fn a_reused_boundary_is_the_innermost_multipart_s() {
    let (r, _) = run(
        MimeStart::Message,
        &mixed("--B\r\nContent-Type: multipart/mixed; boundary=B\r\n\r\n--B\r\n\r\ninner\r\n--B--\r\n--B\r\n\r\nouter\r\n--B--\r\n"),
    );
    let got: Vec<_> = r.iter().map(|f| (f.sha256.clone().unwrap(), names(f))).collect();
    assert_eq!(got, [(sha(b"inner"), vec!["boundary_reused"]), (sha(b"outer"), vec![])]);
}

#[test]
fn header_lines_without_a_colon_are_skipped_when_a_field_follows() {
    let att = binary(300);
    let msg = mixed(&format!(
        "--B\r\nContent-Type: application/x\r\nno colon here\r\nContent-Transfer-Encoding: base64\r\n\
         Content-Disposition : attachment; filename=a.exe\r\n\r\n{}--B--\r\n",
        b64_lines(&att)
    ));
    let (r, _) = run(MimeStart::Message, &msg);
    assert_eq!(r[0].sha256.as_deref(), Some(sha(&att).as_str()));
    assert_eq!(r[0].filename.as_deref(), Some("a.exe"));
    assert_eq!(names(&r[0]), ["space_before_colon", "header_without_colon"]);
    // At the top: the message stays multipart, and every file says so.
    let msg = b"Subject: s\r\njunk line\r\nContent-Type: multipart/mixed; boundary=B\r\n\r\n--B\r\n\r\nx\r\n--B--\r\n";
    let (r, _) = run(MimeStart::Message, msg);
    assert_eq!(r[0].sha256.as_deref(), Some(sha(b"x").as_str()));
    assert_eq!(names(&r[0]), ["header_without_colon"]);
}

#[test]
fn header_lines_without_a_colon_and_no_field_after_start_the_body() {
    // Then the blank line: Python's email reads every line from the first non-field as body.
    let (r, _) = run(
        MimeStart::Message,
        &mixed("--B\r\nContent-Type: application/x\r\nbody line\r\n\r\nmore\r\n--B--\r\n"),
    );
    assert_eq!(r[0].sha256.as_deref(), Some(sha(b"body line\r\n\r\nmore").as_str()));
    assert_eq!(r[0].declared_mime_type.as_deref(), Some("application/x"));
    assert_eq!(names(&r[0]), ["header_without_colon"]);
    // Then the delimiter.
    let (r, _) = run(
        MimeStart::Message,
        &mixed("--B\r\nContent-Type: application/x\r\nbody line\r\nline two\r\n--B\r\n\r\nnext\r\n--B--\r\n"),
    );
    let got: Vec<_> = r.iter().map(|f| (f.sha256.clone().unwrap(), names(f))).collect();
    assert_eq!(
        got,
        [
            (sha(b"body line\r\nline two"), vec!["header_without_colon"]),
            (sha(b"next"), vec![])
        ]
    );
    // Then the end of a single-part message.
    let (r, _) = run(MimeStart::Message, b"Subject: s\r\nfirst line\r\nsecond line\r\n");
    assert_eq!(
        r[0].sha256.as_deref(),
        Some(sha(b"first line\r\nsecond line\r\n").as_str())
    );
    assert_eq!(names(&r[0]), ["header_without_colon"]);
    assert_eq!(r[0].fields.str("smtp_subject"), Some("s"));
}

#[test]
fn waiting_header_lines_stay_bounded() {
    let cfg = MimeConfig {
        max_header_bytes: 4096,
        ..MimeConfig::default()
    };
    let mut msg = b"Content-Type: multipart/mixed; boundary=B\r\n\r\n--B\r\nContent-Type: application/x\r\n".to_vec();
    for i in 0..2000 {
        msg.extend_from_slice(format!("not a field {i}\r\n").as_bytes());
    }
    msg.extend_from_slice(b"\r\nafter\r\n--B--\r\n");
    let (r, s) = run_cfg(cfg, MimeStart::Message, &msg);
    assert_eq!(s.header_too_large, 1);
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].sha256.as_deref(), Some(sha(b"after").as_str()));
}

#[test]
fn repeated_fields_the_first_counts() {
    let att = binary(90);
    let msg = mixed(&format!(
        "--B\r\nContent-Type: application/x-msdownload; name=a.exe\r\nContent-Type: text/plain\r\n\
         Content-Transfer-Encoding: base64\r\nContent-Transfer-Encoding: 7bit\r\n\
         Content-Disposition: attachment; filename=a.exe; filename=b.txt\r\nContent-Disposition: inline\r\n\r\n{}--B--\r\n",
        b64_lines(&att)
    ));
    let (r, _) = run(MimeStart::Message, &msg);
    assert_eq!(r[0].sha256.as_deref(), Some(sha(&att).as_str()));
    assert_eq!(r[0].filename.as_deref(), Some("a.exe"));
    assert_eq!(r[0].declared_mime_type.as_deref(), Some("application/x-msdownload"));
    assert_eq!(
        names(&r[0]),
        [
            "content_type_duplicate",
            "disposition_duplicate",
            "cte_duplicate",
            "param_duplicate"
        ]
    );
}

#[test]
fn transfer_encodings_unknown_quoted_and_uuencode() {
    let att = binary(100);
    let uu: String = att
        .chunks(45)
        .map(|c| {
            let mut line = vec![32 + c.len() as u8];
            for q in c.chunks(3) {
                let v = (q[0] as u32) << 16 | (*q.get(1).unwrap_or(&0) as u32) << 8 | *q.get(2).unwrap_or(&0) as u32;
                line.extend((0..4).map(|i| 32 + ((v >> (18 - 6 * i)) & 63) as u8));
            }
            format!("{}\r\n", String::from_utf8(line).unwrap())
        })
        .collect();
    for (cte, body, want, anomaly) in [
        (
            "x-uuencode",
            format!("begin 644 a.bin\r\n{uu}`\r\nend\r\n"),
            att.clone(),
            Some("cte_uuencode"),
        ),
        (
            "x-custom",
            "QUJD\r\n".to_string(),
            b"QUJD".to_vec(),
            Some("cte_unknown"),
        ),
        (
            "\"base64\"",
            "QUJD\r\n".to_string(),
            b"QUJD".to_vec(),
            Some("cte_unknown"),
        ),
        ("  BASE64 ", "QUJD\r\n".to_string(), b"ABC".to_vec(), None),
    ] {
        let msg = mixed(&format!(
            "--B\r\nContent-Type: application/x\r\nContent-Transfer-Encoding: {cte}\r\n\r\n{body}--B--\r\n"
        ));
        let (r, _) = run(MimeStart::Message, &msg);
        assert_eq!(r[0].sha256.as_deref(), Some(sha(&want).as_str()), "{cte}");
        assert_eq!(names(&r[0]), anomaly.into_iter().collect::<Vec<_>>(), "{cte}");
    }
}

#[test]
fn bent_base64_and_quoted_printable_are_flagged() {
    let att = binary(1000); // 1000 % 3 == 1: "==" padding
    let enc = b64_lines(&att);
    let part = |cte: &str, body: &str| {
        mixed(&format!(
            "--B\r\nContent-Type: application/x\r\nContent-Transfer-Encoding: {cte}\r\n\r\n{body}--B--\r\n"
        ))
    };
    let spaced = enc.replace("\r\n", " \t\r\n");
    let junk = enc.replacen('A', "A!", 3);
    let unpadded = enc.replace('=', "");
    let (half_a, half_b) = att.split_at(500);
    let joined = format!("{}{}", b64_lines(half_a), b64_lines(half_b));
    for (body, want) in [
        (spaced, "base64_invalid_chars"),
        (junk, "base64_invalid_chars"),
        (unpadded, "base64_padding_missing"),
        (joined, "base64_data_after_padding"),
    ] {
        let (r, _) = run(MimeStart::Message, &part("base64", &body));
        assert_eq!(r[0].sha256.as_deref(), Some(sha(&att).as_str()), "{want}");
        assert_eq!(names(&r[0]), [want]);
    }
    // A lone sextet at the end carries no byte.
    let (r, _) = run(MimeStart::Message, &part("base64", "QUJDRA==Q\r\n"));
    assert_eq!(r[0].sha256.as_deref(), Some(sha(b"ABCD").as_str()));
    assert_eq!(names(&r[0]), ["base64_padding_missing", "base64_data_after_padding"]);
    let (r, _) = run(MimeStart::Message, &part("base64", &enc));
    assert!(r[0].anomalies.is_empty());
    let (r, _) = run(MimeStart::Message, &part("quoted-printable", "a=ZZb=3Dc\r\n"));
    assert_eq!(r[0].sha256.as_deref(), Some(sha(b"a=ZZb=c").as_str()));
    assert_eq!(names(&r[0]), ["qp_invalid_escape"]);
}

#[test]
fn bare_lf_and_bare_cr_line_ends() {
    // Bare LF everywhere: flagged on every file (the top headers have it).
    let (r, _) = run(
        MimeStart::Message,
        b"Subject: s\nContent-Type: multipart/mixed; boundary=B\n\n--B\nContent-Type: application/x\n\none\n--B\n\ntwo\n--B--\n",
    );
    let got: Vec<_> = r.iter().map(|f| (f.sha256.clone().unwrap(), names(f))).collect();
    assert_eq!(got, [(sha(b"one"), vec!["bare_lf"]), (sha(b"two"), vec!["bare_lf"])]);
    // Bare CR ends header lines and delimiter lines.
    let (r, _) = run(
        MimeStart::Message,
        &mixed("--B\r\nContent-Type: application/x\rContent-Disposition: attachment; filename=a\r\r\none\r--B\rx\r\n\r\ntwo\r\n--B--\r\n"),
    );
    let got: Vec<_> = r
        .iter()
        .map(|f| (f.sha256.clone().unwrap(), f.filename.clone(), names(f)))
        .collect();
    assert_eq!(
        got,
        [
            (sha(b"one"), Some("a".to_string()), vec!["bare_cr"]),
            (sha(b"x\r\n\r\ntwo"), None, vec!["bare_cr", "part_without_headers"]),
        ]
    );
    // CR CR LF: the CR ends the line, the CRLF is the blank line.
    let (r, _) = run(
        MimeStart::Message,
        &mixed("--B\r\nContent-Type: application/x\r\r\nContent-Disposition: attachment\r\n\r\nbody\r\n--B--\r\n"),
    );
    assert_eq!(
        r[0].sha256.as_deref(),
        Some(sha(b"Content-Disposition: attachment\r\n\r\nbody").as_str())
    );
    assert_eq!(names(&r[0]), ["bare_cr"]);
    // A bare CR in content that is not before a delimiter stays content.
    let (r, _) = run(MimeStart::Message, &mixed("--B\r\n\r\na\rb\r-c\r\n--B--\r\n"));
    assert_eq!(r[0].sha256.as_deref(), Some(sha(b"a\rb\r-c").as_str()));
    assert!(r[0].anomalies.is_empty());
}

#[test]
fn carrier_flags_reach_the_open_file_and_the_next() {
    let mut h = harness(MimeConfig::default());
    let mut p = MimeParser::new(MimeStart::Message, smtp_template());
    p.feed(
        b"Content-Type: multipart/mixed; boundary=B\r\n\r\n--B\r\n\r\none\r\n--B\r\n\r\ntwo",
        &mut h.cx(),
    );
    p.flag_message(Anomaly::BareLf);
    p.feed(b"\r\n--B\r\n\r\nthree\r\n--B--\r\n", &mut h.cx());
    p.finish(FileEnd::Complete, &mut h.cx());
    let got: Vec<_> = h.files.records.iter().map(names).collect();
    assert_eq!(got, [vec![], vec!["bare_lf"], vec!["bare_lf"]]);
}

#[test]
fn bent_input_never_panics_and_carries_stay_small() {
    let mut x = 0x2545f4914f6cdd1du64;
    for round in 0..30 {
        let mut junk = b"Subject: s\rContent-Type: multipart/mixed; boundary=j\r\n\r\n".to_vec();
        for _ in 0..3000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let piece: &[u8] = match x % 13 {
                0 => b"\r--j\r",
                1 => b"\n--j--junk\n",
                2 => b"\r\n--j\r\nContent-Type: text/plain\r\nno colon\r\n",
                3 => b"Content-Type: multipart/mixed; boundary=j\r\r\n",
                4 => b"Content-Transfer-Encoding: x-uuencode\r\n\r\nbegin 644 x\r\n",
                5 => b"Content-Transfer-Encoding: base64\r\nX: y\r\n\r\nQQ==QUJD",
                6 => b"\r",
                7 => b"Content-Type: multipart/mixed; boundary=k\r\n\r\n",
                _ => &[(x >> 8) as u8, (x >> 16) as u8, b'\n'][..((x >> 24) % 4) as usize],
            };
            junk.extend_from_slice(piece);
        }
        let mut h = harness(MimeConfig::default());
        let mut p = MimeParser::new(MimeStart::Message, smtp_template());
        for c in junk.chunks(1 + round * 37) {
            p.feed(c, &mut h.cx());
            assert!(p.carry.len() <= 2 * MAX_BOUNDARY + MAX_DELIM_SPACE + 8);
            assert!(p.hdr.len() <= MimeConfig::default().max_header_bytes);
        }
        p.finish(FileEnd::Complete, &mut h.cx());
        // However the bytes are cut, the files and their anomalies are the same.
        let key = |v: &[FileRecord]| {
            v.iter()
                .map(|r| (r.sha256.clone(), r.size, r.anomalies))
                .collect::<Vec<_>>()
        };
        let whole = key(&run_with(MimeConfig::default(), MimeStart::Message, &junk, None).0);
        assert_eq!(key(&h.files.records), whole, "round {round}");
        if round < 5 {
            let bytes = key(&run_with(MimeConfig::default(), MimeStart::Message, &junk, Some(0)).0);
            assert_eq!(bytes, whole, "round {round}, byte at a time");
        }
    }
}

#[test]
fn holes_cost_only_the_parts_they_touch() {
    // base64, quoted-printable and a nested multipart; a hole at every few bytes.
    let att = binary(1500);
    let msg = format!(
        "Subject: s\r\nContent-Type: multipart/mixed; boundary=\"o\"\r\n\r\npreamble\r\n--o\r\n\
         Content-Type: text/plain\r\n\r\nfirst text\r\n--o\r\nContent-Type: application/pdf\r\n\
         Content-Transfer-Encoding: base64\r\n\r\n{}\r\n--o\r\nContent-Type: multipart/alternative; boundary=\"i\"\r\n\r\n\
         --i\r\nContent-Type: text/plain\r\n\r\ninner plain\r\n--i\r\nContent-Type: text/html\r\n\
         Content-Transfer-Encoding: quoted-printable\r\n\r\n<p>a =3D b</p>\r\n--i--\r\n\r\n--o\r\n\
         Content-Type: application/zip; name=\"z.zip\"\r\nContent-Transfer-Encoding: base64\r\n\r\n{}\r\n--o--\r\n",
        b64_lines(&att).trim_end(),
        b64_lines(&att[..700]).trim_end()
    );
    let m = msg.as_bytes();
    let contents: [&[u8]; 5] = [b"first text", &att, b"inner plain", b"<p>a = b</p>", &att[..700]];
    // Each part's span: from the line break before its delimiter to the end of the next one.
    let at = |pat: &str| memchr::memmem::find(m, pat.as_bytes()).unwrap();
    let spans = [
        at("\r\n--o\r\nContent-Type: text/plain")..at("\r\n--o\r\nContent-Type: application/pdf") + 7,
        at("\r\n--o\r\nContent-Type: application/pdf")..at("\r\n--o\r\nContent-Type: multipart/alt") + 7,
        at("\r\n--i\r\nContent-Type: text/plain")..at("\r\n--i\r\nContent-Type: text/html") + 7,
        at("\r\n--i\r\nContent-Type: text/html")..at("\r\n--i--") + 9,
        at("\r\n--o\r\nContent-Type: application/zip")..m.len(),
    ];
    let mut failures = Vec::new();
    let (mut cuts, mut lost_untouched) = (0, 0);
    for len in [1usize, 9, 80, 400] {
        for pos in (0..m.len() - len).step_by(3) {
            cuts += 1;
            let mut h = harness(MimeConfig::default());
            let mut p = MimeParser::new(MimeStart::Message, smtp_template());
            p.feed(&m[..pos], &mut h.cx());
            p.gap(len as u64, &mut h.cx());
            p.feed(&m[pos + len..], &mut h.cx());
            p.finish(FileEnd::Complete, &mut h.cx());
            let r = &h.files.records;
            let mut hashes: Vec<String> = r.iter().filter_map(|f| f.sha256.clone()).collect();
            for f in r {
                if f.missing_bytes > 0 && f.sha256.is_some() || f.missing_bytes == 0 && f.sha256.is_none() {
                    failures.push(format!(
                        "{pos}+{len}: record {:?} missing {}",
                        f.filename, f.missing_bytes
                    ));
                }
            }
            for (c, s) in contents.iter().zip(&spans) {
                let touched = s.start < pos + len && pos < s.end;
                let want = sha(c);
                match hashes.iter().position(|x| *x == want) {
                    Some(i) => {
                        hashes.swap_remove(i);
                    }
                    // Known limit: a hole that took a nested multipart's header block and first
                    // delimiter leaves its boundary unknown (never a wrong hash): counted.
                    None if !touched => lost_untouched += 1,
                    None => {}
                }
            }
            if !hashes.is_empty() || r.len() > contents.len() {
                failures.push(format!("{pos}+{len}: {} records, stray hashes {hashes:?}", r.len()));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{}\n{}",
        failures.len(),
        failures[..failures.len().min(20)].join("\n")
    );
    assert!(
        lost_untouched * 100 <= cuts,
        "{lost_untouched} of {cuts} cuts lost an untouched part"
    );
}
