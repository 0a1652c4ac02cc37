#!/bin/sh
# Installs the Debian packages mg needs to build, test and run: the C libraries, plus the
# real decoders and parsers the tests check outputs with (flac/metaflac, python3-mido for
# MIDI files, fluidsynth + the FluidR3 GM SoundFont for rendering scores).
# Called by `make demo` / `make test` when a dependency is missing (see Makefile: deps-check).
# Safe to run again: apt-get skips what is already installed.
set -eu

PACKAGES="build-essential pkg-config \
  libzmq3-dev libsqlite3-dev sqlite3 libsndfile1-dev \
  libavcodec-dev libavformat-dev libavutil-dev libswresample-dev \
  libyaml-dev libcmocka-dev libsodium-dev libebur128-dev \
  flac python3 python3-mido fluidsynth fluid-soundfont-gm"

if [ "$(id -u)" != "0" ]; then
  echo "ops/install-deps.sh: needs root to install packages. Run:" >&2
  echo "  sudo apt-get update && sudo apt-get install -y --no-install-recommends $PACKAGES" >&2
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends $PACKAGES
