#!/bin/sh
# The on_malicious action of the tests: action.sh OUT appends what it reads on stdin (the file's
# record JSON with its verdicts) to OUT, then a newline.
cat >> "$1"
printf '\n' >> "$1"
