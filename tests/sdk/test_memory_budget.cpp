#include <contra/memory_budget.hpp>

#include "scoped_env.hpp"

#include <catch2/catch.hpp>

#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>

using contra::test::ScopedEnv;

TEST_CASE("memory_budget: byte counts are written in binary units", "[sdk][memory_budget]") {
  CHECK(contra::bytes_text(0) == "0 B");
  CHECK(contra::bytes_text(512) == "512 B");
  CHECK(contra::bytes_text(1023) == "1023 B");
  CHECK(contra::bytes_text(1024) == "1.0 KiB");
  CHECK(contra::bytes_text(3174) == "3.1 KiB");
  CHECK(contra::bytes_text(512ull << 20) == "512 MiB");
  CHECK(contra::bytes_text(99ull << 20) == "99.0 MiB");
  CHECK(contra::bytes_text((1ull << 20) - 1) == "1.0 MiB");  // rounding picks the unit
  CHECK(contra::bytes_text(static_cast<std::uint64_t>(23.4 * (1ull << 30))) == "23.4 GiB");
  CHECK(contra::bytes_text(static_cast<std::uint64_t>(3.7 * (1ull << 40))) == "3.7 TiB");
  CHECK(contra::bytes_text(std::numeric_limits<std::uint64_t>::max()) == "16.0 EiB");
}

TEST_CASE("memory_budget: products and sums saturate instead of wrapping", "[sdk][memory_budget]") {
  constexpr std::uint64_t max = std::numeric_limits<std::uint64_t>::max();
  CHECK(contra::mul_bytes(1ull << 32, 1ull << 31) == 1ull << 63);
  CHECK(contra::mul_bytes(1ull << 32, 1ull << 32) == max);
  CHECK(contra::mul_bytes(0, max) == 0);
  CHECK(contra::add_bytes(max - 1, 1) == max);
  CHECK(contra::add_bytes(max, 1) == max);
}

TEST_CASE("memory_budget: what this machine has", "[sdk][memory_budget]") {
  SECTION("the kernel's figure, or a cgroup's lower one") {
    const contra::AvailableMemory m = [] {
      if (std::getenv("CONTRA_MEMORY_AVAILABLE")) {
        const ScopedEnv none("CONTRA_MEMORY_AVAILABLE", "");  // empty: not set
        return contra::available_memory();
      }
      return contra::available_memory();
    }();
    CHECK(m.bytes > 0);
    CHECK((m.source == "MemAvailable" || m.source == "cgroup memory limit" || m.source == "physical memory"));
  }
  SECTION("CONTRA_MEMORY_AVAILABLE overrides it") {
    auto with = [](const char* value) {
      const ScopedEnv env("CONTRA_MEMORY_AVAILABLE", value);
      return contra::available_memory();
    };
    CHECK(with("17179869184").bytes == 17179869184ull);
    CHECK(with("16GiB").bytes == 16ull << 30);
    CHECK(with("16G").bytes == 16ull << 30);
    CHECK(with("16 GB").bytes == 16ull << 30);
    CHECK(with("512M").bytes == 512ull << 20);
    CHECK(with("1.5TiB").bytes == 3ull << 39);
    CHECK(with("64k").bytes == 64ull << 10);
    CHECK(with("16GiB").source == "CONTRA_MEMORY_AVAILABLE");
    CHECK(with("16GiB").text() == "16.0 GiB available (CONTRA_MEMORY_AVAILABLE)");
    CHECK_THROWS_WITH(with("lots"), "CONTRA_MEMORY_AVAILABLE = \"lots\": expected a size such as 17179869184, "
                                    "16GiB or 512M");
    CHECK_THROWS_AS(with("16 GiBs"), contra::ConfigError);
    CHECK_THROWS_AS(with("-1"), contra::ConfigError);
  }
}

TEST_CASE("memory_budget: require_memory refuses what does not fit, naming the subject and the figure",
          "[sdk][memory_budget]") {
  const ScopedEnv env("CONTRA_MEMORY_AVAILABLE", "16GiB");
  CHECK_NOTHROW(contra::require_memory("encoder.hidden = [512]", 16ull << 30, "weights and gradients", ""));
  CHECK_THROWS_AS(contra::require_memory("encoder.hidden = [512]", (16ull << 30) + 1, "weights", ""),
                  contra::ConfigError);
  CHECK_THROWS_WITH(contra::require_memory("memory.size = 10000000000", 5280000000000ull, "keys, ids and labels",
                                           "10000000000 × (128 f32 + 2 i64)"),
                    "memory.size = 10000000000 needs 4.8 TiB of keys, ids and labels (10000000000 × (128 f32 + 2 "
                    "i64)); this machine has 16.0 GiB available (CONTRA_MEMORY_AVAILABLE)");
  CHECK_THROWS_WITH(contra::require_memory("sgd", 1ull << 40, "momentum buffers", ""),
                    "sgd needs 1.0 TiB of momentum buffers; this machine has 16.0 GiB available "
                    "(CONTRA_MEMORY_AVAILABLE)");
  CHECK(contra::out_of_memory_text() ==
        "out of memory (std::bad_alloc): the sizes its table sets need more than this machine has, 16.0 GiB "
        "available (CONTRA_MEMORY_AVAILABLE)");
  CHECK(contra::list_text({}) == "[]");
  CHECK(contra::list_text({512, 128}) == "[512, 128]");
}

TEST_CASE("memory_budget: a memory cgroup's limit, less what it uses and cannot reclaim", "[sdk][memory_budget]") {
  namespace fs = std::filesystem;
  const fs::path root = fs::temp_directory_path() / ("contra-cgroup-" + std::to_string(::getpid()));
  fs::remove_all(root);
  auto write = [&](const fs::path& file, const std::string& text) {
    fs::create_directories(file.parent_path());
    std::ofstream(file) << text;
  };
  std::uint64_t left = 0;
  // cgroup v2: the process's group /job: 8 GiB, 3 GiB used of which 1 GiB inactive page cache.
  write(root / "self", "0::/job\n");
  write(root / "sys/job/memory.max", "8589934592\n");
  write(root / "sys/job/memory.current", "3221225472\n");
  write(root / "sys/job/memory.stat", "anon 2147483648\nfile 1073741824\ninactive_file 1073741824\n");
  REQUIRE(contra::memory_budget_detail::cgroup_available(left, (root / "self").string(), (root / "sys").string()));
  CHECK(left == 6ull << 30);
  // No limit ("max"): none.
  write(root / "sys/job/memory.max", "max\n");
  CHECK_FALSE(contra::memory_budget_detail::cgroup_available(left, (root / "self").string(), (root / "sys").string()));
  // cgroup v1, at the namespace's root: "no limit" is 2^63 rounded down to a page; a limit counts.
  write(root / "self", "4:memory:/\n0::/\n");
  write(root / "sys/memory/memory.limit_in_bytes", "9223372036854771712\n");
  write(root / "sys/memory/memory.usage_in_bytes", "5655400448\n");
  CHECK_FALSE(contra::memory_budget_detail::cgroup_available(left, (root / "self").string(), (root / "sys").string()));
  write(root / "sys/memory/memory.limit_in_bytes", "4294967296\n");
  write(root / "sys/memory/memory.usage_in_bytes", "1073741824\n");
  write(root / "sys/memory/memory.stat", "cache 536870912\ntotal_inactive_file 536870912\n");
  REQUIRE(contra::memory_budget_detail::cgroup_available(left, (root / "self").string(), (root / "sys").string()));
  CHECK(left == (4ull << 30) - (1ull << 29));
  fs::remove_all(root);
}
