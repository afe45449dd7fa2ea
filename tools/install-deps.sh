#!/usr/bin/env bash
# Installs the Debian 12 packages contra needs to build, test and run its
# default pipeline. Run as root. Skips apt entirely when all are present.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config
  libtbb-dev libdnnl-dev ocl-icd-opencl-dev libboost-dev libtomlplusplus-dev
  catch2 zlib1g-dev libpng-dev libjpeg62-turbo-dev
  dataset-fashion-mnist
)

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
