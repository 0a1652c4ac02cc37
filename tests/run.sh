#!/bin/sh
# tests/run.sh - runs every cmocka test binary given as arguments, then prints one summary
# line "N passed, N failed, N skipped" (test cases, summed over binaries; a skipped case, such as
# a GPU test on a machine without a GPU, is neither a pass nor a failure). Called by `make test`.
# A binary that crashes or exits non-zero without a cmocka summary counts as one failure.
set -u
passed=0
failed=0
skipped=0
failed_bins=""
log=$(mktemp)
for bin in "$@"; do
  echo "== $bin"
  "$bin" >"$log" 2>&1
  rc=$?
  cat "$log"
  p=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' "$log" | awk '{s+=$1} END {print s+0}')
  f=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' "$log" | awk '{s+=$1} END {print s+0}')
  k=$(sed -n 's/^\[  SKIPPED \] \([0-9]*\) test.*/\1/p' "$log" | awk '{s+=$1} END {print s+0}')
  skipped=$((skipped + k))
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
  passed=$((passed + p))
  failed=$((failed + f))
  [ "$rc" -ne 0 ] && failed_bins="$failed_bins $bin"
done
rm -f "$log"
echo
[ -n "$failed_bins" ] && echo "failing:$failed_bins"
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ] && [ -z "$failed_bins" ]
