#pragma once
/// \file
/// Bytes about to be allocated against what this machine has, so that a size
/// set in a pipeline that cannot be allocated is refused before allocating,
/// naming its key and the figure, rather than ending in std::bad_alloc (or
/// the kernel's OOM killer) with no key named:
///
///   contra::require_memory("encoder.hidden = [10000000]", bytes, "weights and gradients",
///                          "7940000000 parameters × 4 B × 2");
///   // ConfigError: "encoder.hidden = [10000000] needs 59.2 GiB of weights and gradients
///   //   (7940000000 parameters × 4 B × 2); this machine has 23.4 GiB available (MemAvailable)"
///
/// Header-only: nothing here is exported by libcontra_sdk, so plugins and the
/// runtime share it without touching the ABI.

#include <contra/errors.hpp>

#include <unistd.h>

#include <cctype>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

namespace contra {

/// a × b, saturating at the largest std::uint64_t: a size that overflows
/// reads as more than any machine has.
constexpr std::uint64_t mul_bytes(std::uint64_t a, std::uint64_t b) noexcept {
  if (a == 0 || b == 0) return 0;
  return a > std::numeric_limits<std::uint64_t>::max() / b ? std::numeric_limits<std::uint64_t>::max() : a * b;
}

/// a + b, saturating like mul_bytes().
constexpr std::uint64_t add_bytes(std::uint64_t a, std::uint64_t b) noexcept {
  return a > std::numeric_limits<std::uint64_t>::max() - b ? std::numeric_limits<std::uint64_t>::max() : a + b;
}

/// A byte count for people, in binary units: "512 B", "3.1 KiB", "23.4 GiB",
/// "512 MiB", "1.2 TiB" (one decimal below 100 of the unit, none from 100 on).
inline std::string bytes_text(std::uint64_t bytes) {
  static const char* const units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  double v = static_cast<double>(bytes);
  int u = 0;
  // Rounding decides the unit: 1023.97 KiB is written "1.0 MiB", not "1024 KiB".
  while (u < 6 && v >= 1023.95) {
    v /= 1024.0;
    ++u;
  }
  char buf[32];
  if (u == 0) std::snprintf(buf, sizeof buf, "%llu B", static_cast<unsigned long long>(bytes));
  else std::snprintf(buf, sizeof buf, v >= 99.95 ? "%.0f %s" : "%.1f %s", v, units[u]);
  return buf;
}

/// What this process can still allocate, and where the figure comes from.
struct AvailableMemory {
  std::uint64_t bytes = 0;
  /// "MemAvailable" (/proc/meminfo), "cgroup memory limit", "physical
  /// memory" or "CONTRA_MEMORY_AVAILABLE" (the environment variable).
  std::string source;
  /// "23.4 GiB available (MemAvailable)"
  std::string text() const { return bytes_text(bytes) + " available (" + source + ")"; }
};

namespace memory_budget_detail {

inline bool read_u64(const std::string& path, std::uint64_t& out) {
  std::ifstream f(path);
  std::string s;
  if (!(f >> s) || s.empty() || !std::isdigit(static_cast<unsigned char>(s[0]))) return false;  // "max": no limit
  out = std::strtoull(s.c_str(), nullptr, 10);
  return true;
}

// `key value` lines (memory.stat; /proc/meminfo, whose keys end in a colon): the value of `key`.
inline bool read_field(const std::string& path, const std::string& key, std::uint64_t& out) {
  std::ifstream f(path);
  std::string k;
  std::uint64_t v = 0;
  while (f >> k >> v) {
    if (k == key) {
      out = v;
      return true;
    }
    f.ignore(std::numeric_limits<std::streamsize>::max(), '\n');
  }
  return false;
}

// Bytes the memory cgroup of this process lets it still allocate: its limit,
// less what it uses, plus the page cache it can reclaim (inactive files);
// false when no limit is set or none can be read. cgroup v2 first, then v1;
// the process's own group and the hierarchy's root (which is the
// container's, under a cgroup namespace), the smaller. `self` and `sys`
// stand for /proc/self/cgroup and /sys/fs/cgroup (tests give others).
inline bool cgroup_available(std::uint64_t& out, const std::string& self_file = "/proc/self/cgroup",
                             const std::string& sys = "/sys/fs/cgroup") {
  std::ifstream self(self_file);
  std::string line, v2_path, v1_path;
  while (std::getline(self, line)) {
    const auto a = line.find(':'), b = line.find(':', a + 1);
    if (a == std::string::npos || b == std::string::npos) continue;
    const std::string controllers = line.substr(a + 1, b - a - 1), path = line.substr(b + 1);
    if (line.compare(0, a, "0") == 0 && controllers.empty()) v2_path = path;
    std::stringstream cs(controllers);
    for (std::string c; std::getline(cs, c, ',');)
      if (c == "memory") v1_path = path;
  }
  constexpr std::uint64_t no_limit = std::uint64_t{1} << 60;  // v1 writes "no limit" as 2^63 rounded to a page
  bool found = false;
  auto consider = [&](const std::string& dir, const char* limit_file, const char* usage_file, const char* inactive) {
    std::uint64_t limit = 0, usage = 0, reclaimable = 0;
    if (!read_u64(dir + "/" + limit_file, limit) || limit >= no_limit || !read_u64(dir + "/" + usage_file, usage))
      return;
    read_field(dir + "/memory.stat", inactive, reclaimable);
    const std::uint64_t used = usage > reclaimable ? usage - reclaimable : 0;
    const std::uint64_t left = limit > used ? limit - used : 0;
    if (!found || left < out) out = left;
    found = true;
  };
  for (const std::string& root : {sys, sys + "/unified"}) {
    if (!v2_path.empty() && v2_path != "/") consider(root + v2_path, "memory.max", "memory.current", "inactive_file");
    consider(root, "memory.max", "memory.current", "inactive_file");
  }
  const std::string v1 = sys + "/memory";
  if (!v1_path.empty() && v1_path != "/")
    consider(v1 + v1_path, "memory.limit_in_bytes", "memory.usage_in_bytes", "total_inactive_file");
  consider(v1, "memory.limit_in_bytes", "memory.usage_in_bytes", "total_inactive_file");
  return found;
}

// "17179869184", "16GiB", "16 G", "512M", "1.5TiB": bytes; false when unreadable.
inline bool parse_size(const char* text, std::uint64_t& out) {
  char* end = nullptr;
  const double v = std::strtod(text, &end);
  if (end == text || !(v >= 0)) return false;
  const char* p = end;
  while (*p == ' ') ++p;
  double bytes = v;
  static const char units[] = "KMGT";
  for (int u = 0; u < 4; ++u)
    if (*p && std::toupper(static_cast<unsigned char>(*p)) == units[u]) {
      for (int k = 0; k <= u; ++k) bytes *= 1024.0;
      ++p;
      if (*p == 'i') ++p;
      break;
    }
  if (*p == 'B' || *p == 'b') ++p;
  if (*p || bytes >= 1.8e19) return false;
  out = static_cast<std::uint64_t>(bytes);
  return true;
}

}  // namespace memory_budget_detail

/// What this process can still allocate: the environment variable
/// CONTRA_MEMORY_AVAILABLE when set ("16GiB", "512M", bytes: to check a
/// pipeline for a smaller machine, or to leave room for other work); else
/// the kernel's MemAvailable (/proc/meminfo: free memory plus the page cache
/// and slabs it can reclaim without swapping, which physical memory, shared
/// with every other process, overstates), lowered to what the process's
/// memory cgroup still allows when that is less (a container's limit, which
/// MemAvailable does not see); physical memory where neither can be read.
/// Read afresh at each call: it changes as the process allocates.
inline AvailableMemory available_memory() {
  if (const char* env = std::getenv("CONTRA_MEMORY_AVAILABLE"); env && *env) {
    std::uint64_t b = 0;
    if (!memory_budget_detail::parse_size(env, b))
      throw ConfigError(std::string("CONTRA_MEMORY_AVAILABLE = \"") + env +
                        "\": expected a size such as 17179869184, 16GiB or 512M");
    return {b, "CONTRA_MEMORY_AVAILABLE"};
  }
  AvailableMemory m;
  std::uint64_t kib = 0;
  if (memory_budget_detail::read_field("/proc/meminfo", "MemAvailable:", kib)) {
    m = {mul_bytes(kib, 1024), "MemAvailable"};
  } else {
    const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
    m = {pages > 0 && page > 0 ? mul_bytes(static_cast<std::uint64_t>(pages), static_cast<std::uint64_t>(page))
                               : std::numeric_limits<std::uint64_t>::max(),
         "physical memory"};
  }
  if (std::uint64_t cg = 0; memory_budget_detail::cgroup_available(cg) && cg < m.bytes) m = {cg, "cgroup memory limit"};
  return m;
}

/// Throws ConfigError "<subject> needs <bytes> of <what> (<how>); this
/// machine has <available>" when `bytes` is more than available_memory(),
/// e.g. subject "memory.size = 10000000000", what "keys", how
/// "10000000000 × 128 f32". Call it before allocating; `how` may be empty.
inline void require_memory(const std::string& subject, std::uint64_t bytes, const std::string& what,
                           const std::string& how) {
  const AvailableMemory avail = available_memory();
  if (bytes <= avail.bytes) return;
  throw ConfigError(subject + " needs " + bytes_text(bytes) + " of " + what + (how.empty() ? "" : " (" + how + ")") +
                    "; this machine has " + avail.text());
}

/// What an error says of a std::bad_alloc caught around a plugin's
/// construction or call, after its own checks let a size through: "out of
/// memory (std::bad_alloc): the sizes its table sets need more than this
/// machine has, 22.1 GiB available (MemAvailable)".
inline std::string out_of_memory_text() {
  std::string avail;
  try {
    avail = available_memory().text();
  } catch (const std::exception& e) {
    avail = e.what();
  }
  return "out of memory (std::bad_alloc): the sizes its table sets need more than this machine has, " + avail;
}

/// "[512, 512]": a list parameter as a message writes it.
inline std::string list_text(const std::vector<std::int64_t>& v) {
  std::string s = "[";
  for (std::size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + std::to_string(v[i]);
  return s + "]";
}

}  // namespace contra
