#!/usr/bin/env bash
# Regenerates the mail evasion captures and their manifest (run as root; not part of the test run):
#
#     sudo tests/evasion/mail/regen.sh
#
# Two throwaway network namespaces, xdpc-evm-srv (10.204.0.1, the SMTP sink of
# tests/support/smtp_sink.py on port 25) and xdpc-evm-cli (10.204.0.2), joined by a veth pair with
# offloads off. For each variant of variants.py, tcpdump in the client namespace writes
# captures/<family>/<name>.pcap while the client sends the message's raw bytes in one SMTP session
# (no line-end normalisation: bare LF and bare CR go on the wire as the variant has them). The
# manifest's expected parts are computed from what the sink stored, with Python's email package.
# The namespaces are removed by name on exit, and stale ones at the start.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../../.." && pwd)
SRV=xdpc-evm-srv
CLI=xdpc-evm-cli
VETH_S=xdpc-evm-s
VETH_C=xdpc-evm-c
SINK_IP=10.204.0.1
CLI_IP=10.204.0.2

if [ "$(id -u)" != 0 ]; then
    echo "regen.sh: run as root (network namespaces)" >&2
    exit 1
fi
for tool in ip tcpdump python3 ethtool; do
    command -v "$tool" >/dev/null || { echo "regen.sh: $tool not found" >&2; exit 1; }
done

WORK=$(mktemp -d /tmp/xdpc-evm.XXXXXX)
SINK_PID=
TD_PID=

remove_namespaces() {
    ip netns del "$SRV" 2>/dev/null || true
    ip netns del "$CLI" 2>/dev/null || true
    ip link del "$VETH_S" 2>/dev/null || true
    ip link del "$VETH_C" 2>/dev/null || true
}

cleanup() {
    [ -n "$TD_PID" ] && kill "$TD_PID" 2>/dev/null || true
    [ -n "$SINK_PID" ] && kill "$SINK_PID" 2>/dev/null || true
    wait 2>/dev/null || true
    remove_namespaces
    rm -rf "$WORK"
}
trap cleanup EXIT

remove_namespaces
ip netns add "$SRV"
ip netns add "$CLI"
ip link add "$VETH_C" netns "$CLI" type veth peer name "$VETH_S" netns "$SRV"
ip -n "$SRV" addr add "$SINK_IP/24" dev "$VETH_S"
ip -n "$CLI" addr add "$CLI_IP/24" dev "$VETH_C"
for pair in "$SRV:$VETH_S" "$CLI:$VETH_C"; do
    ns=${pair%%:*}
    dev=${pair#*:}
    ip -n "$ns" link set lo up
    ip -n "$ns" link set "$dev" up
    # Segments on the wire as the stack cut them: no offloads, so checksums and sizes are real.
    for feature in rx tx sg tso gso gro lro; do
        ip netns exec "$ns" ethtool -K "$dev" "$feature" off >/dev/null 2>&1 || true
    done
done

mkdir -p "$WORK/spool" "$WORK/stored"
ip netns exec "$SRV" python3 "$REPO/tests/support/smtp_sink.py" "$SINK_IP" 25 "$WORK/spool" \
    >"$WORK/sink.out" 2>"$WORK/sink.err" &
SINK_PID=$!
for _ in $(seq 100); do
    grep -q READY "$WORK/sink.out" 2>/dev/null && break
    sleep 0.1
done
grep -q READY "$WORK/sink.out" || { echo "regen.sh: the sink did not start" >&2; cat "$WORK/sink.err" >&2; exit 1; }

# Waits until a growing file has kept its size for 0.5 s (tcpdump -U writes each packet as read).
settle() {
    local last=-1 now stable=0
    for _ in $(seq 100); do
        now=$(stat -c %s "$1" 2>/dev/null || echo 0)
        if [ "$now" = "$last" ]; then
            stable=$((stable + 1))
            [ "$stable" -ge 5 ] && return 0
        else
            stable=0
            last=$now
        fi
        sleep 0.1
    done
}

rm -rf "$HERE/captures"
n=0
for id in $(python3 "$HERE/variants.py" list); do
    pcap="$HERE/captures/$id.pcap"
    mkdir -p "$(dirname "$pcap")" "$WORK/stored/$(dirname "$id")"
    ip netns exec "$CLI" tcpdump -i "$VETH_C" -s 0 -U --immediate-mode -w "$pcap" "tcp port 25" \
        2>"$WORK/tcpdump.err" &
    TD_PID=$!
    for _ in $(seq 100); do
        grep -q "listening on" "$WORK/tcpdump.err" 2>/dev/null && break
        sleep 0.05
    done
    ip netns exec "$CLI" python3 "$HERE/variants.py" send "$SINK_IP" 25 "$id"
    n=$((n + 1))
    stored="$WORK/spool/25-$n.eml"
    for _ in $(seq 100); do
        [ -f "$stored" ] && break
        sleep 0.05
    done
    mv "$stored" "$WORK/stored/$id.eml"
    settle "$pcap"
    kill -INT "$TD_PID"
    wait "$TD_PID" || true
    TD_PID=
    if ! grep -q "^0 packets dropped by kernel" "$WORK/tcpdump.err"; then
        echo "regen.sh: $id: tcpdump dropped packets" >&2
        cat "$WORK/tcpdump.err" >&2
        exit 1
    fi
    echo "regen.sh: $id ($(stat -c %s "$pcap") bytes)"
done

python3 "$HERE/variants.py" manifest "$WORK/stored" "$HERE/manifest.json"
echo "regen.sh: $n captures, manifest.json written"
