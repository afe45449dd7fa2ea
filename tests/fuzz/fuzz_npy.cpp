// The npy source on the bytes as an image array (both layouts), then as the
// label array of a valid two-image file.
#include "fuzz_support.hpp"

#include "npy.hpp"

#include <string>

using namespace contra;

namespace {

// Two 4x4 gray images: the label array must hold as many labels.
const std::string& two_images() {
  static const std::string path = [] {
    std::string header = "{'descr': '|u1', 'fortran_order': False, 'shape': (2, 4, 4), }";
    header.resize(118 - 1, ' ');
    header += '\n';
    std::string bytes = std::string("\x93NUMPY\x01\x00", 8);
    bytes += static_cast<char>(header.size() & 0xff);
    bytes += static_cast<char>(header.size() >> 8);
    bytes += header;
    bytes.append(2 * 4 * 4, '\x40');
    return fuzz::write_file("fixed/two-images.npy", bytes);
  }();
  return path;
}

void exercise(const plugins::NpySource& s) {
  const SourceInfo info = s.info();
  Tensor image;
  s.load(0, image);
  s.load(info.size - 1, image);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string input = fuzz::write_file("input.npy", fuzz::bytes_of(data, size));
  const Schema schema = plugins::NpySource::schema();
  for (const char* layout : {"nhwc", "nchw"})
    fuzz::run_reader(
        [&] { exercise(plugins::NpySource(schema.bind({{"images", input}, {"layout", std::string(layout)}}))); },
        input);
  fuzz::run_reader([&] { exercise(plugins::NpySource(schema.bind({{"images", two_images()}, {"labels", input}}))); },
                   input);
  return 0;
}
