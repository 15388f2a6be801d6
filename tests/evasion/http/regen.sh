#!/usr/bin/env bash
# Regenerates tests/evasion/http/captures/ and manifest.json. Must run as root:
#
#     sudo bash tests/evasion/http/regen.sh [--only REGEX] [--skip-captures]
#
# Installs what it needs (Debian packages), builds a throwaway network of two namespaces joined
# by a veth pair, runs server.py in one and regen.py (curl, then Chromium with tcpdump around
# each of its fetches) against it from the other, and removes the network again, also on error
# or Ctrl-C. Arguments go to regen.py. Nothing here leaves the two namespaces: they have no route but their own /24.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
SRV_NS=xdpc-ev-srv
CLI_NS=xdpc-ev-cli
SRV_IF=xdpc-ev-s
CLI_IF=xdpc-ev-c
SRV_ADDR=10.203.0.1
CLI_ADDR=10.203.0.2

if [[ $(id -u) -ne 0 ]]; then
    echo "regen.sh: must run as root (network namespaces, tcpdump)" >&2
    exit 1
fi

# Debian package for each command used.
declare -A PACKAGES=([chromium]=chromium [tcpdump]=tcpdump [curl]=curl [ip]=iproute2 [ss]=iproute2 [ethtool]=ethtool [python3]=python3)
missing=()
for cmd in "${!PACKAGES[@]}"; do
    command -v "$cmd" >/dev/null 2>&1 || missing+=("${PACKAGES[$cmd]}")
done
if [[ ${#missing[@]} -gt 0 ]]; then
    echo "regen.sh: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${missing[@]}"
fi

server_pid=
server_log=/tmp/xdpc-ev-server.log

cleanup() {
    if [[ -n "$server_pid" ]]; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
        server_pid=
    fi
    # Deleting a namespace also deletes the veth end inside it, and with it the peer.
    ip netns del "$SRV_NS" 2>/dev/null || true
    ip netns del "$CLI_NS" 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Leftovers of an interrupted run.
cleanup

ip netns add "$SRV_NS"
ip netns add "$CLI_NS"
ip link add "$SRV_IF" netns "$SRV_NS" mtu 1500 type veth peer name "$CLI_IF" netns "$CLI_NS" mtu 1500
for end in "$SRV_NS $SRV_IF $SRV_ADDR" "$CLI_NS $CLI_IF $CLI_ADDR"; do
    read -r ns ifname addr <<<"$end"
    ip -n "$ns" link set lo up
    ip -n "$ns" addr add "$addr/24" dev "$ifname"
    ip -n "$ns" link set "$ifname" up
    # MSS-sized segments in the captures, as on a real wire. Some veth features are fixed and
    # make ethtool exit non-zero although the rest applied.
    ip netns exec "$ns" ethtool -K "$ifname" tso off gso off gro off >/dev/null 2>&1 || true
done
# A large initial congestion window: the server's whole response leaves in the first flight,
# so a client that stops reading early cannot keep part of it off the capture.
ip -n "$SRV_NS" route replace 10.203.0.0/24 dev "$SRV_IF" src "$SRV_ADDR" initcwnd 64

ip netns exec "$SRV_NS" python3 "$here/server.py" "$SRV_ADDR" 80 >"$server_log" 2>&1 &
server_pid=$!
for _ in $(seq 100); do
    grep -q READY "$server_log" && break
    kill -0 "$server_pid" 2>/dev/null || { cat "$server_log" >&2; exit 1; }
    sleep 0.1
done
grep -q READY "$server_log" || { echo "regen.sh: server did not start" >&2; exit 1; }

python3 "$here/regen.py" "$@"
echo "server log: $server_log"
