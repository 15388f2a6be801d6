#!/bin/sh
# Prepares a capture NIC for xdpcarve. Run as root before starting the service (the systemd unit
# runs it as ExecStartPre). Usage: deploy/nic-setup.sh IFACE [QUEUES]
#
# Why each step:
#  - Symmetric RSS: the XDP program hands a packet to the AF_XDP socket of the queue it arrived on,
#    and each queue has its own worker and flow table. Both directions of a connection must hash
#    to the same queue, or each worker sees half a conversation and carves nothing. A Toeplitz
#    key made of the 16-bit pattern 6d:5a repeated is symmetric (swapping source and destination
#    gives the same hash). xdpcarve counts handshakes seen from one side only per queue
#    (synack_without_syn / syn_without_synack in its summary and metrics): non-zero means the
#    hash is not symmetric.
#  - rx VLAN offload off: otherwise the NIC strips 802.1Q tags before XDP sees them.
#  - GRO/LRO off: XDP sees wire frames anyway, but AF_PACKET tools used next to it (tcpdump)
#    should see the same frames.
#  - Promiscuous: a SPAN/tap port carries traffic addressed to other hosts.
#  - Channels: optional; one queue per worker core. xdpcarve opens every combined channel by
#    default (--queues all).
set -eu

IFACE=${1:?usage: nic-setup.sh IFACE [QUEUES]}
QUEUES=${2:-}

if [ ! -e "/sys/class/net/$IFACE" ]; then
    echo "nic-setup: no such interface $IFACE" >&2
    exit 1
fi

warn() { echo "nic-setup: $*" >&2; }

ip link set dev "$IFACE" up promisc on

if [ -n "$QUEUES" ]; then
    ethtool -L "$IFACE" combined "$QUEUES" 2>/dev/null \
        || warn "$IFACE: cannot set $QUEUES combined channels (driver may use rx/tx channels); continuing"
fi

# Key length differs per driver (40 bytes on ixgbe/i40e/mlx5, 52 on ice): ask for it.
key_len=$(ethtool -x "$IFACE" 2>/dev/null | awk '/RSS hash key:/ {getline; n=split($0, a, ":"); print n; exit}')
if [ -n "${key_len:-}" ] && [ "$key_len" -gt 0 ]; then
    key=$(i=0; while [ $i -lt "$key_len" ]; do
        if [ $((i % 2)) -eq 0 ]; then printf '6d'; else printf '5a'; fi
        i=$((i + 1)); [ $i -lt "$key_len" ] && printf ':'
    done)
    if ethtool -X "$IFACE" hfunc toeplitz hkey "$key" 2>/dev/null; then
        echo "nic-setup: $IFACE: symmetric Toeplitz RSS key set ($key_len bytes)"
    elif ethtool -X "$IFACE" hkey "$key" 2>/dev/null; then
        echo "nic-setup: $IFACE: symmetric RSS key set ($key_len bytes; hash function unchanged)"
    else
        warn "$IFACE: driver refused the symmetric RSS key; if it has a symmetric hash (e.g. 'ethtool -X $IFACE hfunc xor' or 'symmetric-xor'), enable it, or run with --queues 0 after 'ethtool -L $IFACE combined 1'"
    fi
else
    warn "$IFACE: driver exposes no RSS key; with more than one queue both directions of a flow may land on different queues"
fi

# Hash TCP on addresses and ports (s d f n) so flows spread over queues.
ethtool -N "$IFACE" rx-flow-hash tcp4 sdfn 2>/dev/null || true
ethtool -N "$IFACE" rx-flow-hash tcp6 sdfn 2>/dev/null || true

for feature in rxvlan rx-vlan-filter gro lro; do
    ethtool -K "$IFACE" "$feature" off 2>/dev/null || true
done
# Report what stayed on: some drivers cannot turn VLAN stripping off.
if ethtool -k "$IFACE" 2>/dev/null | grep -q '^rx-vlan-offload: on'; then
    warn "$IFACE: rx VLAN offload is still on: VLAN tags are stripped before XDP (records lose the vlan field)"
fi

echo "nic-setup: $IFACE ready: $(ethtool -l "$IFACE" 2>/dev/null | awk '/Current hardware settings/ {c=1} c && /Combined:/ {print $2 " combined channel(s)"; exit}')"
