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

double field(const std::string& json, const std::string& key) {
  auto pos = json.find("\"" + key + "\":");
  REQUIRE(pos != std::string::npos);
  return std::strtod(json.c_str() + pos + key.size() + 3, nullptr);
}

// Runs forward and backward in contra, dumps everything, and returns the
// oracle's JSON.
std::string compare(Encoder& net, const std::string& model, const Shape& input) {
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
  std::string meta = "{\"x\": " + shape_json(input) + ", \"params\": {";
  for (std::size_t i = 0; i < params.size(); ++i) {
    dump_tensor(dir, "p_" + params[i]->name, params[i]->value);
    dump_tensor(dir, "g_" + params[i]->name, params[i]->grad);
    meta += (i ? ", \"" : "\"") + params[i]->name + "\": " + shape_json(params[i]->value.shape());
  }
  test::write_file(dir.file("meta.json"), meta + "}}");
  return test::run_oracle("tests/plugins/encoders_vs_torch.py", dir.path().string() + " " + model);
}

}  // namespace

TEST_CASE("encoders: seed_resnet and resnet18 match PyTorch autograd in float64", "[plugins][seed_resnet][resnet18]") {
  if (!test::torch_oracle_ready()) return;
  SECTION("seed_resnet") {
    plugins::SeedResNet net(plugins::SeedResNet::schema().bind({{"width", 4}, {"output", 6}}));
    net.build({Shape{3, 9, 7}, 11});
    std::string r = compare(net, "seed_resnet", {8, 3, 9, 7});
    INFO(r);
    CHECK(field(r, "forward") < 1e-5);
    CHECK(field(r, "dx") < 1e-4);
    CHECK(field(r, "params") < 1e-4);
    CHECK(field(r, "count") == 17);
  }
  SECTION("resnet18") {
    plugins::ResNet18 net(plugins::ResNet18::schema().bind({{"width", 2}}));
    net.build({Shape{3, 8, 8}, 4});
    std::string r = compare(net, "resnet18", {8, 3, 8, 8});
    INFO(r);
    CHECK(field(r, "forward") < 1e-5);
    CHECK(field(r, "dx") < 1e-4);
    CHECK(field(r, "params") < 1e-4);
    CHECK(field(r, "count") == 60);
  }
}
