#include "registry.hpp"

#include "loader/program_dir.hpp"

#include <contra/cpu.hpp>
#include <contra/guard.hpp>

#include <boost/dll/shared_library.hpp>

#include <dlfcn.h>
#include <link.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <system_error>

namespace contra::runtime {
namespace fs = std::filesystem;

namespace {

// Boost.DLL's messages end with an errno text that means nothing here ("Bad
// file descriptor"); keep only what dlerror() said.
std::string dl_reason(const std::exception& e) {
  std::string what = e.what();
  const std::string marker = "dlerror system message: ";
  auto start = what.find(marker);
  if (start == std::string::npos) return what;
  start += marker.size();
  auto end = what.rfind(')');
  if (end == std::string::npos || end < start) end = what.size();
  return what.substr(start, end - start);
}

std::string fingerprint_field(const std::string& fp, const std::string& field) {
  std::string key = field + "=";
  auto pos = fp.find(key);
  if (pos == std::string::npos) return "";
  auto end = fp.find(';', pos);
  return fp.substr(pos + key.size(), end == std::string::npos ? std::string::npos : end - pos - key.size());
}

bool known_kind(PluginKind k) { return std::strcmp(kind_name(k), "unknown") != 0; }

}  // namespace

#ifndef CONTRA_INSTALL_PLUGIN_DIR_FROM_BIN
#define CONTRA_INSTALL_PLUGIN_DIR_FROM_BIN "../lib/contra/plugins"
#endif

fs::path default_plugin_dir() {
  std::error_code ec;
  const fs::path bin = program_dir();
  if (bin.empty()) return {};
  // Installed: <prefix>/bin/contra and <prefix>/lib/contra/plugins.
  fs::path installed = (bin / CONTRA_INSTALL_PLUGIN_DIR_FROM_BIN).lexically_normal();
  if (fs::is_directory(installed, ec)) return installed;
  // Build tree: build/bin/contra and build/plugins.
  return (bin / ".." / "plugins").lexically_normal();
}

std::vector<fs::path> env_plugin_dirs() {
  std::vector<fs::path> dirs;
  const char* env = std::getenv("CONTRA_PLUGIN_PATH");
  if (!env) return dirs;
  std::string s = env;
  std::size_t start = 0;
  while (start <= s.size()) {
    auto end = s.find(':', start);
    if (end == std::string::npos) end = s.size();
    if (end > start) dirs.emplace_back(s.substr(start, end - start));
    start = end + 1;
  }
  return dirs;
}

PluginRegistry::PluginRegistry() = default;
PluginRegistry::~PluginRegistry() = default;

namespace {
bool is_device_build(const fs::path& file) {
  const std::string stem = file.stem().string();
  return stem.size() > 5 && stem.compare(stem.size() - 5, 5, "_cuda") == 0;
}
}  // namespace

void PluginRegistry::include_device_builds() { device_builds_ = true; }

void PluginRegistry::scan_directory(const fs::path& dir) {
  std::error_code ec;
  fs::path canon = fs::weakly_canonical(dir, ec);
  if (ec) canon = dir;
  auto seen = [](const std::vector<fs::path>& v, const fs::path& p) {
    return std::find(v.begin(), v.end(), p) != v.end();
  };
  bool cpu_done = seen(scanned_, canon);
  bool device_done = !device_builds_ || seen(scanned_with_device_builds_, canon);
  if (cpu_done && device_done) return;
  if (!cpu_done) scanned_.push_back(canon);
  if (!device_done) scanned_with_device_builds_.push_back(canon);
  // A folder that cannot be read is said, not passed over: its plugins would
  // be missing with no word why. On stderr, as it may be unrelated to the
  // pipeline at hand, and in problems() for the messages that list them.
  auto unreadable = [&](const fs::path& what, const char* kind, const std::error_code& why) {
    const std::string msg =
        what.string() + ": cannot read the " + kind + ": " + why.message() + "; its plugins are not loaded";
    std::fprintf(stderr, "warning: %s\n", msg.c_str());
    problems_.push_back({what, msg});
  };
  std::vector<fs::path> files;
  fs::directory_iterator it(canon, ec), end;
  for (; !ec && it != end; it.increment(ec)) {
    const auto& p = it->path();
    if (p.extension() != ".so") continue;
    std::error_code file_ec;
    const bool regular = it->is_regular_file(file_ec);
    if (file_ec) {
      unreadable(p, "plugin library", file_ec);
      continue;
    }
    if (!regular) continue;
    bool device = is_device_build(p);
    if (device ? device_done : cpu_done) continue;
    files.push_back(p);
  }
  if (ec) unreadable(canon, "plugin folder", ec);
  std::sort(files.begin(), files.end());
  for (const auto& f : files) {
    try {
      load_library(f);
    } catch (const PluginError& e) {
      problems_.push_back({f, e.what()});
    }
  }
}

void PluginRegistry::load_library(const fs::path& file) {
  std::error_code ec;
  fs::path canon = fs::weakly_canonical(file, ec);
  if (ec) canon = file;
  if (std::find(loaded_.begin(), loaded_.end(), canon) != loaded_.end()) return;
  add_library(canon);
  loaded_.push_back(canon);
}

namespace {
// The manifest the entry symbol points to, checked before it is read: the
// symbol must be a whole pointer, and the manifest it points to must lie in
// the library itself (a null or stray pointer would crash every command,
// since every library on the plugin path is loaded).
const LibraryManifest& manifest_of(const boost::dll::shared_library& lib, const std::string& name) {
  const std::string what = name + ": the entry symbol '" + std::string(CONTRA_MANIFEST_SYMBOL) + "'";
  void* symbol = ::dlsym(lib.native(), CONTRA_MANIFEST_SYMBOL);
  Dl_info at{};
  void* entry_info = nullptr;  // the symbol's ElfW(Sym)
  if (!symbol || !::dladdr1(symbol, &at, &entry_info, RTLD_DL_SYMENT) || !entry_info)
    throw PluginError(what + " cannot be located");
  const auto* entry = static_cast<const ElfW(Sym)*>(entry_info);
  if (entry->st_size < sizeof(void*))
    throw PluginError(what + " is " + std::to_string(entry->st_size) + " byte(s), not the pointer to a manifest " +
                      "that CONTRA_PLUGIN_LIBRARY exports");
  const void* target = *static_cast<const void* const*>(symbol);
  const char* first = static_cast<const char*>(target);
  Dl_info start{}, end{};
  if (!target || !::dladdr(first, &start) || !::dladdr(first + sizeof(LibraryManifest) - 1, &end) ||
      start.dli_fbase != at.dli_fbase || end.dli_fbase != at.dli_fbase)
    throw PluginError(what + " points " + (target ? "outside the library" : "nowhere (a null pointer)") +
                      ", not to a contra plugin manifest");
  return *static_cast<const LibraryManifest*>(target);
}
}  // namespace

std::vector<PluginRecord> check_manifest(const LibraryManifest& m, const fs::path& file) {
  const std::string name = file.string();
  if (m.magic != manifest_magic)
    throw PluginError(name + ": the entry symbol '" + std::string(CONTRA_MANIFEST_SYMBOL) +
                      "' does not point to a contra plugin manifest");
  std::string their_sdk = m.sdk_version ? m.sdk_version : "?";
  if (m.abi_version != sdk_abi_version)
    throw PluginError(name + " was built for contra SDK ABI " + std::to_string(m.abi_version) + " (SDK " +
                      their_sdk + "), but this runtime provides SDK ABI " + std::to_string(sdk_abi_version) +
                      " (SDK " + sdk_version + "); rebuild the plugin against SDK " + sdk_version);
  std::string their_fp = m.build_fingerprint ? m.build_fingerprint : "";
  std::string our_fp = CONTRA_BUILD_FINGERPRINT;
  if (fingerprint_field(their_fp, "cxx11abi") != fingerprint_field(our_fp, "cxx11abi"))
    throw PluginError(name + " was built with another C++ standard library ABI (" + their_fp +
                      ") than this runtime (" + our_fp + "); rebuild it with the same compiler settings");
  // Code built for extensions this CPU lacks dies of an illegal instruction at
  // some later call; libraries older than SDK 0.2.1 carry no "isa" field.
  const std::string missing = missing_cpu_features(fingerprint_field(their_fp, "isa"));
  if (!missing.empty())
    throw PluginError(name + " was compiled for CPU extensions this CPU lacks (" + missing +
                      "), as its fingerprint says (" + their_fp +
                      "): it was built with -march=native (or contra_add_plugin's ARCH) on another machine; "
                      "rebuild it on this one, or for a baseline this CPU has");

  std::vector<PluginRecord> found;
  for (std::size_t i = 0; i < m.plugin_count; ++i) {
    const PluginEntry& e = m.plugins[i];
    if (!known_kind(e.kind))
      throw PluginError(name + ": plugin #" + std::to_string(i) + " has an unknown kind (" +
                        std::to_string(static_cast<unsigned>(e.kind)) + ")");
    const Schema schema = guarded(name + ": the schema of its " + kind_name(e.kind) + " plugin #" +
                                      std::to_string(i) + " is invalid",
                                  [&] {
                                    Schema s = e.schema();
                                    s.check_well_formed();
                                    return s;
                                  });
    if (e.device != Device::cpu && e.device != Device::cuda)
      throw PluginError(name + ": plugin #" + std::to_string(i) + " has an unknown device (" +
                        std::to_string(static_cast<unsigned>(e.device)) + ")");
    found.push_back({e.kind, schema.name(), e.device, std::move(schema), file, &e, nullptr});
  }
  return found;
}

void PluginRegistry::add_library(const fs::path& file) {
  const std::string name = file.string();
  if (!fs::exists(file)) throw PluginError("plugin library " + name + " does not exist");
  auto lib = std::make_shared<boost::dll::shared_library>();
  try {
    // rtld_now: an unresolved symbol fails here, not at its first call.
    lib->load(file, boost::dll::load_mode::rtld_now | boost::dll::load_mode::rtld_local);
  } catch (const std::exception& e) {
    throw PluginError("cannot load plugin library " + name + ": " + dl_reason(e));
  }
  if (!lib->has(CONTRA_MANIFEST_SYMBOL))
    throw PluginError(name + " is not a contra plugin library: it does not export the entry symbol '" +
                      std::string(CONTRA_MANIFEST_SYMBOL) + "' (declare its plugins with CONTRA_PLUGIN_LIBRARY)");
  std::vector<PluginRecord> found = check_manifest(manifest_of(*lib, name), file);
  for (auto& r : found) {
    r.handle = lib;
    records_.push_back(std::move(r));
  }
}

bool device_build_required(PluginKind kind) noexcept {
  return kind == PluginKind::encoder || kind == PluginKind::loss || kind == PluginKind::optimizer;
}

const PluginRecord* PluginRegistry::find(PluginKind kind, std::string_view name, Device device) const {
  const PluginRecord* hit = nullptr;
  for (const auto& r : records_) {
    if (r.kind != kind || r.name != name || r.device != device) continue;
    if (hit)
      throw PluginError(std::string(kind_name(kind)) + " plugin '" + std::string(name) + "'" +
                        (device == Device::cpu ? "" : std::string(" (") + device_name(device) + " build)") +
                        " is provided by two libraries: " + hit->library.string() + " and " +
                        r.library.string() + "; remove one from the plugin path");
    hit = &r;
  }
  return hit;
}

const PluginRecord* PluginRegistry::resolve(PluginKind kind, std::string_view name, Device device) const {
  if (const PluginRecord* r = find(kind, name, device)) return r;
  if (device == Device::cpu) return nullptr;
  const PluginRecord* cpu = find(kind, name, Device::cpu);
  if (!cpu || !device_build_required(kind)) return cpu;
  auto have = names_on(kind, device);
  std::string list;
  for (const auto& n : have) list += (list.empty() ? "" : ", ") + n;
  throw PluginError(std::string(kind_name(kind)) + " plugin '" + std::string(name) + "' has no " +
                    device_name(device) + " build (" + cpu->library.filename().string() +
                    " is its cpu build); " + kind_name(kind) + " plugins with a " + device_name(device) +
                    " build: " + (list.empty() ? std::string("none") : list));
}

std::vector<std::string> PluginRegistry::names_on(PluginKind kind, Device device) const {
  std::vector<std::string> n;
  for (const auto& r : records_)
    if (r.kind == kind && r.device == device) n.push_back(r.name);
  std::sort(n.begin(), n.end());
  n.erase(std::unique(n.begin(), n.end()), n.end());
  return n;
}

std::vector<PluginKind> PluginRegistry::kinds_of(std::string_view name) const {
  std::vector<PluginKind> kinds;
  for (const auto& r : records_)
    if (r.name == name && std::find(kinds.begin(), kinds.end(), r.kind) == kinds.end()) kinds.push_back(r.kind);
  return kinds;
}

std::vector<std::string> PluginRegistry::names(PluginKind kind) const {
  std::vector<std::string> n;
  for (const auto& r : records_)
    if (r.kind == kind) n.push_back(r.name);
  std::sort(n.begin(), n.end());
  n.erase(std::unique(n.begin(), n.end()), n.end());
  return n;
}

std::vector<const PluginRecord*> PluginRegistry::all() const {
  std::vector<const PluginRecord*> v;
  for (const auto& r : records_) v.push_back(&r);
  std::sort(v.begin(), v.end(), [](auto* a, auto* b) {
    return std::tie(a->kind, a->name, a->device) < std::tie(b->kind, b->name, b->device);
  });
  return v;
}

std::shared_ptr<Plugin> PluginRegistry::create_plugin(const PluginRecord& rec, const Params& p) const {
  Plugin* raw = nullptr;
  try {
    raw = rec.entry->create(p);
  } catch (const std::bad_alloc&) {
    throw;  // as itself: make_plugin(), which knows the plugin's table, says it ran out of memory
  } catch (...) {
    throw PluginError(std::string(kind_name(rec.kind)) + " plugin '" + rec.name + "' (" + rec.library.string() +
                      ") failed to start: " + current_exception_message());
  }
  if (!raw)
    throw PluginError(std::string(kind_name(rec.kind)) + " plugin '" + rec.name + "' (" + rec.library.string() +
                      ") returned no object");
  // The deleter holds the library: it is unloaded only after its last object.
  auto destroy = rec.entry->destroy;
  auto lib = rec.handle;
  return std::shared_ptr<Plugin>(raw, [destroy, lib](Plugin* q) { destroy(q); });
}

}  // namespace contra::runtime
