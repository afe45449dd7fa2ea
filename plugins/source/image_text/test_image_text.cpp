#include "image_text.hpp"
#include "manifest.hpp"

#include <test_images.hpp>
#include <test_support.hpp>

#include <contra/testing.hpp>

#include <filesystem>
#include <random>

using contra::ConfigError;
using contra::DataError;
using contra::Tensor;
using contra::plugins::ImageTextSource;
using contra::plugins::image_text::ManifestColumns;
using contra::plugins::image_text::ManifestFormat;
using contra::plugins::image_text::parse_manifest;
using contra::test::encode_png;
using contra::test::TempDir;
using contra::test::test_pixels;
using contra::test::write_file;
namespace fs = std::filesystem;

namespace {

contra::RawParam param(const std::string& key, contra::Value v) { return {key, std::move(v), {}}; }

ImageTextSource open(const std::string& manifest, std::vector<contra::RawParam> extra = {}) {
  extra.push_back(param("manifest", manifest));
  contra::Diagnostics d;
  const contra::Params p = ImageTextSource::schema().bind(extra, "source", {}, d);
  if (!d.empty()) throw ConfigError(contra::format_diagnostics(d));
  return ImageTextSource(p);
}

/// Writes `name` under `dir` as a PNG of test_pixels(seed, ...).
void write_png(const TempDir& dir, const std::string& name, int seed, int w, int h, int c) {
  fs::create_directories(fs::path(dir.file(name)).parent_path());
  write_file(dir.file(name), encode_png(w, h, c, test_pixels(seed, w, h, c)));
}

std::vector<std::uint8_t> bytes_of(const Tensor& t) {
  const auto* p = t.data<std::uint8_t>();
  return {p, p + t.numel()};
}

const ManifestColumns default_columns{"filepath", "source.image_column", "title", "source.text_column", "", ""};
const ManifestColumns labelled_columns{"filepath", "source.image_column", "title", "source.text_column",
                                       "label",    "source.label_column"};

std::string config_error(std::string_view bytes, ManifestFormat format, const ManifestColumns& columns) {
  try {
    parse_manifest(bytes, format, columns, "m");
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "(parsed)";
}

}  // namespace

TEST_CASE("image_text: schema is well formed and the library loads", "[plugins][image_text]") {
  TempDir dir("image_text");
  write_png(dir, "a.png", 0, 4, 3, 3);
  write_file(dir.file("m.csv"), "filepath,title\na.png,a caption\n");
  const auto r = contra::testing::check_schema<ImageTextSource>({{"manifest", dir.file("m.csv")}});
  INFO(r.message);
  CHECK(r.ok);
  const auto lib = contra::testing::check_library(std::string(CONTRA_PLUGIN_DIR) + "/libcontra_source_image_text.so",
                                                  {{"manifest", dir.file("m.csv")}});
  INFO(lib.message);
  CHECK(lib.ok);
}

TEST_CASE("image_text: CSV quoting follows RFC 4180", "[plugins][image_text]") {
  const std::string csv =
      "\xEF\xBB\xBF"                                 // a byte order mark
      "filepath,title,label\r\n"                     // CRLF line ends
      "a.png,\"a cat, sitting\",cat\r\n"             // a comma inside quotes
      "\r\n"                                         // a blank line
      "b.png,\"she said \"\"hi\"\"\",dog\n"          // doubled quotes
      "c.png,\"two\nlines\",cat\n"                   // a line break inside quotes
      "d.png,plain \"quote\" inside,\"\"\n"          // a quote inside an unquoted field stays; "" is empty
      "e.png,,dog";                                  // an empty caption; no final line end
  const auto m = parse_manifest(csv, ManifestFormat::csv, default_columns, "m.csv");
  REQUIRE(m.images.size() == 5);
  CHECK(m.images[0] == "a.png");
  CHECK(m.texts[0] == "a cat, sitting");
  CHECK(m.texts[1] == "she said \"hi\"");
  CHECK(m.texts[2] == "two\nlines");
  CHECK(m.texts[3] == "plain \"quote\" inside");
  CHECK(m.texts[4].empty());
  CHECK(m.labels.empty());

  // Labels by name, numbered in first-seen order; the empty one is an error.
  CHECK(config_error(csv, ManifestFormat::csv, labelled_columns) ==
        "m:7: the label (\"label\", source.label_column) is empty");
  const std::string named = "filepath,title,label\na.png,x,cat\nb.png,y,dog\nc.png,z,cat\n";
  const auto l = parse_manifest(named, ManifestFormat::csv, labelled_columns, "m.csv");
  CHECK(l.labels == std::vector<std::int64_t>{0, 1, 0});
  CHECK(l.class_names == std::vector<std::string>{"cat", "dog"});
  CHECK(l.num_classes == 2);

  // Integer labels are taken as they are.
  const auto n = parse_manifest("filepath,title,label\na.png,x,3\nb.png,y,0\nc.png,z,07\n", ManifestFormat::csv,
                                labelled_columns, "m.csv");
  CHECK(n.labels == std::vector<std::int64_t>{3, 0, 7});
  CHECK(n.class_names.empty());
  CHECK(n.num_classes == 8);
}

TEST_CASE("image_text: TSV quotes like CSV, with tabs", "[plugins][image_text]") {
  const auto m = parse_manifest("title\tfilepath\n\"tab\there\"\tx/a.png\nplain, with comma\ty.png\n",
                                ManifestFormat::tsv, default_columns, "m.tsv");
  REQUIRE(m.images.size() == 2);
  CHECK(m.images[0] == "x/a.png");
  CHECK(m.texts[0] == "tab\there");
  CHECK(m.texts[1] == "plain, with comma");
}

TEST_CASE("image_text: JSON Lines, escapes and integer or string labels", "[plugins][image_text]") {
  const std::string jsonl =
      "{\"filepath\": \"a.png\", \"title\": \"caf\\u00e9 \\\"au lait\\\"\", \"label\": 2, \"extra\": [1]}\n"
      "\n"
      "{\"title\": \"second\", \"label\": \"5\", \"filepath\": \"b.png\"}\r\n";
  const auto m = parse_manifest(jsonl, ManifestFormat::jsonl, labelled_columns, "m.jsonl");
  REQUIRE(m.images.size() == 2);
  CHECK(m.texts[0] == "caf\xC3\xA9 \"au lait\"");
  CHECK(m.images[1] == "b.png");
  CHECK(m.labels == std::vector<std::int64_t>{2, 5});
  CHECK(m.num_classes == 6);
}

TEST_CASE("image_text: malformed manifests are ConfigErrors naming the line and what was expected",
          "[plugins][image_text]") {
  using F = ManifestFormat;
  CHECK(config_error("path,title\na.png,x\n", F::csv, default_columns) ==
        "m:1: no column \"filepath\" (source.image_column) in the header row; its columns: \"path\", \"title\"");
  CHECK(config_error("filepath,title,filepath\na,b,c\n", F::csv, default_columns) ==
        "m:1: the header row names column \"filepath\" (source.image_column) twice, as fields 1 and 3");
  CHECK(config_error("filepath,title\na.png,x\nb.png,\"never closed\nc.png,y\n", F::csv, default_columns) ==
        "m:3: unterminated quote: field 2 opens a '\"' here that is never closed; expected a closing '\"' (a '\"' "
        "inside a quoted field is written '\"\"')");
  CHECK(config_error("filepath,title\na.png,\"x\"y\n", F::csv, default_columns) ==
        "m:2: field 2: expected a ',' or the end of the line after the closing '\"', found 'y' (a '\"' inside a "
        "quoted field is written '\"\"')");
  CHECK(config_error("filepath,title\na.png,x\nb.png,a caption, with a comma\n", F::csv, default_columns) ==
        "m:3: 3 fields, expected 2 as in the header row (line 1); a value holding a ',' must be in double quotes");
  CHECK(config_error("filepath\ttitle\na.png\n", F::tsv, default_columns) ==
        "m:2: 1 field, expected 2 as in the header row (line 1); a value holding a tab must be in double quotes");
  CHECK(config_error("filepath,title\n,x\n", F::csv, default_columns) ==
        "m:2: the image path (\"filepath\", source.image_column) is empty");
  CHECK(config_error("", F::csv, default_columns) ==
        "m: no header row; expected a first row naming the columns, \"filepath\" and \"title\" among them");
  CHECK(config_error("filepath,title\n\n", F::csv, default_columns) ==
        "m: no rows after the header; expected one image path and its caption per row");
  CHECK(config_error("\n\n", F::jsonl, default_columns) ==
        "m: no rows; expected one image path and its caption per line");
  CHECK(config_error("{\"filepath\": \"a\", \"title\": \"b\"}\n{\"filepath\": tru}\n", F::jsonl, default_columns) ==
        "m:2: invalid JSON at byte 17 of the line: syntax error while parsing value - invalid literal; last read: "
        "'\"filepath\": tru}'");
  CHECK(config_error("{\"filepath\": \"a\"\n", F::jsonl, default_columns) ==
        "m:1: invalid JSON at byte 17 of the line: syntax error while parsing object - unexpected end of input; "
        "expected '}'");
  CHECK(config_error("[\"a.png\", \"x\"]\n", F::jsonl, default_columns) ==
        "m:1: expected a JSON object ({...}) per line, found an array");
  CHECK(config_error("{\"filepath\": \"a\", \"caption\": \"b\"}\n", F::jsonl, default_columns) ==
        "m:1: no key \"title\" (source.text_column) in the object; its keys: \"caption\", \"filepath\"");
  CHECK(config_error("{\"filepath\": 3, \"title\": \"b\"}\n", F::jsonl, default_columns) ==
        "m:1: \"filepath\" (source.image_column) is a number, expected a string");
  CHECK(config_error("{\"filepath\": \"a\", \"title\": \"b\", \"label\": null}\n", F::jsonl, labelled_columns) ==
        "m:1: \"label\" (source.label_column) is null, expected a string or an integer");
}

TEST_CASE("image_text: records hold the images and captions written, paths relative to the manifest",
          "[plugins][image_text]") {
  TempDir dir("image_text");
  write_png(dir, "data/img/a.png", 1, 5, 4, 3);
  write_png(dir, "elsewhere/b.png", 2, 5, 4, 3);
  write_file(dir.file("data/train.csv"), "filepath,title,label\nimg/a.png,\"first, image\",cat\n" +
                                             dir.file("elsewhere/b.png") + ",second image,dog\n");
  const ImageTextSource src = open(dir.file("data/train.csv"), {param("label_column", std::string("label"))});
  const contra::SourceInfo info = src.info();
  CHECK(info.size == 2);
  CHECK(info.shape == contra::ImageShape{4, 5, 3});
  CHECK(info.num_classes == 2);
  REQUIRE(info.fields.size() == 2);
  CHECK(info.fields[0].name == "image");
  CHECK(info.fields[0].kind == contra::FieldKind::image);
  CHECK(info.fields[1].name == "text");
  CHECK(info.fields[1].kind == contra::FieldKind::text);
  CHECK(src.class_names() == std::vector<std::string>{"cat", "dog"});
  CHECK(src.labels() == std::vector<std::int64_t>{0, 1});
  CHECK(src.image_path(0) == dir.file("data/img/a.png"));

  contra::Record r;
  CHECK(src.load_record(0, r) == 0);
  REQUIRE(r.images.size() == 1);
  CHECK(bytes_of(r.images[0]) == test_pixels(1, 5, 4, 3));
  CHECK(r.texts == std::vector<std::string>{"first, image"});
  CHECK(src.load_record(1, r) == 1);
  CHECK(bytes_of(r.images[0]) == test_pixels(2, 5, 4, 3));
  CHECK(r.texts == std::vector<std::string>{"second image"});
  const auto check = contra::testing::check_source(src);
  INFO(check.message);
  CHECK(check.ok);
}

TEST_CASE("image_text: height and width resize, else every image has the first one's size",
          "[plugins][image_text]") {
  TempDir dir("image_text");
  write_png(dir, "a.png", 1, 6, 4, 1);
  write_png(dir, "b.png", 2, 3, 3, 3);
  write_file(dir.file("m.jsonl"), "{\"filepath\": \"a.png\", \"title\": \"a\"}\n"
                                  "{\"filepath\": \"b.png\", \"title\": \"b\"}\n");
  Tensor image;
  const ImageTextSource as_stored = open(dir.file("m.jsonl"));
  CHECK(as_stored.info().shape == contra::ImageShape{4, 6, 1});
  CHECK(as_stored.load(0, image) == -1);
  CHECK(bytes_of(image) == test_pixels(1, 6, 4, 1));
  CHECK_THROWS_MATCHES(as_stored.load(1, image), DataError,
                       Catch::Message(dir.file("b.png") + ": sample 1: 3x3 pixels (width x height), but the first "
                                      "image, " + dir.file("a.png") + ", is 6x4; a source reports one shape, so set "
                                      "source.height and source.width to resize every image"));

  const ImageTextSource resized = open(dir.file("m.jsonl"), {param("height", std::int64_t(2)),
                                                             param("width", std::int64_t(3)),
                                                             param("channels", std::int64_t(3))});
  CHECK(resized.info().shape == contra::ImageShape{2, 3, 3});
  for (std::int64_t i = 0; i < 2; ++i) {
    resized.load(i, image);
    CHECK(image.shape() == contra::Shape{2, 3, 3});
  }
}

TEST_CASE("image_text: a missing or corrupt image is a DataError naming the file and the sample",
          "[plugins][image_text]") {
  TempDir dir("image_text");
  write_png(dir, "a.png", 1, 2, 2, 3);
  write_file(dir.file("bad.png"), "not an image");
  write_file(dir.file("m.csv"), "filepath,title\na.png,a\nmissing.png,b\nbad.png,c\n");
  const ImageTextSource src = open(dir.file("m.csv"));
  Tensor image;
  CHECK_THROWS_MATCHES(src.load(1, image), DataError,
                       Catch::Message(dir.file("missing.png") + ": sample 1: cannot open: No such file or directory"));
  CHECK_THROWS_MATCHES(src.load(2, image), DataError,
                       Catch::Message(dir.file("bad.png") + ": sample 2: not a PNG or JPEG image: the file starts "
                                      "with 6e 6f 74 20 61 6e 20 69, expected 89 50 4e 47 0d 0a 1a 0a (PNG) or ff d8 "
                                      "ff (JPEG)"));
  CHECK_THROWS_MATCHES(src.load(3, image), DataError,
                       Catch::Message(dir.file("m.csv") + ": sample index 3 is out of range for 3 rows"));

  // The first image gives the shape unless it is set: missing, it stops the source.
  write_file(dir.file("first_missing.csv"), "filepath,title\nmissing.png,b\na.png,a\n");
  CHECK_THROWS_MATCHES(open(dir.file("first_missing.csv")), DataError,
                       Catch::Message(dir.file("missing.png") + ": sample 0: cannot open: No such file or directory; "
                                      "the first image gives the shape unless source.height, source.width and "
                                      "source.channels are set"));
  const ImageTextSource shaped = open(dir.file("first_missing.csv"), {param("height", std::int64_t(2)),
                                                                       param("width", std::int64_t(2)),
                                                                       param("channels", std::int64_t(3))});
  CHECK(shaped.info().size == 2);
}

TEST_CASE("image_text: parameter and file errors", "[plugins][image_text]") {
  TempDir dir("image_text");
  write_file(dir.file("m.txt"), "filepath,title\na.png,x\n");
  CHECK_THROWS_MATCHES(open(dir.file("m.txt")), ConfigError,
                       Catch::Message("source.manifest: cannot tell the format of " + dir.file("m.txt") +
                                      " from its extension; expected .csv, .tsv or .jsonl, or set source.format to "
                                      "csv, tsv or jsonl"));
  CHECK_THROWS_MATCHES(open(dir.file("none.csv")), ConfigError,
                       Catch::Message("source.manifest: " + dir.file("none.csv") +
                                      ": cannot open: No such file or directory"));
  CHECK_THROWS_MATCHES(open(dir.file("m.txt"), {param("format", std::string("csv")), param("height", std::int64_t(8))}),
                       ConfigError,
                       Catch::Message("source.height = 8 but source.width = 0: set both to resize every image to "
                                      "height x width, or neither to keep the first image's size"));
  CHECK_THROWS_MATCHES(open(dir.file("m.txt"), {param("format", std::string("csv")), param("channels", std::int64_t(2))}),
                       ConfigError,
                       Catch::Message("source.channels = 2: expected 1 (gray), 3 (RGB) or 0 (as the first image)"));
  CHECK_THROWS_MATCHES(open(dir.file("m.txt"), {param("format", std::string("csv")),
                                                param("text_column", std::string(""))}),
                       ConfigError,
                       Catch::Message("source.text_column: expected the name of a column of " + dir.file("m.txt") +
                                      ", found \"\""));
  // format = csv reads any extension; a malformed manifest names its file.
  write_file(dir.file("bad.txt"), "filepath,caption\na.png,x\n");
  CHECK_THROWS_MATCHES(open(dir.file("bad.txt"), {param("format", std::string("csv"))}), ConfigError,
                       Catch::Message(dir.file("bad.txt") + ":1: no column \"title\" (source.text_column) in the "
                                      "header row; its columns: \"filepath\", \"caption\""));
}

TEST_CASE("image_text: truncated and garbage manifests are refused, never crash", "[plugins][image_text]") {
  const std::string csv = "filepath,title,label\n\"a.png\",\"x, \"\"y\"\"\",1\nb.png,\"two\nlines\",cat\n";
  const std::string jsonl = "{\"filepath\": \"a.png\", \"title\": \"x\\n\", \"label\": 1}\n"
                            "{\"filepath\": \"b.png\", \"title\": \"y\", \"label\": \"cat\"}\n";
  auto parse_or_refuse = [](std::string_view bytes, ManifestFormat format) {
    try {
      const auto m = parse_manifest(bytes, format, labelled_columns, "m");
      CHECK(m.images.size() == m.texts.size());
      CHECK(m.labels.size() == m.images.size());
    } catch (const ConfigError& e) {
      CHECK(std::string(e.what()).rfind("m", 0) == 0);
    }
  };
  for (std::size_t n = 0; n <= csv.size(); ++n) parse_or_refuse(std::string_view(csv).substr(0, n), ManifestFormat::csv);
  for (std::size_t n = 0; n <= jsonl.size(); ++n)
    parse_or_refuse(std::string_view(jsonl).substr(0, n), ManifestFormat::jsonl);
  std::mt19937 rng(7);
  constexpr char bytes_tried[] = "\",\t\n\r{}[]:ab1\\ \0\xff";
  const std::string alphabet(bytes_tried, sizeof bytes_tried - 1);
  for (int trial = 0; trial < 2000; ++trial) {
    std::string bytes = trial % 2 ? csv : jsonl;
    for (int k = 0; k < 4; ++k) bytes[rng() % bytes.size()] = alphabet[rng() % alphabet.size()];
    for (ManifestFormat f : {ManifestFormat::csv, ManifestFormat::tsv, ManifestFormat::jsonl}) parse_or_refuse(bytes, f);
  }
}
