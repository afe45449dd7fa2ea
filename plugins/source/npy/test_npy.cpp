#include "npy.hpp"

#include <test_support.hpp>

#include <cstring>
#include <filesystem>

using contra::DataError;
using contra::Tensor;
using contra::plugins::NpySource;
using contra::test::TempDir;
using contra::test::write_file;

namespace {

// A .npy file exactly as numpy.save writes it: magic, version, little-endian
// header length (2 bytes in 1.0, 4 in 2.0 and 3.0), the dict padded with
// spaces and a final newline so that the data starts at a multiple of 64.
std::string npy_with_header(const std::string& dict, const std::string& data, int major = 1) {
  const std::size_t preamble = major == 1 ? 10 : 12;
  std::string header = dict;
  const std::size_t total = preamble + header.size() + 1;
  header += std::string((64 - total % 64) % 64, ' ') + "\n";
  std::string out = "\x93NUMPY";
  out += char(major);
  out += char(0);
  const std::size_t len = header.size();
  out += char(len & 0xff);
  out += char((len >> 8) & 0xff);
  if (major != 1) {
    out += char((len >> 16) & 0xff);
    out += char((len >> 24) & 0xff);
  }
  return out + header + data;
}

std::string npy(const std::string& descr, const std::string& shape, const std::string& data, int major = 1) {
  return npy_with_header("{'descr': '" + descr + "', 'fortran_order': False, 'shape': " + shape + ", }", data, major);
}

template <class T> std::string le(const std::vector<T>& values) {
  std::string s(values.size() * sizeof(T), '\0');
  std::memcpy(s.data(), values.data(), s.size());  // the test machine is little-endian, like the reader
  return s;
}

std::uint8_t value(int n, int y, int x, int c) { return static_cast<std::uint8_t>((n * 61 + y * 17 + x * 5 + c * 101) & 0xff); }

// N images of H x W x C in HWC order, or CHW order when `chw`.
std::string images(int n, int h, int w, int c, bool chw = false) {
  std::string s;
  for (int i = 0; i < n; ++i) {
    if (chw) {
      for (int k = 0; k < c; ++k)
        for (int y = 0; y < h; ++y)
          for (int x = 0; x < w; ++x) s += char(value(i, y, x, k));
    } else {
      for (int y = 0; y < h; ++y)
        for (int x = 0; x < w; ++x)
          for (int k = 0; k < c; ++k) s += char(value(i, y, x, k));
    }
  }
  return s;
}

NpySource open(const std::string& imgs, const std::string& labels = "", const std::string& layout = "nhwc") {
  return NpySource(NpySource::schema().bind({{"images", imgs}, {"labels", labels}, {"layout", layout}}));
}

// Checks every pixel of every image against value(), as HWC.
void check_images(const NpySource& src, int n, int h, int w, int c) {
  auto info = src.info();
  CHECK(info.size == n);
  CHECK(info.shape == contra::ImageShape{h, w, c});
  Tensor img;
  for (int i = 0; i < n; ++i) {
    src.load(i, img);
    REQUIRE(img.shape() == contra::Shape{h, w, c});
    REQUIRE(img.dtype() == contra::DType::u8);
    const std::uint8_t* p = img.data<std::uint8_t>();
    int wrong = 0;
    for (int y = 0; y < h; ++y)
      for (int x = 0; x < w; ++x)
        for (int k = 0; k < c; ++k) wrong += p[(y * w + x) * c + k] != value(i, y, x, k);
    CHECK(wrong == 0);
  }
}

std::string message_of(const std::string& imgs, const std::string& labels = "", const std::string& layout = "nhwc") {
  try {
    open(imgs, labels, layout);
  } catch (const DataError& e) {
    return e.what();
  }
  return "no DataError";
}

}  // namespace

TEST_CASE("npy: schema is well formed", "[plugins][npy]") {
  CHECK_NOTHROW(NpySource::schema().check_well_formed());
  CHECK(NpySource::schema().name() == "npy");
}

TEST_CASE("npy: uint8 (N, H, W, C) images and int64 labels round trip", "[plugins][npy]") {
  TempDir dir("npy");
  write_file(dir.file("x.npy"), npy("|u1", "(3, 2, 4, 3)", images(3, 2, 4, 3)));
  write_file(dir.file("y.npy"), npy("<i8", "(3,)", le<std::int64_t>({4, 0, 2})));
  NpySource src = open(dir.file("x.npy"), dir.file("y.npy"));
  check_images(src, 3, 2, 4, 3);
  CHECK(src.info().num_classes == 5);
  CHECK(src.labels() == std::vector<std::int64_t>{4, 0, 2});
  Tensor img;
  CHECK(src.load(0, img) == 4);
  CHECK(src.load(1, img) == 0);
  CHECK(src.load(2, img) == 2);
}

TEST_CASE("npy: (N, H, W) images are gray, whatever the layout", "[plugins][npy]") {
  TempDir dir("npy");
  write_file(dir.file("x.npy"), npy("|u1", "(2, 5, 3)", images(2, 5, 3, 1)));
  check_images(open(dir.file("x.npy")), 2, 5, 3, 1);
  check_images(open(dir.file("x.npy"), "", "nchw"), 2, 5, 3, 1);
}

TEST_CASE("npy: layout = nchw turns (N, C, H, W) into HWC images", "[plugins][npy]") {
  TempDir dir("npy");
  write_file(dir.file("rgb.npy"), npy("|u1", "(4, 3, 5, 2)", images(4, 5, 2, 3, true)));
  check_images(open(dir.file("rgb.npy"), "", "nchw"), 4, 5, 2, 3);
  write_file(dir.file("gray.npy"), npy("|u1", "(2, 1, 3, 3)", images(2, 3, 3, 1, true)));
  check_images(open(dir.file("gray.npy"), "", "nchw"), 2, 3, 3, 1);
}

TEST_CASE("npy: nchw data larger than one read chunk", "[plugins][npy]") {
  TempDir dir("npy");
  // 700 images of 3x64x64 (12288 bytes): 8.6 MB, three 4 MiB chunks.
  write_file(dir.file("big.npy"), npy("|u1", "(700, 3, 64, 64)", images(700, 64, 64, 3, true)));
  NpySource src = open(dir.file("big.npy"), "", "nchw");
  CHECK(src.info().size == 700);
  Tensor img;
  for (int i : {0, 340, 341, 342, 683, 684, 699}) {
    src.load(i, img);
    const std::uint8_t* p = img.data<std::uint8_t>();
    int wrong = 0;
    for (int y = 0; y < 64; ++y)
      for (int x = 0; x < 64; ++x)
        for (int k = 0; k < 3; ++k) wrong += p[(y * 64 + x) * 3 + k] != value(i, y, x, k);
    CHECK(wrong == 0);
  }
}

TEST_CASE("npy: labels of every integer dtype", "[plugins][npy]") {
  TempDir dir("npy");
  write_file(dir.file("x.npy"), npy("|u1", "(3, 2, 2)", images(3, 2, 2, 1)));
  const std::vector<std::int64_t> want = {7, 0, 3};
  std::vector<std::pair<std::string, std::string>> files = {
      {"<i8", le<std::int64_t>({7, 0, 3})}, {"<i4", le<std::int32_t>({7, 0, 3})},
      {"<i2", le<std::int16_t>({7, 0, 3})}, {"|i1", le<std::int8_t>({7, 0, 3})},
      {"|u1", le<std::uint8_t>({7, 0, 3})}, {"<u2", le<std::uint16_t>({7, 0, 3})},
      {"<u4", le<std::uint32_t>({7, 0, 3})}, {"<u8", le<std::uint64_t>({7, 0, 3})},
      {"=i8", le<std::int64_t>({7, 0, 3})},
  };
  for (const auto& [descr, data] : files) {
    INFO("dtype " << descr);
    write_file(dir.file("y.npy"), npy(descr, "(3,)", data));
    NpySource src = open(dir.file("x.npy"), dir.file("y.npy"));
    CHECK(src.labels() == want);
    CHECK(src.info().num_classes == 8);
    Tensor img;
    CHECK(src.load(0, img) == 7);
  }
}

TEST_CASE("npy: without labels load returns -1 and there are no classes", "[plugins][npy]") {
  TempDir dir("npy");
  write_file(dir.file("x.npy"), npy("|u1", "(3, 2, 2)", images(3, 2, 2, 1)));
  NpySource src = open(dir.file("x.npy"));
  CHECK(src.info().num_classes == 0);
  CHECK(src.labels().empty());
  Tensor img;
  CHECK(src.load(2, img) == -1);
}

TEST_CASE("npy: format versions 1.0, 2.0 and 3.0 and header spellings", "[plugins][npy]") {
  TempDir dir("npy");
  for (int major : {1, 2, 3}) {
    INFO("version " << major);
    write_file(dir.file("x.npy"), npy("|u1", "(2, 3, 2, 1)", images(2, 3, 2, 1), major));
    check_images(open(dir.file("x.npy")), 2, 3, 2, 1);
  }
  // Python 2's long integers, double quotes, other key order, no trailing comma.
  write_file(dir.file("py2.npy"),
             npy_with_header("{\"shape\": (2L, 3L, 2L), \"fortran_order\": False, \"descr\": \"|u1\"}",
                             images(2, 3, 2, 1)));
  check_images(open(dir.file("py2.npy")), 2, 3, 2, 1);
  // A header exactly as small as numpy 1.x writes for short shapes (no padding to 64 needed here).
  const std::string dict = "{'descr': '|u1', 'fortran_order': False, 'shape': (1, 1, 2), }\n";
  write_file(dir.file("tight.npy"), std::string("\x93NUMPY\x01\x00", 8) + char(dict.size()) + std::string(1, '\0') +
                                        dict + std::string("\x05\x06", 2));
  NpySource tight = open(dir.file("tight.npy"));
  Tensor img;
  tight.load(0, img);
  CHECK(int(img.data<std::uint8_t>()[0]) == 5);
  CHECK(int(img.data<std::uint8_t>()[1]) == 6);
}

TEST_CASE("npy: a relative path is taken relative to the pipeline file", "[plugins][npy]") {
  TempDir dir("npy");
  std::filesystem::create_directories(dir.path() / "data");
  write_file(dir.file("data/x.npy"), npy("|u1", "(3, 2, 4, 3)", images(3, 2, 4, 3)));
  contra::Diagnostics d;
  contra::Params p = NpySource::schema().bind({{"images", std::string("data/x.npy"), {dir.file("p.toml"), 4, 10}}},
                                              "source", {dir.file("p.toml"), 3, 1}, d);
  REQUIRE(d.empty());
  check_images(NpySource(p), 3, 2, 4, 3);
}

TEST_CASE("npy: load rejects an index out of range", "[plugins][npy]") {
  TempDir dir("npy");
  write_file(dir.file("x.npy"), npy("|u1", "(3, 2, 2)", images(3, 2, 2, 1)));
  NpySource src = open(dir.file("x.npy"));
  Tensor img;
  CHECK_THROWS_AS(src.load(3, img), DataError);
  CHECK_THROWS_WITH(src.load(3, img), dir.file("x.npy") + ": sample index 3 is out of range for 3 images");
  CHECK_THROWS_WITH(src.load(-1, img), dir.file("x.npy") + ": sample index -1 is out of range for 3 images");
}

TEST_CASE("npy: rejects a missing file, a folder, an empty file", "[plugins][npy]") {
  TempDir dir("npy");
  const std::string x = dir.file("x.npy");
  CHECK_THROWS_AS(open(dir.file("nope.npy")), DataError);
  CHECK(message_of(dir.file("nope.npy")) == dir.file("nope.npy") + ": cannot open: No such file or directory");
  write_file(x, npy("|u1", "(3, 2, 2)", images(3, 2, 2, 1)));
  CHECK(message_of(x, dir.file("nolabels.npy")) ==
        dir.file("nolabels.npy") + ": cannot open: No such file or directory");
  CHECK(message_of(dir.path().string()) == dir.path().string() + ": cannot read: Is a directory");
  write_file(dir.file("empty.npy"), "");
  CHECK(message_of(dir.file("empty.npy")) == dir.file("empty.npy") + ": empty file, expected a .npy array");
  CHECK_THROWS_AS(open(""), contra::ConfigError);
  CHECK_THROWS_WITH(open(""), "npy.images: expected a .npy file of uint8 images, found \"\"");
}

TEST_CASE("npy: rejects a bad magic string", "[plugins][npy]") {
  TempDir dir("npy");
  write_file(dir.file("zip.npy"), std::string("PK\x03\x04\x14\x00\x00\x00", 8));  // an .npz is a zip file
  CHECK(message_of(dir.file("zip.npy")) ==
        dir.file("zip.npy") + ": not a .npy file: it starts with 50 4b 03 04 14 00, expected 93 4e 55 4d 50 59 (\\x93NUMPY)");
  write_file(dir.file("short"), "\x93NUM");
  write_file(dir.file("wrong"), "\x93NUX");
  CHECK(message_of(dir.file("wrong")) ==
        dir.file("wrong") + ": not a .npy file: it starts with 93 4e 55 58, expected 93 4e 55 4d 50 59 (\\x93NUMPY)");
  CHECK(message_of(dir.file("short")) ==
        dir.file("short") + ": truncated: the file ends after 4 bytes, inside the 10-byte .npy header");
}

TEST_CASE("npy: rejects a truncated or oversized header and unknown versions", "[plugins][npy]") {
  TempDir dir("npy");
  const std::string full = npy("|u1", "(3, 2, 2)", images(3, 2, 2, 1));  // 128-byte header + 12 bytes
  write_file(dir.file("a"), full.substr(0, 9));
  CHECK(message_of(dir.file("a")) == dir.file("a") + ": truncated: the file ends after 9 bytes, inside the 10-byte .npy header");
  write_file(dir.file("b"), full.substr(0, 40));
  CHECK(message_of(dir.file("b")) ==
        dir.file("b") + ": truncated: the file ends after 40 bytes, inside the 128-byte .npy header");
  const std::string v2 = npy("|u1", "(3, 2, 2)", images(3, 2, 2, 1), 2);
  write_file(dir.file("c"), v2.substr(0, 11));
  CHECK(message_of(dir.file("c")) == dir.file("c") + ": truncated: the file ends after 11 bytes, inside the 12-byte .npy header");
  std::string v4 = full;
  v4[6] = 4;
  write_file(dir.file("d"), v4);
  CHECK(message_of(dir.file("d")) == dir.file("d") + ": .npy format version 4.0 is not supported; expected 1.0, 2.0 or 3.0");
  std::string huge = v2;
  huge[10] = 0x40;  // header length 0x40xx... bytes
  write_file(dir.file("e"), huge);
  CHECK(message_of(dir.file("e")) == dir.file("e") + ": the .npy preamble declares a header of 4194420 bytes, "
                                                     "expected at most 1048576");
}

TEST_CASE("npy: rejects a malformed header dict", "[plugins][npy]") {
  TempDir dir("npy");
  const std::string f = dir.file("x.npy");
  auto msg = [&](const std::string& dict) {
    write_file(f, npy_with_header(dict, images(3, 2, 2, 1)));
    return message_of(f);
  };
  CHECK(msg("{'descr': '|u1', 'fortran_order': False}") ==
        f + ": malformed .npy header: no 'shape' key in {'descr': '|u1', 'fortran_order': False}");
  CHECK(msg("{'descr': '|u1', 'shape': (3, 2, 2)}") ==
        f + ": malformed .npy header: no 'fortran_order' key in {'descr': '|u1', 'shape': (3, 2, 2)}");
  CHECK(msg("['descr', '|u1']") == f + ": malformed .npy header: expected a dict at character 1 of ['descr', '|u1']");
  CHECK(msg("{'descr': '|u1', 'fortran_order': False, 'shape': (3, 2, 2) ") ==
        f + ": malformed .npy header: expected ',' or '}' at the end of "
            "{'descr': '|u1', 'fortran_order': False, 'shape': (3, 2, 2)");
  CHECK(msg("{'descr': '|u1', 'fortran_order': Nope, 'shape': (3, 2, 2)}") ==
        f + ": malformed .npy header: unexpected 'N' at character 35 of "
            "{'descr': '|u1', 'fortran_order': Nope, 'shape': (3, 2, 2)}");
  CHECK(msg("{'descr': '|u1', 'fortran_order': 0, 'shape': (3, 2, 2)}") ==
        f + ": malformed .npy header: 'fortran_order' is 0, expected True or False");
  CHECK(msg("{'descr': '|u1', 'fortran_order': False, 'shape': [3, 2, 2]}") ==
        f + ": malformed .npy header: 'shape' is [3, 2, 2], expected a tuple of integers");
  CHECK(msg("{'descr': '|u1', 'fortran_order': False, 'shape': (3, -2, 2)}") ==
        f + ": malformed .npy header: 'shape' is (3, -2, 2), expected a tuple of integers of at least 0");
  // A header nesting thousands of levels (a 60 KB file) is refused at the
  // 17th level, before the parser's recursion can overflow the stack.
  const std::string deep = "{'descr': " + std::string(30000, '[') + std::string(30000, ']') + "}";
  CHECK_THAT(msg(deep), Catch::StartsWith(f + ": malformed .npy header: values nested deeper than 16 levels at "
                                              "character 27 of {'descr': [[[[["));
}

TEST_CASE("npy: rejects fortran order", "[plugins][npy]") {
  TempDir dir("npy");
  write_file(dir.file("f.npy"),
             npy_with_header("{'descr': '|u1', 'fortran_order': True, 'shape': (3, 2, 2), }", images(3, 2, 2, 1)));
  CHECK_THROWS_AS(open(dir.file("f.npy")), DataError);
  CHECK(message_of(dir.file("f.npy")) ==
        dir.file("f.npy") + ": fortran_order is True; expected a C-order array (save np.ascontiguousarray(a))");
}

TEST_CASE("npy: rejects image dtypes other than uint8", "[plugins][npy]") {
  TempDir dir("npy");
  const std::string f = dir.file("x.npy");
  write_file(f, npy("<f4", "(3, 2, 2)", std::string(48, '\0')));
  CHECK(message_of(f) == f + ": dtype '<f4' is not supported for images; expected '|u1' (uint8)");
  write_file(f, npy("|i1", "(3, 2, 2)", std::string(12, '\0')));
  CHECK(message_of(f) == f + ": dtype '|i1' is not supported for images; expected '|u1' (uint8)");
  write_file(f, npy_with_header("{'descr': [('r', '|u1'), ('g', '|u1')], 'fortran_order': False, 'shape': (3, 2, 2), }",
                                std::string(24, '\0')));
  CHECK(message_of(f) ==
        f + ": dtype [('r', '|u1'), ('g', '|u1')] is not supported for images; expected '|u1' (uint8)");
}

TEST_CASE("npy: rejects image shapes it cannot read as HWC", "[plugins][npy]") {
  TempDir dir("npy");
  const std::string f = dir.file("x.npy");
  write_file(f, npy("|u1", "(12,)", std::string(12, '\0')));
  CHECK(message_of(f) == f + ": shape (12,) is not supported for images; expected (N, H, W) or (N, H, W, C) (layout \"nhwc\")");
  write_file(f, npy("|u1", "(1, 2, 3, 4, 1)", std::string(24, '\0')));
  CHECK(message_of(f, "", "nchw") ==
        f + ": shape (1, 2, 3, 4, 1) is not supported for images; expected (N, H, W) or (N, C, H, W) (layout \"nchw\")");
  write_file(f, npy("|u1", "(2, 3, 4, 4)", std::string(96, '\0')));
  CHECK(message_of(f) == f + ": shape (2, 3, 4, 4) has 4 channels; expected 1 or 3 in (N, H, W) or (N, H, W, C) "
                             "(layout \"nhwc\"); for (N, C, H, W) data set npy.layout = \"nchw\"");
  write_file(f, npy("|u1", "(2, 4, 4, 3)", std::string(96, '\0')));
  CHECK(message_of(f, "", "nchw") == f + ": shape (2, 4, 4, 3) has 4 channels; expected 1 or 3 in (N, H, W) or "
                                         "(N, C, H, W) (layout \"nchw\"); for (N, H, W, C) data set npy.layout = \"nhwc\"");
  write_file(f, npy("|u1", "(0, 28, 28)", ""));
  CHECK(message_of(f) == f + ": shape (0, 28, 28) holds no pixels; expected at least one image of at least 1x1 pixels");
  write_file(f, npy("|u1", "(1, 100000, 2)", ""));
  CHECK(message_of(f) == f + ": shape (1, 100000, 2) declares images of 100000x2, expected at most 16384 pixels on each side");
}

TEST_CASE("npy: rejects truncated or overlong data, before allocating", "[plugins][npy]") {
  TempDir dir("npy");
  const std::string f = dir.file("x.npy");
  write_file(f, npy("|u1", "(3, 2, 2)", images(3, 2, 2, 1).substr(0, 10)));
  CHECK(message_of(f) == f + ": truncated: the header declares shape (3, 2, 2) of '|u1' (12 bytes of data) but the "
                             "data ends after 10 bytes");
  write_file(f, npy("|u1", "(3, 2, 2)", images(3, 2, 2, 1) + "xyz"));
  CHECK(message_of(f) == f + ": the header declares shape (3, 2, 2) of '|u1' (12 bytes of data) but 3 more bytes "
                             "follow them");
  // 60000 Fashion-MNIST-sized images declared over 1000 bytes: refused from the file size alone.
  write_file(f, npy("|u1", "(60000, 28, 28)", std::string(1000, '\x7f')));
  CHECK(message_of(f) == f + ": truncated: the header declares shape (60000, 28, 28) of '|u1' (47040000 bytes of "
                             "data) but the data ends after 1000 bytes");
  write_file(f, npy("|u1", "(9223372036854775807, 16, 16)", ""));
  CHECK(message_of(f) == f + ": the header declares shape (9223372036854775807, 16, 16) of '|u1', which is too large");
}

TEST_CASE("npy: rejects bad label files", "[plugins][npy]") {
  TempDir dir("npy");
  const std::string x = dir.file("x.npy"), y = dir.file("y.npy");
  write_file(x, npy("|u1", "(3, 2, 2)", images(3, 2, 2, 1)));
  auto msg = [&](const std::string& bytes) {
    write_file(y, bytes);
    return message_of(x, y);
  };
  CHECK(msg(npy("<i8", "(2,)", le<std::int64_t>({1, 2}))) ==
        y + ": shape (2,) holds 2 labels but " + x + " holds 3 images");
  CHECK(msg(npy("<i8", "(3, 1)", le<std::int64_t>({1, 2, 3}))) ==
        y + ": shape (3, 1) is not supported for labels; expected (N,)");
  CHECK(msg(npy("<f8", "(3,)", le<double>({1, 2, 3}))) ==
        y + ": dtype '<f8' is not supported for labels; expected an integer dtype such as '<i8' (int64), '<i4' "
            "(int32) or '|u1' (uint8)");
  CHECK(msg(npy("|b1", "(3,)", "\x01\x00\x01")) ==
        y + ": dtype '|b1' is not supported for labels; expected an integer dtype such as '<i8' (int64), '<i4' "
            "(int32) or '|u1' (uint8)");
  CHECK(msg(npy(">i8", "(3,)", std::string(24, '\0'))) ==
        y + ": dtype '>i8' is big-endian; expected little-endian ('<i8'): save arr.astype('<i8')");
  CHECK(msg(npy("<i4", "(3,)", le<std::int32_t>({1, -1, 2}))) ==
        y + ": label -1 at index 1 (byte offset 132) is out of range, expected 0 to 2147483647");
  CHECK(msg(npy("<u8", "(3,)", le<std::uint64_t>({1, 2, 18446744073709551615ull}))) ==
        y + ": label 18446744073709551615 at index 2 (byte offset 144) is out of range, expected 0 to 2147483647");
  CHECK(msg(npy("<i8", "(3,)", le<std::int64_t>({1, 2}))) ==
        y + ": truncated: the header declares shape (3,) of '<i8' (24 bytes of data) but the data ends after 16 bytes");
  CHECK(msg("") == y + ": empty file, expected a .npy array");
  write_file(y, npy_with_header("{'descr': '<i8', 'fortran_order': True, 'shape': (3,), }", le<std::int64_t>({1, 2, 3})));
  CHECK(message_of(x, y) == y + ": fortran_order is True; expected a C-order array (save np.ascontiguousarray(a))");
}
