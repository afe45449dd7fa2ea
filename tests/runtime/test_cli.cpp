// The contra command line, run as a user would.
#include "test_support.hpp"

#include <contra/cpu.hpp>

#include <catch2/catch.hpp>

#include <cstdio>
#include <string>
#include <sys/wait.h>

namespace {
struct Result {
  int status;
  std::string out;
};
// Runs the CLI with stdout and stderr together.
Result run_cli(const std::string& args) {
  std::string cmd = std::string(CONTRA_BINARY_DIR) + "/bin/contra " + args + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  std::string out;
  char buf[4096];
  std::size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  int st = pclose(p);
  return {WIFEXITED(st) ? WEXITSTATUS(st) : -1, out};
}
std::string fixture(const std::string& name) {
  return std::string(CONTRA_FIXTURE_DIR) + "/pipelines/invalid/" + name;
}
}  // namespace

TEST_CASE("cli: validate prints diagnostics and exits 1 on a broken pipeline", "[runtime][cli]") {
  Result r = run_cli("validate " + fixture("out_of_range.toml"));
  CHECK(r.status == 1);
  CHECK(r.out == fixture("out_of_range.toml") +
                     ":9:1: error: loss.temperature: expected a value in [0.001, 10], found 20.0\n");
}

TEST_CASE("cli: validate accepts the quickstart pipeline", "[runtime][cli]") {
  Result r = run_cli("validate " + std::string(CONTRA_SOURCE_DIR) + "/pipelines/quickstart.toml");
  CHECK(r.status == 0);
  CHECK_THAT(r.out, Catch::Contains("quickstart.toml: valid"));
}

TEST_CASE("cli: validate says which precision a run would use, and refuses bf16 where the CPU has none",
          "[runtime][cli]") {
  const std::string file = std::string(CONTRA_SOURCE_DIR) + "/pipelines/fashion_mnist_30min.toml";
  Result r = run_cli("validate " + file);
  CHECK(r.status == 0);
  const bool native = contra::cpu_capabilities().bf16_native;
  CHECK_THAT(r.out, Catch::Contains(std::string("precision ") + (native ? "bf16" : "f32") + " from auto)"));
  Result f32 = run_cli("validate " + file + " --set train.precision=f32");
  CHECK_THAT(f32.out, Catch::Contains("precision f32)"));
  Result bf16 = run_cli("validate " + file + " --set train.precision=bf16");
  if (contra::cpu_capabilities().bf16) {
    CHECK(bf16.status == 0);
  } else {
    CHECK(bf16.status == 1);
    CHECK_THAT(bf16.out, Catch::Contains("--set train.precision=bf16: error: train.precision: \"bf16\" cannot run on "
                                         "this CPU: " + contra::bf16_unavailable_reason()));
  }
}

TEST_CASE("cli: plugins lists every kind and --describe renders the schema", "[runtime][cli]") {
  Result list = run_cli("plugins");
  CHECK(list.status == 0);
  for (const char* k : {"source:", "augmentation:", "sampler:", "encoder:", "miner:", "loss:", "optimizer:"})
    CHECK_THAT(list.out, Catch::Contains(k));
  Result d = run_cli("plugins --describe info_nce");
  CHECK(d.status == 0);
  CHECK_THAT(d.out, Catch::Contains("temperature (number, default 0.5, in [0.001, 10])"));
  CHECK_THAT(d.out, Catch::Contains("[loss]\n  plugin = \"info_nce\"\n  temperature = 0.5\n"));
  Result typo = run_cli("plugins --describe info_nse");
  CHECK(typo.status == 1);
  CHECK(typo.out == "contra plugins: no plugin named 'info_nse'; did you mean 'info_nce'?\n");
}

TEST_CASE("cli: usage errors exit 2 and say what is wrong", "[runtime][cli]") {
  CHECK(run_cli("").status == 2);
  Result r = run_cli("run");
  CHECK(r.status == 2);
  CHECK(r.out == "contra run: no pipeline file given (see contra run --help)\n");
  Result u = run_cli("frobnicate");
  CHECK(u.status == 2);
  CHECK_THAT(u.out, Catch::StartsWith("contra: unknown command 'frobnicate'"));
  CHECK(run_cli("run --help").status == 0);
}

TEST_CASE("cli: run with a bad --set fails before training", "[runtime][cli]") {
  Result r = run_cli("run " + std::string(CONTRA_SOURCE_DIR) + "/pipelines/quickstart.toml --set loss.temperature=0");
  CHECK(r.status == 1);
  CHECK(r.out == "--set loss.temperature=0: error: loss.temperature: expected a value in [0.001, 10], found 0\n");
}
