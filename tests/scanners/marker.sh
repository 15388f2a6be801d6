#!/bin/sh
# A command scanner: a JSON `malicious` verdict when FILE holds the test marker, else exit 0
# (clean). marker.sh FILE
[ -f "$1" ] || { echo "marker.sh: no file $1" >&2; exit 2; }
if grep -q 'XDPCARVE-TEST-MARKER' "$1"; then
    printf '%s\n' '{"verdict": "malicious", "signatures": ["Xdpcarve.Test.Marker"], "detail": "marker found"}'
fi
exit 0
