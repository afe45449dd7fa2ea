// The idx source on the bytes as an IDX image file, then as the label file
// of a valid two-image file. zlib reads plain and gzip files alike, so gzip
// seeds reach the same checks through decompression.
#include "fuzz_support.hpp"

#include "idx.hpp"

#include <string>

using namespace contra;

namespace {

// Two 28x28 images: the label file must declare as many labels.
const std::string& two_images() {
  static const std::string path = [] {
    std::string bytes = {0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 28, 0, 0, 0, 28};
    bytes.append(2 * 28 * 28, '\x7f');
    return fuzz::write_file("fixed/two-images-idx3-ubyte", bytes);
  }();
  return path;
}

void exercise(const plugins::IdxSource& s) {
  const SourceInfo info = s.info();
  Tensor image;
  s.load(0, image);
  s.load(info.size - 1, image);
  (void)s.labels();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string input = fuzz::write_file("input-idx", fuzz::bytes_of(data, size));
  const Schema schema = plugins::IdxSource::schema();
  fuzz::run_reader(
      [&] { exercise(plugins::IdxSource(schema.bind({{"images", input}}))); }, input);
  fuzz::run_reader(
      [&] { exercise(plugins::IdxSource(schema.bind({{"images", two_images()}, {"labels", input}}))); }, input);
  return 0;
}
