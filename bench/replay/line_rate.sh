#!/usr/bin/env bash
# Line-rate benchmark: does file work ever cost packets? Loops one bulk HTTP capture into a veth
# for at least --duration seconds (so that ring buffering alone cannot pass), at each rate of
# --rates (Mbit/s, or "top" for tcpreplay's top speed), into
#   1. xdpcarve -i with DEFAULT flags (rings from the default --capture-memory, overload control on)
#   2. tcpdump -w, the AF_PACKET baseline (same replay, nothing parsed; -B 256 MiB, the same
#      memory as xdpcarve's default ring budget)
# and reports kernel drops, records per response, files carved with the exact SHA-256, and what
# overload control shed.
#
# Run as root from the repository root:
#   bench/replay/line_rate.sh [--pcap FILE] [--rates "1000 top"] [--duration 30] [--report FILE]
# Without --pcap a capture is made: 131 files over one keep-alive connection, a real curl/Python
# exchange captured by tcpdump (the burst_loss test's bulk capture, about 315 MB; needs the test
# binaries: cargo test --release -p xdpcarve --test burst_loss --no-run). The reference for
# "exact" is `xdpcarve -r` of the same capture, which must itself carve every response.
# tcpreplay --unique-ip gives every loop its own addresses, so each loop is new connections.
# Writes bench/replay/LINE_RATE.md. Namespaces are named xdclr<pid>*, removed on exit.
set -euo pipefail

cd "$(dirname "$0")/../.."
ROOT=$(pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
RATES="1000 top"
DURATION=30
PCAP=""
REPORT=$ROOT/bench/replay/LINE_RATE.md
EXTRA=()

while [ $# -gt 0 ]; do
    case "$1" in
        --pcap) PCAP=$2; shift 2 ;;
        --rates) RATES=$2; shift 2 ;;
        --duration) DURATION=$2; shift 2 ;;
        --report) REPORT=$2; shift 2 ;;
        --) shift; EXTRA=("$@"); break ;;
        *) echo "usage: $0 [--pcap FILE] [--rates '1000 top'] [--duration SECS] [--report FILE] [-- xdpcarve flags]" >&2; exit 2 ;;
    esac
done

[ "$(id -u)" -eq 0 ] || { echo "run as root (network namespaces, XDP)" >&2; exit 1; }
for tool in tcpreplay tcpdump ip python3 capinfos; do
    command -v $tool >/dev/null || { echo "missing $tool (tests/setup.sh installs tcpreplay/tcpdump; capinfos is in tshark)" >&2; exit 1; }
done
XDPCARVE=$TARGET/release/xdpcarve
[ -x "$XDPCARVE" ] || cargo build --release -p xdpcarve --bin xdpcarve

WORK=$(mktemp -d /tmp/xdclr.XXXXXX)
NS=xdclr$$
cleanup() {
    ip netns del "$NS" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

if [ -z "$PCAP" ]; then
    echo "making the bulk capture (131 files over one keep-alive connection)..." >&2
    XDPCARVE_BULK_OUT=$WORK XDPCARVE_BULK_FILES=131 \
        cargo test --release -p xdpcarve --test burst_loss -- --ignored make_bulk_capture_for_bench >&2
    PCAP=$(ls "$WORK"/*.pcap | head -1)
fi
PACKETS=$(capinfos -c -M "$PCAP" | awk -F: '/Number of packets/ {gsub(/ /, "", $2); print $2}')
BYTES=$(capinfos -d -M "$PCAP" | awk -F: '/Data size/ {gsub(/[^0-9]/, "", $2); print $2}')

# The reference: every response of the capture, carved offline.
"$XDPCARVE" -q -r "$PCAP" --files-log "$WORK/reference.jsonl"
RESPONSES=$(wc -l <"$WORK/reference.jsonl")

ip netns add "$NS"
ip -n "$NS" link add xdclR type veth peer name xdclS
for dev in xdclR xdclS; do
    ip netns exec "$NS" sysctl -qw "net.ipv6.conf.$dev.disable_ipv6=1"
    ip -n "$NS" link set "$dev" up
    ip netns exec "$NS" ethtool -K "$dev" tso off gso off gro off >/dev/null 2>&1 || true
done
NCPU=$(nproc)
REPLAY_CPU=$((NCPU - 1))

wait_line() { # file needle
    for _ in $(seq 1 300); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
    echo "timed out waiting for '$2' in $1:" >&2; cat "$1" >&2; return 1
}

# Loops that make the replay last at least DURATION seconds at `rate` (top: measured first).
loops_for() { # rate
    local mbps=$1
    if [ "$mbps" = top ]; then
        local out; out=$(ip netns exec "$NS" taskset -c $REPLAY_CPU tcpreplay --preload-pcap --topspeed -i xdclR "$PCAP" 2>&1)
        mbps=$(grep -o 'Rated: [0-9.]* Bps, [0-9.]*' <<<"$out" | awk '{print $NF}')
        sleep 2
    fi
    awk -v d="$DURATION" -v b="$BYTES" -v m="$mbps" 'BEGIN { n = d * m * 1e6 / 8 / b; printf "%d", (n == int(n) ? n : int(n) + 1) }'
}

replay() { # rate loops -> tcpreplay's output
    local speed=(--mbps="$1")
    [ "$1" = top ] && speed=(--topspeed)
    ip netns exec "$NS" taskset -c $REPLAY_CPU tcpreplay --preload-pcap "${speed[@]}" --loop="$2" --unique-ip \
        -i xdclR "$PCAP" 2>&1
}

field() { # text pattern -> first number after pattern
    grep -o "$2[^0-9]*[0-9.]*" <<<"$1" | head -1 | grep -o '[0-9.]*$' || echo 0
}

# Records against the reference: "records exact overload shed_blake3 shed_sha1 shed_all".
score() { # files.jsonl loops
    python3 - "$WORK/reference.jsonl" "$1" "$2" <<'EOF'
import json, sys
from collections import Counter
ref = [json.loads(l) for l in open(sys.argv[1])]
want = {r["http_uri"]: r["sha256"] for r in ref}
loops = int(sys.argv[3])
recs = [json.loads(l) for l in open(sys.argv[2]) if l.strip()]
per_uri = Counter(r.get("http_uri") for r in recs)
covered = sum(min(per_uri[u], loops) for u in want)
exact = Counter(r.get("http_uri") for r in recs if r.get("sha256") and r["sha256"] == want.get(r.get("http_uri")))
exact_n = sum(min(exact[u], loops) for u in want)
over = sum(1 for r in recs if r.get("overload"))
shed = Counter(tuple(r.get("hashes_shed", [])) for r in recs)
b3 = sum(n for k, n in shed.items() if "blake3" in k)
s1 = sum(n for k, n in shed.items() if "sha1" in k)
allh = sum(n for k, n in shed.items() if "sha256" in k)
wrong = sum(1 for r in recs if r.get("sha256") and r["sha256"] != want.get(r.get("http_uri")))
print(covered, exact_n, over, b3, s1, allh, wrong)
EOF
}

set +e +o pipefail
declare -A RESULT
run_xdpcarve() { # rate
    local rate=$1 err=$WORK/xdpcarve.err loops
    loops=$(loops_for "$rate")
    rm -f "$WORK/files.jsonl"
    ip netns exec "$NS" "$XDPCARVE" -i xdclS --files-log "$WORK/files.jsonl" --metrics-addr off "${EXTRA[@]}" 2>"$err" &
    local pid=$!
    wait_line "$err" "capturing on"
    local start; start=$(date +%s.%N)
    local out; out=$(replay "$rate" "$loops")
    local secs; secs=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }')
    sleep 2 # the worker finishes its ring
    kill -INT $pid; wait $pid
    local code=$?
    local s; s=$(cat "$err")
    local sent mbps seen drops hw cap
    sent=$(field "$out" "Successful packets:")
    mbps=$(grep -o 'Rated: [0-9.]* Bps, [0-9.]*' <<<"$out" | awk '{print $NF}')
    seen=$(field "$s" "xdp:")
    drops=$(grep -oE 'kernel_rx_(dropped|ring_full|fill_ring_empty_descs)=[0-9]+' <<<"$s" | awk -F= '{n += $2} END {print n + 0}')
    hw=$(grep -o 'ring high water [0-9]* of [0-9]*' <<<"$s" | head -1 | awk '{print $4 "/" $6}')
    read -r covered exact over b3 s1 allh wrong <<<"$(score "$WORK/files.jsonl" "$loops")"
    local expect=$((RESPONSES * loops))
    local shed_line; shed_line=$(grep -o 'overload: shed file work [0-9]* times for [0-9.]* s' <<<"$s" | head -1)
    RESULT[xdpcarve,$rate]="$mbps|$secs|$loops|$sent|$((sent > seen ? sent - seen + drops : drops))|$covered/$expect|$exact/$expect|$over|$b3/$s1/$allh|$hw|${shed_line:-none}|$code|$wrong"
    printf '  xdpcarve %-5s %s Mbps for %s s (%s loops): sent %s, xdp saw %s, kernel drops %s, records %s/%s, exact %s/%s, overload %s (shed blake3/sha1/all %s/%s/%s), wrong %s, ring %s, exit %s\n' \
        "$rate" "$mbps" "$secs" "$loops" "$sent" "$seen" "$drops" "$covered" "$expect" "$exact" "$expect" "$over" "$b3" "$s1" "$allh" "$wrong" "$hw" "$code" >&2
    grep -E "overload:|queue 0|warning" "$err" >&2
}

run_tcpdump() { # rate
    local rate=$1 err=$WORK/tcpdump.err loops
    loops=$(loops_for "$rate")
    ip netns exec "$NS" tcpdump -i xdclS -B 262144 -s 0 -n -Z root -w /dev/null 2>"$err" &
    local pid=$!
    wait_line "$err" "listening on"
    local out; out=$(replay "$rate" "$loops")
    sleep 2
    kill -INT $pid; wait $pid
    local s; s=$(cat "$err")
    local sent mbps captured dropped
    sent=$(field "$out" "Successful packets:")
    mbps=$(grep -o 'Rated: [0-9.]* Bps, [0-9.]*' <<<"$out" | awk '{print $NF}')
    captured=$(grep -o '^[0-9]* packets captured' <<<"$s" | grep -o '^[0-9]*')
    dropped=$(grep -o '^[0-9]* packets dropped by kernel' <<<"$s" | grep -o '^[0-9]*')
    local lost=$(( (sent > captured ? sent - captured : 0) + dropped ))
    RESULT[tcpdump,$rate]="$mbps|$loops|$sent|$lost"
    printf '  tcpdump  %-5s %s Mbps (%s loops): sent %s, captured %s, dropped by kernel %s\n' \
        "$rate" "$mbps" "$loops" "$sent" "$captured" "$dropped" >&2
}

echo "capture: $PCAP ($PACKETS packets, $BYTES bytes, $RESPONSES responses); $NCPU CPUs; rates: $RATES; >= $DURATION s each" >&2
for rate in $RATES; do
    run_xdpcarve "$rate"
    run_tcpdump "$rate"
done

{
    echo "# Line-rate benchmark"
    echo
    echo "Generated by \`bench/replay/line_rate.sh\` on $(date -u +%Y-%m-%d) — kernel $(uname -r), $NCPU CPUs"
    echo "($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')); veth pair in a network namespace,"
    echo "one queue, XDP native (veth), copy-mode AF_XDP, the worker pinned to CPU 0 (the default), tcpreplay on CPU $REPLAY_CPU."
    echo "xdpcarve runs with default flags${EXTRA:+ plus \`${EXTRA[*]}\`}: rings from the default --capture-memory (256 MiB"
    echo "per queue), overload control at its default marks. Capture: $(basename "$PCAP"), $PACKETS packets, $BYTES bytes,"
    echo "$RESPONSES HTTP responses over one keep-alive connection; looped with tcpreplay --unique-ip for at least"
    echo "$DURATION s per rate, so every loop is new connections and buffering alone cannot pass."
    echo
    echo "\"records\" counts responses (per loop) with a record; \"exact\" those whose SHA-256 equals"
    echo "\`xdpcarve -r\` of the capture; \"overload\" records carved while shedding (\`overload: true\`), and"
    echo "how many lost BLAKE3 / SHA-1 / every hash (files no policy wants). Kernel drops are the AF_XDP"
    echo "socket's XDP_STATISTICS plus packets sent that XDP never saw."
    echo
    echo "| rate | achieved Mbps | replay s | loops | packets sent | kernel drops | records | exact SHA-256 | overload records | shed blake3/sha1/all | ring high water | shedding (summary) |"
    echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
    for rate in $RATES; do
        IFS='|' read -r mbps secs loops sent drops covered exact over shed hw line code wrong <<<"${RESULT[xdpcarve,$rate]}"
        echo "| $rate | $mbps | $secs | $loops | $sent | $drops | $covered | $exact | $over | $shed | $hw | $line |"
    done
    echo
    echo "AF_PACKET baseline, the same replays into tcpdump -w /dev/null (-B 262144, no parsing):"
    echo
    echo "| rate | achieved Mbps | loops | packets sent | lost (not captured + dropped by kernel) |"
    echo "|---|---|---|---|---|"
    for rate in $RATES; do
        IFS='|' read -r mbps loops sent lost <<<"${RESULT[tcpdump,$rate]}"
        echo "| $rate | $mbps | $loops | $sent | $lost |"
    done
} >"$REPORT"
cat "$REPORT"
