#!/bin/sh
# ops/down.sh - stops the coordinator and worker that ops/up.sh started (pid files in
# $MG_HOME, default ./mg-home). The worker gets SIGTERM first and finishes or hands back its
# renders; each is waited for up to 30 s. Does nothing for a process already gone.
set -eu
cd "$(dirname "$0")/.."
MG_HOME="${MG_HOME:-$PWD/mg-home}"
for name in worker coordinator; do
  f="$MG_HOME/$name.pid"
  [ -f "$f" ] || continue
  pid=$(cat "$f")
  # a stale pid file (reboot) may name another program now: only signal an mg binary
  if grep -q "mg-$name" "/proc/$pid/cmdline" 2>/dev/null && kill -TERM "$pid" 2>/dev/null; then
    i=0
    while kill -0 "$pid" 2>/dev/null; do
      i=$((i + 1))
      if [ $i -gt 300 ]; then echo "ops/down.sh: $name (pid $pid) did not stop in 30 s" >&2; exit 1; fi
      sleep 0.1
    done
    echo "mg: $name (pid $pid) stopped"
  fi
  rm -f "$f"
done
