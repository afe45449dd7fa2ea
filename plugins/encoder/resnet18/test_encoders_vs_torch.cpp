// seed_resnet and resnet18 against PyTorch autograd in float64: the same
// parameters and input, the forward output, dL/dx and every parameter's
// gradient (torch_oracle.hpp).
#include "resnet18.hpp"
#include "seed_resnet.hpp"

#include "layer_check.hpp"
#include "torch_oracle.hpp"

#include <catch2/catch.hpp>

#include <cstdio>
#include <cstdlib>
#include <fstream>

using namespace contra;

namespace {

using test::dump_tensor;
using test::shape_json;

// Runs forward and backward in contra, dumps everything, and returns the
// oracle's figures.
nlohmann::json compare(Encoder& net, const std::string& model, const Shape& input) {
  test::TempDir dir("torch");
  Tensor x = test::random_tensor(input, 21);
  Tensor y = net.forward(x, Mode::train).clone();
  Tensor w = test::random_tensor(y.shape(), 22);
  auto params = net.parameters();
  for (auto* p : params) p->grad.zero();
  Tensor dx = net.backward(w, true).clone();
  dump_tensor(dir, "x", x);
  dump_tensor(dir, "y", y);
  dump_tensor(dir, "w", w);
  dump_tensor(dir, "dx", dx);
  nlohmann::ordered_json meta = {{"x", shape_json(input)}, {"params", nlohmann::ordered_json::object()}};
  for (auto* p : params) {
    dump_tensor(dir, "p_" + p->name, p->value);
    dump_tensor(dir, "g_" + p->name, p->grad);
    meta["params"][p->name] = shape_json(p->value.shape());
  }
  test::write_file(dir.file("meta.json"), meta.dump());
  return test::oracle_figures(
      test::run_oracle("plugins/encoder/resnet18/encoders_vs_torch.py", dir.path().string() + " " + model));
}

}  // namespace

TEST_CASE("encoders: seed_resnet and resnet18 match PyTorch autograd in float64", "[plugins][seed_resnet][resnet18]") {
  if (!test::torch_oracle_ready()) return;
  SECTION("seed_resnet") {
    plugins::SeedResNet net(plugins::SeedResNet::schema().bind({{"width", 4}, {"output", 6}}));
    net.build({Shape{3, 9, 7}, 11});
    const nlohmann::json r = compare(net, "seed_resnet", {8, 3, 9, 7});
    INFO(r.dump());
    CHECK(r.at("forward").get<double>() < 1e-5);
    CHECK(r.at("dx").get<double>() < 1e-4);
    CHECK(r.at("params").get<double>() < 1e-4);
    CHECK(r.at("count").get<double>() == 17);
  }
  SECTION("resnet18") {
    plugins::ResNet18 net(plugins::ResNet18::schema().bind({{"width", 2}}));
    net.build({Shape{3, 8, 8}, 4});
    const nlohmann::json r = compare(net, "resnet18", {8, 3, 8, 8});
    INFO(r.dump());
    CHECK(r.at("forward").get<double>() < 1e-5);
    CHECK(r.at("dx").get<double>() < 1e-4);
    CHECK(r.at("params").get<double>() < 1e-4);
    CHECK(r.at("count").get<double>() == 60);
  }
}
