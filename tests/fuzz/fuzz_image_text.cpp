// The image_text source on the bytes as its manifest: parsed as CSV, TSV and
// JSON Lines with a label column, then the source built on it (its shape
// given, so that no image is read) and each row's record loaded, whose
// image (a relative path from the bytes) is missing or not an image.
#include "fuzz_support.hpp"

#include "image_text.hpp"

#include <string>

using namespace contra;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view bytes = fuzz::bytes_of(data, size);
  const Schema schema = plugins::ImageTextSource::schema();
  for (const std::string name : {"m.csv", "m.tsv", "m.jsonl"}) {
    const std::string manifest = fuzz::write_file(name, bytes);
    fuzz::run_reader(
        [&] {
          plugins::ImageTextSource s(schema.bind({{"manifest", manifest},
                                                  {"label_column", std::string("label")},
                                                  {"height", std::int64_t(4)},
                                                  {"width", std::int64_t(4)},
                                                  {"channels", std::int64_t(3)}}));
          const SourceInfo info = s.info();
          (void)s.labels();
          (void)s.class_names();
          Record record;
          // Only images inside the work folder are opened: a path in the
          // bytes could name any file (/dev/stdin would never end).
          const std::string inside = fuzz::work_dir().string() + "/";
          for (std::int64_t i = 0; i < info.size && i < 2; ++i) {
            const std::string path = s.image_path(i);
            if (path.rfind(inside, 0) != 0 || path.find("/..") != std::string::npos) continue;
            try {
              s.load_record(i, record);
            } catch (const DataError&) {
            }
          }
        },
        manifest);
  }
  return 0;
}
