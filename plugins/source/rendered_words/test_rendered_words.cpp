#include "rendered_words.hpp"

#include <contra/testing.hpp>
#include <test_support.hpp>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <set>
#include <thread>

using contra::ConfigError;
using contra::DataError;
using contra::Tensor;
using contra::plugins::RenderedWordsSource;
using contra::test::TempDir;
using contra::test::write_file;

namespace {

const std::string dejavu = "/usr/share/fonts/truetype/dejavu";
const std::string dejavu_sans = dejavu + "/DejaVuSans.ttf";

#define REQUIRE_DEJAVU()                                                                            \
  if (!std::filesystem::exists(dejavu_sans)) {                                                     \
    WARN("SKIPPED: DejaVu fonts not installed (" << dejavu << "; Debian: apt-get install fonts-dejavu-core)"); \
    return;                                                                                        \
  }

using I = std::int64_t;
using S = std::string;
using Values = std::vector<std::pair<std::string, contra::Value>>;

RenderedWordsSource make(const Values& values) {
  std::vector<contra::RawParam> raw;
  for (const auto& [name, value] : values) raw.push_back({name, value, {}});
  contra::Diagnostics d;
  const contra::Params p = RenderedWordsSource::schema().bind(raw, "rendered_words", {}, d);
  if (!d.empty()) throw ConfigError(contra::format_diagnostics(d));
  return RenderedWordsSource(p);
}

Values with(Values values, const std::string& name, contra::Value value) {
  values.emplace_back(name, std::move(value));
  return values;
}

/// Ten words, one a line.
std::string ten_words() { return "apple\nbanana\ncherry\ndate\nelder\nfig\ngrape\nhazel\nilex\njuniper\n"; }

std::vector<std::uint8_t> pixels(const Tensor& t) {
  const auto* p = t.data<std::uint8_t>();
  return {p, p + t.numel()};
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

/// Where the ink of a 1-channel image is: pixels farther than 40 grey levels
/// from the image's median (the background, which most pixels are).
struct Ink {
  std::int64_t count = 0, x_min = 1 << 30, x_max = -1, y_min = 1 << 30, y_max = -1;
};
Ink find_ink(const Tensor& image) {
  const std::int64_t H = image.dim(0), W = image.dim(1);
  std::vector<std::uint8_t> sorted = pixels(image);
  std::nth_element(sorted.begin(), sorted.begin() + static_cast<std::ptrdiff_t>(sorted.size() / 2), sorted.end());
  const int background = sorted[sorted.size() / 2];
  Ink ink;
  for (std::int64_t y = 0; y < H; ++y)
    for (std::int64_t x = 0; x < W; ++x)
      if (std::abs(int(image.data<std::uint8_t>()[y * W + x]) - background) > 40) {
        ++ink.count;
        ink.x_min = std::min(ink.x_min, x);
        ink.x_max = std::max(ink.x_max, x);
        ink.y_min = std::min(ink.y_min, y);
        ink.y_max = std::max(ink.y_max, y);
      }
  return ink;
}

}  // namespace

TEST_CASE("rendered_words: schema is well formed", "[plugins][rendered_words]") {
  CHECK_NOTHROW(RenderedWordsSource::schema().check_well_formed());
}

TEST_CASE("rendered_words: the default word list and fonts: splits of /usr/share/dict/words, disjoint",
          "[plugins][rendered_words]") {
  REQUIRE_DEJAVU();
  if (!std::filesystem::exists("/usr/share/dict/words")) {
    WARN("SKIPPED: /usr/share/dict/words not installed (Debian: apt-get install wamerican)");
    return;
  }
  const auto train = make({}), test = make({{"split", S("test")}});
  CHECK(test.words().size() == 1000);
  CHECK(train.words().size() > 10000);
  CHECK(train.font_count() >= 10);
  std::set<std::string> train_words;
  for (const auto& w : train.words()) {
    REQUIRE((w.size() >= 3 && w.size() <= 12));
    REQUIRE(train_words.insert(lower(w)).second);  // distinct ignoring case
  }
  for (const auto& w : test.words()) CHECK(train_words.count(lower(w)) == 0);

  const contra::SourceInfo info = train.info();
  CHECK(info.size == static_cast<std::int64_t>(train.words().size()));
  CHECK(info.num_classes == info.size);
  CHECK(info.shape == contra::ImageShape{32, 128, 1});
  REQUIRE(info.fields.size() == 2);
  CHECK(info.fields[0].name == "image");
  CHECK(info.fields[0].kind == contra::FieldKind::image);
  CHECK(info.fields[0].shape == info.shape);
  CHECK(info.fields[1].name == "text");
  CHECK(info.fields[1].kind == contra::FieldKind::text);

  const auto r = contra::testing::check_source(train, 16);
  INFO(r.message);
  CHECK(r.ok);
}

TEST_CASE("rendered_words: the word list keeps lines of ASCII letters, first spelling, in file order",
          "[plugins][rendered_words]") {
  REQUIRE_DEJAVU();
  TempDir dir("rendered_words");
  write_file(dir.file("words"), std::string("\xef\xbb\xbf") + "egg\nApple\napple\nb\nit's\nna\xc3\xafve\n  Banana \r\n"
                                "cherry pie\n\nDATE\ndate\nfig\ttree\nkiwi\r\nverylongwordindeed\nplum");
  const Values common = {{"words", dir.file("words")}, {"fonts", std::vector<std::string>{dejavu_sans}},
                         {"test_words", I{1}}, {"max_length", I{10}}};
  std::vector<std::string> all;
  for (const char* split : {"train", "test"}) {
    const auto src = make(with(common, "split", S(split)));
    all.insert(all.end(), src.words().begin(), src.words().end());
  }
  std::sort(all.begin(), all.end());
  CHECK(all == std::vector<std::string>{"Apple", "Banana", "DATE", "egg", "kiwi", "plum"});
}

TEST_CASE("rendered_words: splits are disjoint, cover the list, keep its order, and depend on the words alone",
          "[plugins][rendered_words]") {
  REQUIRE_DEJAVU();
  TempDir dir("rendered_words");
  write_file(dir.file("words"), ten_words());
  write_file(dir.file("reversed"), "juniper\nilex\nhazel\ngrape\nfig\nelder\ndate\ncherry\nbanana\napple\n");
  auto words = [&](const std::string& list, const char* split, std::int64_t seed, std::int64_t samples) {
    return make({{"words", S(list)}, {"fonts", std::vector<std::string>{dejavu_sans}}, {"test_words", I{3}},
                 {"split", S(split)}, {"seed", seed}, {"samples_per_word", samples}})
        .words();
  };
  const auto train = words(dir.file("words"), "train", 0, 1), test = words(dir.file("words"), "test", 0, 1);
  CHECK(train.size() == 7);
  CHECK(test.size() == 3);
  std::vector<std::string> all(train);
  all.insert(all.end(), test.begin(), test.end());
  std::sort(all.begin(), all.end());
  CHECK(all == std::vector<std::string>{"apple", "banana", "cherry", "date", "elder", "fig", "grape", "hazel", "ilex",
                                        "juniper"});
  CHECK(std::is_sorted(train.begin(), train.end()));  // the list is alphabetical: file order
  CHECK(std::is_sorted(test.begin(), test.end()));
  CHECK(words(dir.file("words"), "test", 9, 4) == test);  // nor seed nor samples_per_word move a word
  auto reversed_test = words(dir.file("reversed"), "test", 0, 1);
  std::reverse(reversed_test.begin(), reversed_test.end());
  CHECK(reversed_test == test);  // nor its position in the list
}

TEST_CASE("rendered_words: samples, labels and records: sample i is word i / samples_per_word",
          "[plugins][rendered_words]") {
  REQUIRE_DEJAVU();
  TempDir dir("rendered_words");
  write_file(dir.file("words"), ten_words());
  const auto src = make({{"words", dir.file("words")}, {"fonts", std::vector<std::string>{dejavu}}, {"test_words", I{2}},
                         {"samples_per_word", I{3}}});
  const contra::SourceInfo info = src.info();
  REQUIRE(src.words().size() == 8);
  CHECK(info.size == 24);
  CHECK(info.num_classes == 8);
  const auto labels = src.labels();
  REQUIRE(labels.size() == 24);
  // Class names, for zero-shot prompts: the split's words by label.
  CHECK(src.class_names() == src.words());
  contra::Record record;
  for (std::int64_t i = 0; i < 24; ++i) {
    CHECK(labels[static_cast<std::size_t>(i)] == i / 3);
    CHECK(src.load_record(i, record) == i / 3);
    REQUIRE(record.images.size() == 1);
    REQUIRE(record.texts.size() == 1);
    CHECK(record.texts[0] == src.words()[static_cast<std::size_t>(i / 3)]);
    Tensor image;
    CHECK(src.load(i, image) == i / 3);
    CHECK(pixels(image) == pixels(record.images[0]));
  }
  const auto r = contra::testing::check_source(src, 24);
  INFO(r.message);
  CHECK(r.ok);
  Tensor image;
  CHECK_THROWS_AS(src.load(24, image), DataError);
  CHECK_THROWS_WITH(src.load(-1, image), "rendered_words: sample index -1 is out of range for 24 samples");
}

TEST_CASE("rendered_words: the same index gives the same bytes, other indices and seeds differ",
          "[plugins][rendered_words]") {
  REQUIRE_DEJAVU();
  TempDir dir("rendered_words");
  write_file(dir.file("words"), ten_words());
  const Values values = {{"words", dir.file("words")}, {"fonts", std::vector<std::string>{dejavu}},
                         {"test_words", I{2}}, {"samples_per_word", I{4}}, {"channels", I{3}}};
  const auto a = make(values), b = make(values);
  Tensor x, y;
  std::vector<std::vector<std::uint8_t>> seen;
  for (std::int64_t i : {0, 1, 5, 31}) {
    a.load(i, x);
    b.load(i, y);
    CHECK(pixels(x) == pixels(y));
    seen.push_back(pixels(x));
  }
  a.load(31, x);  // out of order, into a used tensor
  a.load(0, x);
  CHECK(pixels(x) == seen[0]);
  for (std::size_t i = 0; i < seen.size(); ++i)
    for (std::size_t j = i + 1; j < seen.size(); ++j) CHECK(seen[i] != seen[j]);  // 0 and 1: one word, two renderings

  const auto c = make(with(values, "seed", I{1}));
  c.load(0, y);
  CHECK(pixels(y) != seen[0]);
}

TEST_CASE("rendered_words: loads from several threads at once give the serial bytes", "[plugins][rendered_words]") {
  REQUIRE_DEJAVU();
  TempDir dir("rendered_words");
  write_file(dir.file("words"), ten_words());
  const auto src = make({{"words", dir.file("words")}, {"fonts", std::vector<std::string>{dejavu}},
                         {"test_words", I{2}}, {"samples_per_word", I{8}}});
  const std::int64_t n = src.info().size;
  std::vector<std::vector<std::uint8_t>> serial;
  Tensor image;
  for (std::int64_t i = 0; i < n; ++i) {
    src.load(i, image);
    serial.push_back(pixels(image));
  }
  std::vector<int> mismatches(4, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      Tensor mine;
      for (int round = 0; round < 3; ++round)
        for (std::int64_t k = 0; k < n; ++k) {
          const std::int64_t i = (k * 7 + t * 13 + round) % n;  // each thread its own order
          src.load(i, mine);
          mismatches[static_cast<std::size_t>(t)] += pixels(mine) != serial[static_cast<std::size_t>(i)];
        }
    });
  for (auto& th : threads) th.join();
  CHECK(mismatches == std::vector<int>(4, 0));
}

TEST_CASE("rendered_words: images hold a word's ink: a wide band of dark-on-light or light-on-dark pixels",
          "[plugins][rendered_words]") {
  REQUIRE_DEJAVU();
  TempDir dir("rendered_words");
  write_file(dir.file("words"), ten_words());
  // Without noise or rotation the background varies by its shading alone
  // (at most 24 levels), and the ink keeps 80 levels more from it.
  const auto src = make({{"words", dir.file("words")}, {"fonts", std::vector<std::string>{dejavu}},
                         {"test_words", I{2}}, {"samples_per_word", I{25}}, {"noise", 0.0}, {"max_rotation", 0.0}});
  Tensor image;
  for (std::int64_t i = 0; i < src.info().size; ++i) {
    src.load(i, image);
    const Ink ink = find_ink(image);
    const std::string& word = src.words()[static_cast<std::size_t>(i / 25)];
    INFO("sample " << i << " (\"" << word << "\"): " << ink.count << " ink pixels in x " << ink.x_min << ".."
                   << ink.x_max << ", y " << ink.y_min << ".." << ink.y_max);
    const double share = static_cast<double>(ink.count) / (32.0 * 128.0);
    CHECK((share > 0.01 && share < 0.5));
    const std::int64_t ink_w = ink.x_max - ink.x_min + 1, ink_h = ink.y_max - ink.y_min + 1;
    CHECK(ink_w >= 12);             // three letters or more
    CHECK(ink_h >= 8);              // a letter's height at the smallest size
    CHECK(ink_w > ink_h);           // a word is wider than tall
    CHECK(ink.x_min >= 1);          // inside the margins (1.6 pixels), anti-aliasing aside
    CHECK(ink.x_max <= 126);
    CHECK(ink.y_min >= 1);
    CHECK(ink.y_max <= 30);
  }
}

TEST_CASE("rendered_words: sizes and channels are respected, down to 8x8", "[plugins][rendered_words]") {
  REQUIRE_DEJAVU();
  TempDir dir("rendered_words");
  write_file(dir.file("words"), ten_words());
  for (auto [h, w, c] : {std::array<std::int64_t, 3>{20, 200, 3}, {64, 64, 1}, {8, 8, 1}, {100, 30, 3}}) {
    const auto src = make({{"words", dir.file("words")}, {"fonts", std::vector<std::string>{dejavu_sans}},
                           {"test_words", I{2}}, {"height", h}, {"width", w}, {"channels", c}, {"noise", 0.0}});
    CHECK(src.info().shape == contra::ImageShape{h, w, c});
    Tensor image;
    for (std::int64_t i = 0; i < 8; ++i) {
      src.load(i, image);
      REQUIRE(image.shape() == contra::Shape{h, w, c});
      REQUIRE(image.dtype() == contra::DType::u8);
      const auto p = pixels(image);
      // Some ink, where letters are at least a few pixels tall (at 8x8 a
      // word shrinks to strokes thinner than a pixel).
      if (h >= 20) CHECK(*std::max_element(p.begin(), p.end()) - *std::min_element(p.begin(), p.end()) >= 60);
    }
  }
}

TEST_CASE("rendered_words: parameters that contradict each other are ConfigErrors", "[plugins][rendered_words]") {
  TempDir dir("rendered_words");
  write_file(dir.file("words"), ten_words());
  const std::string words = dir.file("words");
  CHECK_THROWS_WITH(make({{"words", words}, {"channels", I{2}}}),
                    "rendered_words.channels = 2: expected 1 (grey) or 3 (RGB)");
  CHECK_THROWS_WITH(make({{"words", words}, {"min_length", I{5}}, {"max_length", I{4}}}),
                    "rendered_words.min_length = 5 is larger than rendered_words.max_length = 4; expected "
                    "min_length <= max_length");
  CHECK_THROWS_AS(make({{"words", words}, {"test_words", I{10}}}), ConfigError);
  CHECK_THROWS_WITH(make({{"words", words}, {"test_words", I{10}}}),
                    "rendered_words.test_words = 10 leaves no training word: " + words +
                        " has 10 words of 3 to 12 ASCII letters (distinct ignoring case); expected more than 10");
}

TEST_CASE("rendered_words: a missing, empty or hostile word list is a ConfigError naming it",
          "[plugins][rendered_words]") {
  TempDir dir("rendered_words");
  auto open = [&](const std::string& list) { return make({{"words", S(list)}, {"test_words", I{1}}}); };
  const std::string expected = "expected a word list, one word per line (e.g. /usr/share/dict/words)";
  const std::string missing = dir.file("missing");
  CHECK_THROWS_AS(open(missing), ConfigError);
  CHECK_THROWS_WITH(open(missing),
                    "rendered_words.words: " + missing + ": cannot open: No such file or directory; " + expected);
  CHECK_THROWS_WITH(open(dir.path().string()), "rendered_words.words: " + dir.path().string() + ": a folder; " + expected);
  write_file(dir.file("empty"), "");
  CHECK_THROWS_WITH(open(dir.file("empty")), "rendered_words.words: " + dir.file("empty") + ": empty file; " + expected);

  const std::string no_word = ": no word in its ";
  const std::string letters = "; expected lines of 3 to 12 ASCII letters (a-z, A-Z)";
  write_file(dir.file("blank"), "\n\n\n");
  CHECK_THROWS_WITH(open(dir.file("blank")), "rendered_words.words: " + dir.file("blank") + no_word + "4 lines" + letters);
  // Binary garbage: every byte value, and NUL bytes inside would-be words.
  std::string garbage;
  std::uint64_t state = 7;
  for (int k = 0; k < 100000; ++k) {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    garbage += static_cast<char>(state >> 56);
  }
  garbage += std::string("\nab\0cd\n", 7);
  write_file(dir.file("garbage"), garbage);
  CHECK_THROWS_WITH(open(dir.file("garbage")),
                    Catch::Matchers::StartsWith("rendered_words.words: " + dir.file("garbage") + no_word) &&
                        Catch::Matchers::EndsWith(letters));
  // One endless line of letters: never buffered whole, never a word.
  write_file(dir.file("endless"), std::string(5 << 20, 'a'));
  CHECK_THROWS_WITH(open(dir.file("endless")),
                    "rendered_words.words: " + dir.file("endless") + no_word + "1 line" + letters);
}

TEST_CASE("rendered_words: a missing font, a file that is no font, or no usable font is a ConfigError",
          "[plugins][rendered_words]") {
  TempDir dir("rendered_words");
  write_file(dir.file("words"), ten_words());
  auto open = [&](std::vector<std::string> fonts) {
    return make({{"words", dir.file("words")}, {"test_words", I{1}}, {"fonts", fonts}});
  };
  const std::string missing = dir.file("missing.ttf");
  CHECK_THROWS_AS(open({missing}), ConfigError);
  CHECK_THROWS_WITH(open({missing}), "rendered_words.fonts[0]: " + missing + ": cannot open: No such file or "
                                     "directory; expected a font file (.ttf, .otf, .ttc) or a folder of them");
  const std::string expected = "; expected a scalable TrueType or OpenType font with a glyph for every ASCII letter";
  std::filesystem::create_directories(dir.file("fonts"));
  write_file(dir.file("fonts/fake.ttf"), "not a font at all");
  // FreeType's reason is its own (e.g. "invalid stream operation").
  using Catch::Matchers::EndsWith;
  using Catch::Matchers::StartsWith;
  CHECK_THROWS_WITH(open({dir.file("words")}),
                    StartsWith("rendered_words.fonts[0]: " + dir.file("words") + ": FreeType cannot open it (") &&
                        EndsWith(")" + expected));
  CHECK_THROWS_WITH(open({dir.file("fonts")}),
                    StartsWith("rendered_words.fonts: no usable font in " + dir.file("fonts") + ": " +
                               dir.file("fonts/fake.ttf") + " (FreeType cannot open it (") &&
                        EndsWith("))" + expected));
  std::filesystem::create_directories(dir.file("none"));
  CHECK_THROWS_WITH(open({dir.file("none")}), "rendered_words.fonts: no usable font in " + dir.file("none") +
                                                  " (no .ttf, .otf or .ttc file)" + expected);
  if (!std::filesystem::exists(dejavu_sans)) {
    WARN("SKIPPED in part: DejaVu fonts not installed");
    return;
  }
  // A damaged copy of a real font: cut short, then bytes overwritten.
  const std::string font = contra::test::read_file(dejavu_sans);
  write_file(dir.file("cut.ttf"), font.substr(0, font.size() / 3));
  CHECK_THROWS_AS(open({dir.file("cut.ttf")}), ConfigError);
  std::uint64_t state = 3;
  for (int k = 0; k < 40; ++k) {
    std::string damaged = font;
    for (int flips = 0; flips < 20; ++flips) {
      state = state * 6364136223846793005ull + 1442695040888963407ull;
      damaged[(state >> 20) % damaged.size()] = static_cast<char>(state >> 56);
    }
    write_file(dir.file("damaged.ttf"), damaged);
    try {
      const auto src = open({dir.file("damaged.ttf")});
      Tensor image;
      for (std::int64_t i = 0; i < 9; ++i) src.load(i, image);  // every word draws, or throws DataError
    } catch (const ConfigError&) {
    } catch (const DataError&) {
    }
  }
  // Unusable fonts in a folder are skipped, and named on stderr.
  std::filesystem::copy_file(dejavu_sans, dir.file("fonts/good.ttf"));
  contra::test::CapturedStderr err;
  const auto src = open({dir.file("fonts")});
  CHECK(src.font_count() == 1);
  CHECK_THAT(err.text(), StartsWith("rendered_words: skipped 1 unusable font: " + dir.file("fonts/fake.ttf") +
                                    " (FreeType cannot open it (") &&
                             EndsWith("))\n"));
}
