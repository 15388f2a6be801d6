#!/usr/bin/env bash
# Offline on every core: `xdpcarve -r` with one worker and with one per core, on the same
# generated capture of 16 downloads at once (128 files of 1 MiB, Content-Length), MD5+SHA-1+
# SHA-256. Prints each run's wall and CPU seconds, the medians, and the ratio one worker's
# median wall time / N workers' (the goal on 2 cores: >= 1.8x). Both runs must log the same
# set of SHA-256s, or the script fails.
#
#   bench/throughput/workers.sh [RUNS] [WORKERS]     (defaults 5, the number of cores)
set -euo pipefail
cd "$(dirname "$0")/../.."
RUNS=${1:-5}
WORKERS=${2:-$(nproc)}
TARGET=${CARGO_TARGET_DIR:-$(pwd)/target}
cargo build --release -q -p xdpcarve -p xdpcarve-bench
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$TARGET/release/xdpcarve-gen" --http 128 --sizes 1M --styles length --per-conn 8 --concurrent 16 \
    --seed 16 -o "$work/16x1m.pcap" >/dev/null 2>&1
echo "xdpcarve -r on $(du -m "$work/16x1m.pcap" | cut -f1) MB of capture (16 downloads at once); $(nproc) CPUs; $(date -u +%F)"

# Runs one read; leaves "wall cpu" (seconds) in $work/<label>.time and the SHA-256s in
# $work/<label>.sha.
one_run() {
    local workers=$1 label=$2
    python3 -c 'import resource, subprocess, sys, time
t = time.monotonic(); subprocess.run(sys.argv[1:], check=True); wall = time.monotonic() - t
r = resource.getrusage(resource.RUSAGE_CHILDREN); print(f"{wall:.3f} {r.ru_utime + r.ru_stime:.3f}")' \
        "$TARGET/release/xdpcarve" -r "$work/16x1m.pcap" --workers "$workers" --hashes md5,sha1,sha256 \
        --quiet --files-log "$work/$label.log" >"$work/$label.time"
    python3 -c 'import json,sys; print("\n".join(sorted(json.loads(l)["sha256"] for l in open(sys.argv[1]))))' \
        "$work/$label.log" >"$work/$label.sha"
}
median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }

: >"$work/w1"; : >"$work/wn"
for run in $(seq "$RUNS"); do
    # Interleaved, so a noisy moment hurts both alike.
    one_run 1 one
    one_run "$WORKERS" many
    read -r w1 c1 <"$work/one.time"
    read -r wn cn <"$work/many.time"
    echo "run $run: 1 worker ${w1} s wall ${c1} s CPU; $WORKERS workers ${wn} s wall ${cn} s CPU"
    echo "$w1" >>"$work/w1"; echo "$wn" >>"$work/wn"
    cmp -s "$work/one.sha" "$work/many.sha" || { echo "workers.sh: $WORKERS workers logged other files than one" >&2; exit 1; }
done
m1=$(median <"$work/w1"); mn=$(median <"$work/wn")
echo "median wall: 1 worker $m1 s, $WORKERS workers $mn s: $(awk -v a="$m1" -v b="$mn" 'BEGIN {printf "%.2f", a / b}')x"
