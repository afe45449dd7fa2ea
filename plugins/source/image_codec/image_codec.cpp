#include "image_codec.hpp"

#include <contra/errors.hpp>

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
#include <vector>

namespace contra::plugins::image_codec {

std::string dims(std::int64_t width, std::int64_t height) {
  return std::to_string(width) + "x" + std::to_string(height);
}

namespace {

std::string plural(std::uint64_t n, const char* one, const char* many) {
  return std::to_string(n) + " " + (n == 1 ? one : many);
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

[[noreturn]] void refuse_empty(const std::string& what) {
  throw DataError(what + "empty file, expected a PNG or JPEG image");
}

Format sniff(std::FILE* f, const std::string& what) {
  unsigned char sig[8];
  const std::size_t n = std::fread(sig, 1, sizeof sig, f);
  if (n < sizeof sig && std::ferror(f)) throw DataError(what + "cannot read: " + std::strerror(errno));
  if (n == 0) refuse_empty(what);
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


/// A FILE* reading `bytes`: the decoders read through stdio (libpng's read
/// callback above, jpeg_stdio_src), so bytes in memory take the same path
/// as a file, and report truncation the same way.
std::FILE* open_bytes(Bytes bytes, const std::string& what) {
  if (bytes.empty()) refuse_empty(what);  // fmemopen refuses a size of 0
  // Mode "r" never writes through the pointer.
  std::FILE* f = ::fmemopen(const_cast<std::uint8_t*>(bytes.data()), bytes.size(), "rb");
  if (!f) throw DataError(what + "cannot read: " + std::strerror(errno));
  return f;
}

void check_side(const ImageHeader& h, const std::string& what, const PixelLimit& limit) {
  if (h.width <= 0 || h.height <= 0 || h.width > max_side || h.height > max_side)
    throw DataError(what + dims(h.width, h.height) + " pixels (width x height), expected at least 1x1 and at most " +
                    std::to_string(max_side) + " on each side");
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

ImageHeader header_from(std::FILE* f, const std::string& what, const PixelLimit& limit) {
  if (sniff(f, what) == Format::png) {
    PngReader r(f, what);
    return header_of(r, what, limit);
  }
  JpegReader r(f, what);
  return header_of(r, what, limit);
}

template <class Reader>
void decode_with(Reader& r, const std::string& what, const Target& t, contra::Tensor& image) {
  const ImageHeader h = header_of(r, what, t.limit);
  if (!t.resize && (h.width != t.width || h.height != t.height))
    throw DataError(what + dims(h.width, h.height) + " pixels (width x height), but " + *t.mismatch);
  const Pixels px = r.start(t.channels);
  image.ensure({t.height, t.width, t.channels}, DType::u8);
  std::uint8_t* out = image.data<std::uint8_t>();
  if (native(px, t.channels) && t.width == h.width && t.height == h.height) {
    r.read_all(out, static_cast<std::size_t>(t.width * t.channels));  // straight into the image
    return;
  }
  RowPipeline p(scratch(), h.width, h.height, px, t.channels, t.width, t.height, out);
  r.read_each(p, px);
  p.finish();
}

void decode_from(std::FILE* f, const std::string& what, const Target& t, contra::Tensor& image) {
  if (sniff(f, what) == Format::png) {
    PngReader r(f, what);
    decode_with(r, what, t, image);
  } else {
    JpegReader r(f, what);
    decode_with(r, what, t, image);
  }
}

}  // namespace

ImageHeader read_header(const std::string& path, const std::string& what, const PixelLimit& limit) {
  CFile f(open_file(path, what));
  return header_from(f.get(), what, limit);
}

ImageHeader read_header(Bytes bytes, const std::string& what, const PixelLimit& limit) {
  CFile f(open_bytes(bytes, what));
  return header_from(f.get(), what, limit);
}

void decode(const std::string& path, const std::string& what, const Target& target, Tensor& image) {
  CFile f(open_file(path, what));
  decode_from(f.get(), what, target, image);
}

void decode(Bytes bytes, const std::string& what, const Target& target, Tensor& image) {
  CFile f(open_bytes(bytes, what));
  decode_from(f.get(), what, target, image);
}

}  // namespace contra::plugins::image_codec
