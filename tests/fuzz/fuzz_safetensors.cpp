// safetensors files: read_safetensors on the bytes, then load_checkpoint of
// them into a small mlp encoder (what `contra run --resume` and `contra eval`
// do with a checkpoint): the step metadata, names, shapes and dtypes checked.
#include "fuzz_support.hpp"

#include "mlp.hpp"
#include "train/checkpoint.hpp"
#include "train/safetensors.hpp"

#include <memory>
#include <string>

using namespace contra;

namespace {

// encoder.fc0.weight [2, 3] and encoder.fc0.bias [2], f32: the names and
// shapes the seed checkpoints hold.
runtime::TrainerParts& parts() {
  static runtime::TrainerParts p = [] {
    runtime::TrainerParts t;
    auto mlp = std::make_shared<plugins::Mlp>(
        plugins::Mlp::schema().bind({{"hidden", std::vector<std::int64_t>{}}, {"output", std::int64_t(2)}}));
    mlp->build({Shape{3}, 1});
    t.encoder = mlp;
    return t;
  }();
  return p;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string input = fuzz::write_file("input.safetensors", fuzz::bytes_of(data, size));
  fuzz::run_reader([&] { (void)runtime::read_safetensors(input); }, input);
  fuzz::run_reader([&] { (void)runtime::load_checkpoint(input, parts()); }, input);
  fuzz::run_reader([&] { (void)runtime::load_encoder(input, *parts().encoder); }, input);
  return 0;
}
