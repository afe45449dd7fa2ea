#pragma once
// The caching logic of the CUDA device allocator, written against a small
// backend so that it is tested on the CPU with a fake backend
// (tests/sdk/test_caching_allocator.cpp). Plain C++: no CUDA headers.
//
// Why cache: cudaMalloc/cudaFree synchronise the device and cost far more
// than a kernel; a training step frees and re-allocates the same sizes every
// step. Freed blocks are kept, binned by size and by the stream they were
// allocated on, and handed out again to a request of the same bin on the
// same stream. Reuse on the same stream needs no synchronisation: the
// stream runs the new owner's work after the old owner's.

#include <contra/cuda.hpp>

#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <set>
#include <unordered_map>
#include <utility>

namespace contra::cuda::detail {

/// Where the memory really comes from (cudaMalloc, or a fake in tests).
struct AllocatorBackend {
  /// nullptr when the device is out of memory; throws on any other failure.
  virtual void* allocate(std::size_t bytes) = 0;
  virtual void free(void* p) noexcept = 0;
  /// Waits until no stream uses any memory (before cached blocks go back).
  virtual void synchronize() = 0;
  virtual ~AllocatorBackend() = default;
};

class CachingAllocator {
 public:
  /// Requests up to small_limit bytes round up to a multiple of small_granule;
  /// larger ones to one of 8 sizes per power of two (at most 12.5% unused).
  static constexpr std::size_t small_granule = 512;
  static constexpr std::size_t small_limit = std::size_t{1} << 20;

  explicit CachingAllocator(AllocatorBackend& backend) : backend_(backend) {}
  ~CachingAllocator();
  CachingAllocator(const CachingAllocator&) = delete;
  CachingAllocator& operator=(const CachingAllocator&) = delete;

  /// The size of the block a request of `bytes` gets.
  static std::size_t bin_size(std::size_t bytes) noexcept;

  /// A block of at least `bytes` for use on `stream`: a cached one of the
  /// same bin and stream if there is one, else a new one. When the backend
  /// is out of memory, every cached block is given back and the request
  /// retried once; then DeviceError("CUDA out of memory: ...").
  void* allocate(std::size_t bytes, void* stream);
  /// Returns a block to the cache of the stream it was allocated on.
  /// Unknown pointers are ignored.
  void release(void* p) noexcept;
  /// Gives every cached block back to the backend (after synchronize()).
  void empty_cache();
  /// `stream` is being destroyed, its work done: its cached blocks go back to
  /// the backend (no other stream would ever be handed them), and so do its
  /// blocks still in use when they are released, until a new stream with the
  /// same handle allocates.
  void retire_stream(void* stream) noexcept;

  MemoryStats stats() const;
  void reset_peak();

 private:
  using Key = std::pair<std::uintptr_t, std::size_t>;  // (stream, bin size)
  struct Block {
    std::size_t size;
    std::uintptr_t stream;
  };
  void free_cached_locked();

  AllocatorBackend& backend_;
  mutable std::mutex mutex_;
  std::unordered_map<void*, Block> live_;
  std::multimap<Key, void*> cached_;
  std::set<std::uintptr_t> retired_;  // streams destroyed since they last allocated
  MemoryStats stats_;
};

}  // namespace contra::cuda::detail
