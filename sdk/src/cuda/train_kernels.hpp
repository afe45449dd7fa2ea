#pragma once
// Device work of the runtime's train step (train_kernels.cu), reached through
// the bridge table (cuda_bridge.hpp). Every call is ordered on `stream`.

#include <cstddef>
#include <cstdint>

namespace contra::cuda::detail {

/// cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDefault): in place, either
/// direction (host memory pageable or pinned). Pageable host memory makes
/// CUDA copy synchronously; synchronize the stream before reading a host
/// destination either way.
void copy_bytes(void* dst, const void* src, std::size_t bytes, void* stream);
/// Number of NaN and ±Inf among n f32 values at device address `data`,
/// counted into `device_counter` (one value on the device) and read back
/// through `host_counter` (one page-locked value): both belong to `stream`,
/// whose work is serial. Synchronises `stream`.
std::int64_t count_nonfinite(const void* data, std::int64_t n, unsigned long long* device_counter,
                             unsigned long long* host_counter, void* stream);
/// k ← m·k + (1 − m)·q over n f32 values at device addresses (MoCo's
/// momentum encoder). Asynchronous.
void momentum_update(void* k, const void* q, std::int64_t n, float m, void* stream);

}  // namespace contra::cuda::detail
