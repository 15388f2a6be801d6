#!/bin/sh
# A command scanner that prints its first argument as its answer (a JSON verdict, or not) and
# exits 0: print.sh TEXT FILE. Exits 2 (an error verdict) when FILE is not a file.
[ -f "$2" ] || { echo "print.sh: no file $2" >&2; exit 2; }
printf '%s\n' "$1"
