#!/bin/sh
# install-deps.sh - the Debian packages the model recipe needs (data, training, export).
# Training uses Debian's CPU PyTorch, which belongs to /usr/bin/python3 (not a pyenv python).
set -eu
apt-get update
apt-get install -y --no-install-recommends python3-torch python3-numpy python3-mido \
    python3-matplotlib fluidsynth fluid-soundfont-gm sox libopenblas0-pthread
