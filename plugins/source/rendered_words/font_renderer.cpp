#include "font_renderer.hpp"

#include <contra/errors.hpp>

#include <ft2build.h>
#include FT_FREETYPE_H

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <system_error>

namespace fs = std::filesystem;

namespace contra::plugins::rendered_words {

namespace {

// Unhinted outlines scale linearly, so a word measured at one size can be
// shrunk to fit by a ratio; embedded bitmaps would not rotate.
constexpr FT_Int32 load_flags = FT_LOAD_NO_HINTING | FT_LOAD_NO_BITMAP;

// Fonts are a few MB (a CJK collection some tens); a larger file is not a
// font and is not read into memory.
constexpr std::uintmax_t max_font_bytes = std::uintmax_t(256) << 20;

const char* const font_extensions[] = {".ttf", ".otf", ".ttc"};
const std::string font_expectation = "a scalable TrueType or OpenType font with a glyph for every ASCII letter";

// FreeType's error texts, from its own list: FT_Error_String() returns
// nothing in builds without FT_CONFIG_OPTION_ERROR_STRINGS, Debian's among
// them.
#undef FTERRORS_H_
#define FT_ERRORDEF(e, v, s) {e, s},
#define FT_ERROR_START_LIST {
#define FT_ERROR_END_LIST {0, nullptr}};
const struct {
  int code;
  const char* text;
} ft_error_texts[] =
#include FT_ERRORS_H

std::string ft_error(FT_Error e) {
  for (const auto& entry : ft_error_texts)
    if (entry.text && entry.code == e) {
      std::string text = entry.text;
      if (!text.empty()) text[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(text[0])));
      return text;
    }
  return "FreeType error " + std::to_string(e);
}

/// 26.6 fixed point (FreeType's unit of outline coordinates) from pixels.
FT_Pos to_26_6(double pixels) { return static_cast<FT_Pos>(std::lround(pixels * 64.0)); }

/// 16.16 fixed point (FreeType's unit of matrix entries).
FT_Fixed to_16_16(double v) { return static_cast<FT_Fixed>(std::lround(v * 65536.0)); }

struct FaceDeleter {
  void operator()(FT_Face f) const { FT_Done_Face(f); }
};
using FaceHandle = std::unique_ptr<FT_FaceRec_, FaceDeleter>;

/// A FreeType library: what every face is made in.
class Library {
 public:
  Library() {
    if (const FT_Error e = FT_Init_FreeType(&library_))
      throw DataError("rendered_words: cannot start FreeType: " + ft_error(e));
  }
  ~Library() { FT_Done_FreeType(library_); }
  Library(const Library&) = delete;
  Library& operator=(const Library&) = delete;

  /// A face of `font`, or nullptr with `error` set.
  FaceHandle open(const FontFile& font, FT_Error& error) const {
    FT_Face face = nullptr;
    error = FT_New_Memory_Face(library_, reinterpret_cast<const FT_Byte*>(font.bytes.data()),
                               static_cast<FT_Long>(font.bytes.size()), 0, &face);
    return FaceHandle(error ? nullptr : face);
  }

 private:
  FT_Library library_ = nullptr;
};

/// Why `font` cannot draw words, or "" when it can: FreeType must open it as
/// a scalable face and draw every ASCII letter. Drawing them all here means a
/// damaged font is refused when the source is built, not in load().
std::string unusable_reason(const Library& library, const FontFile& font) {
  FT_Error error = 0;
  const FaceHandle face = library.open(font, error);
  if (!face) return "FreeType cannot open it (" + ft_error(error) + ")";
  if (!FT_IS_SCALABLE(face.get())) return "not a scalable font";
  if (const FT_Error e = FT_Set_Char_Size(face.get(), 0, to_26_6(16), 72, 72))
    return "cannot be scaled (" + ft_error(e) + ")";
  for (const char* letters : {"abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ"})
    for (const char* c = letters; *c; ++c) {
      const FT_UInt glyph = FT_Get_Char_Index(face.get(), static_cast<FT_ULong>(*c));
      if (glyph == 0) return std::string("no glyph for '") + *c + "'";
      if (const FT_Error e = FT_Load_Glyph(face.get(), glyph, load_flags | FT_LOAD_RENDER))
        return std::string("cannot draw '") + *c + "' (" + ft_error(e) + ")";
    }
  return "";
}

bool has_font_extension(const fs::path& p) {
  std::string ext = p.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return std::find(std::begin(font_extensions), std::end(font_extensions), ext) != std::end(font_extensions);
}

/// The bytes of a font file, or "" with `reason` set.
std::string read_font(const std::string& path, std::string& reason) {
  std::error_code ec;
  const std::uintmax_t size = fs::file_size(path, ec);
  if (ec) {
    reason = "cannot read: " + ec.message();
    return {};
  }
  if (size > max_font_bytes) {
    reason = std::to_string(size) + " bytes, larger than any font (at most " + std::to_string(max_font_bytes) + ")";
    return {};
  }
  std::ifstream in(path, std::ios::binary);
  std::string bytes(static_cast<std::size_t>(size), '\0');
  if (!in.read(bytes.data(), static_cast<std::streamsize>(size))) {
    reason = "cannot read it whole";
    return {};
  }
  if (bytes.empty()) reason = "empty file";
  return bytes;
}

/// Where the glyphs of a word go, unrotated: pen positions along a baseline
/// at y = 0 (y up), and the box holding their ink, all in pixels.
struct Layout {
  std::vector<FT_UInt> glyphs;
  std::vector<double> pen_x;
  double x_min = 0, x_max = 0, y_min = 0, y_max = 0;
  double width() const { return x_max - x_min; }
  double height() const { return y_max - y_min; }
};

}  // namespace

/// A FreeType library and a face per font, made on first use; used by one
/// thread at a time.
class FaceSet {
 public:
  explicit FaceSet(const std::vector<FontFile>& fonts) : fonts_(fonts), faces_(fonts.size()) {}

  FT_Face face(std::size_t font) {
    if (!faces_[font]) {
      FT_Error error = 0;
      faces_[font] = library_.open(fonts_[font], error);
      if (!faces_[font])
        throw DataError("rendered_words: " + fonts_[font].path + ": FreeType cannot open it (" + ft_error(error) +
                        ")");
    }
    return faces_[font].get();
  }
  const std::string& path(std::size_t font) const { return fonts_[font].path; }

 private:
  const std::vector<FontFile>& fonts_;
  Library library_;                // declared before the faces: destroyed after them
  std::vector<FaceHandle> faces_;
};

namespace {

[[noreturn]] void fail(const FaceSet& faces, std::size_t font, std::string_view word, const std::string& what,
                       FT_Error e) {
  throw DataError("rendered_words: " + faces.path(font) + ": cannot draw \"" + std::string(word) + "\": " + what +
                  " (" + ft_error(e) + ")");
}

Layout lay_out(FaceSet& faces, std::size_t font, std::string_view word, double size) {
  FT_Face face = faces.face(font);
  if (const FT_Error e = FT_Set_Char_Size(face, 0, std::max<FT_F26Dot6>(64, to_26_6(size)), 72, 72))
    fail(faces, font, word, "cannot set the size", e);
  FT_Set_Transform(face, nullptr, nullptr);
  Layout l;
  l.x_min = l.y_min = std::numeric_limits<double>::infinity();
  l.x_max = l.y_max = -std::numeric_limits<double>::infinity();
  FT_Pos pen = 0;
  FT_UInt previous = 0;
  for (char c : word) {
    const FT_UInt glyph = FT_Get_Char_Index(face, static_cast<FT_ULong>(static_cast<unsigned char>(c)));
    if (previous != 0 && FT_HAS_KERNING(face)) {
      FT_Vector kern{0, 0};
      if (FT_Get_Kerning(face, previous, glyph, FT_KERNING_UNFITTED, &kern) == 0) pen += kern.x;
    }
    if (const FT_Error e = FT_Load_Glyph(face, glyph, load_flags)) fail(faces, font, word, "cannot load a glyph", e);
    const FT_Glyph_Metrics& m = face->glyph->metrics;
    const double x = static_cast<double>(pen) / 64.0;
    if (m.width > 0 && m.height > 0) {
      l.x_min = std::min(l.x_min, x + static_cast<double>(m.horiBearingX) / 64.0);
      l.x_max = std::max(l.x_max, x + static_cast<double>(m.horiBearingX + m.width) / 64.0);
      l.y_min = std::min(l.y_min, static_cast<double>(m.horiBearingY - m.height) / 64.0);
      l.y_max = std::max(l.y_max, static_cast<double>(m.horiBearingY) / 64.0);
    }
    l.glyphs.push_back(glyph);
    l.pen_x.push_back(x);
    pen += face->glyph->advance.x;
    previous = glyph;
  }
  if (l.x_min > l.x_max) l.x_min = l.x_max = l.y_min = l.y_max = 0;  // no ink at all
  return l;
}

}  // namespace

std::vector<FontFile> load_fonts(const std::vector<std::string>& entries, const std::string& key) {
  const Library library;
  std::vector<FontFile> fonts;
  std::vector<std::string> skipped;  // "path (reason)" of unusable fonts found in folders
  for (std::size_t i = 0; i < entries.size(); ++i) {
    const std::string& entry = entries[i];
    const std::string at = key + "[" + std::to_string(i) + "]: " + entry + ": ";
    std::error_code ec;
    const fs::file_status status = fs::status(entry, ec);
    if (ec || !fs::exists(status))
      throw ConfigError(at + "cannot open: " + (ec ? ec.message() : "No such file or directory") +
                        "; expected a font file (.ttf, .otf, .ttc) or a folder of them");
    if (!fs::is_directory(status)) {
      FontFile font{entry, {}};
      std::string reason;
      font.bytes = read_font(entry, reason);
      if (reason.empty()) reason = unusable_reason(library, font);
      if (!reason.empty()) throw ConfigError(at + reason + "; expected " + font_expectation);
      fonts.push_back(std::move(font));
      continue;
    }
    std::vector<std::string> found;
    for (fs::recursive_directory_iterator it(entry, fs::directory_options::skip_permission_denied, ec), end;
         !ec && it != end; it.increment(ec))
      if (it->is_regular_file(ec) && has_font_extension(it->path())) found.push_back(it->path().string());
    std::sort(found.begin(), found.end());
    for (const std::string& path : found) {
      FontFile font{path, {}};
      std::string reason;
      font.bytes = read_font(path, reason);
      if (reason.empty()) reason = unusable_reason(library, font);
      if (reason.empty()) fonts.push_back(std::move(font));
      else skipped.push_back(path + " (" + reason + ")");
    }
  }
  std::string skipped_text;
  for (std::size_t k = 0; k < skipped.size() && k < 3; ++k) skipped_text += (k ? "; " : "") + skipped[k];
  if (skipped.size() > 3) skipped_text += "; and " + std::to_string(skipped.size() - 3) + " more";
  if (fonts.empty()) {
    std::string listed;
    for (const auto& e : entries) listed += (listed.empty() ? "" : ", ") + e;
    throw ConfigError(key + ": no usable font in " + (listed.empty() ? "an empty list" : listed) +
                      (skipped.empty() ? " (no .ttf, .otf or .ttc file)" : ": " + skipped_text) + "; expected " +
                      font_expectation);
  }
  if (!skipped.empty())
    std::fprintf(stderr, "rendered_words: skipped %zu unusable font%s: %s\n", skipped.size(),
                 skipped.size() == 1 ? "" : "s", skipped_text.c_str());
  return fonts;
}

FontRenderer::FontRenderer(std::vector<FontFile> fonts) : fonts_(std::move(fonts)) {}

FontRenderer::~FontRenderer() = default;

std::unique_ptr<FaceSet> FontRenderer::take() const {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!idle_.empty()) {
      std::unique_ptr<FaceSet> faces = std::move(idle_.back());
      idle_.pop_back();
      return faces;
    }
  }
  return std::make_unique<FaceSet>(fonts_);  // a call more at once than ever before
}

void FontRenderer::give_back(std::unique_ptr<FaceSet> faces) const {
  std::lock_guard<std::mutex> lock(mutex_);
  idle_.push_back(std::move(faces));
}

void FontRenderer::draw(std::string_view word, const WordStyle& style, std::int64_t height, std::int64_t width,
                        std::vector<float>& coverage) const {
  struct Lease {
    const FontRenderer& renderer;
    std::unique_ptr<FaceSet> faces;
    ~Lease() { renderer.give_back(std::move(faces)); }
  } lease{*this, take()};
  FaceSet& faces = *lease.faces;
  const std::size_t font = style.font;
  const double H = static_cast<double>(height), W = static_cast<double>(width);
  const double cos_a = std::cos(style.angle), sin_a = std::sin(style.angle);
  coverage.assign(static_cast<std::size_t>(height * width), 0.0f);

  // The box around the rotated ink, and the room the margins leave.
  const auto rotated_size = [&](const Layout& l) {
    return std::make_pair(l.width() * std::abs(cos_a) + l.height() * std::abs(sin_a),
                          l.width() * std::abs(sin_a) + l.height() * std::abs(cos_a));
  };
  const double room_w = std::max(1.0, W - 2 * style.margin), room_h = std::max(1.0, H - 2 * style.margin);
  double size = style.size;
  Layout layout = lay_out(faces, font, word, size);
  if (const auto [w, h] = rotated_size(layout); w > room_w || h > room_h) {
    // 2% under the exact ratio: 26.6 rounding of the smaller size's metrics.
    size *= 0.98 * std::min(room_w / w, room_h / h);
    layout = lay_out(faces, font, word, size);
  }
  const auto [ink_w, ink_h] = rotated_size(layout);
  const double slack_x = std::max(0.0, room_w - ink_w), slack_y = std::max(0.0, room_h - ink_h);
  // The ink's centre in image coordinates (y down), then in FreeType's (y up).
  const double centre_x = W / 2 + style.shift_x * slack_x / 2, centre_y = H - (H / 2 + style.shift_y * slack_y / 2);
  const double ink_x = (layout.x_min + layout.x_max) / 2, ink_y = (layout.y_min + layout.y_max) / 2;

  FT_Face face = faces.face(font);
  FT_Matrix rotation{to_16_16(cos_a), to_16_16(-sin_a), to_16_16(sin_a), to_16_16(cos_a)};
  for (std::size_t g = 0; g < layout.glyphs.size(); ++g) {
    // The glyph's origin, rotated about the ink's centre.
    const double dx = layout.pen_x[g] - ink_x, dy = -ink_y;
    FT_Vector origin{to_26_6(centre_x + dx * cos_a - dy * sin_a), to_26_6(centre_y + dx * sin_a + dy * cos_a)};
    FT_Set_Transform(face, &rotation, &origin);
    if (const FT_Error e = FT_Load_Glyph(face, layout.glyphs[g], load_flags | FT_LOAD_RENDER))
      fail(faces, font, word, "cannot render a glyph", e);
    const FT_GlyphSlot slot = face->glyph;
    const FT_Bitmap& bitmap = slot->bitmap;
    // FT_LOAD_RENDER of an outline gives 8-bit coverage, top row first.
    if (bitmap.pixel_mode != FT_PIXEL_MODE_GRAY || bitmap.pitch < 0) continue;
    const std::int64_t left = slot->bitmap_left, top = height - slot->bitmap_top;
    for (std::int64_t r = 0; r < static_cast<std::int64_t>(bitmap.rows); ++r) {
      const std::int64_t y = top + r;
      if (y < 0 || y >= height) continue;
      const unsigned char* row = bitmap.buffer + r * bitmap.pitch;
      for (std::int64_t c = 0; c < static_cast<std::int64_t>(bitmap.width); ++c) {
        const std::int64_t x = left + c;
        if (x < 0 || x >= width || row[c] == 0) continue;
        float& cell = coverage[static_cast<std::size_t>(y * width + x)];
        cell = std::max(cell, static_cast<float>(row[c]) * (1.0f / 255.0f));
      }
    }
  }
  FT_Set_Transform(face, nullptr, nullptr);
}

}  // namespace contra::plugins::rendered_words
