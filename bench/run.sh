#!/bin/sh
# bench/run.sh - coordinator throughput figures (make bench). Prints:
#   1. the database ceiling (store_bench: submit 10,000 renders; lease+complete per second)
#   2. end to end on loopback: mgctl submit of a 10,000-render file, then a real coordinator
#      and WORKERS test workers (instant test renderer, tiny WAV outputs) finishing N renders.
#   3. one 210 MiB result in chunks from a test worker to a coordinator (result_transfer):
#      MB/s, the coordinator's and the worker's peak memory.
# Record the figures with the machine in bench/RESULTS.md.
set -eu
cd "$(dirname "$0")/.."
BIN=${MG_BIN:-bin}
BUILD=${MG_BUILD:-build}
N=${N:-2000}
WORKERS=${WORKERS:-2}
CAPACITY=${CAPACITY:-8}

echo "machine: $(uname -m), $(nproc) cores, $(sed -n 's/^model name[^:]*: //p' /proc/cpuinfo | head -n 1)"
echo
echo "== 1. store only (no network)"
"$BUILD/bench/store_bench" "$N" 2>/dev/null

echo
echo "== 2. end to end on loopback ($WORKERS workers x capacity $CAPACITY, instant renders)"
home=$(mktemp -d /tmp/mg-bench-XXXXXX)
export MG_HOME="$home" MG_ENDPOINT="tcp://127.0.0.1:$((30000 + $$ % 10000))" MG_LOG_LEVEL=1
pids=""
cleanup() { for p in $pids; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$home"; }
trap cleanup EXIT INT TERM
"$BIN/mg-coordinator" 2>"$home/coordinator.log" &
pids="$pids $!"

# A 10,000-render file: 250 cues x 40 variations.
big="$home/big.yaml"
{ printf 'campaign: bench-big\noutput:\n  formats: [wav]\n  sample_rate: 8000\n  channels: 1\ncues:\n'
  i=0; while [ $i -lt 250 ]; do printf '  - name: c%d\n    prompt: "p %d"\n    duration: 0.05\n    variations: 40\n' $i $i; i=$((i + 1)); done
} > "$big"
until "$BIN/mgctl" --timeout 300 ping >/dev/null 2>&1; do sleep 0.1; done
t0=$(date +%s%N)
"$BIN/mgctl" submit "$big" >/dev/null
t1=$(date +%s%N)
echo "mgctl submit of 10,000 renders (parse locally, send, parse + store + fsync, ack): $(( (t1 - t0) / 1000000 )) ms"
"$BIN/mgctl" cancel 1 >/dev/null

# Throughput: N renders, each a 0.05 s WAV at 8 kHz.
job="$home/job.yaml"
per=$((N / 50))
{ printf 'campaign: bench\noutput:\n  formats: [wav]\n  sample_rate: 8000\n  channels: 1\ncues:\n'
  i=0; while [ $i -lt 50 ]; do printf '  - name: c%d\n    prompt: "p %d"\n    duration: 0.05\n    variations: %d\n' $i $i $per; i=$((i + 1)); done
} > "$job"
w=0
while [ $w -lt "$WORKERS" ]; do
  MG_TEST_RENDER_MS=0 "$BUILD/tests/mg-worker-test" --renderer test --capacity "$CAPACITY" 2>"$home/worker$w.log" &
  pids="$pids $!"
  w=$((w + 1))
done
sleep 0.5
t2=$(date +%s%N)
"$BIN/mgctl" submit "$job" >/dev/null
until [ "$(sqlite3 "$home/mg.db" "SELECT state FROM jobs WHERE id = 2")" = "done" ]; do sleep 0.05; done
t3=$(date +%s%N)
ms=$(( (t3 - t2) / 1000000 ))
done_n=$(sqlite3 "$home/mg.db" "SELECT count(*) FROM renders WHERE job_id = 2 AND state = 'done'")
echo "leased, rendered, delivered and committed: $done_n renders in $ms ms = $(( done_n * 1000 / (ms > 0 ? ms : 1) )) renders/s"
echo "(each render: LEASE, RESULT with one WAV, sha256 check, atomic file write + fsync, one SQLite commit with provenance)"

echo
echo "== 3. a 210 MiB result in chunks, worker -> coordinator on loopback"
"$BUILD/bench/result_transfer"

echo
echo "== 4. what stems and MIDI cost against the mix alone (real coordinator + synth worker)"
sh bench/stems_cost.sh
