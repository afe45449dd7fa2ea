#!/usr/bin/env bash
# cmake --install of the build into a fresh prefix, then checks of the layout
# and that the installed contra finds its plugins without any setting.
# Usage: install_prefix.sh BUILD_DIR PREFIX
set -euo pipefail
build=$1 prefix=$2
rm -rf "$prefix"
cmake --install "$build" --prefix "$prefix" > "$prefix.install.log"
for f in bin/contra lib/libcontra_sdk.so include/contra/plugin.hpp include/contra/testing.hpp \
         lib/cmake/contra/contraConfig.cmake lib/cmake/contra/contraConfigVersion.cmake \
         lib/cmake/contra/ContraAddPlugin.cmake lib/pkgconfig/contra.pc \
         lib/contra/plugins/libcontra_loss_info_nce.so; do
  [[ -e $prefix/$f ]] || { echo "missing after install: $prefix/$f"; exit 1; }
done
# The installed CLI and plugins use the installed SDK library.
soname=$(readelf -d "$prefix/lib/libcontra_sdk.so" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
[[ -e $prefix/lib/$soname ]] || { echo "no $soname in $prefix/lib"; exit 1; }
# Found without CONTRA_PLUGIN_PATH, from the install, not from the build tree.
described=$(env -u CONTRA_PLUGIN_PATH "$prefix/bin/contra" plugins --describe info_nce)
grep -q "^  cpu build: $prefix/lib/contra/plugins/libcontra_loss_info_nce.so$" <<< "$described" || {
  echo "the installed contra did not find its own plugins:"; echo "$described"; exit 1; }
if command -v pkg-config > /dev/null; then
  version=$(PKG_CONFIG_PATH=$prefix/lib/pkgconfig pkg-config --modversion contra)
  [[ $version == $(cd "$prefix" && bin/contra --version | head -n1 | awk '{print $2}') ]] || {
    echo "contra.pc says $version"; exit 1; }
fi
echo "installed to $prefix"
