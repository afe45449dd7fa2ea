#include "image_folder.hpp"

#include <contra/data_defaults.hpp>

#include <png.h>

#include <cstdio>  // jpeglib.h needs FILE and size_t declared first
#include <jerror.h>
#include <jpeglib.h>

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <csetjmp>
#include <cstring>
#include <filesystem>
#include <unordered_map>

namespace contra::plugins {

namespace fs = std::filesystem;

namespace {

// ---------------------------------------------------------------------------
// Small helpers, in the style of the other sources.

std::string plural(std::uint64_t n, const char* one, const char* many) {
  return std::to_string(n) + " " + (n == 1 ? one : many);
}

std::string located(const contra::Params& p, const char* name) {
  std::string where = p.where(name).str();
  return where.empty() ? std::string() : where + ": ";
}

std::string key(const contra::Params& p, const char* name) {
  return p.prefix().empty() ? std::string(name) : p.prefix() + "." + name;
}

/// The key a value came from: the source's own when its table set it, else
/// [data]'s, which a pipeline passes to the source (or its default, which is
/// the same).
std::string data_key(const contra::Params& p, const char* name) {
  return p.is_set(name) ? key(p, name) : std::string("data.") + name;
}

/// 0.0312 for 1/32.
std::string fraction(double f) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3g", f);
  return buf;
}

std::string lower(std::string s) {
  for (char& c : s)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return s;
}

std::string dims(std::int64_t width, std::int64_t height) {
  return std::to_string(width) + "x" + std::to_string(height);
}

/// ".png, .jpg or .jpeg"
std::string either(const std::vector<std::string>& names) {
  std::string s;
  for (std::size_t i = 0; i < names.size(); ++i) {
    if (i > 0) s += i + 1 == names.size() ? " or " : ", ";
    s += names[i];
  }
  return s;
}

std::string join(const std::vector<std::string>& names, std::size_t at_most) {
  std::string s;
  for (std::size_t i = 0; i < names.size() && i < at_most; ++i) s += (i ? ", " : "") + names[i];
  if (names.size() > at_most) s += " and " + std::to_string(names.size() - at_most) + " more";
  return s;
}

std::string hex_bytes(const unsigned char* p, std::size_t n) {
  std::string s;
  char buf[4];
  for (std::size_t i = 0; i < n; ++i) {
    std::snprintf(buf, sizeof buf, "%02x", p[i]);
    s += (i ? " " : "") + std::string(buf);
  }
  return s;
}

bool hidden(const fs::path& p) {
  const std::string name = p.filename().string();
  return !name.empty() && name[0] == '.';
}

/// A FILE* closed at scope exit.
class CFile {
 public:
  explicit CFile(std::FILE* f) : f_(f) {}
  ~CFile() {
    if (f_) std::fclose(f_);
  }
  CFile(const CFile&) = delete;
  CFile& operator=(const CFile&) = delete;
  std::FILE* get() const noexcept { return f_; }

 private:
  std::FILE* f_;
};

// ---------------------------------------------------------------------------
// Pixels as a decoder delivers them, and conversion to 1 or 3 channels.

enum class Pixels { gray, gray_alpha, rgb, rgba, cmyk, cmyk_inverted };

int bytes_per_pixel(Pixels px) {
  switch (px) {
    case Pixels::gray: return 1;
    case Pixels::gray_alpha: return 2;
    case Pixels::rgb: return 3;
    default: return 4;
  }
}

/// True when rows of `px` are already rows of `channels` output channels.
bool native(Pixels px, int channels) {
  return (px == Pixels::gray && channels == 1) || (px == Pixels::rgb && channels == 3);
}

/// ITU-R 601-2 luma, exactly as Pillow's convert("L").
inline std::uint8_t luma(unsigned r, unsigned g, unsigned b) {
  return static_cast<std::uint8_t>((r * 19595u + g * 38470u + b * 7471u + 0x8000u) >> 16);
}

/// Pillow's CMYK -> RGB: (255 - k) * (255 - c) / 255, rounded as its MULDIV255.
inline std::uint8_t from_cmyk(unsigned c, unsigned k) {
  const unsigned nk = 255 - k;
  const unsigned t = c * nk + 128;
  return static_cast<std::uint8_t>(nk - (((t >> 8) + t) >> 8));
}

/// Converts one row of `width` pixels to 1 (gray) or 3 (RGB) channels:
/// gray is replicated, alpha dropped, colour reduced to luma, CMYK (inverted
/// as Adobe writes it, or plain) turned into RGB.
void convert_row(const std::uint8_t* in, Pixels px, std::int64_t width, std::uint8_t* out, int channels) {
  auto put = [&](std::int64_t x, unsigned r, unsigned g, unsigned b) {
    if (channels == 1) {
      out[x] = luma(r, g, b);
    } else {
      out[3 * x] = static_cast<std::uint8_t>(r);
      out[3 * x + 1] = static_cast<std::uint8_t>(g);
      out[3 * x + 2] = static_cast<std::uint8_t>(b);
    }
  };
  auto put_gray = [&](std::int64_t x, std::uint8_t v) {
    if (channels == 1) out[x] = v;
    else out[3 * x] = out[3 * x + 1] = out[3 * x + 2] = v;
  };
  switch (px) {
    case Pixels::gray:
      for (std::int64_t x = 0; x < width; ++x) put_gray(x, in[x]);
      break;
    case Pixels::gray_alpha:
      for (std::int64_t x = 0; x < width; ++x) put_gray(x, in[2 * x]);
      break;
    case Pixels::rgb:
      for (std::int64_t x = 0; x < width; ++x) put(x, in[3 * x], in[3 * x + 1], in[3 * x + 2]);
      break;
    case Pixels::rgba:
      for (std::int64_t x = 0; x < width; ++x) put(x, in[4 * x], in[4 * x + 1], in[4 * x + 2]);
      break;
    case Pixels::cmyk:
    case Pixels::cmyk_inverted: {
      const unsigned flip = px == Pixels::cmyk_inverted ? 255u : 0u;
      for (std::int64_t x = 0; x < width; ++x) {
        const std::uint8_t* p = in + 4 * x;
        const unsigned k = p[3] ^ flip;
        put(x, from_cmyk(p[0] ^ flip, k), from_cmyk(p[1] ^ flip, k), from_cmyk(p[2] ^ flip, k));
      }
      break;
    }
  }
}

// ---------------------------------------------------------------------------
// Resizing: Pillow's BILINEAR resample (a triangle filter whose support grows
// with the reduction factor, so that downscaling averages instead of skipping
// pixels), horizontal pass then vertical pass, in its 8-bit fixed point.

constexpr int precision_bits = 32 - 8 - 2;

inline std::uint8_t clip8(std::int32_t v) {
  if (v >= (1 << precision_bits << 8)) return 255;
  if (v <= 0) return 0;
  return static_cast<std::uint8_t>(v >> precision_bits);
}

/// Filter taps for resampling `in` pixels to `out`: output pixel i reads
/// `bounds[2i+1]` input pixels from `bounds[2i]` with weights k[i*ksize ...].
/// Returns ksize.
int bilinear_taps(std::int64_t in, std::int64_t out, std::vector<int>& bounds, std::vector<std::int32_t>& k,
                  std::vector<double>& w) {
  const double scale = static_cast<double>(in) / static_cast<double>(out);
  const double filterscale = std::max(scale, 1.0);
  const double support = filterscale;  // the triangle's support is 1
  const int ksize = static_cast<int>(std::ceil(support)) * 2 + 1;
  bounds.assign(static_cast<std::size_t>(2 * out), 0);
  k.assign(static_cast<std::size_t>(out * ksize), 0);
  w.assign(static_cast<std::size_t>(ksize), 0.0);
  for (std::int64_t xx = 0; xx < out; ++xx) {
    const double center = (static_cast<double>(xx) + 0.5) * scale;
    const double ss = 1.0 / filterscale;
    int xmin = static_cast<int>(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    int xmax = static_cast<int>(center + support + 0.5);
    if (xmax > in) xmax = static_cast<int>(in);
    xmax -= xmin;
    double ww = 0.0;
    for (int x = 0; x < xmax; ++x) {
      const double t = std::abs((x + xmin - center + 0.5) * ss);
      w[static_cast<std::size_t>(x)] = t < 1.0 ? 1.0 - t : 0.0;
      ww += w[static_cast<std::size_t>(x)];
    }
    std::int32_t* kk = k.data() + xx * ksize;
    for (int x = 0; x < xmax; ++x) {
      const double v = ww != 0.0 ? w[static_cast<std::size_t>(x)] / ww : w[static_cast<std::size_t>(x)];
      kk[x] = static_cast<std::int32_t>(v < 0 ? -0.5 + v * (1 << precision_bits) : 0.5 + v * (1 << precision_bits));
    }
    bounds[static_cast<std::size_t>(2 * xx)] = xmin;
    bounds[static_cast<std::size_t>(2 * xx + 1)] = xmax;
  }
  return ksize;
}

/// Scratch memory of one thread, reused from call to call.
struct Scratch {
  std::vector<std::uint8_t> row;   // one row as the library delivers it
  std::vector<std::uint8_t> conv;  // one row converted to the output channels
  std::vector<std::uint8_t> full;  // a whole interlaced PNG
  std::vector<std::uint8_t> temp;  // rows after the horizontal pass: src_h x out_w x C
  std::vector<std::int32_t> acc;   // one output row of the vertical pass
  std::vector<std::int32_t> hk, vk;
  std::vector<int> hb, vb;
  std::vector<double> w;
};

Scratch& scratch() {
  thread_local Scratch s;
  return s;
}

/// Takes decoded rows one by one, converts their channels and either copies
/// them to the output image or resizes them into it. All buffers are sized in
/// the constructor; row() and finish() never throw or allocate, so they may
/// run between libpng/libjpeg calls under setjmp.
class RowPipeline {
 public:
  RowPipeline(Scratch& s, std::int64_t src_w, std::int64_t src_h, Pixels px, int channels, std::int64_t out_w,
              std::int64_t out_h, std::uint8_t* out)
      : s_(s), src_w_(src_w), src_h_(src_h), px_(px), c_(channels), out_w_(out_w), out_h_(out_h), out_(out),
        resize_(src_w != out_w || src_h != out_h) {
    const auto c = static_cast<std::size_t>(channels);
    if (!native(px, channels)) s_.conv.resize(static_cast<std::size_t>(src_w) * c);
    if (resize_) {
      hksize_ = bilinear_taps(src_w, out_w, s_.hb, s_.hk, s_.w);
      vksize_ = bilinear_taps(src_h, out_h, s_.vb, s_.vk, s_.w);
      s_.temp.resize(static_cast<std::size_t>(src_h * out_w) * c);
      s_.acc.resize(static_cast<std::size_t>(out_w) * c);
    }
  }

  /// Source row `y` in the delivered pixel format.
  void row(std::int64_t y, const std::uint8_t* in) noexcept {
    const std::uint8_t* px = in;
    if (!native(px_, c_)) {
      convert_row(in, px_, src_w_, s_.conv.data(), c_);
      px = s_.conv.data();
    }
    if (!resize_) {
      std::memcpy(out_ + y * src_w_ * c_, px, static_cast<std::size_t>(src_w_ * c_));
      return;
    }
    std::uint8_t* dst = s_.temp.data() + y * out_w_ * c_;
    for (std::int64_t xx = 0; xx < out_w_; ++xx) {
      const int xmin = s_.hb[static_cast<std::size_t>(2 * xx)], xmax = s_.hb[static_cast<std::size_t>(2 * xx + 1)];
      const std::int32_t* kk = s_.hk.data() + xx * hksize_;
      for (int ch = 0; ch < c_; ++ch) {
        std::int32_t ss = 1 << (precision_bits - 1);
        for (int x = 0; x < xmax; ++x) ss += px[(xmin + x) * c_ + ch] * kk[x];
        dst[xx * c_ + ch] = clip8(ss);
      }
    }
  }

  /// Vertical pass, once every row has arrived.
  void finish() noexcept {
    if (!resize_) return;
    const std::int64_t n = out_w_ * c_;
    for (std::int64_t yy = 0; yy < out_h_; ++yy) {
      const int ymin = s_.vb[static_cast<std::size_t>(2 * yy)], ymax = s_.vb[static_cast<std::size_t>(2 * yy + 1)];
      const std::int32_t* kk = s_.vk.data() + yy * vksize_;
      std::fill(s_.acc.begin(), s_.acc.end(), 1 << (precision_bits - 1));
      for (int y = 0; y < ymax; ++y) {
        const std::uint8_t* src = s_.temp.data() + (ymin + y) * n;
        const std::int32_t k = kk[y];
        for (std::int64_t i = 0; i < n; ++i) s_.acc[static_cast<std::size_t>(i)] += src[i] * k;
      }
      std::uint8_t* dst = out_ + yy * n;
      for (std::int64_t i = 0; i < n; ++i) dst[i] = clip8(s_.acc[static_cast<std::size_t>(i)]);
    }
  }

  std::int64_t source_height() const noexcept { return src_h_; }

 private:
  Scratch& s_;
  std::int64_t src_w_, src_h_;
  Pixels px_;
  int c_;
  std::int64_t out_w_, out_h_;
  std::uint8_t* out_;
  bool resize_;
  int hksize_ = 0, vksize_ = 0;
};

/// Width, height and natural channel count (1 gray, 3 colour) of a file.
struct ImageHeader {
  std::int64_t width = 0;
  std::int64_t height = 0;
  int channels = 0;
};

// ---------------------------------------------------------------------------
// libpng. Its errors longjmp back to the setjmp of the png_* function below
// that called into it; those functions hold no C++ objects (so nothing is
// skipped), keep everything they change in PngState (so nothing is
// clobbered), and report failure by returning false.

struct PngState {
  png_structp png = nullptr;
  png_infop info = nullptr;
  std::FILE* file = nullptr;
  std::uint64_t offset = 0;  // bytes read so far
  bool eof = false;          // the file ended before libpng was done
  int read_errno = 0;        // a read failed with this errno
  char message[256] = {};
  png_uint_32 width = 0, height = 0;
  int depth = 0, color = 0, interlace = 0;
  int passes = 1, pass = 0;
  png_uint_32 y = 0;
  int channels = 0;  // delivered per pixel after the transforms
};

void png_on_error(png_structp png, png_const_charp msg) {
  auto* s = static_cast<PngState*>(png_get_error_ptr(png));
  std::snprintf(s->message, sizeof s->message, "%s", msg ? msg : "unknown error");
  png_longjmp(png, 1);
}

void png_on_warning(png_structp, png_const_charp) {}  // ancillary problems are not worth a line on stderr

void png_on_read(png_structp png, png_bytep data, std::size_t n) {
  auto* s = static_cast<PngState*>(png_get_io_ptr(png));
  const std::size_t got = std::fread(data, 1, n, s->file);
  s->offset += got;
  if (got == n) return;
  if (std::ferror(s->file)) {
    s->read_errno = errno;
    png_error(png, "read error");
  }
  s->eof = true;
  png_error(png, "unexpected end of file");
}

bool png_read_header(PngState& s) noexcept {
  if (setjmp(png_jmpbuf(s.png))) return false;
  png_read_info(s.png, s.info);
  png_get_IHDR(s.png, s.info, &s.width, &s.height, &s.depth, &s.color, &s.interlace, nullptr, nullptr);
  return true;
}

/// Transforms to 8-bit gray or RGB: palettes expanded, 16 bits reduced to
/// their high byte, 1/2/4-bit gray expanded, alpha (and tRNS) dropped, gray
/// replicated when 3 channels are wanted.
bool png_start(PngState& s, int channels) noexcept {
  if (setjmp(png_jmpbuf(s.png))) return false;
  if (s.depth == 16) png_set_strip_16(s.png);
  if (s.color == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(s.png);
  if ((s.color & PNG_COLOR_MASK_COLOR) == 0 && s.depth < 8) png_set_expand_gray_1_2_4_to_8(s.png);
  png_set_strip_alpha(s.png);
  if (channels == 3 && (s.color & PNG_COLOR_MASK_COLOR) == 0) png_set_gray_to_rgb(s.png);
  s.passes = png_set_interlace_handling(s.png);
  png_read_update_info(s.png, s.info);
  s.channels = png_get_channels(s.png, s.info);
  return true;
}

/// Every pass of every row into `out`, rows `stride` bytes apart.
bool png_read_all(PngState& s, std::uint8_t* out, std::size_t stride) noexcept {
  if (setjmp(png_jmpbuf(s.png))) return false;
  for (s.pass = 0; s.pass < s.passes; ++s.pass)
    for (s.y = 0; s.y < s.height; ++s.y) png_read_row(s.png, out + s.y * stride, nullptr);
  return true;
}

/// A non-interlaced image row by row through `row` into the pipeline.
bool png_read_each(PngState& s, std::uint8_t* row, RowPipeline& p) noexcept {
  if (setjmp(png_jmpbuf(s.png))) return false;
  for (s.y = 0; s.y < s.height; ++s.y) {
    png_read_row(s.png, row, nullptr);
    p.row(s.y, row);
  }
  return true;
}

class PngReader {
 public:
  PngReader(std::FILE* f, const std::string& what) : what_(what) {
    s_.file = f;
    s_.png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &s_, png_on_error, png_on_warning);
    if (s_.png) s_.info = png_create_info_struct(s_.png);
    if (!s_.info) {
      // The destructor does not run for a constructor that throws.
      png_destroy_read_struct(&s_.png, nullptr, nullptr);
      throw DataError(what_ + "cannot decode PNG: out of memory");
    }
    png_set_read_fn(s_.png, &s_, png_on_read);
  }
  ~PngReader() { png_destroy_read_struct(&s_.png, s_.info ? &s_.info : nullptr, nullptr); }
  PngReader(const PngReader&) = delete;
  PngReader& operator=(const PngReader&) = delete;

  ImageHeader header() {
    if (!png_read_header(s_)) fail();
    return {static_cast<std::int64_t>(s_.width), static_cast<std::int64_t>(s_.height),
            (s_.color & PNG_COLOR_MASK_COLOR) ? 3 : 1};
  }

  Pixels start(int channels) {
    if (!png_start(s_, channels)) fail();
    switch (s_.channels) {
      case 1: return Pixels::gray;
      case 2: return Pixels::gray_alpha;
      case 3: return Pixels::rgb;
      case 4: return Pixels::rgba;
      default:
        throw DataError(what_ + "unsupported PNG: " + std::to_string(s_.channels) +
                        " channels after decoding, expected 1 to 4");
    }
  }

  void read_all(std::uint8_t* out, std::size_t stride) {
    if (!png_read_all(s_, out, stride)) fail();
  }

  void read_each(RowPipeline& p, Pixels px) {
    Scratch& sc = scratch();
    const std::size_t stride = static_cast<std::size_t>(s_.width) * static_cast<std::size_t>(bytes_per_pixel(px));
    if (s_.passes > 1) {
      // Interlaced rows arrive in seven passes: the whole image is needed first.
      sc.full.resize(stride * s_.height);
      read_all(sc.full.data(), stride);
      for (png_uint_32 y = 0; y < s_.height; ++y) p.row(y, sc.full.data() + y * stride);
      return;
    }
    sc.row.resize(stride);
    if (!png_read_each(s_, sc.row.data(), p)) fail();
  }

 private:
  [[noreturn]] void fail() {
    if (s_.read_errno) throw DataError(what_ + "cannot read: " + std::strerror(s_.read_errno));
    if (s_.eof)
      throw DataError(what_ + "truncated PNG: the file ends after " + plural(s_.offset, "byte", "bytes") +
                      ", before the image data is complete");
    throw DataError(what_ + "corrupt PNG: " + s_.message);
  }

  const std::string& what_;  // "<path>: sample <i>: ", owned by the caller
  PngState s_;
};

// ---------------------------------------------------------------------------
// libjpeg: error_exit, and the one warning that means pixels are missing
// (premature end of file), longjmp back to the jpeg_* function below; the
// same rules as for libpng apply to those functions.

struct JpegState {
  struct Err {
    jpeg_error_mgr pub;  // first, so that j_common_ptr->err converts back to Err
    std::jmp_buf jump;
    char message[JMSG_LENGTH_MAX];
    bool eof;
  } err{};
  jpeg_decompress_struct cinfo{};
  std::FILE* file = nullptr;
  JSAMPROW row = nullptr;
};

void jpeg_on_error_exit(j_common_ptr c) {
  auto* e = reinterpret_cast<JpegState::Err*>(c->err);
  (*c->err->format_message)(c, e->message);
  std::longjmp(e->jump, 1);
}

void jpeg_on_emit(j_common_ptr c, int level) {
  if (level >= 0) return;  // trace messages
  if (c->err->msg_code == JWRN_JPEG_EOF) {
    // libjpeg would pad the rest of the image with gray and carry on.
    auto* e = reinterpret_cast<JpegState::Err*>(c->err);
    e->eof = true;
    (*c->err->format_message)(c, e->message);
    std::longjmp(e->jump, 1);
  }
  c->err->num_warnings++;  // other warnings are tolerated, as Pillow does
}

void jpeg_on_output(j_common_ptr) {}

bool jpeg_header(JpegState& s) noexcept {
  if (setjmp(s.err.jump)) return false;
  jpeg_create_decompress(&s.cinfo);
  jpeg_stdio_src(&s.cinfo, s.file);
  jpeg_read_header(&s.cinfo, TRUE);
  return true;
}

bool jpeg_begin(JpegState& s, J_COLOR_SPACE space) noexcept {
  if (setjmp(s.err.jump)) return false;
  s.cinfo.out_color_space = space;
  jpeg_start_decompress(&s.cinfo);
  return true;
}

bool jpeg_read_all(JpegState& s, std::uint8_t* out, std::size_t stride) noexcept {
  if (setjmp(s.err.jump)) return false;
  while (s.cinfo.output_scanline < s.cinfo.output_height) {
    s.row = out + s.cinfo.output_scanline * stride;
    if (jpeg_read_scanlines(&s.cinfo, &s.row, 1) != 1) return false;
  }
  return true;
}

bool jpeg_read_each(JpegState& s, std::uint8_t* row, RowPipeline& p) noexcept {
  if (setjmp(s.err.jump)) return false;
  s.row = row;
  while (s.cinfo.output_scanline < s.cinfo.output_height) {
    if (jpeg_read_scanlines(&s.cinfo, &s.row, 1) != 1) return false;
    p.row(s.cinfo.output_scanline - 1, row);
  }
  return true;
}

class JpegReader {
 public:
  JpegReader(std::FILE* f, const std::string& what) : what_(what) {
    s_.file = f;
    s_.cinfo.err = jpeg_std_error(&s_.err.pub);
    s_.err.pub.error_exit = jpeg_on_error_exit;
    s_.err.pub.emit_message = jpeg_on_emit;
    s_.err.pub.output_message = jpeg_on_output;
  }
  // Safe after a failed or partial jpeg_create_decompress: cinfo starts zeroed.
  ~JpegReader() { jpeg_destroy_decompress(&s_.cinfo); }
  JpegReader(const JpegReader&) = delete;
  JpegReader& operator=(const JpegReader&) = delete;

  ImageHeader header() {
    if (!jpeg_header(s_)) fail();
    return {static_cast<std::int64_t>(s_.cinfo.image_width), static_cast<std::int64_t>(s_.cinfo.image_height),
            s_.cinfo.num_components == 1 ? 1 : 3};
  }

  Pixels start(int channels) {
    Pixels px = Pixels::rgb;
    J_COLOR_SPACE space = JCS_RGB;
    switch (s_.cinfo.jpeg_color_space) {
      case JCS_GRAYSCALE:
        // libjpeg replicates gray into RGB itself.
        px = channels == 1 ? Pixels::gray : Pixels::rgb;
        space = channels == 1 ? JCS_GRAYSCALE : JCS_RGB;
        break;
      case JCS_CMYK:
      case JCS_YCCK:
        // Adobe's files store CMYK inverted; Pillow reads them so.
        px = s_.cinfo.saw_Adobe_marker ? Pixels::cmyk_inverted : Pixels::cmyk;
        space = JCS_CMYK;
        break;
      default:
        break;
    }
    if (!jpeg_begin(s_, space)) fail();
    if (s_.cinfo.output_components != bytes_per_pixel(px))
      throw DataError(what_ + "unsupported JPEG: " + std::to_string(s_.cinfo.output_components) +
                      " components after decoding, expected " + std::to_string(bytes_per_pixel(px)));
    return px;
  }

  void read_all(std::uint8_t* out, std::size_t stride) {
    if (!jpeg_read_all(s_, out, stride)) fail();
  }

  void read_each(RowPipeline& p, Pixels px) {
    Scratch& sc = scratch();
    sc.row.resize(static_cast<std::size_t>(s_.cinfo.output_width) * static_cast<std::size_t>(bytes_per_pixel(px)));
    if (!jpeg_read_each(s_, sc.row.data(), p)) fail();
  }

 private:
  [[noreturn]] void fail() {
    if (s_.err.eof) throw DataError(what_ + "truncated JPEG: " + s_.err.message);
    if (s_.err.message[0] == '\0') throw DataError(what_ + "corrupt JPEG: the decoder returned no scanline");
    throw DataError(what_ + "corrupt JPEG: " + s_.err.message);
  }

  const std::string& what_;  // "<path>: sample <i>: ", owned by the caller
  JpegState s_;
};

// ---------------------------------------------------------------------------
// Opening a file and telling PNG from JPEG by its first bytes.

enum class Format { png, jpeg };

Format sniff(std::FILE* f, const std::string& what) {
  unsigned char sig[8];
  const std::size_t n = std::fread(sig, 1, sizeof sig, f);
  if (n < sizeof sig && std::ferror(f)) throw DataError(what + "cannot read: " + std::strerror(errno));
  if (n == 0) throw DataError(what + "empty file, expected a PNG or JPEG image");
  std::rewind(f);
  if (n == sizeof sig && png_sig_cmp(sig, 0, sizeof sig) == 0) return Format::png;
  if (n >= 3 && sig[0] == 0xff && sig[1] == 0xd8 && sig[2] == 0xff) return Format::jpeg;
  throw DataError(what + "not a PNG or JPEG image: the file starts with " + hex_bytes(sig, n) +
                  ", expected 89 50 4e 47 0d 0a 1a 0a (PNG) or ff d8 ff (JPEG)");
}

std::FILE* open_file(const std::string& path, const std::string& what) {
  std::FILE* f = std::fopen(path.c_str(), "rbe");  // e: O_CLOEXEC
  if (!f) throw DataError(what + "cannot open: " + std::strerror(errno));
  struct stat st {};
  if (::fstat(::fileno(f), &st) == 0 && S_ISDIR(st.st_mode)) {
    std::fclose(f);
    throw DataError(what + "cannot read: " + std::strerror(EISDIR));
  }
  return f;
}

std::string what_of(const std::string& path, std::int64_t index) {
  return path + ": sample " + std::to_string(index) + ": ";
}

/// The largest image a decode may take: width x height, and the key that
/// sets it, for messages.
struct PixelLimit {
  std::int64_t max_pixels;
  const std::string* key;
};

void check_side(const ImageHeader& h, const std::string& what, const PixelLimit& limit) {
  if (h.width <= 0 || h.height <= 0 || h.width > ImageFolderSource::max_side ||
      h.height > ImageFolderSource::max_side)
    throw DataError(what + dims(h.width, h.height) + " pixels (width x height), expected at least 1x1 and at most " +
                    std::to_string(ImageFolderSource::max_side) + " on each side");
  // Before anything is decoded: a decoder's memory grows with the pixels its
  // header declares, whatever the file's size.
  if (h.width * h.height > limit.max_pixels)
    throw DataError(what + dims(h.width, h.height) + " pixels (width x height) is " +
                    std::to_string(h.width * h.height) + " pixels, more than " + *limit.key + " = " +
                    std::to_string(limit.max_pixels) + " allows; the image is refused before it is decoded (raise " +
                    *limit.key + " to read it)");
}

template <class Reader>
ImageHeader header_of(Reader& r, const std::string& what, const PixelLimit& limit) {
  ImageHeader h = r.header();
  check_side(h, what, limit);
  return h;
}

ImageHeader read_header(const std::string& path, std::int64_t index, const PixelLimit& limit) {
  const std::string what = what_of(path, index);
  CFile f(open_file(path, what));
  if (sniff(f.get(), what) == Format::png) {
    PngReader r(f.get(), what);
    return header_of(r, what, limit);
  }
  JpegReader r(f.get(), what);
  return header_of(r, what, limit);
}

/// What load() asks of one decode.
struct Target {
  int channels;          // 1 or 3
  std::int64_t size;     // 0: keep the image's size, which must be width x height
  std::int64_t width, height;
  const std::string* size_key;
  PixelLimit limit;
};

template <class Reader>
void decode_with(Reader& r, const std::string& what, const Target& t, contra::Tensor& image) {
  const ImageHeader h = header_of(r, what, t.limit);
  if (t.size == 0 && (h.width != t.width || h.height != t.height))
    throw DataError(what + dims(h.width, h.height) + " pixels (width x height), but the source reports " +
                    dims(t.width, t.height) + " for every image (the file changed after the source was built?); set " +
                    *t.size_key + " to resize every image");
  const std::int64_t out_w = t.size ? t.size : h.width, out_h = t.size ? t.size : h.height;
  const Pixels px = r.start(t.channels);
  image.ensure({out_h, out_w, t.channels}, DType::u8);
  std::uint8_t* out = image.data<std::uint8_t>();
  if (native(px, t.channels) && out_w == h.width && out_h == h.height) {
    r.read_all(out, static_cast<std::size_t>(out_w * t.channels));  // straight into the image
    return;
  }
  RowPipeline p(scratch(), h.width, h.height, px, t.channels, out_w, out_h, out);
  r.read_each(p, px);
  p.finish();
}

void decode(const std::string& path, std::int64_t index, const Target& t, contra::Tensor& image) {
  const std::string what = what_of(path, index);
  CFile f(open_file(path, what));
  if (sniff(f.get(), what) == Format::png) {
    PngReader r(f.get(), what);
    decode_with(r, what, t, image);
  } else {
    JpegReader r(f.get(), what);
    decode_with(r, what, t, image);
  }
}

// ---------------------------------------------------------------------------
// Building the file list.

bool has_extension(const std::string& name, const std::vector<std::string>& extensions) {
  const std::string l = lower(name);
  for (const auto& e : extensions)
    if (l.size() > e.size() && l.compare(l.size() - e.size(), e.size(), e) == 0) return true;
  return false;
}

/// Reads a whole text file; DataError with the system's reason on failure.
std::string read_text(const std::string& path) {
  std::FILE* raw = std::fopen(path.c_str(), "rbe");
  if (!raw) throw DataError(path + ": cannot open: " + std::strerror(errno));
  CFile f(raw);
  struct stat st {};
  if (::fstat(::fileno(raw), &st) == 0 && S_ISDIR(st.st_mode))
    throw DataError(path + ": cannot read: " + std::strerror(EISDIR));
  std::string text;
  char buf[1 << 16];
  while (std::size_t got = std::fread(buf, 1, sizeof buf, raw)) text.append(buf, got);
  if (std::ferror(raw)) throw DataError(path + ": cannot read: " + std::strerror(errno));
  return text;
}

std::string trim(const std::string& s) {
  const char* ws = " \t\r\v\f";
  const auto b = s.find_first_not_of(ws);
  if (b == std::string::npos) return {};
  return s.substr(b, s.find_last_not_of(ws) - b + 1);
}

}  // namespace

contra::Schema ImageFolderSource::schema() {
  return contra::Schema("image_folder",
                        "PNG and JPEG images in one sub-folder per class, like torchvision's ImageFolder")
      .required<std::string>("folder", "root folder; each sub-folder is a class, labelled 0, 1, ... in name order")
      .add<std::string>("files", "",
                        "text file listing image paths relative to folder, one per line, the first folder being the "
                        "class; \"\" scans folder")
      .add<std::vector<std::string>>("extensions", std::vector<std::string>{".png", ".jpg", ".jpeg"},
                                     "file name endings the scan takes, case-insensitive")
      .length(1, -1)
      .add<std::int64_t>("size", 0,
                         "resize every image to size x size pixels (bilinear, antialiased like Pillow); 0 keeps "
                         "each image's size, which must then be the same for all")
      .range(0, 16384)
      .add<std::int64_t>("channels", 0, "output channels: 1 (gray), 3 (RGB), or 0 for those of the first image")
      .range(0, 3)
      .add<std::string>("on_error", "fail",
                        "an image whose header cannot be read when the source is built (or, with size = 0, whose "
                        "size differs from the first readable one's) stops it, or is set aside (load() then refuses "
                        "it); left unset in a pipeline, [data] on_error")
      .choices({"fail", "skip"})
      .add<double>("max_skip_fraction", contra::data_defaults::max_skip_fraction,
                   "with on_error = skip: the fraction of the images that may be set aside when the source is "
                   "built; left unset in a pipeline, [data] max_skip_fraction")
      .range(0, 1)
      .add<std::int64_t>("max_image_pixels", contra::data_defaults::max_image_pixels,
                         "an image whose stored width x height is larger is refused before it is decoded; left "
                         "unset in a pipeline, [data] max_image_pixels")
      .range(1, contra::data_defaults::max_image_pixels_bound);
}

ImageFolderSource::ImageFolderSource(const contra::Params& p)
    : folder_(p.path("folder")), size_key_(key(p, "size")), max_pixels_(p.get<std::int64_t>("max_image_pixels")),
      pixels_key_(data_key(p, "max_image_pixels")), size_(p.get<std::int64_t>("size")) {
  const std::int64_t channels = p.get<std::int64_t>("channels");
  if (channels == 2)
    throw contra::ConfigError(located(p, "channels") + key(p, "channels") +
                              " = 2: expected 1 (gray), 3 (RGB) or 0 (as the first image)");
  std::vector<std::string> extensions = p.get<std::vector<std::string>>("extensions");
  for (std::size_t i = 0; i < extensions.size(); ++i) {
    if (extensions[i].size() < 2 || extensions[i][0] != '.')
      throw contra::ConfigError(located(p, "extensions") + key(p, "extensions") + "[" + std::to_string(i) +
                                "] = \"" + extensions[i] + "\": expected a file name ending that starts with '.', "
                                "e.g. \".png\"");
    extensions[i] = lower(extensions[i]);
  }
  if (folder_.empty())
    throw contra::ConfigError(located(p, "folder") + key(p, "folder") +
                              ": expected the folder holding one sub-folder of images per class, found \"\"");

  struct stat st {};
  if (::stat(folder_.c_str(), &st) != 0) throw DataError(folder_ + ": cannot open: " + std::strerror(errno));
  if (!S_ISDIR(st.st_mode))
    throw DataError(folder_ + ": not a folder; expected the folder holding one sub-folder of images per class");

  const std::string list = p.path("files");
  try {
    // Classes: the sub-folders, hidden ones aside, sorted by name.
    std::size_t loose = 0;  // images directly in the folder, for the hint below
    for (const auto& e : fs::directory_iterator(folder_)) {
      if (hidden(e.path())) continue;
      if (e.is_directory()) classes_.push_back(e.path().filename().string());
      else if (has_extension(e.path().filename().string(), extensions)) ++loose;
    }
    std::sort(classes_.begin(), classes_.end());
    if (classes_.empty()) {
      std::string msg = folder_ + ": no class sub-folders; expected one sub-folder of images per class (" +
                        (fs::path(folder_) / "<class>" / "<image>").string() + ")";
      if (loose > 0) msg += ", found " + plural(loose, "image", "images") + " directly in the folder";
      throw DataError(msg);
    }

    if (list.empty()) {
      // Scan: every matching file under each class folder, sorted by path.
      std::vector<std::string> empty;
      for (std::size_t c = 0; c < classes_.size(); ++c) {
        const fs::path dir = fs::path(folder_) / classes_[c];
        std::vector<std::string> found;
        for (auto it = fs::recursive_directory_iterator(dir); it != fs::recursive_directory_iterator(); ++it) {
          if (hidden(it->path())) {
            if (it->is_directory()) it.disable_recursion_pending();
            continue;
          }
          if (it->is_regular_file() && has_extension(it->path().filename().string(), extensions))
            found.push_back(it->path().string());
        }
        if (found.empty()) empty.push_back(classes_[c]);
        std::sort(found.begin(), found.end());
        for (auto& f : found) {
          paths_.push_back(std::move(f));
          labels_.push_back(static_cast<std::int64_t>(c));
        }
      }
      if (!empty.empty())
        throw DataError(folder_ + ": " + plural(empty.size(), "class folder holds", "class folders hold") +
                        " no " + either(extensions) + " files: " + join(empty, 10) +
                        "; every sub-folder is a class and needs at least one image");
    } else {
      // File list: one path relative to the folder per line, kept in order.
      const std::string text = read_text(list);
      std::unordered_map<std::string, std::size_t> seen;  // path -> line
      std::size_t line_no = 0;
      for (std::size_t at = 0; at < text.size();) {
        std::size_t end = text.find('\n', at);
        if (end == std::string::npos) end = text.size();
        const std::string line = trim(text.substr(at, end - at));
        at = end + 1;
        ++line_no;
        if (line.empty()) continue;
        const std::string where = list + ":" + std::to_string(line_no) + ": ";
        const fs::path rel(line);
        if (rel.is_absolute())
          throw DataError(where + "'" + line + "' is an absolute path, expected a path relative to " + folder_);
        const fs::path norm = rel.lexically_normal();
        std::vector<std::string> parts;
        for (const auto& part : norm) parts.push_back(part.string());
        if (!parts.empty() && parts.back().empty()) parts.pop_back();  // "a/b/" ends in an empty name
        if (std::find(parts.begin(), parts.end(), "..") != parts.end())
          throw DataError(where + "'" + line + "' leaves the folder; expected <class>/<file> inside " + folder_);
        if (parts.size() < 2)
          throw DataError(where + "'" + line + "' has no class folder; expected <class>/<file>, relative to " +
                          folder_);
        const std::string full = (fs::path(folder_) / norm).string();
        if (::stat(full.c_str(), &st) != 0)
          throw DataError(where + full + ": cannot open: " + std::strerror(errno));
        if (!S_ISREG(st.st_mode)) throw DataError(where + full + ": not a regular file, expected an image");
        const auto cls = std::lower_bound(classes_.begin(), classes_.end(), parts[0]);
        if (cls == classes_.end() || *cls != parts[0])
          throw DataError(where + "'" + line + "': '" + parts[0] + "' is not one of the " +
                          plural(classes_.size(), "class folder", "class folders") + " of " + folder_ +
                          " (hidden folders are not classes)");
        const std::string id = norm.generic_string();
        if (auto [it, fresh] = seen.emplace(id, line_no); !fresh)
          throw DataError(where + "'" + line + "' is listed twice (first at line " + std::to_string(it->second) +
                          ")");
        paths_.push_back(full);
        labels_.push_back(static_cast<std::int64_t>(cls - classes_.begin()));
      }
      if (paths_.empty())
        throw DataError(list + ": lists no files; expected one image path per line, relative to " + folder_);
    }
  } catch (const fs::filesystem_error& e) {
    throw DataError(e.path1().string() + ": cannot read: " + e.code().message());
  }

  // One shape for every image: the first readable image's header fixes the
  // channels (and, without `size`, the size every other image must have).
  // With on_error = "skip" an image that fails here is set aside, keeping its
  // index: load() refuses it with the reason found now, and the run skips it.
  const bool skip = p.get<std::string>("on_error") == "skip";
  const double max_skip = p.get<double>("max_skip_fraction");
  const PixelLimit limit{max_pixels_, &pixels_key_};
  const std::size_t n = paths_.size();
  auto set_aside = [&](std::size_t i, const std::string& why) {
    if (!skip) throw DataError(why);
    unreadable_.emplace(static_cast<std::int64_t>(i), why);
    const auto bad = static_cast<double>(unreadable_.size());
    if (bad > max_skip * static_cast<double>(n))
      throw DataError(folder_ + ": " + std::to_string(unreadable_.size()) + " of the " +
                      plural(n, "image", "images") + " (" + fraction(bad / static_cast<double>(n)) +
                      " of them) cannot be read, more than " + data_key(p, "max_skip_fraction") + " = " +
                      fraction(max_skip) + " allows (" + data_key(p, "on_error") + " = \"skip\"); the last: " + why);
  };
  std::size_t first_index = 0;
  ImageHeader first;
  for (; first_index < n; ++first_index) {
    try {
      first = read_header(paths_[first_index], static_cast<std::int64_t>(first_index), limit);
      break;
    } catch (const DataError& e) {
      set_aside(first_index, e.what());
    }
  }
  if (first_index == n)
    throw DataError(folder_ + ": none of the " + plural(n, "image", "images") + " can be read; the last: " +
                    unreadable_.rbegin()->second);
  channels_ = channels != 0 ? channels : first.channels;
  if (size_ != 0) {
    height_ = width_ = size_;
  } else {
    height_ = first.height;
    width_ = first.width;
    const std::string first_is =
        (first_index == 0 ? "the first image, " : "the first readable image, ") + paths_[first_index];
    for (std::size_t i = first_index + 1; i < n; ++i) {
      ImageHeader h;
      try {
        h = read_header(paths_[i], static_cast<std::int64_t>(i), limit);
      } catch (const DataError& e) {
        set_aside(i, e.what());
        continue;
      }
      if (h.width != first.width || h.height != first.height)
        set_aside(i, what_of(paths_[i], static_cast<std::int64_t>(i)) + dims(h.width, h.height) +
                         " pixels (width x height), but " + first_is + ", is " + dims(first.width, first.height) +
                         "; a source reports one shape, so set " + size_key_ + " to resize every image to size x size");
    }
  }
  if (!unreadable_.empty()) {
    // Said once, on stderr: the run goes on without these images.
    constexpr std::size_t shown = 5;
    std::string msg = "warning: " + folder_ + ": " + std::to_string(unreadable_.size()) + " of the " +
                      plural(n, "image", "images") + " cannot be read and will be skipped (" +
                      data_key(p, "on_error") + " = \"skip\"):\n";
    std::size_t k = 0;
    for (const auto& [index, why] : unreadable_) {
      if (k++ == shown) break;
      msg += "  " + why + "\n";
    }
    if (unreadable_.size() > shown) msg += "  and " + std::to_string(unreadable_.size() - shown) + " more\n";
    std::fputs(msg.c_str(), stderr);
  }
}

contra::SourceInfo ImageFolderSource::info() const {
  contra::SourceInfo s;
  s.size = static_cast<std::int64_t>(paths_.size());
  s.shape = {height_, width_, channels_};
  s.num_classes = static_cast<std::int64_t>(classes_.size());
  return s;
}

std::int64_t ImageFolderSource::load(std::int64_t index, contra::Tensor& image) const {
  if (index < 0 || index >= static_cast<std::int64_t>(paths_.size()))
    throw DataError(folder_ + ": sample index " + std::to_string(index) + " is out of range for " +
                    plural(paths_.size(), "image", "images"));
  const auto i = static_cast<std::size_t>(index);
  if (const auto bad = unreadable_.find(index); bad != unreadable_.end()) throw DataError(bad->second);
  decode(paths_[i], index,
         Target{static_cast<int>(channels_), size_, width_, height_, &size_key_, {max_pixels_, &pixels_key_}}, image);
  return labels_[i];
}

}  // namespace contra::plugins
