//! The loopback webhook receiver (tests/support/receiver.py) as a test drives it: started on a
//! port (0: any free one), killed on drop; every request it answered is a JSON line of its log.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use serde_json::Value;

pub struct Receiver {
    child: Child,
    pub port: u16,
    log: PathBuf,
}

impl Receiver {
    pub fn start(port: u16, log: &Path) -> Receiver {
        Receiver::start_with(port, log, &[])
    }

    /// With receiver.py's options (`--status CODE`, `--fail-first N`).
    pub fn start_with(port: u16, log: &Path, options: &[&str]) -> Receiver {
        let mut child = Command::new("python3")
            .arg(super::repo_root().join("tests/support/receiver.py"))
            .arg(port.to_string())
            .arg(log)
            .args(options)
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 runs the receiver");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .strip_prefix("READY ")
            .expect("receiver says READY")
            .parse()
            .unwrap();
        Receiver {
            child,
            port,
            log: log.to_path_buf(),
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/api/submit", self.port)
    }

    /// Every request it received, as logged.
    pub fn requests(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// Every item of the batches it answered 200.
    pub fn items(&self) -> Vec<Value> {
        let mut out = Vec::new();
        for r in self.requests().iter().filter(|r| r["answered"] == 200) {
            let items: Vec<Value> = serde_json::from_str(r["body"].as_str().unwrap()).unwrap();
            out.extend(items);
        }
        out
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
