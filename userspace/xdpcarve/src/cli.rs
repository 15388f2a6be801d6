//! Command line (clap derive). Every flag says what it does, its default, and its unit.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

#[derive(Parser, Debug)]
#[command(
    name = "xdpcarve",
    version,
    about = "Carve files out of HTTP and SMTP traffic: hash them (MD5, SHA-1, SHA-256, BLAKE3), sniff their \
             real type and log one JSON line per file.",
    long_about = "Carve files out of HTTP and SMTP traffic: hash them (MD5, SHA-1, SHA-256, BLAKE3), sniff their \
                  real type and log one JSON line per file (Zeek files.log fields).\n\n\
                  Reads a pcap or pcapng capture with --read; TCP is reassembled per connection, HTTP bodies \
                  (de-chunked, decompressed, multipart parts, 206 ranges) and SMTP/MIME attachments become files.\n\n\
                  Sizes accept K, M, G suffixes (powers of 1024): 64K, 256M, 1G. Durations: 90s, 5m, 1h (a bare \
                  number is seconds). While reading, progress is printed to stderr every 2 s if stderr is a \
                  terminal; at the end a summary lists packets, flows, files, gaps and every nonzero skip or \
                  limit counter (-q silences both). RUST_LOG=debug shows more logging on stderr.\n\n\
                  Every flag is also a key of the --config file: [engine], [live], [read] and [output] keys are \
                  the flags' own names (max_flows = 1000 is --max-flows 1000), other sections prefix theirs \
                  ([webhook] url is --webhook-url); a flag given here wins. `xdpcarve check` (or --check) \
                  checks what a run needs and prints what it would do, without capturing.",
    after_help = "Examples:\n  xdpcarve -r trace.pcap --files-log - | jq .sha256\n  xdpcarve check --config /etc/xdpcarve/xdpcarve.toml"
)]
pub struct Cli {
    /// Read packets from this pcap or pcapng file (or a named pipe), gzip or zstd compressed or
    /// not. Repeat it, or give a directory, to read several captures in one run: they are read in
    /// the order of their first packets' timestamps by one engine, so connections continue from
    /// one file into the next. SIGINT/SIGTERM stop the read at the next packet and end the run as
    /// at the end of the file (exit 130/143); a second signal exits at once.
    #[arg(
        short = 'r',
        long = "read",
        value_name = "FILE",
        action = clap::ArgAction::Append,
        required_unless_present_any = ["interface", "dump_config", "check"]
    )]
    pub read: Vec<PathBuf>,

    /// Check instead of running (also `xdpcarve check`): the config, the interface (up, driver,
    /// native XDP and zero-copy support, channels, RSS, offloads), the kernel, capabilities, the
    /// paths that will be written and the webhook; prints what a run would do and exits non-zero
    /// if anything would fail. Captures nothing and changes nothing.
    #[arg(long)]
    pub check: bool,

    #[command(flatten)]
    pub live: crate::live::LiveArgs,

    /// Where to write the files log: one JSON object per file, one per line, in the order files
    /// finish. "-" writes to standard output. The file is created or truncated (unless
    /// files_log.append is set in the config file) [default: files.log, or the config file's
    /// files_log.path].
    #[arg(long, value_name = "PATH")]
    pub files_log: Option<PathBuf>,

    #[command(flatten)]
    pub egress: crate::config::EgressArgs,

    /// Hashes to compute, comma-separated: md5, sha1, sha256, blake3, or all.
    #[arg(long, value_name = "LIST", default_value = "all")]
    pub hashes: String,

    /// Bytes of one file that are hashed; a longer file is logged as truncated, without hashes.
    #[arg(long, value_name = "SIZE", default_value = "256M", value_parser = parse_size)]
    pub max_file_size: u64,

    /// Connections tracked at once; past it the least recently active connection is closed
    /// (its open files are logged as truncated) and counted as evicted. Flows that carried no
    /// byte yet (SYN or handshake only) are kept apart, up to as many again, for 30 s.
    #[arg(long, value_name = "N", default_value_t = 262_144)]
    pub max_flows: usize,

    /// Bytes of each direction of a connection that are reassembled and parsed (0 = all).
    /// Files that continue past it are logged as truncated.
    #[arg(long, value_name = "SIZE", default_value = "0", value_parser = parse_size)]
    pub reassembly_depth: u64,

    /// Out-of-order bytes buffered per connection direction while waiting for a missing segment;
    /// past it the hole is skipped and counted as missing bytes of the file.
    #[arg(long, value_name = "SIZE", default_value = "1M", value_parser = parse_size)]
    pub stream_buffer: u64,

    /// Memory for all flow state of each worker: connections, attempts (SYN or handshake only),
    /// out-of-order bytes and parsers. Past it the oldest attempts go first, then connections
    /// that only one side spoke on, then the least recently active established ones; reassembly
    /// skips holes rather than buffer more. The summary shows each category's peak.
    #[arg(long, value_name = "SIZE", default_value = "512M", value_parser = parse_size)]
    pub memory: u64,

    /// Which copy of bytes sent twice with different content is logged, when both arrive before
    /// the bytes are parsed: first (BSD, Windows, Linux, Zeek) or last (Solaris, HP-UX). Either
    /// way the file is marked `tcp_overlap_conflict`.
    #[arg(long, value_name = "POLICY", value_enum, default_value_t = Overlap::First)]
    pub overlap: Overlap,

    /// Segments with a bad TCP or IPv4 header checksum: verify (dropped, as the receiving host
    /// drops them), ignore (taken, as tcpdump and Zeek do), or auto: dropped until more than one
    /// segment in ten has had a bad checksum, then taken unchecked (a capture on a sending host
    /// with checksum offload, or an edited one; counter tcp.checksum_offload_assumed). Files of a
    /// direction that sent both good and bad checksums (while they were checked) are marked
    /// `tcp_bad_checksum`.
    #[arg(long, value_name = "MODE", value_enum, default_value_t = Checksums::Auto)]
    pub checksums: Checksums,

    /// TCP server ports parsed as HTTP, comma-separated.
    #[arg(long, value_name = "PORTS", default_value = "80,8080", value_parser = parse_ports)]
    pub http_ports: PortList,

    /// TCP server ports parsed as SMTP, comma-separated.
    #[arg(long, value_name = "PORTS", default_value = "25,587", value_parser = parse_ports)]
    pub smtp_ports: PortList,

    /// A connection with no packet for this long (capture time) is closed, as Zeek's
    /// tcp_inactivity_timeout.
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = parse_duration)]
    pub idle_timeout: Duration,

    /// Parse only connections on the ports above. By default a connection on another port is
    /// also parsed when its first bytes are an HTTP request line or an SMTP greeting or HELO
    /// (as Suricata and Zeek detect protocols).
    #[arg(long)]
    pub ports_only: bool,

    /// Hash threads for large files (0: each worker hashes its own files). Files past 64 KiB are
    /// handed to them over bounded queues, MD5 and the other hashes on different threads, so a
    /// box with more cores than queues uses them. A live worker never waits for them: their
    /// queues count as backlog for overload control.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub hash_threads: usize,

    /// Backlog, as a fraction of the rx ring, at or above which a worker sheds file work, one more
    /// step every 20 ms it stays there: BLAKE3, then SHA-1, then every hash of files no policy
    /// wants. Never shed: reassembly, parsing, sniffing, and MD5/SHA-256 of files the policy wants.
    #[arg(long, value_name = "FRACTION", default_value_t = 0.5)]
    pub overload_high_water: f64,

    /// Backlog at or below which a shedding worker returns to full work.
    #[arg(long, value_name = "FRACTION", default_value_t = 0.125)]
    pub overload_low_water: f64,

    /// With --read, to test overload control: the capture is taken to arrive at this many Mbit/s
    /// into an rx ring of --capture-memory, and a worker that falls behind sheds file work as it
    /// would live. Packets are never dropped; the summary says how many a live ring would have lost.
    #[arg(long, value_name = "MBPS", requires = "read", value_parser = parse_mbps)]
    pub simulate_mbps: Option<f64>,

    /// With --read: carve on this many worker threads, each with its own engine; packets go to
    /// them by a symmetric hash of addresses and ports, as live RSS sends them to queues (both
    /// directions of a connection meet in one worker). The records are the same set as with one
    /// worker, in another order. Each worker has its own --memory. [default: the number of
    /// cores; 1 with --simulate-mbps]
    #[arg(long, value_name = "N", value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub workers: Option<usize>,

    /// Seed of connection and file ids (`uid`, `fuid`) and of the flow table's hash. Ids also
    /// depend on the sensor's name and on each flow, never on a worker or an arrival order: with
    /// the same seed and name a run repeats its ids, live gives those of `-r` of its capture.
    /// Default: a seed of the run's own, so logs of two runs or sensors never share ids.
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,

    /// No progress and no summary on stderr (errors and warnings are still printed).
    #[arg(short, long)]
    pub quiet: bool,

    /// Colour in the messages on stderr: auto (only when stderr is a terminal and NO_COLOR is
    /// not set), always, never.
    #[arg(long, value_name = "WHEN", value_enum, default_value_t = Color::Auto)]
    pub color: Color,
}

/// `--color`.
#[derive(clap::ValueEnum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum Color {
    Auto,
    Always,
    Never,
}

impl Color {
    /// Whether to write ANSI colour codes to stderr.
    pub fn enabled(self) -> bool {
        use std::io::IsTerminal;
        match self {
            Color::Always => true,
            Color::Never => false,
            Color::Auto => std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
        }
    }
}

/// `--overlap`.
#[derive(clap::ValueEnum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum Overlap {
    First,
    Last,
}

/// `--checksums`.
#[derive(clap::ValueEnum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum Checksums {
    Auto,
    Verify,
    Ignore,
}

/// A parsed, de-duplicated port list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortList(pub Vec<u16>);

/// "64K", "256M", "1G", "1.5G", "4096", "10KiB", "2MB": sizes in powers of 1024.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    if num.is_empty() {
        return Err(format!(
            "`{s}` is not a size: use a number with an optional K, M, G or T suffix (e.g. 64K)"
        ));
    }
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        other => return Err(format!("unknown size unit `{other}` in `{s}`: use K, M, G or T")),
    };
    let value: f64 = num.parse().map_err(|_| format!("`{s}` is not a size"))?;
    let bytes = value * mult as f64;
    if !bytes.is_finite() || bytes >= u64::MAX as f64 {
        return Err(format!("size `{s}` is too large"));
    }
    Ok(bytes as u64)
}

/// A positive link rate in Mbit/s ("1000", "2500.5").
pub fn parse_mbps(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        _ => Err(format!(
            "`{s}` is not a rate: give Mbit/s as a positive number, e.g. 1000 for 1 Gbit/s"
        )),
    }
}

/// "80,8080" (spaces allowed); each port 1–65535.
pub fn parse_ports(s: &str) -> Result<PortList, String> {
    let mut ports = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let port: u16 = part
            .parse()
            .map_err(|_| format!("`{part}` is not a port number (1-65535)"))?;
        if port == 0 {
            return Err("port 0 is not a valid server port".into());
        }
        if !ports.contains(&port) {
            ports.push(port);
        }
    }
    Ok(PortList(ports))
}

/// "90s", "5m", "1h 30m", or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    if let Ok(secs) = t.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    humantime::parse_duration(t).map_err(|e| format!("`{s}` is not a duration ({e}): use e.g. 90s, 5m, 1h"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("64K"), Ok(64 << 10));
        assert_eq!(parse_size("256M"), Ok(256 << 20));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert_eq!(parse_size("1.5k"), Ok(1536));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("2MiB"), Ok(2 << 20));
        assert!(parse_size("12X").unwrap_err().contains("unit"));
        assert!(parse_size("M").is_err());
        assert!(parse_size("99999999999T").is_err());
    }

    #[test]
    fn ports_and_durations() {
        assert_eq!(parse_ports("80, 8080,80"), Ok(PortList(vec![80, 8080])));
        assert!(parse_ports("80,http").is_err());
        assert!(parse_ports("0").is_err());
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert!(parse_duration("soon").is_err());
    }
}
