#!/bin/sh
# ops/demo.sh - the main job, end to end on one machine (called by `make demo`):
# start a coordinator and a worker, submit jobs/ad-campaign.yaml, show progress, then print
# the output files and an audit query. State goes to $MG_HOME (default ./mg-home).
set -eu
cd "$(dirname "$0")/.."
BIN=${MG_BIN:-bin}
export MG_HOME="${MG_HOME:-$PWD/mg-home}"
export MG_ENDPOINT="${MG_ENDPOINT:-tcp://127.0.0.1:5555}"
JOB=${1:-jobs/ad-campaign.yaml}
mkdir -p "$MG_HOME"
echo "mg demo: MG_HOME=$MG_HOME, coordinator at $MG_ENDPOINT"

pids=""
cleanup() {
  for p in $pids; do kill "$p" 2>/dev/null || true; done
  for p in $pids; do wait "$p" 2>/dev/null || true; done
}
trap cleanup EXIT INT TERM

if "$BIN/mgctl" --timeout 500 ping >/dev/null 2>&1; then
  echo "mg demo: using the coordinator already running at $MG_ENDPOINT"
else
  "$BIN/mg-coordinator" >"$MG_HOME/coordinator.log" 2>&1 &
  pids="$pids $!"
  # The worker's default renderer is the neural one (wavernn, models/default/mg-wavernn.mgnn);
  # MG_RENDERER=synth make demo runs the procedural one instead.
  "$BIN/mg-worker" >"$MG_HOME/worker.log" 2>&1 &
  worker=$!
  pids="$pids $worker"
  i=0
  until "$BIN/mgctl" --timeout 500 ping >/dev/null 2>&1; do
    i=$((i + 1))
    if [ $i -gt 20 ]; then echo "mg demo: the coordinator did not start; see $MG_HOME/coordinator.log" >&2; exit 1; fi
    sleep 0.2
  done
  sleep 0.3
  if ! kill -0 "$worker" 2>/dev/null; then
    echo "mg demo: the worker stopped at start:" >&2
    cat "$MG_HOME/worker.log" >&2
    exit 1
  fi
  sed -n 's/.* info: \(model .*\)/mg demo: worker renders with \1/p' "$MG_HOME/worker.log"
fi
start=$(date +%s)

"$BIN/mgctl" submit "$JOB" --wait
echo "mg demo: rendered in $(($(date +%s) - start)) s"
# Submitting again is idempotent: it answers with the same job id and adds nothing.
job=$("$BIN/mgctl" submit "$JOB" --json | sed -n 's/.*"job_id": *"\([0-9]*\)".*/\1/p')
echo
echo "Files written:"
sqlite3 "$MG_HOME/mg.db" "SELECT '  $MG_HOME/outputs/' || output_path FROM audit_renders WHERE job_id = $job ORDER BY render_id, format;"
echo
echo "Audit (plain SQL over the audit_renders view):"
q="SELECT cue, variation, kind, part, format, seed, model_name, substr(output_sha256, 1, 16) AS sha256, output_path FROM audit_renders WHERE job_id = $job ORDER BY render_id, format;"
echo "  sqlite3 -header -column $MG_HOME/mg.db \"$q\""
if command -v sqlite3 >/dev/null 2>&1; then
  sqlite3 -header -column "$MG_HOME/mg.db" "$q"
fi
echo
"$BIN/mgctl" audit verify

# Closing hints: the demo stops the coordinator and worker it started when it exits, so each
# hint that needs a coordinator comes after the line that starts one again. Copy-paste as is
# (tests/test_demo.c runs them).
env=""
[ "$MG_HOME" = "$PWD/mg-home" ] || env="MG_HOME=$MG_HOME "
[ "$MG_ENDPOINT" = "tcp://127.0.0.1:5555" ] || env="${env}MG_ENDPOINT=$MG_ENDPOINT "
file=$(sqlite3 "$MG_HOME/mg.db" "SELECT output_path FROM audit_renders WHERE job_id = $job AND format = 'flac' ORDER BY render_id LIMIT 1;")
midi=$(sqlite3 "$MG_HOME/mg.db" "SELECT output_path FROM audit_renders WHERE job_id = $job AND kind = 'midi' ORDER BY render_id LIMIT 1;")
echo "Try it yourself (the demo stops its coordinator and worker now; the first line starts them again):"
echo "  ${env}sh ops/up.sh"
echo "  ${env}$BIN/mgctl status $job"
[ -n "$file" ] && echo "  ${env}$BIN/mgctl verify $MG_HOME/outputs/$file"
[ -n "$midi" ] && echo "  ${env}$BIN/mgctl verify $MG_HOME/outputs/$midi      # MIDI files too, by their sha256"
echo "  ${env}$BIN/mgctl audit provenance --job $job --limit 3"
echo "  ${env}$BIN/mgctl fetch $job --dest $MG_HOME/fetched      # from any machine that reaches the coordinator"
echo "  ${env}sh ops/down.sh"
