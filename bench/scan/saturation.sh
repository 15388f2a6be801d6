#!/usr/bin/env bash
# Scanning never slows the read: the same capture read without a store, with the store alone
# (the executables kept, no pipeline), and with a scan stage whose only scanner sleeps 1 s per
# file behind a queue of 4 (README, "Scanners"). Prints, for each, the median of CPU time
# (user + sys, children included) and wall time over RUNS runs, the ratios, and the scan figures of
# the scanning runs: skipped_queue_full must equal files minus scanned.
#
#   bench/scan/saturation.sh [RUNS]        (default 5; from the repository root or anywhere)
#
# Needs the release binaries (built here if missing) and GNU time (/usr/bin/time). The capture is
# generated (xdpcarve-gen: 1,000 HTTP transfers of 64 KiB to 1 MiB and 100 mails, a third of the
# files executables) into a scratch directory, removed at the end. `drain_timeout = "0s"`: what is
# still queued when the read ends is logged skipped at once, so the ratio is of the read itself.
set -euo pipefail
cd "$(dirname "$0")/../.."
RUNS=${1:-5}
TARGET=${CARGO_TARGET_DIR:-$(pwd)/target}
[ -x /usr/bin/time ] || { echo "saturation.sh: needs GNU time (apt-get install time)" >&2; exit 2; }
cargo build --release -q -p xdpcarve -p xdpcarve-bench
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

"$TARGET/release/xdpcarve-gen" --http 1000 --sizes 64K,256K,1M --smtp 100 --seed 11 -o "$work/mix.pcap" >/dev/null
cat >"$work/sleep.sh" <<'EOF'
#!/bin/sh
sleep 1
EOF
chmod +x "$work/sleep.sh"
cat >"$work/store.toml" <<EOF
[store]
dir = "$work/store"
match = "application/x-dosexec"
keep = "none"
EOF
cat >"$work/scan.toml" <<EOF
[store]
dir = "$work/store"
keep = "none"
[scan]
queue = 4
drain_timeout = "0s"
[scanners.sleepy]
kind = "command"
argv = ["$work/sleep.sh", "{path}"]
timeout = "5s"
concurrency = 4
[[pipelines]]
match = "application/x-dosexec"
scanners = ["sleepy"]
EOF

# One run: prints "cpu_seconds wall_seconds"; its stderr (the summary) goes to $work/last.err.
run() {
    rm -rf "$work/store" "$work/files.log"
    /usr/bin/time -f "%U %S %e" -o "$work/time" "$TARGET/release/xdpcarve" -r "$work/mix.pcap" \
        --files-log "$work/files.log" "$@" 2>"$work/last.err"
    awk '{ printf "%.3f %.3f\n", $1 + $2, $3 }' "$work/time"
}

median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

: >"$work/base.t" && : >"$work/store.t" && : >"$work/scan.t"
for _ in $(seq "$RUNS"); do
    run >>"$work/base.t"
    run --config "$work/store.toml" >>"$work/store.t"
    run --config "$work/scan.toml" >>"$work/scan.t"
done
files=$(wc -l <"$work/files.log")
exes=$(grep -c '"mime_type":"application/x-dosexec"' "$work/files.log" || true)
scanline=$(grep -o 'scan: .*' "$work/last.err")
field() { sed -n "s/.*[ :]$1=\([0-9]*\).*/\1/p" <<<"$scanline"; }
base_cpu=$(cut -d' ' -f1 "$work/base.t" | median)
base_wall=$(cut -d' ' -f2 "$work/base.t" | median)
store_cpu=$(cut -d' ' -f1 "$work/store.t" | median)
store_wall=$(cut -d' ' -f2 "$work/store.t" | median)
scan_cpu=$(cut -d' ' -f1 "$work/scan.t" | median)
scan_wall=$(cut -d' ' -f2 "$work/scan.t" | median)
echo "capture: $(du -h "$work/mix.pcap" | cut -f1), $files files, $exes executables (the pipeline's type); $RUNS runs each, medians"
printf "read, no store:                cpu %6.3f s  wall %6.3f s\n" "$base_cpu" "$base_wall"
printf "read, store alone:             cpu %6.3f s  wall %6.3f s\n" "$store_cpu" "$store_wall"
printf "read, store + saturated scans: cpu %6.3f s  wall %6.3f s\n" "$scan_cpu" "$scan_wall"
awk -v a="$scan_cpu" -v b="$base_cpu" -v c="$scan_wall" -v d="$base_wall" -v e="$store_cpu" -v f="$store_wall" 'BEGIN {
    printf "ratio scanning / no store:     cpu %.3f  wall %.3f\n", a / b, c / d
    printf "ratio scanning / store alone:  cpu %.3f  wall %.3f\n", a / e, c / f
}'
echo "last scanning run: $scanline"
scanned=$(field scanned)
qfull=$(field skipped_queue_full)
drained=$(field skipped_drain_timeout)
notstored=$(field skipped_not_stored)
echo "check: executables $exes = scanned $scanned + skipped_queue_full $qfull + skipped_drain_timeout $drained + skipped_not_stored $notstored"
if [ "$exes" -ne $((scanned + qfull + drained + notstored)) ]; then
    echo "saturation.sh: the scan figures do not add up to the files the pipeline wanted" >&2
    exit 1
fi
