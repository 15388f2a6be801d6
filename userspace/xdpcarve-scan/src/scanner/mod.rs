//! The scanners a pipeline hands a stored file to. Each kind answers with a [`ToolResult`]; none
//! ever blocks the thread it is called on (YARA runs on tokio's blocking pool, the others are I/O),
//! and each run is bounded by the scanner's `timeout`: a tool that overruns it is stopped (a child
//! process is killed) and its result is [`Verdict::Timeout`].

pub mod clamd;
pub mod command;
pub mod http;
#[cfg(feature = "yara")]
pub mod yara;

use crate::config::{ScannerConfig, ScannerKind};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use xdpcarve_contract::{FileRecord, Verdict};

/// What one scanner said of one file: a line of the scans log's `results`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ToolResult {
    pub scanner: String,
    /// `yara`, `clamd`, `command` or `http`.
    pub kind: String,
    pub verdict: Verdict,
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub signatures: Vec<String>,
    /// What the tool said besides (its own words), or why it failed.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub detail: Option<String>,
    /// Seconds the run took, queueing for the scanner's concurrency not included.
    pub duration: f64,
}

/// The answer of a scanner before it is named and timed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    pub verdict: Verdict,
    pub signatures: Vec<String>,
    pub detail: Option<String>,
}

impl Answer {
    pub fn clean() -> Answer {
        Answer {
            verdict: Verdict::Clean,
            signatures: Vec::new(),
            detail: None,
        }
    }

    pub fn error(why: impl Into<String>) -> Answer {
        Answer {
            verdict: Verdict::Error,
            signatures: Vec::new(),
            detail: Some(why.into()),
        }
    }

    pub fn flagged(verdict: Verdict, signatures: Vec<String>) -> Answer {
        Answer {
            verdict,
            signatures,
            detail: None,
        }
    }
}

/// The verdict a command or HTTP scanner may print (README, "Scanners"): one JSON object,
/// `{"verdict": "clean"|"suspicious"|"malicious", "signatures": [..], "detail": ".."}`; only
/// `verdict` is required.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrintedVerdict {
    pub verdict: String,
    #[serde(default)]
    pub signatures: Vec<String>,
    #[serde(default)]
    pub detail: Option<String>,
}

impl PrintedVerdict {
    /// Parses a printed verdict; anything else is an error answer saying what was wrong.
    pub fn parse(text: &[u8]) -> Answer {
        let printed: PrintedVerdict = match serde_json::from_slice(text) {
            Ok(p) => p,
            Err(e) => return Answer::error(format!("the verdict JSON does not parse: {e}")),
        };
        match Verdict::parse(&printed.verdict) {
            Some(v @ (Verdict::Clean | Verdict::Suspicious | Verdict::Malicious)) => Answer {
                verdict: v,
                signatures: printed.signatures,
                detail: printed.detail,
            },
            _ => Answer::error(format!(
                "verdict `{}` is not one of clean, suspicious, malicious",
                printed.verdict
            )),
        }
    }
}

/// A configured scanner, ready to run.
pub struct Scanner {
    pub name: String,
    pub timeout: Duration,
    /// Runs at once at most (`concurrency`).
    pub slots: Arc<tokio::sync::Semaphore>,
    engine: Engine,
}

enum Engine {
    #[cfg(feature = "yara")]
    Yara(yara::YaraScanner),
    Clamd(clamd::Clamd),
    Command(command::Command),
    Http(Box<http::HttpScanner>),
}

/// A scanner's setting that does not work; says which scanner and what to do.
#[derive(Debug, thiserror::Error)]
pub enum ScannerError {
    #[error("scanners.{name}: {why}")]
    Invalid { name: String, why: String },
    #[cfg(feature = "yara")]
    #[error("scanners.{name}: the YARA rules {path} do not compile: {why}")]
    Rules {
        name: String,
        path: std::path::PathBuf,
        why: String,
    },
}

impl Scanner {
    /// Builds the scanner `name` (compiles YARA rules, checks the rest).
    pub fn new(name: &str, cfg: &ScannerConfig) -> Result<Scanner, ScannerError> {
        let invalid = |why: String| ScannerError::Invalid {
            name: name.to_owned(),
            why,
        };
        if cfg.concurrency == 0 {
            return Err(invalid("concurrency must be at least 1".into()));
        }
        if cfg.timeout.is_zero() {
            return Err(invalid("timeout must be more than 0s".into()));
        }
        let engine = match cfg.kind().map_err(invalid)? {
            #[cfg(feature = "yara")]
            ScannerKind::Yara { rules } => Engine::Yara(yara::YaraScanner::load(name, &rules)?),
            #[cfg(not(feature = "yara"))]
            ScannerKind::Yara { .. } => {
                return Err(invalid(
                    "kind = \"yara\" needs a build with YARA (cargo build --release --features yara)".into(),
                ))
            }
            ScannerKind::Clamd { socket } => Engine::Clamd(clamd::Clamd::new(socket)),
            ScannerKind::Command { argv } => Engine::Command(command::Command::new(&argv).map_err(invalid)?),
            ScannerKind::Http { url, send, token_file } => Engine::Http(Box::new(
                http::HttpScanner::new(&url, send, token_file.as_deref()).map_err(invalid)?,
            )),
        };
        Ok(Scanner {
            name: name.to_owned(),
            timeout: cfg.timeout,
            slots: Arc::new(tokio::sync::Semaphore::new(cfg.concurrency)),
            engine,
        })
    }

    pub fn kind(&self) -> &'static str {
        match self.engine {
            #[cfg(feature = "yara")]
            Engine::Yara(_) => "yara",
            Engine::Clamd(_) => "clamd",
            Engine::Command(_) => "command",
            Engine::Http(_) => "http",
        }
    }

    /// Scans the stored file at `path` of record `rec`, within the scanner's timeout. Waits for a
    /// free slot first (not counted in the duration).
    pub async fn scan(&self, path: &Path, rec: &FileRecord) -> ToolResult {
        let _slot = self.slots.acquire().await;
        let started = Instant::now();
        let run = async {
            match &self.engine {
                #[cfg(feature = "yara")]
                Engine::Yara(y) => y.scan(path).await,
                Engine::Clamd(c) => c.scan(path).await,
                Engine::Command(c) => c.scan(path).await,
                Engine::Http(h) => h.scan(path, rec).await,
            }
        };
        // Dropping the run at the timeout kills a child process (kill_on_drop) and closes sockets.
        let answer = match tokio::time::timeout(self.timeout, run).await {
            Ok(a) => a,
            Err(_) => Answer {
                verdict: Verdict::Timeout,
                signatures: Vec::new(),
                detail: Some(format!("no answer within {}", humantime::format_duration(self.timeout))),
            },
        };
        ToolResult {
            scanner: self.name.clone(),
            kind: self.kind().to_owned(),
            verdict: answer.verdict,
            signatures: answer.signatures,
            detail: answer.detail,
            duration: started.elapsed().as_secs_f64(),
        }
    }

    /// Reloads what can be reloaded (YARA rules, on SIGHUP); work in flight keeps the old rules.
    pub async fn reload(&self) {
        #[cfg(feature = "yara")]
        if let Engine::Yara(y) = &self.engine {
            y.reload(&self.name).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printed_verdicts_parse_or_say_what_is_wrong() {
        let a = PrintedVerdict::parse(br#"{"verdict":"malicious","signatures":["Evil.A"],"detail":"x"}"#);
        assert_eq!(
            (a.verdict, a.signatures, a.detail.as_deref()),
            (Verdict::Malicious, vec!["Evil.A".to_string()], Some("x"))
        );
        assert_eq!(PrintedVerdict::parse(br#"{"verdict":"clean"}"#), Answer::clean());
        for bad in [
            &br#"{"verdict":"timeout"}"#[..],
            b"not json",
            br#"{"verdict":"clean","x":1}"#,
        ] {
            let a = PrintedVerdict::parse(bad);
            assert_eq!(a.verdict, Verdict::Error, "{}", String::from_utf8_lossy(bad));
            assert!(a.detail.is_some());
        }
    }
}
