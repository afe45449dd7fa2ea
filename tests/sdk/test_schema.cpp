#include <contra/schema.hpp>

#include <catch2/catch.hpp>

using namespace contra;

namespace {
Schema example() {
  return Schema("info_nce", "NT-Xent over 2N views")
      .add<double>("temperature", 0.5, "softmax temperature").range(1e-3, 10.0)
      .add<std::int64_t>("chunk", 1024, "rows per block").at_least(1)
      .add<std::string>("reduction", "mean", "how to reduce").choices({"mean", "sum"})
      .add<std::vector<double>>("scale", std::vector<double>{0.08, 1.0}, "area range").range(0, 1).length(2, 2)
      .add<bool>("symmetric", true, "average both directions")
      .required<std::string>("path", "input file");
}
Diagnostics bind_raw(const Schema& s, std::vector<RawParam> raw) {
  Diagnostics d;
  s.bind(raw, "loss", SourceLocation{"p.toml", 3, 1}, d);
  return d;
}
}  // namespace

TEST_CASE("schema: defaults fill what the table leaves out", "[sdk][schema]") {
  Params p = example().bind({{"path", std::string("x")}, {"temperature", std::int64_t(2)}});
  CHECK(p.get<double>("temperature") == 2.0);  // integer accepted for a number
  CHECK(p.get<std::int64_t>("chunk") == 1024);
  CHECK(p.get<std::string>("reduction") == "mean");
  CHECK(p.get<std::vector<float>>("scale") == std::vector<float>{0.08f, 1.0f});
  CHECK(p.get<bool>("symmetric"));
  CHECK(p.is_set("temperature"));
  CHECK_FALSE(p.is_set("chunk"));
  CHECK_THROWS_WITH(p.get<std::string>("temperature"),
                    "parameter 'temperature' of info_nce requested with a type that does not match its schema");
}

TEST_CASE("schema: every problem is reported with its location and key", "[sdk][schema]") {
  Diagnostics d = bind_raw(example(), {
      {"tempreature", 0.1, {"p.toml", 4, 1}},
      {"chunk", 1.5, {"p.toml", 5, 9}},
      {"reduction", std::string("max"), {"p.toml", 6, 13}},
      {"scale", std::vector<double>{0.5}, {"p.toml", 7, 9}},
      {"symmetric", std::int64_t(1), {"p.toml", 8, 13}},
  });
  REQUIRE(d.size() == 6);
  CHECK(d[0].str() == "p.toml:4:1: error: loss.tempreature: unknown parameter 'tempreature' for plugin "
                      "'info_nce'; did you mean 'temperature'?");
  CHECK(d[1].str() == "p.toml:5:9: error: loss.chunk: expected an integer, found a float (1.5)");
  CHECK(d[2].str() == "p.toml:6:13: error: loss.reduction: expected one of \"mean\" or \"sum\", found \"max\"");
  CHECK(d[3].str() == "p.toml:7:9: error: loss.scale: expected 2 elements, found 1 in [0.5]");
  CHECK(d[4].str() == "p.toml:8:13: error: loss.symmetric: expected a boolean (true or false), found an integer (1)");
  CHECK(d[5].str() == "p.toml:3:1: error: loss.path: missing required parameter 'path' (a string: input file)");
}

TEST_CASE("schema: out-of-range numbers name the range", "[sdk][schema]") {
  Diagnostics d = bind_raw(example(), {{"temperature", 20.0, {"p.toml", 4, 15}},
                                       {"chunk", std::int64_t(0), {"p.toml", 5, 9}},
                                       {"path", std::string("f"), {"p.toml", 6, 1}}});
  REQUIRE(d.size() == 2);
  CHECK(d[0].message == "expected a value in [0.001, 10], found 20.0");
  CHECK(d[1].message == "expected a value >= 1, found 0");
}

TEST_CASE("schema: malformed schemas are refused", "[sdk][schema]") {
  CHECK_NOTHROW(example().check_well_formed());
  CHECK_THROWS_WITH(Schema("x", "s").add<double>("a", 1.0, "h").add<double>("a", 2.0, "h").check_well_formed(),
                    "schema of plugin 'x' declares parameter 'a' twice");
  CHECK_THROWS_WITH(Schema("x", "s").add<double>("a", 20.0, "h").range(0, 1).check_well_formed(),
                    "schema of plugin 'x': default of 'a' is invalid: expected a value in [0, 1], found 20.0");
  CHECK_THROWS_WITH(Schema("x", "s").add<double>("a", 1.0, "").check_well_formed(),
                    "schema of plugin 'x': parameter 'a' has no help text");
}

TEST_CASE("schema: closest_match suggests plausible typos only", "[sdk][schema]") {
  std::vector<std::string> names{"source", "sampler", "encoder", "loss"};
  CHECK(closest_match("sourse", names) == "source");
  CHECK(closest_match("los", names) == "loss");
  CHECK(closest_match("optimizer", names).empty());
  // Two neighbours swapped is one typo.
  CHECK(closest_match("trian", {"pipeline", "train", "loss"}) == "train");
  CHECK(closest_match("lsos", names) == "loss");
  CHECK(closest_match("ensoder", names) == "encoder");
  CHECK(closest_match("slos", names).empty());  // two swaps away: not a typo of "loss"
}

TEST_CASE("schema: describe() renders every parameter", "[sdk][schema]") {
  std::string text = example().describe();
  CHECK(text.find("info_nce: NT-Xent over 2N views") == 0);
  CHECK(text.find("temperature (number, default 0.5, in [0.001, 10])\n      softmax temperature") !=
        std::string::npos);
  CHECK(text.find("path (string, required)") != std::string::npos);
  CHECK(text.find("reduction (string, default \"mean\", one of \"mean\" or \"sum\")") != std::string::npos);
}
