#!/usr/bin/env bash
# Fleet benchmark: records/s through the Redis event stream and the round trip of a dedup claim,
# each against a baseline measured in the same run on a plain connection to the same server
# (userspace/xdpcarve-egress/examples/fleet_bench.rs says what each figure is). Starts its own
# redis-server (Debian's redis-server package) on a free loopback port, without persistence,
# and stops it at the end; runs the benchmark RUNS times and prints each run.
#
#   bench/fleet/run.sh [RUNS] [RECORDS] [CLAIMS]     (defaults 3, 200000, 20000)
set -euo pipefail
cd "$(dirname "$0")/../.."
RUNS=${1:-3}
RECORDS=${2:-200000}
CLAIMS=${3:-20000}
TARGET=${CARGO_TARGET_DIR:-$(pwd)/target}
command -v redis-server >/dev/null || { echo "fleet/run.sh: needs redis-server (apt-get install redis-server)" >&2; exit 2; }
cargo build --release -q -p xdpcarve-egress --example fleet_bench
work=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --dir "$work" \
    --logfile "$work/redis.log" --daemonize yes --pidfile "$work/redis.pid"
trap 'kill "$(cat "$work/redis.pid" 2>/dev/null)" 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 100); do grep -q "Ready to accept" "$work/redis.log" 2>/dev/null && break; sleep 0.05; done
echo "redis-server $(redis-server --version | sed -n 's/.*v=\([^ ]*\).*/\1/p') on 127.0.0.1:$port (no persistence); $(nproc) CPUs; $(date -u +%F)"
for run in $(seq "$RUNS"); do
    echo "== run $run of $RUNS"
    "$TARGET/release/examples/fleet_bench" "redis://127.0.0.1:$port" "$RECORDS" "$CLAIMS"
    redis-cli -p "$port" flushall >/dev/null
done
