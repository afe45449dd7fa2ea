#pragma once
/// \file
/// What the cuda builds of the optimizers share (included by `*_cuda.cu`):
/// parameter checks and the launch shape of the element-wise updates.
///
/// The update kernels spell out the CPU build's arithmetic, operation for
/// operation, with IEEE sqrt and division (nvcc's defaults). Results may still
/// differ from the CPU's in the last bit where one compiler contracts a
/// multiply-add into an FMA and the other does not (g++ -march=native does
/// for some of these loops), so the tests compare within 1e-5.

#include "../cuda_support.cuh"

#include <contra/roles/encoder.hpp>

#include <cstdint>
#include <string>

namespace contra::plugins::gpu {
namespace {

constexpr unsigned update_threads = 256;

/// Throws UsageError unless q is an f32 parameter with a same-shaped f32
/// gradient, both on cuda.
inline void expect_device_parameter(const char* who, const contra::Parameter* q) {
  if (!q) throw contra::UsageError(std::string(who) + ": configure() got a null parameter");
  if (q->value.dtype() != contra::DType::f32)
    throw contra::UsageError(std::string(who) + ": parameter '" + q->name + "' is not f32");
  q->grad.expect(q->value.shape(), contra::DType::f32,
                 (std::string(who) + ": gradient of parameter '" + q->name + "'").c_str());
  if (q->value.device() != contra::Device::cuda || q->grad.device() != contra::Device::cuda)
    throw contra::UsageError(std::string(who) + ": parameter '" + q->name + "' and its gradient must be on cuda, " +
                             "found them on " + contra::device_name(q->value.device()) + " and " +
                             contra::device_name(q->grad.device()));
}

/// Blocks of a grid-stride update over n elements.
inline unsigned update_blocks(std::int64_t n) { return blocks_for(n, update_threads, 4096); }

}  // namespace
}  // namespace contra::plugins::gpu
