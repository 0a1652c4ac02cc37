#!/bin/sh
# bench/stems_cost.sh - what stems and MIDI cost against the mix alone, end to end: a real
# coordinator and one synth worker (render threads 1) render the same cues twice, once with
# `deliver: [mix]` and once with `deliver: [mix, stems, midi]`, FLAC 24-bit + MP3 320 at
# 48 kHz stereo. Prints per job: wall time from submit to done (render + encode + transfer +
# store), the renders' summed worker time, files and bytes delivered. Part of `make bench`.
set -eu
cd "$(dirname "$0")/.."
BIN=${MG_BIN:-bin}
CUES=${CUES:-4}
DUR=${DUR:-30}
home=$(mktemp -d /tmp/mg-stems-bench-XXXXXX)
export MG_HOME="$home" MG_ENDPOINT="tcp://127.0.0.1:$((40000 + $$ % 10000))" MG_LOG_LEVEL=1
pids=""
cleanup() { for p in $pids; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$home"; }
trap cleanup EXIT INT TERM
"$BIN/mg-coordinator" 2>"$home/coordinator.log" &
pids="$pids $!"
until "$BIN/mgctl" --timeout 300 ping >/dev/null 2>&1; do sleep 0.1; done
"$BIN/mg-worker" --renderer synth --capacity 1 2>"$home/worker.log" &
pids="$pids $!"

job_file() { # $1 campaign, $2 deliver list
  printf 'campaign: %s\noutput:\n  formats: [flac, mp3]\n  flac_bit_depth: 24\n  mp3_bitrate: 320\n  deliver: %s\ncues:\n' "$1" "$2"
  i=0
  while [ $i -lt "$CUES" ]; do
    printf '  - name: cue%d\n    prompt: "upbeat pop jingle with drums"\n    emotions: [joyful]\n    duration: %s\n' $i "$DUR"
    i=$((i + 1))
  done
}

echo "stems cost: $CUES cues x $DUR s, FLAC 24-bit + MP3 320, 48 kHz stereo, synth renderer, 1 render at a time"
echo "machine: $(uname -m), $(nproc) cores, $(sed -n 's/^model name[^:]*: //p' /proc/cpuinfo | head -n 1)"
for deliver in "[mix]" "[mix, stems, midi]"; do
  name="bench-$(echo "$deliver" | tr -dc 'a-z')"
  job_file "$name" "$deliver" >"$home/$name.yaml"
  t0=$(date +%s.%N)
  "$BIN/mgctl" submit "$home/$name.yaml" --wait >/dev/null 2>&1
  t1=$(date +%s.%N)
  job=$(sqlite3 "$home/mg.db" "SELECT id FROM jobs WHERE campaign = '$name';")
  work=$(sqlite3 "$home/mg.db" "SELECT sum(finished_ms - started_ms) FROM audit_renders WHERE job_id = $job AND kind = 'mix' AND format = 'flac';")
  files=$(sqlite3 "$home/mg.db" "SELECT count(*) FROM audit_renders WHERE job_id = $job;")
  bytes=$(sqlite3 "$home/mg.db" "SELECT sum(output_bytes) FROM audit_renders WHERE job_id = $job;")
  awk -v d="$deliver" -v t0="$t0" -v t1="$t1" -v r="$work" -v f="$files" -v b="$bytes" -v n="$CUES" 'BEGIN { w = t1 - t0
    printf "  deliver %-20s wall %6.2f s (%.2f s per cue), worker %6.2f s per cue, %3d files, %7.1f MiB\n",
           d, w, w / n, r / 1000 / n, f, b / 1048576 }'
done
