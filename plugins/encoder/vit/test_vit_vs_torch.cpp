// vit against PyTorch autograd in float64 (torch_oracle.hpp): the same
// parameters and images, CLIP's VisionTransformer written with PyTorch's
// conv2d and multi-head attention (vit_vs_torch.py); the output, every
// parameter's gradient and the input gradient, as the largest difference
// relative to the oracle's largest entry of that tensor.
#include "vit.hpp"

#include "torch_oracle.hpp"

#include <contra/testing.hpp>

#include <catch2/catch.hpp>

#include <string>

using namespace contra;
using plugins::VisionTransformer;

namespace {

nlohmann::json compare(const std::string& pooling) {
  VisionTransformer net(VisionTransformer::schema().bind({{"patch", std::int64_t{4}},
                                                          {"width", std::int64_t{16}},
                                                          {"layers", std::int64_t{2}},
                                                          {"heads", std::int64_t{4}},
                                                          {"mlp_ratio", std::int64_t{2}},
                                                          {"output", std::int64_t{12}},
                                                          {"pooling", pooling}}));
  net.build({Shape{3, 8, 12}, 5});  // a 2 × 3 grid of patches: rows and columns both show
  // Non-zero biases and larger weights: every term shows.
  std::uint64_t key = 40;
  for (Parameter* p : net.parameters()) {
    const Tensor noise = testing::random_tensor(p->value.shape(), key++, -0.3, 0.3);
    for (std::int64_t i = 0; i < p->value.numel(); ++i) p->value.data<float>()[i] += noise.data<float>()[i];
  }
  test::TempDir dir("torch");
  const Tensor x = testing::random_tensor({5, 3, 8, 12}, 21);
  const Tensor y = net.forward(x, Mode::train).clone();
  const Tensor w = testing::random_tensor(y.shape(), 22);
  auto params = net.parameters();
  for (auto* p : params) p->grad.zero();
  const Tensor dx = net.backward(w, true).clone();
  test::dump_tensor(dir, "x", x);
  test::dump_tensor(dir, "y", y);
  test::dump_tensor(dir, "w", w);
  test::dump_tensor(dir, "dx", dx);
  nlohmann::ordered_json meta = {
      {"x", test::shape_json(x.shape())},
      {"config", {{"width", 16}, {"layers", 2}, {"heads", 4}, {"patch", 4}, {"pooling", pooling}}},
      {"params", nlohmann::ordered_json::object()}};
  for (auto* p : params) {
    test::dump_tensor(dir, "p_" + p->name, p->value);
    test::dump_tensor(dir, "g_" + p->name, p->grad);
    meta["params"][p->name] = test::shape_json(p->value.shape());
  }
  test::write_file(dir.file("meta.json"), meta.dump());
  return test::oracle_figures(test::run_oracle("plugins/encoder/vit/vit_vs_torch.py", dir.path().string()));
}

}  // namespace

TEST_CASE("vit: matches CLIP's VisionTransformer in PyTorch autograd (float64)", "[plugins][vit][torch]") {
  if (!test::torch_oracle_ready()) return;
  for (const std::string pooling : {"cls", "mean"}) {
    INFO("pooling " << pooling);
    const nlohmann::json r = compare(pooling);
    INFO(r.dump());
    // f32 against float64, as text_transformer's comparison.
    CHECK(r.at("forward").get<double>() < 5e-6);
    CHECK(r.at("params").get<double>() < 2e-5);
    CHECK(r.at("input").get<double>() < 2e-5);
    CHECK(r.at("count").get<int>() == 1 + 2 + 2 + 2 * 12 + 3);
  }
}
