//! Settings of the egress side, one section per part. Each section deserializes from its own TOML
//! table (`[policy]`, `[dedup]`, ...) with unknown keys rejected, so a typo is an error that names
//! the key rather than a silently ignored setting. Durations are humantime strings ("24h", "500ms").

use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Everything the egress thread needs. The binary fills it from the config file and the command line.
#[derive(Clone, Debug, Default)]
pub struct EgressConfig {
    /// Name of this sensor, sent with every submission and in the build-info metric.
    pub sensor_name: String,
    pub files_log: FilesLogConfig,
    pub policy: PolicyConfig,
    pub dedup: DedupConfig,
    pub webhook: WebhookConfig,
    pub spill: SpillConfig,
    pub metrics: MetricsConfig,
    pub queue: QueueConfig,
    pub fleet: FleetConfig,
}

/// `[files_log]`: one JSON line per file.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FilesLogConfig {
    /// Where to write; `-` is standard output; unset writes no files log.
    pub path: Option<String>,
    /// Rotate when the file reaches this many bytes (0 = never).
    pub rotate_bytes: u64,
    /// Rotate when the file is this old (unset = never).
    #[serde(with = "opt_duration")]
    pub rotate_interval: Option<Duration>,
    /// Rotated files kept (`files.log.1` is the newest); older ones are deleted.
    pub rotate_keep: u32,
    /// Append to an existing file (a sensor that restarts) instead of starting it afresh (a `--read`).
    pub append: bool,
}

impl Default for FilesLogConfig {
    fn default() -> Self {
        FilesLogConfig {
            path: None,
            rotate_bytes: 0,
            rotate_interval: None,
            rotate_keep: 5,
            append: false,
        }
    }
}

/// `[policy]`: which files are submitted. A file is submitted when any of the type lists matches
/// and its size is within bounds (and it has a hash).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PolicyConfig {
    /// Regexes matched (whole string, case-insensitive) against the type sniffed from content.
    pub mime_types: Vec<String>,
    /// Regexes matched against the type the protocol declared (Content-Type).
    pub declared_mime_types: Vec<String>,
    /// Regexes matched against the filename's extension (without the dot), e.g. `exe|dll|scr`.
    pub extensions: Vec<String>,
    /// Smallest file submitted, in bytes.
    pub min_size: u64,
    /// Largest file submitted, in bytes (unset = no bound).
    pub max_size: Option<u64>,
}

/// The dangerous types of the classic workflow: Windows executables, CAB, PDF, Flash, Java.
pub const DEFAULT_MIME_TYPES: &[&str] = &[
    "application/x-dosexec",
    "application/vnd.ms-cab-compressed",
    "application/pdf",
    "application/x-shockwave-flash",
    "application/x-java-applet",
    "application/java-archive",
];

impl Default for PolicyConfig {
    fn default() -> Self {
        PolicyConfig {
            mime_types: DEFAULT_MIME_TYPES.iter().map(|s| s.to_string()).collect(),
            declared_mime_types: Vec::new(),
            extensions: Vec::new(),
            min_size: 1,
            max_size: None,
        }
    }
}

/// `[dedup]`: a hash submitted within `ttl` is not submitted again.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DedupConfig {
    pub enabled: bool,
    #[serde(with = "duration")]
    pub ttl: Duration,
    /// Hashes remembered (least recently submitted forgotten first); about 64 bytes each.
    pub capacity: usize,
    /// Where the remembered hashes are saved on clean shutdown and loaded at start.
    pub state_file: Option<PathBuf>,
}

impl Default for DedupConfig {
    fn default() -> Self {
        DedupConfig {
            enabled: true,
            ttl: Duration::from_secs(24 * 3600),
            capacity: 1_000_000,
            state_file: None,
        }
    }
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WebhookFormat {
    /// One POST per batch: a JSON array of items.
    #[default]
    Batch,
    /// One POST per file: `{"md5": "..."}` (for APIs that take a single hash).
    Md5,
}

impl WebhookFormat {
    pub fn parse(s: &str) -> Result<WebhookFormat, ConfigError> {
        match s {
            "batch" => Ok(WebhookFormat::Batch),
            "md5" => Ok(WebhookFormat::Md5),
            other => Err(ConfigError::WebhookFormat(other.to_string())),
        }
    }
}

/// `[webhook]`: where and how submissions are POSTed. The token is not a setting here: it is read
/// from `token_file` (or the environment) so that it never sits in a config file or a dump.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhookConfig {
    /// `http://` or `https://` URL; unset disables submission (files are still logged).
    pub url: Option<String>,
    /// File whose content (one trailing newline stripped) is sent verbatim as `Authorization`.
    pub token_file: Option<PathBuf>,
    pub format: WebhookFormat,
    /// A batch is sent when it holds this many items...
    pub batch_max_items: usize,
    /// ...or when its oldest item has waited this long.
    #[serde(with = "duration")]
    pub batch_max_delay: Duration,
    /// One request's deadline (connect + send + response head).
    #[serde(with = "duration")]
    pub request_timeout: Duration,
    /// First retry delay; doubled per attempt up to `retry_max_delay`, with jitter.
    #[serde(with = "duration")]
    pub retry_initial_delay: Duration,
    #[serde(with = "duration")]
    pub retry_max_delay: Duration,
    /// Batches waiting in memory when there is no spill journal (with one, batches are written
    /// ahead to it); past this they are dropped, counted.
    pub memory_batches: usize,
    /// Submissions of files a pipeline takes wait for its chain and carry its verdicts (`scan`,
    /// `verdict`, `verdicts`); without it they go at once and verdicts are only in the scans log.
    pub include_verdicts: bool,
    /// At shutdown, how long to keep delivering before the rest is written to the journal.
    #[serde(with = "duration")]
    pub drain_timeout: Duration,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        WebhookConfig {
            url: None,
            token_file: None,
            format: WebhookFormat::Batch,
            batch_max_items: 100,
            batch_max_delay: Duration::from_millis(1000),
            request_timeout: Duration::from_secs(10),
            retry_initial_delay: Duration::from_millis(200),
            retry_max_delay: Duration::from_secs(30),
            memory_batches: 64,
            include_verdicts: false,
            drain_timeout: Duration::from_secs(10),
        }
    }
}

/// How hard the journal pushes appended batches to disk.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FsyncPolicy {
    /// Group commit: fdatasync whenever the egress thread runs out of work and at least every
    /// 50 ms while it is busy. A machine crash loses at most the last 50 ms of appended batches.
    #[default]
    Group,
    /// Leave it to the kernel; a machine crash can lose the last seconds of spilled batches.
    Never,
}

/// `[spill]`: the on-disk journal batches go to when the receiver is down or slow.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SpillConfig {
    /// Journal directory; unset means no journal (batches past `memory_batches` are dropped, counted).
    pub dir: Option<PathBuf>,
    /// Bound on the journal's size on disk; past it new batches are dropped (counted, logged).
    pub max_bytes: u64,
    pub fsync: FsyncPolicy,
}

impl Default for SpillConfig {
    fn default() -> Self {
        SpillConfig {
            dir: None,
            max_bytes: 1 << 30,
            fsync: FsyncPolicy::Group,
        }
    }
}

/// `[fleet]`: many sensors sharing one dedup and one event stream on Redis (see `crate::fleet`).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FleetConfig {
    /// `redis://host:6379` (or `rediss://` for TLS); several comma-separated URLs are the seed
    /// nodes of a Redis Cluster. Unset: no fleet (dedup and records stay local).
    pub redis: Option<String>,
    /// Treat a single URL as a Redis Cluster seed node too.
    pub cluster: bool,
    /// File holding the Redis password (AUTH), first line; never on the command line.
    pub password_file: Option<PathBuf>,
    /// Username for Redis ACLs (with `password_file`); unset is the default user.
    pub username: Option<String>,
    /// PEM file of the CA that signed the server's certificate, for `rediss://` (default: the
    /// web's root CAs).
    pub tls_ca_file: Option<PathBuf>,
    /// The stream every record is added to.
    pub stream: String,
    /// Approximate bound on the stream's length (`XADD ... MAXLEN ~ N`).
    pub stream_maxlen: u64,
    /// How long a sensor's claim on a hash holds while it submits; a claimer whose delivery
    /// fails lets it lapse, and another sensor may then submit.
    #[serde(with = "duration")]
    pub lease: Duration,
    /// How long sightings of a hash (`xdpcarve:{sha256}:seen`) are kept after the last one.
    #[serde(with = "duration")]
    pub seen_ttl: Duration,
    /// A Redis call slower than this counts as a failure: Redis is taken as down and the sensor
    /// decides locally until it answers again.
    #[serde(with = "duration")]
    pub timeout: Duration,
    /// Longest wait between reconnection attempts (the wait doubles from 100 ms up to this).
    #[serde(with = "duration")]
    pub reconnect_max_delay: Duration,
    /// Records that wait in memory for the stream without `spill.dir` (past it they are lost,
    /// counted). With `spill.dir` they wait in `<spill.dir>/stream/`, bounded by `spill.max_bytes`.
    pub memory_records: usize,
}

impl Default for FleetConfig {
    fn default() -> Self {
        FleetConfig {
            redis: None,
            cluster: false,
            password_file: None,
            username: None,
            tls_ca_file: None,
            stream: "xdpcarve:files".into(),
            stream_maxlen: 1_000_000,
            lease: Duration::from_secs(30),
            seen_ttl: Duration::from_secs(7 * 86400),
            timeout: Duration::from_millis(500),
            reconnect_max_delay: Duration::from_secs(5),
            memory_records: 100_000,
        }
    }
}

impl FleetConfig {
    /// The URLs of `redis`, trimmed, in order.
    pub fn urls(&self) -> Vec<String> {
        self.redis
            .as_deref()
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .map(String::from)
            .collect()
    }

    /// Several seed nodes, or `cluster = true`.
    pub fn is_cluster(&self) -> bool {
        self.cluster || self.urls().len() > 1
    }
}

/// `[metrics]`: the Prometheus endpoint.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// `host:port` to serve `/metrics` on; unset disables the endpoint.
    pub addr: Option<SocketAddr>,
    /// Keep serving this long after the run has finished (lets a scraper read final values of a
    /// `--read` run).
    #[serde(with = "duration")]
    pub linger: Duration,
    /// The address was asked for (flag or config file): failing to listen on it is an error. The
    /// built-in default only warns, so a second sensor on the box still runs.
    #[serde(skip)]
    pub addr_required: bool,
}

pub const DEFAULT_METRICS_ADDR: &str = "127.0.0.1:9400";

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            addr: Some(DEFAULT_METRICS_ADDR.parse().expect("valid address")),
            linger: Duration::ZERO,
            addr_required: false,
        }
    }
}

/// `[queue]`: the lock-free queues from the workers to the egress thread.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueueConfig {
    /// Records each worker's queue holds.
    pub capacity: usize,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig { capacity: 8192 }
    }
}

/// A setting the egress side cannot work with. Each message names the key to fix; the causes
/// (a URL parser's or regex compiler's complaint) are kept as sources, not repeated in the text.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("webhook.url `{url}`: not a valid URL")]
    WebhookUrl {
        url: String,
        #[source]
        source: http::uri::InvalidUri,
    },
    #[error("webhook.url `{0}`: must start with http:// or https://")]
    WebhookUrlScheme(String),
    #[error("webhook.url `{0}`: no host")]
    WebhookUrlHost(String),
    #[error("unknown webhook format `{0}`: choose batch or md5")]
    WebhookFormat(String),
    #[error("webhook.batch_max_items = {0}: must be 1..=100000")]
    BatchMaxItems(usize),
    #[error("webhook.memory_batches = 0: must be at least 1")]
    MemoryBatches,
    #[error("webhook.request_timeout: must be more than 0")]
    RequestTimeout,
    #[error("webhook.retry_initial_delay: must be more than 0 and at most webhook.retry_max_delay")]
    RetryInitialDelay,
    #[error("dedup.capacity = 0: must be at least 1 (or set dedup.enabled = false)")]
    DedupCapacity,
    #[error("dedup.ttl: must be more than 0 (or set dedup.enabled = false)")]
    DedupTtl,
    #[error("policy.max_size = {max}: less than policy.min_size = {min}")]
    PolicySizes { max: u64, min: u64 },
    /// A type list of `[policy]` does not compile; the message names the list and the entry.
    #[error(transparent)]
    Policy(#[from] crate::policy::PolicyError),
    #[error("spill.max_bytes = {0}: must be at least 65536")]
    SpillMaxBytes(u64),
    #[error("queue.capacity = {0}: must be at least 2")]
    QueueCapacity(usize),
    #[error("files_log.path: empty (use `-` for standard output)")]
    FilesLogPathEmpty,
    #[error("fleet.redis `{0}`: must start with redis:// or rediss://")]
    FleetUrl(String),
    #[error("fleet.redis: empty (unset it for no fleet)")]
    FleetUrlEmpty,
    #[error(
        "fleet.redis: a URL carries a password, which would show in `ps`, shell history and logs; \
         put it in fleet.password_file (mode 0600) and drop it from the URL"
    )]
    FleetUrlPassword,
    #[error("fleet.{0}: must be more than 0")]
    FleetZero(&'static str),
    #[error("fleet.stream: empty")]
    FleetStream,
}

impl EgressConfig {
    /// Checks what serde cannot; each error names the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let w = &self.webhook;
        if let Some(url) = &w.url {
            let uri: http::Uri = url.parse().map_err(|source| ConfigError::WebhookUrl {
                url: url.clone(),
                source,
            })?;
            match uri.scheme_str() {
                Some("http") | Some("https") => {}
                _ => return Err(ConfigError::WebhookUrlScheme(url.clone())),
            }
            if uri.host().is_none() {
                return Err(ConfigError::WebhookUrlHost(url.clone()));
            }
        }
        if w.batch_max_items == 0 || w.batch_max_items > 100_000 {
            return Err(ConfigError::BatchMaxItems(w.batch_max_items));
        }
        if w.memory_batches == 0 {
            return Err(ConfigError::MemoryBatches);
        }
        if w.request_timeout.is_zero() {
            return Err(ConfigError::RequestTimeout);
        }
        if w.retry_initial_delay.is_zero() || w.retry_initial_delay > w.retry_max_delay {
            return Err(ConfigError::RetryInitialDelay);
        }
        if self.dedup.enabled && self.dedup.capacity == 0 {
            return Err(ConfigError::DedupCapacity);
        }
        if self.dedup.ttl.is_zero() && self.dedup.enabled {
            return Err(ConfigError::DedupTtl);
        }
        if let Some(max) = self.policy.max_size {
            if max < self.policy.min_size {
                return Err(ConfigError::PolicySizes {
                    max,
                    min: self.policy.min_size,
                });
            }
        }
        crate::policy::Policy::new(&self.policy)?;
        if self.spill.dir.is_some() && self.spill.max_bytes < 64 << 10 {
            return Err(ConfigError::SpillMaxBytes(self.spill.max_bytes));
        }
        if self.queue.capacity < 2 {
            return Err(ConfigError::QueueCapacity(self.queue.capacity));
        }
        if let Some(p) = &self.files_log.path {
            if p.is_empty() {
                return Err(ConfigError::FilesLogPathEmpty);
            }
        }
        self.fleet.validate()
    }
}

/// `redis://user:secret@host` or `redis://:secret@host`: the userinfo has a `:`.
fn url_has_password(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    authority
        .rsplit_once('@')
        .is_some_and(|(userinfo, _)| userinfo.contains(':'))
}

impl FleetConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        if self.redis.is_none() {
            return Ok(());
        }
        let urls = self.urls();
        if urls.is_empty() {
            return Err(ConfigError::FleetUrlEmpty);
        }
        if let Some(u) = urls
            .iter()
            .find(|u| !(u.starts_with("redis://") || u.starts_with("rediss://")))
        {
            return Err(ConfigError::FleetUrl(u.clone()));
        }
        if urls.iter().any(|u| url_has_password(u)) {
            return Err(ConfigError::FleetUrlPassword);
        }
        for (name, d) in [
            ("lease", self.lease),
            ("timeout", self.timeout),
            ("seen_ttl", self.seen_ttl),
            ("reconnect_max_delay", self.reconnect_max_delay),
        ] {
            if d.is_zero() {
                return Err(ConfigError::FleetZero(name));
            }
        }
        if self.stream_maxlen == 0 {
            return Err(ConfigError::FleetZero("stream_maxlen"));
        }
        if self.memory_records == 0 {
            return Err(ConfigError::FleetZero("memory_records"));
        }
        if self.stream.is_empty() {
            return Err(ConfigError::FleetStream);
        }
        Ok(())
    }
}

/// Serde for durations as humantime strings, shared with the scanners' settings.
pub use xdpcarve_contract::time::{duration, opt_duration};
