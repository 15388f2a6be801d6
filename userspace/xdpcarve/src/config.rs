//! The config file (TOML, `--config`) and the egress flags that override it.
//!
//! Precedence: a flag given on the command line, then the config file, then the built-in default.
//! Unknown keys are errors that name the key (every table is `deny_unknown_fields`), so a typo
//! never silently falls back to a default. `deploy/xdpcarve.toml` documents every key.
//! The webhook token is not a setting: it is read from `--webhook-token-file` or the environment
//! variable `XDPCARVE_WEBHOOK_TOKEN`, and so is never part of a config dump.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use clap::Args;
use serde::{Deserialize, Serialize};
use xdpcarve_egress::config::{
    DedupConfig, EgressConfig, FilesLogConfig, FleetConfig, MetricsConfig, PolicyConfig, QueueConfig, SpillConfig,
    WebhookConfig, DEFAULT_METRICS_ADDR,
};
use xdpcarve_egress::WebhookFormat;
use xdpcarve_scan::config::{ActionsConfig, PipelineConfig, ScanConfig, ScanSection, ScannerConfig, StoreConfig};

use crate::cli::{parse_duration, parse_size};

/// The config file, one table per part.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    #[serde(default)]
    pub sensor: SensorSection,
    #[serde(default)]
    pub files_log: FilesLogConfig,
    #[serde(default)]
    pub policy: PolicyConfig,
    #[serde(default)]
    pub dedup: DedupConfig,
    #[serde(default)]
    pub webhook: WebhookConfig,
    #[serde(default)]
    pub spill: SpillConfig,
    #[serde(default)]
    pub metrics: MetricsSection,
    #[serde(default)]
    pub queue: QueueConfig,
    #[serde(default)]
    pub fleet: FleetConfig,
    #[serde(default)]
    pub store: StoreConfig,
    #[serde(default)]
    pub scan: ScanSection,
    #[serde(default)]
    pub scanners: BTreeMap<String, ScannerConfig>,
    #[serde(default)]
    pub pipelines: Vec<PipelineConfig>,
    #[serde(default)]
    pub actions: ActionsConfig,
    /// `[engine]`, `[live]`, `[read]`, `[output]`: the run's own flags (see `run_keys`), which
    /// become flags before the command line's and are printed from the parsed command line.
    #[serde(default, skip_serializing)]
    pub engine: toml::Table,
    #[serde(default, skip_serializing)]
    pub live: toml::Table,
    #[serde(default, skip_serializing)]
    pub read: toml::Table,
    #[serde(default, skip_serializing)]
    pub output: toml::Table,
}

impl ConfigFile {
    /// The run's own sections, by name.
    pub fn run_sections(&self) -> [(&'static str, &toml::Table); 4] {
        [
            ("engine", &self.engine),
            ("live", &self.live),
            ("read", &self.read),
            ("output", &self.output),
        ]
    }
}

/// `[sensor]`
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SensorSection {
    /// Sent with every submission; defaults to the host name.
    pub name: Option<String>,
    /// Directory for the dedup state and the spill journal when their own paths are not set.
    pub state_dir: Option<PathBuf>,
}

/// `[metrics]`: `addr = "off"` disables the endpoint.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsSection {
    pub addr: Option<String>,
    #[serde(
        with = "xdpcarve_egress::config::opt_duration",
        skip_serializing_if = "Option::is_none"
    )]
    pub linger: Option<Duration>,
}

/// Egress flags (flattened into the main command line).
#[derive(Args, Debug, Clone, Default)]
pub struct EgressArgs {
    /// Read settings from this TOML file (see deploy/xdpcarve.toml); flags given here override it.
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,

    /// Print the effective configuration (config file plus flags) as TOML and exit. The webhook
    /// token is never part of it.
    #[arg(long)]
    pub dump_config: bool,

    /// Name of this sensor, sent with each submission [default: the host name].
    #[arg(long, value_name = "NAME")]
    pub sensor_name: Option<String>,

    /// POST submissions (files the policy matches, once per hash per dedup TTL) to this http:// or
    /// https:// URL. Without it nothing is submitted; files are still logged.
    #[arg(long, value_name = "URL")]
    pub webhook_url: Option<String>,

    /// File whose content is sent verbatim as the Authorization header ("Bearer x" or a bare API
    /// key; one trailing newline is dropped). Otherwise the XDPCARVE_WEBHOOK_TOKEN environment
    /// variable is used, if set.
    #[arg(long, value_name = "PATH")]
    pub webhook_token_file: Option<PathBuf>,

    /// "batch": one POST per batch, a JSON array of items; "md5": one POST per file,
    /// {"md5": "..."} [default: batch].
    #[arg(long, value_name = "FORMAT", value_parser = ["batch", "md5"])]
    pub webhook_format: Option<String>,

    /// Send a batch when it holds this many items [default: 100].
    #[arg(long, value_name = "N")]
    pub webhook_batch_items: Option<usize>,

    /// ... or when its first item has waited this long [default: 1s].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub webhook_batch_delay: Option<Duration>,

    /// At the end of a run, keep delivering for at most this long; what is left goes to the spill
    /// journal [default: 10s].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub webhook_drain_timeout: Option<Duration>,

    /// Keep the dedup state (dedup.state) and the spill journal (spill/) in this directory.
    /// Default with a webhook: $STATE_DIRECTORY (systemd), else $XDG_STATE_HOME/xdpcarve, else
    /// ./.xdpcarve.
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,

    /// Spill journal directory (overrides --state-dir for the journal).
    #[arg(long, value_name = "DIR")]
    pub spill_dir: Option<PathBuf>,

    /// Bound on the spill journal's size on disk [default: 1G].
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub spill_max_bytes: Option<u64>,

    /// A hash submitted within this long is not submitted again [default: 24h].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub dedup_ttl: Option<Duration>,

    /// Submit every matching file, even a hash already sent.
    #[arg(long)]
    pub no_dedup: bool,

    /// Submit files whose sniffed type matches this regex (whole string, case-insensitive).
    /// Repeatable; replaces the policy's type list.
    #[arg(long = "submit-mime", value_name = "REGEX")]
    pub submit_mime: Vec<String>,

    /// Serve Prometheus metrics on http://ADDR/metrics; "off" disables them
    /// [default: 127.0.0.1:9400 when capturing live, off with --read].
    #[arg(long, value_name = "ADDR")]
    pub metrics_addr: Option<String>,

    /// Share dedup and stream every record through Redis (fleet.redis): redis://HOST:PORT,
    /// rediss:// for TLS, several comma-separated URLs for a Redis Cluster. The password comes
    /// from fleet.password_file, never from the command line.
    #[arg(long, value_name = "URL")]
    pub redis_url: Option<String>,

    /// Keep serving /metrics this long after the run has finished (for a final scrape).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub metrics_linger: Option<Duration>,

    /// Keep the files that pipelines (or store.match) want in this directory, named by SHA-256
    /// (store.dir). Needed for scanning.
    #[arg(long, value_name = "DIR")]
    pub store_dir: Option<PathBuf>,

    /// Write each scanned file's verdicts here as JSON lines, "-" for standard output
    /// (scan.scans_log).
    #[arg(long, value_name = "PATH")]
    pub scans_log: Option<PathBuf>,

    /// Write a JSON line for each malicious or suspicious file here (scan.alerts_log).
    #[arg(long, value_name = "PATH")]
    pub alerts_log: Option<PathBuf>,
}

/// Every setting of a run: the egress's and the store's and scanners'.
pub struct Settings {
    pub egress: EgressConfig,
    pub scan: ScanConfig,
}

/// Reads and checks a config file; errors name the file, the line and the key.
pub fn load_file(path: &Path) -> Result<ConfigFile> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read the config file {}", path.display()))?;
    parse_file(&text).with_context(|| format!("config file {}", path.display()))
}

/// A config file that does not parse, on one line: where, the line itself (so the key shows
/// even when the complaint is about its value), and what is wrong.
#[derive(Debug)]
pub struct ParseError {
    /// 1-based line and column of the offending part, when toml knows it.
    at: Option<(usize, usize, String)>,
    /// toml's bare message (its `Display` is the multi-line form with the marked line).
    message: String,
}

impl ParseError {
    fn new(text: &str, err: toml::de::Error) -> ParseError {
        let at = err.span().map(|span| {
            let start = span.start.min(text.len());
            let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
            let line_end = text[start..].find('\n').map_or(text.len(), |i| start + i);
            let line = text[..start].matches('\n').count() + 1;
            let column = text[line_start..start].chars().count() + 1;
            let mut snippet = text[line_start..line_end].trim().to_string();
            if snippet.chars().count() > 80 {
                snippet = snippet.chars().take(77).collect::<String>() + "...";
            }
            (line, column, snippet)
        });
        // Keep the one-line promise should a message ever hold a newline.
        let message = err.message().trim_end().replace('\n', " ");
        ParseError { at, message }
    }
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let message = &self.message;
        match &self.at {
            Some((line, column, snippet)) if !snippet.is_empty() => {
                write!(f, "line {line}, column {column} `{snippet}`: {message}")
            }
            Some((line, column, _)) => write!(f, "line {line}, column {column}: {message}"),
            None => f.write_str(message),
        }
    }
}

// No source: toml's error is only text, and `Display` already shows it.
impl std::error::Error for ParseError {}

pub fn parse_file(text: &str) -> Result<ConfigFile, ParseError> {
    toml::from_str(text).map_err(|e| ParseError::new(text, e))
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "xdpcarve".to_string())
}

fn parse_metrics_addr(s: &str, what: &str) -> Result<Option<SocketAddr>> {
    if s.eq_ignore_ascii_case("off") || s.eq_ignore_ascii_case("none") || s.is_empty() {
        return Ok(None);
    }
    s.parse()
        .map(Some)
        .map_err(|_| anyhow!("{what} `{s}`: not host:port (e.g. 127.0.0.1:9400) or \"off\""))
}

/// The settings: defaults, then the config file, then the flags. `files_log` is the
/// `--files-log` flag when it was given; `live` picks the metrics default (on live, off offline).
pub fn settings(args: &EgressArgs, files_log: Option<&Path>, live: bool) -> Result<Settings> {
    let file = match &args.config {
        Some(p) => load_file(p)?,
        None => ConfigFile::default(),
    };
    let mut scan = ScanConfig {
        store: file.store.clone(),
        scan: file.scan.clone(),
        scanners: file.scanners.clone(),
        pipelines: file.pipelines.clone(),
        actions: file.actions.clone(),
    };
    if let Some(d) = &args.store_dir {
        scan.store.dir = Some(d.clone());
    }
    if let Some(p) = &args.scans_log {
        scan.scan.scans_log = Some(p.clone());
    }
    if let Some(p) = &args.alerts_log {
        scan.scan.alerts_log = Some(p.clone());
    }
    Ok(Settings {
        egress: egress_config_from(file, args, files_log, live)?,
        scan,
    })
}

/// The egress settings alone (see [`settings`]).
#[cfg(test)]
pub fn egress_config(args: &EgressArgs, files_log: Option<&Path>, live: bool) -> Result<EgressConfig> {
    Ok(settings(args, files_log, live)?.egress)
}

fn egress_config_from(
    file: ConfigFile,
    args: &EgressArgs,
    files_log: Option<&Path>,
    live: bool,
) -> Result<EgressConfig> {
    let mut cfg = EgressConfig {
        sensor_name: file.sensor.name.clone().unwrap_or_else(host_name),
        files_log: file.files_log,
        policy: file.policy,
        dedup: file.dedup,
        webhook: file.webhook,
        spill: file.spill,
        metrics: MetricsConfig::default(),
        queue: file.queue,
        fleet: file.fleet,
    };
    cfg.metrics.addr = match (&args.metrics_addr, &file.metrics.addr) {
        (Some(a), _) => parse_metrics_addr(a, "--metrics-addr")?,
        (None, Some(a)) => parse_metrics_addr(a, "metrics.addr")?,
        (None, None) if live => Some(DEFAULT_METRICS_ADDR.parse().expect("valid")),
        (None, None) => None,
    };
    cfg.metrics.addr_required = args.metrics_addr.is_some() || file.metrics.addr.is_some();
    cfg.metrics.linger = args.metrics_linger.or(file.metrics.linger).unwrap_or(Duration::ZERO);

    if let Some(name) = &args.sensor_name {
        cfg.sensor_name = name.clone();
    }
    if let Some(p) = files_log {
        cfg.files_log.path = Some(p.to_string_lossy().into_owned());
    } else if cfg.files_log.path.is_none() {
        cfg.files_log.path = Some("files.log".into());
    }
    let w = &mut cfg.webhook;
    if let Some(u) = &args.webhook_url {
        w.url = Some(u.clone());
    }
    if let Some(p) = &args.webhook_token_file {
        w.token_file = Some(p.clone());
    }
    if let Some(f) = &args.webhook_format {
        w.format = WebhookFormat::parse(f).context("--webhook-format")?;
    }
    if let Some(n) = args.webhook_batch_items {
        w.batch_max_items = n;
    }
    if let Some(d) = args.webhook_batch_delay {
        w.batch_max_delay = d;
    }
    if let Some(d) = args.webhook_drain_timeout {
        w.drain_timeout = d;
    }
    let mut state_dir = args.state_dir.clone().or(file.sensor.state_dir);
    // Durability is not opt-in: submissions without any directory named get the default one.
    if state_dir.is_none() && cfg.webhook.url.is_some() {
        let dir = default_state_dir(std::env::var_os("STATE_DIRECTORY"), std::env::var_os("XDG_STATE_HOME"));
        tracing::info!(
            "state directory {} (the default; --state-dir or sensor.state_dir choose another)",
            dir.display()
        );
        state_dir = Some(dir);
    }
    if let Some(d) = &args.spill_dir {
        cfg.spill.dir = Some(d.clone());
    } else if cfg.spill.dir.is_none() {
        cfg.spill.dir = state_dir.as_ref().map(|d| d.join("spill"));
    }
    if let Some(n) = args.spill_max_bytes {
        cfg.spill.max_bytes = n;
    }
    if cfg.dedup.state_file.is_none() {
        cfg.dedup.state_file = state_dir.as_ref().map(|d| d.join("dedup.state"));
    }
    if let Some(u) = &args.redis_url {
        cfg.fleet.redis = Some(u.clone());
    }
    if let Some(t) = args.dedup_ttl {
        cfg.dedup.ttl = t;
    }
    if args.no_dedup {
        cfg.dedup.enabled = false;
    }
    if !args.submit_mime.is_empty() {
        cfg.policy.mime_types = args.submit_mime.clone();
    }
    // The messages name the key (or, through it, the flag); no context would add anything.
    cfg.validate()?;
    Ok(cfg)
}

/// Where the spill journal and the dedup state go when no directory is named: systemd's
/// `StateDirectory=` (`$STATE_DIRECTORY`, /var/lib/xdpcarve with deploy/xdpcarve.service), else
/// `$XDG_STATE_HOME/xdpcarve`, else `./.xdpcarve`.
pub fn default_state_dir(systemd: Option<std::ffi::OsString>, xdg_state_home: Option<std::ffi::OsString>) -> PathBuf {
    let first = |v: std::ffi::OsString| {
        // systemd lists one directory per StateDirectory= entry, colon-separated.
        let s = v.to_string_lossy().into_owned();
        s.split(':').next().filter(|d| !d.is_empty()).map(PathBuf::from)
    };
    if let Some(d) = systemd.and_then(first) {
        return d;
    }
    match xdg_state_home.filter(|v| !v.is_empty()) {
        Some(x) => PathBuf::from(x).join("xdpcarve"),
        None => PathBuf::from(".xdpcarve"),
    }
}

/// The effective settings as TOML (for `--dump-config`). Holds no secret: the token is not a setting.
pub fn dump(settings: &Settings) -> Result<String> {
    let cfg = &settings.egress;
    let scan = &settings.scan;
    let file = ConfigFile {
        sensor: SensorSection {
            name: Some(cfg.sensor_name.clone()),
            state_dir: None,
        },
        files_log: cfg.files_log.clone(),
        policy: cfg.policy.clone(),
        dedup: cfg.dedup.clone(),
        webhook: cfg.webhook.clone(),
        spill: cfg.spill.clone(),
        metrics: MetricsSection {
            addr: Some(cfg.metrics.addr.map(|a| a.to_string()).unwrap_or_else(|| "off".into())),
            linger: Some(cfg.metrics.linger),
        },
        queue: cfg.queue.clone(),
        fleet: cfg.fleet.clone(),
        store: scan.store.clone(),
        scan: scan.scan.clone(),
        scanners: scan.scanners.clone(),
        pipelines: scan.pipelines.clone(),
        actions: scan.actions.clone(),
        ..ConfigFile::default()
    };
    toml::to_string(&file).context("cannot print the config")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_example_parses_and_validates() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/xdpcarve.toml");
        let file = load_file(&path).unwrap();
        assert_eq!(file.webhook.batch_max_items, 100);
        assert!(file.policy.mime_types.iter().any(|m| m == "application/x-dosexec"));
        let args = EgressArgs {
            config: Some(path),
            ..Default::default()
        };
        let cfg = egress_config(&args, None, true).unwrap();
        assert_eq!(cfg.dedup.ttl, Duration::from_secs(24 * 3600));
        // The run's own sections are valid flags too.
        let cmd = <crate::cli::Cli as clap::CommandFactory>::command();
        let flags = crate::run_keys::flags_from(&file.run_sections(), &cmd, false).unwrap();
        assert!(flags.iter().any(|f| f == "--interface=eth1"), "{flags:?}");
    }

    #[test]
    fn the_readme_scanner_example_parses_and_every_scanner_is_well_formed() {
        let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md")).unwrap();
        let start = readme
            .find("A complete config for the EXE")
            .expect("the README's scanner example");
        let block = &readme[start..];
        let block = &block[block.find("```toml\n").unwrap() + 8..];
        let block = &block[..block.find("```").unwrap()];
        let file = parse_file(block).unwrap();
        assert_eq!(file.pipelines.len(), 3);
        for (name, sc) in &file.scanners {
            sc.kind().unwrap_or_else(|e| panic!("scanners.{name}: {e}"));
        }
        for p in &file.pipelines {
            xdpcarve_scan::MimeMatcher::new(std::slice::from_ref(&p.match_)).unwrap();
            assert!(p.scanners.iter().all(|s| file.scanners.contains_key(s)));
        }
        assert!(file.webhook.include_verdicts);
    }

    #[test]
    fn unknown_keys_and_bad_values_name_the_key() {
        let err = parse_file("[webhook]\nbatch_max_itemz = 5\n").unwrap_err().to_string();
        assert!(err.contains("batch_max_itemz"), "{err}");
        let err = parse_file("[dedupe]\nttl = \"1h\"\n").unwrap_err().to_string();
        assert!(err.contains("dedupe"), "{err}");
        let err = parse_file("[dedup]\nttl = \"a while\"\n").unwrap_err().to_string();
        assert!(err.contains("ttl") || err.contains("line 2"), "{err}");
        let err = parse_file("[webhook]\nformat = \"xml\"\n").unwrap_err().to_string();
        assert!(err.contains("xml"), "{err}");
        // One line, naming where and the key.
        let err = parse_file("[webhook]\nbatch_items = \"x\"\n").unwrap_err().to_string();
        assert!(!err.contains('\n'), "{err}");
        assert!(
            err.starts_with("line 2, column 1 `batch_items = \"x\"`: unknown field `batch_items`"),
            "{err}"
        );
        let err = parse_file("[dedup]\nttl = \"a while\"\n").unwrap_err().to_string();
        assert!(err.starts_with("line 2, column 7 `ttl = \"a while\"`: "), "{err}");
    }

    #[test]
    fn a_missing_file_names_it_and_its_cause_once() {
        let err = load_file(Path::new("/nonexistent/xdpcarve.toml")).unwrap_err();
        let chain: Vec<String> = err.chain().map(|e| e.to_string()).collect();
        assert_eq!(chain.len(), 2, "{chain:?}");
        assert_eq!(chain[0], "cannot read the config file /nonexistent/xdpcarve.toml");
        assert!(chain[1].contains("No such file or directory"), "{chain:?}");
        assert_eq!(format!("{err:#}").matches("No such file").count(), 1, "{err:#}");
    }

    #[test]
    fn flags_override_the_file_and_validation_names_keys() {
        let dir = std::env::temp_dir().join(format!("xdpcarve-config-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("c.toml");
        std::fs::write(
            &path,
            "[webhook]\nurl = \"http://a.example/x\"\nbatch_max_items = 5\n[metrics]\naddr = \"off\"\n",
        )
        .unwrap();
        let mut args = EgressArgs {
            config: Some(path.clone()),
            ..Default::default()
        };
        let cfg = egress_config(&args, None, true).unwrap();
        assert_eq!(cfg.webhook.batch_max_items, 5);
        assert_eq!(cfg.metrics.addr, None);
        args.webhook_batch_items = Some(7);
        args.state_dir = Some(dir.clone());
        args.metrics_addr = Some("127.0.0.1:9999".into());
        let cfg = egress_config(&args, Some(Path::new("-")), false).unwrap();
        assert_eq!(cfg.webhook.batch_max_items, 7);
        assert_eq!(cfg.spill.dir, Some(dir.join("spill")));
        assert_eq!(cfg.files_log.path.as_deref(), Some("-"));
        assert_eq!(cfg.metrics.addr, Some("127.0.0.1:9999".parse().unwrap()));
        args.webhook_batch_items = Some(0);
        let err = egress_config(&args, None, false).unwrap_err().to_string();
        assert!(err.contains("webhook.batch_max_items"), "{err}");
        std::fs::write(&path, "[policy]\nmime_types = [\"(\"]\n").unwrap();
        let args = EgressArgs {
            config: Some(path),
            ..Default::default()
        };
        let err = egress_config(&args, None, false).unwrap_err().to_string();
        assert!(err.contains("policy.mime_types[0]"), "{err}");
        // Offline runs serve no metrics unless asked.
        assert_eq!(
            egress_config(&EgressArgs::default(), None, false).unwrap().metrics.addr,
            None
        );
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn dump_round_trips_and_holds_no_token() {
        let args = EgressArgs {
            webhook_url: Some("https://hooks.example/in".into()),
            webhook_token_file: Some("/etc/xdpcarve/token".into()),
            ..Default::default()
        };
        let settings = settings(&args, None, true).unwrap();
        let cfg = &settings.egress;
        let text = dump(&settings).unwrap();
        let back = parse_file(&text).unwrap();
        assert_eq!(back.webhook.url.as_deref(), Some("https://hooks.example/in"));
        assert_eq!(back.webhook.token_file, Some(PathBuf::from("/etc/xdpcarve/token")));
        assert_eq!(back.dedup.ttl, cfg.dedup.ttl);
    }

    #[test]
    fn the_default_state_dir_follows_systemd_then_xdg_then_the_working_directory() {
        let d = |a: Option<&str>, b: Option<&str>| default_state_dir(a.map(Into::into), b.map(Into::into));
        assert_eq!(
            d(Some("/var/lib/xdpcarve:/var/lib/other"), Some("/x")),
            PathBuf::from("/var/lib/xdpcarve")
        );
        assert_eq!(
            d(None, Some("/home/u/.local/state")),
            PathBuf::from("/home/u/.local/state/xdpcarve")
        );
        assert_eq!(d(Some(""), Some("")), PathBuf::from(".xdpcarve"));
        assert_eq!(d(None, None), PathBuf::from(".xdpcarve"));
    }
}
