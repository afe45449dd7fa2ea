// Data-parallel ranks against one process, run by mpirun with 2 and 3 ranks
// (ctest label `mpi`). Every rank runs every case in the same order: the
// distributed run, and the same pipeline as one process for comparison.
// Rank 0 alone records runs, so it alone compares checkpoints.

#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include "assembly/load_pipeline.hpp"
#include "distributed/comm_library.hpp"
#include "graph/pipeline_run.hpp"
#include "graph/run_record.hpp"
#include "loader/registry.hpp"
#include "train/safetensors.hpp"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

using namespace contra;
using namespace contra::runtime;
namespace fs = std::filesystem;

namespace {

Communicator* world = nullptr;

// 240 synthetic 16x16 images, batches of 24 (split 12/12 or 8/8/8), an MLP.
const char* base_pipeline = R"(
[pipeline]
seed = 5

[runtime]
prefetch = 2
compute_threads = 1
data_threads = 1

[train]
max_steps = 12

[source]
plugin = "synthetic"
size = 240
height = 16
width = 16

[sampler]
plugin = "random"
batch_size = 24

[[augment.chain]]
plugin = "random_resized_crop"
size = 16
scale = [0.5, 1.0]

[[augment.chain]]
plugin = "horizontal_flip"

[[augment.chain]]
plugin = "normalize"
mean = [0.5]
std = [0.25]

[encoder]
plugin = "mlp"
hidden = [32]
output = 16

[loss]
plugin = "info_nce"
temperature = 0.5

[optimizer]
plugin = "sgd"
lr = 0.1
momentum = 0.9
)";

// `text` with `old` (which it holds) replaced by `now`.
std::string replaced(std::string text, const std::string& old, const std::string& now) {
  const std::size_t at = text.find(old);
  REQUIRE(at != std::string::npos);
  return text.replace(at, old.size(), now);
}

// A small seed_resnet (batch norm in every block) instead of the MLP, for 6 steps.
std::string with_resnet(const std::string& text) {
  return replaced(replaced(text, "plugin = \"mlp\"\nhidden = [32]", "plugin = \"seed_resnet\"\nwidth = 8"),
                  "max_steps = 12", "max_steps = 6");
}

fs::path runs_folder() {
  return fs::path(CONTRA_BINARY_DIR) / "tests" / "distributed_runs" / ("ranks-" + std::to_string(world->size()));
}

struct Outcome {
  RunSummary summary;
  fs::path run_dir;  // rank 0's record ("" elsewhere, or when not recorded)
};

// Runs the pipeline with `overrides` on every rank (`ranks`: as data-parallel
// ranks, else as one process each); rank 0 records it under `name`.
Outcome run(const std::vector<std::string>& overrides, bool ranks, const std::string& name, RunOptions options = {},
            const std::string& text = base_pipeline) {
  const fs::path dir = runs_folder() / name;
  const fs::path file = runs_folder() / ("pipeline-rank" + std::to_string(world->rank()) + "-" + name + ".toml");
  world->barrier();
  if (world->rank() == 0 && !options.resume_latest) {
    fs::remove_all(dir);
    fs::create_directories(runs_folder());
  }
  world->barrier();
  { std::ofstream(file) << text; }
  PluginRegistry reg;
  const PipelineSpec spec = load_pipeline(file.string(), overrides, reg);
  options.communicator = ranks ? world : nullptr;
  if (world->rank() == 0) options.run_dir = dir.string();
  else if (ranks && options.resume_latest) options.run_dir = dir.string();
  Outcome out;
  out.summary = run_pipeline(spec, reg, options);
  if (world->rank() == 0) out.run_dir = dir;
  return out;
}

double relative(double a, double b) { return std::abs(a - b) / std::max(1.0, std::abs(b)); }

void require_same_losses(const std::vector<double>& got, const std::vector<double>& want, double tol) {
  REQUIRE(got.size() == want.size());
  for (std::size_t i = 0; i < got.size(); ++i) {
    INFO("step " << i << ": " << got[i] << " against " << want[i]);
    REQUIRE(relative(got[i], want[i]) <= tol);
  }
}

double max_loss_difference(const std::vector<double>& a, const std::vector<double>& b) {
  double m = 0;
  for (std::size_t i = 0; i < std::min(a.size(), b.size()); ++i) m = std::max(m, relative(a[i], b[i]));
  return m;
}

// Rank 0: the encoder's and head's parameters in the two runs' last
// checkpoints agree within `tol` (absolute).
void require_same_parameters(const Outcome& a, const Outcome& b, double tol) {
  if (world->rank() != 0) return;
  const SafetensorsFile x = read_safetensors(RunRecord::latest_checkpoint(a.run_dir));
  const SafetensorsFile y = read_safetensors(RunRecord::latest_checkpoint(b.run_dir));
  std::size_t compared = 0;
  for (const auto& [name, t] : x.tensors) {
    const bool model = name.rfind("encoder.", 0) == 0 || name.rfind("head.", 0) == 0 ||
                       name.rfind("tower.", 0) == 0 || name.rfind("loss.", 0) == 0;
    if (!model) continue;
    const auto it = y.tensors.find(name);
    REQUIRE(it != y.tensors.end());
    REQUIRE(it->second.numel() == t.numel());
    double diff = 0;
    for (std::int64_t i = 0; i < t.numel(); ++i)
      diff = std::max(diff, static_cast<double>(std::abs(t.data<float>()[i] - it->second.data<float>()[i])));
    INFO(name << ": max difference " << diff);
    REQUIRE(diff <= tol);
    ++compared;
  }
  REQUIRE(compared > 0);
}

void require_ranks_agree(const RunSummary& s) {
  REQUIRE(s.ranks == world->size());
  REQUIRE(s.rank_figures.size() == static_cast<std::size_t>(world->size()));
  REQUIRE(s.ranks_agree);
}

}  // namespace

TEST_CASE("ranks: an MLP with info_nce trains as one process with the global batch", "[mpi]") {
  const Outcome one = run({}, false, "mlp-one");
  const Outcome many = run({}, true, "mlp-ranks");
  require_ranks_agree(many.summary);
  require_same_losses(many.summary.losses, one.summary.losses, 1e-5);
  require_same_parameters(many, one, 1e-5);
  // For a given number of ranks, the same seed gives the same run, bit for bit.
  const Outcome again = run({}, true, "mlp-ranks-again");
  require_same_losses(again.summary.losses, many.summary.losses, 0.0);
  require_same_parameters(again, many, 0.0);
  // The records say how the run ran.
  if (world->rank() == 0) {
    std::ifstream f(many.run_dir / "run.json");
    const std::string run_json((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    CHECK(run_json.find("\"ranks\": " + std::to_string(world->size())) != std::string::npos);
    CHECK(run_json.find("\"backend\": \"mpi\"") != std::string::npos);
  }
}

TEST_CASE("ranks: seed_resnet with synchronised batch norm trains as one process; per-rank batch norm does not",
          "[mpi]") {
  const std::string text = with_resnet(base_pipeline);
  const Outcome one = run({}, false, "bn-one", {}, text);
  const Outcome synced = run({"distributed.sync_batch_norm=true"}, true, "bn-sync", {}, text);
  require_ranks_agree(synced.summary);
  require_same_losses(synced.summary.losses, one.summary.losses, 1e-4);
  require_same_parameters(synced, one, 1e-4);
  // Each rank normalising its own slice computes another function.
  const Outcome per_rank = run({}, true, "bn-local", {}, text);
  require_ranks_agree(per_rank.summary);
  CHECK(max_loss_difference(per_rank.summary.losses, one.summary.losses) > 1e-3);
}

TEST_CASE("ranks: without gather each rank contrasts its own slice, with fewer negatives", "[mpi]") {
  const Outcome one = run({}, false, "nogather-one");
  const Outcome local = run({"distributed.gather=false"}, true, "nogather-ranks");
  require_ranks_agree(local.summary);
  // info_nce's loss grows with log(negatives): a slice has fewer.
  REQUIRE(local.summary.losses[0] < one.summary.losses[0] - 0.1);
  // A queue still takes the global batch's keys: it stays the same on every rank.
  const std::string text = std::string(base_pipeline) + "\n[memory]\nplugin = \"queue\"\nsize = 96\nmomentum = 0.9\n";
  require_ranks_agree(run({"distributed.gather=false"}, true, "nogather-queue", {}, text).summary);
}

TEST_CASE("ranks: supcon with class_balanced batches sees the labels of the global batch", "[mpi]") {
  // 6 classes x 2 samples a batch: a rank's slice holds some classes' pairs only.
  const std::string text = replaced(replaced(base_pipeline, "plugin = \"random\"\nbatch_size = 24",
                                             "plugin = \"class_balanced\"\nclasses_per_batch = 6\nsamples_per_class = 2"),
                                    "plugin = \"info_nce\"", "plugin = \"supcon\"");
  const Outcome one = run({}, false, "supcon-one", {}, text);
  const Outcome many = run({}, true, "supcon-ranks", {}, text);
  require_ranks_agree(many.summary);
  require_same_losses(many.summary.losses, one.summary.losses, 1e-5);
}

TEST_CASE("ranks: hcl and the neighbor_batches sampler train as one process", "[mpi]") {
  const std::vector<std::string> hcl = {"loss.plugin=\"hcl\"", "loss.beta=0.5", "loss.tau_plus=0.1"};
  require_same_losses(run(hcl, true, "hcl-ranks").summary.losses, run(hcl, false, "hcl-one").summary.losses, 1e-5);
  const std::string text = replaced(base_pipeline, "plugin = \"random\"\nbatch_size = 24",
                                    "plugin = \"neighbor_batches\"\nbatch_size = 24\nrefresh = 4\ncluster_size = 4\n"
                                    "warmup_steps = 4");
  const Outcome one = run({}, false, "neighbors-one", {}, text);
  const Outcome many = run({}, true, "neighbors-ranks", {}, text);
  require_ranks_agree(many.summary);
  require_same_losses(many.summary.losses, one.summary.losses, 1e-5);
}

TEST_CASE("ranks: a MoCo queue and momentum encoder stay identical on every rank", "[mpi]") {
  std::string text = base_pipeline;
  text += "\n[memory]\nplugin = \"queue\"\nsize = 96\nmomentum = 0.9\n";
  const Outcome one = run({}, false, "moco-one", {}, text);
  const Outcome many = run({}, true, "moco-ranks", {}, text);
  // The digest covers the queue's keys and the momentum encoder.
  require_ranks_agree(many.summary);
  require_same_losses(many.summary.losses, one.summary.losses, 1e-5);
  require_same_parameters(many, one, 1e-5);
}

TEST_CASE("ranks: multi-crop views of two sizes with synchronised batch norm train as one process", "[mpi]") {
  std::string text = base_pipeline;
  const std::size_t chain = text.find("[[augment.chain]]"), encoder = text.find("[encoder]");
  text.replace(chain, encoder - chain, R"([[augment.view]]
count = 2

[[augment.view.chain]]
plugin = "random_resized_crop"
size = 16
scale = [0.5, 1.0]

[[augment.view]]
count = 2

[[augment.view.chain]]
plugin = "random_resized_crop"
size = 8
scale = [0.2, 0.5]

)");
  text = with_resnet(text);
  const Outcome one = run({}, false, "multicrop-one", {}, text);
  const Outcome many = run({"distributed.sync_batch_norm=true"}, true, "multicrop-ranks", {}, text);
  require_ranks_agree(many.summary);
  require_same_losses(many.summary.losses, one.summary.losses, 1e-4);
}

TEST_CASE("ranks: two towers with clip's learnt temperature train as one process with the global batch", "[mpi]") {
  // Images of bars and their captions (tests/fixtures/plugins/paired.cpp):
  // the caption rows are all-gathered with the image rows, and the
  // temperature's gradient, the same on every rank, is not summed.
  std::string text = replaced(base_pipeline, "plugin = \"synthetic\"\nsize = 240\nheight = 16\nwidth = 16",
                              "plugin = \"paired_bars\"\nsize = 240");
  text = replaced(text, "size = 16\nscale = [0.5, 1.0]", "size = 8\nscale = [0.5, 1.0]");
  text = replaced(text, "[loss]\nplugin = \"info_nce\"\ntemperature = 0.5", "[loss]\nplugin = \"clip\"");
  text = replaced(text, "[pipeline]\n", "[plugins]\npaths = [\"" CONTRA_FIXTURE_PLUGIN_DIR "/paired\"]\n\n[pipeline]\n");
  text += "\n[augment]\nviews = 1\n\n[tower.text]\nfield = \"caption\"\nlength = 6\n\n[tower.text.tokenizer]\n"
          "plugin = \"word_ids\"\n\n[tower.text.encoder]\nplugin = \"token_mean\"\noutput = 16\n";
  const Outcome one = run({}, false, "towers-one", {}, text);
  const Outcome many = run({}, true, "towers-ranks", {}, text);
  require_ranks_agree(many.summary);
  require_same_losses(many.summary.losses, one.summary.losses, 1e-5);
  require_same_parameters(many, one, 1e-5);
  if (world->rank() == 0) {
    // The temperature learnt is the one process's (compared above), and it moved.
    const SafetensorsFile x = read_safetensors(RunRecord::latest_checkpoint(many.run_dir));
    REQUIRE(x.tensors.count("loss.logit_scale") == 1);
    CHECK(std::abs(x.tensors.at("loss.logit_scale").data<float>()[0] - std::log(1.0f / 0.07f)) > 1e-3f);
  }
}

TEST_CASE("ranks: a stop asked of one rank is agreed on, and the resumed run continues exactly", "[mpi]") {
  const std::vector<std::string> o = {"record.checkpoint_every=4"};
  const Outcome whole = run(o, true, "resume-whole");
  RunOptions stopping;
  std::atomic<bool> stop{false};
  stopping.stop = &stop;
  // The last rank alone is asked to stop, after its sixth step.
  const bool asked = world->rank() == world->size() - 1;
  stopping.on_step = [&](const StepReport& r) {
    if (asked && r.step >= 5) stop = true;
  };
  const Outcome first = run(o, true, "resume-parts", stopping);
  REQUIRE(first.summary.steps >= 6);
  REQUIRE(first.summary.steps < 12);
  REQUIRE(first.summary.ranks_agree);
  RunOptions resume;
  resume.resume_latest = true;
  const Outcome rest = run(o, true, "resume-parts", resume);
  REQUIRE(rest.summary.first_step == first.summary.steps);
  std::vector<double> losses = first.summary.losses;
  losses.insert(losses.end(), rest.summary.losses.begin(), rest.summary.losses.end());
  require_ranks_agree(rest.summary);
  require_same_losses(losses, whole.summary.losses, 1e-6);
  require_same_parameters(rest, whole, 1e-6);
}

TEST_CASE("ranks: buckets reduced during the backward pass give what reducing after it gives", "[mpi]") {
  // seed_resnet of width 64 holds more than 1 MiB of gradients: several 1 MiB buckets.
  const std::string text =
      replaced(with_resnet(base_pipeline), "width = 8", "width = 64") + "\n[distributed]\nbucket_mb = 1\n";
  const Outcome after = run({"distributed.overlap=false", "train.max_steps=3"}, true, "overlap-off", {}, text);
  const Outcome during = run({"train.max_steps=3"}, true, "overlap-on", {}, text);
  require_ranks_agree(during.summary);
  // The same sums of the same bytes in the same buckets: equal, not close.
  require_same_losses(during.summary.losses, after.summary.losses, 0.0);
  require_same_parameters(during, after, 0.0);
  // Two or more buckets a step, each started inside the backward pass as
  // soon as its last layer was done, or all of them after it.
  const RankFigures& on = during.summary.rank_figures[0];
  const RankFigures& off = after.summary.rank_figures[0];
  CHECK(on.buckets >= 2 * 3);
  CHECK(on.buckets_overlapped == on.buckets);
  CHECK(off.buckets == on.buckets);
  CHECK(off.buckets_overlapped == 0);
}

int main(int argc, char* argv[]) {
  try {
    world = &open_communicator("mpi", CommunicatorOptions{120});
  } catch (const std::exception& e) {
    std::fprintf(stderr, "SKIPPED: no mpi backend: %s\n", e.what());
    return 0;
  }
  const int failed = Catch::Session().run(argc, argv);
  // One rank failing fails the test on every rank.
  std::int64_t any = failed != 0;
  world->all_reduce(&any, 1, CommType::i64, ReduceOp::max);
  world->finalize();
  return any ? 1 : 0;
}
