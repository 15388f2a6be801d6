//! Synthetic captures: HTTP downloads and uploads and SMTP mail with attachments, written as the
//! packets a real client/server pair puts on the wire, with a manifest of every file they carry
//! (sha256 of the decoded content) so a carver's output can be checked exactly.
//!
//! Deterministic: the same plan and seed give byte-identical captures and manifests.

pub mod content;
pub mod flood;
pub mod shape;
pub mod tcp;

use base64::Engine as _;
use content::{Kind, Rng};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::io::{self, Write};
use std::net::Ipv4Addr;
use tcp::{From, Host, Session, Wire};

use crate::pcap::PcapWriter;

/// How an HTTP transaction carries its file.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum HttpStyle {
    /// GET, response body delimited by Content-Length.
    Length,
    /// GET, Transfer-Encoding: chunked.
    Chunked,
    /// GET, Content-Encoding: gzip (the file is the decompressed body).
    Gzip,
    /// POST multipart/form-data upload.
    Upload,
}

impl HttpStyle {
    pub fn parse(s: &str) -> Result<HttpStyle, String> {
        Ok(match s {
            "length" => HttpStyle::Length,
            "chunked" => HttpStyle::Chunked,
            "gzip" => HttpStyle::Gzip,
            "upload" => HttpStyle::Upload,
            other => {
                return Err(format!(
                    "unknown HTTP style `{other}`: choose from length, chunked, gzip, upload"
                ))
            }
        })
    }
    fn name(self) -> &'static str {
        match self {
            HttpStyle::Length => "length",
            HttpStyle::Chunked => "chunked",
            HttpStyle::Gzip => "gzip",
            HttpStyle::Upload => "multipart",
        }
    }
}

/// One file to put on the wire.
#[derive(Clone, Debug)]
pub struct FileSpec {
    pub kind: Kind,
    pub size: usize,
    pub name: String,
    /// HTTP downloads: send `Content-Disposition: attachment; filename=...`.
    pub disposition: bool,
}

#[derive(Clone, Debug)]
pub struct HttpTxn {
    pub style: HttpStyle,
    pub file: FileSpec,
}

#[derive(Clone, Debug)]
pub struct Mail {
    pub subject: String,
    pub attachments: Vec<FileSpec>,
}

/// One TCP connection's worth of traffic.
#[derive(Clone, Debug)]
pub enum Conversation {
    Http { port: u16, txns: Vec<HttpTxn> },
    Smtp { port: u16, mails: Vec<Mail> },
}

/// One expected file of the manifest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestFile {
    pub sha256: String,
    pub size: u64,
    /// The name the protocol carries (Content-Disposition, MIME part), if any.
    pub filename: Option<String>,
    pub proto: String,
    pub direction: String,
    /// How it travelled: length, chunked, gzip, multipart, base64, 7bit.
    pub encoding: String,
    /// A mail's text body (recorded as a file when text bodies are recorded, the default).
    #[serde(default)]
    pub text_body: bool,
    /// A multipart/form-data body as a whole, recorded as the parent of its parts (as Suricata's
    /// filestore does); its bytes are counted again in its parts.
    #[serde(default)]
    pub container: bool,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Manifest {
    pub seed: u64,
    pub packets: u64,
    /// Flood flows around the files (see [`flood`]): SYN-only ones, half-open HTTP requests and
    /// idle keep-alive connections. Absent (zero) in a capture without a flood.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub syn_flood: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub half_open: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub idle_keepalive: u64,
    pub files: Vec<ManifestFile>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// A capture plan from command-line style options.
#[derive(Clone, Debug)]
pub struct PlanOptions {
    pub http: usize,
    pub smtp: usize,
    pub sizes: Vec<usize>,
    /// HTTP styles to draw from (uniformly).
    pub http_styles: Vec<HttpStyle>,
    /// File kinds to draw from; gzip'd files are always text.
    pub kinds: Vec<Kind>,
    /// Most HTTP transactions per connection (keep-alive) and mails per SMTP connection.
    pub per_conn: usize,
    pub attachments_per_mail: usize,
    pub seed: u64,
}

impl Default for PlanOptions {
    fn default() -> Self {
        PlanOptions {
            http: 0,
            smtp: 0,
            sizes: vec![64 << 10],
            http_styles: vec![
                HttpStyle::Length,
                HttpStyle::Length,
                HttpStyle::Chunked,
                HttpStyle::Gzip,
                HttpStyle::Upload,
            ],
            kinds: vec![Kind::Exe, Kind::Pdf, Kind::Zip, Kind::Html],
            per_conn: 4,
            attachments_per_mail: 2,
            seed: 1,
        }
    }
}

/// Parses a size such as `4K`, `64K`, `1M`, `16M` or `1000`.
pub fn parse_size(s: &str) -> Result<usize, String> {
    let s = s.trim();
    let (num, mult) = match s.char_indices().last() {
        Some((i, 'K' | 'k')) => (&s[..i], 1usize << 10),
        Some((i, 'M' | 'm')) => (&s[..i], 1 << 20),
        Some((i, 'G' | 'g')) => (&s[..i], 1 << 30),
        _ => (s, 1),
    };
    let n: usize = num
        .parse()
        .map_err(|_| format!("bad size `{s}`: use a number with an optional K, M or G"))?;
    n.checked_mul(mult).ok_or_else(|| format!("size `{s}` is too large"))
}

/// Draws a plan: `http` transactions and `smtp` mails, sizes and styles chosen by the seed.
pub fn plan(opts: &PlanOptions) -> Vec<Conversation> {
    let mut rng = Rng::new(opts.seed);
    let mut convs = Vec::new();
    let per_conn = opts.per_conn.max(1);
    let mut n = 0;
    let mut file_no = 0;
    let mut pick_file = |rng: &mut Rng, style: Option<HttpStyle>| {
        let size = opts.sizes[rng.below(opts.sizes.len() as u64) as usize];
        let kind = if style == Some(HttpStyle::Gzip) {
            Kind::Html
        } else {
            opts.kinds[rng.below(opts.kinds.len() as u64) as usize]
        };
        file_no += 1;
        FileSpec {
            kind,
            size,
            name: format!("file{file_no:06}.{}", kind.extension()),
            disposition: rng.below(2) == 0,
        }
    };
    while n < opts.http {
        let k = (1 + rng.below(per_conn as u64) as usize).min(opts.http - n);
        let port = if rng.below(5) == 0 { 8080 } else { 80 };
        let txns = (0..k)
            .map(|_| {
                let style = opts.http_styles[rng.below(opts.http_styles.len() as u64) as usize];
                HttpTxn {
                    style,
                    file: pick_file(&mut rng, Some(style)),
                }
            })
            .collect();
        convs.push(Conversation::Http { port, txns });
        n += k;
    }
    let mut m = 0;
    while m < opts.smtp {
        let k = (1 + rng.below(per_conn as u64) as usize).min(opts.smtp - m);
        let port = if rng.below(4) == 0 { 587 } else { 25 };
        let mails = (0..k)
            .map(|i| Mail {
                subject: format!("Documents {}", m + i + 1),
                attachments: (0..opts.attachments_per_mail.max(1))
                    .map(|_| pick_file(&mut rng, None))
                    .collect(),
            })
            .collect();
        convs.push(Conversation::Smtp { port, mails });
        m += k;
    }
    convs
}

/// The fixed scenario of `bench/samples/sample.pcap`: a handful of downloads and uploads of the
/// kinds a sensor is for, and two mails with attachments. Kept small (< 2 MB).
pub fn sample_plan() -> Vec<Conversation> {
    let f = |kind, size, name: &str, disposition| FileSpec {
        kind,
        size,
        name: name.to_string(),
        disposition,
    };
    vec![
        Conversation::Http {
            port: 80,
            txns: vec![
                HttpTxn {
                    style: HttpStyle::Length,
                    file: f(Kind::Exe, 96 * 1024 + 7, "setup.exe", true),
                },
                HttpTxn {
                    style: HttpStyle::Gzip,
                    file: f(Kind::Html, 120 * 1024, "index.html", false),
                },
            ],
        },
        Conversation::Http {
            port: 8080,
            txns: vec![HttpTxn {
                style: HttpStyle::Chunked,
                file: f(Kind::Pdf, 150 * 1024 + 333, "manual.pdf", true),
            }],
        },
        Conversation::Http {
            port: 80,
            txns: vec![HttpTxn {
                style: HttpStyle::Upload,
                file: f(Kind::Zip, 64 * 1024 + 1, "backup.zip", false),
            }],
        },
        Conversation::Smtp {
            port: 25,
            mails: vec![Mail {
                subject: "Invoice and tool".to_string(),
                attachments: vec![
                    f(Kind::Pdf, 80 * 1024, "invoice.pdf", false),
                    f(Kind::Exe, 40 * 1024 + 5, "updater.exe", false),
                ],
            }],
        },
        Conversation::Smtp {
            port: 587,
            mails: vec![Mail {
                subject: "Quarterly report".to_string(),
                attachments: vec![f(Kind::Zip, 100 * 1024 + 17, "report-q3.zip", false)],
            }],
        },
    ]
}

/// What [`write`] produced.
pub struct Generated {
    pub manifest: Manifest,
    /// The decoded content of every manifest file, in manifest order, when asked for.
    pub contents: Vec<Vec<u8>>,
}

fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data).iter().map(|b| format!("{b:02x}")).collect()
}

/// First packet time of every generated capture: 2025-11-23T12:00:00Z.
const START_NANOS: u64 = 1_763_899_200 * 1_000_000_000;

struct Writer<W: Write> {
    wire: Wire<W>,
    seed: u64,
    keep_contents: bool,
    manifest: Manifest,
    contents: Vec<Vec<u8>>,
    file_seq: u64,
}

impl<W: Write> Writer<W> {
    fn content(&mut self, spec: &FileSpec) -> Vec<u8> {
        self.file_seq += 1;
        let mut rng = Rng::new(self.seed.wrapping_mul(0x1000_0000_01b3) ^ self.file_seq.wrapping_mul(0x9e37_79b9));
        content::make(spec.kind, spec.size, &mut rng)
    }

    #[allow(clippy::too_many_arguments)]
    fn record(
        &mut self,
        data: Vec<u8>,
        filename: Option<&str>,
        proto: &str,
        direction: &str,
        encoding: &str,
        text_body: bool,
        container: bool,
    ) {
        self.manifest.files.push(ManifestFile {
            sha256: sha256_hex(&data),
            size: data.len() as u64,
            filename: filename.map(str::to_string),
            proto: proto.to_string(),
            direction: direction.to_string(),
            encoding: encoding.to_string(),
            text_body,
            container,
        });
        if self.keep_contents {
            self.contents.push(data);
        }
    }

    fn http(&mut self, conv_no: usize, port: u16, txns: &[HttpTxn]) -> io::Result<()> {
        let (client, server) = hosts(conv_no, port);
        let mut s = Session::open(
            &mut self.wire,
            client,
            server,
            isn(self.seed, conv_no, 0),
            isn(self.seed, conv_no, 1),
        )?;
        let host = format!("files{}.example.net", conv_no % 7);
        for txn in txns {
            let data = self.content(&txn.file);
            let spec = &txn.file;
            let path = format!("/downloads/{}", spec.name);
            match txn.style {
                HttpStyle::Upload => {
                    let boundary = format!("------------------------{:016x}", Rng::new(self.file_seq).next_u64());
                    let mut body = Vec::with_capacity(data.len() + 300);
                    body.extend_from_slice(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{}\"\r\nContent-Type: {}\r\n\r\n", spec.name, spec.kind.mime_type()).as_bytes());
                    body.extend_from_slice(&data);
                    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
                    let mut req = format!(
                        "POST /upload HTTP/1.1\r\nHost: {host}\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\nContent-Length: {}\r\nContent-Type: multipart/form-data; boundary={boundary}\r\n\r\n",
                        body.len()
                    )
                    .into_bytes();
                    req.extend_from_slice(&body);
                    s.send(&mut self.wire, From::Client, &req)?;
                    s.send(
                        &mut self.wire,
                        From::Server,
                        b"HTTP/1.1 201 Created\r\nServer: nginx\r\nContent-Length: 0\r\n\r\n",
                    )?;
                    self.record(body, None, "http", "upload", "multipart", false, true);
                    self.record(data, Some(&spec.name), "http", "upload", txn.style.name(), false, false);
                }
                style => {
                    let accept = if style == HttpStyle::Gzip {
                        "Accept-Encoding: gzip, deflate\r\n"
                    } else {
                        ""
                    };
                    let req = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64)\r\nAccept: */*\r\n{accept}\r\n");
                    s.send(&mut self.wire, From::Client, req.as_bytes())?;
                    let mut head = format!(
                        "HTTP/1.1 200 OK\r\nServer: nginx\r\nContent-Type: {}\r\n",
                        spec.kind.mime_type()
                    );
                    if spec.disposition {
                        head.push_str(&format!(
                            "Content-Disposition: attachment; filename=\"{}\"\r\n",
                            spec.name
                        ));
                    }
                    let mut resp;
                    match style {
                        HttpStyle::Length => {
                            head.push_str(&format!("Content-Length: {}\r\n\r\n", data.len()));
                            resp = head.into_bytes();
                            resp.extend_from_slice(&data);
                        }
                        HttpStyle::Gzip => {
                            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
                            enc.write_all(&data)?;
                            let gz = enc.finish()?;
                            head.push_str(&format!(
                                "Content-Encoding: gzip\r\nContent-Length: {}\r\n\r\n",
                                gz.len()
                            ));
                            resp = head.into_bytes();
                            resp.extend_from_slice(&gz);
                        }
                        _ => {
                            head.push_str("Transfer-Encoding: chunked\r\n\r\n");
                            resp = head.into_bytes();
                            let mut rng = Rng::new(self.file_seq);
                            let mut rest = &data[..];
                            while !rest.is_empty() {
                                let n = [1000usize, 4096, 8192, 16384, 32768][rng.below(5) as usize].min(rest.len());
                                resp.extend_from_slice(format!("{n:x}\r\n").as_bytes());
                                resp.extend_from_slice(&rest[..n]);
                                resp.extend_from_slice(b"\r\n");
                                rest = &rest[n..];
                            }
                            resp.extend_from_slice(b"0\r\n\r\n");
                        }
                    }
                    s.send(&mut self.wire, From::Server, &resp)?;
                    let name = spec.disposition.then_some(spec.name.as_str());
                    self.record(data, name, "http", "download", style.name(), false, false);
                }
            }
        }
        s.close(&mut self.wire, From::Client)
    }

    fn smtp(&mut self, conv_no: usize, port: u16, mails: &[Mail]) -> io::Result<()> {
        let (client, server) = hosts(conv_no, port);
        let mut s = Session::open(
            &mut self.wire,
            client,
            server,
            isn(self.seed, conv_no, 0),
            isn(self.seed, conv_no, 1),
        )?;
        let w = &mut self.wire;
        s.send(w, From::Server, b"220 mx.example.org ESMTP Postfix (Debian/GNU)\r\n")?;
        s.send(w, From::Client, b"EHLO workstation.example.com\r\n")?;
        s.send(
            w,
            From::Server,
            b"250-mx.example.org\r\n250-PIPELINING\r\n250-SIZE 104857600\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n",
        )?;
        for (i, mail) in mails.iter().enumerate() {
            let w = &mut self.wire;
            s.send(w, From::Client, b"MAIL FROM:<alice@example.com>\r\n")?;
            s.send(w, From::Server, b"250 2.1.0 Ok\r\n")?;
            s.send(w, From::Client, b"RCPT TO:<bob@example.org>\r\n")?;
            s.send(w, From::Server, b"250 2.1.5 Ok\r\n")?;
            s.send(w, From::Client, b"DATA\r\n")?;
            s.send(w, From::Server, b"354 End data with <CR><LF>.<CR><LF>\r\n")?;
            let msg = self.message(conv_no, i, mail);
            let w = &mut self.wire;
            s.send(w, From::Client, &dot_stuff(&msg))?;
            s.send(w, From::Server, b"250 2.0.0 Ok: queued as 4FJ2k51fZz\r\n")?;
        }
        let w = &mut self.wire;
        s.send(w, From::Client, b"QUIT\r\n")?;
        s.send(w, From::Server, b"221 2.0.0 Bye\r\n")?;
        s.close(w, From::Server)
    }

    /// A multipart/mixed message: a text body, then each attachment base64-encoded in 76-column
    /// lines. Records every part in the manifest.
    fn message(&mut self, conv_no: usize, mail_no: usize, mail: &Mail) -> Vec<u8> {
        let boundary = format!(
            "=_xdpcarve_{conv_no}_{mail_no}_{:08x}",
            Rng::new(self.seed ^ conv_no as u64).next_u64() as u32
        );
        let mut m = format!(
            "From: \"Alice Example\" <alice@example.com>\r\nTo: <bob@example.org>\r\nSubject: {}\r\nDate: Sun, 23 Nov 2025 12:00:00 +0000\r\nMessage-ID: <gen-{}-{conv_no}-{mail_no}@example.com>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"{boundary}\"\r\n\r\nThis is a multi-part message in MIME format.\r\n",
            mail.subject, self.seed
        )
        .into_bytes();
        let text = format!(
            "Hello Bob,\r\n\r\nplease find {} file(s) attached.\r\n.\r\nAlice\r\n",
            mail.attachments.len()
        );
        m.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 7bit\r\n\r\n"
            )
            .as_bytes(),
        );
        m.extend_from_slice(text.as_bytes());
        self.record(text.into_bytes(), None, "smtp", "upload", "7bit", true, false);
        for spec in &mail.attachments {
            let data = self.content(spec);
            m.extend_from_slice(
                format!(
                    "\r\n--{boundary}\r\nContent-Type: {}; name=\"{}\"\r\nContent-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename=\"{}\"\r\n\r\n",
                    spec.kind.mime_type(),
                    spec.name,
                    spec.name
                )
                .as_bytes(),
            );
            let b64 = base64::engine::general_purpose::STANDARD.encode(&data);
            for line in b64.as_bytes().chunks(76) {
                m.extend_from_slice(line);
                m.extend_from_slice(b"\r\n");
            }
            // The line break before the next delimiter belongs to the delimiter.
            m.truncate(m.len() - 2);
            self.record(data, Some(&spec.name), "smtp", "upload", "base64", false, false);
        }
        m.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        m
    }
}

/// SMTP dot-stuffing (RFC 5321 4.5.2) plus the end-of-data line.
fn dot_stuff(msg: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(msg.len() + 16);
    let mut at_line_start = true;
    for &b in msg {
        if at_line_start && b == b'.' {
            out.push(b'.');
        }
        out.push(b);
        at_line_start = b == b'\n';
    }
    if !at_line_start {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
    out
}

/// Client and server of conversation `n`: documentation address ranges, unique 4-tuples.
fn hosts(n: usize, port: u16) -> (Host, Host) {
    let client = Host {
        mac: [0x02, 0x00, 0x5e, 0x10, (n >> 8) as u8, n as u8],
        ip: Ipv4Addr::new(192, 0, 2, 1 + (n % 250) as u8),
        port: 49152 + ((n / 250) % 16000) as u16,
    };
    let server = Host {
        mac: [0x02, 0x00, 0x5e, 0x20, 0, 1],
        ip: Ipv4Addr::new(198, 51, 100, 10 + (n % 5) as u8),
        port,
    };
    (client, server)
}

fn isn(seed: u64, conv: usize, side: u64) -> u32 {
    Rng::new(seed ^ ((conv as u64) << 1 | side)).next_u64() as u32
}

/// Writes the plan as a pcap to `out`. With `keep_contents`, the decoded files are returned too.
pub fn write<W: Write>(plan: &[Conversation], seed: u64, out: W, keep_contents: bool) -> io::Result<(Generated, W)> {
    let mut w = Writer {
        wire: Wire::new(PcapWriter::new(out)?, START_NANOS),
        seed,
        keep_contents,
        manifest: Manifest {
            seed,
            ..Manifest::default()
        },
        contents: Vec::new(),
        file_seq: 0,
    };
    for (n, conv) in plan.iter().enumerate() {
        match conv {
            Conversation::Http { port, txns } => w.http(n, *port, txns)?,
            Conversation::Smtp { port, mails } => w.smtp(n, *port, mails)?,
        }
        w.wire.pause(500_000);
    }
    w.manifest.packets = w.wire.pcap.packets();
    let out = w.wire.pcap.into_inner();
    Ok((
        Generated {
            manifest: w.manifest,
            contents: w.contents,
        },
        out,
    ))
}

/// [`write`], with the flood of `flood` merged in by timestamp around the plan's transfers (see
/// [`flood::merge`]). Without a flood, exactly what [`write`] writes.
pub fn write_flooded<W: Write>(
    plan: &[Conversation],
    seed: u64,
    flood: &flood::FloodOptions,
    out: W,
    keep_contents: bool,
) -> io::Result<(Generated, W)> {
    if flood.is_empty() {
        return write(plan, seed, out, keep_contents);
    }
    flood.check().map_err(io::Error::other)?;
    let (generated, real) = write(plan, seed, Vec::new(), keep_contents)?;
    flood::merge(&real, generated, flood, seed, out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pcap;

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("4K").unwrap(), 4096);
        assert_eq!(parse_size("16M").unwrap(), 16 << 20);
        assert_eq!(parse_size("1000").unwrap(), 1000);
        assert!(parse_size("x").is_err());
    }

    #[test]
    fn dot_stuffing_doubles_leading_dots() {
        assert_eq!(dot_stuff(b".a\r\nb\r\n..c\r\n"), b"..a\r\nb\r\n...c\r\n.\r\n");
        assert_eq!(dot_stuff(b"x"), b"x\r\n.\r\n");
    }

    #[test]
    fn same_seed_same_capture() {
        let opts = PlanOptions {
            http: 6,
            smtp: 3,
            sizes: vec![1000, 70_000],
            seed: 42,
            ..PlanOptions::default()
        };
        let (g1, a) = write(&plan(&opts), 42, Vec::new(), true).unwrap();
        let (g2, b) = write(&plan(&opts), 42, Vec::new(), false).unwrap();
        assert_eq!(a, b);
        assert_eq!(g1.manifest.files, g2.manifest.files);
        // 6 HTTP files (+ one envelope per upload) + 3 mails × (text body + 2 attachments).
        let uploads = g1.manifest.files.iter().filter(|f| f.container).count();
        assert_eq!(g1.manifest.files.len(), 6 + uploads + 3 * 3);
        assert_eq!(g1.contents.len(), g1.manifest.files.len());
        let (_, frames) = pcap::parse(&a).unwrap();
        assert_eq!(frames.len() as u64, g1.manifest.packets);
        let (g3, c) = write(&plan(&PlanOptions { seed: 43, ..opts }), 43, Vec::new(), false).unwrap();
        assert_ne!(a, c);
        assert_ne!(g1.manifest.files, g3.manifest.files);
    }

    #[test]
    fn base64_lines_are_76_columns() {
        let plan = vec![Conversation::Smtp {
            port: 25,
            mails: vec![Mail {
                subject: "s".into(),
                attachments: vec![FileSpec {
                    kind: Kind::Zip,
                    size: 10_000,
                    name: "a.zip".into(),
                    disposition: false,
                }],
            }],
        }];
        let (g, buf) = write(&plan, 1, Vec::new(), true).unwrap();
        let (_, frames) = pcap::parse(&buf).unwrap();
        // Reassemble the client's payload (port 25 is the destination) and check the body lines.
        let mut stream = Vec::new();
        for f in frames {
            let tcp = &f.data[34..];
            if u16::from_be_bytes([tcp[2], tcp[3]]) == 25 {
                stream.extend_from_slice(&tcp[((tcp[12] >> 4) as usize) * 4..]);
            }
        }
        let text = String::from_utf8(stream).unwrap();
        let at = text.find("Content-Transfer-Encoding: base64").unwrap();
        let body = &text[at..].split_once("\r\n\r\n").unwrap().1;
        let b64: Vec<&str> = body.split("\r\n").take_while(|l| !l.starts_with("--")).collect();
        assert!(b64[..b64.len() - 1].iter().all(|l| l.len() == 76));
        let decoded = base64::engine::general_purpose::STANDARD.decode(b64.concat()).unwrap();
        assert_eq!(decoded, g.contents[1]);
    }
}

#[cfg(test)]
mod sample_tests {
    /// `bench/samples/sample.pcap` and its manifest are exactly what `xdpcarve-gen --sample` writes:
    /// the shipped sample can always be regenerated, and a generator change that alters it is seen.
    #[test]
    fn committed_sample_is_reproducible() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("samples");
        let (generated, bytes) = super::write(&super::sample_plan(), 1, Vec::new(), false).unwrap();
        let committed = std::fs::read(dir.join("sample.pcap")).expect("bench/samples/sample.pcap");
        assert!(
            committed == bytes,
            "sample.pcap differs from `xdpcarve-gen --sample` output; regenerate it"
        );
        let manifest: super::Manifest =
            serde_json::from_slice(&std::fs::read(dir.join("sample.expected.json")).expect("manifest")).unwrap();
        assert_eq!(manifest.files, generated.manifest.files);
        assert!(bytes.len() < 2 << 20, "the sample must stay small");
    }
}
