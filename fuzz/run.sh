#!/usr/bin/env bash
# Runs the fuzz targets: `fuzz/run.sh [SECONDS] [TARGET...]` (default: 20 s each, every target),
# or `fuzz/run.sh --planted`: a test-only build with a bug planted in the base64 decoder
# (`--cfg xdpcarve_planted_bug`), which the fuzzer must find within 120 s; proves the harness
# reaches the real code and reports what it finds.
#
# Needs cargo-fuzz (`cargo install cargo-fuzz --locked`); builds with libFuzzer and no sanitizer,
# which works on a stable toolchain. Seeds: fuzz/corpus/<target>/ (committed: inputs that once
# crashed, kept as regressions) and what fuzz/seeds.py writes from bench/samples and
# ../shared/corpus; new inputs go to a scratch directory. engine_frames also gets the HTTP, SMTP and
# MIME tokens of dict/protocols.dict. A crash ends the run with status 1, the
# input saved under fuzz/artifacts/<target>/.
set -euo pipefail
cd "$(dirname "$0")"
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz/run.sh: cargo-fuzz is not installed (cargo install cargo-fuzz --locked)" >&2
    exit 2
fi
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
python3 seeds.py target/seeds 2>/dev/null

# Runs one target; its libFuzzer output goes to $scratch/$t.log. Returns libFuzzer's status.
fuzz_one() {
    local t="$1" secs="$2" dir="$3"
    shift 3
    mkdir -p "$scratch/$t" "corpus/$t" "target/seeds/$t"
    local status=0
    cargo fuzz run --sanitizer none -O --target-dir "$dir" "$t" "$scratch/$t" "corpus/$t" "target/seeds/$t" -- \
        -max_total_time="$secs" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 "$@" \
        >"$scratch/$t.log" 2>&1 || status=$?
    grep -E "^stat::(number_of_executed_units|average_exec_per_sec|peak_rss_mb)|panicked at|Test unit written|^SUMMARY" \
        "$scratch/$t.log" || true
    return "$status"
}

if [ "${1:-}" = "--planted" ]; then
    echo "== fuzz: the planted bug (base64 decoder, test-only build)"
    RUSTFLAGS="--cfg xdpcarve_planted_bug" cargo fuzz build --sanitizer none -O --target-dir target/planted decoders \
        >"$scratch/build.log" 2>&1 || { cat "$scratch/build.log"; exit 1; }
    if RUSTFLAGS="--cfg xdpcarve_planted_bug" fuzz_one decoders 120 target/planted -use_value_profile=1; then
        echo "fuzz/run.sh: the planted bug was NOT found: the harness does not reach the decoder" >&2
        exit 1
    fi
    if ! grep -q "planted bug reached" "$scratch/decoders.log"; then
        echo "fuzz/run.sh: the run failed, but not on the planted bug:" >&2
        tail -20 "$scratch/decoders.log" >&2
        exit 1
    fi
    rm -rf artifacts/decoders
    echo "fuzz: the planted bug was found"
    exit 0
fi

secs="${1:-20}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(engine_frames tcp_segments http_messages smtp_session capture_file decoders)
fi
cargo fuzz build --sanitizer none -O >"$scratch/build.log" 2>&1 || { cat "$scratch/build.log"; exit 1; }
for t in "${targets[@]}"; do
    echo "== fuzz $t for ${secs}s"
    # The engine target parses HTTP, SMTP and MIME: their tokens help it past the first bytes.
    dict=()
    if [ "$t" = engine_frames ]; then
        dict=(-dict=dict/protocols.dict)
    fi
    if ! fuzz_one "$t" "$secs" target "${dict[@]}"; then
        echo "fuzz/run.sh: $t failed (a crash, a leak past the bound, or a timeout): see fuzz/artifacts/$t/" >&2
        tail -30 "$scratch/$t.log" >&2
        exit 1
    fi
done
