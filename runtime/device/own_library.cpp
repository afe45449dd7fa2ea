#include "device/own_library.hpp"

#include <boost/dll/runtime_symbol_info.hpp>

#include <dlfcn.h>

#include <filesystem>
#include <vector>

#ifndef CONTRA_LIBRARY_DIR_FROM_BIN
#define CONTRA_LIBRARY_DIR_FROM_BIN "../lib"
#endif

namespace contra::runtime {
namespace fs = std::filesystem;

namespace {
std::string& chosen_dir() {
  static std::string dir;
  return dir;
}
}  // namespace

void set_own_library_dir(const std::string& dir) { chosen_dir() = dir; }

void* open_own_library(const std::string& name, int flags, std::string& why) {
  std::vector<std::string> candidates;
  std::error_code ec;
  if (!chosen_dir().empty()) {
    const fs::path p = fs::path(chosen_dir()) / name;
    if (fs::exists(p, ec)) candidates.push_back(p.string());
  }
  const fs::path bin = boost::dll::program_location(ec).parent_path();
  if (!ec)
    for (const char* rel : {"../lib", CONTRA_LIBRARY_DIR_FROM_BIN}) {
      const fs::path p = (bin / rel / name).lexically_normal();
      if (fs::exists(p, ec)) candidates.push_back(p.string());
    }
  candidates.push_back(name);
  why.clear();
  for (const auto& c : candidates) {
    if (void* handle = dlopen(c.c_str(), flags)) return handle;
    const char* e = dlerror();
    if (why.empty()) why = e ? e : c + ": cannot be loaded";
  }
  return nullptr;
}

}  // namespace contra::runtime
