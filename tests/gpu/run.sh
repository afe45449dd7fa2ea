#!/usr/bin/env bash
# The GPU checks in one go, for a machine with an NVIDIA GPU (H100/H200,
# sm_90): report the GPU, driver and toolkit; configure with CONTRA_CUDA=ON;
# build only what the GPU run needs (every test executable labelled `gpu`:
# libcontra_cuda's tests, the copy stage, each *_cuda plugin against its CPU
# build, the train step on the device, and the GPU benchmarks); run the `gpu`
# tests, then the benchmarks (ntxent_cuda; gpu_train_step, the SimCLR step and
# epoch against PyTorch run with $PYTHON or python3), printing their figures.
# A [gpu] test that skips is a failure here: on this machine the GPU must work.
#
# Usage: tests/gpu/run.sh [--deps DIR] [--logs DIR] [--cpu-dry-run] [BUILD_DIR]
#   --deps DIR     build against the Debian packages in DIR (.deb files from
#                  tools/prepare-gpu-deps.sh), unpacked into BUILD_DIR/deps
#                  without touching the system; for a GPU machine whose image
#                  lacks them. Nothing may come from /usr: the build ignores
#                  the /usr prefix and the script fails if any header or
#                  library of those packages was taken from the system.
#   --logs DIR     copy the configure, build and test logs there.
#   --cpu-dry-run  on a machine without a GPU: the same build; the [gpu] tests
#                  must skip (and nothing fail), the benchmarks must say that
#                  no GPU is usable.
#   BUILD_DIR      default: build-gpu in this repo's root.
# CONTRA_GPU_RUN_BUDGET (seconds, default 460): the benchmarks are started
# only while time is left, so a run fits a 10-minute device call.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
deps="" logs="" dry_run=0 build=""
while (( $# )); do
  case "$1" in
    --deps) deps=$(realpath "$2"); shift 2 ;;
    --logs) logs=$2; shift 2 ;;
    --cpu-dry-run) dry_run=1; shift ;;
    -*) echo "usage: tests/gpu/run.sh [--deps DIR] [--logs DIR] [--cpu-dry-run] [BUILD_DIR]" >&2; exit 2 ;;
    *) build=$1; shift ;;
  esac
done
build=$(realpath -m "${build:-$root/build-gpu}")
budget=${CONTRA_GPU_RUN_BUDGET:-460}
jobs=$(nproc)
t0=$(date +%s)
elapsed() { echo $(( $(date +%s) - t0 )); }
mkdir -p "$build"
status=0
save_logs() { if [[ -n $logs ]]; then mkdir -p "$logs"; cp -f "$build"/gpu-*.log "$logs"/ 2>/dev/null || true; fi; }
trap save_logs EXIT

echo "== machine"
if command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap \
     --format=csv,noheader; then
  :
elif (( dry_run )); then
  echo "no GPU (dry run)"
else
  echo "error: nvidia-smi found no GPU; nothing to check here (on a CPU machine, use --cpu-dry-run)"
  exit 1
fi
nvcc=${CUDACXX:-$(command -v nvcc || true)}
[[ -z $nvcc && -x /usr/local/cuda/bin/nvcc ]] && nvcc=/usr/local/cuda/bin/nvcc
if [[ -z $nvcc ]]; then
  echo "error: no nvcc (set CUDACXX=/path/to/nvcc)"; exit 1
fi
cuda_root=$(dirname "$(dirname "$(realpath "$nvcc")")")
echo "nvcc: $nvcc ($("$nvcc" --version | grep -o 'release [0-9.]*'))"
echo "host compiler: $(${CXX:-c++} --version | head -1); cmake: $(cmake --version | head -1); $(nproc) cores"
py=${PYTHON:-python3}
"$py" -c 'import torch; print("peer: PyTorch", torch.__version__, "CUDA", torch.version.cuda, "cuDNN", torch.backends.cudnn.version())' \
  2>/dev/null || echo "peer: no PyTorch for $py (gpu_train_step runs without it)"

configure=(-DCMAKE_BUILD_TYPE=Release -DCONTRA_CUDA=ON -DCMAKE_CUDA_COMPILER="$nvcc"
           -DCMAKE_CUDA_ARCHITECTURES="90-real;90-virtual" -DCONTRA_ARCH=native -DCONTRA_BUILD_BENCHES=ON)
lib_path=()

# cuDNN: in the toolkit (Debian/NVIDIA packages), else the one PyTorch's wheels
# bring (nvidia-cudnn-cu13: headers and libcudnn.so.9, no unversioned link).
if ! compgen -G "$cuda_root/include/cudnn.h" >/dev/null || ! compgen -G "$cuda_root/lib*/libcudnn.so*" >/dev/null; then
  wheel=$("$py" -c 'import nvidia.cudnn as m; print(list(m.__path__)[0])' 2>/dev/null || true)
  lib=$(compgen -G "$wheel/lib/libcudnn.so*" | sort | head -1 || true)
  if [[ -n $wheel && -f $wheel/include/cudnn.h && -n $lib ]]; then
    echo "cuDNN: not in the toolkit ($cuda_root); using PyTorch's: $wheel"
    configure+=(-DCUDNN_INCLUDE_DIR="$wheel/include" -DCUDNN_LIBRARY="$lib")
    lib_path+=("$wheel/lib")
  else
    echo "warning: no cuDNN in the toolkit ($cuda_root) nor in $py's nvidia.cudnn; configure will say what is missing"
  fi
fi
# cuBLAS from the toolkit; PyTorch's wheels as the fallback, as for cuDNN.
if ! compgen -G "$cuda_root/lib*/libcublas.so*" >/dev/null && ! compgen -G "$cuda_root/targets/*/lib/libcublas.so*" >/dev/null; then
  wheel=$("$py" -c 'import nvidia.cublas as m; print(list(m.__path__)[0])' 2>/dev/null || true)
  [[ -n $wheel ]] && echo "cuBLAS: not in the toolkit; adding $wheel/lib to the library path" && lib_path+=("$wheel/lib")
fi

if [[ -n $deps ]]; then
  echo "== dependencies from $deps"
  prefix=$build/deps
  rm -rf "$prefix" && mkdir -p "$prefix"
  if [[ -f $deps/SHA256SUMS ]]; then
    (cd "$deps" && sha256sum --quiet -c SHA256SUMS) || { echo "error: $deps: .deb files differ from SHA256SUMS"; exit 1; }
  fi
  n=0
  for deb in "$deps"/*.deb; do
    # dpkg-deb where there is one; else the .deb's own layout (an ar archive
    # holding data.tar.*). Either way nothing outside the prefix is written.
    if command -v dpkg-deb >/dev/null; then
      dpkg-deb -x "$deb" "$prefix"
    else
      member=$(ar t "$deb" | grep '^data\.tar')
      ar p "$deb" "$member" >"$build/$member"
      tar -xf "$build/$member" -C "$prefix" && rm -f "$build/$member"
    fi
    n=$((n + 1))
  done
  (( n > 0 )) || { echo "error: no .deb files in $deps (run tools/prepare-gpu-deps.sh)"; exit 1; }
  # Absolute links (libz.so -> /lib/x86_64-linux-gnu/libz.so.1.2.13) would
  # point at the system: point them into the prefix.
  while IFS= read -r link; do
    target=$(readlink "$link")
    [[ -e $prefix$target ]] && ln -sfn "$prefix$target" "$link"
  done < <(find "$prefix" -type l -lname '/*')
  echo "unpacked $n packages into $prefix"
  configure+=(-DCMAKE_PREFIX_PATH="$prefix/usr" -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF)
  # The system's /usr stays out of every find_*() (the toolkit's, if it lives
  # there, is found through nvcc's path).
  [[ $cuda_root == /usr ]] || configure+=(-DCMAKE_IGNORE_PREFIX_PATH="/usr;/")
  lib_path+=("$prefix/usr/lib/x86_64-linux-gnu" "$prefix/lib/x86_64-linux-gnu")
  # libjpeg's jconfig.h sits in the multiarch include directory, which the
  # compiler searches only under /usr: name the prefix's.
  configure+=(-DCMAKE_CXX_FLAGS="-isystem $prefix/usr/include/x86_64-linux-gnu${CXXFLAGS:+ $CXXFLAGS}")
fi
if (( ${#lib_path[@]} )); then
  export LD_LIBRARY_PATH=$(IFS=:; echo "${lib_path[*]}")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
fi

echo "== configure ($build) at $(elapsed) s"
cmake -S "$root" -B "$build" -G Ninja "${configure[@]}" >"$build/gpu-configure.log" 2>&1 || {
  cat "$build/gpu-configure.log"; exit 1; }
grep "^-- contra:" "$build/gpu-configure.log" || true

echo "== build at $(elapsed) s"
# What the GPU run needs: the gpu-labelled test executables (test_gpu also
# depends on every plugin and the gpu_linear fixture) and the GPU benchmarks.
mapfile -t targets < <(cmake --build "$build" --target help |
  grep -oE '^(test_gpu|test_gpu_overlap|test_[a-z0-9_]+_cuda|bench_ntxent_cuda|bench_gpu_train_step):' | tr -d :)
# The nccl backend's test runs the CLI under mpirun (one rank per GPU; a
# single GPU runs NCCL with one rank): built where CMake found MPI and NCCL.
if cmake --build "$build" --target help | grep -q '^contra_comm_nccl:'; then
  targets+=(contra contra_comm_nccl)
else
  echo "nccl backend: not built (CMake found no MPI or NCCL here: $(grep -m1 -iE 'MPI|NCCL' "$build/gpu-configure.log" || echo 'see gpu-configure.log'))"
fi
echo "${#targets[@]} targets: ${targets[*]}"
# Keep going past a target that fails: one device session should report
# every test and benchmark that did build, and the errors of the rest.
start=$(date +%s)
if ! cmake --build "$build" -j "$jobs" --target "${targets[@]}" -- -k 0 >"$build/gpu-build.log" 2>&1; then
  echo "error: the build failed; the errors (the rest of what built still runs):"
  # grep -m, not `| head`: under pipefail head's early exit would end the script.
  grep -m 40 -E "error|FAILED" "$build/gpu-build.log" || true
  status=1
fi
echo "built in $(( $(date +%s) - start )) s"

if [[ -n $deps ]]; then
  echo "== provenance: nothing of the carried packages from the system"
  # Every header each object was compiled with (ninja's dependency log), and
  # every library each binary resolves at run time.
  system_headers=$(ninja -C "$build" -t deps 2>/dev/null |
    grep -E '^\s+/usr/include/(boost|oneapi|dnnl|tbb|oneapi/tbb|toml\+\+|nlohmann|CLI|catch2|png|libpng|jpeglib|jerror|jmorecfg|x86_64-linux-gnu/jconfig|zlib|zconf|CL)' |
    sort -u || true)
  system_libs=$(for b in "$build"/bin/test_* "$build"/bench/* "$build"/lib/*.so* "$build"/plugins/*.so; do
      [[ -f $b && -x $b ]] && ldd "$b" 2>/dev/null; done |
    grep -E 'lib(tbb|dnnl|tomlplusplus|png16|jpeg|OpenCL|hwloc)[^ ]* => /(usr/)?lib' | sort -u || true)
  if [[ -n $system_headers || -n $system_libs ]]; then
    echo "error: taken from the system instead of $prefix:"
    grep -m 20 . <<<"$system_headers$system_libs" || true
    status=1
  else
    echo "headers: none from /usr/include of those packages ($(ninja -C "$build" -t deps | grep "$prefix/usr/include" | sort -u | wc -l) distinct headers from the prefix)"
    echo "libraries: every libtbb/libdnnl/libtomlplusplus/libpng/libjpeg/libOpenCL resolves into the prefix"
  fi
fi

echo "== [gpu] tests at $(elapsed) s"
log=$build/gpu-tests.log
# One GPU: a few test processes at once (each holds a CUDA context; an
# exclusive-process GPU takes one), and the tests that time overlap alone
# (RUN_SERIAL).
ctest --test-dir "$build" -L gpu -j 4 --timeout 180 --output-on-failure >"$log" 2>&1 || status=1
grep -E "tests passed|Total Test time" "$log" || true
grep -E "^\s+[0-9]+ - .*\((Failed|Timeout|SEGFAULT|Subprocess aborted|Exception|Not Run)\)" "$log" | head -n 40 || true
skipped=$(grep -c "(Skipped)" "$log" || true)
if (( dry_run )); then
  echo "dry run: $skipped tests skipped without a GPU, as they should"
elif (( skipped > 0 )); then
  # ctest reports skipped tests as not run: with a GPU present, none may skip.
  echo "error: $skipped [gpu] tests skipped on a machine that should have a usable GPU:"
  grep -m 20 "(Skipped)" "$log" || true
  out=$("$build/bin/test_gpu" "cuda: without a usable GPU, require() and cuda tensors say why" -s 2>&1 || true)
  grep -m 5 -i "reason\|GPU" <<< "$out" || true
  status=1
fi

echo "== GPU benchmarks at $(elapsed) s"
shopt -s nullglob
benches=("$build"/bench/ntxent_cuda "$build"/bench/gpu_train_step)
for b in "${benches[@]}"; do
  if [[ ! -x $b ]]; then echo "-- $(basename "$b"): not built"; status=1; continue; fi
  left=$(( budget - $(elapsed) ))
  if (( left < 30 )); then
    echo "-- $(basename "$b"): skipped, $(elapsed) s of the ${budget} s budget spent"; status=1; continue
  fi
  echo "-- $(basename "$b") (at most $left s)"
  rc=0
  timeout "$left" "$b" >"$build/gpu-bench-$(basename "$b").log" 2>&1 || rc=$?
  cat "$build/gpu-bench-$(basename "$b").log"
  if (( rc != 0 )); then echo "error: $(basename "$b") exited with $rc"; status=1; fi
  if (( dry_run )) && ! grep -q "no usable GPU" "$build/gpu-bench-$(basename "$b").log"; then
    echo "error: $(basename "$b") did not say that no GPU is usable"; status=1
  elif (( ! dry_run )) && grep -q "no usable GPU" "$build/gpu-bench-$(basename "$b").log"; then
    echo "error: $(basename "$b") found no usable GPU"; status=1
  fi
done
echo "== done in $(elapsed) s, status $status"
exit $status
