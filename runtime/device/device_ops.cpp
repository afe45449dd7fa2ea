#include "device/device_ops.hpp"

#include "cuda_bridge.hpp"
#include "device/cuda_library.hpp"

#include <contra/errors.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>

namespace contra::runtime::device_ops {

namespace {

const cuda::detail::CudaBridge& cuda() { return require_cuda_bridge("device tensors"); }

void expect_same(const Tensor& dst, const Tensor& src, const char* what) {
  if (dst.shape() != src.shape() || dst.dtype() != src.dtype())
    throw UsageError(std::string(what) + ": copying a " + dtype_name(src.dtype()) + " " + src.shape().str() +
                     " tensor into a " + dtype_name(dst.dtype()) + " " + dst.shape().str() + " one");
}

bool on_host(const Tensor& t) { return t.device() == Device::cpu; }

}  // namespace

Tensor to_host(const Tensor& t) {
  if (t.device() == Device::cpu) return t;
  const auto& c = cuda();
  Tensor host;
  void* s = c.current_stream();
  c.copy_to_host(host, t, s);
  c.synchronize(s);
  return host;
}

void to_host_async(Tensor& host, const Tensor& dev) {
  if (on_host(dev)) {
    host = dev;
    return;
  }
  const auto& c = cuda();
  // A pinned tensor of the right size is reused in place by copy_to_host's
  // ensure(); anything else is replaced by one, so that the copy is truly
  // asynchronous.
  if (!host.defined() || host.nbytes() < dev.nbytes() || host.capacity() < dev.nbytes())
    host = c.pinned_host_tensor(dev.shape(), dev.dtype());
  c.copy_to_host(host, dev, c.current_stream());
}

void to_device_async(Tensor& dev, const Tensor& host) {
  const auto& c = cuda();
  c.copy_to_device(dev, host, c.current_stream());
}

void finish(Device where) {
  if (where == Device::cpu) return;  // and never maps libcontra_cuda for it
  const auto& c = cuda();
  c.synchronize(c.current_stream());
}

void copy_into(Tensor& dst, const Tensor& src) {
  expect_same(dst, src, "copy_into");
  if (on_host(dst) && on_host(src)) {
    std::memcpy(dst.raw(), src.raw(), src.nbytes());
    return;
  }
  const auto& c = cuda();
  void* s = c.current_stream();
  c.copy_bytes(dst.raw(), src.raw(), src.nbytes(), s);
  c.synchronize(s);
}

void copy_async(Tensor& dst, const Tensor& src) {
  expect_same(dst, src, "copy_async");
  if (on_host(dst) && on_host(src)) {
    std::memcpy(dst.raw(), src.raw(), src.nbytes());
    return;
  }
  const auto& c = cuda();
  c.copy_bytes(dst.raw(), src.raw(), src.nbytes(), c.current_stream());
}

void copy_rows(Tensor& dst, std::int64_t at, const Tensor& src) {
  if (dst.rank() != 2 || src.rank() != 2 || dst.dim(1) != src.dim(1) || at + src.dim(0) > dst.dim(0) ||
      dst.dtype() != src.dtype())
    throw UsageError("copy_rows: " + src.shape().str() + " rows at row " + std::to_string(at) + " of " +
                     dst.shape().str());
  char* to = static_cast<char*>(dst.raw()) + at * dst.dim(1) * static_cast<std::int64_t>(dtype_size(dst.dtype()));
  if (on_host(dst) && on_host(src)) {
    std::memcpy(to, src.raw(), src.nbytes());
    return;
  }
  const auto& c = cuda();
  c.copy_bytes(to, src.raw(), src.nbytes(), c.current_stream());
}

std::int64_t count_nonfinite(const Tensor& t) {
  if (on_host(t)) {
    // One sum first: cheap when every value is finite (the usual case).
    const float* p = t.data<float>();
    double sum = 0;
    for (std::int64_t i = 0; i < t.numel(); ++i) sum += p[i];
    if (std::isfinite(sum)) return 0;
    return std::count_if(p, p + t.numel(), [](float v) { return !std::isfinite(v); });
  }
  const auto& c = cuda();
  return c.count_nonfinite(t.data<float>(), t.numel(), c.current_stream());
}

void momentum_update(Tensor& k, const Tensor& q, float m) {
  expect_same(k, q, "momentum_update");
  if (on_host(k) && on_host(q)) {
    float* kp = k.data<float>();
    const float* qp = q.data<float>();
    for (std::int64_t j = 0; j < q.numel(); ++j) kp[j] = m * kp[j] + (1.0f - m) * qp[j];
    return;
  }
  const auto& c = cuda();
  c.momentum_update(k.data<float>(), q.data<float>(), q.numel(), m, c.current_stream());
}

void synchronize_device(Device where) {
  if (where != Device::cpu) cuda().synchronize_device();
}

}  // namespace contra::runtime::device_ops
