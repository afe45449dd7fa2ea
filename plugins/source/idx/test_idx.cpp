#include "idx.hpp"

#include <scoped_env.hpp>
#include <test_support.hpp>

#include <zlib.h>

#include <filesystem>

using contra::DataError;
using contra::Tensor;
using contra::plugins::IdxSource;
using contra::test::TempDir;
using contra::test::write_file;

namespace {

std::string be32(std::uint32_t v) {
  return {char(v >> 24), char((v >> 16) & 0xff), char((v >> 8) & 0xff), char(v & 0xff)};
}

std::string image_file(std::uint32_t count, std::uint32_t rows, std::uint32_t cols, const std::string& pixels) {
  return be32(0x803) + be32(count) + be32(rows) + be32(cols) + pixels;
}

std::string label_file(const std::string& labels) {
  return be32(0x801) + be32(static_cast<std::uint32_t>(labels.size())) + labels;
}

void write_gzip(const std::string& path, const std::string& bytes) {
  gzFile f = gzopen(path.c_str(), "wb");
  REQUIRE(f != nullptr);
  REQUIRE(gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size())) == static_cast<int>(bytes.size()));
  REQUIRE(gzclose(f) == Z_OK);
}

// Three 2x3 images whose pixels are 10*image + position, labels 0, 4, 2.
std::string three_pixels() {
  std::string s;
  for (int i = 0; i < 3; ++i)
    for (int k = 0; k < 6; ++k) s += char(10 * i + k);
  return s;
}

IdxSource open(const std::string& images, const std::string& labels = "") {
  return IdxSource(IdxSource::schema().bind({{"images", images}, {"labels", labels}}));
}

void check_three(const IdxSource& src, bool with_labels) {
  auto info = src.info();
  CHECK(info.size == 3);
  CHECK(info.shape == contra::ImageShape{2, 3, 1});
  CHECK(info.num_classes == (with_labels ? 5 : 0));
  const std::int64_t want[3] = {0, 4, 2};
  Tensor img;
  for (int i = 0; i < 3; ++i) {
    CHECK(src.load(i, img) == (with_labels ? want[i] : -1));
    REQUIRE(img.shape() == contra::Shape{2, 3, 1});
    REQUIRE(img.dtype() == contra::DType::u8);
    for (int k = 0; k < 6; ++k) CHECK(int(img.data<std::uint8_t>()[k]) == 10 * i + k);
  }
  if (with_labels) CHECK(src.labels() == std::vector<std::int64_t>{0, 4, 2});
  else CHECK(src.labels().empty());
}

}  // namespace

TEST_CASE("idx: schema is well formed", "[plugins][idx]") {
  CHECK_NOTHROW(IdxSource::schema().check_well_formed());
  CHECK(IdxSource::schema().name() == "idx");
}

TEST_CASE("idx: plain files round trip images and labels", "[plugins][idx]") {
  TempDir dir("idx");
  write_file(dir.file("img"), image_file(3, 2, 3, three_pixels()));
  write_file(dir.file("lab"), label_file(std::string("\x00\x04\x02", 3)));
  check_three(open(dir.file("img"), dir.file("lab")), true);
}

TEST_CASE("idx: gzip files round trip images and labels", "[plugins][idx]") {
  TempDir dir("idx");
  write_gzip(dir.file("img.gz"), image_file(3, 2, 3, three_pixels()));
  write_gzip(dir.file("lab.gz"), label_file(std::string("\x00\x04\x02", 3)));
  check_three(open(dir.file("img.gz"), dir.file("lab.gz")), true);
}

TEST_CASE("idx: without a label file load returns -1 and there are no classes", "[plugins][idx]") {
  TempDir dir("idx");
  write_gzip(dir.file("img.gz"), image_file(3, 2, 3, three_pixels()));
  check_three(open(dir.file("img.gz")), false);
}

TEST_CASE("idx: relative paths are taken relative to the pipeline file", "[plugins][idx]") {
  TempDir dir("idx");
  std::filesystem::create_directories(dir.path() / "data");
  write_file(dir.file("data/img"), image_file(3, 2, 3, three_pixels()));
  contra::Diagnostics d;
  contra::Params p = IdxSource::schema().bind(
      {{"images", std::string("data/img"), {dir.file("p.toml"), 4, 10}}}, "source",
      {dir.file("p.toml"), 3, 1}, d);
  REQUIRE(d.empty());
  check_three(IdxSource(p), false);
}

TEST_CASE("idx: load rejects an index out of range", "[plugins][idx]") {
  TempDir dir("idx");
  write_file(dir.file("img"), image_file(3, 2, 3, three_pixels()));
  IdxSource src = open(dir.file("img"));
  Tensor img;
  CHECK_THROWS_AS(src.load(3, img), DataError);
  CHECK_THROWS_WITH(src.load(3, img), dir.file("img") + ": sample index 3 is out of range for 3 images");
  CHECK_THROWS_WITH(src.load(-1, img), dir.file("img") + ": sample index -1 is out of range for 3 images");
}

TEST_CASE("idx: rejects a missing file", "[plugins][idx]") {
  TempDir dir("idx");
  CHECK_THROWS_AS(open(dir.file("nope.gz")), DataError);
  CHECK_THROWS_WITH(open(dir.file("nope.gz")), dir.file("nope.gz") + ": cannot open: No such file or directory");
  write_file(dir.file("img"), image_file(3, 2, 3, three_pixels()));
  CHECK_THROWS_WITH(open(dir.file("img"), dir.file("nolabels")),
                    dir.file("nolabels") + ": cannot open: No such file or directory");
}

TEST_CASE("idx: rejects a directory", "[plugins][idx]") {
  TempDir dir("idx");
  CHECK_THROWS_WITH(open(dir.path().string()), dir.path().string() + ": cannot read: Is a directory");
}

TEST_CASE("idx: rejects an empty file", "[plugins][idx]") {
  TempDir dir("idx");
  write_file(dir.file("empty"), "");
  write_gzip(dir.file("empty.gz"), "");
  CHECK_THROWS_WITH(open(dir.file("empty")), dir.file("empty") + ": empty file, expected an IDX image file");
  CHECK_THROWS_WITH(open(dir.file("empty.gz")), dir.file("empty.gz") + ": empty file, expected an IDX image file");
  write_file(dir.file("img"), image_file(3, 2, 3, three_pixels()));
  CHECK_THROWS_WITH(open(dir.file("img"), dir.file("empty")),
                    dir.file("empty") + ": empty file, expected an IDX label file");
}

TEST_CASE("idx: rejects a bad magic number", "[plugins][idx]") {
  TempDir dir("idx");
  write_file(dir.file("img"), image_file(3, 2, 3, three_pixels()));
  write_gzip(dir.file("lab.gz"), label_file(std::string("\x00\x04\x02", 3)));
  CHECK_THROWS_AS(open(dir.file("lab.gz")), DataError);
  CHECK_THROWS_WITH(open(dir.file("lab.gz")),
                    dir.file("lab.gz") + ": not an IDX image file: magic number 0x00000801, expected 0x00000803");
  CHECK_THROWS_WITH(open(dir.file("img"), dir.file("img")),
                    dir.file("img") + ": not an IDX label file: magic number 0x00000803, expected 0x00000801");
  write_file(dir.file("text"), "hello, world\n");
  CHECK_THROWS_WITH(open(dir.file("text")),
                    dir.file("text") + ": not an IDX image file: magic number 0x68656c6c, expected 0x00000803");
}

TEST_CASE("idx: rejects a truncated header", "[plugins][idx]") {
  TempDir dir("idx");
  std::string full = image_file(3, 2, 3, three_pixels());
  write_file(dir.file("img"), full.substr(0, 10));
  write_gzip(dir.file("img.gz"), full.substr(0, 2));
  CHECK_THROWS_WITH(open(dir.file("img")), dir.file("img") +
                    ": truncated: the file ends after 10 bytes, inside the 16-byte IDX image header");
  CHECK_THROWS_WITH(open(dir.file("img.gz")), dir.file("img.gz") +
                    ": truncated: the file ends after 2 bytes, inside the 16-byte IDX image header");
  write_file(dir.file("full"), full);
  write_file(dir.file("lab"), label_file(std::string("\x00\x04\x02", 3)).substr(0, 7));
  CHECK_THROWS_WITH(open(dir.file("full"), dir.file("lab")), dir.file("lab") +
                    ": truncated: the file ends after 7 bytes, inside the 8-byte IDX label header");
}

TEST_CASE("idx: rejects truncated pixel data", "[plugins][idx]") {
  TempDir dir("idx");
  std::string cut = image_file(3, 2, 3, three_pixels().substr(0, 10));
  write_file(dir.file("img"), cut);
  write_gzip(dir.file("img.gz"), cut);
  const std::string tail = ": truncated: the header declares 3 images of 2x3 (18 bytes of pixels) but the data ends after 10 bytes";
  CHECK_THROWS_AS(open(dir.file("img")), DataError);
  CHECK_THROWS_WITH(open(dir.file("img")), dir.file("img") + tail);
  CHECK_THROWS_WITH(open(dir.file("img.gz")), dir.file("img.gz") + tail);
}

TEST_CASE("idx: a header declaring 60000 images over 1000 bytes is refused before allocating", "[plugins][idx]") {
  TempDir dir("idx");
  std::string cut = image_file(60000, 28, 28, std::string(1000, '\x7f'));
  write_file(dir.file("img"), cut);
  write_gzip(dir.file("img.gz"), cut);
  const std::string tail = ": truncated: the header declares 60000 images of 28x28 (47040000 bytes of pixels) "
                           "but the data ends after 1000 bytes";
  CHECK_THROWS_WITH(open(dir.file("img")), dir.file("img") + tail);
  CHECK_THROWS_WITH(open(dir.file("img.gz")), dir.file("img.gz") + tail);
}

TEST_CASE("idx: rejects a gzip stream cut short", "[plugins][idx]") {
  TempDir dir("idx");
  std::string pixels;
  for (int i = 0; i < 4000; ++i) pixels += char((i * 7919) % 251);
  write_gzip(dir.file("full.gz"), image_file(100, 8, 5, pixels));
  std::string gz = contra::test::read_file(dir.file("full.gz"));
  write_file(dir.file("cut.gz"), gz.substr(0, gz.size() / 2));
  CHECK_THROWS_AS(open(dir.file("cut.gz")), DataError);
  CHECK_THROWS_WITH(open(dir.file("cut.gz")),
                    Catch::Matchers::StartsWith(dir.file("cut.gz") + ": truncated: the header declares 100 images "
                                                "of 8x5 (4000 bytes of pixels) but the data ends after "));
}

TEST_CASE("idx: rejects corrupt gzip data", "[plugins][idx]") {
  TempDir dir("idx");
  write_gzip(dir.file("ok.gz"), image_file(3, 2, 3, three_pixels()));
  std::string gz = contra::test::read_file(dir.file("ok.gz"));
  gz[3] = char(0xe0);  // reserved flag bits set in the gzip header
  write_file(dir.file("bad.gz"), gz);
  CHECK_THROWS_AS(open(dir.file("bad.gz")), DataError);
  CHECK_THROWS_WITH(open(dir.file("bad.gz")), dir.file("bad.gz") + ": corrupt gzip data: unknown header flags set");
}

TEST_CASE("idx: rejects data after what the header declares", "[plugins][idx]") {
  TempDir dir("idx");
  std::string longer = image_file(3, 2, 3, three_pixels() + "xyz");
  write_file(dir.file("img"), longer);
  write_gzip(dir.file("img.gz"), longer);
  const std::string tail = ": the header declares 3 images of 2x3 (18 bytes of pixels) but 3 more bytes follow them";
  CHECK_THROWS_WITH(open(dir.file("img")), dir.file("img") + tail);
  CHECK_THROWS_WITH(open(dir.file("img.gz")), dir.file("img.gz") + tail);
}

TEST_CASE("idx: rejects a header with a zero or absurd dimension", "[plugins][idx]") {
  TempDir dir("idx");
  write_file(dir.file("zero"), image_file(3, 0, 3, ""));
  CHECK_THROWS_WITH(open(dir.file("zero")), dir.file("zero") +
                    ": the header declares 3 images of 0x3, expected at least one image of at least 1x1 pixels");
  write_file(dir.file("none"), image_file(0, 28, 28, ""));
  CHECK_THROWS_WITH(open(dir.file("none")), dir.file("none") +
                    ": the header declares 0 images of 28x28, expected at least one image of at least 1x1 pixels");
  write_file(dir.file("huge"), image_file(1, 100000, 28, ""));
  CHECK_THROWS_WITH(open(dir.file("huge")), dir.file("huge") +
                    ": the header declares 1 image of 100000x28, expected at most 16384 pixels on each side");
}

TEST_CASE("idx: rejects a label count that differs from the image count", "[plugins][idx]") {
  TempDir dir("idx");
  write_file(dir.file("img"), image_file(3, 2, 3, three_pixels()));
  write_gzip(dir.file("lab.gz"), label_file(std::string("\x00\x04", 2)));
  CHECK_THROWS_AS(open(dir.file("img"), dir.file("lab.gz")), DataError);
  CHECK_THROWS_WITH(open(dir.file("img"), dir.file("lab.gz")),
                    dir.file("lab.gz") + ": the header declares 2 labels but " + dir.file("img") + " has 3 images");
}

TEST_CASE("idx: rejects truncated label data", "[plugins][idx]") {
  TempDir dir("idx");
  write_file(dir.file("img"), image_file(3, 2, 3, three_pixels()));
  write_file(dir.file("lab"), be32(0x801) + be32(3) + std::string("\x01", 1));
  CHECK_THROWS_WITH(open(dir.file("img"), dir.file("lab")),
                    dir.file("lab") + ": truncated: the header declares 3 labels but the data ends after 1 byte");
}

TEST_CASE("idx: reads the Debian Fashion-MNIST training set", "[plugins][idx][data]") {
  const std::string dir = "/usr/share/datasets/fashion-mnist/";
  const std::string images = dir + "train-images-idx3-ubyte.gz", labels = dir + "train-labels-idx1-ubyte.gz";
  if (!std::filesystem::exists(images) || !std::filesystem::exists(labels)) {
    WARN("SKIPPED: Fashion-MNIST not installed (" << dir << ")");
    return;
  }
  IdxSource src = open(images, labels);
  auto info = src.info();
  CHECK(info.size == 60000);
  CHECK(info.shape == contra::ImageShape{28, 28, 1});
  CHECK(info.num_classes == 10);
  auto all = src.labels();
  REQUIRE(all.size() == 60000);
  std::vector<int> per_class(10, 0);
  for (auto l : all) ++per_class[static_cast<std::size_t>(l)];
  for (int c : per_class) CHECK(c == 6000);  // Fashion-MNIST is balanced
  Tensor img;
  CHECK(src.load(0, img) == 9);  // the first training image is an ankle boot
  std::int64_t sum = 0;
  for (int k = 0; k < 784; ++k) sum += img.data<std::uint8_t>()[k];
  CHECK(sum > 0);
  CHECK(src.load(59999, img) == all.back());
}

namespace {
std::string gzip_bytes(const TempDir& dir, const std::string& bytes) {
  write_gzip(dir.file("member.gz"), bytes);
  return contra::test::read_file(dir.file("member.gz"));
}
}  // namespace

TEST_CASE("idx: gzip data of several members is read whole", "[plugins][idx]") {
  TempDir dir("idx");
  // `cat a.gz b.gz`: the header and the first image in one member, the rest
  // in another; the labels in three.
  const std::string img = image_file(3, 2, 3, three_pixels());
  write_file(dir.file("img.gz"), gzip_bytes(dir, img.substr(0, 22)) + gzip_bytes(dir, img.substr(22)));
  const std::string lab = label_file(std::string("\x00\x04\x02", 3));
  write_file(dir.file("lab.gz"), gzip_bytes(dir, lab.substr(0, 4)) + gzip_bytes(dir, lab.substr(4, 5)) +
                                     gzip_bytes(dir, lab.substr(9)));
  check_three(open(dir.file("img.gz"), dir.file("lab.gz")), true);
  // An empty member between two others changes nothing.
  write_file(dir.file("img2.gz"),
             gzip_bytes(dir, img.substr(0, 22)) + gzip_bytes(dir, "") + gzip_bytes(dir, img.substr(22)));
  check_three(open(dir.file("img2.gz")), false);
}

TEST_CASE("idx: garbage after the gzip data is refused, naming its offset", "[plugins][idx]") {
  TempDir dir("idx");
  const std::string img = gzip_bytes(dir, image_file(3, 2, 3, three_pixels()));
  write_file(dir.file("img.gz"), img + "garbage!?");
  CHECK_THROWS_AS(open(dir.file("img.gz")), DataError);
  CHECK_THROWS_WITH(open(dir.file("img.gz")),
                    dir.file("img.gz") + ": trailing garbage at byte offset " + std::to_string(img.size()) +
                        " after the gzip data: 9 bytes starting with 67 61 72 62 61 67 65 21; expected the end of "
                        "the file or another gzip member (1f 8b)");
  // One stray byte, and zeros (padding) alike.
  write_file(dir.file("one.gz"), img + std::string(1, '\0'));
  CHECK_THROWS_WITH(open(dir.file("one.gz")),
                    dir.file("one.gz") + ": trailing garbage at byte offset " + std::to_string(img.size()) +
                        " after the gzip data: 1 byte, 00; expected the end of the file or another gzip member "
                        "(1f 8b)");
  // After a second member, the offset is past both.
  const std::string second = gzip_bytes(dir, "");
  write_file(dir.file("two.gz"), img + second + std::string(512, '\0'));
  CHECK_THROWS_WITH(open(dir.file("two.gz")),
                    dir.file("two.gz") + ": trailing garbage at byte offset " +
                        std::to_string(img.size() + second.size()) +
                        " after the gzip data: 512 bytes starting with 00 00 00 00 00 00 00 00; expected the end of "
                        "the file or another gzip member (1f 8b)");
  // The label file likewise.
  write_file(dir.file("img.gz"), img);
  const std::string lab = gzip_bytes(dir, label_file(std::string("\x00\x04\x02", 3)));
  write_file(dir.file("lab.gz"), lab + "\n");
  CHECK_THROWS_WITH(open(dir.file("img.gz"), dir.file("lab.gz")),
                    dir.file("lab.gz") + ": trailing garbage at byte offset " + std::to_string(lab.size()) +
                        " after the gzip data: 1 byte, 0a; expected the end of the file or another gzip member "
                        "(1f 8b)");
}

TEST_CASE("idx: gzip data cut inside its last member's trailer is refused", "[plugins][idx]") {
  TempDir dir("idx");
  const std::string img = gzip_bytes(dir, image_file(3, 2, 3, three_pixels()));
  // Every pixel is there; the CRC and length that end the member are not.
  write_file(dir.file("img.gz"), img.substr(0, img.size() - 8));
  CHECK_THROWS_AS(open(dir.file("img.gz")), DataError);
  CHECK_THROWS_WITH(open(dir.file("img.gz")),
                    dir.file("img.gz") + ": truncated gzip data: the file ends after " +
                        std::to_string(img.size() - 8) + " bytes, inside a gzip member (before its CRC and length)");
}

TEST_CASE("idx: a gzip header declaring more pixels than the machine has is refused before inflating",
          "[plugins][idx]") {
  // 10^6 images of 28x28 in a file of a few hundred bytes: what it would
  // inflate to is never allocated.
  const contra::test::ScopedEnv budget("CONTRA_MEMORY_AVAILABLE", "512MiB");
  TempDir dir("idx");
  write_gzip(dir.file("img.gz"), image_file(1000000, 28, 28, std::string(100000, '\0')));
  CHECK_THROWS_AS(open(dir.file("img.gz")), DataError);
  CHECK_THROWS_WITH(open(dir.file("img.gz")),
                    dir.file("img.gz") + ": the header declares 1000000 images of 28x28 (784000000 bytes of pixels), "
                                         "more than this machine has (512 MiB available (CONTRA_MEMORY_AVAILABLE)): a "
                                         "damaged header, or a data set for a larger machine");
}
