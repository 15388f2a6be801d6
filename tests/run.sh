#!/usr/bin/env bash
# The one command that runs every test: installs missing test tools, checks the source (format,
# clippy, unsafe and dependency hygiene), then the whole workspace's tests in release mode (the
# binary the end-to-end tests run is the one that is benchmarked and shipped), then a short fuzz
# smoke run (fuzz/run.sh) that must also find a bug planted in a test-only build. The tests build
# with the `yara` feature (yara-x, in-process YARA scanners).
set -euo pipefail
cd "$(dirname "$0")/.."

bash tests/setup.sh

echo "== source gates"
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings
python3 tests/check_source.py

echo "== tests (with the yara feature: in-process YARA scanners, a long first build)"
cargo test --release --workspace --locked --features xdpcarve/yara

echo "== fuzz smoke (every target 20 s over its seeds, then the planted bug must be found)"
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "installing cargo-fuzz (cargo install cargo-fuzz --locked)"
    cargo install cargo-fuzz --locked >/dev/null 2>&1 || true
fi
if cargo fuzz --version >/dev/null 2>&1; then
    bash fuzz/run.sh 20
    bash fuzz/run.sh --planted
else
    echo "SKIPPED: fuzz smoke: cargo-fuzz is not installed and could not be installed (cargo install cargo-fuzz --locked)"
fi
