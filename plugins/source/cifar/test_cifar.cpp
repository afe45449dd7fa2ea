#include "cifar.hpp"

#include <test_support.hpp>

#include <cstring>
#include <filesystem>

using contra::DataError;
using contra::Tensor;
using contra::plugins::CifarSource;
using contra::test::TempDir;
using contra::test::write_file;

namespace {

// Value of plane c (0 red, 1 green, 2 blue) at position k = y*32 + x of test
// image `image`: differs between images, channels, rows and columns.
std::uint8_t pixel(int image, int c, int k) {
  return static_cast<std::uint8_t>((image * 37 + c * 89 + k + (k >> 5) * 11) & 0xff);
}

// The 3072 pixel bytes of a record exactly as published: the red plane, then
// green, then blue, each 32x32 row-major.
std::string planes(int image) {
  std::string s;
  for (int c = 0; c < 3; ++c)
    for (int k = 0; k < 1024; ++k) s += char(pixel(image, c, k));
  return s;
}

// A CIFAR-10 record: 1 label byte, 3072 pixel bytes.
std::string record10(int image, int label) { return std::string(1, char(label)) + planes(image); }

// A CIFAR-100 record: coarse label byte, fine label byte, 3072 pixel bytes.
std::string record100(int image, int coarse, int fine) {
  return std::string(1, char(coarse)) + std::string(1, char(fine)) + planes(image);
}

// CIFAR-10 train split of 9 images over the 5 batch files (2, 1, 3, 1, 2
// records); image i has label train10_labels[i].
const std::vector<std::int64_t> train10_labels = {3, 0, 9, 1, 5, 7, 2, 8, 4};
const int train10_counts[5] = {2, 1, 3, 1, 2};

void write_train10(const TempDir& dir) {
  int i = 0;
  for (int b = 0; b < 5; ++b) {
    std::string bytes;
    for (int r = 0; r < train10_counts[b]; ++r, ++i) bytes += record10(i, static_cast<int>(train10_labels[i]));
    write_file(dir.file("data_batch_" + std::to_string(b + 1) + ".bin"), bytes);
  }
}

// CIFAR-10 test split: images 100, 101, 102 with labels 6, 9, 0.
void write_test10(const TempDir& dir) {
  write_file(dir.file("test_batch.bin"), record10(100, 6) + record10(101, 9) + record10(102, 0));
}

// CIFAR-100 train split: images 200..203 with (coarse, fine) labels below.
const std::vector<std::int64_t> train100_coarse = {19, 0, 7, 12};
const std::vector<std::int64_t> train100_fine = {99, 0, 42, 3};

void write_train100(const TempDir& dir) {
  std::string bytes;
  for (int i = 0; i < 4; ++i)
    bytes += record100(200 + i, static_cast<int>(train100_coarse[i]), static_cast<int>(train100_fine[i]));
  write_file(dir.file("train.bin"), bytes);
}

// CIFAR-100 test split: images 300, 301 with (coarse, fine) (4, 55), (18, 97).
void write_test100(const TempDir& dir) {
  write_file(dir.file("test.bin"), record100(300, 4, 55) + record100(301, 18, 97));
}

CifarSource open(const std::string& folder, const std::string& variant = "cifar10",
                 const std::string& split = "train", const std::string& label = "fine") {
  return CifarSource(
      CifarSource::schema().bind({{"folder", folder}, {"variant", variant}, {"split", split}, {"label", label}}));
}

// Checks that `img` is test image `image` in HWC order.
void check_image(const Tensor& img, int image) {
  REQUIRE(img.shape() == contra::Shape{32, 32, 3});
  REQUIRE(img.dtype() == contra::DType::u8);
  const std::uint8_t* d = img.data<std::uint8_t>();
  int wrong = 0;
  for (int y = 0; y < 32; ++y)
    for (int x = 0; x < 32; ++x)
      for (int c = 0; c < 3; ++c)
        if (d[(y * 32 + x) * 3 + c] != pixel(image, c, y * 32 + x)) ++wrong;
  CHECK(wrong == 0);
}

// Checks every image and label of `src` against images first, first+1, ...
void check_all(const CifarSource& src, int first, const std::vector<std::int64_t>& labels,
               std::int64_t num_classes) {
  auto info = src.info();
  CHECK(info.size == static_cast<std::int64_t>(labels.size()));
  CHECK(info.shape == contra::ImageShape{32, 32, 3});
  CHECK(info.num_classes == num_classes);
  CHECK(src.labels() == labels);
  Tensor img;
  for (std::size_t i = 0; i < labels.size(); ++i) {
    CHECK(src.load(static_cast<std::int64_t>(i), img) == labels[i]);
    check_image(img, first + static_cast<int>(i));
  }
}

}  // namespace

TEST_CASE("cifar: schema is well formed", "[plugins][cifar]") {
  CHECK_NOTHROW(CifarSource::schema().check_well_formed());
  CHECK(CifarSource::schema().name() == "cifar");
  CHECK_THROWS_AS(CifarSource::schema().bind({{"variant", std::string("cifar10")}}), contra::ConfigError);
  CHECK_THROWS_AS(CifarSource::schema().bind({{"folder", std::string("x")}, {"variant", std::string("cifar1000")}}),
                  contra::ConfigError);
  CHECK_THROWS_AS(CifarSource::schema().bind({{"folder", std::string("x")}, {"split", std::string("val")}}),
                  contra::ConfigError);
}

TEST_CASE("cifar: the HWC layout takes pixel (y, x) channel c from plane c at y*32 + x", "[plugins][cifar]") {
  TempDir dir("cifar");
  // One record whose red plane is all 1 but (y=2, x=5) = 200, green all 2,
  // blue all 3 but (y=31, x=0) = 250.
  std::string px(3072, '\0');
  for (int k = 0; k < 1024; ++k) px[k] = 1, px[1024 + k] = 2, px[2048 + k] = 3;
  px[2 * 32 + 5] = char(200);
  px[2048 + 31 * 32 + 0] = char(250);
  write_file(dir.file("test_batch.bin"), std::string(1, '\x04') + px);
  CifarSource src = open(dir.path().string(), "cifar10", "test");
  Tensor img;
  CHECK(src.load(0, img) == 4);
  const std::uint8_t* d = img.data<std::uint8_t>();
  CHECK(int(d[0]) == 1);
  CHECK(int(d[1]) == 2);
  CHECK(int(d[2]) == 3);
  CHECK(int(d[(2 * 32 + 5) * 3 + 0]) == 200);
  CHECK(int(d[(2 * 32 + 5) * 3 + 1]) == 2);
  CHECK(int(d[(31 * 32 + 0) * 3 + 2]) == 250);
  CHECK(int(d[(31 * 32 + 0) * 3 + 0]) == 1);
}

TEST_CASE("cifar: CIFAR-10 train concatenates data_batch_1..5.bin in order", "[plugins][cifar]") {
  TempDir dir("cifar");
  write_train10(dir);
  write_test10(dir);
  check_all(open(dir.path().string()), 0, train10_labels, 10);
}

TEST_CASE("cifar: CIFAR-10 test reads test_batch.bin", "[plugins][cifar]") {
  TempDir dir("cifar");
  write_train10(dir);
  write_test10(dir);
  check_all(open(dir.path().string(), "cifar10", "test"), 100, {6, 9, 0}, 10);
}

TEST_CASE("cifar: CIFAR-100 train and test with fine labels", "[plugins][cifar]") {
  TempDir dir("cifar");
  write_train100(dir);
  write_test100(dir);
  check_all(open(dir.path().string(), "cifar100", "train", "fine"), 200, train100_fine, 100);
  check_all(open(dir.path().string(), "cifar100", "test"), 300, {55, 97}, 100);
}

TEST_CASE("cifar: CIFAR-100 train and test with coarse labels", "[plugins][cifar]") {
  TempDir dir("cifar");
  write_train100(dir);
  write_test100(dir);
  check_all(open(dir.path().string(), "cifar100", "train", "coarse"), 200, train100_coarse, 20);
  check_all(open(dir.path().string(), "cifar100", "test", "coarse"), 300, {4, 18}, 20);
}

TEST_CASE("cifar: a folder given with a trailing slash", "[plugins][cifar]") {
  TempDir dir("cifar");
  write_test10(dir);
  check_all(open(dir.path().string() + "/", "cifar10", "test"), 100, {6, 9, 0}, 10);
}

TEST_CASE("cifar: a relative folder is taken relative to the pipeline file", "[plugins][cifar]") {
  TempDir dir("cifar");
  std::filesystem::create_directories(dir.path() / "data" / "cifar-10-batches-bin");
  write_file(dir.file("data/cifar-10-batches-bin/test_batch.bin"), record10(100, 6) + record10(101, 9));
  contra::Diagnostics d;
  contra::Params p = CifarSource::schema().bind(
      {{"folder", std::string("data/cifar-10-batches-bin"), {dir.file("p.toml"), 4, 10}},
       {"split", std::string("test"), {dir.file("p.toml"), 5, 9}}},
      "source", {dir.file("p.toml"), 3, 1}, d);
  REQUIRE(d.empty());
  check_all(CifarSource(p), 100, {6, 9}, 10);
}

TEST_CASE("cifar: loading is deterministic and independent of order", "[plugins][cifar]") {
  TempDir dir("cifar");
  write_train10(dir);
  CifarSource a = open(dir.path().string()), b = open(dir.path().string());
  CHECK(a.labels() == b.labels());
  Tensor reused;
  for (std::int64_t i : {8, 0, 4, 4, 1, 8}) {
    // One tensor reused across indices in a scrambled order, against a fresh
    // tensor from a second instance.
    CHECK(a.load(i, reused) == train10_labels[static_cast<std::size_t>(i)]);
    Tensor fresh;
    CHECK(b.load(i, fresh) == train10_labels[static_cast<std::size_t>(i)]);
    CHECK(std::memcmp(reused.data<std::uint8_t>(), fresh.data<std::uint8_t>(), 3072) == 0);
    check_image(reused, static_cast<int>(i));
  }
}

TEST_CASE("cifar: load rejects an index out of range", "[plugins][cifar]") {
  TempDir dir("cifar");
  write_test10(dir);
  CifarSource src = open(dir.path().string(), "cifar10", "test");
  Tensor img;
  CHECK_THROWS_AS(src.load(3, img), DataError);
  CHECK_THROWS_WITH(src.load(3, img), dir.path().string() + ": sample index 3 is out of range for 3 images");
  CHECK_THROWS_WITH(src.load(-1, img), dir.path().string() + ": sample index -1 is out of range for 3 images");
}

TEST_CASE("cifar: label = coarse with variant = cifar10 is a configuration error", "[plugins][cifar]") {
  TempDir dir("cifar");
  write_train10(dir);
  CHECK_THROWS_AS(open(dir.path().string(), "cifar10", "train", "coarse"), contra::ConfigError);
  CHECK_THROWS_WITH(open(dir.path().string(), "cifar10", "train", "coarse"),
                    "cifar.label = \"coarse\" requires cifar.variant = \"cifar100\"; "
                    "CIFAR-10 has only one label per image");
  // In a pipeline the message starts at the offending key.
  contra::Diagnostics d;
  contra::Params p = CifarSource::schema().bind(
      {{"folder", dir.path().string(), {"p.toml", 4, 10}}, {"label", std::string("coarse"), {"p.toml", 5, 9}}},
      "source", {"p.toml", 3, 1}, d);
  REQUIRE(d.empty());
  CHECK_THROWS_WITH(CifarSource(p), "p.toml:5:9: source.label = \"coarse\" requires source.variant = \"cifar100\"; "
                                    "CIFAR-10 has only one label per image");
}

TEST_CASE("cifar: rejects an empty folder parameter", "[plugins][cifar]") {
  CHECK_THROWS_AS(open(""), contra::ConfigError);
  CHECK_THROWS_WITH(open(""), "cifar.folder: expected the folder holding the CIFAR-10 .bin files "
                              "(e.g. cifar-10-batches-bin), found \"\"");
}

TEST_CASE("cifar: rejects a missing folder or a file given as the folder", "[plugins][cifar]") {
  TempDir dir("cifar");
  CHECK_THROWS_AS(open(dir.file("nope")), DataError);
  CHECK_THROWS_WITH(open(dir.file("nope")), dir.file("nope") + ": cannot open: No such file or directory");
  write_test10(dir);
  CHECK_THROWS_WITH(open(dir.file("test_batch.bin"), "cifar10", "test"),
                    dir.file("test_batch.bin") + ": not a folder; expected the folder holding the CIFAR-10 .bin "
                                                 "files (e.g. cifar-10-batches-bin)");
}

TEST_CASE("cifar: names every missing file in one message", "[plugins][cifar]") {
  TempDir dir("cifar");
  const std::string folder = dir.path().string();
  write_train10(dir);
  std::filesystem::remove(dir.file("data_batch_3.bin"));
  std::filesystem::remove(dir.file("data_batch_5.bin"));
  CHECK_THROWS_AS(open(folder), DataError);
  CHECK_THROWS_WITH(open(folder),
                    folder + ": missing 2 of the 5 CIFAR-10 train files: data_batch_3.bin, data_batch_5.bin");
  CHECK_THROWS_WITH(open(folder, "cifar10", "test"), folder + ": missing the CIFAR-10 test file: test_batch.bin; "
                                                              "expected the folder extracted from "
                                                              "cifar-10-binary.tar.gz (cifar-10-batches-bin)");
  CHECK_THROWS_WITH(open(folder, "cifar100", "train"), folder + ": missing the CIFAR-100 train file: train.bin; "
                                                                "the folder holds CIFAR-10 files (data_batch_1.bin): "
                                                                "set cifar.variant = \"cifar10\"");
}

TEST_CASE("cifar: when every file is missing, says what the folder holds instead", "[plugins][cifar]") {
  TempDir dir("cifar");
  const std::string folder = dir.path().string();
  CHECK_THROWS_WITH(open(folder), folder + ": missing all 5 CIFAR-10 train files: data_batch_1.bin, data_batch_2.bin, "
                                           "data_batch_3.bin, data_batch_4.bin, data_batch_5.bin; expected the folder "
                                           "extracted from cifar-10-binary.tar.gz (cifar-10-batches-bin)");
  CHECK_THROWS_WITH(open(folder, "cifar100", "test"),
                    folder + ": missing the CIFAR-100 test file: test.bin; expected the folder extracted from "
                             "cifar-100-binary.tar.gz (cifar-100-binary)");
  write_test100(dir);
  CHECK_THROWS_WITH(open(folder), folder + ": missing all 5 CIFAR-10 train files: data_batch_1.bin, data_batch_2.bin, "
                                           "data_batch_3.bin, data_batch_4.bin, data_batch_5.bin; the folder holds "
                                           "CIFAR-100 files (test.bin): set cifar.variant = \"cifar100\"");
  TempDir py("cifar");
  write_file(py.file("data_batch_1"), "pickle");
  write_file(py.file("test_batch"), "pickle");
  CHECK_THROWS_WITH(open(py.path().string(), "cifar10", "test"),
                    py.path().string() + ": missing the CIFAR-10 test file: test_batch.bin; the folder holds the "
                                         "Python version (data_batch_1), expected the binary version "
                                         "(cifar-10-binary.tar.gz)");
}

TEST_CASE("cifar: rejects a batch file that is a folder", "[plugins][cifar]") {
  TempDir dir("cifar");
  std::filesystem::create_directories(dir.path() / "test_batch.bin");
  CHECK_THROWS_AS(open(dir.path().string(), "cifar10", "test"), DataError);
  CHECK_THROWS_WITH(open(dir.path().string(), "cifar10", "test"),
                    dir.file("test_batch.bin") + ": cannot read: Is a directory");
}

TEST_CASE("cifar: rejects a file that is not a whole number of records", "[plugins][cifar]") {
  TempDir dir("cifar");
  const std::string folder = dir.path().string();
  write_train10(dir);
  // data_batch_2.bin: 10 records cut 5 bytes short.
  std::string ten;
  for (int i = 0; i < 10; ++i) ten += record10(i, 1);
  write_file(dir.file("data_batch_2.bin"), ten.substr(0, ten.size() - 5));
  CHECK_THROWS_AS(open(folder), DataError);
  CHECK_THROWS_WITH(open(folder), dir.file("data_batch_2.bin") +
                                      ": truncated: 30725 bytes is not a whole number of 3073-byte CIFAR-10 "
                                      "records (9 records and 3068 bytes)");
  // One byte more than a record.
  write_file(dir.file("test_batch.bin"), record10(0, 1) + "x");
  CHECK_THROWS_WITH(open(folder, "cifar10", "test"), dir.file("test_batch.bin") +
                                                         ": truncated: 3074 bytes is not a whole number of 3073-byte "
                                                         "CIFAR-10 records (1 record and 1 byte)");
  // A CIFAR-10 record read as CIFAR-100 is one byte short.
  write_file(dir.file("test.bin"), record10(0, 1));
  CHECK_THROWS_WITH(open(folder, "cifar100", "test"), dir.file("test.bin") +
                                                          ": truncated: 3073 bytes is not a whole number of 3074-byte "
                                                          "CIFAR-100 records (0 records and 3073 bytes)");
}

TEST_CASE("cifar: rejects an empty batch file", "[plugins][cifar]") {
  TempDir dir("cifar");
  write_train10(dir);
  write_file(dir.file("data_batch_4.bin"), "");
  CHECK_THROWS_AS(open(dir.path().string()), DataError);
  CHECK_THROWS_WITH(open(dir.path().string()),
                    dir.file("data_batch_4.bin") + ": empty file, expected 3073-byte CIFAR-10 records");
  write_file(dir.file("train.bin"), "");
  CHECK_THROWS_WITH(open(dir.path().string(), "cifar100"),
                    dir.file("train.bin") + ": empty file, expected 3074-byte CIFAR-100 records");
}

TEST_CASE("cifar: rejects a label out of range, naming the record and its byte offset", "[plugins][cifar]") {
  TempDir dir("cifar");
  const std::string folder = dir.path().string();
  write_train10(dir);
  write_file(dir.file("data_batch_3.bin"), record10(3, 2) + record10(4, 5) + record10(5, 10));
  CHECK_THROWS_AS(open(folder), DataError);
  CHECK_THROWS_WITH(open(folder), dir.file("data_batch_3.bin") +
                                      ": record 2 (byte offset 6146): label 10 is out of range, expected 0 to 9");
  write_file(dir.file("test_batch.bin"), record10(0, 255));
  CHECK_THROWS_WITH(open(folder, "cifar10", "test"),
                    dir.file("test_batch.bin") +
                        ": record 0 (byte offset 0): label 255 is out of range, expected 0 to 9");

  // CIFAR-100: both labels are checked, whichever one is returned.
  write_file(dir.file("train.bin"), record100(0, 3, 30) + record100(1, 20, 30));
  CHECK_THROWS_WITH(open(folder, "cifar100", "train", "fine"),
                    dir.file("train.bin") +
                        ": record 1 (byte offset 3074): coarse label 20 is out of range, expected 0 to 19");
  write_file(dir.file("train.bin"), record100(0, 3, 30) + record100(1, 4, 30) + record100(2, 5, 100));
  CHECK_THROWS_WITH(open(folder, "cifar100", "train", "coarse"),
                    dir.file("train.bin") +
                        ": record 2 (byte offset 6149): fine label 100 is out of range, expected 0 to 99");
}

TEST_CASE("cifar: a file larger than one read chunk round trips", "[plugins][cifar]") {
  TempDir dir("cifar");
  // 1030 records: more than the 1024 records read at a time.
  std::string bytes;
  std::vector<std::int64_t> labels;
  for (int i = 0; i < 1030; ++i) {
    bytes += record100(i, i % 20, (i * 7) % 100);
    labels.push_back((i * 7) % 100);
  }
  write_file(dir.file("test.bin"), bytes);
  check_all(open(dir.path().string(), "cifar100", "test"), 0, labels, 100);
}
