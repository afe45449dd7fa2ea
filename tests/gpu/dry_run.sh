#!/usr/bin/env bash
# The GPU machine's build path, proved on a CPU machine: tests/gpu/run.sh
# --cpu-dry-run --deps DIR with the system's own copies of those packages
# hidden. In a private mount namespace (nothing changes outside this
# process), every header, CMake file and library the installed packages of
# DIR put under /usr is covered (an empty directory over a directory only
# they own, /dev/null over a file), so a build or a test that reached for
# the system's copy would fail, as it would on the bare GPU image. The
# runtime zlib (libz.so.1) stays visible: every image has it, and the
# system's own tools here need it.
#
# Usage (root): tests/gpu/dry_run.sh [DEPS_DIR] [BUILD_DIR]
#   defaults: .device/debs (tools/prepare-gpu-deps.sh), build-gpu-dry
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
deps=$(realpath "${1:-$root/.device/debs}")
build=$(realpath -m "${2:-$root/build-gpu-dry}")

if [[ ${CONTRA_GPU_DRY_RUN_MASKED:-} != 1 ]]; then
  if ! unshare -m true 2>/dev/null; then
    echo "dry_run: cannot make a private mount namespace here (needs root and unshare);" \
         "running without hiding the system's packages (run.sh still checks where headers and libraries came from)"
    exec "$root/tests/gpu/run.sh" --cpu-dry-run --deps "$deps" "$build"
  fi
  exec unshare -m env CONTRA_GPU_DRY_RUN_MASKED=1 "$0" "$deps" "$build"
fi

mount --make-rprivate /
empty=$(mktemp -d)
packages=()
for deb in "$deps"/*.deb; do
  name=$(dpkg-deb -f "$deb" Package)
  # The runtime zlib stays (see above); packages not installed here hide nothing.
  [[ $name == zlib1g ]] && continue
  dpkg-query -W -f='${Status}' "$name" 2>/dev/null | grep -q "install ok installed" && packages+=("$name")
done
declare -A hidden_dirs=()
files=0
while IFS= read -r path; do
  case $path in
    /usr/include/*|/usr/lib/*|/lib/*|/usr/share/pkgconfig/*) ;;
    *) continue ;;
  esac
  [[ -f $path || -L $path ]] || continue
  # A top directory under include/ or cmake/ that only these packages own is
  # hidden whole; anything else file by file.
  top=""
  if [[ $path =~ ^(/usr/include/[^/]+)/ || $path =~ ^(/usr/lib/x86_64-linux-gnu/cmake/[^/]+)/ ||
        $path =~ ^(/usr/lib/cmake/[^/]+)/ ]]; then
    top=${BASH_REMATCH[1]}
  fi
  if [[ -n $top && -z ${hidden_dirs[$top]+x} ]]; then
    owners=$(dpkg -S "$top" 2>/dev/null | sed 's/: .*//' | tr ', ' '\n\n' | grep . | sort -u)
    foreign=$(comm -23 <(echo "$owners") <(printf '%s\n' "${packages[@]}" | sort -u))
    if [[ -z $foreign ]]; then
      mount --bind "$empty" "$top"
      hidden_dirs[$top]=1
      continue
    fi
    hidden_dirs[$top]=0
  fi
  [[ -n $top && ${hidden_dirs[$top]} == 1 ]] && continue
  [[ $path == */libz.so.1* ]] && continue
  # A link's target is covered where it is listed itself.
  [[ -L $path ]] && continue
  mount --bind /dev/null "$path"
  files=$((files + 1))
done < <(dpkg -L "${packages[@]}" 2>/dev/null | sort -u)
dirs=0
for d in "${!hidden_dirs[@]}"; do [[ ${hidden_dirs[$d]} == 1 ]] && dirs=$((dirs + 1)); done
echo "dry_run: the system's copies of ${#packages[@]} packages hidden ($dirs directories, $files files), e.g.:"
for probe in /usr/include/boost/version.hpp /usr/include/oneapi/dnnl/dnnl.hpp /usr/include/dnnl.hpp \
             /usr/lib/x86_64-linux-gnu/libdnnl.so.2 /usr/include/zlib.h; do
  if [[ -s $probe ]]; then echo "  $probe: still visible"; else echo "  $probe: hidden"; fi
done
exec "$root/tests/gpu/run.sh" --cpu-dry-run --deps "$deps" "$build"
