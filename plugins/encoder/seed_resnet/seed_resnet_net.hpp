#pragma once
// The seed_resnet network, once for both builds: the layer list is a
// template over the layer library (contra::nn or contra::cuda::nn), so that
// the CPU and GPU builds have the same layers, names and initial draws by
// construction.

#include <contra/errors.hpp>
#include <contra/nn/conv2d.hpp>
#include <contra/nn/sequential.hpp>
#include <contra/plugin.hpp>

#include <cstdint>
#include <string>

namespace contra::plugins {

/// The side of the average-pool cell for `pool_grid` (0 for 1: the global
/// average pool), from the input [C, H, W]. Throws ConfigError when the
/// feature map after the max pool is not square or does not divide by it.
inline int seed_resnet_pool_cell(const contra::Shape& input, std::int64_t pool_grid) {
  if (pool_grid == 1) return 0;
  const std::int64_t h = (input[1] - 1) / 2 + 1, w = (input[2] - 1) / 2 + 1;  // after the max pool
  if (h != w || h % pool_grid != 0)
    throw contra::ConfigError("seed_resnet: pool_grid = " + std::to_string(pool_grid) + " must divide the " +
                              std::to_string(h) + "×" + std::to_string(w) + " feature map of inputs " +
                              input.str() + " (square maps only)");
  return static_cast<int>(h / pool_grid);
}

/// Parameters of build_seed_resnet() (weights, batch-norm scales and shifts,
/// the linear layer's bias), and its batch-norm running statistics, counted
/// without building it: what the build checks against the machine's memory
/// before allocating. `fc` is the linear layer's share of `parameters`.
struct SeedResNetSize {
  std::uint64_t parameters = 0;
  std::uint64_t buffers = 0;
  std::uint64_t fc = 0;
};
inline SeedResNetSize seed_resnet_size(std::int64_t channels, std::int64_t width, std::int64_t output,
                                       std::int64_t pool_grid) {
  SeedResNetSize s;
  auto u = [](std::int64_t v) { return static_cast<std::uint64_t>(v); };
  auto conv_bn = [&](std::int64_t in, std::int64_t out) {
    s.parameters += u(in) * u(out) * 9 + 2 * u(out);
    s.buffers += 2 * u(out);
  };
  const std::int64_t w = width, w2 = 2 * width;
  conv_bn(channels, w);
  conv_bn(w, w);
  conv_bn(w, w);
  conv_bn(w, w2);
  conv_bn(w2, w2);
  s.fc = u(w2) * u(pool_grid * pool_grid) * u(output) + u(output);
  s.parameters += s.fc;
  return s;
}

/// Appends the network to `net`: conv-BN-ReLU stem (`channels` → `width`),
/// max pool 3/2, two conv-BN-ReLU at `width`, two at 2·`width`, then a
/// global average pool, or (cell > 0, from seed_resnet_pool_cell()) an
/// average pool of cell × cell flattened, and the linear layer to `output`.
/// `L` names the layer classes (Conv2d, BatchNormReLU, MaxPool2d,
/// GlobalAvgPool, AvgPool2d, Flatten, Linear) and configure(conv, algorithm).
/// Weights drawn from `ctx.seed` in layer order.
template <class L>
void build_seed_resnet(contra::nn::Sequential& net, std::int64_t channels, std::int64_t width, std::int64_t output,
                       std::int64_t pool_grid, int cell, contra::nn::ConvAlgorithm conv_algorithm,
                       const contra::EncoderContext& ctx) {
  const std::int64_t w = width, w2 = 2 * width;
  contra::Rng init(ctx.seed, 0, 0, 0, 0);
  auto conv_bn_relu = [&](const std::string& name, std::int64_t in, std::int64_t out) {
    L::configure(net.emplace<typename L::Conv2d>(name + ".conv", in, out, 3, 1, 1, false, init, ctx.precision),
                 conv_algorithm);
    net.emplace<typename L::BatchNormReLU>(name + ".bn", out);
  };
  conv_bn_relu("stem", channels, w);
  net.emplace<typename L::MaxPool2d>(3, 2, 1);
  conv_bn_relu("layer1.0", w, w);
  conv_bn_relu("layer1.1", w, w);
  conv_bn_relu("layer2.0", w, w2);
  conv_bn_relu("layer2.1", w2, w2);
  if (cell == 0) {
    net.emplace<typename L::GlobalAvgPool>();
    net.emplace<typename L::Linear>("fc", w2, output, true, init, ctx.precision);
  } else {
    // Aligned images (Fashion-MNIST) carry class evidence in where things are;
    // a coarse grid keeps some of it that a global average would discard.
    net.emplace<typename L::AvgPool2d>(cell, cell);
    net.emplace<typename L::Flatten>();
    net.emplace<typename L::Linear>("fc", w2 * pool_grid * pool_grid, output, true, init, ctx.precision);
  }
}

}  // namespace contra::plugins
