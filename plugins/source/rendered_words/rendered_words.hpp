#pragma once
/// \file
/// `rendered_words` source: words from a word list drawn in real fonts, as
/// MJSynth (Jaderberg et al. 2014) makes them; records of an image and its
/// word.

#include <contra/roles/source.hpp>
#include <contra/schema.hpp>
#include <contra/tensor.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace contra::plugins {

namespace rendered_words {
class FontRenderer;
}

/// Sample i is word i / samples_per_word of the split, drawn with the style
/// Rng(seed, 0, i, 0, 0) gives: font, size, position, rotation, colours,
/// background shading and noise. Nothing is stored but the words and the
/// font files' bytes: load() draws the image, the same bytes every time.
/// Thread-safe (see FontRenderer).
class RenderedWordsSource final : public contra::Source {
 public:
  static contra::Schema schema();
  /// Reads the word list and the fonts; throws ConfigError naming the key,
  /// the file and what was expected when either is unusable or when the list
  /// has too few words for `test_words`.
  explicit RenderedWordsSource(const contra::Params& p);
  ~RenderedWordsSource() override;

  contra::SourceInfo info() const override;
  /// Draws sample `index` into `image` as u8 [height, width, channels];
  /// returns its word's index in the split. Throws DataError for an index
  /// out of range.
  std::int64_t load(std::int64_t index, contra::Tensor& image) const override;
  /// The image and, as the record's one text, the word.
  std::int64_t load_record(std::int64_t index, contra::Record& out) const override;
  std::vector<std::int64_t> labels() const override;
  /// The split's words, by label: zero-shot prompts are made from them.
  std::vector<std::string> class_names() const override { return words_; }

  /// The split's words, in word list order; label l is words()[l].
  const std::vector<std::string>& words() const noexcept { return words_; }
  /// How many fonts the source draws with.
  std::size_t font_count() const noexcept;

 private:
  std::int64_t height_;
  std::int64_t width_;
  std::int64_t channels_;
  std::int64_t samples_per_word_;
  std::uint64_t seed_;
  double max_rotation_;  // radians
  double noise_;         // largest noise standard deviation, in grey levels
  std::vector<std::string> words_;
  std::unique_ptr<rendered_words::FontRenderer> renderer_;
};

}  // namespace contra::plugins
