// The trainer: the momentum encoder a memory asks for (an exact copy at the
// start, then θ_k ← m·θ_k + (1 − m)·θ_q after every step, its keys in the
// embeddings), multi-crop groups, and the hooks data-parallel ranks use.
#include "loader/registry.hpp"
#include "train/trainer.hpp"

#include "layer_check.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>

using namespace contra;
using namespace contra::runtime;

namespace {
template <class Role>
std::shared_ptr<Role> make(PluginRegistry& reg, PluginKind kind, const std::string& name,
                           std::initializer_list<std::pair<std::string, Value>> values) {
  const PluginRecord* rec = reg.find(kind, name);
  REQUIRE(rec != nullptr);
  return reg.create<Role>(*rec, rec->schema.bind(values));
}

// An mlp encoder (6 hidden, 4 out), all pairs, info_nce and sgd at `sgd`.
TrainerParts mlp_parts(PluginRegistry& reg, std::initializer_list<std::pair<std::string, Value>> sgd) {
  TrainerParts parts;
  parts.encoder = make<Encoder>(reg, PluginKind::encoder, "mlp", {{"hidden", std::vector<std::int64_t>{6}}, {"output", 4}});
  parts.miner = make<Miner>(reg, PluginKind::miner, "all_pairs", {});
  parts.loss = make<Loss>(reg, PluginKind::loss, "info_nce", {});
  parts.optimizer = make<Optimizer>(reg, PluginKind::optimizer, "sgd", sgd);
  return parts;
}
}  // namespace

TEST_CASE("momentum encoder: starts as a copy and follows the encoder by EMA", "[runtime][memory]") {
  PluginRegistry reg;
  reg.scan_directory(CONTRA_PLUGIN_DIR);
  TrainerParts parts;
  parts.encoder = make<Encoder>(reg, PluginKind::encoder, "mlp", {{"hidden", std::vector<std::int64_t>{6}}, {"output", 4}});
  parts.momentum_encoder =
      make<Encoder>(reg, PluginKind::encoder, "mlp", {{"hidden", std::vector<std::int64_t>{6}}, {"output", 4}});
  parts.memory = make<Memory>(reg, PluginKind::memory, "queue", {{"size", 8}, {"momentum", 0.75}});
  parts.miner = make<Miner>(reg, PluginKind::miner, "all_pairs", {});
  parts.loss = make<Loss>(reg, PluginKind::loss, "info_nce", {});
  parts.optimizer = make<Optimizer>(reg, PluginKind::optimizer, "sgd", {{"lr", 0.5}, {"momentum", 0.0}});
  Trainer trainer(parts, EncoderContext{Shape{1, 2, 2}, 3}, MemoryContext{0, 100, nullptr, 3});

  auto q = parts.encoder->parameters();
  auto k = parts.momentum_encoder->parameters();
  REQUIRE(q.size() == k.size());
  for (std::size_t i = 0; i < q.size(); ++i)
    for (std::int64_t j = 0; j < q[i]->value.numel(); ++j)
      REQUIRE(k[i]->value.data<float>()[j] == q[i]->value.data<float>()[j]);

  Batch b;
  b.ids = {10, 11, 12, 13};
  b.views = 2;
  b.images = test::random_tensor({8, 1, 2, 2}, 4);
  std::vector<Tensor> before_k;
  for (auto* p : k) before_k.push_back(p->value.clone());
  trainer.step(b, 0);
  CHECK(trainer.last_embeddings().keys.defined());
  CHECK(trainer.last_embeddings().keys.shape() == Shape{8, 4});
  for (std::size_t i = 0; i < q.size(); ++i)
    for (std::int64_t j = 0; j < q[i]->value.numel(); ++j) {
      float want = 0.75f * before_k[i].data<float>()[j] + 0.25f * q[i]->value.data<float>()[j];
      REQUIRE(k[i]->value.data<float>()[j] == Approx(want).epsilon(1e-6));
    }
  // The queue took the last view's keys: 4 of its 8 slots are filled.
  const MemoryView& view = parts.memory->view();
  int filled = 0;
  for (auto id : *view.ids) filled += id >= 0;
  CHECK(filled == 4);
}

TEST_CASE("trainer: on cuda, an encoder whose parameters live on the host is refused naming them",
          "[runtime][device]") {
  PluginRegistry reg;
  reg.scan_directory(CONTRA_PLUGIN_DIR);
  TrainerParts parts = mlp_parts(reg, {});
  parts.encoder_label = "encoder 'mlp'";
  parts.device = Device::cuda;
  // Checked before any device call: runs without a GPU.
  CHECK_THROWS_WITH(Trainer(parts, EncoderContext{Shape{1, 2, 2}, 3}),
                    "encoder 'mlp': parameters() returned parameter 'fc0.weight' with its value on cpu and its "
                    "gradient on cpu, expected both on cuda ([train] device)");
}

TEST_CASE("trainer: multi-crop updates batch-norm running statistics once per group",
          "[runtime][views]") {
  // Every group but the last is forwarded again for its backward pass; that
  // second forward must leave the running statistics as the first left them.
  PluginRegistry reg;
  reg.scan_directory(CONTRA_PLUGIN_DIR);
  auto encoder = [&] { return make<Encoder>(reg, PluginKind::encoder, "seed_resnet", {{"width", 4}}); };
  TrainerParts parts;
  parts.encoder = encoder();
  parts.miner = make<Miner>(reg, PluginKind::miner, "all_pairs", {});
  parts.loss = make<Loss>(reg, PluginKind::loss, "info_nce", {});
  parts.optimizer = make<Optimizer>(reg, PluginKind::optimizer, "sgd", {{"lr", 0.1}});
  const EncoderContext ctx{Shape{3, 16, 16}, 5};
  Trainer trainer(parts, ctx);
  std::shared_ptr<Encoder> twin = encoder();
  twin->build(ctx);

  Batch b;
  b.ids = {0, 1, 2, 3};
  b.views = 4;
  b.images = test::random_tensor({8, 3, 16, 16}, 6);           // 2 views of 16 x 16
  b.more_images.push_back(test::random_tensor({8, 3, 8, 8}, 7));  // 2 views of 8 x 8
  auto same_buffers = [&] {
    auto got = parts.encoder->buffers(), want = twin->buffers();
    REQUIRE(got.size() == want.size());
    REQUIRE_FALSE(got.empty());
    for (std::size_t i = 0; i < got.size(); ++i) {
      INFO(got[i].first);
      REQUIRE(got[i].second->numel() == want[i].second->numel());
      for (std::int64_t j = 0; j < got[i].second->numel(); ++j)
        REQUIRE(got[i].second->data<float>()[j] == want[i].second->data<float>()[j]);
    }
  };
  trainer.step(b, 0);
  twin->forward(b.images, Mode::train);
  twin->forward(b.more_images[0], Mode::train);
  same_buffers();

  // A second step (the saved copies reused): the twin takes the updated
  // weights and forwards the new batch's groups once each.
  auto q = parts.encoder->parameters(), t = twin->parameters();
  REQUIRE(q.size() == t.size());
  for (std::size_t i = 0; i < q.size(); ++i)
    std::copy_n(q[i]->value.data<float>(), q[i]->value.numel(), t[i]->value.data<float>());
  b.images = test::random_tensor({8, 3, 16, 16}, 8);
  b.more_images[0] = test::random_tensor({8, 3, 8, 8}, 9);
  trainer.step(b, 1);
  twin->forward(b.images, Mode::train);
  twin->forward(b.more_images[0], Mode::train);
  same_buffers();
}

namespace {
// Two ranks that happen to hold the same batch: the gathered batch is the
// local one twice (the second copy as other samples), and this rank's
// gradient is the first half of the global one.
struct MirroredRanks : StepCollectives {
  std::vector<std::string> calls;
  Tensor z;
  std::vector<std::int64_t> sample, ids;
  Embeddings global;
  bool zero_gradients = false;
  const Embeddings& gather(const Embeddings& local) override {
    calls.push_back("gather");
    const std::int64_t rows = local.rows(), d = local.z.dim(1);
    z = Tensor::empty({2 * rows, d}, DType::f32);
    std::copy_n(local.z.data<float>(), rows * d, z.data<float>());
    std::copy_n(local.z.data<float>(), rows * d, z.data<float>() + rows * d);
    const std::int64_t n = rows / local.views;
    sample.clear();
    ids.clear();
    for (int copy = 0; copy < 2; ++copy)
      for (std::int64_t r = 0; r < rows; ++r) {
        sample.push_back((*local.sample)[r] + copy * n);
        ids.push_back((*local.ids)[r] + copy * 1000);
      }
    global = Embeddings{z, &sample, nullptr, local.views, &ids, Tensor(), nullptr};
    return global;
  }
  Tensor local_gradient(const Tensor& g) override {
    calls.push_back("local_gradient " + g.shape().str());
    return g.rows(0, g.dim(0) / 2);
  }
  void reduce_gradients(const std::vector<Parameter*>& params) override {
    double norm = 0;
    for (Parameter* p : params)
      for (std::int64_t j = 0; j < p->grad.numel(); ++j) norm += std::abs(p->grad.data<float>()[j]);
    calls.push_back(norm > 0 ? "reduce_gradients (after backward)" : "reduce_gradients (no gradient yet)");
    if (zero_gradients)
      for (Parameter* p : params) p->grad.zero();
  }
};
}  // namespace

TEST_CASE("trainer: the collective hooks see the global batch and hand each rank its rows", "[runtime][train]") {
  PluginRegistry reg;
  reg.scan_directory(CONTRA_PLUGIN_DIR);
  TrainerParts parts = mlp_parts(reg, {{"lr", 0.5}, {"momentum", 0.0}});
  Trainer trainer(parts, EncoderContext{Shape{1, 2, 2}, 3});
  MirroredRanks ranks;
  trainer.set_collectives(&ranks);

  Batch b;
  b.ids = {10, 11, 12, 13};
  b.views = 2;
  b.images = test::random_tensor({8, 1, 2, 2}, 4);
  trainer.step(b, 0);
  // The loss's gradient covers the 16 gathered rows (a check against the 8
  // local rows would have thrown); the encoder got 8 of them.
  CHECK(ranks.calls == std::vector<std::string>{"gather", "local_gradient [16, 4]", "reduce_gradients (after backward)"});
  CHECK(trainer.last_embeddings().rows() == 16);
  CHECK((*trainer.last_embeddings().ids)[8] == 1010);

  // Gradients zeroed in the hook: the optimizer, which runs after it, moves nothing.
  ranks.zero_gradients = true;
  std::vector<Tensor> before;
  for (Parameter* p : trainer.parameters()) before.push_back(p->value.clone());
  trainer.step(b, 1);
  for (std::size_t i = 0; i < before.size(); ++i)
    for (std::int64_t j = 0; j < before[i].numel(); ++j)
      REQUIRE(trainer.parameters()[i]->value.data<float>()[j] == before[i].data<float>()[j]);
}
