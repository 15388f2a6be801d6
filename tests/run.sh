#!/usr/bin/env bash
# The one command that runs every test: installs missing test tools, checks the source (format,
# clippy, unsafe and dependency hygiene), then the whole workspace's tests in release mode (the
# binary the end-to-end tests run is the one that is benchmarked and shipped).
set -euo pipefail
cd "$(dirname "$0")/.."

bash tests/setup.sh

echo "== source gates"
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings
python3 tests/check_source.py

echo "== tests"
cargo test --release --workspace --locked
