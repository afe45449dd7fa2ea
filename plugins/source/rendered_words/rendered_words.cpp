#include "rendered_words.hpp"

#include "font_renderer.hpp"
#include "word_list.hpp"

#include <contra/rng.hpp>

#include <algorithm>
#include <array>
#include <cmath>
#include <filesystem>

namespace contra::plugins {

using rendered_words::FontRenderer;
using rendered_words::WordStyle;

namespace {

constexpr double pi = 3.141592653589793;

// Luminance the ink keeps from the background, in grey levels, on top of the
// background's shading: words stay legible whatever colours are drawn.
constexpr double min_contrast = 80;
constexpr double max_shading = 24;  // background brightness change across the image, grey levels

std::string located(const contra::Params& p, const char* name) {
  std::string where = p.where(name).str();
  return where.empty() ? std::string() : where + ": ";
}

std::string key(const contra::Params& p, const char* name) {
  return p.prefix().empty() ? std::string(name) : p.prefix() + "." + name;
}

/// The `fonts` entries as paths: relative ones are taken relative to the
/// pipeline file that set them, as Params::path does for one path.
std::vector<std::string> font_paths(const contra::Params& p) {
  std::vector<std::string> paths = p.get<std::vector<std::string>>("fonts");
  const contra::SourceLocation& where = p.where("fonts");
  if (!p.is_set("fonts") || where.file.empty() || where.line <= 0) return paths;
  const std::filesystem::path base = std::filesystem::path(where.file).parent_path();
  for (std::string& path : paths)
    if (!path.empty() && std::filesystem::path(path).is_relative()) path = (base / path).lexically_normal().string();
  return paths;
}

/// Nearly Gaussian noise of standard deviation 1 from one 32-bit draw: the
/// sum of its four bytes (Irwin-Hall, n = 4), centred and scaled. A
/// Box-Muller draw per pixel would take most of load()'s time.
double unit_noise(std::uint32_t bits) {
  const double sum = static_cast<double>((bits & 0xff) + ((bits >> 8) & 0xff) + ((bits >> 16) & 0xff) + (bits >> 24));
  constexpr double mean = 4 * 255 / 2.0, sd = 147.8006765;  // sqrt(4 (256^2 - 1) / 12)
  return (sum - mean) / sd;
}

double luminance(const std::array<double, 3>& c, std::int64_t channels) {
  return channels == 1 ? c[0] : 0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2];
}

/// Moves `ink` towards black on a light background, white on a dark one,
/// just far enough that its luminance differs from the background's by
/// `needed`; an ink already that far is kept. Luminance is linear in the
/// channels, so the blend is solved exactly. Feasible for needed <= 127.5.
void keep_contrast(std::array<double, 3>& ink, double background, std::int64_t channels, double needed) {
  const double l = luminance(ink, channels);
  if (std::abs(l - background) >= needed) return;
  const double extreme = background >= 127.5 ? 0.0 : 255.0;
  const double goal = background >= 127.5 ? background - needed : background + needed;
  const double a = (goal - l) / (extreme - l);
  for (double& c : ink) c += a * (extreme - c);
}

}  // namespace

contra::Schema RenderedWordsSource::schema() {
  return contra::Schema("rendered_words",
                        "words of a word list drawn in real fonts (MJSynth-style); records of an image and its word")
      .add<std::string>("words", "/usr/share/dict/words",
                        "word list, one word per line; lines other than ASCII letters are ignored")
      .add<std::vector<std::string>>("fonts", std::vector<std::string>{"/usr/share/fonts/truetype/dejavu"},
                                     "font files (.ttf, .otf, .ttc), or folders searched for them")
      .length(1, -1)
      .add<std::int64_t>("min_length", 3, "shortest word used, in letters").range(1, 64)
      .add<std::int64_t>("max_length", 12, "longest word used, in letters").range(1, 64)
      .add<std::string>("split", "train", "which words: \"train\", or the test_words held out as \"test\"")
      .choices({"train", "test"})
      .add<std::int64_t>("test_words", 1000, "words held out for the test split; never in the train split")
      .at_least(1)
      .add<std::int64_t>("samples_per_word", 1, "renderings of each word; sample i is word i / samples_per_word")
      .range(1, 1000000)
      .add<std::int64_t>("height", 32, "image height in pixels").range(8, 1024)
      .add<std::int64_t>("width", 128, "image width in pixels").range(8, 4096)
      .add<std::int64_t>("channels", 1, "1 (grey) or 3 (RGB)").range(1, 3)
      .add<double>("max_rotation", 3.0, "largest rotation of a word, degrees either way").range(0.0, 45.0)
      .add<double>("noise", 8.0, "largest standard deviation of the pixel noise, grey levels").range(0.0, 64.0)
      .add<std::int64_t>("seed", 0, "seed of the renderings (font, size, position, colours, noise)").at_least(0);
}

RenderedWordsSource::RenderedWordsSource(const contra::Params& p)
    : height_(p.get<std::int64_t>("height")),
      width_(p.get<std::int64_t>("width")),
      channels_(p.get<std::int64_t>("channels")),
      samples_per_word_(p.get<std::int64_t>("samples_per_word")),
      seed_(p.get<std::uint64_t>("seed")),
      max_rotation_(p.get<double>("max_rotation") * pi / 180.0),
      noise_(p.get<double>("noise")) {
  if (channels_ == 2)
    throw contra::ConfigError(located(p, "channels") + key(p, "channels") + " = 2: expected 1 (grey) or 3 (RGB)");
  rendered_words::WordRules rules{p.get<std::int64_t>("min_length"), p.get<std::int64_t>("max_length")};
  if (rules.min_length > rules.max_length)
    throw contra::ConfigError(located(p, "min_length") + key(p, "min_length") + " = " +
                              std::to_string(rules.min_length) + " is larger than " + key(p, "max_length") + " = " +
                              std::to_string(rules.max_length) + "; expected min_length <= max_length");

  const std::string list = p.path("words");
  const std::vector<std::string> all =
      rendered_words::read_word_list(list, rules, located(p, "words") + key(p, "words") + ": " + list);
  const std::int64_t test_words = p.get<std::int64_t>("test_words");
  if (static_cast<std::int64_t>(all.size()) <= test_words)
    throw contra::ConfigError(located(p, "test_words") + key(p, "test_words") + " = " + std::to_string(test_words) +
                              " leaves no training word: " + list + " has " + std::to_string(all.size()) +
                              (all.size() == 1 ? " word" : " words") + " of " + std::to_string(rules.min_length) +
                              " to " + std::to_string(rules.max_length) +
                              " ASCII letters (distinct ignoring case); expected more than " +
                              std::to_string(test_words));
  words_ = rendered_words::split_words(all, test_words, p.get<std::string>("split") == "test");

  renderer_ = std::make_unique<FontRenderer>(
      rendered_words::load_fonts(font_paths(p), located(p, "fonts") + key(p, "fonts")));
}

RenderedWordsSource::~RenderedWordsSource() = default;

std::size_t RenderedWordsSource::font_count() const noexcept { return renderer_->font_count(); }

contra::SourceInfo RenderedWordsSource::info() const {
  contra::SourceInfo s;
  s.size = static_cast<std::int64_t>(words_.size()) * samples_per_word_;
  s.shape = {height_, width_, channels_};
  s.num_classes = static_cast<std::int64_t>(words_.size());
  s.fields = {{"image", contra::FieldKind::image, s.shape}, {"text", contra::FieldKind::text, {}}};
  return s;
}

std::vector<std::int64_t> RenderedWordsSource::labels() const {
  std::vector<std::int64_t> out;
  out.reserve(words_.size() * static_cast<std::size_t>(samples_per_word_));
  for (std::size_t w = 0; w < words_.size(); ++w)
    out.insert(out.end(), static_cast<std::size_t>(samples_per_word_), static_cast<std::int64_t>(w));
  return out;
}

std::int64_t RenderedWordsSource::load(std::int64_t index, contra::Tensor& image) const {
  const std::int64_t size = static_cast<std::int64_t>(words_.size()) * samples_per_word_;
  if (index < 0 || index >= size)
    throw DataError("rendered_words: sample index " + std::to_string(index) + " is out of range for " +
                    std::to_string(size) + (size == 1 ? " sample" : " samples"));
  const std::int64_t label = index / samples_per_word_;
  const std::int64_t H = height_, W = width_, C = channels_;

  // Every draw in a fixed order from one stream keyed by the sample: the
  // same image whatever thread or order loads it.
  contra::Rng rng(seed_, 0, static_cast<std::uint64_t>(index), 0, 0);
  WordStyle style;
  style.font = static_cast<std::size_t>(rng.integer(0, static_cast<std::int64_t>(renderer_->font_count()) - 1));
  style.size = rng.uniform(0.5, 0.95) * static_cast<double>(H);
  style.angle = rng.uniform(-1.0, 1.0) * max_rotation_;
  style.shift_x = rng.uniform(-1.0, 1.0);
  style.shift_y = rng.uniform(-1.0, 1.0);
  style.margin = std::max(1.0, 0.05 * static_cast<double>(std::min(H, W)));

  std::array<double, 3> background{}, ink{};
  for (auto* colour : {&background, &ink})
    for (std::int64_t c = 0; c < C; ++c) (*colour)[static_cast<std::size_t>(c)] = static_cast<double>(rng.integer(0, 255));
  const double shading = rng.uniform(0.0, max_shading);
  const double shading_angle = rng.uniform(0.0, 2 * pi);
  const double noise_sd = rng.uniform(0.0, noise_);
  keep_contrast(ink, luminance(background, C), C, min_contrast + shading);

  std::vector<float> coverage;
  renderer_->draw(words_[static_cast<std::size_t>(label)], style, H, W, coverage);

  // Background shading: a linear ramp of ±shading/2 along a random direction.
  const double half_extent = static_cast<double>(std::max(H, W)) / 2;
  const double ramp_x = std::cos(shading_angle) * shading / 2 / half_extent;
  const double ramp_y = std::sin(shading_angle) * shading / 2 / half_extent;
  image.ensure({H, W, C}, DType::u8);
  std::uint8_t* out = image.data<std::uint8_t>();
  for (std::int64_t y = 0; y < H; ++y)
    for (std::int64_t x = 0; x < W; ++x) {
      const double shade = (static_cast<double>(x) - static_cast<double>(W) / 2) * ramp_x +
                           (static_cast<double>(y) - static_cast<double>(H) / 2) * ramp_y;
      const double a = coverage[static_cast<std::size_t>(y * W + x)];
      for (std::int64_t c = 0; c < C; ++c) {
        const auto k = static_cast<std::size_t>(c);
        const double noise = noise_sd > 0 ? noise_sd * unit_noise(rng.next_u32()) : 0.0;
        const double v = (background[k] + shade) * (1 - a) + ink[k] * a + noise;
        out[(y * W + x) * C + c] = static_cast<std::uint8_t>(std::clamp(v, 0.0, 255.0) + 0.5);
      }
    }
  return label;
}

std::int64_t RenderedWordsSource::load_record(std::int64_t index, contra::Record& out) const {
  out.images.resize(1);
  const std::int64_t label = load(index, out.images[0]);
  out.texts.assign(1, words_[static_cast<std::size_t>(label)]);
  return label;
}

}  // namespace contra::plugins
