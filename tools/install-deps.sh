#!/usr/bin/env bash
# Installs the Debian 12 packages contra needs to build, test and run its
# default pipeline (OpenMPI for data-parallel runs: mpirun and the mpi
# backend; FreeType, DejaVu fonts and the word list for rendered_words,
# SentencePiece and libarchive for the cross-modal plugins; pybind11, Python's
# development files and numpy for the Python module). Run as root. Skips apt
# entirely when all are present.
#   tools/install-deps.sh          build and run
#   tools/install-deps.sh --test   also what the test suite needs: PyTorch
#                                  (python3-torch), the autograd oracle the
#                                  layer and encoder tests compare against;
#                                  clang-15 with libFuzzer and its OpenMP for
#                                  the fuzz targets (tools/fuzz.sh)
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config
  libtbb-dev libdnnl-dev ocl-icd-opencl-dev libboost-dev libtomlplusplus-dev
  nlohmann-json3-dev libcli11-dev catch2 zlib1g-dev libpng-dev libjpeg62-turbo-dev
  libopenmpi-dev openmpi-bin
  libfreetype-dev fonts-dejavu-core wamerican libsentencepiece-dev sentencepiece libarchive-dev
  pybind11-dev python3-dev python3-numpy
  dataset-fashion-mnist
)
case "${1:-}" in
  --test) packages+=(python3-torch clang-15 libfuzzer-15-dev libomp-15-dev) ;;
  "") ;;
  *) echo "usage: tools/install-deps.sh [--test]" >&2; exit 2 ;;
esac

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages already installed"
  exit 0
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"
