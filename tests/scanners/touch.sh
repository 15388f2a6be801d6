#!/bin/sh
# A command scanner that leaves a trace: touch.sh TRACE FILE appends FILE's path to TRACE and says
# clean. A test puts it after a scanner that stops the chain, and checks TRACE never appears.
printf '%s\n' "$2" >> "$1"
exit 0
