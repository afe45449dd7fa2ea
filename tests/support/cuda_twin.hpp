#pragma once
// Helpers for the [gpu] tests that compare a plugin's cuda build with its CPU
// build (the oracle): random host inputs, copies to and from the GPU on the
// current stream, and the largest difference relative to the oracle's scale.

#include <contra/cuda.hpp>
#include <contra/rng.hpp>
#include <contra/tensor.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>

namespace cuda_twin {

inline contra::Tensor random_matrix(std::int64_t rows, std::int64_t cols, std::uint64_t seed, double scale = 1.0) {
  contra::Tensor t = contra::Tensor::empty({rows, cols}, contra::DType::f32);
  contra::Rng rng(seed, 0, 0, 0, 0);
  for (std::int64_t k = 0; k < t.numel(); ++k) t.data<float>()[k] = static_cast<float>(scale * rng.normal());
  return t;
}

inline contra::Tensor to_device(const contra::Tensor& host) {
  contra::Tensor d;
  contra::cuda::copy_to_device(d, host, contra::cuda::current_stream());
  contra::cuda::synchronize(contra::cuda::current_stream());
  return d;
}

inline contra::Tensor to_host(const contra::Tensor& dev) {
  contra::Tensor h;
  contra::cuda::copy_to_host(h, dev, contra::cuda::current_stream());
  contra::cuda::synchronize(contra::cuda::current_stream());
  return h;
}

/// max |a − b| / max(max |a|, floor): the worst difference relative to the
/// oracle a's largest entry (entries near 0 do not inflate it).
inline double relative_difference(const contra::Tensor& a, const contra::Tensor& b, double floor = 1e-30) {
  if (a.shape() != b.shape()) return INFINITY;
  const float* x = a.data<float>();
  const float* y = b.data<float>();
  double diff = 0.0, scale = floor;
  for (std::int64_t k = 0; k < a.numel(); ++k) {
    diff = std::max(diff, std::fabs(static_cast<double>(x[k]) - y[k]));
    scale = std::max(scale, std::fabs(static_cast<double>(x[k])));
  }
  return diff / scale;
}

/// |a − b| / max(|a|, 1).
inline double value_difference(double a, double b) { return std::fabs(a - b) / std::max(std::fabs(a), 1.0); }

/// Rows of `n` samples × `views`, where each odd sample lies `gap` (times a
/// random unit of noise) from the sample before it, and the views of
/// a sample lie `view_gap` apart: pairs so close that the Gram form
/// |x_i|² + |x_j|² − 2 x_i·x_j cancels to noise, the case the losses treat
/// apart (exact distance, gradient added directly).
inline contra::Tensor near_rows(std::int64_t n, std::int64_t views, std::int64_t d, double gap, double view_gap,
                                std::uint64_t seed) {
  contra::Tensor base = random_matrix(n, d, seed);
  contra::Tensor noise = random_matrix(n * views, d, seed + 1);
  for (std::int64_t i = 1; i < n; i += 2)
    for (std::int64_t k = 0; k < d; ++k)
      base.data<float>()[i * d + k] = base.data<float>()[(i - 1) * d + k] +
                                      static_cast<float>(gap * noise.data<float>()[i * d + k]);
  contra::Tensor z = contra::Tensor::empty({n * views, d}, contra::DType::f32);
  for (std::int64_t v = 0; v < views; ++v)
    for (std::int64_t i = 0; i < n; ++i)
      for (std::int64_t k = 0; k < d; ++k)
        z.data<float>()[(v * n + i) * d + k] =
            base.data<float>()[i * d + k] +
            (v == 0 ? 0.0f : static_cast<float>(view_gap * noise.data<float>()[(v * n + i) * d + k]));
  return z;
}

/// Restores the math mode when a test leaves.
struct MathModeGuard {
  contra::cuda::MathMode saved = contra::cuda::math_mode();
  ~MathModeGuard() { contra::cuda::set_math_mode(saved); }
};

}  // namespace cuda_twin

#include <contra/roles/loss.hpp>

#include <catch2/catch.hpp>

#include <string>
#include <vector>

namespace cuda_twin {

inline std::vector<std::int64_t> samples(std::int64_t n, std::int64_t views) {
  std::vector<std::int64_t> s;
  for (std::int64_t v = 0; v < views; ++v)
    for (std::int64_t i = 0; i < n; ++i) s.push_back(i);
  return s;
}

/// Runs the CPU loss on `host` and the cuda loss on a copy whose z (and keys,
/// and with memory_on_device the memory's keys) live on the GPU; checks the
/// value and every metric within value_tol (value_difference) and dL/dz
/// within grad_tol (relative_difference). Returns the cuda result, grad on the host.
template <class CpuLoss, class GpuLoss>
contra::LossResult compare_loss(CpuLoss& cpu, GpuLoss& gpu, const contra::Embeddings& host, const contra::Pairs& pairs,
                                double value_tol, double grad_tol, bool memory_on_device = false) {
  contra::LossResult want, got;
  cpu.compute(host, pairs, want);
  contra::Embeddings dev = host;
  dev.z = to_device(host.z);
  if (host.keys.defined()) dev.keys = to_device(host.keys);
  contra::MemoryView mv;
  if (host.memory && memory_on_device) {
    mv = *host.memory;
    if (mv.keys.defined()) mv.keys = to_device(host.memory->keys);
    dev.memory = &mv;
  }
  gpu.compute(dev, pairs, got);
  REQUIRE(got.grad.device() == contra::Device::cuda);
  got.grad = to_host(got.grad);
  INFO("value: cpu " << want.value << ", cuda " << got.value);
  CHECK(value_difference(want.value, got.value) <= value_tol);
  const double gd = relative_difference(want.grad, got.grad);
  INFO("dL/dz: largest difference " << gd << " of the cpu gradient's largest entry");
  CHECK(gd <= grad_tol);
  REQUIRE(want.metrics.size() == got.metrics.size());
  for (std::size_t k = 0; k < want.metrics.size(); ++k) {
    INFO("metric " << want.metrics[k].first << ": cpu " << want.metrics[k].second << ", cuda "
                   << got.metrics[k].second);
    CHECK(want.metrics[k].first == got.metrics[k].first);
    CHECK(value_difference(want.metrics[k].second, got.metrics[k].second) <= value_tol);
  }
  return got;
}

inline contra::Pairs all_pairs() {
  contra::Pairs p;
  p.all = true;
  return p;
}

}  // namespace cuda_twin

#include <contra/roles/optimizer.hpp>

#include <utility>

namespace cuda_twin {

/// The same parameters (random values, decay flags as given) on the CPU and
/// on the GPU, with the same random gradients each step.
struct TwinParameters {
  std::vector<contra::Parameter> host, dev;
  TwinParameters(const std::vector<std::int64_t>& sizes, const std::vector<bool>& decay, std::uint64_t seed) {
    host.reserve(sizes.size());
    dev.reserve(sizes.size());
    for (std::size_t i = 0; i < sizes.size(); ++i) {
      contra::Parameter p{"p" + std::to_string(i), random_matrix(1, sizes[i], seed + i).reshape({sizes[i]}),
                          contra::Tensor::zeros({sizes[i]}, contra::DType::f32), decay[i]};
      contra::Parameter q{p.name, to_device(p.value), to_device(p.grad), p.decay};
      host.push_back(std::move(p));
      dev.push_back(std::move(q));
    }
  }
  std::vector<contra::Parameter*> host_ptrs() {
    std::vector<contra::Parameter*> v;
    for (auto& p : host) v.push_back(&p);
    return v;
  }
  std::vector<contra::Parameter*> dev_ptrs() {
    std::vector<contra::Parameter*> v;
    for (auto& p : dev) v.push_back(&p);
    return v;
  }
  void random_grads(std::uint64_t seed) {
    for (std::size_t i = 0; i < host.size(); ++i) {
      const std::int64_t n = host[i].value.numel();
      host[i].grad = random_matrix(1, n, seed * 1000 + i).reshape({n});
      contra::cuda::copy_to_device(dev[i].grad, host[i].grad, contra::cuda::current_stream());
    }
    contra::cuda::synchronize(contra::cuda::current_stream());
  }
};

/// Runs `steps` steps of both optimizers on the same gradients (lr_scale
/// varying) and checks the parameters and every state tensor within tol
/// (relative_difference; integer state exactly).
template <class CpuOpt, class GpuOpt>
void compare_optimizer(CpuOpt& cpu, GpuOpt& gpu, TwinParameters& p, int steps, double tol) {
  cpu.configure(p.host_ptrs());
  gpu.configure(p.dev_ptrs());
  for (int s = 0; s < steps; ++s) {
    p.random_grads(static_cast<std::uint64_t>(s + 1));
    const contra::OptimizerStep st{s, 1.0 - 0.2 * s};
    cpu.step(st);
    gpu.step(st);
    CHECK(cpu.learning_rate() == gpu.learning_rate());
  }
  for (std::size_t i = 0; i < p.host.size(); ++i) {
    const double d = relative_difference(p.host[i].value, to_host(p.dev[i].value));
    INFO("parameter " << p.host[i].name << " (" << p.host[i].value.numel() << " values): difference " << d);
    CHECK(d <= tol);
  }
  std::vector<std::pair<std::string, contra::Tensor*>> a, b;
  cpu.state(a);
  gpu.state(b);
  REQUIRE(a.size() == b.size());
  for (std::size_t k = 0; k < a.size(); ++k) {
    INFO("state " << a[k].first);
    CHECK(a[k].first == b[k].first);
    const contra::Tensor got = b[k].second->device() == contra::Device::cuda ? to_host(*b[k].second) : *b[k].second;
    REQUIRE(got.dtype() == a[k].second->dtype());
    REQUIRE(got.shape() == a[k].second->shape());
    if (got.dtype() == contra::DType::i64) {
      for (std::int64_t j = 0; j < got.numel(); ++j) CHECK(got.data<std::int64_t>()[j] == a[k].second->data<std::int64_t>()[j]);
    } else {
      CHECK(relative_difference(*a[k].second, got) <= tol);
    }
  }
}

}  // namespace cuda_twin
