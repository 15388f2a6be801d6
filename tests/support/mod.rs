//! Helpers shared by the end-to-end tests (included by each test file with `mod support;`).
#![allow(dead_code)]

use std::path::PathBuf;

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("repo root")
}

/// `../shared/corpus`, next to the repository.
pub fn corpus_dir() -> PathBuf {
    repo_root().join("../shared/corpus")
}

/// The binary under test.
pub fn xdpcarve_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_xdpcarve"))
}

pub mod carve;
pub mod clamd;
pub mod content;
pub mod flood;
pub mod live;
pub mod netns;
pub mod pcap;
pub mod receiver;
pub mod redis;
pub mod rss;

/// A script shipped in tests/support/, as a path string for a command line.
pub fn support_script(name: &str) -> String {
    repo_root()
        .join("tests/support")
        .join(name)
        .to_str()
        .expect("utf-8 path")
        .to_string()
}

/// Lowercase hex SHA-256, as `sha256sum` prints it.
pub fn sha256_hex(data: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(data).iter().map(|b| format!("{b:02x}")).collect()
}
