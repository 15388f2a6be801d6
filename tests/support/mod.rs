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
pub mod live;
pub mod netns;
