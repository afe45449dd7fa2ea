#!/usr/bin/env bash
# `contra new-plugin` for every kind it has templates for, as a plugin author
# gets it: the installed contra writes a plugin of each kind (the same files
# as the build tree's contra, which reads the source tree's templates), one
# CMake project builds them all against the installed SDK without a warning,
# their generated tests pass, and contra lists each plugin it built.
# Usage: every_kind.sh PREFIX BUILD_CONTRA TEMPLATE_DIR WORK_DIR GENERATOR CXX
set -euo pipefail
prefix=$1 build_contra=$2 templates=$3 work=$4 generator=$5 cxx=$6
rm -rf "$work"
mkdir -p "$work/src" "$work/from_build_tree"
unset CONTRA_PLUGIN_PATH

kinds=()
for f in "$templates"/*/kind.toml; do
  [[ -e $f ]] && kinds+=("$(basename "$(dirname "$f")")")
done
(( ${#kinds[@]} > 0 )) || { echo "no kind in $templates (no */kind.toml)"; exit 1; }
diff -r "$templates" "$prefix/share/contra/templates" || {
  echo "the installed templates ($prefix/share/contra/templates) are not the source tree's"; exit 1; }

# One project, one configure and one parallel build for all kinds: each
# generated project is a subdirectory, as it is, untouched.
cat > "$work/src/CMakeLists.txt" <<'CMAKE'
cmake_minimum_required(VERSION 3.20)
project(every_kind LANGUAGES CXX)
enable_testing()
CMAKE
for kind in "${kinds[@]}"; do
  name=scaffold_$kind
  "$prefix/bin/contra" new-plugin --kind "$kind" --name "$name" "$work/src/$name" > "$work/new-plugin-$kind.log"
  "$build_contra" new-plugin --kind "$kind" --name "$name" "$work/from_build_tree/$name" > /dev/null
  diff -r "$work/src/$name" "$work/from_build_tree/$name" || {
    echo "$kind: the installed contra and the build tree's wrote different projects"; exit 1; }
  echo "add_subdirectory($name)" >> "$work/src/CMakeLists.txt"
done

cmake -S "$work/src" -B "$work/build" -G "$generator" -DCMAKE_CXX_COMPILER="$cxx" -DCMAKE_BUILD_TYPE=Release \
      -DCMAKE_PREFIX_PATH="$prefix" > "$work/configure.log" 2>&1 || {
  cat "$work/configure.log"; echo "configuring the generated plugins failed"; exit 1; }
cmake --build "$work/build" -j 2 > "$work/build.log" 2>&1 || {
  cat "$work/build.log"; echo "building the generated plugins failed"; exit 1; }
# A warning here is one every new plugin starts with (they build with -Wall -Wextra).
if grep -n "warning:" "$work/build.log"; then
  echo "the generated plugins build with warnings (log: $work/build.log)"; exit 1
fi
ctest --test-dir "$work/build" --output-on-failure -j 2

plugin_path=
for kind in "${kinds[@]}"; do plugin_path+=${plugin_path:+:}$work/build/scaffold_$kind/plugins; done
for kind in "${kinds[@]}"; do
  listed=$(CONTRA_PLUGIN_PATH=$plugin_path "$prefix/bin/contra" plugins --kind "$kind")
  grep -q "^  scaffold_$kind " <<< "$listed" || {
    echo "contra does not list scaffold_$kind among its ${kind} plugins:"; echo "$listed"; exit 1; }
done
echo "generated, built and tested: ${kinds[*]}"
