// contra report: the JSON reader (train/json_io.hpp), run folders, grouping by seed, mean ± std,
// the Markdown table and the HTML page (checked in headless Chromium when it
// is installed).
#include "../../tools/contra/report.hpp"
#include "test_support.hpp"
#include "cli_runner.hpp"
#include "train/json_io.hpp"

#include <contra/errors.hpp>

#include <catch2/catch.hpp>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <sstream>
#include <string>
#include <sys/wait.h>

using namespace contra;
using namespace contra::cli;
namespace fs = std::filesystem;
namespace json = contra::runtime::json;
using json::Json;

using contra::test::run_cli;
using contra::test::run_shell;

namespace {


const std::string fixtures = std::string(CONTRA_FIXTURE_DIR) + "/runs";
const std::string hcl_runs = fixtures + "/hcl";

std::string json_error(const std::string& text) {
  try {
    json::parse(text, "x.json");
  } catch (const DataError& e) {
    return e.what();
  }
  return "no error";
}

std::size_t count(const std::string& s, const std::string& what) {
  std::size_t n = 0;
  for (std::size_t p = s.find(what); p != std::string::npos; p = s.find(what, p + what.size())) ++n;
  return n;
}

// The table the hand-made summaries of tests/fixtures/runs/hcl give:
//   loss.beta=0:   final loss 1.0, 1.2 (the third run has no summary.json); knn 0.80, 0.82; probe 0.85, 0.87
//   loss.beta=0.5: final loss 0.9, 1.0, 1.1; knn 0.83, 0.84, 0.85; probe 0.88, 0.90 (the third has none)
// std is the sample standard deviation: sqrt(2 * 0.1^2 / 1) = 0.1414, sqrt(2 * 0.01^2 / 1) = 0.0141,
// sqrt(2 * 0.1^2 / 2) = 0.1, sqrt(2 * 0.01^2 / 2) = 0.01.
const char* expected_table =
    "| group | runs | final loss | knn.top1_k20_t0.07 | linear_probe.top1 |\n"
    "|---|---:|---:|---:|---:|\n"
    "| fixture loss.beta=0 | 2 of 3 | 1.1000 ± 0.1414 | 0.8100 ± 0.0141 | 0.8600 ± 0.0141 |\n"
    "| fixture loss.beta=0.5 | 3 | 1.0000 ± 0.1000 | 0.8400 ± 0.0100 | 0.8900 ± 0.0141 (n=2) |\n";

}  // namespace

TEST_CASE("report: the JSON reader takes every JSON form, and a member of the wrong type reads as missing",
          "[report]") {
  const Json v = json::parse(
      R"({"a": [1, -2.5e-1, 0, true, false, null], "s": "q\"\\\/\n\u00e9\ud83d\ude00", "o": {}, "e": [], "a": 3})",
      "x.json");
  REQUIRE(v.is_object());
  CHECK(json::number_at(v, "a") == 3);  // a repeated key: the last wins
  CHECK(v.begin().key() == "a");        // in the place of the first
  CHECK(json::string_at(v, "s") == "q\"\\/\n\xc3\xa9\xf0\x9f\x98\x80");
  REQUIRE(json::find(v, "o"));
  CHECK(json::find(v, "o")->is_object());
  CHECK(json::find(v, "missing") == nullptr);
  CHECK(std::isnan(json::number_at(v, "missing")));
  CHECK(std::isnan(json::number_at(v, "s")));          // a string is no number
  CHECK(json::string_at(v, "a", "none") == "none");   // nor a number a string
  CHECK(json::find(json::parse("[1]", "x.json"), "a") == nullptr);  // an array has no members

  const Json arr = json::parse("[1, -2.5e-1, 0, true, false, null, 1e308]", "x.json");
  CHECK(arr[1].get<double>() == -0.25);
  CHECK(arr[3].get<bool>());
  CHECK(arr[5].is_null());
  CHECK(std::isnan(json::number_at(json::parse(R"({"n": null})", "x.json"), "n")));  // how NaN is written
}

TEST_CASE("report: malformed JSON is an error naming the file, line and column", "[report]") {
  // nlohmann-json's own words; the place is where it stopped reading.
  CHECK(json_error(R"({"a": [1, 2,]})") ==
        "x.json:1:13: error: malformed JSON: syntax error while parsing value - unexpected ']'; expected '[', '{', or "
        "a literal");
  CHECK(json_error("{\n  \"a\": 1\n  \"b\": 2\n}") ==
        "x.json:3:5: error: malformed JSON: syntax error while parsing object - unexpected string literal; expected "
        "'}'");
  CHECK(json_error("{\"a\": 01}") ==
        "x.json:1:8: error: malformed JSON: syntax error while parsing object - unexpected number literal; expected "
        "'}'");
  CHECK(json_error("{\"a\": \"x") ==
        "x.json:1:9: error: malformed JSON: syntax error while parsing value - invalid string: missing closing quote; "
        "last read: '\"x'");
  CHECK(json_error("[1] 2") ==
        "x.json:1:5: error: malformed JSON: syntax error while parsing value - unexpected number literal; expected end "
        "of input");
  CHECK(json_error("") ==
        "x.json:1:1: error: malformed JSON: syntax error while parsing value - unexpected end of input; expected '[', "
        "'{', or a literal");
  CHECK(json_error("{\"a\": nul}") ==
        "x.json:1:10: error: malformed JSON: syntax error while parsing value - invalid literal; last read: '\"a\": "
        "nul}'");
  CHECK(json_error("{\"a\": \"\x01\"}") ==
        "x.json:1:8: error: malformed JSON: syntax error while parsing value - invalid string: control character "
        "U+0001 (SOH) must be escaped to \\u0001; last read: '\"<U+0001>'");
  CHECK(json_error("{\"a\": \"\xc3\"}") ==
        "x.json:1:9: error: malformed JSON: syntax error while parsing value - invalid string: ill-formed UTF-8 byte; "
        "last read: '\"\xc3\"'");
  // A number beyond a double: nlohmann says which, not where.
  CHECK(json_error("{\"a\": 1e999}") == "x.json:1: error: malformed JSON: number overflow parsing '1e999'");
  CHECK(json_error("{\n\"a\": 1e999}") == "x.json: error: malformed JSON: number overflow parsing '1e999'");

  // In a run folder, the message names the file and the line of metrics.jsonl.
  try {
    read_run(fixtures + "/malformed/bad-metrics");
    FAIL("no error");
  } catch (const DataError& e) {
    CHECK(std::string(e.what()) == fixtures +
                                       "/malformed/bad-metrics/metrics.jsonl:3:41: error: malformed JSON: syntax error "
                                       "while parsing object key - unexpected ','; expected string literal");
  }
  try {
    read_run(fixtures + "/malformed/bad-summary");
    FAIL("no error");
  } catch (const DataError& e) {
    CHECK(std::string(e.what()) == fixtures +
                                       "/malformed/bad-summary/summary.json:4:8: error: malformed JSON: syntax error "
                                       "while parsing object - unexpected string literal; expected '}'");
  }
  // A sweep folder's sweep.json.
  test::TempDir dir("report-bad-sweep");
  test::write_file(dir.file("sweep.json"), "{\"runs\": [1,");
  CHECK_THROWS_WITH(expand_run_dirs({dir.path().string()}),
                    dir.file("sweep.json") + ":1:13: error: malformed JSON: syntax error while parsing value - "
                                             "unexpected end of input; expected '[', '{', or a literal");
  test::CommandResult cli = run_cli("report " + fixtures + "/malformed/bad-summary --out /dev/null");
  CHECK(cli.status == 1);
  CHECK_THAT(cli.out, Catch::Contains("summary.json:4:8: error: malformed JSON"));
}

TEST_CASE("report: records nested 100000 deep are read or refused without overflowing the stack", "[report]") {
  test::TempDir dir("report-deep");
  const std::string run = dir.file("r");
  fs::create_directories(run);
  const std::string deep_array = std::string(100000, '[') + std::string(100000, ']');
  std::string deep_object;
  for (int i = 0; i < 100000; ++i) deep_object += "{\"a\": ";
  deep_object += "1" + std::string(100000, '}');
  test::write_file(run + "/run.json", deep_object + "\n");
  test::write_file(run + "/metrics.jsonl", "{\"type\": \"step\", \"step\": 1, \"loss\": 2.0, \"metrics\": {\"deep\": " +
                                               deep_array + "}}\n");
  RunData r = read_run(run);
  CHECK(r.pipeline == "r");  // run.json names none: the folder's name
  REQUIRE(r.step_curve("loss"));
  CHECK(r.step_curve("deep") == nullptr);  // not a number: no curve
  test::write_file(run + "/summary.json", deep_array);
  CHECK_THROWS_WITH(read_run(run), run + "/summary.json:1:1: error: expected a JSON object, found an array");
}

TEST_CASE("report: a run folder's records are read, unknown keys ignored", "[report]") {
  RunData r = read_run(hcl_runs + "/fixture-loss.beta=0-seed1");
  CHECK(r.pipeline == "fixture");
  CHECK(r.seed == 2);
  CHECK(r.overrides == std::vector<std::string>{"loss.beta=0", "runtime.compute_threads=1", "pipeline.seed=2"});
  CHECK(r.git_revision == "0123456789ab");
  CHECK(r.plugins == "source synthetic, encoder mlp, miner all_pairs, loss hcl, optimizer sgd");
  CHECK(r.finished);
  CHECK(r.steps == 6);
  CHECK(r.final_loss == 1.2);
  CHECK(r.eval == std::vector<std::pair<std::string, double>>{{"knn.top1_k20_t0.07", 0.82}, {"linear_probe.top1", 0.87}});
  REQUIRE(r.stages.size() == 4);
  CHECK(r.stages[2].name == "train");
  CHECK(r.stages[2].idle_s == 0.05);
  const Curve* loss = r.step_curve("loss");
  REQUIRE(loss);
  CHECK(loss->step == std::vector<double>{1, 2, 3, 4, 5, 6});  // steps done: the 0-based step + 1
  CHECK(loss->value.front() == 1.9);
  REQUIRE(r.step_curve("mining.false_negative_rate"));
  const Curve* knn = r.eval_curve("knn.top1_k20_t0.07");
  REQUIRE(knn);
  CHECK(knn->step == std::vector<double>{3, 6});
  CHECK(knn->value == std::vector<double>{0.77, 0.82});

  RunData unfinished = read_run(hcl_runs + "/fixture-loss.beta=0-seed2");
  CHECK_FALSE(unfinished.finished);
  CHECK(unfinished.step_curve("loss")->step.size() == 3);

  // A folder of runs stands for the runs in it, sorted.
  std::vector<fs::path> dirs = expand_run_dirs({hcl_runs});
  REQUIRE(dirs.size() == 6);
  CHECK(dirs[0].filename() == "fixture-loss.beta=0-seed0");
  CHECK(dirs[3].filename() == "fixture-loss.beta=0.5-seed0");
  CHECK_THROWS_WITH(expand_run_dirs({fixtures + "/nowhere"}), fixtures + "/nowhere: no such folder");
}

TEST_CASE("report: a run numbered from 1 (run.json steps_from) and one that failed", "[report]") {
  test::TempDir dir("report-steps-from");
  const std::string run = dir.file("r");
  fs::create_directories(run);
  test::write_file(run + "/run.json", "{\"pipeline\": \"p\", \"seed\": 0, \"steps_from\": 1}\n");
  test::write_file(run + "/metrics.jsonl",
                   "{\"type\": \"step\", \"step\": 1, \"epoch\": 0, \"loss\": 2.0}\n"
                   "{\"type\": \"step\", \"step\": 2, \"epoch\": 0, \"loss\": 1.5}\n"
                   "{\"type\": \"eval_error\", \"step\": 2, \"epoch\": 0, \"error\": \"x\"}\n");
  test::write_file(run + "/summary.json", "{\"steps\": 2, \"error\": \"sample 3 is corrupt\", \"failed\": \"t\"}\n");
  RunData r = read_run(run);
  REQUIRE(r.step_curve("loss"));
  CHECK(r.step_curve("loss")->step == std::vector<double>{1, 2});
  CHECK_FALSE(r.finished);
  CHECK(r.error == "sample 3 is corrupt");
}

TEST_CASE("report: figures no integer or chart step can hold are read as missing or drawn, never hang",
          "[report]") {
  test::TempDir dir("report-huge");
  const std::string run = dir.file("r");
  fs::create_directories(run);
  test::write_file(run + "/run.json", "{\"pipeline\": \"p\", \"seed\": 1e300}\n");
  test::write_file(run + "/summary.json", "{\"steps\": -1e300, \"final_loss\": 1}\n");
  // A diverged loss: near 1e16, where a tick step of 0.5 does not move a double.
  test::write_file(run + "/metrics.jsonl",
                   "{\"type\": \"step\", \"step\": 1, \"loss\": 10000000000000000}\n"
                   "{\"type\": \"step\", \"step\": 2, \"loss\": 10000000000000002}\n"
                   "{\"type\": \"step\", \"step\": 3, \"lr\": -1.7e308}\n"
                   "{\"type\": \"step\", \"step\": 4, \"lr\": 1.7e308}\n");
  const RunData r = read_run(run);
  CHECK(r.seed == -1);
  CHECK(r.steps == 0);
  // Through the CLI, bounded: an endless tick loop is a timeout, not a hung suite.
  const std::string out = dir.file("report.html");
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  const std::string memory_limit;  // a sanitizer reserves terabytes of address space at start
#else
  const std::string memory_limit = "ulimit -v 4000000; ";
#endif
  const auto res = run_shell(memory_limit + "timeout 60 " + std::string(CONTRA_BINARY_DIR) + "/bin/contra report " +
                             run + " --out " + out + " 2>&1");
  INFO(res.out);
  CHECK(res.status == 0);
  CHECK_THAT(test::read_file(out), Catch::Contains("Training loss per step"));
}

TEST_CASE("report: runs that differ only by seed form a group, with mean ± sample std per figure", "[report]") {
  std::vector<RunData> runs;
  for (const auto& d : expand_run_dirs({hcl_runs})) runs.push_back(read_run(d));
  std::vector<RunGroup> groups = group_runs(std::move(runs));
  REQUIRE(groups.size() == 2);
  CHECK(groups[0].label() == "fixture loss.beta=0");  // runtime.* and pipeline.seed do not split a group
  CHECK(groups[0].runs.size() == 3);
  CHECK(groups[1].label() == "fixture loss.beta=0.5");
  CHECK(groups[1].runs.size() == 3);
  CHECK(markdown_table(groups) == expected_table);

  Stat s = stat_of({1.0, 2.0, 4.0, NAN});
  CHECK(s.n == 3);
  CHECK(s.mean == Approx(7.0 / 3));
  CHECK(s.std == Approx(std::sqrt(((1 - 7.0 / 3) * (1 - 7.0 / 3) + (2 - 7.0 / 3) * (2 - 7.0 / 3) +
                                   (4 - 7.0 / 3) * (4 - 7.0 / 3)) / 2)));
  CHECK(format_stat(stat_of({0.5})) == "0.5000");
  CHECK(format_stat(stat_of({})) == "—");
  CHECK(format_stat(stat_of({1, 2}), 2) == "1.50 ± 0.71");
}

TEST_CASE("report: curves are averaged step by step and cut to at most 500 points", "[report]") {
  Curve a{{1, 2, 3}, {1.0, 2.0, 3.0}}, b{{1, 2}, {3.0, 4.0}};
  Band band = average_curves({&a, &b});
  CHECK(band.step == std::vector<double>{1, 2, 3});
  CHECK(band.mean == std::vector<double>{2.0, 3.0, 3.0});
  CHECK(band.std[0] == Approx(std::sqrt(2.0)));
  CHECK(band.std[2] == 0.0);  // one run has step 3: no band there

  Curve big;
  for (int i = 1; i <= 20000; ++i) {
    big.step.push_back(i);
    big.value.push_back(i % 2);  // alternating 0, 1: buckets of 40 steps average to 0.5
  }
  Band cut = average_curves({&big}, 500);
  REQUIRE(cut.step.size() == 500);
  CHECK(cut.step.front() == Approx(20.5));
  CHECK(cut.step.back() == Approx(19980.5));
  for (double m : cut.mean) CHECK(m == Approx(0.5));
}

TEST_CASE("report: the HTML page has the table and an inline SVG per chart, nothing external", "[report]") {
  std::vector<RunData> runs;
  for (const auto& d : expand_run_dirs({hcl_runs})) runs.push_back(read_run(d));
  std::vector<RunGroup> groups = group_runs(std::move(runs));
  std::string html = html_report(groups, "fixture <report>");
  CHECK_THAT(html, Catch::StartsWith("<!DOCTYPE html>"));
  CHECK_THAT(html, Catch::Contains("<title>fixture &lt;report&gt;</title>"));
  CHECK_THAT(html, Catch::Contains("<table id=\"final-figures\">"));
  CHECK_THAT(html, Catch::Contains("<td class=\"num\">1.1000 ± 0.1414</td>"));
  CHECK_THAT(html, Catch::Contains("<td class=\"num\">0.8900 ± 0.0141 (n=2)</td>"));
  // Charts: loss, lr, two eval figures, four mining figures, the stage bars, and
  // mining.negatives_per_anchor among the other per-step figures.
  CHECK(count(html, "<figure class=\"chart\">") == 10);
  CHECK(count(html, "<svg ") == 10);
  CHECK(count(html, "</svg>") == 10);
  for (const char* caption : {"Training loss per step", "knn.top1_k20_t0.07 per evaluation",
                              "linear_probe.top1 per evaluation", "(mining.neg_sim_mean)", "(mining.neg_sim_p90)",
                              "Busy seconds per stage, and train idle"})
    CHECK_THAT(html, Catch::Contains(caption));
  // The false-negative rate sits at the class share and says little: folded
  // with the other per-step figures.
  CHECK(html.find("<figcaption>mining.false_negative_rate</figcaption>") > html.find("<details id=\"more\">"));
  // Two seeds differ in loss at every step: the loss chart has a ±1 std band.
  CHECK_THAT(html, Catch::Contains("<polygon class=\"band\""));
  CHECK_THAT(html, Catch::Contains("<table id=\"timings-table\">"));
  CHECK_THAT(html, Catch::Contains("<th>train idle (s)</th>"));
  // Self-contained: no script, no fetched resource.
  CHECK_THAT(html, !Catch::Contains("<script"));
  CHECK_THAT(html, !Catch::Contains("src="));
  CHECK_THAT(html, !Catch::Contains("https:"));
  CHECK(count(html, "http:") == count(html, "xmlns=\"http://www.w3.org/2000/svg\""));
}

TEST_CASE("report: the CLI prints the Markdown table and writes the page and --markdown", "[report]") {
  test::TempDir dir("report-cli");
  const std::string html = dir.file("r.html"), md = dir.file("r.md");
  test::CommandResult r = run_cli("report " + hcl_runs + " --out " + html + " --markdown " + md, "2>/dev/null");
  CHECK(r.status == 0);
  CHECK(r.out == expected_table);
  CHECK(test::read_file(md) == expected_table);
  CHECK_THAT(test::read_file(html), Catch::Contains("<table id=\"final-figures\">"));
  // Run folders one by one give the same groups.
  test::CommandResult one = run_cli("report " + hcl_runs + "/fixture-loss.beta=0.5-seed0 " + hcl_runs +
                           "/fixture-loss.beta=0.5-seed1 --out " + html,
                       "2>/dev/null");
  CHECK(one.status == 0);
  CHECK_THAT(one.out, Catch::Contains("| fixture loss.beta=0.5 | 2 | 0.9500 ± 0.0707 | 0.8350 ± 0.0071 | 0.8900 ± 0.0141 |"));
  CHECK(run_cli("report").status == 2);
  test::CommandResult unknown = run_cli("report " + hcl_runs + " --frobnicate");
  CHECK(unknown.status == 2);
  CHECK(unknown.out == "contra report: unknown option '--frobnicate' (see contra report --help)\n");
}

TEST_CASE("report: the page loads in headless Chromium with the table and no console errors", "[report][browser]") {
  if (run_shell("command -v chromium >/dev/null 2>&1").status != 0) {
    WARN("SKIPPED: chromium not installed (apt-get install chromium)");
    return;
  }
  test::TempDir dir("report-browser");
  const std::string html = dir.file("report.html");
  REQUIRE(run_cli("report " + hcl_runs + " --out " + html, ">/dev/null 2>&1").status == 0);
  auto chromium = [&](const std::string& page, const std::string& err) {
    return run_shell("timeout 120 chromium --headless --disable-gpu --no-sandbox --no-first-run "
                     "--user-data-dir=" + dir.file("profile") + " --enable-logging=stderr --v=0 --dump-dom file://" +
                     page + " 2>" + err);
  };
  // Chromium logs every console message of a page as "...:INFO:CONSOLE:<line>] "<text>", source: <url>",
  // whatever its level (console.log, console.error, an uncaught exception). The
  // report has no script, so any console message at all counts as an error of the page.
  auto console_errors = [](const std::string& log) {
    std::istringstream in(log);
    std::string out;
    for (std::string line; std::getline(in, line);)
      if (line.find("CONSOLE") != std::string::npos) out += line + "\n";
    return out;
  };
  // The check sees a page's console errors: a page that logs one is caught.
  const std::string bad = dir.file("bad.html");
  test::write_file(bad, "<!DOCTYPE html><html><body><p>x</p><script>console.error('boom'); undefined_function();"
                        "</script></body></html>");
  test::CommandResult b = chromium(bad, dir.file("bad.err"));
  REQUIRE(b.status == 0);
  CHECK_THAT(console_errors(test::read_file(dir.file("bad.err"))), Catch::Contains("boom"));

  test::CommandResult r = chromium(html, dir.file("report.err"));
  std::string log = test::read_file(dir.file("report.err"));
  INFO(log);
  CHECK(r.status == 0);
  CHECK_THAT(r.out, Catch::Contains("<table id=\"final-figures\">"));
  CHECK_THAT(r.out, Catch::Contains("1.1000 ± 0.1414"));
  CHECK(count(r.out, "<svg ") == 10);
  CHECK(console_errors(log).empty());
}

TEST_CASE("report: groups are named by the settings that differ, and a table says what differs", "[report]") {
  std::vector<RunData> runs;
  for (const auto& d : expand_run_dirs({hcl_runs})) runs.push_back(read_run(d));
  REQUIRE(!runs.front().resolved.empty());
  CHECK(std::find(runs.front().resolved.begin(), runs.front().resolved.end(),
                  std::pair<std::string, std::string>{"encoder.hidden", "[ 16 ]"}) != runs.front().resolved.end());
  std::vector<RunGroup> groups = group_runs(std::move(runs));
  REQUIRE(groups.size() == 2);
  CHECK(groups[0].name == "loss.beta=0");
  CHECK(groups[1].name == "loss.beta=0.5");
  const std::vector<DifferingSetting> differ = differing_settings(groups);
  REQUIRE(differ.size() == 1);  // the seeds differ too, but within the groups; nothing else does
  CHECK(differ[0].key == "loss.beta");
  CHECK(differ[0].values == std::vector<std::string>{"0", "0.5"});
  const std::string html = html_report(groups, "t");
  CHECK_THAT(html, Catch::Contains("<table id=\"differences-table\">\n<tr><th>group</th><th>loss.beta</th></tr>"));
  // Legends carry the short names, the long override strings stay in the groups table.
  CHECK_THAT(html, Catch::Contains("<span><i style=\"background:#4e79a7\"></i>loss.beta=0</span>"));
  CHECK_THAT(html, !Catch::Contains("<span><i style=\"background:#4e79a7\"></i>fixture"));
  // One revision: no warning.
  CHECK_THAT(html, !Catch::Contains("id=\"mixed-revisions\""));

  SECTION("a path is named by its file, a long name by its number") {
    for (std::size_t i = 0; i < groups.size(); ++i) {
      groups[i].runs.front().resolved.emplace_back("source.images", "\"/data/split" + std::to_string(i) + "/images.gz\"");
      groups[i].runs.front().resolved.emplace_back("optimizer.schedule_of_something_long", std::to_string(i));
    }
    std::vector<RunData> all;
    for (auto& g : groups)
      for (auto& r : g.runs) all.push_back(r);
    // The other runs of each group keep their files: the first run decides.
    const std::vector<RunGroup> named = group_runs(all);
    CHECK(named[0].name == "G1");
    CHECK(differing_settings(named).size() == 3);
    CHECK(differing_settings(named)[1].values[1] == "\"/data/split1/images.gz\"");
  }
  SECTION("runs of several revisions are flagged") {
    groups[1].runs[0].git_revision = "fedcba987654";
    CHECK_THAT(html_report(groups, "t"),
               Catch::Contains("These runs come from 2 revisions of contra (0123456789ab: 5 runs, fedcba987654: 1 run)"));
  }
}

TEST_CASE("report: bookkeeping figures are tabled apart, figures evaluated once are bars", "[report]") {
  CHECK(is_bookkeeping_figure("linear_probe.iterations"));
  CHECK(is_bookkeeping_figure("linear_probe.loss"));
  CHECK(is_bookkeeping_figure("zero_shot.classes"));
  CHECK(!is_bookkeeping_figure("linear_probe.top1"));
  CHECK(!is_bookkeeping_figure("knn.top1_k20_t0.07"));
  std::vector<RunData> runs;
  for (const auto& d : expand_run_dirs({hcl_runs})) runs.push_back(read_run(d));
  // Each run evaluated once, after its last step; one with an iteration count.
  for (auto& r : runs) {
    for (auto& [k, c] : r.eval_curves) {
      c.step.erase(c.step.begin(), c.step.end() - 1);
      c.value.erase(c.value.begin(), c.value.end() - 1);
    }
    r.eval_curves.push_back({"linear_probe.iterations", Curve{{6}, {37}}});
    r.eval.emplace_back("linear_probe.iterations", 37);
  }
  const std::vector<RunGroup> groups = group_runs(std::move(runs));
  const std::string html = html_report(groups, "t");
  CHECK_THAT(html, Catch::Contains("Evaluated once, after the last step"));
  CHECK_THAT(html, !Catch::Contains("per evaluation</figcaption>"));
  CHECK_THAT(html, Catch::Contains("<table id=\"bookkeeping\">\n<tr><th>group</th><th>linear_probe.iterations</th>"));
  const std::string final_table = html.substr(html.find("<table id=\"final-figures\">"),
                                              html.find("</table>", html.find("<table id=\"final-figures\">")) -
                                                  html.find("<table id=\"final-figures\">"));
  CHECK_THAT(final_table, !Catch::Contains("iterations"));
  CHECK_THAT(markdown_table(groups), !Catch::Contains("iterations"));
}

TEST_CASE("report: --smooth averages neighbouring points, --log-loss draws the loss on a log axis", "[report]") {
  std::vector<RunData> runs;
  for (const auto& d : expand_run_dirs({hcl_runs})) runs.push_back(read_run(d));
  const std::vector<RunGroup> groups = group_runs(std::move(runs));
  ReportOptions options;
  options.smooth = 3;
  options.log_loss = true;
  const std::string html = html_report(groups, "t", options);
  CHECK_THAT(html, Catch::Contains("Training loss per step (mean over seeds, band ±1 std, moving average over 3 points)"));
  CHECK_THAT(html, Catch::Contains("loss (log scale)"));
  CHECK_THAT(html_report(groups, "t"), !Catch::Contains("log scale"));
}

TEST_CASE("report: --x epoch and --x time map each run's steps through its own records", "[report]") {
  std::vector<RunData> runs;
  for (const auto& d : expand_run_dirs({hcl_runs})) runs.push_back(read_run(d));
  // The fixture's first run: steps 1..6, time_s 0.1 a step, its epochs as recorded.
  const RunData& r = runs.front();
  REQUIRE(!r.epoch_at.step.empty());
  REQUIRE(!r.time_at.step.empty());
  // The axes are not figures: no chart of them.
  CHECK(r.step_curve("\x01epoch") == nullptr);
  CHECK(x_of(r, 4, "step") == 4);
  CHECK(x_of(r, 2, "time") == Approx(0.2));
  CHECK(x_of(r, 2.5, "time") == Approx(0.25));  // between recorded steps, linear
  double per_epoch = 0;
  for (std::size_t i = 0; i < r.epoch_at.step.size() && r.epoch_at.value[i] == r.epoch_at.value.front(); ++i) ++per_epoch;
  CHECK(x_of(r, 6, "epoch") == Approx(6 / per_epoch));
  const std::vector<RunGroup> groups = group_runs(std::move(runs));
  ReportOptions options;
  options.x = "time";
  const std::string html = html_report(groups, "t", options);
  CHECK_THAT(html, Catch::Contains("Training loss per second"));
  CHECK_THAT(html, Catch::Contains(">seconds</text>"));
  options.x = "epoch";
  CHECK_THAT(html_report(groups, "t", options), Catch::Contains(">epoch</text>"));
}

