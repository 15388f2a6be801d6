#!/usr/bin/env bash
# The one command that runs every test: installs missing test tools, then the whole workspace's tests
# in release mode (the binary the end-to-end tests run is the one that is benchmarked and shipped).
set -euo pipefail
cd "$(dirname "$0")/.."

bash tests/setup.sh
cargo test --release --workspace
