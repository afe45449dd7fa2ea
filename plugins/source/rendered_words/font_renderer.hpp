#pragma once
/// \file
/// Fonts of the `rendered_words` source, and drawing a word with FreeType.

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace contra::plugins::rendered_words {

/// A font file read into memory once; FreeType faces are made from `bytes`.
struct FontFile {
  std::string path;
  std::string bytes;
};

/// The usable fonts among `entries` (font files, or folders searched
/// recursively for .ttf, .otf and .ttc files, in sorted order). A font is
/// usable when FreeType opens it as a scalable face with a glyph for every
/// ASCII letter. A listed file that is not usable is a ConfigError; unusable
/// fonts found in a folder are skipped, named on stderr. Throws ConfigError,
/// starting with `key` (e.g. "source.fonts"), for an entry that does not
/// exist and when no font is usable.
std::vector<FontFile> load_fonts(const std::vector<std::string>& entries, const std::string& key);

/// How one word is drawn; sizes and positions in pixels.
struct WordStyle {
  std::size_t font = 0;      ///< index into the fonts
  double size = 0;           ///< em size, before shrinking to fit
  double angle = 0;          ///< rotation, radians, counter-clockwise
  double shift_x = 0;        ///< place in the room left across: -1 left, 0 centred, 1 right
  double shift_y = 0;        ///< place in the room left down: -1 top, 0 centred, 1 bottom
  double margin = 0;         ///< pixels kept clear on each side
};

class FaceSet;

/// Draws words into coverage maps. FreeType's library and faces must not be
/// used by two threads at once, so each call takes a FaceSet (a library and
/// its faces, made from the fonts' bytes on first use) that no other call
/// holds, from a pool that grows to the number of threads calling at once.
/// Thread-safe.
class FontRenderer {
 public:
  explicit FontRenderer(std::vector<FontFile> fonts);
  ~FontRenderer();
  FontRenderer(const FontRenderer&) = delete;
  FontRenderer& operator=(const FontRenderer&) = delete;

  std::size_t font_count() const noexcept { return fonts_.size(); }
  const std::vector<FontFile>& fonts() const noexcept { return fonts_; }

  /// Sets `coverage` (height × width, row-major, 0 = background, 1 = ink) to
  /// `word` drawn in `style`: shrunk when needed so that the rotated ink fits
  /// inside the margins, then placed by the style's shifts. Throws DataError
  /// when FreeType fails.
  void draw(std::string_view word, const WordStyle& style, std::int64_t height, std::int64_t width,
            std::vector<float>& coverage) const;

 private:
  std::unique_ptr<FaceSet> take() const;
  void give_back(std::unique_ptr<FaceSet> faces) const;

  std::vector<FontFile> fonts_;
  mutable std::mutex mutex_;                          // guards idle_
  mutable std::vector<std::unique_ptr<FaceSet>> idle_;  // face sets no call holds
};

}  // namespace contra::plugins::rendered_words
