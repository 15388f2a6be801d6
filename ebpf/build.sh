#!/bin/sh
# Compiles the XDP program into ebpf/xdpcarve.bpf.o (committed; embedded by userspace/xdpcarve-xdp).
#
# Deterministic on purpose: fixed compiler (clang-14), fixed flags, no system headers, and the
# source referred to by a relative path with the compilation directory recorded as ".", so no
# absolute path of this machine ends up in the object's debug info. The test
# `committed_object_matches_source` in xdpcarve-xdp rebuilds and compares byte for byte.
#
# Usage: ebpf/build.sh [OUTPUT]   (default: ebpf/xdpcarve.bpf.o)
set -eu
CLANG=${CLANG:-clang-14}
cd "$(dirname "$0")"
out=${1:-xdpcarve.bpf.o}
exec "$CLANG" -O2 -g -target bpf -mcpu=v2 \
	-nostdinc -ffreestanding -Wall -Werror \
	-fdebug-compilation-dir=. -fdebug-prefix-map="$PWD"=. -fno-ident \
	-c xdpcarve.bpf.c -o "$out"
