#!/bin/sh
# ops/up.sh - starts a coordinator and a worker in the background on this machine, for
# trying mgctl by hand after `make demo` (which stops the ones it started when it ends).
# State in $MG_HOME (default ./mg-home, the demo's), endpoint $MG_ENDPOINT (default the
# demo's, tcp://127.0.0.1:5555); logs and pid files in $MG_HOME. Stop them with ops/down.sh.
# Does nothing when a coordinator already answers at the endpoint.
set -eu
cd "$(dirname "$0")/.."
BIN=${MG_BIN:-bin}
export MG_HOME="${MG_HOME:-$PWD/mg-home}"
export MG_ENDPOINT="${MG_ENDPOINT:-tcp://127.0.0.1:5555}"
mkdir -p "$MG_HOME"
if [ ! -x "$BIN/mg-coordinator" ] || [ ! -x "$BIN/mg-worker" ] || [ ! -x "$BIN/mgctl" ]; then
  echo "ops/up.sh: $BIN/ has no mg binaries yet: run 'make' first" >&2
  exit 1
fi
if "$BIN/mgctl" --timeout 500 ping >/dev/null 2>&1; then
  echo "mg: a coordinator already answers at $MG_ENDPOINT"
  exit 0
fi
nohup "$BIN/mg-coordinator" >>"$MG_HOME/coordinator.log" 2>&1 &
echo $! >"$MG_HOME/coordinator.pid"
i=0
until "$BIN/mgctl" --timeout 500 ping >/dev/null 2>&1; do
  i=$((i + 1))
  if [ $i -gt 25 ] || ! kill -0 "$(cat "$MG_HOME/coordinator.pid")" 2>/dev/null; then
    echo "ops/up.sh: the coordinator did not start; the end of $MG_HOME/coordinator.log:" >&2
    tail -5 "$MG_HOME/coordinator.log" >&2
    rm -f "$MG_HOME/coordinator.pid"
    exit 1
  fi
  sleep 0.2
done
nohup "$BIN/mg-worker" >>"$MG_HOME/worker.log" 2>&1 &
echo $! >"$MG_HOME/worker.pid"
sleep 0.3
if ! kill -0 "$(cat "$MG_HOME/worker.pid")" 2>/dev/null; then
  echo "ops/up.sh: the worker stopped at start; the end of $MG_HOME/worker.log:" >&2
  tail -5 "$MG_HOME/worker.log" >&2
  rm -f "$MG_HOME/worker.pid"
  exit 1
fi
echo "mg: coordinator (pid $(cat "$MG_HOME/coordinator.pid")) and worker (pid $(cat "$MG_HOME/worker.pid")) at $MG_ENDPOINT, MG_HOME=$MG_HOME; stop them with: sh ops/down.sh"
