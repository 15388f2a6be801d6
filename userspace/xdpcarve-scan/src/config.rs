//! The store and scanner settings: `[store]`, `[scan]`, `[scanners.NAME]`, `[[pipelines]]` and
//! `[actions]` of the config file (README, "Scanners"). Unknown keys are errors naming the key.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;
use xdpcarve_contract::time::duration;

/// Everything of this crate's, as the binary assembles it from the config file and its flags.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScanConfig {
    pub store: StoreConfig,
    pub scan: ScanSection,
    pub scanners: BTreeMap<String, ScannerConfig>,
    pub pipelines: Vec<PipelineConfig>,
    pub actions: ActionsConfig,
}

/// Which files' bytes are kept after they are hashed.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Keep {
    /// Delete files whose chain finished with every scanner saying clean (the default: scan,
    /// alert, delete); files no chain ran on are kept.
    #[default]
    Flagged,
    /// Keep every stored file (until the quota evicts it).
    All,
    /// Delete every file once its chain finished, whatever the verdict.
    None,
}

/// `[store]`
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// Where files are kept (`--store-dir`); unset keeps nothing (and pipelines cannot run).
    pub dir: Option<PathBuf>,
    /// Regex over the sniffed `mime_type` (whole, case-insensitive): files stored even when no
    /// pipeline wants them. Files a pipeline wants are always stored.
    #[serde(rename = "match")]
    pub match_: Option<String>,
    pub keep: Keep,
    /// Bytes the store may hold; the oldest files are evicted first.
    pub max_bytes: u64,
    /// Files the store may hold; the oldest files are evicted first.
    pub max_files: u64,
    /// Also keep files with missing bytes (holes left as zeros) or cut at the size limit, named
    /// `incomplete/<fuid>` since they have no hash.
    pub incomplete: bool,
}

impl ScanConfig {
    /// The types the store keeps: `store.match` and every pipeline's `match`.
    pub fn stored_types(&self) -> Vec<String> {
        self.store
            .match_
            .iter()
            .cloned()
            .chain(self.pipelines.iter().map(|p| p.match_.clone()))
            .collect()
    }
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            dir: None,
            match_: None,
            keep: Keep::Flagged,
            max_bytes: 10 << 30,
            max_files: 100_000,
            incomplete: false,
        }
    }
}

/// `[scan]`
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScanSection {
    /// Files waiting for or in their chain at most; past it a file is `skipped_queue_full`.
    pub queue: usize,
    /// How long the end of a run waits for chains still running; the rest are logged as
    /// `skipped_drain_timeout`.
    #[serde(with = "duration")]
    pub drain_timeout: Duration,
    /// The scans log (`--scans-log`): one JSON line per file a pipeline took; `-` is stdout.
    pub scans_log: Option<PathBuf>,
    /// The alerts log (`--alerts-log`): one JSON line per malicious or suspicious file.
    pub alerts_log: Option<PathBuf>,
}

impl Default for ScanSection {
    fn default() -> Self {
        ScanSection {
            queue: 64,
            drain_timeout: Duration::from_secs(30),
            scans_log: None,
            alerts_log: None,
        }
    }
}

/// What is sent to an `http` scanner.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Send {
    /// A JSON object with the file's hashes, size and types (a reputation lookup).
    #[default]
    Hash,
    /// The file's bytes (a sandbox).
    File,
}

/// `[scanners.NAME]`: `kind` picks the tool and which other keys it takes; `concurrency` and
/// `timeout` apply to every kind. Flat, so that a key unknown to every kind is rejected by name;
/// [`ScannerConfig::kind`] rejects one that belongs to another kind.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScannerConfig {
    /// `yara`, `clamd`, `command` or `http`.
    pub kind: String,
    /// yara: the rules file (compiled once, reloaded on SIGHUP).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rules: Option<PathBuf>,
    /// clamd: its Unix socket (INSTREAM).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub socket: Option<PathBuf>,
    /// command: the program and its arguments, `{path}` replaced by the stored file's path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub argv: Option<Vec<String>>,
    /// http: where to POST.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// http: `hash` (default) or `file`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub send: Option<Send>,
    /// http: its content (one trailing newline stripped) is sent as `Authorization`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_file: Option<PathBuf>,
    /// Files this scanner works on at once.
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// A run longer than this is stopped (a child killed) and is a `timeout` verdict.
    #[serde(with = "duration", default = "default_timeout")]
    pub timeout: Duration,
}

fn default_concurrency() -> usize {
    1
}

fn default_timeout() -> Duration {
    Duration::from_secs(30)
}

/// A scanner's kind with the settings it needs.
#[derive(Clone, Debug)]
pub enum ScannerKind {
    Yara {
        rules: PathBuf,
    },
    Clamd {
        socket: PathBuf,
    },
    /// Never a shell. Verdict from its JSON on stdout, else its exit status (0 clean, 1 malicious).
    Command {
        argv: Vec<String>,
    },
    Http {
        url: String,
        send: Send,
        token_file: Option<PathBuf>,
    },
}

impl ScannerConfig {
    /// The kind and its settings, or what is wrong (a missing key, one of another kind).
    pub fn kind(&self) -> Result<ScannerKind, String> {
        let set: Vec<&str> = [
            ("rules", self.rules.is_some()),
            ("socket", self.socket.is_some()),
            ("argv", self.argv.is_some()),
            ("url", self.url.is_some()),
            ("send", self.send.is_some()),
            ("token_file", self.token_file.is_some()),
        ]
        .into_iter()
        .filter_map(|(k, on)| on.then_some(k))
        .collect();
        let (kind, takes): (ScannerKind, &[&str]) = match self.kind.as_str() {
            "yara" => (
                ScannerKind::Yara {
                    rules: self.rules.clone().ok_or("kind = \"yara\" needs `rules = \"PATH\"`")?,
                },
                &["rules"],
            ),
            "clamd" => (
                ScannerKind::Clamd {
                    socket: self
                        .socket
                        .clone()
                        .ok_or("kind = \"clamd\" needs `socket = \"PATH\"` (clamd's LocalSocket)")?,
                },
                &["socket"],
            ),
            "command" => (
                ScannerKind::Command {
                    argv: self
                        .argv
                        .clone()
                        .ok_or("kind = \"command\" needs `argv = [\"tool\", \"{path}\"]`")?,
                },
                &["argv"],
            ),
            "http" => (
                ScannerKind::Http {
                    url: self.url.clone().ok_or("kind = \"http\" needs `url = \"...\"`")?,
                    send: self.send.unwrap_or_default(),
                    token_file: self.token_file.clone(),
                },
                &["url", "send", "token_file"],
            ),
            other => return Err(format!("kind = \"{other}\" is not one of yara, clamd, command, http")),
        };
        if let Some(extra) = set.iter().find(|k| !takes.contains(k)) {
            return Err(format!("`{extra}` is not a setting of kind = \"{}\"", self.kind));
        }
        Ok(kind)
    }
}

/// `[[pipelines]]`: files whose sniffed type matches go through `scanners` in order.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineConfig {
    /// Regex over `mime_type` (whole, case-insensitive); the first pipeline that matches a file
    /// takes it. `.*` takes everything (files of no sniffed type match as the empty string).
    #[serde(rename = "match")]
    pub match_: String,
    pub scanners: Vec<String>,
    /// Stop the chain at the first verdict at least this bad (`malicious` or `suspicious`).
    #[serde(default)]
    pub stop_on: Option<String>,
    /// A name for the scans log (default: the position, `pipeline0`...).
    #[serde(default)]
    pub name: Option<String>,
}

/// `[actions]`
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ActionsConfig {
    /// Run on a malicious verdict with the file's record (and its verdicts) as JSON on stdin:
    /// `["/usr/local/sbin/block", "--by-record"]`. Never a shell.
    pub on_malicious: Vec<String>,
    /// An action still running after this is killed.
    #[serde(with = "duration")]
    pub timeout: Duration,
}

impl Default for ActionsConfig {
    fn default() -> Self {
        ActionsConfig {
            on_malicious: Vec::new(),
            timeout: Duration::from_secs(10),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_config_parses() {
        let cfg: ScanConfig = toml_like(
            r#"{"store":{"dir":"/s","keep":"flagged","match":"application/pdf"},
                "scan":{"queue":4,"drain_timeout":"5s"},
                "scanners":{"clam":{"kind":"clamd","socket":"/run/clamd.ctl"},
                            "slow":{"kind":"command","argv":["sleep","1"],"timeout":"2s","concurrency":3},
                            "intel":{"kind":"http","url":"http://127.0.0.1:1/","send":"file"}},
                "pipelines":[{"match":"application/pdf","scanners":["clam","slow"],"stop_on":"malicious"}],
                "actions":{"on_malicious":["/bin/true"]}}"#,
        );
        assert_eq!(cfg.scan.queue, 4);
        assert_eq!(cfg.scanners["slow"].concurrency, 3);
        assert_eq!(cfg.scanners["clam"].timeout, Duration::from_secs(30));
        assert!(matches!(
            cfg.scanners["intel"].kind(),
            Ok(ScannerKind::Http { send: Send::File, .. })
        ));
        assert_eq!(cfg.pipelines[0].stop_on.as_deref(), Some("malicious"));
    }

    #[test]
    fn unknown_keys_and_kinds_are_errors() {
        for bad in [
            r#"{"scanners":{"c":{"kind":"clamd","socket":"/x","sockt":"/y"}}}"#,
            r#"{"store":{"kep":"all"}}"#,
        ] {
            assert!(serde_json::from_str::<ScanConfig>(bad).is_err(), "{bad}");
        }
        for (bad, why) in [
            (r#"{"kind":"antivirus"}"#, "is not one of"),
            (r#"{"kind":"clamd"}"#, "needs `socket"),
            (
                r#"{"kind":"clamd","socket":"/x","rules":"/r"}"#,
                "`rules` is not a setting",
            ),
        ] {
            let c: ScannerConfig = serde_json::from_str(bad).unwrap();
            assert!(c.kind().unwrap_err().contains(why), "{bad}");
        }
    }

    fn toml_like(json: &str) -> ScanConfig {
        serde_json::from_str(json).unwrap()
    }
}
