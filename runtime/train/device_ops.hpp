#pragma once
// The train step's device work, through libcontra_cuda's bridge table (the
// runtime never links CUDA: graph/device_runtime.hpp). Used only for
// [train] device = "cuda", after require_device(); every call is ordered on
// the calling thread's current stream (the train stream in a run).

#include <contra/tensor.hpp>

#include <cstdint>

namespace contra::runtime::device_ops {

/// A host copy of `t` (t itself when it lives on the CPU). Synchronous.
Tensor to_host(const Tensor& t);
/// Starts copying device tensor `dev` into `host` (reused when it is an
/// unshared page-locked tensor of the same size, else made so). Call
/// finish() before reading `host`.
void to_host_async(Tensor& host, const Tensor& dev);
/// Starts copying host tensor `host` into `dev` (made a device tensor of its
/// shape; storage reused when large enough). Pageable `host` memory may be
/// reused once this returns (CUDA stages it first).
void to_device_async(Tensor& dev, const Tensor& host);
/// Waits for the current stream.
void finish();
/// Copies `src` into the storage of `dst` in place (same shape and dtype;
/// either on either device). Synchronous: `src` may go right after.
void copy_into(Tensor& dst, const Tensor& src);
/// Copies device tensor `src` into the storage of device tensor `dst` in
/// place (same shape and dtype), asynchronously.
void copy_async(Tensor& dst, const Tensor& src);
/// Copies rows of device tensor `src` into `dst` from row `at` on (same
/// width), asynchronously.
void copy_rows(Tensor& dst, std::int64_t at, const Tensor& src);
/// Number of NaN and ±Inf in device f32 tensor `t` (a device reduction; the
/// count alone comes back). Synchronous.
std::int64_t count_nonfinite(const Tensor& t);
/// k ← m·k + (1 − m)·q on the device, asynchronously.
void momentum_update(Tensor& k, const Tensor& q, float m);
/// Waits until the whole device is idle.
void synchronize_device();

}  // namespace contra::runtime::device_ops
