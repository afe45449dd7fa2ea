// The contra command line, run as a user would.
#include "test_support.hpp"
#include "cli_runner.hpp"

#include <contra/cpu.hpp>

#include <catch2/catch.hpp>

#include <csignal>
#include <filesystem>
#include <cstdio>
#include <string>
#include <sys/wait.h>
#include <unistd.h>

using contra::test::run_cli;

namespace {
std::string fixture(const std::string& name) {
  return std::string(CONTRA_FIXTURE_DIR) + "/pipelines/invalid/" + name;
}
}  // namespace

TEST_CASE("cli: validate prints diagnostics and exits 1 on a broken pipeline", "[runtime][cli]") {
  contra::test::CommandResult r = run_cli("validate " + fixture("out_of_range.toml"));
  CHECK(r.status == 1);
  CHECK(r.out == fixture("out_of_range.toml") +
                     ":9:1: error: loss.temperature: expected a value in [0.001, 10], found 20.0\n");
}

TEST_CASE("cli: validate accepts the quickstart pipeline", "[runtime][cli]") {
  contra::test::CommandResult r = run_cli("validate " + std::string(CONTRA_SOURCE_DIR) + "/pipelines/quickstart.toml");
  CHECK(r.status == 0);
  CHECK_THAT(r.out, Catch::Contains("quickstart.toml: valid"));
}

TEST_CASE("cli: validate opens the data: a missing file is said before any run", "[runtime][cli]") {
  contra::test::CommandResult r = run_cli("validate " + std::string(CONTRA_SOURCE_DIR) +
                     "/pipelines/quickstart.toml --set 'source.images=\"/nonexistent/x.gz\"'");
  CHECK(r.status == 1);
  CHECK_THAT(r.out, Catch::StartsWith("source 'idx' ([source] at "));
  CHECK_THAT(r.out, Catch::Contains("/nonexistent/x.gz"));
}

TEST_CASE("cli: validate refuses cifar's label = coarse with variant = cifar10 before opening any file",
          "[runtime][cli]") {
  // No data folder: the parameters are refused first, at their key.
  contra::test::TempDir dir("cli");
  const std::string file = dir.file("p.toml");
  contra::test::write_file(file, "[source]\nplugin = \"cifar\"\nfolder = \"no-such-folder\"\nvariant = \"cifar10\"\n"
                                 "label = \"coarse\"\n[encoder]\nplugin = \"mlp\"\n[loss]\nplugin = \"info_nce\"\n"
                                 "[optimizer]\nplugin = \"sgd\"\n");
  const std::string library = std::string(CONTRA_BINARY_DIR) + "/plugins/libcontra_source_cifar.so";
  contra::test::CommandResult r = run_cli("validate " + file);
  CHECK(r.status == 1);
  CHECK(r.out == "source 'cifar' ([source] at " + file + ":1:1, library " + library + "): source plugin 'cifar' (" +
                     library + ") failed to start: " + file + ":5:1: source.label = \"coarse\" requires "
                     "source.variant = \"cifar100\"; CIFAR-10 has only one label per image\n");
  // The same from --set, said at the --set.
  contra::test::write_file(file, "[source]\nplugin = \"cifar\"\nfolder = \"no-such-folder\"\n[encoder]\n"
                                 "plugin = \"mlp\"\n[loss]\nplugin = \"info_nce\"\n[optimizer]\nplugin = \"sgd\"\n");
  contra::test::CommandResult set = run_cli("validate " + file + " --set source.label=coarse");
  CHECK(set.status == 1);
  CHECK_THAT(set.out, Catch::EndsWith("failed to start: --set source.label=coarse: source.label = \"coarse\" "
                                      "requires source.variant = \"cifar100\"; CIFAR-10 has only one label per "
                                      "image\n"));
}

TEST_CASE("cli: validate says which precision a run would use, and refuses bf16 where the CPU has none",
          "[runtime][cli]") {
  const std::string file = std::string(CONTRA_SOURCE_DIR) + "/pipelines/fashion_mnist_30min.toml";
  contra::test::CommandResult r = run_cli("validate " + file);
  CHECK(r.status == 0);
  const bool native = contra::cpu_capabilities().bf16_native;
  CHECK_THAT(r.out, Catch::Contains(std::string("precision ") + (native ? "bf16" : "f32") + " from auto)"));
  contra::test::CommandResult f32 = run_cli("validate " + file + " --set train.precision=f32");
  CHECK_THAT(f32.out, Catch::Contains("precision f32)"));
  contra::test::CommandResult bf16 = run_cli("validate " + file + " --set train.precision=bf16");
  if (contra::cpu_capabilities().bf16) {
    CHECK(bf16.status == 0);
  } else {
    CHECK(bf16.status == 1);
    CHECK_THAT(bf16.out, Catch::Contains("--set train.precision=bf16: error: train.precision: \"bf16\" cannot run on "
                                         "this CPU: " + contra::bf16_unavailable_reason()));
  }
}

TEST_CASE("cli: plugins lists every kind and --describe renders the schema", "[runtime][cli]") {
  contra::test::CommandResult list = run_cli("plugins");
  CHECK(list.status == 0);
  for (const char* k : {"source:", "augmentation:", "sampler:", "encoder:", "miner:", "loss:", "optimizer:"})
    CHECK_THAT(list.out, Catch::Contains(k));
  contra::test::CommandResult d = run_cli("plugins --describe info_nce");
  CHECK(d.status == 0);
  CHECK_THAT(d.out, Catch::Contains("temperature (number, default 0.5, in [0.001, 10])"));
  CHECK_THAT(d.out, Catch::Contains("[loss]\n  plugin = \"info_nce\"\n  temperature = 0.5\n"));
  contra::test::CommandResult typo = run_cli("plugins --describe info_nse");
  CHECK(typo.status == 1);
  CHECK(typo.out == "contra plugins: no plugin named 'info_nse'; did you mean 'info_nce'?\n");
}

TEST_CASE("cli: usage errors exit 2 and say what is wrong", "[runtime][cli]") {
  CHECK(run_cli("").status == 2);
  contra::test::CommandResult r = run_cli("run");
  CHECK(r.status == 2);
  CHECK(r.out == "contra run: no pipeline file given (see contra run --help)\n");
  contra::test::CommandResult u = run_cli("frobnicate");
  CHECK(u.status == 2);
  CHECK_THAT(u.out, Catch::StartsWith("contra: unknown command 'frobnicate'"));
  CHECK(run_cli("run --help").status == 0);
}

TEST_CASE("cli: run with a bad --set fails before training", "[runtime][cli]") {
  contra::test::CommandResult r = run_cli("run " + std::string(CONTRA_SOURCE_DIR) + "/pipelines/quickstart.toml --set loss.temperature=0");
  CHECK(r.status == 1);
  CHECK(r.out == "--set loss.temperature=0: error: loss.temperature: expected a value in [0.001, 10], found 0\n");
}

TEST_CASE("cli: an unknown --kind is an error with the kinds", "[runtime][cli]") {
  contra::test::CommandResult r = run_cli("plugins --kind los");
  CHECK(r.status == 2);
  CHECK(r.out == "contra plugins: unknown kind 'los' (did you mean 'loss'?); kinds are source, augmentation, "
                 "sampler, encoder, miner, loss, optimizer, memory, evaluator, tokenizer, text_augmentation\n");
  contra::test::CommandResult ok = run_cli("plugins --kind loss");
  CHECK(ok.status == 0);
  CHECK_THAT(ok.out, Catch::StartsWith("loss:\n"));
  CHECK_THAT(ok.out, !Catch::Contains("encoder:"));
}

TEST_CASE("cli: a misspelt --set section or key gets a suggestion, at the --set", "[runtime][cli]") {
  const std::string file = std::string(CONTRA_SOURCE_DIR) + "/pipelines/quickstart.toml";
  contra::test::CommandResult section = run_cli("validate " + file + " --set trian.epochs=1");
  CHECK(section.status == 1);
  CHECK(section.out == "--set trian.epochs=1: error: unknown section [trian]; did you mean [train]?\n");
  contra::test::CommandResult key = run_cli("validate " + file + " --set train.epcohs=1");
  CHECK(key.status == 1);
  CHECK(key.out == "--set train.epcohs=1: error: train.epcohs: unknown key 'epcohs' in section [train]; did you "
                   "mean 'epochs'?\n");
}

TEST_CASE("cli: --describe prints a plugin once, with each build's device and library", "[runtime][cli]") {
  contra::test::CommandResult d = run_cli("plugins --describe info_nce");
  CHECK(d.status == 0);
  CHECK_THAT(d.out, Catch::StartsWith("info_nce (loss plugin)\n  cpu build: "));
  // What the command says itself, before the README (which names the cuda build too).
  const std::string said = d.out.substr(0, d.out.find("\n--- "));
  auto count = [&](const std::string& what) {
    std::size_t n = 0;
    for (std::size_t at = said.find(what); at != std::string::npos; at = said.find(what, at + 1)) ++n;
    return n;
  };
  CHECK(count("parameters:") == 1);
  CHECK(count("example:") == 1);
  CHECK(count("cuda build: ") == (said.find("libcontra_loss_info_nce_cuda.so") != std::string::npos ? 1u : 0u));
  // Then its README: the conventions the schema cannot say.
  CHECK_THAT(d.out, Catch::Contains("/plugins/loss/info_nce/README.md ---\n# info_nce (loss)\n"));
  CHECK(d.out.find("# info_nce (loss)") > d.out.find("example:"));
}

TEST_CASE("cli: validate refuses an [eval] whose split has no labels", "[runtime][cli]") {
  const std::string file = std::string(CONTRA_SOURCE_DIR) + "/pipelines/simclr_fashion_mnist.toml";
  contra::test::CommandResult r = run_cli("validate " + file + " --set 'eval.test.labels=\"\"'");
  CHECK(r.status == 1);
  CHECK_THAT(r.out, Catch::Contains("source 'idx' ([eval.test] at " + file + ":"));
  CHECK_THAT(r.out, Catch::Contains("evaluation needs labels, and this source has none (set its labels, or leave "
                                    "out [eval])"));
  contra::test::CommandResult ok = run_cli("validate " + file);
  CHECK(ok.status == 0);
}

TEST_CASE("cli: a run that fails before recording anything leaves no run folder behind", "[runtime][cli]") {
  contra::test::TempDir dir("cli-no-folder");
  const std::string file = std::string(CONTRA_SOURCE_DIR) + "/pipelines/simclr_fashion_mnist.toml";
  contra::test::CommandResult r =
      run_cli("run " + file + " --set 'eval.test.labels=\"\"' --set 'record.dir=\"" + dir.file("runs") + "\"'");
  CHECK(r.status == 1);
  CHECK_THAT(r.out, Catch::Contains("evaluation needs labels"));
  CHECK(std::filesystem::is_empty(dir.file("runs")));
}

namespace {
// Runs the quickstart into `run_dir`, sends `sig` once step 3 is reported,
// and returns the exit status and what it printed.
std::pair<int, std::string> run_and_signal(const std::string& run_dir, int sig) {
  int out[2];
  REQUIRE(pipe(out) == 0);
  const std::string contra = std::string(CONTRA_BINARY_DIR) + "/bin/contra";
  const std::string pipeline = std::string(CONTRA_SOURCE_DIR) + "/pipelines/quickstart.toml";
  pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    dup2(out[1], STDOUT_FILENO);
    close(out[0]);
    execl(contra.c_str(), contra.c_str(), "run", pipeline.c_str(), "--set", "train.log_every=1", "--run-dir",
          run_dir.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  close(out[1]);
  std::string text;
  char buf[4096];
  ssize_t n;
  while (text.find("step 3/") == std::string::npos && (n = read(out[0], buf, sizeof buf)) > 0) text.append(buf, n);
  kill(pid, sig);
  while ((n = read(out[0], buf, sizeof buf)) > 0) text.append(buf, n);
  close(out[0]);
  int status = 0;
  REQUIRE(waitpid(pid, &status, 0) == pid);
  INFO(text);
  REQUIRE(WIFEXITED(status));
  return {WEXITSTATUS(status), text};
}
}  // namespace

TEST_CASE("cli: SIGTERM stops a run like Ctrl-C, after a checkpoint, and exits 143", "[runtime][cli]") {
  contra::test::TempDir dir("cli-term");
  const auto [status, text] = run_and_signal(dir.file("run"), SIGTERM);
  INFO(text);
  CHECK(status == 143);
  CHECK_THAT(text, Catch::Contains("interrupted: stopped after step "));
  CHECK(!contra::test::read_file(dir.file("run") + "/checkpoints/latest").empty());
}

TEST_CASE("cli: Ctrl-C stops a run after a checkpoint and exits 130", "[runtime][cli]") {
  contra::test::TempDir dir("cli-interrupt");
  int out[2];
  REQUIRE(pipe(out) == 0);
  const std::string contra = std::string(CONTRA_BINARY_DIR) + "/bin/contra";
  const std::string pipeline = std::string(CONTRA_SOURCE_DIR) + "/pipelines/quickstart.toml";
  const std::string run_dir = dir.file("run");
  pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    dup2(out[1], STDOUT_FILENO);
    close(out[0]);
    execl(contra.c_str(), contra.c_str(), "run", pipeline.c_str(), "--set", "train.log_every=1", "--run-dir",
          run_dir.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  close(out[1]);
  // Interrupt once training has reported a few steps.
  std::string text;
  char buf[4096];
  ssize_t n;
  while (text.find("step 3/") == std::string::npos && (n = read(out[0], buf, sizeof buf)) > 0) text.append(buf, n);
  kill(pid, SIGINT);
  while ((n = read(out[0], buf, sizeof buf)) > 0) text.append(buf, n);
  close(out[0]);
  int status = 0;
  REQUIRE(waitpid(pid, &status, 0) == pid);
  INFO(text);
  REQUIRE(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 130);
  CHECK_THAT(text, Catch::Contains("interrupted: stopped after step "));
  CHECK(!contra::test::read_file(run_dir + "/checkpoints/latest").empty());
}

// Four steps of an mlp on synthetic 8x8 images, with a kNN evaluation at the end.
const char* small_pipeline_with_eval = R"(
[runtime]
compute_threads = 1
[train]
max_steps = 4
log_every = 1
[source]
plugin = "synthetic"
size = 64
height = 8
width = 8
[sampler]
plugin = "random"
batch_size = 16
[encoder]
plugin = "mlp"
hidden = [16]
output = 8
[loss]
plugin = "info_nce"
[optimizer]
plugin = "sgd"
[eval]
batch_size = 32
[eval.test]
plugin = "synthetic"
size = 32
height = 8
width = 8
seed = 3
[[eval.evaluator]]
plugin = "knn"
k = [3]
temperature = [0.1]
)";

TEST_CASE("cli: progress says the percentage, elapsed time and ETA, and when it evaluates", "[runtime][cli]") {
  contra::test::TempDir dir("cli-progress");
  const std::string file = dir.file("p.toml");
  contra::test::write_file(file, small_pipeline_with_eval);
  contra::test::CommandResult r = run_cli("run " + file + " --no-record");
  INFO(r.out);
  CHECK(r.status == 0);
  CHECK_THAT(r.out, Catch::Contains("step 1/4 (25.0%)  epoch 0  loss "));
  CHECK_THAT(r.out, Catch::Contains("step 4/4 (100.0%)  epoch "));
  CHECK_THAT(r.out, Catch::Contains("  elapsed 0:"));
  CHECK_THAT(r.out, Catch::Contains("  ETA 0:00\n"));
  // The train stage evaluates while the sink may still print earlier steps.
  CHECK_THAT(r.out, Catch::Contains("evaluating after step 4 ...\n"));
  CHECK(r.out.find("evaluating after step 4") < r.out.find("eval after step 4:"));
  CHECK_THAT(r.out, Catch::Contains("\neval after step 4: knn.top1_k3_t0.1 "));
  CHECK_THAT(r.out, Catch::Contains("\nevaluation "));
}

namespace {
// The float32 rows of a .npy file written by contra (its header, then data).
std::string npy_data(const std::string& file, std::string* header = nullptr) {
  std::string bytes = contra::test::read_file(file);
  REQUIRE(bytes.size() >= 10);
  const std::size_t len = static_cast<unsigned char>(bytes[8]) | static_cast<unsigned char>(bytes[9]) << 8;
  if (header) *header = bytes.substr(10, len);
  return bytes.substr(10 + len);
}
}  // namespace

TEST_CASE("cli: eval takes a run folder's own pipeline, records its figures, and saves embeddings when asked",
          "[runtime][cli]") {
  contra::test::TempDir dir("cli-eval");
  contra::test::write_file(dir.file("p.toml"), small_pipeline_with_eval);
  const std::string run = dir.file("run");
  REQUIRE(run_cli("run " + dir.file("p.toml") + " --run-dir " + run).status == 0);
  contra::test::CommandResult r = run_cli("eval " + run);
  INFO(r.out);
  CHECK(r.status == 0);
  CHECK_THAT(r.out, Catch::StartsWith("knn.top1_k3_t0.1 "));
  CHECK_THAT(r.out, Catch::Contains("recorded in " + run + "/evaluations.jsonl\n"));
  CHECK_THAT(contra::test::read_file(run + "/evaluations.jsonl"),
             Catch::StartsWith("{\"checkpoint\": \"" + run + "/checkpoints/step-00000004.safetensors\", \"step\": 4, "
                               "\"pipeline\": \"" + run + "/pipeline.toml\", \"overrides\": [], \"figures\": "
                               "{\"knn.top1_k3_t0.1\": "));
  contra::test::CommandResult saved = run_cli("eval " + run + "/checkpoints/step-00000004.safetensors --set eval.save_embeddings=true");
  CHECK(saved.status == 0);
  std::string header;
  npy_data(run + "/embeddings/eval-step-00000004.npy", &header);
  CHECK_THAT(header, Catch::Contains("'descr': '<f4', 'fortran_order': False, 'shape': (32,8), "));
  CHECK(std::filesystem::exists(run + "/embeddings/eval-step-00000004-labels.npy"));
  // Outside a run folder the pipeline must be named.
  std::filesystem::copy_file(run + "/checkpoints/step-00000004.safetensors", dir.file("alone.safetensors"));
  contra::test::CommandResult alone = run_cli("eval " + dir.file("alone.safetensors"));
  CHECK(alone.status == 2);
  CHECK(alone.out == "contra eval: " + dir.file("alone.safetensors") +
                         " is not in a run folder (RUN/checkpoints/); give the pipeline it was trained with: "
                         "--pipeline FILE\n");
  CHECK(run_cli("eval " + dir.file("alone.safetensors") + " --pipeline " + dir.file("p.toml")).status == 0);
}

TEST_CASE("cli: embed writes a source's embeddings as .npy, row i = sample i", "[runtime][cli]") {
  contra::test::TempDir dir("cli-embed");
  contra::test::write_file(dir.file("p.toml"), small_pipeline_with_eval);
  const std::string run = dir.file("run");
  REQUIRE(run_cli("run " + dir.file("p.toml") + " --run-dir " + run).status == 0);
  contra::test::CommandResult r = run_cli("embed " + run + " --set source.size=10");
  INFO(r.out);
  CHECK(r.status == 0);
  const std::string out = run + "/embeddings/embed-step-00000004.npy";
  CHECK_THAT(r.out, Catch::StartsWith(out + ": 10 x 8 float32 (source 'synthetic'"));
  std::string header;
  const std::string ten = npy_data(out, &header);
  CHECK_THAT(header, Catch::Contains("'shape': (10,8), "));
  CHECK(ten.size() == 10 * 8 * 4);
  // More samples, other batches: the first ten rows stay the same.
  REQUIRE(run_cli("embed " + run + " --set source.size=70 --out " + dir.file("more.npy")).status == 0);
  CHECK(npy_data(dir.file("more.npy")).substr(0, ten.size()) == ten);
  CHECK(std::filesystem::exists(dir.file("more-labels.npy")));
  // --images sets the source's images: a source without that parameter says so.
  contra::test::CommandResult images = run_cli("embed " + run + " --images " + dir.file("x.gz"));
  CHECK(images.status == 2);
  CHECK(images.out == "contra embed: --images sets the source's images and labels, and the pipeline's source "
                      "'synthetic' has no such parameters; give its data with --set source.KEY=VALUE (see contra "
                      "plugins --describe synthetic)\n");
}

TEST_CASE("cli: the margin tutorial's Fashion-MNIST pipeline runs", "[runtime][cli]") {
  contra::test::CommandResult r = run_cli("run " + std::string(CONTRA_SOURCE_DIR) +
                     "/pipelines/tutorial_margin_fashion_mnist.toml --no-record --set train.max_steps=2 "
                     "--set data.subset=512 --set eval.at_end=false --set encoder.width=8");
  INFO(r.out);
  CHECK(r.status == 0);
  CHECK_THAT(r.out, Catch::Contains("miner all_pairs, loss contrastive_margin, optimizer adam"));
  CHECK_THAT(r.out, Catch::Contains("step 2/2 (100.0%)"));
}
