#!/usr/bin/env bash
# cmake --install of the build into a fresh prefix, then checks of the layout
# and that the installed contra finds its plugins and its plugin templates
# without any setting.
# Usage: install_prefix.sh BUILD_DIR PREFIX
set -euo pipefail
build=$1 prefix=$2
rm -rf "$prefix"
cmake --install "$build" --prefix "$prefix" > "$prefix.install.log"
for f in bin/contra lib/libcontra_sdk.so include/contra/plugin.hpp include/contra/testing.hpp \
         lib/cmake/contra/contraConfig.cmake lib/cmake/contra/contraConfigVersion.cmake \
         lib/cmake/contra/ContraAddPlugin.cmake lib/pkgconfig/contra.pc \
         lib/contra/plugins/libcontra_loss_info_nce.so \
         share/contra/templates/common/CMakeLists.txt share/contra/templates/loss/kind.toml; do
  [[ -e $prefix/$f ]] || { echo "missing after install: $prefix/$f"; exit 1; }
done
# The installed CLI and plugins use the installed SDK library.
soname=$(readelf -d "$prefix/lib/libcontra_sdk.so" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
[[ -e $prefix/lib/$soname ]] || { echo "no $soname in $prefix/lib"; exit 1; }
# Found without CONTRA_PLUGIN_PATH, from the install, not from the build tree.
described=$(env -u CONTRA_PLUGIN_PATH "$prefix/bin/contra" plugins --describe info_nce)
grep -q "^  cpu build: $prefix/lib/contra/plugins/libcontra_loss_info_nce.so$" <<< "$described" || {
  echo "the installed contra did not find its own plugins:"; echo "$described"; exit 1; }
# new-plugin reads the templates beside the installed contra, not the source
# tree's: a copy of the program beside changed templates writes the change.
moved=$prefix.moved_templates
rm -rf "$moved"
mkdir -p "$moved/bin" "$moved/share/contra"
cp "$prefix/bin/contra" "$moved/bin/"
ln -s "$prefix/lib" "$moved/lib"
cp -r "$prefix/share/contra/templates" "$moved/share/contra/"
echo "from the moved templates" >> "$moved/share/contra/templates/common/README.md"
"$moved/bin/contra" new-plugin --kind loss --name moved_loss "$moved/moved_loss" > /dev/null
grep -qx "from the moved templates" "$moved/moved_loss/README.md" || {
  echo "contra new-plugin did not read the templates beside it ($moved/share/contra/templates)"; exit 1; }
rm -rf "$moved"
if command -v pkg-config > /dev/null; then
  version=$(PKG_CONFIG_PATH=$prefix/lib/pkgconfig pkg-config --modversion contra)
  [[ $version == $(cd "$prefix" && bin/contra --version | head -n1 | awk '{print $2}') ]] || {
    echo "contra.pc says $version"; exit 1; }
fi
echo "installed to $prefix"
