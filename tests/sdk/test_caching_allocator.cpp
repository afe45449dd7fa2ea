// The CUDA allocator's caching logic, on the CPU with a fake backend.
#include "caching_allocator.hpp"

#include <catch2/catch.hpp>

#include <cstdlib>
#include <map>
#include <set>

using contra::cuda::detail::AllocatorBackend;
using contra::cuda::detail::CachingAllocator;

namespace {
// Hands out host memory, can be told to run out, and counts calls.
struct FakeBackend final : AllocatorBackend {
  std::size_t limit = std::size_t{1} << 40;  // bytes it may have out at once
  std::size_t out = 0;
  int allocations = 0, frees = 0, syncs = 0;
  std::set<void*> live;
  void* allocate(std::size_t bytes) override {
    if (out + bytes > limit) return nullptr;
    void* p = std::malloc(bytes);
    live.insert(p);
    out += bytes;
    ++allocations;
    last_size = bytes;
    sized[p] = bytes;
    return p;
  }
  void free(void* p) noexcept override {
    out -= sized[p];
    sized.erase(p);
    live.erase(p);
    std::free(p);
    ++frees;
  }
  void synchronize() override { ++syncs; }
  std::size_t last_size = 0;
  std::map<void*, std::size_t> sized;
};
void* stream_a = reinterpret_cast<void*>(0x1000);
void* stream_b = reinterpret_cast<void*>(0x2000);
}  // namespace

TEST_CASE("caching allocator: sizes are binned", "[sdk][cuda]") {
  CHECK(CachingAllocator::bin_size(0) == 512);
  CHECK(CachingAllocator::bin_size(1) == 512);
  CHECK(CachingAllocator::bin_size(512) == 512);
  CHECK(CachingAllocator::bin_size(513) == 1024);
  CHECK(CachingAllocator::bin_size(1 << 20) == (1 << 20));
  // Above 1 MiB: 8 sizes per power of two.
  CHECK(CachingAllocator::bin_size((1 << 20) + 1) == (1 << 20) + (1 << 17));
  CHECK(CachingAllocator::bin_size(3'000'000) == 3'145'728);  // 2 MiB + 4 * 256 KiB
  for (std::size_t n : {std::size_t{1'234'567}, std::size_t{99'999'999}, std::size_t{1} << 33}) {
    std::size_t b = CachingAllocator::bin_size(n);
    CHECK(b >= n);
    CHECK(b - n <= n / 8);
  }
}

TEST_CASE("caching allocator: a freed block is reused by the same bin on the same stream", "[sdk][cuda]") {
  FakeBackend backend;
  CachingAllocator cache(backend);
  void* p = cache.allocate(1000, stream_a);
  CHECK(backend.last_size == 1024);
  cache.release(p);
  CHECK(cache.allocate(900, stream_a) == p);  // same 1024-byte bin
  CHECK(backend.allocations == 1);
  cache.release(p);
  // Another stream does not get it: its work is not ordered after the old owner's.
  void* q = cache.allocate(1000, stream_b);
  CHECK(q != p);
  // Another bin does not get it either.
  void* r = cache.allocate(2000, stream_a);
  CHECK(r != p);
  CHECK(backend.allocations == 3);
  auto s = cache.stats();
  CHECK(s.allocations == 4);
  CHECK(s.cache_hits == 1);
  CHECK(s.in_use == 1024 + 2048);
  CHECK(s.cached == 1024);
  CHECK(s.reserved == s.in_use + s.cached);
  cache.release(q);
  cache.release(r);
}

TEST_CASE("caching allocator: the most recently freed block of a bin is reused first", "[sdk][cuda]") {
  FakeBackend backend;
  CachingAllocator cache(backend);
  void* a = cache.allocate(4096, stream_a);
  void* b = cache.allocate(4096, stream_a);
  cache.release(a);
  cache.release(b);
  CHECK(cache.allocate(4096, stream_a) == b);
  CHECK(cache.allocate(4096, stream_a) == a);
  CHECK(backend.allocations == 2);
  cache.release(a);
  cache.release(b);
}

TEST_CASE("caching allocator: statistics track in use, cached and peak bytes", "[sdk][cuda]") {
  FakeBackend backend;
  CachingAllocator cache(backend);
  void* a = cache.allocate(4096, nullptr);
  void* b = cache.allocate(8192, nullptr);
  CHECK(cache.stats().in_use == 12288);
  CHECK(cache.stats().peak_in_use == 12288);
  cache.release(b);
  auto s = cache.stats();
  CHECK(s.in_use == 4096);
  CHECK(s.cached == 8192);
  CHECK(s.peak_in_use == 12288);
  cache.reset_peak();
  CHECK(cache.stats().peak_in_use == 4096);
  cache.release(a);
  cache.release(a);  // unknown by now: ignored
  CHECK(cache.stats().in_use == 0);
  CHECK(cache.stats().cached == 12288);
  cache.empty_cache();
  CHECK(backend.syncs == 1);
  CHECK(backend.frees == 2);
  CHECK(backend.live.empty());
  CHECK(cache.stats().cached == 0);
  CHECK(cache.stats().reserved == 0);
}

TEST_CASE("caching allocator: out of memory frees the cache and retries, then throws", "[sdk][cuda]") {
  FakeBackend backend;
  backend.limit = 3 << 20;
  CachingAllocator cache(backend);
  void* a = cache.allocate(2 << 20, nullptr);
  cache.release(a);  // cached, still out at the backend
  void* b = cache.allocate(2 << 20, stream_b);  // other stream: needs a new block, none left
  CHECK(b != nullptr);
  CHECK(backend.syncs == 1);
  CHECK(backend.frees == 1);
  CHECK(cache.stats().cached == 0);
  CHECK_THROWS_WITH(cache.allocate(2 << 20, nullptr),
                    "CUDA out of memory: allocating 2097152 bytes (2 MiB) with 2 MiB in use by tensors");
  cache.release(b);
}

TEST_CASE("caching allocator: a retired stream's blocks go back to the backend", "[sdk][cuda]") {
  FakeBackend backend;
  CachingAllocator cache(backend);
  void* a1 = cache.allocate(1000, stream_a);
  void* a2 = cache.allocate(5000, stream_a);
  void* live = cache.allocate(3000, stream_a);  // still in use when the stream goes
  void* b = cache.allocate(1000, stream_b);
  cache.release(a1);
  cache.release(a2);
  cache.release(b);
  REQUIRE(cache.stats().cached == 1024 + 5120 + 1024);
  cache.retire_stream(stream_a);
  // Stream a's cached blocks are freed; stream b's stay cached.
  CHECK(backend.frees == 2);
  CHECK(backend.live.count(a1) == 0);
  CHECK(backend.live.count(a2) == 0);
  CHECK(cache.stats().cached == 1024);
  CHECK(cache.allocate(1000, stream_b) == b);
  // A block of the retired stream released later is freed, not cached.
  cache.release(live);
  CHECK(backend.frees == 3);
  CHECK(cache.stats().in_use == 1024);
  CHECK(cache.stats().cached == 0);  // b is in use again
  CHECK(cache.stats().reserved == 1024);
  // A new stream with the retired one's handle caches as usual.
  void* again = cache.allocate(1000, stream_a);
  cache.release(again);
  CHECK(cache.stats().cached == 1024);
  CHECK(cache.allocate(1000, stream_a) == again);
  cache.release(again);
  cache.release(b);
}
