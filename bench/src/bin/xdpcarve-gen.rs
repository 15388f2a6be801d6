//! `xdpcarve-gen`: writes a synthetic capture of HTTP and SMTP file transfers, plus a manifest
//! (JSON) of the sha256 and size of every file in it.
//!
//!     xdpcarve-gen --http 100 --sizes 4K,64K,1M --smtp 20 --seed 7 -o mix.pcap
//!     xdpcarve-gen --sample -o bench/samples/sample.pcap
//!     xdpcarve-gen --http 1 --sizes 1M --styles length --syn-flood 300000 -o synflood.pcap
//!     xdpcarve-gen --http 1 --sizes 1M --styles length --half-open 100000 -o halfopen.pcap
//!     xdpcarve-gen --idle-keepalive 1000000 -o idle.pcap

#![forbid(unsafe_code)]

use anyhow::{bail, Context, Result};
use clap::Parser;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use xdpcarve_bench::gen::{self, content::Kind, flood::FloodOptions, shape::ShapeOptions, HttpStyle, PlanOptions};

#[derive(Parser, Debug)]
#[command(
    name = "xdpcarve-gen",
    about = "Write a synthetic HTTP/SMTP capture and its manifest of expected files",
    after_help = "Floods: --syn-flood N and --half-open N add N connection attempts that never carry a file \
                  around the transfers of --http/--smtp/--sample, merged by timestamp: the transfers sit in the \
                  middle of the flood. Every flood flow has its own source address (100.64.0.0/10) and a random \
                  source port and ISN, and goes to port 80 of 198.51.100.10. The manifest lists the real files \
                  as without a flood, plus the flood's size (syn_flood, half_open, idle_keepalive).\n\n\
                  --idle-keepalive N adds N complete HTTP/1.1 keep-alive connections that carry no file and then \
                  stay open, idle, to the end of the capture: handshake, `GET /idle/<n>`, `304 Not Modified`, the \
                  client's ACK; no FIN, no RST. A flow sends each of its 6 packets 500 flows after the previous \
                  one, so that many flows are in their handshake at once.\n\n\
                  A 300k-SYN flood around one 1 MiB download:\n  \
                  xdpcarve-gen --http 1 --sizes 1M --styles length --syn-flood 300000 -o synflood.pcap\n\
                  A million idle keep-alive connections (6M packets):\n  \
                  xdpcarve-gen --idle-keepalive 1000000 -o idle.pcap"
)]
struct Args {
    /// HTTP transactions (each carries one file).
    #[arg(long, default_value_t = 0)]
    http: usize,
    /// SMTP messages.
    #[arg(long, default_value_t = 0)]
    smtp: usize,
    /// File sizes to draw from, comma-separated (K, M suffixes).
    #[arg(long, default_value = "64K", value_delimiter = ',')]
    sizes: Vec<String>,
    /// HTTP styles to draw from: length, chunked, gzip, upload.
    #[arg(long, default_value = "length,length,chunked,gzip,upload", value_delimiter = ',')]
    styles: Vec<String>,
    /// Attachments per mail.
    #[arg(long, default_value_t = 2)]
    attachments: usize,
    /// Most transactions (or mails) per TCP connection.
    #[arg(long, default_value_t = 4)]
    per_conn: usize,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Write the fixed scenario of bench/samples/sample.pcap instead of a drawn mix.
    #[arg(long)]
    sample: bool,
    /// Add N SYN-only flows (a SYN flood): one SYN each, never answered.
    #[arg(long, value_name = "N", default_value_t = 0)]
    syn_flood: u64,
    /// Add N half-open HTTP requests: a SYN, then one request segment (`GET /x HTTP/1.1`) that
    /// is never answered, sent 500 flows after its SYN.
    #[arg(long, value_name = "N", default_value_t = 0)]
    half_open: u64,
    /// Add N idle keep-alive HTTP connections: handshake, one request (`GET /idle/<n>`), a `304
    /// Not Modified` answer and its ACK, then idle and open to the end (no FIN, no RST).
    #[arg(long, value_name = "N", default_value_t = 0)]
    idle_keepalive: u64,
    /// Flood packets per second of capture time (SYN-only flows send one, half-open ones two,
    /// idle keep-alive ones six).
    #[arg(long, value_name = "PPS", default_value_t = 1_000_000)]
    flood_pps: u64,
    /// Interleave up to N connections at once, packet by packet (a busy link), instead of one
    /// conversation after another.
    #[arg(long, value_name = "N", default_value_t = 0)]
    concurrent: usize,
    /// Deliver this many per mille of data segments 1 to 3 packets of their flow late (a
    /// segment lost before the tap is seen only as its later retransmission).
    #[arg(long, value_name = "PERMILLE", default_value_t = 0)]
    reorder: u32,
    /// Repeat this many per mille of data segments 1 to 3 packets of their flow later (a segment
    /// lost after the tap is seen twice).
    #[arg(long, value_name = "PERMILLE", default_value_t = 0)]
    retransmit: u32,
    /// Add N TLS-like connections to port 443 (nothing to carve) among the others.
    #[arg(long, value_name = "N", default_value_t = 0)]
    background: u64,
    /// Output capture.
    #[arg(short = 'o', long)]
    output: PathBuf,
    /// Manifest path (default: the output with `.expected.json` instead of `.pcap`).
    #[arg(long)]
    manifest: Option<PathBuf>,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let flood = FloodOptions {
        syn: args.syn_flood,
        half_open: args.half_open,
        idle_keepalive: args.idle_keepalive,
        pps: args.flood_pps,
    };
    flood
        .check()
        .map_err(|e| anyhow::anyhow!("--syn-flood/--half-open/--idle-keepalive/--flood-pps: {e}"))?;
    let plan = if args.sample {
        gen::sample_plan()
    } else if args.http == 0 && args.smtp == 0 {
        if flood.is_empty() {
            bail!("nothing to generate: give --http N and/or --smtp N (or --sample), or a flood");
        }
        Vec::new()
    } else {
        let sizes = args
            .sizes
            .iter()
            .map(|s| gen::parse_size(s))
            .collect::<Result<Vec<_>, _>>()
            .map_err(anyhow::Error::msg)?;
        let http_styles = args
            .styles
            .iter()
            .map(|s| HttpStyle::parse(s))
            .collect::<Result<Vec<_>, _>>()
            .map_err(anyhow::Error::msg)?;
        if sizes.is_empty() || http_styles.is_empty() {
            bail!("--sizes and --styles need at least one entry");
        }
        gen::plan(&PlanOptions {
            http: args.http,
            smtp: args.smtp,
            sizes,
            http_styles,
            kinds: vec![Kind::Exe, Kind::Pdf, Kind::Zip, Kind::Html],
            per_conn: args.per_conn,
            attachments_per_mail: args.attachments,
            seed: args.seed,
        })
    };
    let seed = if args.sample { 1 } else { args.seed };
    let file =
        std::fs::File::create(&args.output).with_context(|| format!("cannot create {}", args.output.display()))?;
    let shape = ShapeOptions {
        concurrent: args.concurrent,
        reorder_permille: args.reorder,
        retransmit_permille: args.retransmit,
        background: args.background,
    };
    shape.check().map_err(anyhow::Error::msg)?;
    let (generated, out) = if shape.is_empty() {
        gen::write_flooded(&plan, seed, &flood, BufWriter::new(file), false)
    } else {
        // Shaped first, the flood (if any) around the shaped transfers.
        gen::write(&plan, seed, Vec::new(), false).and_then(|(mut generated, sequential)| {
            let (packets, shaped) = gen::shape::shape(&sequential, &shape, seed, Vec::new())?;
            generated.manifest.packets = packets;
            if flood.is_empty() {
                let mut out = BufWriter::new(file);
                out.write_all(&shaped)?;
                Ok((generated, out))
            } else {
                gen::flood::merge(&shaped, generated, &flood, seed, BufWriter::new(file))
            }
        })
    }
    .with_context(|| format!("writing {}", args.output.display()))?;
    out.into_inner()
        .map_err(|e| e.into_error())
        .and_then(|f| f.sync_all())
        .with_context(|| format!("writing {}", args.output.display()))?;

    let manifest_path = args.manifest.unwrap_or_else(|| {
        let name = args
            .output
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "capture".into());
        args.output.with_file_name(format!("{name}.expected.json"))
    });
    let mut json = serde_json::to_string_pretty(&generated.manifest)?;
    json.push('\n');
    let mut f =
        std::fs::File::create(&manifest_path).with_context(|| format!("cannot create {}", manifest_path.display()))?;
    f.write_all(json.as_bytes())?;
    let bytes: u64 = generated.manifest.files.iter().map(|f| f.size).sum();
    let flood_note = if flood.is_empty() {
        String::new()
    } else if flood.idle_keepalive == 0 {
        format!(", {} SYN-only and {} half-open flood flows", flood.syn, flood.half_open)
    } else {
        format!(
            ", {} SYN-only, {} half-open and {} idle keep-alive flood flows",
            flood.syn, flood.half_open, flood.idle_keepalive
        )
    };
    eprintln!(
        "wrote {} ({} packets, {} files, {} content bytes{flood_note}) and {}",
        args.output.display(),
        generated.manifest.packets,
        generated.manifest.files.len(),
        bytes,
        manifest_path.display()
    );
    Ok(())
}
