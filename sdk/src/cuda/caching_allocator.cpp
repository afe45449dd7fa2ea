#include "caching_allocator.hpp"

#include <algorithm>
#include <bit>
#include <iterator>
#include <string>

namespace contra::cuda::detail {

namespace {
std::string mib(std::size_t bytes) {
  return std::to_string((bytes + (std::size_t{1} << 19)) >> 20) + " MiB";
}
}  // namespace

CachingAllocator::~CachingAllocator() {
  // Blocks still live belong to tensors that outlive the allocator; they are
  // not touched. Cached ones go back.
  for (auto& [key, p] : cached_) backend_.free(p);
}

std::size_t CachingAllocator::bin_size(std::size_t bytes) noexcept {
  if (bytes <= small_limit) {
    std::size_t n = std::max<std::size_t>(bytes, 1);
    return (n + small_granule - 1) / small_granule * small_granule;
  }
  std::size_t step = std::bit_floor(bytes) / 8;
  return (bytes + step - 1) / step * step;
}

void* CachingAllocator::allocate(std::size_t bytes, void* stream) {
  std::size_t size = bin_size(bytes);
  auto s = reinterpret_cast<std::uintptr_t>(stream);
  std::lock_guard<std::mutex> lock(mutex_);
  if (!retired_.empty()) retired_.erase(s);  // a new stream with a retired one's handle
  ++stats_.allocations;
  void* p = nullptr;
  // The most recently freed block of the bin: likelier still in the GPU's L2.
  auto [first, last] = cached_.equal_range(Key{s, size});
  if (first != last) {
    auto it = std::prev(last);
    p = it->second;
    cached_.erase(it);
    stats_.cached -= size;
    ++stats_.cache_hits;
  } else {
    p = backend_.allocate(size);
    if (!p && !cached_.empty()) {
      free_cached_locked();
      p = backend_.allocate(size);
    }
    if (!p)
      throw DeviceError("CUDA out of memory: allocating " + std::to_string(bytes) + " bytes (" +
                        mib(size) + ") with " + mib(stats_.in_use) + " in use by tensors");
  }
  live_.emplace(p, Block{size, s});
  stats_.in_use += size;
  stats_.peak_in_use = std::max(stats_.peak_in_use, stats_.in_use);
  stats_.reserved = stats_.in_use + stats_.cached;
  return p;
}

void CachingAllocator::release(void* p) noexcept {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = live_.find(p);
  if (it == live_.end()) return;
  Block b = it->second;
  live_.erase(it);
  stats_.in_use -= b.size;
  if (retired_.count(b.stream)) {  // its stream is gone: nothing would reuse it
    backend_.free(p);
    stats_.reserved = stats_.in_use + stats_.cached;
    return;
  }
  try {
    cached_.emplace(Key{b.stream, b.size}, p);
    stats_.cached += b.size;
  } catch (...) {
    backend_.free(p);  // no memory for the bookkeeping: give the block back
  }
  stats_.reserved = stats_.in_use + stats_.cached;
}

void CachingAllocator::free_cached_locked() {
  if (cached_.empty()) return;
  backend_.synchronize();
  for (auto& [key, p] : cached_) backend_.free(p);
  cached_.clear();
  stats_.cached = 0;
  stats_.reserved = stats_.in_use;
}

void CachingAllocator::retire_stream(void* stream) noexcept {
  const auto s = reinterpret_cast<std::uintptr_t>(stream);
  std::lock_guard<std::mutex> lock(mutex_);
  for (auto it = cached_.lower_bound(Key{s, 0}); it != cached_.end() && it->first.first == s;) {
    backend_.free(it->second);
    stats_.cached -= it->first.second;
    it = cached_.erase(it);
  }
  stats_.reserved = stats_.in_use + stats_.cached;
  try {
    retired_.insert(s);
  } catch (...) {
    // Without the note its live blocks are cached when released: kept, not lost.
  }
}

void CachingAllocator::empty_cache() {
  std::lock_guard<std::mutex> lock(mutex_);
  free_cached_locked();
}

MemoryStats CachingAllocator::stats() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return stats_;
}

void CachingAllocator::reset_peak() {
  std::lock_guard<std::mutex> lock(mutex_);
  stats_.peak_in_use = stats_.in_use;
}

}  // namespace contra::cuda::detail
