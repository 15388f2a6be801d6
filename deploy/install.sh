#!/usr/bin/env bash
# Installs a live xdpcarve sensor: binary, systemd unit, config, NIC script, README, and the
# state and log directories. Run from the repository after `cargo build --release`.
#
#   sudo deploy/install.sh                        # into /
#   DESTDIR=/tmp/root deploy/install.sh           # into a staging root (packaging, tests)
#   PREFIX=/opt/xdpcarve deploy/install.sh        # binary, script and docs under another prefix
#
# An existing /etc/xdpcarve/xdpcarve.toml is never overwritten: the new one goes beside it as
# xdpcarve.toml.new.
set -euo pipefail

usage() {
    sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'
    echo
    echo "options: --binary PATH (default target/release/xdpcarve), -h/--help"
}

REPO=$(cd "$(dirname "$0")/.." && pwd)
DESTDIR=${DESTDIR:-}
PREFIX=${PREFIX:-/usr/local}
BINARY=$REPO/target/release/xdpcarve
while [ $# -gt 0 ]; do
    case "$1" in
        -h|--help) usage; exit 0 ;;
        --binary) [ $# -ge 2 ] || { echo "install.sh: --binary needs a path" >&2; exit 2; }; BINARY=$2; shift 2 ;;
        *) echo "install.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
case "$PREFIX" in /*) ;; *) echo "install.sh: PREFIX must be an absolute path, not '$PREFIX'" >&2; exit 2 ;; esac
if [ ! -x "$BINARY" ]; then
    echo "install.sh: no binary at $BINARY: build it first (cargo build --release) or give --binary PATH" >&2
    exit 1
fi
if [ -z "$DESTDIR" ] && [ "$(id -u)" -ne 0 ]; then
    echo "install.sh: installing into / needs root (or give DESTDIR=/staging/root)" >&2
    exit 1
fi

root=${DESTDIR%/}
put() { # mode source destination
    install -D -m "$1" "$2" "$root$3"
    echo "  $3"
}

echo "install.sh: installing into ${DESTDIR:-/}"
put 755 "$BINARY" "$PREFIX/bin/xdpcarve"
put 755 "$REPO/deploy/nic-setup.sh" "$PREFIX/lib/xdpcarve/nic-setup.sh"
put 644 "$REPO/README.md" "$PREFIX/share/doc/xdpcarve/README.md"

# The unit names /usr/local paths: rewrite them for another prefix.
unit=$(mktemp)
trap 'rm -f "$unit"' EXIT
sed "s#/usr/local/#$PREFIX/#g" "$REPO/deploy/xdpcarve.service" >"$unit"
put 644 "$unit" /etc/systemd/system/xdpcarve.service

config=/etc/xdpcarve/xdpcarve.toml
if [ -e "$root$config" ]; then
    put 640 "$REPO/deploy/xdpcarve.toml" "$config.new"
    echo "install.sh: kept your $config; the shipped one is $config.new (compare: diff $config $config.new)"
else
    put 640 "$REPO/deploy/xdpcarve.toml" "$config"
fi

# systemd creates and owns these for the service's dynamic user; made here so a staging root and
# a first manual run (xdpcarve check) find them.
install -d -m 750 "$root/var/lib/xdpcarve" "$root/var/log/xdpcarve"
echo "  /var/lib/xdpcarve/ /var/log/xdpcarve/"

if [ -z "$DESTDIR" ] && [ -d /run/systemd/system ]; then
    systemctl daemon-reload
fi

cat <<NEXT

Next:
  1. set [live] interface (and the [webhook] url and token file) in $config
  2. $PREFIX/bin/xdpcarve check --config $config      # validates config, NIC, paths, webhook
  3. $PREFIX/lib/xdpcarve/nic-setup.sh --dry-run --config $config
  4. systemctl daemon-reload && systemctl enable --now xdpcarve
NEXT
