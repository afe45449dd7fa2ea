#include "brace_pattern.hpp"
#include "tar_index.hpp"
#include "webdataset.hpp"

#include <test_images.hpp>
#include <test_support.hpp>

#include <contra/testing.hpp>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <random>

using contra::ConfigError;
using contra::DataError;
using contra::Tensor;
using contra::plugins::WebDatasetSource;
using contra::plugins::webdataset::expand_braces;
using contra::plugins::webdataset::index_tar;
using contra::test::encode_png;
using contra::test::TempDir;
using contra::test::test_pixels;
using contra::test::write_file;
namespace fs = std::filesystem;
using Strings = std::vector<std::string>;

namespace {

/// A ustar archive written by hand: 512-byte headers with their checksums,
/// each member's data padded to 512 bytes, two zero blocks at the end.
class TarBuilder {
 public:
  TarBuilder& add(const std::string& name, const std::string& data = "", char type = '0') {
    char h[512] = {};
    REQUIRE(name.size() < 100);
    std::memcpy(h, name.data(), name.size());
    std::snprintf(h + 100, 8, "%07o", 0644u);
    std::snprintf(h + 108, 8, "%07o", 0u);
    std::snprintf(h + 116, 8, "%07o", 0u);
    std::snprintf(h + 124, 12, "%011llo", static_cast<unsigned long long>(data.size()));
    std::snprintf(h + 136, 12, "%011o", 0u);
    h[156] = type;
    std::memcpy(h + 257, "ustar", 6);
    std::memcpy(h + 263, "00", 2);
    std::memset(h + 148, ' ', 8);
    unsigned sum = 0;
    for (unsigned char c : h) sum += c;
    std::snprintf(h + 148, 8, "%06o", sum);
    h[155] = ' ';
    bytes_.append(h, sizeof h);
    bytes_ += data;
    bytes_.append((512 - data.size() % 512) % 512, '\0');
    return *this;
  }
  std::string bytes() const { return bytes_ + std::string(1024, '\0'); }

 private:
  std::string bytes_;
};

std::string png(int seed, int w = 4, int h = 3, int c = 3) { return encode_png(w, h, c, test_pixels(seed, w, h, c)); }

contra::RawParam param(const std::string& key, contra::Value v, contra::SourceLocation where = {}) {
  return {key, std::move(v), std::move(where)};
}

WebDatasetSource open(const Strings& shards, std::vector<contra::RawParam> extra = {}) {
  extra.push_back(param("shards", shards));
  contra::Diagnostics d;
  const contra::Params p = WebDatasetSource::schema().bind(extra, "source", {}, d);
  if (!d.empty()) throw ConfigError(contra::format_diagnostics(d));
  return WebDatasetSource(p);
}

std::vector<std::uint8_t> bytes_of(const Tensor& t) {
  const auto* p = t.data<std::uint8_t>();
  return {p, p + t.numel()};
}

std::span<const std::uint8_t> span_of(const std::string& s) {
  return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

std::string data_error(const std::string& tar) {
  try {
    index_tar(span_of(tar), "s.tar");
  } catch (const DataError& e) {
    return e.what();
  }
  return "(indexed)";
}

/// Two shards: keys 000..002 in the first (001's members in another order,
/// its image's extension upper-case, 002 with no image), dir/003 in the
/// second; every whole key labelled.
void write_two_shards(const TempDir& dir) {
  write_file(dir.file("shard-0.tar"), TarBuilder()
                                          .add("000.png", png(0))
                                          .add("000.txt", "a red square")
                                          .add("000.cls", "3\n")
                                          .add("001.txt", "a caption, with \"quotes\"")
                                          .add("001.json", "{}")
                                          .add("001.PNG", png(1))
                                          .add("001.cls", "0")
                                          .add("002.txt", "no image")
                                          .bytes());
  write_file(dir.file("shard-1.tar"), TarBuilder()
                                          .add("dir", "", '5')
                                          .add("dir/003.png", png(3))
                                          .add("dir/003.txt", "")
                                          .add("dir/003.cls", " 1 ")
                                          .bytes());
}

}  // namespace

TEST_CASE("webdataset: brace patterns expand as braceexpand does", "[plugins][webdataset]") {
  CHECK(expand_braces("a-{000..003}.tar", "") == Strings{"a-000.tar", "a-001.tar", "a-002.tar", "a-003.tar"});
  CHECK(expand_braces("{a,b}-{1..2}", "") == Strings{"a-1", "a-2", "b-1", "b-2"});
  CHECK(expand_braces("x{0..10..5}", "") == Strings{"x0", "x5", "x10"});
  CHECK(expand_braces("{3..1}", "") == Strings{"3", "2", "1"});
  CHECK(expand_braces("{8..10}", "") == Strings{"8", "9", "10"});
  CHECK(expand_braces("{a,{b,c}d}", "") == Strings{"a", "bd", "cd"});
  CHECK(expand_braces("{x}.tar", "") == Strings{"{x}.tar"});
  CHECK(expand_braces("plain.tar", "") == Strings{"plain.tar"});
  CHECK_THROWS_MATCHES(expand_braces("a-{0..3.tar", "source.shards: "), ConfigError,
                       Catch::Message("source.shards: \"a-{0..3.tar\": the '{' at character 3 is never closed"));
  CHECK_THROWS_MATCHES(expand_braces("a-0..3}.tar", "source.shards: "), ConfigError,
                       Catch::Message("source.shards: \"a-0..3}.tar\": the '}' at character 7 closes no '{'"));
  CHECK_THROWS_MATCHES(expand_braces("{0..9999999}", ""), ConfigError,
                       Catch::Message("\"{0..9999999}\": expands to more than 1000000 paths"));
  CHECK_THROWS_MATCHES(expand_braces("{0..999}{0..9999}", ""), ConfigError,
                       Catch::Message("\"{0..999}{0..9999}\": expands to more than 1000000 paths"));
}

TEST_CASE("webdataset: records hold the images and texts written, in shard then member order",
          "[plugins][webdataset]") {
  TempDir dir("webdataset");
  write_two_shards(dir);
  contra::test::CapturedStderr err;
  const WebDatasetSource src = open({dir.file("shard-{0..1}.tar")});
  CHECK(err.text() == "warning: webdataset: 1 of the 4 keys in 2 shards lack an image or a text and are skipped "
                      "(source.incomplete = \"skip\"):\n"
                      "  " + dir.file("shard-0.tar") + ": key \"002\": no image (.jpg, .jpeg or .png)\n");
  CHECK(src.incomplete_keys() == 1);
  CHECK(src.shards() == Strings{dir.file("shard-0.tar"), dir.file("shard-1.tar")});
  const contra::SourceInfo info = src.info();
  REQUIRE(info.size == 3);
  CHECK(info.shape == contra::ImageShape{3, 4, 3});
  CHECK(info.num_classes == 4);
  REQUIRE(info.fields.size() == 2);
  CHECK(info.fields[0].name == "image");
  CHECK(info.fields[1].name == "text");
  CHECK(info.fields[1].kind == contra::FieldKind::text);
  CHECK(src.labels() == std::vector<std::int64_t>{3, 0, 1});
  CHECK(src.sample_key(0) == "000");
  CHECK(src.sample_key(1) == "001");
  CHECK(src.sample_key(2) == "dir/003");

  contra::Record r;
  CHECK(src.load_record(0, r) == 3);
  CHECK(bytes_of(r.images.at(0)) == test_pixels(0, 4, 3, 3));
  CHECK(r.texts == Strings{"a red square"});
  CHECK(src.load_record(1, r) == 0);
  CHECK(bytes_of(r.images.at(0)) == test_pixels(1, 4, 3, 3));
  CHECK(r.texts == Strings{"a caption, with \"quotes\""});
  CHECK(src.load_record(2, r) == 1);
  CHECK(bytes_of(r.images.at(0)) == test_pixels(3, 4, 3, 3));
  CHECK(r.texts == Strings{""});
  const auto check = contra::testing::check_source(src);
  INFO(check.message);
  CHECK(check.ok);
}

TEST_CASE("webdataset: incomplete = fail, and keys that are whole", "[plugins][webdataset]") {
  TempDir dir("webdataset");
  write_two_shards(dir);
  CHECK_THROWS_MATCHES(open({dir.file("shard-{0..1}.tar")}, {param("incomplete", std::string("fail"))}), DataError,
                       Catch::Message(dir.file("shard-0.tar") + ": key \"002\": no image (.jpg, .jpeg or .png); "
                                      "every key needs an image and a text (source.incomplete = \"fail\"; \"skip\" "
                                      "passes such keys over)"));
  // Members of one key are grouped while they follow each other, as WebDataset does.
  const auto groups = index_tar(span_of(TarBuilder().add("a.png", png(1)).add("b.txt", "b").add("a.txt", "a")
                                            .add("noext").add(".hidden.txt", "h").bytes()), "s.tar");
  REQUIRE(groups.size() == 3);
  CHECK((groups[0].key == "a" && groups[0].image && !groups[0].text));
  CHECK((groups[1].key == "b" && !groups[1].image && groups[1].text));
  CHECK((groups[2].key == "a" && !groups[2].image && groups[2].text));
  // A list of paths, a key's members in any order, no labels, resized.
  write_file(dir.file("a.tar"), TarBuilder().add("x.txt", "x").add("x.jpg.json", "{}").add("x.png", png(5, 6, 4, 1))
                                    .add("y.png", png(6, 2, 2, 1)).add("y.txt", "y").add("y.seg.png", "not an image").bytes());
  const WebDatasetSource src = open({dir.file("a.tar")}, {param("height", std::int64_t(2)),
                                                          param("width", std::int64_t(3))});
  CHECK(src.info().size == 2);
  CHECK(src.info().shape == contra::ImageShape{2, 3, 1});
  CHECK(src.info().num_classes == 0);
  CHECK(src.labels().empty());
  CHECK(src.sample_key(1) == "y");
  Tensor image;
  CHECK(src.load(1, image) == -1);
  CHECK(image.shape() == contra::Shape{2, 3, 1});

  // Without height and width every image must have the first one's size.
  const WebDatasetSource as_stored = open({dir.file("a.tar")});
  CHECK(as_stored.info().shape == contra::ImageShape{4, 6, 1});
  CHECK_THROWS_MATCHES(as_stored.load(1, image), DataError,
                       Catch::Message(dir.file("a.tar") + ": y.png: sample 1: 2x2 pixels (width x height), but "
                                      "the first image, " + dir.file("a.tar") + ": x.png, is 6x4; a source reports one "
                                      "shape, so set source.height and source.width to resize every image"));
}

TEST_CASE("webdataset: bad shards are DataErrors naming the shard, the member and what was expected",
          "[plugins][webdataset]") {
  const std::string image = png(1, 32, 32, 3);
  const std::string whole = TarBuilder().add("k.png", image).add("k.txt", "caption").bytes();
  const std::size_t cut = 512 + image.size() / 2;  // inside the image's data
  CHECK(data_error(whole.substr(0, cut)) ==
        "s.tar: at byte 0: member k.png: " + std::to_string(image.size()) +
            " bytes declared, but the file ends after " + std::to_string(image.size() / 2) +
            " of them (a truncated tar)");
  CHECK(data_error("") == "s.tar: empty file; expected an uncompressed tar of WebDataset samples");
  CHECK(data_error("\x1f\x8b\x08\x00 rest of a gzip stream") ==
        "s.tar: gzip-compressed; expected an uncompressed tar, whose members are read in place (decompress it "
        "first: gunzip)");
  CHECK_THAT(data_error(std::string(2048, 'x')), Catch::StartsWith("s.tar: not a tar archive (") &&
                                                     Catch::EndsWith("); expected an uncompressed tar of WebDataset samples"));
  CHECK(data_error(TarBuilder().add("k.png", png(1)).add("k.jpg", png(2)).bytes()) ==
        "s.tar: at byte " + std::to_string(512 + (png(1).size() + 511) / 512 * 512) +
            ": member k.jpg: a second image for key \"k\" after k.png; expected one image (.jpg, .jpeg or .png), one "
            ".txt and at most one .cls per key");
  CHECK(data_error(TarBuilder().add("k.cls", "cat").bytes()) ==
        "s.tar: at byte 0: member k.cls: \"cat\" is not a class label; expected a non-negative integer");
  // A damaged second header (its checksum no longer matches).
  std::string damaged = whole;
  damaged[512 + (image.size() + 511) / 512 * 512 + 3] ^= 1;
  CHECK_THAT(data_error(damaged), Catch::StartsWith("s.tar: at byte ") && Catch::Contains("damaged tar header: "));

  TempDir dir("webdataset");
  write_file(dir.file("mixed.tar"),
             TarBuilder().add("a.png", png(1)).add("a.txt", "a").add("a.cls", "1").add("b.png", png(2))
                 .add("b.txt", "b").bytes());
  CHECK_THROWS_MATCHES(open({dir.file("mixed.tar")}), DataError,
                       Catch::Message(dir.file("mixed.tar") + ": key \"b\": no .cls member, but other samples have "
                                      "one; expected a label for every sample or none"));
  CHECK_THROWS_MATCHES(open({dir.file("none-{0..1}.tar")}), ConfigError,
                       Catch::Message("source.shards: " + dir.file("none-0.tar") +
                                      ": cannot open: No such file or directory"));
  write_file(dir.file("only-text.tar"), TarBuilder().add("a.txt", "a").bytes());
  {
    contra::test::CapturedStderr quiet;
    CHECK_THROWS_MATCHES(open({dir.file("only-text.tar")}), DataError,
                         Catch::Message("source.shards: no samples in 1 shard (" + dir.file("only-text.tar") +
                                        "); expected tar members KEY.jpg, KEY.jpeg or KEY.png, each with its KEY.txt"));
  }

  // A shard cut short after it was indexed: load() says so, and does not crash.
  write_file(dir.file("cut.tar"), whole);
  const WebDatasetSource src = open({dir.file("cut.tar")}, {param("height", std::int64_t(2)),
                                                            param("width", std::int64_t(2)),
                                                            param("channels", std::int64_t(3))});
  write_file(dir.file("cut.tar"), whole.substr(0, cut));
  Tensor decoded;
  CHECK_THROWS_MATCHES(src.load(0, decoded), DataError,
                       Catch::Message(dir.file("cut.tar") + ": k.png: sample 0: the shard ends at byte " +
                                      std::to_string(cut) + ", before the member's " + std::to_string(image.size()) +
                                      " bytes from byte 512 (did it change after the source was built?)"));
  CHECK_THROWS_MATCHES(src.load(1, decoded), DataError,
                       Catch::Message("webdataset (" + dir.file("cut.tar") +
                                      "): sample index 1 is out of range for 1 sample"));
}

TEST_CASE("webdataset: relative shard paths are taken relative to the pipeline file", "[plugins][webdataset]") {
  TempDir dir("webdataset");
  fs::create_directories(dir.file("data"));
  write_file(dir.file("data/s-00.tar"), TarBuilder().add("a.png", png(1)).add("a.txt", "a").bytes());
  const contra::SourceLocation at{dir.file("p.toml"), 3, 1};
  std::vector<contra::RawParam> raw{param("shards", Strings{"data/s-{00..00}.tar"}, at)};
  contra::Diagnostics d;
  const contra::Params p = WebDatasetSource::schema().bind(raw, "source", {}, d);
  REQUIRE(d.empty());
  const WebDatasetSource src(p);
  CHECK(src.shards() == Strings{dir.file("data/s-00.tar")});
}

TEST_CASE("webdataset: schema is well formed and the library loads", "[plugins][webdataset]") {
  TempDir dir("webdataset");
  write_file(dir.file("a.tar"), TarBuilder().add("a.png", png(1)).add("a.txt", "a").bytes());
  const contra::testing::ParamValues values{{"shards", Strings{dir.file("a.tar")}}};
  const auto r = contra::testing::check_schema<WebDatasetSource>(values);
  INFO(r.message);
  CHECK(r.ok);
  const auto lib =
      contra::testing::check_library(std::string(CONTRA_PLUGIN_DIR) + "/libcontra_source_webdataset.so", values);
  INFO(lib.message);
  CHECK(lib.ok);
}

TEST_CASE("webdataset: truncated and damaged tars are refused, never crash", "[plugins][webdataset]") {
  const std::string whole = TarBuilder()
                                .add("a.png", png(1))
                                .add("a.txt", "first")
                                .add("a.cls", "2")
                                .add("b.jpeg", png(2))
                                .add("b.txt", "second")
                                .bytes();
  auto index_or_refuse = [](const std::string& bytes) {
    try {
      for (const auto& g : index_tar(span_of(bytes), "s.tar")) {
        for (const auto* m : {&g.image, &g.text})
          if (*m) CHECK((*m)->offset + (*m)->size <= bytes.size());
      }
    } catch (const DataError& e) {
      CHECK(std::string(e.what()).rfind("s.tar: ", 0) == 0);
    }
  };
  for (std::size_t n = 0; n <= whole.size(); n += 7) index_or_refuse(whole.substr(0, n));
  std::mt19937 rng(11);
  for (int trial = 0; trial < 3000; ++trial) {
    std::string bytes = whole;
    for (int k = 0; k < 3; ++k) bytes[rng() % 1536] = static_cast<char>(rng());
    index_or_refuse(bytes);
  }
}

TEST_CASE("webdataset: the fuzz seeds index (Python's tarfile: ustar, and pax long names)", "[plugins][webdataset]") {
  const fs::path seeds = fs::path(CONTRA_SOURCE_DIR) / "tests" / "fuzz" / "corpus" / "fuzz_webdataset";
  const std::string two = contra::test::read_file((seeds / "seed-two-samples.tar").string());
  const auto groups = index_tar(span_of(two), "two");
  REQUIRE(groups.size() == 2);
  CHECK((groups[0].image && groups[0].text && groups[0].label == 1));
  CHECK(two.substr(groups[0].text->offset, groups[0].text->size) == "a caption");
  const std::string pax = contra::test::read_file((seeds / "seed-pax-long-names.tar").string());
  const auto long_names = index_tar(span_of(pax), "pax");
  REQUIRE(long_names.size() == 1);
  CHECK(long_names[0].key == std::string(120, 'a'));
  CHECK(pax.substr(long_names[0].text->offset, long_names[0].text->size) == "long name");
}
