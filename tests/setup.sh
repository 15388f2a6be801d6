#!/usr/bin/env bash
# Installs what the test suite needs, when it is missing. Idempotent; fast (< 2 s) when all is present.
# Meant for a fresh Debian 12 machine with only the Rust toolchain, run as root. When not root it only
# reports what is missing and carries on: the tests that need a missing tool skip (or fail under CI=1).
#
# To add a dependency, append it to APT_PACKAGES (Debian package name) or PIP_PACKAGES below.
set -uo pipefail

# Debian packages the tests (and the eBPF build) use.
APT_PACKAGES=(
    tcpdump          # real_clients/live_capture: capture on veths
    tcpreplay        # live_capture: replay captures onto an interface
    curl             # real_clients: HTTP client
    swaks            # real_clients: SMTP client
    exim4-daemon-light # real_clients: the one real SMTP client here that sends BDAT (CHUNKING)
    iproute2         # ip netns / ip link / tc
    ethtool          # turn veth offloads off so captures hold MSS-sized segments
    python3          # the HTTP server and SMTP sink in tests/support/ (stdlib only)
    clang-14         # ebpf/: XDP program build
    llvm-14
    libbpf-dev
    gcc-multilib     # asm/types.h for BPF target builds
    valgrind         # bench: callgrind instruction counts
    time             # flood: GNU time (/usr/bin/time -f %M) measures a run's peak RSS
    systemd          # deploy: systemd-analyze verify / security on the installed unit (offline)
    prometheus       # observability: promtool check/test rules, a real Prometheus scraping xdpcarve
    clamav-daemon    # scanners: clamd, started by the test itself with a test-only signature database
    redis-server     # fleet: redis-server (one, a 3-node Cluster, TLS) and redis-cli, started by the test
    openssl          # fleet: a test CA and server certificate for Redis over TLS
)

# Python packages (pip). The test servers use only the standard library, so none today.
PIP_PACKAGES=(
)

missing_apt=()
# One dpkg-query call for all packages: "<package> <status-abbrev>" lines; "ii" means installed.
while read -r pkg status; do
    [[ "$status" == ii* ]] || missing_apt+=("$pkg")
done < <(dpkg-query -W -f='${Package} ${db:Status-Abbrev}\n' "${APT_PACKAGES[@]}" 2>/dev/null)
# Packages dpkg has never heard of print nothing above: add them too.
for pkg in "${APT_PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Package}\n' "$pkg" >/dev/null 2>&1; then
        [[ " ${missing_apt[*]-} " == *" $pkg "* ]] || missing_apt+=("$pkg")
    fi
done

# Debian's clamav-daemon and clamav-freshclam services start after install (where an init system
# runs) and freshclam tries to download signature databases: the scanner tests start their own clamd
# with their own database, so stop both services and keep them from starting at boot. Whether
# systemd runs or not (a container: the SysV scripts, or nothing at all), and quietly when they are
# not installed or not running.
quiet_clamav_services() {
    local units=(clamav-freshclam clamav-daemon)
    if [[ -d /run/systemd/system ]] && command -v systemctl >/dev/null 2>&1; then
        systemctl disable --now clamav-daemon.socket "${units[@]}" >/dev/null 2>&1 || true
        return
    fi
    local unit pid
    for unit in "${units[@]}"; do
        [[ -x /etc/init.d/$unit ]] || continue
        # Their SysV scripts stop by pidfile (never the tests' own clamd); only when one exists.
        for pid in /run/clamav/clamd.pid /run/clamav/daemon-clamd.pid /run/clamav/freshclam.pid; do
            [[ -e $pid ]] && { /etc/init.d/"$unit" stop >/dev/null 2>&1 || true; break; }
        done
        if compgen -G "/etc/rc[2-5].d/S*$unit" >/dev/null && command -v update-rc.d >/dev/null 2>&1; then
            update-rc.d "$unit" disable >/dev/null 2>&1 || true
        fi
    done
    return 0
}

# Debian's prometheus package starts a server (and node exporter) where an init system runs; the
# observability test starts its own on a free port, so stop those and keep them from starting.
quiet_prometheus_services() {
    local units=(prometheus prometheus-node-exporter) unit
    if [[ -d /run/systemd/system ]] && command -v systemctl >/dev/null 2>&1; then
        systemctl disable --now "${units[@]}" >/dev/null 2>&1 || true
        return 0
    fi
    for unit in "${units[@]}"; do
        [[ -x /etc/init.d/$unit ]] || continue
        /etc/init.d/"$unit" status >/dev/null 2>&1 && { /etc/init.d/"$unit" stop >/dev/null 2>&1 || true; }
        if command -v update-rc.d >/dev/null 2>&1; then
            update-rc.d "$unit" disable >/dev/null 2>&1 || true
        fi
    done
    return 0
}

# Debian's redis-server package starts a server on 6379 where an init system runs; the fleet
# tests start their own on ports of their own, so stop it and keep it from starting.
quiet_redis_services() {
    if [[ -d /run/systemd/system ]] && command -v systemctl >/dev/null 2>&1; then
        systemctl disable --now redis-server >/dev/null 2>&1 || true
        return 0
    fi
    [[ -x /etc/init.d/redis-server ]] || return 0
    [[ -e /run/redis/redis-server.pid ]] && { /etc/init.d/redis-server stop >/dev/null 2>&1 || true; }
    if command -v update-rc.d >/dev/null 2>&1; then
        update-rc.d redis-server disable >/dev/null 2>&1 || true
    fi
    return 0
}

missing_pip=()
for mod in "${PIP_PACKAGES[@]}"; do
    python3 -m pip show -q "$mod" >/dev/null 2>&1 || missing_pip+=("$mod")
done

if [[ ${#missing_apt[@]} -eq 0 && ${#missing_pip[@]} -eq 0 ]]; then
    [[ $(id -u) -eq 0 ]] && { quiet_clamav_services; quiet_prometheus_services; quiet_redis_services; }
    echo "setup.sh: all test dependencies present"
    exit 0
fi

if [[ $(id -u) -ne 0 ]]; then
    echo "setup.sh: not root; missing (tests needing them will skip): ${missing_apt[*]-} ${missing_pip[*]-}" >&2
    exit 0
fi

status=0
if [[ ${#missing_apt[@]} -gt 0 ]]; then
    echo "setup.sh: installing Debian packages: ${missing_apt[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq || { echo "setup.sh: apt-get update failed" >&2; status=1; }
    apt-get install -y -qq --no-install-recommends "${missing_apt[@]}" \
        || { echo "setup.sh: apt-get install failed for: ${missing_apt[*]}" >&2; status=1; }
    quiet_clamav_services
    quiet_prometheus_services
    quiet_redis_services
fi
if [[ ${#missing_pip[@]} -gt 0 ]]; then
    echo "setup.sh: installing Python packages: ${missing_pip[*]}"
    python3 -m pip install -q "${missing_pip[@]}" \
        || { echo "setup.sh: pip install failed for: ${missing_pip[*]}" >&2; status=1; }
fi
# A failed install is reported, not fatal: the tests that need the tool decide (skip, or fail under CI).
exit 0
