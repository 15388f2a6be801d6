#!/bin/sh
# A command scanner that crashes: it kills itself with SIGSEGV (the verdict must be `error`).
kill -s SEGV $$
sleep 5
exit 0
