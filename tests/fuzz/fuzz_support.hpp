#pragma once
// What every fuzz target shares: a private folder for the files the readers
// are given (they take paths, not bytes), and the rule that a contra::Error
// is the expected answer to bad input while anything else is a finding.

#include <contra/errors.hpp>

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <system_error>
#include <typeinfo>

namespace contra::fuzz {

namespace detail {
inline std::filesystem::path make_work_dir() {
  namespace fs = std::filesystem;
  // tmpfs where there is one: readers fsync and rename, which a disk makes slow.
  std::error_code ec;
  fs::path base = fs::is_directory("/dev/shm", ec) ? fs::path("/dev/shm") : fs::temp_directory_path();
  fs::path dir = base / ("contra-fuzz-" + std::to_string(::getpid()));
  fs::remove_all(dir, ec);
  fs::create_directories(dir);
  static const fs::path removed_at_exit = dir;
  std::atexit([] {
    std::error_code ignored;
    std::filesystem::remove_all(removed_at_exit, ignored);
  });
  return dir;
}
}  // namespace detail

/// This process's folder for input files, created on first use and removed at exit.
inline const std::filesystem::path& work_dir() {
  static const std::filesystem::path dir = detail::make_work_dir();
  return dir;
}

/// Writes `bytes` to work_dir()/`relative` (parent folders created), replacing
/// what was there; returns the full path.
inline std::string write_file(const std::string& relative, std::string_view bytes) {
  const std::filesystem::path p = work_dir() / relative;
  std::filesystem::create_directories(p.parent_path());
  std::ofstream f(p, std::ios::binary | std::ios::trunc);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!f) {
    std::fprintf(stderr, "fuzz: cannot write %s\n", p.c_str());
    std::abort();
  }
  return p.string();
}

inline std::string_view bytes_of(const std::uint8_t* data, std::size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

/// CONTRA_FUZZ_VERBOSE set: say why each input was refused (a seed should not be).
inline bool verbose() {
  static const bool v = std::getenv("CONTRA_FUZZ_VERBOSE") != nullptr;
  return v;
}

[[noreturn]] inline void finding(const std::string& what) {
  std::fprintf(stderr, "\nfuzz finding: %s\n", what.c_str());
  std::fflush(stderr);
  std::abort();
}

/// Runs `f`. A contra::Error is bad input reported as it should be; when
/// `names` is not empty its message must mention it (the file or folder read).
/// Any other exception is a finding: the process aborts naming it, so that
/// libFuzzer keeps the input. CONTRA_FUZZ_VERBOSE=1 prints each refusal.
template <class F> void run_reader(F&& f, const std::string& names = "") {
  try {
    f();
  } catch (const contra::Error& e) {
    if (verbose()) std::fprintf(stderr, "refused: %s\n", e.what());
    if (!names.empty() && std::string_view(e.what()).find(names) == std::string_view::npos)
      finding(std::string("a contra error that does not name ") + names + ": " + e.what());
  } catch (const std::exception& e) {
    finding(std::string("an exception that is not a contra::Error escaped the reader: ") + typeid(e).name() +
            ": " + e.what());
  } catch (...) {
    finding("something that is not a std::exception escaped the reader");
  }
}

}  // namespace contra::fuzz
