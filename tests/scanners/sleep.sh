#!/bin/sh
# A command scanner that takes its time: sleep.sh SECONDS FILE sleeps, then says clean (exit 0).
# `exec` so that the process the sensor kills at its timeout is the sleep itself.
[ -f "$2" ] || { echo "sleep.sh: no file $2" >&2; exit 2; }
exec sleep "$1"
