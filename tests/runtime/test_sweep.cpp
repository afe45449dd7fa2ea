// contra sweep: grid expansion, run-folder names, the dry run, and real sweeps
// through the CLI.
#include "../../tools/contra/sweep.hpp"
#include "test_support.hpp"
#include "cli_runner.hpp"
#include "train/json_io.hpp"

#include <contra/errors.hpp>

#include <catch2/catch.hpp>

#include <cstdio>
#include <filesystem>
#include <string>
#include <sys/wait.h>

using namespace contra;
using namespace contra::cli;
namespace fs = std::filesystem;
namespace json = contra::runtime::json;
using json::Json;

using contra::test::run_cli;

namespace {


const char* tiny_pipeline = R"(
[pipeline]
name = "tiny"
seed = 3
[runtime]
compute_threads = 1
data_threads = 1
prefetch = 2
[train]
max_steps = 5
log_every = 1
[source]
plugin = "synthetic"
size = 64
height = 8
width = 8
[sampler]
plugin = "random"
batch_size = 8
[encoder]
plugin = "mlp"
hidden = [16]
output = 8
[loss]
plugin = "info_nce"
[optimizer]
plugin = "sgd"
lr = 0.01
)";

std::vector<std::vector<std::string>> overrides_of(const std::vector<SweepRun>& runs) {
  std::vector<std::vector<std::string>> o;
  for (const auto& r : runs) o.push_back(r.overrides);
  return o;
}

}  // namespace

TEST_CASE("sweep: expand_grid is the cartesian product, first axis slowest, seeds innermost", "[sweep]") {
  std::vector<GridAxis> grid = {{"miner.beta", {"0", "0.5"}}, {"loss.temperature", {"0.1", "0.5"}}};
  std::vector<SweepRun> runs = expand_grid(grid, 3);
  REQUIRE(runs.size() == 12);
  std::vector<std::vector<std::string>> expected;
  for (const char* b : {"0", "0.5"})
    for (const char* t : {"0.1", "0.5"})
      for (int s = 0; s < 3; ++s)
        expected.push_back({std::string("miner.beta=") + b, std::string("loss.temperature=") + t,
                            "pipeline.seed=" + std::to_string(s)});
  CHECK(overrides_of(runs) == expected);
  CHECK(runs[4].seed_index == 1);
  CHECK(runs[4].point == std::vector<std::pair<std::string, std::string>>{{"miner.beta", "0"}, {"loss.temperature", "0.5"}});

  // Seeds count from the pipeline's own seed.
  std::vector<SweepRun> based = expand_grid({{"loss.temperature", {"0.1", "0.5"}}}, 2, 7);
  CHECK(overrides_of(based) == std::vector<std::vector<std::string>>{{"loss.temperature=0.1", "pipeline.seed=7"},
                                                                     {"loss.temperature=0.1", "pipeline.seed=8"},
                                                                     {"loss.temperature=0.5", "pipeline.seed=7"},
                                                                     {"loss.temperature=0.5", "pipeline.seed=8"}});
  CHECK(based[1].seed == 8);

  // Three axes: the odometer turns the last one fastest.
  std::vector<SweepRun> three = expand_grid({{"a.x", {"1", "2"}}, {"b.y", {"3"}}, {"c.z", {"4", "5", "6"}}}, 0);
  CHECK(overrides_of(three) == std::vector<std::vector<std::string>>{{"a.x=1", "b.y=3", "c.z=4"},
                                                                     {"a.x=1", "b.y=3", "c.z=5"},
                                                                     {"a.x=1", "b.y=3", "c.z=6"},
                                                                     {"a.x=2", "b.y=3", "c.z=4"},
                                                                     {"a.x=2", "b.y=3", "c.z=5"},
                                                                     {"a.x=2", "b.y=3", "c.z=6"}});
  CHECK(three[0].seed_index == -1);

  // No axes: one run per seed, or one run with the pipeline's seed.
  CHECK(overrides_of(expand_grid({}, 2, 5)) ==
        std::vector<std::vector<std::string>>{{"pipeline.seed=5"}, {"pipeline.seed=6"}});
  CHECK(overrides_of(expand_grid({}, 0)) == std::vector<std::vector<std::string>>{{}});
}

TEST_CASE("sweep: --grid values split at top-level commas and are checked", "[sweep]") {
  CHECK(split_grid_values("0,0.5,1") == std::vector<std::string>{"0", "0.5", "1"});
  CHECK(split_grid_values("[0.5,1.0],[0.2, 1.0]") == std::vector<std::string>{"[0.5,1.0]", "[0.2, 1.0]"});
  CHECK(split_grid_values("\"a,b\", 'c,d' ,e") == std::vector<std::string>{"\"a,b\"", "'c,d'", "e"});
  CHECK(split_grid_values("true") == std::vector<std::string>{"true"});

  GridAxis a = parse_grid_axis("loss.temperature=0.1,0.5");
  CHECK(a.key == "loss.temperature");
  CHECK(a.values == std::vector<std::string>{"0.1", "0.5"});
  auto message = [](const std::string& text) {
    try {
      parse_grid_axis(text);
    } catch (const UsageError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  CHECK(message("loss.temperature") == "--grid loss.temperature: expected section.key=value1,value2,...");
  CHECK(message("temperature=0.1") == "--grid temperature=0.1: the key must be section.key, e.g. loss.temperature");
  CHECK(message("loss.temperature=0.1,,0.5") == "--grid loss.temperature=0.1,,0.5: value 2 of 3 is empty");
  CHECK(message("loss.temperature=0.1,0.1") == "--grid loss.temperature=0.1,0.1: the value 0.1 is given twice");
}

TEST_CASE("sweep: run folders are named <pipeline>-<key>=<value>-...-seed<i>, sanitised and distinct", "[sweep]") {
  std::vector<SweepRun> runs = expand_grid({{"miner.beta", {"0", "0.5"}}, {"loss.temperature", {"0.1"}}}, 2, 9);
  CHECK(run_folder_names("simclr", runs) == std::vector<std::string>{
                                                "simclr-miner.beta=0-loss.temperature=0.1-seed0",
                                                "simclr-miner.beta=0-loss.temperature=0.1-seed1",
                                                "simclr-miner.beta=0.5-loss.temperature=0.1-seed0",
                                                "simclr-miner.beta=0.5-loss.temperature=0.1-seed1",
                                            });
  CHECK(sanitize_name("augment.chain.0.scale=[0.5, 1.0]") == "augment.chain.0.scale=_0.5__1.0_");
  CHECK(sanitize_name("source.images=\"/data/a b.gz\"") == "source.images=_data_a_b.gz");
  CHECK(sanitize_name("my pipeline") == "my_pipeline");
  CHECK(sanitize_name("..") == "_..");
  // Values equal once sanitised still get folders of their own.
  std::vector<SweepRun> clash = expand_grid({{"source.tag", {"\"a b\"", "\"a_b\"", "a/b"}}}, 0);
  CHECK(run_folder_names("p", clash) ==
        std::vector<std::string>{"p-source.tag=a_b", "p-source.tag=a_b-2", "p-source.tag=a_b-3"});
  // Long names stay under the file-name limit and keep their seed.
  SweepRun longer;
  longer.point = {{"source.images", std::string(300, 'x')}};
  longer.seed_index = 2;
  std::string name = run_folder_name("p", longer);
  CHECK(name.size() < 200);
  CHECK_THAT(name, Catch::Contains("-seed2-"));
}

TEST_CASE("sweep: --dry-run prints each run's folder and command, checks them, and runs nothing", "[sweep]") {
  test::TempDir dir("sweep-dry");
  const std::string file = dir.file("tiny.toml"), out = dir.file("out");
  test::write_file(file, tiny_pipeline);
  test::CommandResult r = run_cli("sweep " + file + " --grid loss.temperature=0.1,0.5 --seeds 2 --set train.max_steps=3 --out " +
                     out + " --dry-run");
  CHECK(r.status == 0);
  std::string expected = "contra sweep " + file + ": 4 runs (2 values, 2 seeds), 1 at a time, in " + out + "\n";
  int i = 0;
  for (const char* t : {"0.1", "0.5"})
    for (int s = 0; s < 2; ++s) {
      std::string run_dir = out + "/tiny-loss.temperature=" + t + "-seed" + std::to_string(s);
      expected += "[" + std::to_string(++i) + "/4] " + run_dir + "\n    contra run " + file +
                  " --set train.max_steps=3 --set loss.temperature=" + t + " --set pipeline.seed=" +
                  std::to_string(3 + s) + " --run-dir " + run_dir + "\n";
    }
  expected += "dry run: nothing was run\n";
  CHECK(r.out == expected);
  CHECK_FALSE(fs::exists(out));

  // Several at once: each run gets its share of the cores, unless --set says otherwise.
  test::CommandResult j = run_cli("sweep " + file + " --grid loss.temperature=0.1,0.5 --jobs 2 --set runtime.data_threads=1 --out " +
                     out + " --dry-run");
  CHECK(j.status == 0);
  CHECK_THAT(j.out, Catch::Contains("2 runs (2 values, 1 seed), 2 at a time"));
  CHECK_THAT(j.out, Catch::Contains(" --set runtime.data_threads=1 --set runtime.compute_threads="));
  CHECK_THAT(j.out, !Catch::Contains("runtime.data_threads=1 --set runtime.data_threads"));
}

TEST_CASE("sweep: a wrong command line exits 2, an invalid combination 1, before anything runs", "[sweep]") {
  test::TempDir dir("sweep-bad");
  const std::string file = dir.file("tiny.toml"), out = dir.file("out");
  test::write_file(file, tiny_pipeline);
  test::CommandResult dup = run_cli("sweep " + file + " --grid loss.temperature=0.1 --grid loss.temperature=0.5");
  CHECK(dup.status == 2);
  CHECK(dup.out == "contra sweep: --grid loss.temperature is given twice; list all its values in one\n");
  test::CommandResult both = run_cli("sweep " + file + " --grid loss.temperature=0.1,0.5 --set loss.temperature=0.2");
  CHECK(both.status == 2);
  CHECK(both.out == "contra sweep: loss.temperature is given both by --set and by --grid\n");
  test::CommandResult seeds = run_cli("sweep " + file + " --grid pipeline.seed=1,2 --seeds 2");
  CHECK(seeds.status == 2);
  CHECK(seeds.out == "contra sweep: --grid pipeline.seed and --seeds both choose the seed; use one of them\n");
  test::CommandResult jobs = run_cli("sweep " + file + " --jobs 0");
  CHECK(jobs.status == 2);
  CHECK(jobs.out == "contra sweep: --jobs: Value 0 not in range 1 to 1024 (see contra sweep --help)\n");
  test::CommandResult none = run_cli("sweep --grid loss.temperature=0.1");
  CHECK(none.status == 2);
  CHECK(none.out == "contra sweep: no pipeline file given (see contra sweep --help)\n");
  CHECK(run_cli("sweep --help").status == 0);

  test::CommandResult invalid = run_cli("sweep " + file + " --grid loss.temperature=0.1,0 --out " + out);
  CHECK(invalid.status == 1);
  CHECK_THAT(invalid.out,
             Catch::Contains("[2/2] tiny-loss.temperature=0-seed0: invalid:\n--set loss.temperature=0: error: "
                             "loss.temperature: expected a value in [0.001, 10], found 0\n"));
  CHECK_THAT(invalid.out, Catch::EndsWith("contra sweep: 1 of 2 combinations are invalid; nothing was run\n"));
  CHECK_FALSE(fs::exists(out));
}

TEST_CASE("sweep: --continue refuses a malformed sweep.json or summary.json, naming it, and runs nothing",
          "[sweep]") {
  test::TempDir dir("sweep-malformed");
  const std::string file = dir.file("tiny.toml"), out = dir.file("out");
  test::write_file(file, tiny_pipeline);
  fs::create_directories(out + "/tiny-loss.temperature=0.1-seed0");
  test::write_file(out + "/tiny-loss.temperature=0.1-seed0/summary.json", "{\"steps\": 5,}");
  test::write_file(out + "/sweep.json", "{");
  const std::string command = "sweep " + file + " --grid loss.temperature=0.1 --continue --out " + out;
  test::CommandResult bad_sweep = run_cli(command);
  CHECK(bad_sweep.status == 1);
  CHECK_THAT(bad_sweep.out, Catch::EndsWith("contra sweep: " + out + "/sweep.json:1:2: error: malformed JSON: syntax "
                                            "error while parsing object key - unexpected end of input; expected "
                                            "string literal\n"));
  test::write_file(out + "/sweep.json", "[]");  // no runs listed: the folder's own summary.json decides
  test::CommandResult bad_summary = run_cli(command);
  CHECK(bad_summary.status == 1);
  CHECK_THAT(bad_summary.out, Catch::EndsWith("contra sweep: " + out + "/tiny-loss.temperature=0.1-seed0/summary.json"
                                              ":1:13: error: malformed JSON: syntax error while parsing object key - "
                                              "unexpected '}'; expected string literal\n"));
  CHECK_FALSE(fs::exists(out + "/tiny-loss.temperature=0.1-seed0/output.log"));
}

TEST_CASE("sweep: 2 values x 2 seeds run one at a time, a run folder each, listed in sweep.json", "[sweep]") {
  test::TempDir dir("sweep-run");
  const std::string file = dir.file("tiny.toml"), out = dir.file("out");
  test::write_file(file, tiny_pipeline);
  test::CommandResult r = run_cli("sweep " + file + " --grid loss.temperature=0.1,0.5 --seeds 2 --jobs 1 --out " + out);
  INFO(r.out);
  REQUIRE(r.status == 0);
  std::vector<std::string> names = {"tiny-loss.temperature=0.1-seed0", "tiny-loss.temperature=0.1-seed1",
                                    "tiny-loss.temperature=0.5-seed0", "tiny-loss.temperature=0.5-seed1"};
  for (std::size_t i = 0; i < names.size(); ++i) {
    fs::path d = fs::path(out) / names[i];
    CHECK(fs::exists(d / "summary.json"));
    CHECK(fs::exists(d / "pipeline.toml"));
    CHECK(fs::exists(d / "output.log"));
    std::string run_json = test::read_file((d / "run.json").string());
    CHECK_THAT(run_json, Catch::Contains(std::string("\"loss.temperature=") + (i < 2 ? "0.1" : "0.5") + "\""));
    CHECK_THAT(run_json, Catch::Contains("\"seed\": " + std::to_string(3 + i % 2)));
    std::string n = std::to_string(i + 1);
    CHECK_THAT(r.out, Catch::Contains("[" + n + "/4] start  " + d.string()));
    CHECK_THAT(r.out, Catch::Contains("[" + n + "/4] ok     " + d.string()));
    CHECK_THAT(r.out, Catch::Contains("  ok          " + d.string() + "\n"));
  }
  // One at a time: each run finishes before the next starts.
  CHECK(r.out.find("[1/4] ok") < r.out.find("[2/4] start"));
  CHECK_THAT(r.out, Catch::Contains("4 ok, 0 failed; sweep recorded in " + out + "/sweep.json"));

  const Json sweep = json::parse_file(out + "/sweep.json");
  CHECK(json::string_at(sweep, "pipeline") == "tiny");
  CHECK(json::number_at(sweep, "seeds") == 2);
  const Json* runs = json::find(sweep, "runs");
  REQUIRE(runs);
  REQUIRE(runs->size() == 4);
  for (std::size_t i = 0; i < 4; ++i) {
    const Json& run = (*runs)[i];
    CHECK(json::string_at(run, "dir") == names[i]);
    CHECK(json::string_at(run, "status") == "ok");
    CHECK(json::number_at(run, "seed") == static_cast<double>(3 + i % 2));
    const Json* o = json::find(run, "overrides");
    REQUIRE(o);
    REQUIRE(o->size() == 2);
    CHECK((*o)[0] == std::string("loss.temperature=") + (i < 2 ? "0.1" : "0.5"));
  }

  // The same sweep again refuses to overwrite; --continue skips the finished runs, resumes the
  // interrupted ones from their checkpoint and runs the others again.
  test::CommandResult again = run_cli("sweep " + file + " --grid loss.temperature=0.1,0.5 --seeds 2 --out " + out);
  CHECK(again.status == 2);
  CHECK_THAT(again.out, Catch::Contains("contra sweep: 4 run folders already exist:\n"));
  std::string record = test::read_file(out + "/sweep.json");
  auto mark = [&](const std::string& name, const std::string& status) {
    std::size_t at = record.find("\"status\": \"ok\"", record.find(name));
    record.replace(at, 14, "\"status\": \"" + status + "\"");
  };
  mark(names[2], "interrupted");
  mark(names[3], "failed");
  test::write_file(out + "/sweep.json", record);
  fs::remove(fs::path(out) / names[3] / "summary.json");
  fs::remove_all(fs::path(out) / names[3] / "checkpoints");
  test::CommandResult cont = run_cli("sweep " + file + " --grid loss.temperature=0.1,0.5 --seeds 2 --continue --out " + out);
  INFO(cont.out);
  CHECK(cont.status == 0);
  CHECK_THAT(cont.out, Catch::Contains("[1/4] skip   " + out + "/" + names[0] + "  (finished before)\n"));
  CHECK_THAT(cont.out, Catch::Contains("[2/4] skip   " + out + "/" + names[1]));
  CHECK_THAT(cont.out, Catch::Contains("[3/4] resume " + out + "/" + names[2]));
  CHECK_THAT(cont.out, Catch::Contains("[4/4] start  " + out + "/" + names[3]));
  CHECK_THAT(cont.out, Catch::Contains("2 ok, 0 failed, 2 skipped (finished before)"));
  CHECK(fs::exists(fs::path(out) / names[3] / "summary.json"));
  CHECK_THAT(test::read_file(out + "/sweep.json"), !Catch::Contains("\"interrupted\""));

  // The report groups the sweep's runs by temperature.
  test::CommandResult rep = run_cli("report " + out + " --out " + dir.file("r.html"), "2>/dev/null");
  CHECK(rep.status == 0);
  CHECK_THAT(rep.out, Catch::Contains("| tiny loss.temperature=0.1 | 2 | "));
  CHECK_THAT(rep.out, Catch::Contains("| tiny loss.temperature=0.5 | 2 | "));
  CHECK(fs::exists(dir.file("r.html")));
}

TEST_CASE("sweep: a failed run is reported and the others still run, exit code 1", "[sweep]") {
  const fs::path misbehaving = fs::path(CONTRA_FIXTURE_PLUGIN_DIR) / "misbehaving";
  if (!fs::exists(misbehaving)) {
    WARN("SKIPPED: the misbehaving fixture plugin is not built");
    return;
  }
  test::TempDir dir("sweep-fail");
  const std::string file = dir.file("tiny.toml"), out = dir.file("out");
  test::write_file(file, std::string(tiny_pipeline) + "[miner]\nplugin = \"bad_miner\"\n[plugins]\npaths = [\"" +
                             misbehaving.string() + "\"]\n");
  test::CommandResult r = run_cli("sweep " + file + " --grid miner.fault=\\\"throw\\\",none --jobs 2 --out " + out);
  INFO(r.out);
  CHECK(r.status == 1);
  const std::string bad = out + "/tiny-miner.fault=throw-seed0", good = out + "/tiny-miner.fault=none-seed0";
  CHECK_THAT(r.out, Catch::Contains("[1/2] FAILED " + bad + "  exit code 1 after "));
  CHECK_THAT(r.out, Catch::Contains("mine() fails on purpose"));
  CHECK_THAT(r.out, Catch::Contains("[2/2] ok     " + good));
  CHECK_THAT(r.out, Catch::Contains("  failed      " + bad + "\n  ok          " + good + "\n1 ok, 1 failed;"));
  CHECK(fs::exists(good + "/summary.json"));
  // The failed run's folder says how it ended.
  CHECK_THAT(test::read_file(bad + "/summary.json"), Catch::Contains("mine() fails on purpose"));
  CHECK_THAT(test::read_file(bad + "/summary.json"), Catch::Contains("\"failed\": "));
  // Two at a time on this machine's cores: each run was given its share.
  CHECK_THAT(test::read_file(good + "/run.json"), Catch::Contains("\"runtime.compute_threads="));
  const Json sweep = json::parse_file(out + "/sweep.json");
  const Json* runs = json::find(sweep, "runs");
  REQUIRE(runs);
  REQUIRE(runs->size() == 2);
  CHECK(json::string_at((*runs)[0], "status") == "failed");
  CHECK(json::number_at((*runs)[0], "exit_code") == 1);
  CHECK(json::string_at((*runs)[1], "status") == "ok");
}
