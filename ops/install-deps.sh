#!/bin/sh
# Installs the Debian packages mg needs. Three sets:
#   sh ops/install-deps.sh          build and run (make, make demo): compilers, the C libraries,
#                                   flac and sqlite3 (the demo's audit query)
#   sh ops/install-deps.sh test     the above, plus what the tests check outputs with: cmocka,
#                                   python3-mido (MIDI files), fluidsynth + the FluidR3 GM
#                                   SoundFont (a delivered MIDI file must play in a GM synth)
#   sh ops/install-deps.sh fuzz     the first set, plus clang and its runtime libraries
#                                   (libclang-rt-dev: libFuzzer, ASan, UBSan) for `make fuzz`;
#                                   on Debian bookworm that is clang 14
# Training needs more (PyTorch, sox, ...): models/data/install-deps.sh.
# Called by `make demo` / `make test` when a dependency is missing (Makefile: deps, deps-test).
# Safe to run again: apt-get skips what is already installed.
set -eu

PACKAGES="build-essential pkg-config \
  libzmq3-dev libsqlite3-dev sqlite3 libsndfile1-dev \
  libavcodec-dev libavformat-dev libavutil-dev libswresample-dev \
  libyaml-dev libsodium-dev libebur128-dev flac"
case "${1:-run}" in
  run) ;;
  test) PACKAGES="$PACKAGES libcmocka-dev python3 python3-mido fluidsynth fluid-soundfont-gm" ;;
  fuzz) PACKAGES="$PACKAGES clang libclang-rt-dev" ;;
  *) echo "ops/install-deps.sh: unknown set '$1' (run, test or fuzz)" >&2; exit 2 ;;
esac

if [ "$(id -u)" != "0" ]; then
  echo "ops/install-deps.sh: needs root to install packages. Run:" >&2
  echo "  sudo apt-get update && sudo apt-get install -y --no-install-recommends $PACKAGES" >&2
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends $PACKAGES
