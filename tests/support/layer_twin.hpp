#pragma once
// For the [gpu] tests that compare a GPU layer or encoder with its CPU twin
// (the oracle), built from the same seed: identical initial parameters, then
// train-mode forward, backward (input gradient and every parameter
// gradient), the buffers (batch-norm running statistics), and an eval-mode
// forward, each within a stated tolerance relative to the oracle's largest
// entry (cuda_twin::relative_difference).

#include "cuda_twin.hpp"

#include <contra/nn/layer.hpp>
#include <contra/roles/encoder.hpp>

#include <catch2/catch.hpp>

#include <string>
#include <utility>
#include <vector>

namespace layer_twin {

/// A random f32 host tensor of any shape (N(0, scale²) entries).
inline contra::Tensor random(const contra::Shape& shape, std::uint64_t seed, double scale = 1.0) {
  return cuda_twin::random_matrix(1, shape.numel(), seed, scale).reshape(shape);
}

inline contra::Tensor host_of(const contra::Tensor& t) {
  return t.device() == contra::Device::cuda ? cuda_twin::to_host(t) : t;
}

inline void check_close(const char* what, const std::string& name, const contra::Tensor& want,
                        const contra::Tensor& got_any, double tol) {
  const contra::Tensor got = host_of(got_any);
  INFO(what << " " << name << ": cpu " << want.shape().str() << ", cuda " << got.shape().str());
  REQUIRE(got.shape() == want.shape());
  const double d = cuda_twin::relative_difference(want, got);
  INFO("largest difference " << d << " of the cpu's largest entry (tolerance " << tol << ")");
  CHECK(d <= tol);
}

/// Parameters: same names, shapes, decay flags and identical values.
inline void check_same_parameters(const std::vector<contra::Parameter*>& cpu,
                                  const std::vector<contra::Parameter*>& gpu) {
  REQUIRE(cpu.size() == gpu.size());
  for (std::size_t i = 0; i < cpu.size(); ++i) {
    INFO("parameter " << cpu[i]->name);
    CHECK(cpu[i]->name == gpu[i]->name);
    CHECK(cpu[i]->decay == gpu[i]->decay);
    REQUIRE(gpu[i]->value.device() == contra::Device::cuda);
    REQUIRE(gpu[i]->grad.device() == contra::Device::cuda);
    check_close("initial value of", cpu[i]->name, cpu[i]->value, gpu[i]->value, 0.0);
  }
}

inline void check_grads(const std::vector<contra::Parameter*>& cpu, const std::vector<contra::Parameter*>& gpu,
                        double tol) {
  REQUIRE(cpu.size() == gpu.size());
  for (std::size_t i = 0; i < cpu.size(); ++i) check_close("gradient of", cpu[i]->name, cpu[i]->grad, gpu[i]->grad, tol);
}

inline void check_buffers(const std::vector<std::pair<std::string, contra::Tensor*>>& cpu,
                          const std::vector<std::pair<std::string, contra::Tensor*>>& gpu, double tol) {
  REQUIRE(cpu.size() == gpu.size());
  for (std::size_t i = 0; i < cpu.size(); ++i) {
    CHECK(cpu[i].first == gpu[i].first);
    REQUIRE(gpu[i].second->device() == contra::Device::cuda);
    check_close("buffer", cpu[i].first, *cpu[i].second, *gpu[i].second, tol);
  }
}

/// Layers: `steps` train-mode forward/backward pairs on the same random
/// inputs (so gradients accumulate over them), then an eval-mode forward and,
/// when `eval_backward`, a backward through it.
template <class Cpu, class Gpu>
void compare_layer(Cpu& cpu, Gpu& gpu, const contra::Shape& in, double tol, int steps = 2,
                   bool eval_backward = false, std::uint64_t seed = 1) {
  std::vector<contra::Parameter*> pc, pg;
  cpu.parameters(pc);
  gpu.parameters(pg);
  check_same_parameters(pc, pg);
  auto pass = [&](contra::Mode mode, std::uint64_t s, bool backward) {
    const contra::Tensor x = random(in, s);
    const contra::Tensor xd = cuda_twin::to_device(x);  // kept until backward: layers keep views
    const contra::Tensor& yc = cpu.forward(x, mode);
    const contra::Tensor& yg = gpu.forward(xd, mode);
    check_close(mode == contra::Mode::train ? "train-mode output" : "eval-mode output", "y", yc, yg, tol);
    if (!backward) return;
    const contra::Tensor dy = random(yc.shape(), s + 100);
    const contra::Tensor dyd = cuda_twin::to_device(dy);
    const contra::Tensor& dxc = cpu.backward(dy, true);
    const contra::Tensor& dxg = gpu.backward(dyd, true);
    check_close("input gradient", "dx", dxc, dxg, tol);
    check_grads(pc, pg, tol);
  };
  for (int s = 0; s < steps; ++s) pass(contra::Mode::train, seed + 10 * s, true);
  std::vector<std::pair<std::string, contra::Tensor*>> bc, bg;
  cpu.buffers(bc);
  gpu.buffers(bg);
  check_buffers(bc, bg, tol);
  pass(contra::Mode::eval, seed + 1000, eval_backward);
}

/// Encoders built from the same context: identical parameters; outputs,
/// dL/dx (when `input_grad`: token ids have none) and every parameter
/// gradient of three train steps (gradients accumulate; the last wants no
/// dL/dx); running statistics; an eval-mode output. make_input(seed) gives a
/// host batch; `on_device`: the GPU build takes it copied to cuda.
template <class Cpu, class Gpu, class MakeInput>
void compare_encoder_on(Cpu& cpu, Gpu& gpu, MakeInput make_input, bool input_grad, bool on_device, double tol) {
  REQUIRE(cpu.output_dim() == gpu.output_dim());
  const std::vector<contra::Parameter*> pc = cpu.parameters(), pg = gpu.parameters();
  check_same_parameters(pc, pg);
  auto gpu_input = [&](const contra::Tensor& x) { return on_device ? cuda_twin::to_device(x) : x; };
  for (int s = 0; s < 3; ++s) {
    INFO("train step " << s);
    const bool want_dx = input_grad && s < 2;
    const contra::Tensor x = make_input(7 + s);
    const contra::Tensor xd = gpu_input(x);
    const contra::Tensor& yc = cpu.forward(x, contra::Mode::train);
    const contra::Tensor& yg = gpu.forward(xd, contra::Mode::train);
    check_close("train-mode output", "y", yc, yg, tol);
    const contra::Tensor dy = random(yc.shape(), 70 + s);
    const contra::Tensor dyd = cuda_twin::to_device(dy);
    const contra::Tensor& dxc = cpu.backward(dy, want_dx);
    const contra::Tensor& dxg = gpu.backward(dyd, want_dx);
    if (want_dx) {
      REQUIRE(dxg.device() == contra::Device::cuda);
      check_close("input gradient", "dx", dxc, dxg, tol);
    }
    check_grads(pc, pg, tol);
  }
  check_buffers(cpu.buffers(), gpu.buffers(), tol);
  const contra::Tensor x = make_input(99);
  const contra::Tensor xd = gpu_input(x);
  check_close("eval-mode output", "y", cpu.forward(x, contra::Mode::eval), gpu.forward(xd, contra::Mode::eval), tol);
}

/// compare_encoder_on() for random f32 batches of shape `batch` on cuda.
template <class Cpu, class Gpu>
void compare_encoder(Cpu& cpu, Gpu& gpu, const contra::Shape& batch, double tol) {
  compare_encoder_on(cpu, gpu, [&](std::uint64_t seed) { return random(batch, seed); }, true, true, tol);
}

}  // namespace layer_twin
