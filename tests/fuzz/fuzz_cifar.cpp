// The cifar source on the bytes as the one batch file of a test split:
// CIFAR-10's test_batch.bin (1 + 3072-byte records) and CIFAR-100's test.bin
// (2 + 3072), each in a folder of its own, as the published archives lay them out.
#include "fuzz_support.hpp"

#include "cifar.hpp"

#include <string>

using namespace contra;

namespace {

void exercise(const plugins::CifarSource& s) {
  const SourceInfo info = s.info();
  Tensor image;
  s.load(0, image);
  s.load(info.size - 1, image);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view bytes = fuzz::bytes_of(data, size);
  const Schema schema = plugins::CifarSource::schema();
  const std::string ten = fuzz::write_file("cifar-10-batches-bin/test_batch.bin", bytes);
  const std::string folder10 = (fuzz::work_dir() / "cifar-10-batches-bin").string();
  fuzz::run_reader(
      [&] {
        exercise(plugins::CifarSource(schema.bind({{"folder", folder10}, {"split", std::string("test")}})));
      },
      ten);
  const std::string hundred = fuzz::write_file("cifar-100-binary/test.bin", bytes);
  const std::string folder100 = (fuzz::work_dir() / "cifar-100-binary").string();
  for (const char* label : {"fine", "coarse"})
    fuzz::run_reader(
        [&] {
          exercise(plugins::CifarSource(schema.bind({{"folder", folder100},
                                                     {"variant", std::string("cifar100")},
                                                     {"split", std::string("test")},
                                                     {"label", std::string(label)}})));
        },
        hundred);
  return 0;
}
