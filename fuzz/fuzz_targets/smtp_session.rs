//! Structure-aware: one SMTP session the input chooses (EHLO with or without PIPELINING, aborted
//! transactions with RSET, several messages each sent by DATA with dot-stuffing or by BDAT chunks
//! of chosen sizes, commands pipelined or in lockstep), carrying MIME messages built from the
//! input: nested multiparts whose boundaries prefix each other, attachments in base64,
//! quoted-printable, 7bit or x-uuencode, named plainly, by RFC 2047 encoded-words or by RFC 2231
//! values (with continuations and charsets), in Content-Disposition or in Content-Type. Oracle:
//! every attachment placed is carved with its exact SHA-256, size and decoded filename; no flow
//! memory is left after `finish`.
#![no_main]

use base64::Engine as _;
use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use sha2::{Digest, Sha256};
use xdpcarve_contract::{FileRecord, LinkType, Timestamp};
use xdpcarve_core::wire::{Checksum, IpRepr, TcpRepr};
use xdpcarve_core::{Engine, EngineConfig};

const CLIENT: [u8; 4] = [10, 0, 0, 1];
const SERVER: [u8; 4] = [10, 0, 0, 2];
const SYN: u8 = 0x02;
const ACK: u8 = 0x10;
const PA: u8 = 0x18;
const FA: u8 = 0x11;

/// A frame of the connection, checksums left zero (the engine takes them as offload).
fn frame(from_client: bool, seq: u32, ack: u32, flags: u8, payload: &[u8]) -> Vec<u8> {
    let (src, dst, sport, dport) = match from_client {
        true => (CLIENT, SERVER, 40_000u16, 25u16),
        false => (SERVER, CLIENT, 25, 40_000),
    };
    TcpRepr::new(sport, dport, seq, ack, flags, payload).emit_frame(&IpRepr::new(src, dst), Checksum::Zero)
}

fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data).iter().map(|b| format!("{b:02x}")).collect()
}

/// An attachment the engine must carve.
#[derive(Debug)]
struct Want {
    sha256: String,
    size: u64,
    filename: String,
}

/// Attachment content: a binary pattern, or text lines (CRLF, some starting with a dot so DATA
/// has to stuff them; no `-`, so no line can look like a delimiter).
fn content(u: &mut Unstructured<'_>, text: bool) -> Result<Vec<u8>> {
    let len = u.int_in_range(1..=4096usize)?;
    let seed: u8 = u.arbitrary()?;
    Ok(match text {
        false => (0..len).map(|i| (i as u8).wrapping_mul(37) ^ seed).collect(),
        true => {
            let mut out = Vec::with_capacity(len + 2);
            let line = 1 + seed as usize % 90;
            for i in 0..len {
                out.push(b".abc xyz.019"[(i * 7 + seed as usize) % 12]);
                if i % line == line - 1 {
                    out.extend_from_slice(b"\r\n");
                }
            }
            out
        }
    })
}

fn base64_lines(data: &[u8]) -> Vec<u8> {
    let text = base64::engine::general_purpose::STANDARD.encode(data);
    let lines: Vec<&[u8]> = text.as_bytes().chunks(76).collect();
    lines.join(&b"\r\n"[..])
}

/// Quoted-printable with every byte but letters, digits and `.` escaped (so CR and LF are data),
/// soft line breaks every 60 characters or fewer.
fn quoted_printable(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut col = 0;
    for &b in data {
        if col >= 60 {
            out.extend_from_slice(b"=\r\n");
            col = 0;
        }
        if b.is_ascii_alphanumeric() || b == b'.' {
            out.push(b);
            col += 1;
        } else {
            out.extend_from_slice(format!("={b:02X}").as_bytes());
            col += 3;
        }
    }
    out
}

fn uuencode(data: &[u8], name: &str) -> Vec<u8> {
    let char_of = |v: u8| if v == 0 { b'`' } else { v + 32 };
    let mut out = format!("begin 644 {name}\r\n").into_bytes();
    for line in data.chunks(45) {
        out.push(char_of(line.len() as u8));
        for group in line.chunks(3) {
            let (a, b, c) = (group[0], *group.get(1).unwrap_or(&0), *group.get(2).unwrap_or(&0));
            out.extend_from_slice(&[
                char_of(a >> 2),
                char_of(((a & 3) << 4) | (b >> 4)),
                char_of(((b & 15) << 2) | (c >> 6)),
                char_of(c & 63),
            ]);
        }
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"`\r\nend");
    out
}

fn percent(s: &str) -> String {
    s.bytes()
        .map(|b| match b.is_ascii_alphanumeric() || b == b'.' {
            true => (b as char).to_string(),
            false => format!("%{b:02X}"),
        })
        .collect()
}

/// A filename and how the Content-Disposition names it (its parameter text).
fn filename(u: &mut Unstructured<'_>, n: usize) -> Result<(String, String)> {
    const STEMS: [&str; 4] = ["été", "отчёт", "报告", "naïve file"];
    let stem = STEMS[u.int_in_range(0..=3usize)?];
    let unicode = format!("{stem} {n}.bin");
    Ok(match u.int_in_range(0..=5u8)? {
        0 => (format!("att{n}.bin"), format!("filename=\"att{n}.bin\"")),
        1 => {
            let b = base64::engine::general_purpose::STANDARD.encode(unicode.as_bytes());
            (unicode, format!("filename=\"=?UTF-8?B?{b}?=\""))
        }
        2 => {
            let q: String = unicode
                .bytes()
                .map(|b| match b {
                    b' ' => "_".to_string(),
                    b if b.is_ascii_alphanumeric() || b == b'.' => (b as char).to_string(),
                    b => format!("={b:02X}"),
                })
                .collect();
            (unicode, format!("filename=\"=?utf-8?q?{q}?=\""))
        }
        3 => {
            let p = percent(&unicode);
            (unicode, format!("filename*=UTF-8''{p}"))
        }
        4 => {
            // Continuations: each half percent-encoded on its own, sent in order.
            let mut cut = unicode.len() / 2;
            while !unicode.is_char_boundary(cut) {
                cut -= 1;
            }
            let (first, second) = (percent(&unicode[..cut]), percent(&unicode[cut..]));
            (unicode, format!("filename*0*=UTF-8''{first}; filename*1*={second}"))
        }
        _ => {
            let name = format!("caf\u{e9} {n}.txt");
            (name, format!("filename*=iso-8859-1''caf%E9%20{n}.txt"))
        }
    })
}

/// An attachment entity (headers and encoded body, no trailing line break); records what it wants.
fn attachment(u: &mut Unstructured<'_>, wants: &mut Vec<Want>, single_part: bool) -> Result<Vec<u8>> {
    let n = wants.len();
    // A single-part message's body runs to the end of the message, line break included, so 7bit
    // has no exact file there.
    let encoding = match single_part {
        true => [0, 1, 3][u.int_in_range(0..=2usize)?],
        false => u.int_in_range(0..=3u8)?,
    };
    let text = encoding == 2 || u.arbitrary()?;
    let data = content(u, text)?;
    let (mut name, param) = filename(u, n)?;
    // The name in Content-Disposition's filename, or in Content-Type's name (what older mailers
    // send), in the same encodings.
    let in_content_type: bool = u.arbitrary()?;
    let mut entity = match in_content_type {
        true => format!(
            "Content-Type: application/octet-stream; {}\r\n",
            param.replace("filename", "name")
        )
        .into_bytes(),
        false => b"Content-Type: application/octet-stream\r\n".to_vec(),
    };
    let body = match encoding {
        0 => {
            entity.extend_from_slice(b"Content-Transfer-Encoding: base64\r\n");
            base64_lines(&data)
        }
        1 => {
            entity.extend_from_slice(b"Content-Transfer-Encoding: quoted-printable\r\n");
            let mut q = quoted_printable(&data);
            if single_part {
                // Ends in a soft line break: the message's last line break is not content.
                q.extend_from_slice(b"=");
            }
            q
        }
        2 => {
            entity.extend_from_slice(b"Content-Transfer-Encoding: 7bit\r\n");
            data.clone()
        }
        _ => {
            // The same plain name in the disposition and on the `begin` line.
            name = format!("uu{n}.bin");
            entity.extend_from_slice(b"Content-Transfer-Encoding: x-uuencode\r\n");
            entity
                .extend_from_slice(format!("Content-Disposition: attachment; filename=\"{name}\"\r\n\r\n").as_bytes());
            entity.extend_from_slice(&uuencode(&data, &name));
            wants.push(Want {
                sha256: sha256_hex(&data),
                size: data.len() as u64,
                filename: name,
            });
            return Ok(entity);
        }
    };
    match in_content_type {
        true => entity.extend_from_slice(b"Content-Disposition: attachment\r\n\r\n"),
        false => entity.extend_from_slice(format!("Content-Disposition: attachment; {param}\r\n\r\n").as_bytes()),
    }
    entity.extend_from_slice(&body);
    wants.push(Want {
        sha256: sha256_hex(&data),
        size: data.len() as u64,
        filename: name,
    });
    Ok(entity)
}

/// A multipart entity with boundary `boundary`; inner multiparts take a boundary that is a prefix
/// of it or that it is a prefix of.
fn multipart(u: &mut Unstructured<'_>, boundary: &str, depth: u32, wants: &mut Vec<Want>) -> Result<Vec<u8>> {
    let mut out = format!("Content-Type: multipart/mixed; boundary=\"{boundary}\"\r\n\r\n").into_bytes();
    if u.arbitrary()? {
        out.extend_from_slice(b"This is a multi-part message in MIME format.\r\n");
    }
    let parts = u.int_in_range(1..=3u8)?;
    for p in 0..parts {
        out.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        match u.int_in_range(0..=3u8)? {
            0 if depth < 3 => {
                let inner = match u.arbitrary::<bool>()? {
                    true => format!("{boundary}{p}"),
                    false if boundary.len() > 4 => boundary[..boundary.len() - 1 - p as usize % 2].to_string(),
                    false => format!("{boundary}_"),
                };
                out.extend_from_slice(&multipart(u, &inner, depth + 1, wants)?);
            }
            1 => out
                .extend_from_slice(b"Content-Type: text/plain; charset=us-ascii\r\n\r\nHello.\r\n..and a dotted line"),
            _ => out.extend_from_slice(&attachment(u, wants, false)?),
        }
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("--{boundary}--").as_bytes());
    Ok(out)
}

/// A whole message, ending with CRLF.
fn message(u: &mut Unstructured<'_>, n: usize, wants: &mut Vec<Want>) -> Result<Vec<u8>> {
    let mut m = format!("From: <a@x>\r\nTo: <b@y>\r\nSubject: message {n}\r\nMIME-Version: 1.0\r\n").into_bytes();
    match u.arbitrary::<bool>()? {
        true => m.extend_from_slice(&attachment(u, wants, true)?),
        false => {
            let boundary = format!("=_b{n}_{:x}", u.arbitrary::<u16>()?);
            m.extend_from_slice(&multipart(u, &boundary, 0, wants)?);
        }
    }
    m.extend_from_slice(b"\r\n");
    Ok(m)
}

fn dot_stuffed(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + 16);
    let mut line_start = true;
    for (i, &b) in message.iter().enumerate() {
        if line_start && b == b'.' {
            out.push(b'.');
        }
        out.push(b);
        line_start = b == b'\n' && i > 0 && message[i - 1] == b'\r';
    }
    out
}

/// Who sends what, in order.
struct Case {
    turns: Vec<(bool, Vec<u8>)>,
    wants: Vec<Want>,
    cuts: Vec<usize>,
}

fn case(u: &mut Unstructured<'_>) -> Result<Case> {
    let mut turns: Vec<(bool, Vec<u8>)> = Vec::new();
    let mut wants = Vec::new();
    let pipelining: bool = u.arbitrary()?;
    turns.push((false, b"220 mx ESMTP\r\n".to_vec()));
    turns.push((true, b"EHLO client\r\n".to_vec()));
    let mut ehlo = b"250-mx\r\n".to_vec();
    if pipelining {
        ehlo.extend_from_slice(b"250-PIPELINING\r\n");
    }
    ehlo.extend_from_slice(b"250-CHUNKING\r\n250 8BITMIME\r\n");
    turns.push((false, ehlo));
    // Commands and their replies; with PIPELINING one batch of each.
    let exchange = |turns: &mut Vec<(bool, Vec<u8>)>, commands: &[Vec<u8>], replies: &[&[u8]]| {
        if pipelining {
            turns.push((true, commands.concat()));
            turns.push((false, replies.concat()));
        } else {
            for (c, r) in commands.iter().zip(replies) {
                turns.push((true, c.clone()));
                turns.push((false, r.to_vec()));
            }
        }
    };
    let messages = u.int_in_range(1..=3usize)?;
    for n in 0..messages {
        if u.arbitrary()? {
            let aborted = [
                b"MAIL FROM:<a@x>\r\n".to_vec(),
                b"RCPT TO:<c@y>\r\n".to_vec(),
                b"RSET\r\n".to_vec(),
            ];
            exchange(&mut turns, &aborted, &[b"250 ok\r\n", b"250 ok\r\n", b"250 reset\r\n"]);
        }
        let m = message(u, n, &mut wants)?;
        let envelope = [b"MAIL FROM:<a@x>\r\n".to_vec(), b"RCPT TO:<b@y>\r\n".to_vec()];
        if u.arbitrary()? {
            let mut commands = envelope.to_vec();
            commands.push(b"DATA\r\n".to_vec());
            exchange(
                &mut turns,
                &commands,
                &[b"250 ok\r\n", b"250 ok\r\n", b"354 go ahead\r\n"],
            );
            let mut data = dot_stuffed(&m);
            data.extend_from_slice(b".\r\n");
            turns.push((true, data));
            turns.push((false, b"250 queued\r\n".to_vec()));
        } else {
            let mut commands = envelope.to_vec();
            let mut replies: Vec<&[u8]> = vec![b"250 ok\r\n", b"250 ok\r\n"];
            let mut rest = &m[..];
            loop {
                let size = match u.is_empty() {
                    true => rest.len(),
                    false => u.int_in_range(0..=rest.len())?,
                };
                // Out of bytes, or a last chunk (maybe empty) chosen.
                let last = size == rest.len() && (rest.is_empty() || u.is_empty() || u.arbitrary()?);
                let mut chunk = match last {
                    true => format!("BDAT {size} LAST\r\n").into_bytes(),
                    false => format!("BDAT {size}\r\n").into_bytes(),
                };
                chunk.extend_from_slice(&rest[..size]);
                commands.push(chunk);
                replies.push(b"250 chunk ok\r\n");
                rest = &rest[size..];
                if last {
                    break;
                }
            }
            exchange(&mut turns, &commands, &replies);
        }
    }
    turns.push((true, b"QUIT\r\n".to_vec()));
    turns.push((false, b"221 bye\r\n".to_vec()));
    let mut cuts = Vec::new();
    for _ in 0..u.int_in_range(0..=32u8)? {
        cuts.push(u.int_in_range(1..=1460usize)?);
    }
    if cuts.is_empty() {
        cuts.push(1460);
    }
    Ok(Case { turns, wants, cuts })
}

fuzz_target!(|data: &[u8]| {
    let Ok(c) = case(&mut Unstructured::new(data)) else {
        return;
    };
    let mut e = Engine::new(EngineConfig {
        protocols: xdpcarve_protocols::registry(&Default::default()),
        max_flows: 16,
        memory: 16 << 20,
        hash_seed: Some(1),
        ..EngineConfig::default()
    });
    let mut t = 1_000_000_000u64;
    let mut send = |e: &mut Engine, f: Vec<u8>| {
        t += 1000;
        e.handle_packet(Timestamp(t), LinkType::Ethernet, &f);
    };
    let (cisn, sisn) = (7_000u32, 9_000u32);
    let (mut cseq, mut sseq) = (cisn + 1, sisn + 1);
    send(&mut e, frame(true, cisn, 0, SYN, b""));
    send(&mut e, frame(false, sisn, cseq, SYN | ACK, b""));
    send(&mut e, frame(true, cseq, sseq, ACK, b""));
    let mut cut = 0;
    for (from_client, bytes) in &c.turns {
        let mut rest = &bytes[..];
        while !rest.is_empty() {
            let n = c.cuts[cut % c.cuts.len()].min(rest.len());
            cut += 1;
            let (seq, ack) = if *from_client {
                (&mut cseq, sseq)
            } else {
                (&mut sseq, cseq)
            };
            send(&mut e, frame(*from_client, *seq, ack, PA, &rest[..n]));
            *seq = seq.wrapping_add(n as u32);
            rest = &rest[n..];
        }
    }
    send(&mut e, frame(true, cseq, sseq, FA, b""));
    send(&mut e, frame(false, sseq, cseq.wrapping_add(1), FA, b""));
    send(
        &mut e,
        frame(true, cseq.wrapping_add(1), sseq.wrapping_add(1), ACK, b""),
    );
    e.finish(Timestamp(t + 1));
    let mut records: Vec<FileRecord> = e.drain_records().collect();
    let m = e.flow_memory();
    assert_eq!((m.connections, m.reassembly, m.parsers), (0, 0, 0), "{m:?}");
    let all = records.clone();
    for want in &c.wants {
        let found = records.iter().position(|r| {
            r.sha256.as_deref() == Some(want.sha256.as_str())
                && r.size == want.size
                && r.missing_bytes == 0
                && r.filename.as_deref() == Some(want.filename.as_str())
        });
        match found {
            Some(i) => drop(records.swap_remove(i)),
            None => panic!("not carved: {want:?}\nrecords: {all:#?}"),
        }
    }
});
