#!/bin/sh
# tests/fuzz/run.sh BUILD SECONDS TARGET... - runs each libFuzzer target BUILD/fuzz_<t> for SECONDS
# under ASan+UBSan (how it was built), on a working corpus BUILD/corpus/<t> (new inputs go there)
# seeded from tests/fuzz/corpus/<t> (read only), with tests/fuzz/<t>.dict when there is one.
# Prints one line per target (time, executions, execs/s, corpus size, crash or not) and exits 1
# if any target crashed, leaked, timed out (10 s per input) or ran out of memory; the input is
# then in BUILD/artifacts/<t>/, to fix and add to tests/fuzz/corpus/<t>/. Called by `make fuzz`.
set -u
build=$1
seconds=$2
shift 2
bad=""
summary=""
for t in "$@"; do
  bin="$build/fuzz_$t"
  mkdir -p "$build/corpus/$t" "$build/artifacts/$t"
  log="$build/fuzz_$t.log"
  dict=""
  [ -f "tests/fuzz/$t.dict" ] && dict="-dict=tests/fuzz/$t.dict"
  echo "== fuzz_$t: $seconds s (log: $log)"
  # shellcheck disable=SC2086
  "$bin" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$build/artifacts/$t/" $dict "$build/corpus/$t" "tests/fuzz/corpus/$t" >"$log" 2>&1
  rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  rss=$(sed -n 's/^stat::peak_rss_mb: *//p' "$log" | tail -1)
  corpus=$(ls "$build/corpus/$t" | wc -l)
  crash=$(ls "$build/artifacts/$t" 2>/dev/null | head -1)
  if [ "$rc" -ne 0 ] || [ -n "$crash" ]; then
    what=$(grep -m1 -E '^(==[0-9]+==ERROR|SUMMARY|.*runtime error|.*fuzz invariant failed)' "$log")
    line="fuzz_$t: CRASH after ${execs:-?} execs: ${what:-exit $rc}; input: $build/artifacts/$t/${crash:-?}"
    bad="$bad $t"
  else
    line="fuzz_$t: $seconds s, ${execs:-?} execs, ${rate:-?} execs/s, corpus $corpus inputs, peak ${rss:-?} MB, no crash"
  fi
  echo "$line"
  summary="$summary$line
"
done
echo
printf '%s' "$summary"
[ -z "$bad" ] || { echo "crashed:$bad (inputs in $build/artifacts/)"; exit 1; }
