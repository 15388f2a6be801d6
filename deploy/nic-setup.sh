#!/bin/sh
# Prepares a capture NIC for xdpcarve. Run as root before starting the service (the systemd unit
# runs it as ExecStartPre with the config file).
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

usage() {
    cat <<'EOF'
usage: nic-setup.sh [--dry-run] IFACE [QUEUES]
       nic-setup.sh [--dry-run] --config /etc/xdpcarve/xdpcarve.toml

Prepares IFACE for xdpcarve: link up and promiscuous, QUEUES combined channels (optional, a
positive number), a symmetric RSS key, TCP flow hashing on addresses and ports, rx VLAN offload,
GRO and LRO off. With --config, IFACE is the config's [live] interface and QUEUES its [live]
queues when that is a number.

  --dry-run   print every command that would change the NIC, change nothing
  --config F  read the interface (and queue count) from an xdpcarve config file
  -h, --help  this text

Ends with what could not be done and why. Exit status: 0 when the link is up and promiscuous
(the rest are recommendations that improve capture), 1 when not, 2 on bad usage.
EOF
}

DRY_RUN=0
CONFIG=""
while [ $# -gt 0 ]; do
    case "$1" in
        -h|--help) usage; exit 0 ;;
        --dry-run|-n) DRY_RUN=1; shift ;;
        --config) [ $# -ge 2 ] || { echo "nic-setup: --config needs a file" >&2; exit 2; }; CONFIG=$2; shift 2 ;;
        --config=*) CONFIG=${1#--config=}; shift ;;
        --) shift; break ;;
        -*) echo "nic-setup: unknown option $1 (see --help)" >&2; exit 2 ;;
        *) break ;;
    esac
done

# A key of the [live] section of a TOML file: the value, quotes and comments removed.
live_key() { # file key
    awk -v key="$2" '
        /^[ \t]*\[/ { in_live = ($0 ~ /^[ \t]*\[live\][ \t]*(#.*)?$/); next }
        in_live && $0 ~ "^[ \t]*" key "[ \t]*=" {
            sub(/^[^=]*=[ \t]*/, ""); sub(/[ \t]*#.*$/, ""); gsub(/"/, ""); print; exit
        }' "$1"
}

if [ -n "$CONFIG" ]; then
    [ -r "$CONFIG" ] || { echo "nic-setup: cannot read config $CONFIG" >&2; exit 2; }
    IFACE=$(live_key "$CONFIG" interface)
    [ -n "$IFACE" ] || { echo "nic-setup: $CONFIG has no [live] interface; set it to the capture NIC" >&2; exit 2; }
    QUEUES=$(live_key "$CONFIG" queues)
    case "$QUEUES" in *[!0-9]*|"") QUEUES="" ;; esac # "all" or a list: leave the channels as they are
else
    [ $# -ge 1 ] || { usage >&2; exit 2; }
    IFACE=$1
    QUEUES=${2:-}
fi

case "$IFACE" in
    ""|*/*|.|..|*[!A-Za-z0-9_.:@-]*) echo "nic-setup: '$IFACE' is not an interface name" >&2; exit 2 ;;
esac
if [ ! -e "/sys/class/net/$IFACE" ]; then
    echo "nic-setup: no such interface $IFACE (see: ip -br link)" >&2
    exit 2
fi
case "$QUEUES" in
    "") ;;
    *[!0-9]*|0) echo "nic-setup: QUEUES must be a positive number of combined channels, not '$QUEUES'" >&2; exit 2 ;;
esac

NOT_DONE=""
not_done() { NOT_DONE="$NOT_DONE
  - $*"; }
# Runs a command that changes the NIC (prints it under --dry-run instead); false if it failed.
change() {
    if [ "$DRY_RUN" -eq 1 ]; then
        echo "+ $*"
        return 0
    fi
    "$@" >/dev/null 2>&1
}
say() { echo "nic-setup: $IFACE: $*"; }

ESSENTIAL=1
if change ip link set dev "$IFACE" up promisc on; then
    [ "$DRY_RUN" -eq 1 ] || say "up, promiscuous"
else
    ESSENTIAL=0
    not_done "link up + promiscuous: 'ip link set dev $IFACE up promisc on' failed (root? CAP_NET_ADMIN?)"
fi

if [ -n "$QUEUES" ]; then
    if change ethtool -L "$IFACE" combined "$QUEUES"; then
        [ "$DRY_RUN" -eq 1 ] || say "$QUEUES combined channels"
    else
        not_done "channels: the driver refused $QUEUES combined channels (it may use separate rx/tx channels: ethtool -l $IFACE)"
    fi
fi

# Key length differs per driver (40 bytes on ixgbe/i40e/mlx5, 52 on ice): ask for it (reading only).
key_len=$(ethtool -x "$IFACE" 2>/dev/null | awk '/RSS hash key:/ {getline; n=split($0, a, ":"); print n; exit}')
if [ -n "${key_len:-}" ] && [ "$key_len" -gt 1 ]; then
    key=$(i=0; while [ $i -lt "$key_len" ]; do
        if [ $((i % 2)) -eq 0 ]; then printf '6d'; else printf '5a'; fi
        i=$((i + 1)); [ $i -lt "$key_len" ] && printf ':'
    done)
    if change ethtool -X "$IFACE" hfunc toeplitz hkey "$key"; then
        [ "$DRY_RUN" -eq 1 ] || say "symmetric Toeplitz RSS key set ($key_len bytes)"
    elif change ethtool -X "$IFACE" hkey "$key"; then
        say "symmetric RSS key set ($key_len bytes; hash function unchanged)"
    else
        not_done "symmetric RSS: the driver refused the key; if it has a symmetric hash ('ethtool -X $IFACE hfunc xor' or symmetric-xor), enable it, or capture one queue ('ethtool -L $IFACE combined 1', [live] queues = \"0\")"
    fi
else
    not_done "symmetric RSS: the driver exposes no RSS key (ethtool -x $IFACE); with more than one queue the two directions of a flow may land on different queues"
fi

# Hash TCP on addresses and ports (s d f n) so flows spread over queues.
for proto in tcp4 tcp6; do
    change ethtool -N "$IFACE" rx-flow-hash "$proto" sdfn \
        || not_done "flow hashing: the driver does not take 'rx-flow-hash $proto sdfn' (flows spread by its default)"
done

for feature in rxvlan rx-vlan-filter gro lro; do
    change ethtool -K "$IFACE" "$feature" off || true
done
if [ "$DRY_RUN" -eq 0 ]; then
    # Report what stayed on: some drivers cannot turn VLAN stripping off.
    if ethtool -k "$IFACE" 2>/dev/null | grep -q '^rx-vlan-offload: on'; then
        not_done "rx VLAN offload is still on: VLAN tags are stripped before XDP (records lose the vlan field)"
    fi
    if ethtool -k "$IFACE" 2>/dev/null | grep -q '^large-receive-offload: on'; then
        not_done "LRO is still on: AF_PACKET tools beside xdpcarve see merged frames"
    fi
    channels=$(ethtool -l "$IFACE" 2>/dev/null | awk '/Current hardware settings/ {c=1} c && /Combined:/ {print $2; exit}')
    say "ready${channels:+: $channels combined channel(s)}"
fi

if [ -n "$NOT_DONE" ]; then
    echo "nic-setup: $IFACE: not done:$NOT_DONE" >&2
fi
[ "$ESSENTIAL" -eq 1 ] || exit 1
exit 0
