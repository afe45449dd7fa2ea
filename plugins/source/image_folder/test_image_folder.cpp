#include "image_folder.hpp"

#include <test_support.hpp>

#include <png.h>
#include <zlib.h>

#include <cstdio>  // before jpeglib.h
#include <jpeglib.h>

#include <csetjmp>
#include <cstring>
#include <filesystem>
#include <thread>

using contra::DataError;
using contra::Tensor;
using contra::plugins::ImageFolderSource;
using contra::test::TempDir;
using contra::test::write_file;
namespace fs = std::filesystem;

namespace {

// ---------------------------------------------------------------------------
// Writing test images with libpng and libjpeg.

struct PngSpec {
  int width = 0, height = 0;
  int color = PNG_COLOR_TYPE_GRAY;
  int depth = 8;
  std::vector<std::uint8_t> rows;  // bytes exactly as PNG stores them, row after row
  std::vector<png_color> palette;
  std::vector<std::uint8_t> trns;  // palette alpha
  bool interlace = false;
};

void write_png(const std::string& path, const PngSpec& s) {
  std::FILE* f = std::fopen(path.c_str(), "wb");
  REQUIRE(f != nullptr);
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
  png_infop info = png_create_info_struct(png);
  bool ok = false;
  if (!setjmp(png_jmpbuf(png))) {
    png_init_io(png, f);
    png_set_IHDR(png, info, static_cast<png_uint_32>(s.width), static_cast<png_uint_32>(s.height), s.depth, s.color,
                 s.interlace ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
                 PNG_FILTER_TYPE_DEFAULT);
    if (!s.palette.empty()) png_set_PLTE(png, info, s.palette.data(), static_cast<int>(s.palette.size()));
    if (!s.trns.empty()) png_set_tRNS(png, info, s.trns.data(), static_cast<int>(s.trns.size()), nullptr);
    png_write_info(png, info);
    const std::size_t stride = s.rows.size() / static_cast<std::size_t>(s.height);
    std::vector<png_bytep> rows;
    for (int y = 0; y < s.height; ++y) rows.push_back(const_cast<png_bytep>(s.rows.data()) + y * stride);
    png_write_image(png, rows.data());
    png_write_end(png, nullptr);
    ok = true;
  }
  png_destroy_write_struct(&png, &info);
  std::fclose(f);
  REQUIRE(ok);
}

// Distinct values per image, row, column and channel.
std::uint8_t pattern(int image, int x, int y, int c) {
  return static_cast<std::uint8_t>((image * 53 + x * 37 + y * 11 + c * 89) & 0xff);
}

std::vector<std::uint8_t> pixels(int image, int w, int h, int c) {
  std::vector<std::uint8_t> v;
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int k = 0; k < c; ++k) v.push_back(pattern(image, x, y, k));
  return v;
}

PngSpec gray_png(int image, int w, int h) {
  PngSpec s;
  s.width = w;
  s.height = h;
  s.rows = pixels(image, w, h, 1);
  return s;
}

PngSpec rgb_png(int image, int w, int h) {
  PngSpec s;
  s.width = w;
  s.height = h;
  s.color = PNG_COLOR_TYPE_RGB;
  s.rows = pixels(image, w, h, 3);
  return s;
}

std::vector<std::uint8_t> drop_alpha(const std::vector<std::uint8_t>& px, int c) {
  std::vector<std::uint8_t> out;
  for (std::size_t i = 0; i < px.size(); i += static_cast<std::size_t>(c))
    for (int k = 0; k < c - 1; ++k) out.push_back(px[i + static_cast<std::size_t>(k)]);
  return out;
}

std::uint8_t luma(unsigned r, unsigned g, unsigned b) {
  return static_cast<std::uint8_t>((r * 19595u + g * 38470u + b * 7471u + 0x8000u) >> 16);
}

std::vector<std::uint8_t> to_gray(const std::vector<std::uint8_t>& rgb) {
  std::vector<std::uint8_t> out;
  for (std::size_t i = 0; i < rgb.size(); i += 3) out.push_back(luma(rgb[i], rgb[i + 1], rgb[i + 2]));
  return out;
}

std::vector<std::uint8_t> to_rgb(const std::vector<std::uint8_t>& gray) {
  std::vector<std::uint8_t> out;
  for (auto v : gray) out.insert(out.end(), {v, v, v});
  return out;
}

void write_jpeg(const std::string& path, int w, int h, int comps, J_COLOR_SPACE space,
                const std::vector<std::uint8_t>& px, int quality = 95, bool progressive = false) {
  std::FILE* f = std::fopen(path.c_str(), "wb");
  REQUIRE(f != nullptr);
  jpeg_compress_struct c{};
  jpeg_error_mgr err{};
  c.err = jpeg_std_error(&err);
  jpeg_create_compress(&c);
  jpeg_stdio_dest(&c, f);
  c.image_width = static_cast<JDIMENSION>(w);
  c.image_height = static_cast<JDIMENSION>(h);
  c.input_components = comps;
  c.in_color_space = space;
  jpeg_set_defaults(&c);
  jpeg_set_quality(&c, quality, TRUE);
  for (int i = 0; i < c.num_components; ++i) c.comp_info[i].h_samp_factor = c.comp_info[i].v_samp_factor = 1;
  if (progressive) jpeg_simple_progression(&c);
  jpeg_start_compress(&c, TRUE);
  while (c.next_scanline < c.image_height) {
    JSAMPROW row = const_cast<JSAMPROW>(px.data()) + c.next_scanline * static_cast<std::size_t>(w * comps);
    jpeg_write_scanlines(&c, &row, 1);
  }
  jpeg_finish_compress(&c);
  jpeg_destroy_compress(&c);
  std::fclose(f);
}

// The reference: the same file decoded by libjpeg here, to `space`.
std::vector<std::uint8_t> jpeg_reference(const std::string& path, J_COLOR_SPACE space) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  REQUIRE(f != nullptr);
  jpeg_decompress_struct d{};
  jpeg_error_mgr err{};
  d.err = jpeg_std_error(&err);
  jpeg_create_decompress(&d);
  jpeg_stdio_src(&d, f);
  jpeg_read_header(&d, TRUE);
  d.out_color_space = space;
  jpeg_start_decompress(&d);
  std::vector<std::uint8_t> out(static_cast<std::size_t>(d.output_width) * d.output_height * d.output_components);
  while (d.output_scanline < d.output_height) {
    JSAMPROW row = out.data() + d.output_scanline * static_cast<std::size_t>(d.output_width * d.output_components);
    jpeg_read_scanlines(&d, &row, 1);
  }
  jpeg_finish_decompress(&d);
  jpeg_destroy_decompress(&d);
  std::fclose(f);
  return out;
}

// ---------------------------------------------------------------------------

ImageFolderSource open(const std::string& folder, std::vector<contra::RawParam> extra = {}) {
  extra.push_back({"folder", folder, {}});
  contra::Diagnostics d;
  contra::Params p = ImageFolderSource::schema().bind(extra, "source", {}, d);
  if (!d.empty()) throw contra::ConfigError(contra::format_diagnostics(d));
  return ImageFolderSource(p);
}

contra::RawParam param(const std::string& key, contra::Value v) { return {key, std::move(v), {}}; }

std::vector<std::uint8_t> bytes_of(const Tensor& t) {
  const std::uint8_t* p = t.data<std::uint8_t>();
  return std::vector<std::uint8_t>(p, p + t.numel());
}

std::vector<std::uint8_t> load(const ImageFolderSource& src, std::int64_t i, contra::Shape want,
                               std::int64_t* label = nullptr) {
  Tensor img;
  std::int64_t l = src.load(i, img);
  if (label) *label = l;
  REQUIRE(img.shape() == want);
  REQUIRE(img.dtype() == contra::DType::u8);
  return bytes_of(img);
}

int max_diff(const std::vector<std::uint8_t>& a, const std::vector<std::uint8_t>& b) {
  REQUIRE(a.size() == b.size());
  int m = 0;
  for (std::size_t i = 0; i < a.size(); ++i) m = std::max(m, std::abs(int(a[i]) - int(b[i])));
  return m;
}

void mkdir(const TempDir& dir, const std::string& sub) { fs::create_directories(dir.path() / sub); }

// Independent reference for `size`: antialiased bilinear (a triangle filter
// widened by the reduction factor, pixel centres at +0.5), separable, in
// double precision.
std::vector<double> weights_1d(int in, int out, int o, int& first) {
  const double scale = double(in) / out, fs = std::max(scale, 1.0);
  const double center = (o + 0.5) * scale;
  std::vector<double> w;
  first = std::max(0, int(center - fs + 0.5));
  int last = std::min(in, int(center + fs + 0.5));
  double sum = 0;
  for (int x = first; x < last; ++x) {
    double t = std::abs((x + 0.5 - center) / fs);
    w.push_back(t < 1 ? 1 - t : 0);
    sum += w.back();
  }
  for (auto& v : w) v /= sum;
  return w;
}

std::vector<double> reference_resize(const std::vector<std::uint8_t>& px, int w, int h, int c, int ow, int oh) {
  std::vector<double> tmp(static_cast<std::size_t>(h * ow * c)), out(static_cast<std::size_t>(oh * ow * c));
  for (int y = 0; y < h; ++y)
    for (int xx = 0; xx < ow; ++xx) {
      int first;
      auto wt = weights_1d(w, ow, xx, first);
      for (int k = 0; k < c; ++k) {
        double s = 0;
        for (std::size_t t = 0; t < wt.size(); ++t) s += wt[t] * px[((y * w) + first + int(t)) * c + k];
        tmp[static_cast<std::size_t>((y * ow + xx) * c + k)] = s;
      }
    }
  for (int yy = 0; yy < oh; ++yy) {
    int first;
    auto wt = weights_1d(h, oh, yy, first);
    for (int i = 0; i < ow * c; ++i) {
      double s = 0;
      for (std::size_t t = 0; t < wt.size(); ++t) s += wt[t] * tmp[static_cast<std::size_t>((first + int(t)) * ow * c + i)];
      out[static_cast<std::size_t>(yy * ow * c + i)] = s;
    }
  }
  return out;
}

double max_diff(const std::vector<std::uint8_t>& a, const std::vector<double>& b) {
  REQUIRE(a.size() == b.size());
  double m = 0;
  for (std::size_t i = 0; i < a.size(); ++i) m = std::max(m, std::abs(a[i] - b[i]));
  return m;
}

}  // namespace

TEST_CASE("image_folder: schema is well formed", "[plugins][image_folder]") {
  CHECK_NOTHROW(ImageFolderSource::schema().check_well_formed());
  CHECK(ImageFolderSource::schema().name() == "image_folder");
}

TEST_CASE("image_folder: classes are the sub-folders in name order, files sorted by path within each",
          "[plugins][image_folder]") {
  TempDir dir("imgf");
  for (const char* c : {"zebra", "ant", "cat/sub"}) mkdir(dir, c);
  // Written out of order; image number = expected index.
  write_png(dir.file("cat/b.png"), gray_png(2, 3, 2));
  write_png(dir.file("zebra/z.png"), gray_png(4, 3, 2));
  write_png(dir.file("ant/only.png"), gray_png(0, 3, 2));
  write_png(dir.file("cat/sub/c.png"), gray_png(3, 3, 2));
  write_png(dir.file("cat/a.png"), gray_png(1, 3, 2));
  ImageFolderSource src = open(dir.path().string());
  auto info = src.info();
  CHECK(info.size == 5);
  CHECK(info.shape == contra::ImageShape{2, 3, 1});
  CHECK(info.num_classes == 3);
  CHECK(src.classes() == std::vector<std::string>{"ant", "cat", "zebra"});
  CHECK(src.files() == std::vector<std::string>{dir.file("ant/only.png"), dir.file("cat/a.png"), dir.file("cat/b.png"),
                                                dir.file("cat/sub/c.png"), dir.file("zebra/z.png")});
  CHECK(src.labels() == std::vector<std::int64_t>{0, 1, 1, 1, 2});
  const std::int64_t want_labels[5] = {0, 1, 1, 1, 2};
  for (int i = 0; i < 5; ++i) {
    std::int64_t label = -2;
    CHECK(load(src, i, {2, 3, 1}, &label) == pixels(i, 3, 2, 1));
    CHECK(label == want_labels[i]);
  }
  CHECK(src.concurrency() == contra::Concurrency::parallel);
}

TEST_CASE("image_folder: PNG colour types round trip exactly", "[plugins][image_folder]") {
  TempDir dir("imgf");
  mkdir(dir, "c");
  const std::string f = dir.file("c/x.png");

  SECTION("RGB") {
    write_png(f, rgb_png(7, 5, 4));
    ImageFolderSource src = open(dir.path().string());
    CHECK(src.info().shape == contra::ImageShape{4, 5, 3});
    CHECK(load(src, 0, {4, 5, 3}) == pixels(7, 5, 4, 3));
  }
  SECTION("RGBA drops alpha") {
    PngSpec s = rgb_png(0, 5, 4);
    s.color = PNG_COLOR_TYPE_RGBA;
    s.rows = pixels(7, 5, 4, 4);
    write_png(f, s);
    ImageFolderSource src = open(dir.path().string());
    CHECK(src.info().shape == contra::ImageShape{4, 5, 3});
    CHECK(load(src, 0, {4, 5, 3}) == drop_alpha(pixels(7, 5, 4, 4), 4));
  }
  SECTION("gray + alpha drops alpha") {
    PngSpec s = gray_png(0, 5, 4);
    s.color = PNG_COLOR_TYPE_GRAY_ALPHA;
    s.rows = pixels(3, 5, 4, 2);
    write_png(f, s);
    ImageFolderSource src = open(dir.path().string());
    CHECK(src.info().shape == contra::ImageShape{4, 5, 1});
    CHECK(load(src, 0, {4, 5, 1}) == drop_alpha(pixels(3, 5, 4, 2), 2));
  }
  SECTION("palette with transparency expands to RGB") {
    PngSpec s;
    s.width = 4;
    s.height = 3;
    s.color = PNG_COLOR_TYPE_PALETTE;
    s.palette = {{10, 20, 30}, {200, 100, 0}, {1, 2, 3}, {255, 255, 255}};
    s.trns = {0, 128};
    std::vector<std::uint8_t> want;
    for (int i = 0; i < 12; ++i) {
      const int idx = (i * 7) % 4;
      s.rows.push_back(static_cast<std::uint8_t>(idx));
      want.insert(want.end(), {s.palette[idx].red, s.palette[idx].green, s.palette[idx].blue});
    }
    write_png(f, s);
    ImageFolderSource src = open(dir.path().string());
    CHECK(src.info().shape == contra::ImageShape{3, 4, 3});
    CHECK(load(src, 0, {3, 4, 3}) == want);
    ImageFolderSource gray = open(dir.path().string(), {param("channels", std::int64_t{1})});
    CHECK(load(gray, 0, {3, 4, 1}) == to_gray(want));
  }
  SECTION("16-bit keeps the high byte") {
    PngSpec s = rgb_png(0, 3, 2);
    s.depth = 16;
    s.rows.clear();
    std::vector<std::uint8_t> want = pixels(5, 3, 2, 3);
    for (auto v : want) s.rows.insert(s.rows.end(), {v, static_cast<std::uint8_t>(255 - v)});  // big-endian
    write_png(f, s);
    ImageFolderSource src = open(dir.path().string());
    CHECK(load(src, 0, {2, 3, 3}) == want);
  }
  SECTION("1-bit gray expands to 0 and 255") {
    PngSpec s = gray_png(0, 8, 2);
    s.depth = 1;
    s.rows = {0b10110001, 0b01001110};
    write_png(f, s);
    ImageFolderSource src = open(dir.path().string());
    std::vector<std::uint8_t> want;
    for (std::uint8_t row : s.rows)
      for (int b = 7; b >= 0; --b) want.push_back((row >> b) & 1 ? 255 : 0);
    CHECK(load(src, 0, {2, 8, 1}) == want);
  }
  SECTION("interlaced (Adam7)") {
    PngSpec s = rgb_png(9, 13, 11);
    s.interlace = true;
    write_png(f, s);
    ImageFolderSource src = open(dir.path().string());
    CHECK(load(src, 0, {11, 13, 3}) == pixels(9, 13, 11, 3));
    ImageFolderSource gray = open(dir.path().string(), {param("channels", std::int64_t{1})});
    CHECK(load(gray, 0, {11, 13, 1}) == to_gray(pixels(9, 13, 11, 3)));
  }
}

TEST_CASE("image_folder: channels converts gray and RGB, 0 takes the first image's", "[plugins][image_folder]") {
  TempDir dir("imgf");
  mkdir(dir, "a");
  write_png(dir.file("a/1.png"), gray_png(1, 4, 3));
  write_png(dir.file("a/2.png"), rgb_png(2, 4, 3));

  ImageFolderSource as_first = open(dir.path().string());  // the first is gray
  CHECK(as_first.info().shape == contra::ImageShape{3, 4, 1});
  CHECK(load(as_first, 0, {3, 4, 1}) == pixels(1, 4, 3, 1));
  CHECK(load(as_first, 1, {3, 4, 1}) == to_gray(pixels(2, 4, 3, 3)));

  ImageFolderSource rgb = open(dir.path().string(), {param("channels", std::int64_t{3})});
  CHECK(rgb.info().shape == contra::ImageShape{3, 4, 3});
  CHECK(load(rgb, 0, {3, 4, 3}) == to_rgb(pixels(1, 4, 3, 1)));
  CHECK(load(rgb, 1, {3, 4, 3}) == pixels(2, 4, 3, 3));

  // Pillow's convert("L") on a few known colours.
  CHECK(luma(255, 0, 0) == 76);
  CHECK(luma(0, 255, 0) == 150);
  CHECK(luma(0, 0, 255) == 29);
  CHECK(luma(255, 255, 255) == 255);
}

TEST_CASE("image_folder: JPEG decodes as libjpeg does, close to the encoded pixels", "[plugins][image_folder]") {
  TempDir dir("imgf");
  mkdir(dir, "c");
  const std::string f = dir.file("c/x.jpg");
  // A smooth image, so that quality 100 without subsampling keeps it close.
  std::vector<std::uint8_t> rgb;
  for (int y = 0; y < 12; ++y)
    for (int x = 0; x < 16; ++x) rgb.insert(rgb.end(), {std::uint8_t(x * 15), std::uint8_t(y * 20), std::uint8_t(120)});

  SECTION("RGB, baseline and progressive") {
    const bool progressive = GENERATE(false, true);
    write_jpeg(f, 16, 12, 3, JCS_RGB, rgb, 100, progressive);
    ImageFolderSource src = open(dir.path().string());
    CHECK(src.info().shape == contra::ImageShape{12, 16, 3});
    auto got = load(src, 0, {12, 16, 3});
    CHECK(got == jpeg_reference(f, JCS_RGB));
    CHECK(max_diff(got, rgb) <= 4);
    ImageFolderSource gray = open(dir.path().string(), {param("channels", std::int64_t{1})});
    CHECK(load(gray, 0, {12, 16, 1}) == to_gray(jpeg_reference(f, JCS_RGB)));
  }
  SECTION("gray") {
    std::vector<std::uint8_t> g = to_gray(rgb);
    write_jpeg(f, 16, 12, 1, JCS_GRAYSCALE, g, 100);
    ImageFolderSource src = open(dir.path().string());
    CHECK(src.info().shape == contra::ImageShape{12, 16, 1});
    auto got = load(src, 0, {12, 16, 1});
    CHECK(got == jpeg_reference(f, JCS_GRAYSCALE));
    CHECK(max_diff(got, g) <= 2);
    ImageFolderSource as_rgb = open(dir.path().string(), {param("channels", std::int64_t{3})});
    CHECK(load(as_rgb, 0, {12, 16, 3}) == to_rgb(jpeg_reference(f, JCS_GRAYSCALE)));
  }
  SECTION("CMYK as Adobe writes it (inverted) becomes RGB as Pillow converts it") {
    std::vector<std::uint8_t> cmyk;
    for (int i = 0; i < 16 * 12; ++i)
      cmyk.insert(cmyk.end(), {std::uint8_t(i), std::uint8_t(255 - i), std::uint8_t(i * 3), std::uint8_t(200)});
    write_jpeg(f, 16, 12, 4, JCS_CMYK, cmyk, 100);  // libjpeg writes an Adobe marker for CMYK
    ImageFolderSource src = open(dir.path().string());
    CHECK(src.info().shape == contra::ImageShape{12, 16, 3});
    auto ref = jpeg_reference(f, JCS_CMYK);
    std::vector<std::uint8_t> want;
    for (std::size_t i = 0; i < ref.size(); i += 4) {
      const int nk = ref[i + 3];  // inverted: the stored value is 255 - k
      for (int c = 0; c < 3; ++c) {
        const int t = (255 - ref[i + c]) * nk + 128;
        want.push_back(static_cast<std::uint8_t>(nk - (((t >> 8) + t) >> 8)));
      }
    }
    CHECK(load(src, 0, {12, 16, 3}) == want);
  }
}

TEST_CASE("image_folder: PNG and JPEG files mix in one source", "[plugins][image_folder]") {
  TempDir dir("imgf");
  mkdir(dir, "a");
  mkdir(dir, "b");
  write_png(dir.file("a/1.PNG"), rgb_png(1, 8, 8));  // extensions match case-insensitively
  std::vector<std::uint8_t> rgb = pixels(2, 8, 8, 3);
  write_jpeg(dir.file("b/2.JPeG"), 8, 8, 3, JCS_RGB, rgb, 90);
  ImageFolderSource src = open(dir.path().string());
  CHECK(src.info().size == 2);
  std::int64_t label = -1;
  CHECK(load(src, 0, {8, 8, 3}, &label) == pixels(1, 8, 8, 3));
  CHECK(label == 0);
  CHECK(load(src, 1, {8, 8, 3}, &label) == jpeg_reference(dir.file("b/2.JPeG"), JCS_RGB));
  CHECK(label == 1);
}

TEST_CASE("image_folder: extensions selects what the scan takes", "[plugins][image_folder]") {
  TempDir dir("imgf");
  mkdir(dir, "a");
  write_png(dir.file("a/1.png"), gray_png(1, 4, 4));
  write_jpeg(dir.file("a/2.jpg"), 4, 4, 1, JCS_GRAYSCALE, pixels(2, 4, 4, 1));
  write_file(dir.file("a/notes.txt"), "not an image");
  CHECK(open(dir.path().string()).info().size == 2);
  ImageFolderSource png_only = open(dir.path().string(), {param("extensions", std::vector<std::string>{".PNG"})});
  CHECK(png_only.files() == std::vector<std::string>{dir.file("a/1.png")});
  CHECK_THROWS_AS(open(dir.path().string(), {param("extensions", std::vector<std::string>{"png"})}),
                  contra::ConfigError);
  CHECK_THROWS_WITH(open(dir.path().string(), {param("extensions", std::vector<std::string>{".png", "jpg"})}),
                    "source.extensions[1] = \"jpg\": expected a file name ending that starts with '.', e.g. \".png\"");
}

TEST_CASE("image_folder: hidden files and folders are skipped", "[plugins][image_folder]") {
  TempDir dir("imgf");
  mkdir(dir, "a/.cache");
  mkdir(dir, ".ipynb_checkpoints");
  write_png(dir.file("a/1.png"), gray_png(1, 4, 4));
  write_png(dir.file("a/.2.png"), gray_png(2, 4, 4));
  write_png(dir.file("a/.cache/3.png"), gray_png(3, 4, 4));
  ImageFolderSource src = open(dir.path().string());
  CHECK(src.classes() == std::vector<std::string>{"a"});
  CHECK(src.files() == std::vector<std::string>{dir.file("a/1.png")});
}

TEST_CASE("image_folder: size resizes with antialiased bilinear", "[plugins][image_folder]") {
  TempDir dir("imgf");
  mkdir(dir, "a");

  SECTION("2x2 up to 4x4: pixel centres interpolate, edges clamp") {
    PngSpec s = gray_png(0, 2, 2);
    s.rows = {0, 200, 0, 200};
    write_png(dir.file("a/x.png"), s);
    ImageFolderSource src = open(dir.path().string(), {param("size", std::int64_t{4})});
    CHECK(src.info().shape == contra::ImageShape{4, 4, 1});
    const std::vector<std::uint8_t> want = {0, 50, 150, 200, 0, 50, 150, 200, 0, 50, 150, 200, 0, 50, 150, 200};
    CHECK(load(src, 0, {4, 4, 1}) == want);
  }
  SECTION("the image's own size is an exact copy") {
    write_png(dir.file("a/x.png"), rgb_png(3, 6, 6));
    ImageFolderSource src = open(dir.path().string(), {param("size", std::int64_t{6})});
    CHECK(load(src, 0, {6, 6, 3}) == pixels(3, 6, 6, 3));
  }
  SECTION("a constant image stays constant") {
    PngSpec s = rgb_png(0, 13, 7);
    std::fill(s.rows.begin(), s.rows.end(), std::uint8_t(77));
    write_png(dir.file("a/x.png"), s);
    ImageFolderSource src = open(dir.path().string(), {param("size", std::int64_t{3})});
    CHECK(load(src, 0, {3, 3, 3}) == std::vector<std::uint8_t>(27, 77));
  }
  SECTION("down and up match a double-precision reference within 1") {
    write_png(dir.file("a/1.png"), rgb_png(1, 23, 17));
    write_png(dir.file("a/2.png"), rgb_png(2, 4, 5));
    for (std::int64_t size : {5, 9, 31}) {
      ImageFolderSource src = open(dir.path().string(), {param("size", size)});
      const int n = static_cast<int>(size);
      CHECK(max_diff(load(src, 0, {size, size, 3}), reference_resize(pixels(1, 23, 17, 3), 23, 17, 3, n, n)) <= 1.0);
      CHECK(max_diff(load(src, 1, {size, size, 3}), reference_resize(pixels(2, 4, 5, 3), 4, 5, 3, n, n)) <= 1.0);
    }
  }
  SECTION("resize after channel conversion, and for JPEG and interlaced PNG too") {
    write_jpeg(dir.file("a/1.jpg"), 20, 10, 3, JCS_RGB, pixels(1, 20, 10, 3), 90);
    PngSpec s = rgb_png(2, 9, 14);
    s.interlace = true;
    write_png(dir.file("a/2.png"), s);
    ImageFolderSource src = open(dir.path().string(), {param("size", std::int64_t{6}), param("channels", std::int64_t{1})});
    CHECK(src.info().shape == contra::ImageShape{6, 6, 1});
    CHECK(max_diff(load(src, 0, {6, 6, 1}),
                   reference_resize(to_gray(jpeg_reference(dir.file("a/1.jpg"), JCS_RGB)), 20, 10, 1, 6, 6)) <= 1.0);
    CHECK(max_diff(load(src, 1, {6, 6, 1}), reference_resize(to_gray(pixels(2, 9, 14, 3)), 9, 14, 1, 6, 6)) <= 1.0);
  }
}

TEST_CASE("image_folder: images of different sizes need size", "[plugins][image_folder]") {
  TempDir dir("imgf");
  mkdir(dir, "a");
  mkdir(dir, "b");
  write_png(dir.file("a/1.png"), gray_png(1, 4, 3));
  write_png(dir.file("a/2.png"), gray_png(2, 4, 3));
  write_jpeg(dir.file("b/3.jpg"), 5, 3, 1, JCS_GRAYSCALE, pixels(3, 5, 3, 1));
  CHECK_THROWS_AS(open(dir.path().string()), DataError);
  CHECK_THROWS_WITH(open(dir.path().string()),
                    dir.file("b/3.jpg") + ": sample 2: 5x3 pixels (width x height), but the first image, " +
                        dir.file("a/1.png") +
                        ", is 4x3; a source reports one shape, so set source.size to resize every image to size x size");
  ImageFolderSource src = open(dir.path().string(), {param("size", std::int64_t{8})});
  CHECK(src.info().shape == contra::ImageShape{8, 8, 1});
  for (int i = 0; i < 3; ++i) load(src, i, {8, 8, 1});

  // A file that changes size after the source was built is caught in load().
  fs::remove_all(dir.path() / "b");
  ImageFolderSource same = open(dir.path().string());
  write_png(dir.file("a/2.png"), gray_png(2, 4, 5));
  Tensor img;
  CHECK_THROWS_WITH(same.load(1, img), dir.file("a/2.png") +
                    ": sample 1: 4x5 pixels (width x height), but the source reports 4x3 for every image (the file "
                    "changed after the source was built?); set source.size to resize every image");
}

TEST_CASE("image_folder: files lists images in its own order, classes still from the folder",
          "[plugins][image_folder]") {
  TempDir dir("imgf");
  for (const char* c : {"a", "b", "c"}) mkdir(dir, c);
  write_png(dir.file("a/1.png"), gray_png(1, 2, 2));
  write_png(dir.file("b/2.png"), gray_png(2, 2, 2));
  write_png(dir.file("c/3.png"), gray_png(3, 2, 2));
  write_png(dir.file("c/4.data"), gray_png(4, 2, 2));  // a list is taken as written, whatever the ending
  write_file(dir.file("list.txt"), "c/3.png\r\n\n  ./b/2.png \nc//4.data\n");
  ImageFolderSource src = open(dir.path().string(), {param("files", dir.file("list.txt"))});
  CHECK(src.info().size == 3);
  CHECK(src.info().num_classes == 3);
  CHECK(src.labels() == std::vector<std::int64_t>{2, 1, 2});
  CHECK(src.files() == std::vector<std::string>{dir.file("c/3.png"), dir.file("b/2.png"), dir.file("c/4.data")});
  CHECK(load(src, 0, {2, 2, 1}) == pixels(3, 2, 2, 1));
  CHECK(load(src, 1, {2, 2, 1}) == pixels(2, 2, 2, 1));
  CHECK(load(src, 2, {2, 2, 1}) == pixels(4, 2, 2, 1));

  auto with_list = [&](const std::string& text) {
    write_file(dir.file("bad.txt"), text);
    return open(dir.path().string(), {param("files", dir.file("bad.txt"))});
  };
  const std::string list = dir.file("bad.txt");
  CHECK_THROWS_AS(with_list("a/1.png\nb/nope.png\n"), DataError);
  CHECK_THROWS_WITH(with_list("a/1.png\nb/nope.png\n"),
                    list + ":2: " + dir.file("b/nope.png") + ": cannot open: No such file or directory");
  CHECK_THROWS_WITH(with_list("/etc/passwd\n"),
                    list + ":1: '/etc/passwd' is an absolute path, expected a path relative to " + dir.path().string());
  CHECK_THROWS_WITH(with_list("\n\nlist.txt\n"),
                    list + ":3: 'list.txt' has no class folder; expected <class>/<file>, relative to " +
                        dir.path().string());
  CHECK_THROWS_WITH(with_list("a/../../x.png\n"),
                    list + ":1: 'a/../../x.png' leaves the folder; expected <class>/<file> inside " + dir.path().string());
  CHECK_THROWS_WITH(with_list("a/1.png\nb/2.png\n./a/1.png\n"),
                    list + ":3: './a/1.png' is listed twice (first at line 1)");
  CHECK_THROWS_WITH(with_list("a\n"), list + ":1: 'a' has no class folder; expected <class>/<file>, relative to " +
                                          dir.path().string());
  CHECK_THROWS_WITH(with_list("a/\n"), list + ":1: 'a/' has no class folder; expected <class>/<file>, relative to " +
                                           dir.path().string());
  CHECK_THROWS_WITH(with_list("a/1.png/\n"), list + ":1: " + dir.file("a/1.png/") + ": cannot open: Not a directory");
  CHECK_THROWS_WITH(with_list("\n \n"),
                    list + ": lists no files; expected one image path per line, relative to " + dir.path().string());
  CHECK_THROWS_WITH(open(dir.path().string(), {param("files", dir.file("nope.txt"))}),
                    dir.file("nope.txt") + ": cannot open: No such file or directory");
}

TEST_CASE("image_folder: a relative folder is taken relative to the pipeline file", "[plugins][image_folder]") {
  TempDir dir("imgf");
  mkdir(dir, "data/a");
  write_png(dir.file("data/a/1.png"), gray_png(1, 2, 2));
  write_file(dir.file("data/list.txt"), "a/1.png\n");
  contra::Diagnostics d;
  contra::Params p = ImageFolderSource::schema().bind(
      {{"folder", std::string("data"), {dir.file("p.toml"), 4, 10}},
       {"files", std::string("data/list.txt"), {dir.file("p.toml"), 5, 9}}},
      "source", {dir.file("p.toml"), 3, 1}, d);
  REQUIRE(d.empty());
  ImageFolderSource src(p);
  CHECK(src.files() == std::vector<std::string>{dir.file("data/a/1.png")});
  CHECK(load(src, 0, {2, 2, 1}) == pixels(1, 2, 2, 1));
}

TEST_CASE("image_folder: loading is thread-safe and gives the same pixels on every thread",
          "[plugins][image_folder]") {
  TempDir dir("imgf");
  mkdir(dir, "a");
  mkdir(dir, "b");
  for (int i = 0; i < 6; ++i) {
    write_png(dir.file("a/" + std::to_string(i) + ".png"), rgb_png(i, 31, 23));
    write_jpeg(dir.file("b/" + std::to_string(i) + ".jpg"), 40, 30, 3, JCS_RGB, pixels(10 + i, 40, 30, 3));
  }
  ImageFolderSource src = open(dir.path().string(), {param("size", std::int64_t{16})});
  std::vector<std::vector<std::uint8_t>> serial;
  for (int i = 0; i < 12; ++i) serial.push_back(load(src, i, {16, 16, 3}));
  std::vector<int> mismatches(4, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      Tensor img;
      for (int round = 0; round < 5; ++round)
        for (int i = 0; i < 12; ++i) {
          const int k = (i * 5 + t + round) % 12;
          src.load(k, img);
          if (bytes_of(img) != serial[static_cast<std::size_t>(k)]) ++mismatches[static_cast<std::size_t>(t)];
        }
    });
  for (auto& th : threads) th.join();
  CHECK(mismatches == std::vector<int>(4, 0));
}

TEST_CASE("image_folder: load rejects an index out of range", "[plugins][image_folder]") {
  TempDir dir("imgf");
  mkdir(dir, "a");
  write_png(dir.file("a/1.png"), gray_png(1, 2, 2));
  ImageFolderSource src = open(dir.path().string());
  Tensor img;
  CHECK_THROWS_AS(src.load(1, img), DataError);
  CHECK_THROWS_WITH(src.load(1, img), dir.path().string() + ": sample index 1 is out of range for 1 image");
  CHECK_THROWS_WITH(src.load(-1, img), dir.path().string() + ": sample index -1 is out of range for 1 image");
}

TEST_CASE("image_folder: a corrupt or truncated file is a DataError naming it, not a crash",
          "[plugins][image_folder]") {
  TempDir dir("imgf");
  mkdir(dir, "a");
  // The first image fixes the shape; size is set, so only its header is read
  // when the source is built, and the others fail in load().
  write_png(dir.file("a/0.png"), rgb_png(0, 16, 16));
  write_png(dir.file("a/ok.png"), rgb_png(1, 16, 16));
  write_jpeg(dir.file("a/ok.jpg"), 16, 16, 3, JCS_RGB, pixels(2, 16, 16, 3));
  const std::string png = contra::test::read_file(dir.file("a/ok.png"));
  const std::string jpg = contra::test::read_file(dir.file("a/ok.jpg"));
  const std::size_t idat = png.find("IDAT");
  REQUIRE(idat != std::string::npos);

  const std::uint32_t len = (std::uint8_t(png[idat - 4]) << 24) | (std::uint8_t(png[idat - 3]) << 16) |
                            (std::uint8_t(png[idat - 2]) << 8) | std::uint8_t(png[idat - 1]);
  std::string crc = png;
  crc[idat + 4 + len] = static_cast<char>(crc[idat + 4 + len] ^ 0x55);  // the chunk's CRC itself
  write_file(dir.file("a/1_crc.png"), crc);

  // Garbage zlib data with a correct CRC, so that inflate itself fails.
  std::string zlib_bad = png;
  for (std::uint32_t i = 0; i < len; ++i) zlib_bad[idat + 4 + i] = static_cast<char>(0xff);
  std::uint32_t c = static_cast<std::uint32_t>(
      crc32(0, reinterpret_cast<const Bytef*>(zlib_bad.data() + idat), static_cast<uInt>(len + 4)));
  for (int i = 0; i < 4; ++i) zlib_bad[idat + 4 + len + i] = static_cast<char>((c >> (24 - 8 * i)) & 0xff);
  write_file(dir.file("a/2_zlib.png"), zlib_bad);

  write_file(dir.file("a/3_cut.png"), png.substr(0, idat + 20));
  write_file(dir.file("a/4_cut.jpg"), jpg.substr(0, jpg.size() / 2));
  write_file(dir.file("a/5_text.png"), "hello, world\n");
  write_file(dir.file("a/6_empty.jpg"), "");
  write_file(dir.file("a/7_header.png"), png.substr(0, 20));
  std::string flipped = png;
  flipped[idat + 10] = static_cast<char>(flipped[idat + 10] ^ 0x55);  // inside the compressed data
  write_file(dir.file("a/8_data.png"), flipped);

  ImageFolderSource src = open(dir.path().string(), {param("size", std::int64_t{8})});
  REQUIRE(src.info().size == 11);
  Tensor img;
  auto message = [&](std::int64_t i) {
    try {
      src.load(i, img);
    } catch (const DataError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  CHECK(message(1) == dir.file("a/1_crc.png") + ": sample 1: corrupt PNG: IDAT: CRC error");
  CHECK(message(2) == dir.file("a/2_zlib.png") + ": sample 2: corrupt PNG: IDAT: invalid window size (libpng)");
  CHECK(message(3) == dir.file("a/3_cut.png") + ": sample 3: truncated PNG: the file ends after " +
                          std::to_string(idat + 20) + " bytes, before the image data is complete");
  CHECK(message(4) == dir.file("a/4_cut.jpg") + ": sample 4: truncated JPEG: Premature end of JPEG file");
  CHECK(message(5) == dir.file("a/5_text.png") +
                          ": sample 5: not a PNG or JPEG image: the file starts with 68 65 6c 6c 6f 2c 20 77, "
                          "expected 89 50 4e 47 0d 0a 1a 0a (PNG) or ff d8 ff (JPEG)");
  CHECK(message(6) == dir.file("a/6_empty.jpg") + ": sample 6: empty file, expected a PNG or JPEG image");
  CHECK(message(7) == dir.file("a/7_header.png") + ": sample 7: truncated PNG: the file ends after 20 bytes, "
                                                   "before the image data is complete");
  CHECK(message(8) == dir.file("a/8_data.png") + ": sample 8: corrupt PNG: IDAT: incorrect data check");
  // The good files still load, on the same tensor.
  CHECK_NOTHROW(src.load(9, img));
  CHECK_NOTHROW(src.load(10, img));

  // When the first file is bad, building the source fails.
  TempDir dir2("imgf");
  mkdir(dir2, "a");
  write_file(dir2.file("a/0.jpg"), "\xff\xd8\xff\xe0 not really");
  CHECK_THROWS_AS(open(dir2.path().string()), DataError);
  CHECK_THROWS_WITH(open(dir2.path().string()),
                    dir2.file("a/0.jpg") + ": sample 0: truncated JPEG: Premature end of JPEG file");
  write_file(dir2.file("a/0.jpg"), jpg.substr(0, 2) + std::string("\xff\xc0\x00\x02", 4) + jpg.substr(2));
  CHECK_THROWS_WITH(open(dir2.path().string()), dir2.file("a/0.jpg") + ": sample 0: corrupt JPEG: Bogus marker length");
}

TEST_CASE("image_folder: rejects a missing, empty or class-less folder", "[plugins][image_folder]") {
  TempDir dir("imgf");
  CHECK_THROWS_AS(open(dir.file("nope")), DataError);
  CHECK_THROWS_WITH(open(dir.file("nope")), dir.file("nope") + ": cannot open: No such file or directory");
  write_file(dir.file("file"), "x");
  CHECK_THROWS_WITH(open(dir.file("file")), dir.file("file") +
                    ": not a folder; expected the folder holding one sub-folder of images per class");
  CHECK_THROWS_AS(open(""), contra::ConfigError);
  CHECK_THROWS_WITH(open(""), "source.folder: expected the folder holding one sub-folder of images per class, found \"\"");

  TempDir empty("imgf");
  CHECK_THROWS_AS(open(empty.path().string()), DataError);
  CHECK_THROWS_WITH(open(empty.path().string()),
                    empty.path().string() + ": no class sub-folders; expected one sub-folder of images per class (" +
                        empty.file("<class>/<image>") + ")");
  write_png(empty.file("loose.png"), gray_png(1, 2, 2));
  CHECK_THROWS_WITH(open(empty.path().string()),
                    empty.path().string() + ": no class sub-folders; expected one sub-folder of images per class (" +
                        empty.file("<class>/<image>") + "), found 1 image directly in the folder");

  mkdir(empty, "cats");
  mkdir(empty, "dogs");
  mkdir(empty, "eels");
  write_png(empty.file("dogs/1.png"), gray_png(1, 2, 2));
  write_file(empty.file("eels/readme.txt"), "x");
  CHECK_THROWS_AS(open(empty.path().string()), DataError);
  CHECK_THROWS_WITH(open(empty.path().string()),
                    empty.path().string() +
                        ": 2 class folders hold no .png, .jpg or .jpeg files: cats, eels; every sub-folder is a "
                        "class and needs at least one image");
}

TEST_CASE("image_folder: channels = 2 is a configuration error", "[plugins][image_folder]") {
  TempDir dir("imgf");
  mkdir(dir, "a");
  write_png(dir.file("a/1.png"), gray_png(1, 2, 2));
  CHECK_THROWS_AS(open(dir.path().string(), {param("channels", std::int64_t{2})}), contra::ConfigError);
  CHECK_THROWS_WITH(open(dir.path().string(), {param("channels", std::int64_t{2})}),
                    "source.channels = 2: expected 1 (gray), 3 (RGB) or 0 (as the first image)");
  CHECK_THROWS_AS(open(dir.path().string(), {param("channels", std::int64_t{4})}), contra::ConfigError);
}

namespace {

// A PNG whose header declares width x height and whose image data is a few
// bytes: what a file of huge, valid dimensions looks like to a header read.
std::string png_header_only(std::uint32_t width, std::uint32_t height) {
  auto be = [](std::uint32_t v) {
    return std::string{char(v >> 24), char((v >> 16) & 0xff), char((v >> 8) & 0xff), char(v & 0xff)};
  };
  auto chunk = [&](const std::string& type, const std::string& data) {
    const std::string body = type + data;
    const auto c = static_cast<std::uint32_t>(
        crc32(0, reinterpret_cast<const Bytef*>(body.data()), static_cast<uInt>(body.size())));
    return be(static_cast<std::uint32_t>(data.size())) + body + be(c);
  };
  const std::string ihdr = be(width) + be(height) + std::string("\x08\x02\x00\x00\x00", 5);  // 8-bit RGB
  return std::string("\x89PNG\r\n\x1a\n", 8) + chunk("IHDR", ihdr) + chunk("IDAT", std::string("\x78\x9c", 2)) +
         chunk("IEND", "");
}

}  // namespace

TEST_CASE("image_folder: an image of more than max_image_pixels pixels is refused before it is decoded",
          "[plugins][image_folder]") {
  TempDir dir("imgf");
  mkdir(dir, "a");
  // 20000 x 20000 RGB would decode to 1.2 GB; with size = 0 every header is
  // read when the source is built, and the first is refused there.
  write_file(dir.file("a/0.png"), png_header_only(20000, 20000));
  write_file(dir.file("a/1.png"), png_header_only(20000, 20000));
  CHECK_THROWS_AS(open(dir.path().string()), DataError);
  CHECK_THROWS_WITH(open(dir.path().string()),
                    dir.file("a/0.png") + ": sample 0: 20000x20000 pixels (width x height) is 400000000 pixels, more "
                                          "than data.max_image_pixels = 67108864 allows; the image is refused before "
                                          "it is decoded (raise data.max_image_pixels to read it)");
  // Set in the source's own table, the message names that key.
  CHECK_THROWS_WITH(open(dir.path().string(), {param("max_image_pixels", std::int64_t{1000})}),
                    dir.file("a/0.png") + ": sample 0: 20000x20000 pixels (width x height) is 400000000 pixels, more "
                                          "than source.max_image_pixels = 1000 allows; the image is refused before "
                                          "it is decoded (raise source.max_image_pixels to read it)");

  // With size set only the first header is read: a large image later on is
  // refused by load(), as a sample that fails to load.
  TempDir small("imgf");
  mkdir(small, "a");
  write_png(small.file("a/0.png"), gray_png(0, 30, 20));  // 600 pixels
  write_png(small.file("a/1.png"), gray_png(1, 31, 20));  // 620 pixels
  ImageFolderSource src = open(small.path().string(), {param("size", std::int64_t{8}),
                                                      param("max_image_pixels", std::int64_t{600})});
  Tensor img;
  CHECK_NOTHROW(src.load(0, img));
  CHECK_THROWS_AS(src.load(1, img), DataError);
  CHECK_THROWS_WITH(src.load(1, img),
                    small.file("a/1.png") + ": sample 1: 31x20 pixels (width x height) is 620 pixels, more than "
                                            "source.max_image_pixels = 600 allows; the image is refused before it is "
                                            "decoded (raise source.max_image_pixels to read it)");
}

TEST_CASE("image_folder: on_error = skip sets unreadable images aside when the source is built",
          "[plugins][image_folder]") {
  TempDir dir("imgf");
  mkdir(dir, "a");
  mkdir(dir, "b");
  write_file(dir.file("a/0.png"), "hello, world\n");         // not an image: the first file
  write_png(dir.file("a/1.png"), gray_png(1, 4, 3));         // the first readable one fixes the shape
  write_png(dir.file("a/2.png"), gray_png(2, 4, 3));
  write_jpeg(dir.file("b/3.jpg"), 5, 3, 1, JCS_GRAYSCALE, pixels(3, 5, 3, 1));  // another size
  write_png(dir.file("b/4.png"), gray_png(4, 4, 3));
  const std::string not_an_image = dir.file("a/0.png") +
                                   ": sample 0: not a PNG or JPEG image: the file starts with 68 65 6c 6c 6f 2c 20 "
                                   "77, expected 89 50 4e 47 0d 0a 1a 0a (PNG) or ff d8 ff (JPEG)";
  const std::string other_size = dir.file("b/3.jpg") +
                                 ": sample 3: 5x3 pixels (width x height), but the first readable image, " +
                                 dir.file("a/1.png") +
                                 ", is 4x3; a source reports one shape, so set source.size to resize every image to "
                                 "size x size";

  // on_error = "fail" (the default): the first bad file stops it, as before.
  CHECK_THROWS_WITH(open(dir.path().string()), not_an_image);

  // skip: both are set aside, said once on stderr, and refused by load().
  contra::test::CapturedStderr err;
  ImageFolderSource src = open(dir.path().string(), {param("on_error", std::string("skip")),
                                                    param("max_skip_fraction", 0.5)});
  CHECK(err.text() == "warning: " + dir.path().string() +
                          ": 2 of the 5 images cannot be read and will be skipped (source.on_error = \"skip\"):\n  " +
                          not_an_image + "\n  " + other_size + "\n");
  CHECK(src.info().size == 5);
  CHECK(src.info().shape == contra::ImageShape{3, 4, 1});
  Tensor img;
  CHECK_THROWS_WITH(src.load(0, img), not_an_image);
  CHECK_THROWS_WITH(src.load(3, img), other_size);
  for (std::int64_t i : {1, 2, 4}) CHECK(load(src, i, {3, 4, 1}) == pixels(static_cast<int>(i), 4, 3, 1));

  // More than max_skip_fraction of them: the source is not built, and the
  // message names the key, the fraction reached and the last file.
  CHECK_THROWS_AS(open(dir.path().string(), {param("on_error", std::string("skip"))}), DataError);
  CHECK_THROWS_WITH(open(dir.path().string(), {param("on_error", std::string("skip"))}),
                    dir.path().string() + ": 1 of the 5 images (0.2 of them) cannot be read, more than "
                                          "data.max_skip_fraction = 0.01 allows (source.on_error = \"skip\"); the "
                                          "last: " + not_an_image);
  CHECK_THROWS_WITH(open(dir.path().string(), {param("on_error", std::string("skip")),
                                               param("max_skip_fraction", 0.25)}),
                    dir.path().string() + ": 2 of the 5 images (0.4 of them) cannot be read, more than "
                                          "source.max_skip_fraction = 0.25 allows (source.on_error = \"skip\"); the "
                                          "last: " + other_size);

  // With size set only the headers up to the first readable one are read.
  contra::test::CapturedStderr err2;
  ImageFolderSource sized = open(dir.path().string(), {param("on_error", std::string("skip")),
                                                      param("max_skip_fraction", 0.5), param("size", std::int64_t{6})});
  CHECK(err2.text() == "warning: " + dir.path().string() +
                           ": 1 of the 5 images cannot be read and will be skipped (source.on_error = \"skip\"):\n  " +
                           not_an_image + "\n");
  CHECK(sized.info().shape == contra::ImageShape{6, 6, 1});
  CHECK_THROWS_WITH(sized.load(0, img), not_an_image);
  CHECK_NOTHROW(sized.load(3, img));
}

TEST_CASE("image_folder: the skip warning names the first five images and counts the rest",
          "[plugins][image_folder]") {
  TempDir dir("imgf");
  mkdir(dir, "a");
  write_png(dir.file("a/00.png"), gray_png(0, 2, 2));
  for (int i = 1; i <= 7; ++i) write_file(dir.file("a/0" + std::to_string(i) + ".png"), "");
  contra::test::CapturedStderr err;
  ImageFolderSource src = open(dir.path().string(), {param("on_error", std::string("skip")),
                                                    param("max_skip_fraction", 1.0)});
  std::string want = "warning: " + dir.path().string() +
                     ": 7 of the 8 images cannot be read and will be skipped (source.on_error = \"skip\"):\n";
  for (int i = 1; i <= 5; ++i)
    want += "  " + dir.file("a/0" + std::to_string(i) + ".png") + ": sample " + std::to_string(i) +
            ": empty file, expected a PNG or JPEG image\n";
  want += "  and 2 more\n";
  CHECK(err.text() == want);
  CHECK(src.info().size == 8);

  // None readable: no shape to report.
  fs::remove(dir.path() / "a/00.png");
  CHECK_THROWS_WITH(open(dir.path().string(), {param("on_error", std::string("skip")),
                                               param("max_skip_fraction", 1.0)}),
                    dir.path().string() + ": none of the 7 images can be read; the last: " + dir.file("a/07.png") +
                        ": sample 6: empty file, expected a PNG or JPEG image");
}
