// The webdataset source on the bytes as its one tar shard: the index
// (libarchive over the mapped file), then every sample's record, decoded
// through image_codec with its size set (a few bytes may declare a large
// image; decoding is fuzz_image's).
#include "fuzz_support.hpp"

#include "tar_index.hpp"
#include "webdataset.hpp"

#include <span>
#include <string>

using namespace contra;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string shard = fuzz::write_file("shard-000000.tar", fuzz::bytes_of(data, size));
  fuzz::run_reader([&] { (void)plugins::webdataset::index_tar(std::span(data, size), shard); }, shard);
  const Schema schema = plugins::WebDatasetSource::schema();
  fuzz::run_reader(
      [&] {
        plugins::WebDatasetSource s(schema.bind({{"shards", std::vector<std::string>{shard}},
                                                 {"height", std::int64_t(4)},
                                                 {"width", std::int64_t(4)},
                                                 {"channels", std::int64_t(3)},
                                                 {"max_image_pixels", std::int64_t(1) << 18}}));
        Record record;
        for (std::int64_t i = 0; i < s.info().size && i < 8; ++i) {
          try {
            s.load_record(i, record);
          } catch (const DataError&) {
          }
        }
      },
      shard);
  return 0;
}
