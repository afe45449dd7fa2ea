// The image_folder source on the bytes as the one image of a class folder,
// once named .png and once .jpg (the decoder is chosen by the bytes, the
// scan by the name), decoded as stored and through the channel conversion
// and the resize.
//
// Images over max_decoded_pixels are checked (their headers read) but not
// decoded: a few bytes may declare a large image that decodes without error
// (an arithmetic-coded JPEG, or a damaged stream libjpeg completes with gray,
// which the source tolerates as Pillow does), and decoding it under the
// sanitizers only spends the time limit. libjpeg-turbo's fuzzers do the same.
#include "fuzz_support.hpp"

#include "image_folder.hpp"

#include <string>
#include <utility>

using namespace contra;

namespace {
constexpr std::int64_t max_decoded_pixels = 1 << 18;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view bytes = fuzz::bytes_of(data, size);
  const Schema schema = plugins::ImageFolderSource::schema();
  for (const std::string name : {"png/class/image.png", "jpeg/class/image.jpg"}) {
    fuzz::write_file(name, bytes);
    const std::string folder = (fuzz::work_dir() / name.substr(0, name.find('/'))).string();
    std::int64_t pixels = -1;  // as stored; -1 when the header is refused
    fuzz::run_reader(
        [&] {
          const SourceInfo info = plugins::ImageFolderSource(schema.bind({{"folder", folder}})).info();
          pixels = info.shape.height * info.shape.width;
        },
        folder);
    // As stored; gray out of colour (or colour out of gray) at its size; resized.
    const std::pair<std::int64_t, std::int64_t> variants[] = {{0, 0}, {1, 0}, {3, 0}, {3, 5}};
    for (const auto& variant : variants)
      fuzz::run_reader(
          [&] {
            plugins::ImageFolderSource s(
                schema.bind({{"folder", folder}, {"channels", variant.first}, {"size", variant.second}}));
            if (pixels < 0 || pixels > max_decoded_pixels) return;
            Tensor image;
            s.load(0, image);
          },
          folder);
  }
  return 0;
}
