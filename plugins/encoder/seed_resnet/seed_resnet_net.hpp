#pragma once
// The seed_resnet network, once for both builds: the layer list is a
// template over the layer library (contra::nn or contra::cuda::nn), so that
// the CPU and GPU builds have the same layers, names and initial draws by
// construction.

#include <contra/errors.hpp>
#include <contra/nn/conv2d.hpp>
#include <contra/nn/sequential.hpp>
#include <contra/plugin.hpp>

#include <algorithm>
#include <cstdint>
#include <string>

namespace contra::plugins {

/// The average pool before the linear layer: square cells of `cell` × `cell`
/// (0: the global average pool), `cells` of them (the linear layer takes
/// cells × channels features).
struct SeedResNetPool {
  int cell = 0;
  std::int64_t cells = 1;
};
/// The pool for `pool_grid` cells along the shorter side of the feature map
/// after the max pool (input [C, H, W]): a square map is pool_grid ×
/// pool_grid cells, a wide one (rendered words) as many more across as it is
/// wider. Throws ConfigError when a side does not divide into such cells.
inline SeedResNetPool seed_resnet_pool(const contra::Shape& input, std::int64_t pool_grid) {
  if (pool_grid == 1) return {};
  const std::int64_t h = (input[1] - 1) / 2 + 1, w = (input[2] - 1) / 2 + 1;  // after the max pool
  const std::int64_t side = std::min(h, w), cell = side / pool_grid;
  if (side % pool_grid != 0 || h % cell != 0 || w % cell != 0)
    throw contra::ConfigError("seed_resnet: pool_grid = " + std::to_string(pool_grid) + " must divide the shorter "
                              "side of the " + std::to_string(h) + "×" + std::to_string(w) + " feature map of inputs " +
                              input.str() + " into cells that also divide the longer side");
  return {static_cast<int>(cell), (h / cell) * (w / cell)};
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
                                       const SeedResNetPool& pool) {
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
  s.fc = u(w2) * u(pool.cells) * u(output) + u(output);
  s.parameters += s.fc;
  return s;
}

/// Appends the network to `net`: conv-BN-ReLU stem (`channels` → `width`),
/// max pool 3/2, two conv-BN-ReLU at `width`, two at 2·`width`, then a
/// global average pool, or (pool.cell > 0, from seed_resnet_pool()) an
/// average pool of cell × cell flattened, and the linear layer to `output`.
/// `L` names the layer classes (Conv2d, BatchNormReLU, MaxPool2d,
/// GlobalAvgPool, AvgPool2d, Flatten, Linear) and configure(conv, algorithm).
/// Weights drawn from `ctx.seed` in layer order.
template <class L>
void build_seed_resnet(contra::nn::Sequential& net, std::int64_t channels, std::int64_t width, std::int64_t output,
                       const SeedResNetPool& pool, contra::nn::ConvAlgorithm conv_algorithm,
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
  if (pool.cell == 0) {
    net.emplace<typename L::GlobalAvgPool>();
    net.emplace<typename L::Linear>("fc", w2, output, true, init, ctx.precision);
  } else {
    // Aligned images (Fashion-MNIST) carry class evidence in where things are;
    // a coarse grid keeps some of it that a global average would discard.
    net.emplace<typename L::AvgPool2d>(pool.cell, pool.cell);
    net.emplace<typename L::Flatten>();
    net.emplace<typename L::Linear>("fc", w2 * pool.cells, output, true, init, ctx.precision);
  }
}

}  // namespace contra::plugins
