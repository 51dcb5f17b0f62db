#!/usr/bin/env bash
# Runs the whole test suite and ends with one line that totals every
# `test result:` line cargo printed, so the last word of a run is the count of
# tests that ran (cargo's own last line is the doc-test run, often 0 tests).
set -uo pipefail
log=$(mktemp)
trap 'rm -f "$log"' EXIT
"$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
awk '/^test result:/ { p += $4; f += $6 }
     END { printf "total: %d passed, %d failed\n", p, f }' "$log"
exit "$status"
