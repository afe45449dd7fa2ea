#!/usr/bin/env bash
# Prepares, on a Debian 12 machine with apt, the packages a GPU machine needs
# to build contra but cannot fetch (it reaches no package registry and its
# image has none of contra's Debian libraries): oneTBB, oneDNN, Boost,
# toml++, nlohmann-json, CLI11, Catch2, zlib, libpng, libjpeg and what they
# depend on, as .deb files (about 20 MiB). Nothing is installed here. tests/gpu/run.sh --deps DIR
# unpacks them into a private prefix on the GPU machine and builds against it.
#
# Usage: tools/prepare-gpu-deps.sh [DIR]   (default: .device/debs, git-ignored)
# Then carry DIR's top folder with the call (docs/gpu.md: "On a GPU machine
# that reaches no registry").
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dir=${1:-$root/.device/debs}

# What contra's CMakeLists find_package()s (CLI11 too: configuring needs it,
# though the GPU run builds no CLI). ocl-icd-opencl-dev is only a Recommends
# of libdnnl-dev, but Debian's dnnl-config.cmake requires OpenCL.
roots=(libtbb-dev libdnnl-dev ocl-icd-opencl-dev libboost-dev libtomlplusplus-dev nlohmann-json3-dev
       libcli11-dev catch2 zlib1g-dev libpng-dev libjpeg62-turbo-dev)
# Left out: the C/C++ toolchain and the C runtime with its own dependencies.
# The GPU image has them (nvcc needs a host g++), and Debian's copies would
# fight the image's own.
toolchain='^(gcc-[0-9]+-base|libc6|libc6-dev|libc-dev-bin|libgcc-s1|libgcc-[0-9]+-dev|libstdc\+\+6|libstdc\+\+-[0-9]+-dev|libgomp1|libatomic1|libitm1|libquadmath0|libasan[0-9]+|liblsan0|libtsan[0-9]+|libubsan1|linux-libc-dev|libcrypt1|libcrypt-dev|libnsl2|libnsl-dev|libtirpc[0-9]*|libtirpc-dev|libtirpc-common|rpcsvc-proto|libssl3|libkrb5-3|libkrb5support0|libk5crypto3|libgssapi-krb5-2|libkeyutils1|libcom-err2|libudev1)$'

if ! apt-cache show libdnnl-dev >/dev/null 2>&1; then
  echo "prepare-gpu-deps: apt knows no libdnnl-dev; run 'apt-get update' first (Debian 12 sources)" >&2
  exit 1
fi
mapfile -t packages < <(
  apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts --no-breaks \
    --no-replaces --no-enhances "${roots[@]}" |
    grep -v '^ ' | grep -v '^<' | sort -u | grep -Ev "$toolchain")
echo "prepare-gpu-deps: ${#packages[@]} packages: ${packages[*]}"

mkdir -p "$dir"
rm -f "$dir"/*.deb
# apt-get download writes into the current directory; as root it warns that
# the _apt user cannot write there, harmlessly.
(cd "$dir" && apt-get download -q "${packages[@]}" 2>&1 | grep -v "couldn't be accessed by user '_apt'" || true)
got=$(find "$dir" -maxdepth 1 -name '*.deb' | wc -l)
if (( got != ${#packages[@]} )); then
  echo "prepare-gpu-deps: downloaded $got of ${#packages[@]} packages into $dir" >&2
  exit 1
fi
(cd "$dir" && sha256sum -- *.deb >SHA256SUMS)
echo "prepare-gpu-deps: $got packages, $(du -sh "$dir" | cut -f1) in $dir"
echo "carry it with the device call: carry [\"$(realpath --relative-to="$root" "$dir" | cut -d/ -f1)\"]"
