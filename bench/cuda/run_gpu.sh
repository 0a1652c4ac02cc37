#!/bin/sh
# bench/cuda/run_gpu.sh - what the GPU machine has to run for the GPU renderer (bench/cuda/README.md): build
# the CUDA test and bench with bench/cuda/Makefile (skipped when build-cuda/ came along up to
# date), then one of
#   sh bench/cuda/run_gpu.sh            tests (device tests included), cuda_bench, PyTorch on the GPU
#   sh bench/cuda/run_gpu.sh sanitize   the device tests under compute-sanitizer (memcheck,
#                                       racecheck, synccheck, initcheck)
#   sh bench/cuda/run_gpu.sh quick      tests, and the bench at batches 1, 64 and 1024 only
# Each step's full output goes to $OUT (the device tool's result folder) or build-cuda/logs; the
# last lines of each are printed. Exit status 1 when any step failed.
set -u
cd "$(dirname "$0")/../.."
mode=${1:-all}
LOG=${OUT:-build-cuda/logs}
mkdir -p "$LOG"
status=0
step() {   # step NAME COMMAND...
  name=$1
  shift
  echo "== $name: $*"
  t0=$(date +%s)
  "$@" >"$LOG/$name.txt" 2>&1
  rc=$?
  tail -n 30 "$LOG/$name.txt"
  echo "== $name: exit $rc after $(($(date +%s) - t0)) s"
  [ $rc -eq 0 ] || status=1
}
{ nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,memory.total --format=csv; nvcc --version | tail -n 2; } \
  >"$LOG/gpu.txt" 2>&1
cat "$LOG/gpu.txt"
step build make -f bench/cuda/Makefile -j8 CMOCKA_OK=no
case $mode in
  sanitize)
    step sanitize make -f bench/cuda/Makefile sanitize CMOCKA_OK=no
    ;;
  quick)
    step test build-cuda/test_cuda
    step bench build-cuda/cuda_bench --batches 1,64,1024
    ;;
  *)
    step test build-cuda/test_cuda
    step bench build-cuda/cuda_bench
    step torch python3 bench/model_torch.py --device cuda --batches 1,8,64,256,1024 --samples 2400
    ;;
esac
echo "logs in $LOG"
exit $status
