#pragma once
// The device interface of the train step and the evaluation: each operation
// works on host tensors (plain loops; nothing to wait for) and on CUDA
// device tensors, through libcontra_cuda's bridge table (the runtime never
// links CUDA: device/cuda_library.hpp), so the step is written once for
// both. Device work is ordered on the calling thread's current stream (the
// train stream in a run); "asynchronously" means nothing on the host.

#include <contra/tensor.hpp>

#include <cstdint>

namespace contra::runtime::device_ops {

/// A host copy of `t` (t itself when it lives on the CPU). Synchronous.
Tensor to_host(const Tensor& t);
/// Starts copying device tensor `dev` into `host` (reused when it is an
/// unshared page-locked tensor of the same size, else made so). Call
/// finish() before reading `host`. A host `dev` is shared, not copied.
void to_host_async(Tensor& host, const Tensor& dev);
/// Starts copying host tensor `host` into `dev` (made a device tensor of its
/// shape; storage reused when large enough). Pageable `host` memory may be
/// reused once this returns (CUDA stages it first).
void to_device_async(Tensor& dev, const Tensor& host);
/// Waits for the current stream of `where` (nothing to wait for on the CPU).
void finish(Device where);
/// Copies `src` into the storage of `dst` in place (same shape and dtype;
/// either on either device). Synchronous: `src` may go right after.
void copy_into(Tensor& dst, const Tensor& src);
/// Copies `src` into the storage of `dst` in place (same shape, dtype and
/// device), asynchronously.
void copy_async(Tensor& dst, const Tensor& src);
/// Copies the rows of `src` into `dst` from row `at` on (same width and
/// device), asynchronously.
void copy_rows(Tensor& dst, std::int64_t at, const Tensor& src);
/// Number of NaN and ±Inf in f32 tensor `t` (on a device, a device
/// reduction whose count alone comes back). Synchronous.
std::int64_t count_nonfinite(const Tensor& t);
/// k ← m·k + (1 − m)·q where both live, asynchronously.
void momentum_update(Tensor& k, const Tensor& q, float m);
/// Waits until the whole of device `where` is idle (nothing on the CPU).
void synchronize_device(Device where);

}  // namespace contra::runtime::device_ops
