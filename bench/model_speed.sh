#!/bin/sh
# bench/model_speed.sh - speed of the neural renderer's CPU runtime against PyTorch eager, in one
# run on one machine: build/bench/model_bench (C: scalar reference and AVX2
# at batch 1, 4, 8, one and two threads, GFLOP/s) then bench/model_torch.py (the same network
# sampled one step at a time by PyTorch eager, one thread), then the ratios. Targets: >= 4x real
# time per core at batch 1; C >= 50x PyTorch eager. Record the figures in bench/RESULTS.md.
#   sh bench/model_speed.sh [MODEL.mgnn] [SECONDS]
set -eu
cd "$(dirname "$0")/.."
MODEL=${1:-models/default/mg-wavernn.mgnn}
SECONDS_=${2:-4}
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3
make -s build/bench/model_bench
out=$(mktemp)
trap 'rm -f "$out"' EXIT INT TERM
echo "== C runtime (build/bench/model_bench $MODEL $SECONDS_)"
build/bench/model_bench "$MODEL" "$SECONDS_" | tee "$out"
echo
echo "== PyTorch eager, same network (bench/model_torch.py)"
"$PY" bench/model_torch.py --threads 1 --samples 2400 | tee -a "$out"
echo
awk '
  /^avx2\+fma  *batch 1:/ { c1 = $4 }
  /^avx2\+fma  *batch 8:/ { c8 = $4; c8t = $11 }
  /^reference.*batch 1:/  { r1 = $6 }
  /^batch 1: / { t1 = $3 }
  /^batch 8: / { t8 = $3; t8t = $7 }
  END {
    if (t1 > 0 && c1 > 0) printf "ratio C avx2 / PyTorch eager, batch 1 per stream: %.0fx (target >= 50x)\n", c1 / t1
    if (t8t > 0 && c8t > 0) printf "ratio C avx2 / PyTorch eager, batch 8 in total (one thread each): %.0fx\n", c8t / t8t
    if (t1 > 0 && r1 > 0) printf "ratio C scalar reference / PyTorch eager, batch 1: %.1fx\n", r1 / t1
  }' "$out"
