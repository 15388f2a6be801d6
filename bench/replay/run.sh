#!/usr/bin/env bash
# Live replay benchmark: pushes one capture at increasing packet rates (tcpreplay --pps, then
# --topspeed) into a veth whose other end is captured by
#   1. xdpcarve -i       XDP steering + AF_XDP + full carving (reassembly, HTTP/SMTP, hashing)
#   2. xdpcount          the same XDP + AF_XDP path with no engine (capture ceiling)
#   3. tcpdump -w        AF_PACKET capture of the same traffic, written to a file (nothing parsed)
# and reports, for each, the highest offered rate at which every packet was received (zero
# drops), the pps per worker there, and the ratio of xdpcarve's to tcpdump's.
#
# Run as root from the repository root:  bench/replay/run.sh [--pcap FILE] [--rates LIST]
# Writes bench/replay/REPORT.md (and prints it). Needs tcpreplay, tcpdump, iproute2, and the
# release binaries (built here if missing). Everything lives in namespaces named xdcb<pid>*,
# removed on exit.
set -euo pipefail

cd "$(dirname "$0")/../.."
ROOT=$(pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
RATES="10000 20000 30000 40000 top"
PCAP=""
REPORT=$ROOT/bench/replay/REPORT.md

while [ $# -gt 0 ]; do
    case "$1" in
        --pcap) PCAP=$2; shift 2 ;;
        --rates) RATES=$2; shift 2 ;;
        --report) REPORT=$2; shift 2 ;;
        *) echo "usage: $0 [--pcap FILE] [--rates 'PPS PPS ... top'] [--report FILE]" >&2; exit 2 ;;
    esac
done

[ "$(id -u)" -eq 0 ] || { echo "run as root (network namespaces, XDP)" >&2; exit 1; }
for tool in tcpreplay tcpdump ip; do
    command -v $tool >/dev/null || { echo "missing $tool (tests/setup.sh installs it)" >&2; exit 1; }
done

XDPCARVE=$TARGET/release/xdpcarve
XDPCOUNT=$TARGET/release/examples/xdpcount
GEN=$TARGET/release/xdpcarve-gen
if [ ! -x "$XDPCARVE" ] || [ ! -x "$GEN" ]; then
    cargo build --release -p xdpcarve -p xdpcarve-bench --bin xdpcarve --bin xdpcarve-gen
fi
[ -x "$XDPCOUNT" ] || cargo build --release -p xdpcarve-xdp --example xdpcount

WORK=$(mktemp -d /tmp/xdcbench.XXXXXX)
NS=xdcb$$
cleanup() {
    ip netns del "$NS" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

if [ -z "$PCAP" ]; then
    PCAP=$WORK/mix.pcap
    # A mix of HTTP (Content-Length, chunked, gzip, uploads) and SMTP (base64 attachments).
    "$GEN" --http 600 --sizes 8K,64K,256K --smtp 150 --seed 7 -o "$PCAP" >/dev/null
fi
PACKETS=$(tcpdump -nr "$PCAP" 2>/dev/null | wc -l)
# The generator's manifest beside the capture, when there is one: records are checked against it.
MANIFEST=${PCAP%.pcap}.expected.json
[ -f "$MANIFEST" ] || MANIFEST=""

# "exact" when the records' SHA-256s are the manifest's (as a multiset), else what matched.
files_exact() { # files.jsonl
    [ -n "$MANIFEST" ] || { echo "unchecked"; return; }
    python3 - "$MANIFEST" "$1" <<'PY'
import collections, json, sys
want = collections.Counter(f["sha256"] for f in json.load(open(sys.argv[1]))["files"])
got = collections.Counter(json.loads(l).get("sha256") for l in open(sys.argv[2]) if l.strip())
found = sum((want & got).values())
print("exact" if got == want else f"{found} of {sum(want.values())} exact")
PY
}

ip netns add "$NS"
ip -n "$NS" link add xdcbR type veth peer name xdcbS
for dev in xdcbR xdcbS; do
    ip netns exec "$NS" sysctl -qw "net.ipv6.conf.$dev.disable_ipv6=1"
    ip -n "$NS" link set "$dev" up
    ip netns exec "$NS" ethtool -K "$dev" tso off gso off gro off >/dev/null 2>&1 || true
done
NCPU=$(nproc)
# The worker (or tcpdump) on CPU 0, tcpreplay on the last CPU, so they do not share a core.
REPLAY_CPU=$((NCPU - 1))

# CPU seconds (user + system) used so far by the threads of PID whose name matches PATTERN: the
# worker's cost per packet, independent of how fast the sender can go.
cpu_secs() { # pid pattern
    local ticks; ticks=$(getconf CLK_TCK)
    for t in /proc/"$1"/task/*; do
        grep -qE "$2" "$t/comm" 2>/dev/null || continue
        # Fields after the parenthesised name: utime is the 12th, stime the 13th.
        sed 's/^.*) //' "$t/stat" | awk '{print $12 + $13}'
    done | awk -v hz="$ticks" '{n += $1} END {printf "%.2f", n / hz}'
}

replay() { # rate -> prints tcpreplay's output
    local rate=$1
    if [ "$rate" = top ]; then
        ip netns exec "$NS" taskset -c $REPLAY_CPU tcpreplay --preload-pcap --topspeed -i xdcbR "$PCAP" 2>&1
    else
        ip netns exec "$NS" taskset -c $REPLAY_CPU tcpreplay --preload-pcap --pps="$rate" -i xdcbR "$PCAP" 2>&1
    fi
}

field() { # text pattern -> first number after pattern
    grep -o "$2[^0-9]*[0-9.]*" <<<"$1" | head -1 | grep -o '[0-9.]*$' || echo 0
}

wait_line() { # file needle
    for _ in $(seq 1 150); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
    echo "timed out waiting for '$2' in $1:" >&2; cat "$1" >&2; return 1
}

# From here on output is parsed leniently: a counter missing from a summary is zero.
set +e +o pipefail
declare -A RESULT
per_cpu() { awk -v n="$1" -v c="$2" 'BEGIN { if (c > 0) printf "%.0f", n / c; else print "-" }'; }
run_xdpcarve() { # rate
    local rate=$1 err=$WORK/xdpcarve.err
    ip netns exec "$NS" taskset -c 0 "$XDPCARVE" -i xdcbS --xdp-mode native --queues 0 \
        --files-log "$WORK/files.jsonl" 2>"$err" &
    local pid=$!
    wait_line "$err" "capturing on"
    local out; out=$(replay "$rate")
    sleep 0.5 # let the worker finish the ring before reading its CPU time
    local cpu; cpu=$(cpu_secs "$(pgrep -P $pid -f xdpcarve || echo $pid)" 'xdpcarve-q')
    kill -INT $pid; wait $pid || true
    local s; s=$(cat "$err")
    local sent seen rx drops files pps
    sent=$(field "$out" "Successful packets:")
    pps=$(field "$out" "Rated: [0-9.]* Bps, [0-9.]* Mbps,")
    seen=$(field "$s" "xdp:")
    rx=$(grep -o 'queue 0: [0-9]*' <<<"$s" | grep -o '[0-9]*$' || echo 0)
    drops=$(grep -oE 'kernel_rx_(dropped|ring_full|fill_ring_empty_descs)=[0-9]+' <<<"$s" | awk -F= '{n += $2} END {print n + 0}')
    files=$(wc -l <"$WORK/files.jsonl")
    local exact; exact=$(files_exact "$WORK/files.jsonl" | tr ' ' '_')
    local redirected; redirected=$(grep -o '[0-9]* redirected' <<<"$s" | grep -o '^[0-9]*')
    # Packets XDP never saw, plus redirected ones that never reached the worker (the kernel's
    # drop counters count the same packets, so take the larger).
    local missed=$(( redirected - rx > drops ? redirected - rx : drops ))
    local lost=$(( (sent - seen > 0 ? sent - seen : 0) + missed ))
    RESULT[xdpcarve,$rate]="$pps $lost $files $(per_cpu "$rx" "$cpu") $exact"
    printf '  xdpcarve  %-8s offered %8.0f pps: sent %s, xdp saw %s, received %s, lost %s, files %s (%s), worker cpu %s s\n' \
        "$rate" "$pps" "$sent" "$seen" "$rx" "$lost" "$files" "${exact//_/ }" "$cpu" >&2
}

run_xdpcount() { # rate
    local rate=$1 err=$WORK/xdpcount.err
    ip netns exec "$NS" taskset -c 0 "$XDPCOUNT" xdcbS 3600 native >"$WORK/xdpcount.out" 2>"$err" &
    local pid=$!
    wait_line "$err" "xdpcount: xdcbS"
    local out; out=$(replay "$rate")
    sleep 0.5
    local cpu; cpu=$(cpu_secs "$(pgrep -P $pid -f xdpcount || echo $pid)" 'xdpcarve-q')
    kill -INT $pid; wait $pid || true
    local s; s=$(cat "$WORK/xdpcount.out")
    local sent pps seen rx drops
    sent=$(field "$out" "Successful packets:")
    pps=$(field "$out" "Rated: [0-9.]* Bps, [0-9.]* Mbps,")
    seen=$(( $(field "$s" "redirected:") + $(field "$s" "passed:") ))
    rx=$(field "$s" "rx_packets")
    drops=$(field "$s" "kernel_drops")
    local redirected; redirected=$(field "$s" "redirected:")
    # Packets XDP never saw, plus redirected ones that never reached the worker (the kernel's
    # drop counters count the same packets, so take the larger).
    local missed=$(( redirected - rx > drops ? redirected - rx : drops ))
    local lost=$(( (sent - seen > 0 ? sent - seen : 0) + missed ))
    RESULT[xdpcount,$rate]="$pps $lost - $(per_cpu "$rx" "$cpu")"
    printf '  xdpcount  %-8s offered %8.0f pps: sent %s, xdp saw %s, received %s, lost %s, worker cpu %s s\n' \
        "$rate" "$pps" "$sent" "$seen" "$rx" "$lost" "$cpu" >&2
}

run_tcpdump() { # rate
    local rate=$1 err=$WORK/tcpdump.err
    ip netns exec "$NS" taskset -c 0 tcpdump -i xdcbS -s 0 -n -Z root -w "$WORK/tcpdump.pcap" 2>"$err" &
    local pid=$!
    wait_line "$err" "listening on"
    local out; out=$(replay "$rate")
    # Let tcpdump drain its ring before SIGINT (it stops reading at the signal).
    local last=-1 size=0
    while [ "$size" != "$last" ]; do last=$size; sleep 0.5; size=$(stat -c %s "$WORK/tcpdump.pcap"); done
    local cpu; cpu=$(cpu_secs "$(pgrep -P $pid -x tcpdump || echo $pid)" 'tcpdump')
    kill -INT $pid; wait $pid || true
    local s; s=$(cat "$err")
    local sent pps captured dropped
    sent=$(field "$out" "Successful packets:")
    pps=$(field "$out" "Rated: [0-9.]* Bps, [0-9.]* Mbps,")
    captured=$(grep -o '^[0-9]* packets captured' <<<"$s" | grep -o '^[0-9]*')
    dropped=$(grep -o '^[0-9]* packets dropped by kernel' <<<"$s" | grep -o '^[0-9]*')
    local lost=$(( sent - captured > 0 ? sent - captured : 0 ))
    lost=$(( lost + dropped ))
    RESULT[tcpdump,$rate]="$pps $lost - $(per_cpu "$captured" "$cpu")"
    printf '  tcpdump   %-8s offered %8.0f pps: sent %s, captured %s, dropped %s, lost %s, cpu %s s\n' \
        "$rate" "$pps" "$sent" "$captured" "$dropped" "$lost" "$cpu" >&2
}

echo "capture: $PCAP ($PACKETS packets); $NCPU CPUs; rates: $RATES" >&2
for rate in $RATES; do
    run_xdpcarve "$rate"
    run_xdpcount "$rate"
    run_tcpdump "$rate"
done

best() { # tool -> highest achieved pps among zero-loss rates
    local tool=$1 best=0
    for rate in $RATES; do
        read -r pps lost _ <<<"${RESULT[$tool,$rate]}"
        if [ "$lost" -eq 0 ] && awk "BEGIN{exit !($pps > $best)}"; then best=$pps; fi
    done
    echo "$best"
}
BX=$(best xdpcarve); BC=$(best xdpcount); BT=$(best tcpdump)

{
    echo "# Live replay benchmark"
    echo
    echo "Generated by \`bench/replay/run.sh\` on $(date -u +%Y-%m-%d) — kernel $(uname -r), $NCPU CPUs"
    echo "($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')), veth pair in a network namespace,"
    echo "XDP native mode (veth), copy-mode AF_XDP (veth has no zero-copy), one queue / one worker"
    echo "pinned to CPU 0, tcpreplay pinned to CPU $REPLAY_CPU. Capture: $(basename "$PCAP"), $PACKETS packets"
    echo "(synthetic HTTP/SMTP mix from xdpcarve-gen unless --pcap was given)."
    echo
    echo "A rate counts as zero-drop when every replayed packet reached the capture: for xdpcarve and"
    echo "xdpcount, the XDP program saw every packet tcpreplay sent, every redirected packet was read"
    echo "from the ring, and the kernel's XDP_STATISTICS show no drops; for tcpdump, it captured every"
    echo "packet and reported 0 dropped by kernel. \"achieved\" is tcpreplay's measured rate."
    echo "\"exact\": xdpcarve's records have exactly the SHA-256s of the generator's manifest."
    echo
    echo "CPU time is that of the capturing thread only: the kernel's copy of each frame (into the"
    echo "AF_XDP UMEM, or into tcpdump's AF_PACKET ring) runs in softirq context and is in neither."
    echo "xdpcarve's worker reassembles, parses HTTP/SMTP/MIME, decodes and computes MD5, SHA-1,"
    echo "SHA-256 and BLAKE3 of every file; tcpdump only writes frames to a file."
    echo
    echo "Lost packets per run, and packets per CPU-second of the capturing thread (the worker"
    echo "thread for xdpcarve and xdpcount, the whole tcpdump process), which estimates what one"
    echo "core sustains whatever the sender's limit:"
    echo
    echo "| offered pps | achieved pps | xdpcarve lost | xdpcarve pps/CPU-s | xdpcount lost | xdpcount pps/CPU-s | tcpdump lost | tcpdump pps/CPU-s |"
    echo "|---|---|---|---|---|---|---|---|"
    for rate in $RATES; do
        read -r p1 l1 f1 c1 e1 <<<"${RESULT[xdpcarve,$rate]}"
        read -r _ l2 _ c2 <<<"${RESULT[xdpcount,$rate]}"
        read -r _ l3 _ c3 <<<"${RESULT[tcpdump,$rate]}"
        printf '| %s | %.0f | %s (%s files, %s) | %s | %s | %s | %s | %s |\n' "$rate" "$p1" "$l1" "$f1" "${e1//_/ }" "$c1" "$l2" "$c2" "$l3" "$c3"
    done
    echo
    echo "Highest zero-drop rate (one worker, so also pps per worker):"
    echo
    echo "- xdpcarve -i (XDP + AF_XDP + full carving): **$(printf '%.0f' "$BX") pps**"
    echo "- xdpcount (XDP + AF_XDP, no engine): **$(printf '%.0f' "$BC") pps**"
    echo "- tcpdump -w (AF_PACKET, no parsing): **$(printf '%.0f' "$BT") pps**"
    if awk "BEGIN{exit !($BT > 0)}"; then
        echo "- ratio xdpcarve / tcpdump: **$(awk "BEGIN{printf \"%.2f\", $BX / $BT}")**; xdpcount / tcpdump: **$(awk "BEGIN{printf \"%.2f\", $BC / $BT}")**"
    fi
    last=${RATES##* }
    read -r _ _ _ c1 <<<"${RESULT[xdpcarve,$last]}"
    read -r _ _ _ c2 <<<"${RESULT[xdpcount,$last]}"
    read -r _ _ _ c3 <<<"${RESULT[tcpdump,$last]}"
    echo "- packets per CPU-second of the capturing thread (offered $last): xdpcarve **$c1**, xdpcount **$c2**,"
    echo "  tcpdump **$c3**; ratio xdpcarve / tcpdump **$(awk -v a="$c1" -v b="$c3" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }')**"
    echo
    echo "When the highest zero-drop rate equals the top offered rate, the sender was the limit, not"
    echo "the capture: veth on a 2-CPU VM bounds what tcpreplay can push. On a real NIC with several"
    echo "queues the figures scale with workers (one per queue, no shared state)."
} >"$REPORT"
cat "$REPORT"
