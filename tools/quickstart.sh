#!/usr/bin/env bash
# Installs what is needed, builds contra and trains the quickstart pipeline
# on Fashion-MNIST. Extra arguments go to `contra run`, e.g. --set train.epochs=1
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DCONTRA_ARCH=native
cmake --build build
build/bin/contra run pipelines/quickstart.toml "$@"
