#include "commands.hpp"
#include "plugin_docs.hpp"

#include "assembly/load_pipeline.hpp"
#include "config/settings.hpp"
#include "assembly/pipeline_device.hpp"
#include "graph/pipeline_run.hpp"
#include "graph/run_record.hpp"
#include "loader/registry.hpp"
#include "graph/evaluation.hpp"
#include "config/launch.hpp"
#include "graph/data_parallel.hpp"

#include <contra/errors.hpp>

#include <CLI/CLI.hpp>
#include <boost/dll/runtime_symbol_info.hpp>

#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <cmath>
#include <cstdio>
#include <map>
#include <memory>
#include <mutex>
#include <numeric>
#include <sstream>

namespace contra::cli {
namespace {

using runtime::PluginRegistry;

// What the pipeline commands take on their command line.
struct PipelineArgs {
  std::string file;                 // FILE, RUN_DIR or CHECKPOINT
  std::vector<std::string> overrides;  // --set
  std::string run_dir;              // --run-dir
  std::string resume;               // --resume RUN_DIR
  std::string pipeline;             // --pipeline FILE (eval, embed)
  std::string images, labels, out;  // --images, --labels, --out (embed)
  bool no_record = false;           // --no-record
};

// What `contra plugins` takes.
struct PluginsArgs {
  std::string describe, kind, markdown;  // --describe NAME, --kind KIND, --markdown DIR
  std::vector<std::string> paths;        // --path DIR ...
  bool sections = false;                 // --sections
};

// A pipeline command without its FILE (CLI11 cannot require it: run takes
// --resume RUN_DIR instead).
bool has_file(const char* cmd, const PipelineArgs& pa) {
  if (!pa.file.empty() || !pa.resume.empty()) return true;
  std::fprintf(stderr, "contra %s: no pipeline file given (see contra %s --help)\n", cmd, cmd);
  return false;
}

void print_error(const std::exception& e) { std::fprintf(stderr, "%s\n", e.what()); }

// "1:02:03", "4:05": hours only when there are some.
std::string clock_text(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  const auto t = static_cast<long long>(seconds + 0.5);
  char buf[32];
  if (t >= 3600) std::snprintf(buf, sizeof buf, "%lld:%02lld:%02lld", t / 3600, t / 60 % 60, t % 60);
  else std::snprintf(buf, sizeof buf, "%lld:%02lld", t / 60, t % 60);
  return buf;
}

// Progress: one line rewritten in place on a terminal (cut to its width, so
// it never wraps), plain lines every log_every steps otherwise. The sink and
// the train stage (an evaluation starting) report from different threads.
class Progress {
 public:
  Progress(std::int64_t log_every) : tty_(isatty(STDOUT_FILENO) != 0), every_(log_every) {}
  void operator()(const runtime::StepReport& r) {
    std::lock_guard<std::mutex> lock(mutex_);
    const bool last = r.step + 1 == r.total_steps;
    // The ETA from this run's training pace: evaluations are not training.
    const double done = static_cast<double>(r.step + 1 - r.first_step), train_s = r.elapsed_s - r.eval_s;
    const double eta = done > 0 ? train_s / done * static_cast<double>(r.total_steps - r.step - 1) : NAN;
    char line[320];
    std::snprintf(line, sizeof line,
                  "step %lld/%lld (%.1f%%)  epoch %lld  loss %.4f  lr %.4g  %.0f images/s  elapsed %s  ETA %s",
                  static_cast<long long>(r.step + 1), static_cast<long long>(r.total_steps),
                  100.0 * static_cast<double>(r.step + 1) / static_cast<double>(r.total_steps),
                  static_cast<long long>(r.epoch), r.loss, r.lr, r.images_per_s, clock_text(r.elapsed_s).c_str(),
                  clock_text(eta).c_str());
    if (tty_) {
      if (last || r.elapsed_s - last_print_ >= 0.1) {
        rewrite(line);
        if (last) std::printf("\n");
        std::fflush(stdout);
        last_print_ = r.elapsed_s;
      }
    } else if ((r.step + 1) % every_ == 0 || last || r.step == 0) {
      std::printf("%s\n", line);
      std::fflush(stdout);
    }
  }
  // An evaluation can take minutes: say it is running.
  void evaluating(std::int64_t step) {
    std::lock_guard<std::mutex> lock(mutex_);
    const std::string text = "evaluating after step " + std::to_string(step + 1) + " ...";
    if (tty_) rewrite(text);
    else std::printf("%s\n", text.c_str());
    std::fflush(stdout);
  }
  // Ends the rewritten line before other output.
  void newline() {
    std::lock_guard<std::mutex> lock(mutex_);
    if (tty_) std::printf("\n");
  }

 private:
  void rewrite(const std::string& text) {
    winsize ws{};
    const std::size_t width = ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 1 ? ws.ws_col : 80;
    // \r, the line cut to width - 1 columns (ASCII), and erase to the line's end.
    std::printf("\r%s\033[K", text.substr(0, width - 1).c_str());
  }
  bool tty_;
  std::int64_t every_;
  double last_print_ = -1;
  std::mutex mutex_;
};

double mean_of(const std::vector<double>& v, std::size_t from, std::size_t to) {
  if (to <= from) return NAN;
  return std::accumulate(v.begin() + from, v.begin() + to, 0.0) / static_cast<double>(to - from);
}

}  // namespace

namespace {
std::atomic<bool> interrupted{false};
std::atomic<int> stop_signal{0};
// The first SIGINT or SIGTERM (what schedulers send before a kill) stops the
// run after the batches in flight, with a final checkpoint; a second one
// ends the process at once (atomic writes leave no file half written).
extern "C" void on_interrupt(int sig) {
  if (interrupted.exchange(true)) std::_Exit(128 + sig);
  stop_signal = sig;
}
}  // namespace

int run_command(PipelineArgs pa) {
  if (!has_file("run", pa)) return 2;
  if (!pa.resume.empty() && (!pa.file.empty() || !pa.overrides.empty())) {
    std::fprintf(stderr, "contra run: --resume takes the run folder alone (its pipeline.toml is the pipeline)\n");
    return 2;
  }
  // One of several data-parallel ranks: what it says is prefixed with its
  // rank, and a failure stops every rank (the others end their collectives
  // with this rank's message, write their records, and all exit).
  const runtime::LaunchInfo launch = runtime::detect_launch();
  runtime::show_rank_its_gpu(launch);  // before anything starts CUDA
  const std::string rank_prefix =
      launch.size > 1 ? "rank " + std::to_string(launch.rank) + " of " + std::to_string(launch.size) + ": " : "";
  runtime::Communicator* comm = nullptr;
  auto fail = [&](const std::string& message) {
    std::fprintf(stderr, "%s%s\n", rank_prefix.c_str(), message.c_str());
    if (comm) {
      comm->notify_failure(message);
      comm->exit_after_failure(1, 30.0);
    }
    return 1;
  };
  try {
    std::string run_dir = pa.run_dir;
    std::string resume_from;
    if (!pa.resume.empty()) {
      run_dir = pa.resume;
      pa.file = (std::filesystem::path(pa.resume) / "pipeline.toml").string();
      // Said in the header; the run reads `latest` again once it holds the
      // folder (another run may hold it now), and says what is wrong then.
      try {
        resume_from = runtime::RunRecord::latest_checkpoint(pa.resume);
      } catch (const ConfigError&) {
      }
    }
    // A missing GPU is said first, before plugins or data are loaded.
    runtime::require_pipeline_device(pa.file, pa.overrides);
    PluginRegistry registry;
    runtime::PipelineSpec spec = runtime::load_pipeline(pa.file, pa.overrides, registry);
    comm = runtime::open_run_communicator(spec);
    // Rank 0 records the run and reports progress; the others train.
    const bool leader = !comm || comm->rank() == 0;
    // The run's own folder, created now so that no other run takes it; left
    // out again when the run fails before recording anything in it.
    struct CreatedFolder {
      std::filesystem::path dir;
      ~CreatedFolder() {
        std::error_code ec;
        if (!dir.empty() && std::filesystem::is_empty(dir, ec)) std::filesystem::remove(dir, ec);
      }
    } created;
    if (run_dir.empty() && !pa.no_record && leader) {
      created.dir = runtime::RunRecord::default_dir(spec);
      run_dir = created.dir.string();
    }
    const runtime::PipelineSettings settings = runtime::decode_settings(spec);
    const std::string& name = settings.name;
    if (leader) {
      std::printf("contra run %s%s%s\n", pa.file.c_str(), name.empty() ? "" : "  ", name.c_str());
      std::printf("  source %s, encoder %s, miner %s, loss %s, optimizer %s%s\n", spec.source.name.c_str(),
                  spec.encoder.name.c_str(), spec.miner.name.c_str(), spec.loss.name.c_str(),
                  spec.optimizer.name.c_str(), runtime::towers_text(spec).c_str());
      if (comm)
        std::printf("  %d data-parallel rank%s (%s backend), global negatives %s, synchronised batch norm %s\n",
                    comm->size(), comm->size() == 1 ? "" : "s", comm->backend(),
                    settings.distributed.gather ? "on" : "off", settings.distributed.sync_batch_norm ? "on" : "off");
      if (!run_dir.empty())
        std::printf("  %s %s\n", pa.resume.empty() ? "recording in" : "resuming from",
                    resume_from.empty() ? run_dir.c_str() : resume_from.c_str());
      std::fflush(stdout);
    }
    Progress progress(settings.train.log_every);
    runtime::RunOptions options;
    options.run_dir = run_dir;
    options.overrides = pa.overrides;
    options.resume_latest = !pa.resume.empty();
    options.stop = &interrupted;
    options.communicator = comm;
    std::signal(SIGINT, on_interrupt);
    std::signal(SIGTERM, on_interrupt);
    // Per-step figures of the last steps, averaged in the summary.
    std::map<std::string, std::vector<double>> recent;
    options.on_step = [&](const runtime::StepReport& r) {
      if (leader) progress(r);
      if (r.metrics)
        for (const auto& [k, v] : *r.metrics) {
          auto& q = recent[k];
          q.push_back(v);
          if (q.size() > 10) q.erase(q.begin());
        }
    };
    options.on_eval_start = [&](std::int64_t step) { progress.evaluating(step); };
    options.on_eval_error = [&](std::int64_t step, const std::string& message) {
      progress.newline();
      std::fflush(stdout);
      std::fprintf(stderr, "error: the evaluation after step %lld failed; training goes on without evaluating "
                   "(the checkpoint of step %lld was written before it): %s\n",
                   static_cast<long long>(step + 1), static_cast<long long>(step + 1), message.c_str());
    };
    options.on_eval = [&](std::int64_t step, const std::vector<std::pair<std::string, double>>& figures) {
      progress.newline();
      std::printf("eval after step %lld:", static_cast<long long>(step + 1));
      for (const auto& [k, v] : figures) std::printf(" %s %.4f", k.c_str(), v);
      std::printf("\n");
      std::fflush(stdout);
    };
    runtime::RunSummary s = runtime::run_pipeline(spec, registry, options);
    std::signal(SIGINT, SIG_DFL);
    std::signal(SIGTERM, SIG_DFL);
    if (comm) comm->finalize();
    if (!leader) return interrupted ? 128 + stop_signal.load() : 0;
    if (s.already_finished) {
      std::printf("nothing to resume: the run had trained all its %lld steps (%s); its records are unchanged\n",
                  static_cast<long long>(s.first_step), s.checkpoint.c_str());
      return 0;
    }
    if (interrupted) std::printf("\ninterrupted: stopped after step %lld\n", static_cast<long long>(s.first_step + s.steps));
    std::printf("\n%s", runtime::format_stage_table(s).c_str());
    if (!recent.empty()) {
      std::printf("figures of the loss and the miner, mean of the last %zu steps:\n", recent.begin()->second.size());
      for (const auto& [k, q] : recent) std::printf("  %-30s %.4g\n", k.c_str(), mean_of(q, 0, q.size()));
    }
    std::size_t n = s.losses.size(), k = std::min<std::size_t>(10, n / 2);
    if (k > 0)
      std::printf("loss: mean of the first %zu steps %.4f, of the last %zu steps %.4f\n", k,
                  mean_of(s.losses, 0, k), k, mean_of(s.losses, n - k, n));
    if (!run_dir.empty())
      std::printf("run recorded in %s%s%s\n", run_dir.c_str(), s.checkpoint.empty() ? "" : "; last checkpoint ",
                  s.checkpoint.c_str());
    if (!s.ranks_agree) {
      std::fprintf(stderr, "error: the %d ranks ended with different parameters or state (see summary.json's "
                   "distributed.per_rank state_digest); the checkpoint holds rank 0's\n", s.ranks);
      return 1;
    }
    if (!s.eval_error.empty()) {
      std::fprintf(stderr, "error: evaluation failed: %s\n", s.eval_error.c_str());
      return 1;
    }
    // Stopped by a signal: the shell's convention, 128 + its number (130
    // for Ctrl-C, 143 for SIGTERM).
    return interrupted ? 128 + stop_signal.load() : 0;
  } catch (const Error& e) {
    return fail(e.what());
  } catch (const std::exception& e) {
    return fail(std::string("internal error: ") + e.what());
  }
}

namespace {

// What eval and embed share: the checkpoint (a run folder's latest, or a
// file), the run folder it belongs to, and the pipeline (--pipeline, or the
// run folder's own).
struct CheckpointArgs {
  std::string checkpoint, pipeline;
  std::filesystem::path run_dir;
};
bool checkpoint_args(const char* cmd, const PipelineArgs& pa, CheckpointArgs& out) {
  const runtime::RunRecord::CheckpointLocation where = runtime::RunRecord::locate_checkpoint(pa.file);
  out.run_dir = where.run_dir;
  out.checkpoint = where.checkpoint;
  out.pipeline = pa.pipeline;
  if (out.pipeline.empty()) {
    if (out.run_dir.empty()) {
      std::fprintf(stderr,
                   "contra %s: %s is not in a run folder (RUN/checkpoints/); give the pipeline it was trained "
                   "with: --pipeline FILE\n",
                   cmd, pa.file.c_str());
      return false;
    }
    out.pipeline = (out.run_dir / "pipeline.toml").string();
  }
  return true;
}

// The source plugin of `ps`, created (its files opened and checked).
std::shared_ptr<Source> open_source(const PluginRegistry& registry, const runtime::PluginSpec& ps) {
  const runtime::PluginRecord* rec = registry.find(ps.kind, ps.name, Device::cpu);
  if (!rec) throw PluginError(ps.label() + ": plugin not found");
  try {
    return registry.create<Source>(*rec, ps.params);
  } catch (const std::exception& e) {
    throw PluginError(ps.label() + ": " + e.what());
  }
}

std::string step_file(const std::string& prefix, std::int64_t step) {
  char name[64];
  std::snprintf(name, sizeof name, "%s-step-%08lld.npy", prefix.c_str(), static_cast<long long>(step + 1));
  return name;
}

}  // namespace

int eval_command(const PipelineArgs& pa) {
  if (!has_file("eval", pa)) return 2;
  try {
    CheckpointArgs ca;
    if (!checkpoint_args("eval", pa, ca)) return 2;
    PluginRegistry registry;
    runtime::PipelineSpec spec = runtime::load_pipeline(ca.pipeline, pa.overrides, registry);
    if (!spec.has_eval) {
      std::fprintf(stderr, "%s: the pipeline has no [eval] section to run\n", ca.pipeline.c_str());
      return 1;
    }
    // The step is known once the checkpoint is read: name the file after.
    std::string embeddings;
    if (runtime::decode_settings(spec).eval.save_embeddings && !ca.run_dir.empty()) {
      std::filesystem::create_directories(ca.run_dir / "embeddings");
      embeddings = (ca.run_dir / "embeddings" / "eval.npy").string();
    }
    runtime::CheckpointEvaluation result = runtime::evaluate_checkpoint(spec, registry, ca.checkpoint, embeddings);
    for (const auto& [k, v] : result.figures) std::printf("%s %.4f\n", k.c_str(), v);
    if (!embeddings.empty()) {
      const std::filesystem::path named = ca.run_dir / "embeddings" / step_file("eval", result.step);
      std::filesystem::rename(embeddings, named);
      std::string labels = embeddings, named_labels = named.string();
      labels.insert(labels.size() - 4, "-labels");
      named_labels.insert(named_labels.size() - 4, "-labels");
      std::filesystem::rename(labels, named_labels);
      std::printf("embeddings: %s\n", named.string().c_str());
    }
    if (!ca.run_dir.empty()) {
      runtime::append_evaluation(ca.run_dir, ca.checkpoint, ca.pipeline, pa.overrides, result.step, result.figures);
      std::printf("recorded in %s\n", (ca.run_dir / "evaluations.jsonl").string().c_str());
    }
    return 0;
  } catch (const Error& e) {
    print_error(e);
    return 1;
  }
}

int embed_command(const PipelineArgs& pa) {
  if (!has_file("embed", pa)) return 2;
  try {
    CheckpointArgs ca;
    if (!checkpoint_args("embed", pa, ca)) return 2;
    if (pa.out.empty() && ca.run_dir.empty()) {
      std::fprintf(stderr, "contra embed: %s is not in a run folder: name the output with --out FILE.npy\n",
                   pa.file.c_str());
      return 2;
    }
    std::vector<std::string> overrides = pa.overrides;
    // TOML strings: the paths quoted, as --set reads its value as TOML.
    auto quoted = [](const std::string& s) {
      std::string q = "\"";
      for (char c : s) q += (c == '"' || c == '\\') ? std::string("\\") + c : std::string(1, c);
      return q + "\"";
    };
    if (!pa.images.empty()) {
      // --images stands for the source's own `images` (and `labels`): only
      // for a source that has them.
      PluginRegistry probe;
      const runtime::PipelineSpec as_run = runtime::load_pipeline(ca.pipeline, pa.overrides, probe);
      const runtime::PluginRecord* source = probe.find(as_run.source.kind, as_run.source.name, Device::cpu);
      auto takes = [&](const char* name) {
        return source && std::any_of(source->schema.params().begin(), source->schema.params().end(),
                                     [&](const ParamSpec& p) { return p.name == name; });
      };
      if (!takes("images") || !takes("labels")) {
        std::fprintf(stderr,
                     "contra embed: --images sets the source's images and labels, and the pipeline's source '%s' has "
                     "no such parameters; give its data with --set source.KEY=VALUE (see contra plugins --describe %s)\n",
                     as_run.source.name.c_str(), as_run.source.name.c_str());
        return 2;
      }
      overrides.push_back("source.images=" + quoted(std::filesystem::absolute(pa.images).string()));
      overrides.push_back("source.labels=" + quoted(pa.labels.empty() ? "" : std::filesystem::absolute(pa.labels).string()));
    }
    PluginRegistry registry;
    runtime::PipelineSpec spec = runtime::load_pipeline(ca.pipeline, overrides, registry);
    runtime::CheckpointEncoder loaded = runtime::load_checkpoint_encoder(spec, registry, ca.checkpoint);
    std::shared_ptr<Source> source = open_source(registry, spec.source);
    const runtime::FeatureExtractor features(spec, registry);
    FeatureSet set = features.embed(*loaded.encoder, *source, spec.source.label(), false);
    const std::string out = !pa.out.empty() ? pa.out : (ca.run_dir / "embeddings" / step_file("embed", loaded.step)).string();
    if (std::filesystem::path(out).has_parent_path()) std::filesystem::create_directories(std::filesystem::path(out).parent_path());
    runtime::write_features(out, set);
    std::printf("%s: %lld x %lld float32 (%s, checkpoint %s)\n", out.c_str(), static_cast<long long>(set.features.dim(0)),
                static_cast<long long>(set.features.dim(1)), spec.source.label().c_str(), ca.checkpoint.c_str());
    return 0;
  } catch (const Error& e) {
    print_error(e);
    return 1;
  }
}

int validate_command(const PipelineArgs& pa) {
  if (!has_file("validate", pa)) return 2;
  try {
    PluginRegistry registry;
    runtime::PipelineSpec spec = runtime::load_pipeline(pa.file, pa.overrides, registry);
    // What a run does before its first batch: every plugin created, the
    // sources opened (their files read and checked, [eval]'s too), the
    // chains fitted to the images, the trainer built, so that data that
    // cannot be read or an evaluation that cannot run is said now, not when
    // the run starts or after the training it would follow.
    const runtime::MemoryEstimate memory = runtime::check_pipeline(spec, registry);
    const std::string precision = runtime::train_precision_name(spec), setting = runtime::train_precision_setting(spec);
    std::printf("%s: valid (%lld views, source '%s', encoder '%s'%s, loss '%s', precision %s%s)\n", pa.file.c_str(),
                static_cast<long long>(spec.total_views()), spec.source.name.c_str(), spec.encoder.name.c_str(),
                runtime::towers_text(spec).c_str(), spec.loss.name.c_str(), precision.c_str(),
                setting == precision ? "" : (" from " + setting).c_str());
    // What it will allocate, one line (memory_estimate.hpp), against what it may.
    std::printf("%s: memory: %s; this machine has %s\n", pa.file.c_str(), memory.summary().c_str(),
                runtime::pipeline_memory_budget(memory).text().c_str());
    return 0;
  } catch (const Error& e) {
    print_error(e);
    return 1;
  }
}

namespace {
// The README of built-in plugin `name` of `kind`: installed beside the CLI
// (<prefix>/share/contra/plugins/<kind>/<name>/README.md), or, run from the
// build tree, in the source tree; empty when there is none (a plugin of
// another project).
std::filesystem::path plugin_readme(const std::string& kind, const std::string& name) {
  namespace fs = std::filesystem;
  std::vector<fs::path> roots;
  std::error_code ec;
  const fs::path bin = boost::dll::program_location(ec).parent_path();
#ifdef CONTRA_INSTALL_PLUGIN_README_DIR_FROM_BIN
  if (!ec) roots.push_back(bin / CONTRA_INSTALL_PLUGIN_README_DIR_FROM_BIN);
#endif
#ifdef CONTRA_SOURCE_PLUGIN_DIR
  roots.emplace_back(CONTRA_SOURCE_PLUGIN_DIR);
#endif
  for (const fs::path& root : roots) {
    const fs::path readme = (root / kind / name / "README.md").lexically_normal();
    if (fs::is_regular_file(readme, ec)) return readme;
  }
  return {};
}
}  // namespace

int plugins_command(const PluginsArgs& args) {
  const std::string& describe = args.describe;
  const std::string& kind = args.kind;
  const std::string& markdown = args.markdown;
  const std::vector<std::string>& extra = args.paths;
  if (args.sections) {
    for (const Schema& sec : {runtime::pipeline_section_schema(), runtime::runtime_section_schema(),
                              runtime::train_section_schema(), runtime::augment_section_schema(),
                              runtime::plugins_section_schema(), runtime::tower_section_schema()})
      std::printf("%s\n", sec.describe().c_str());
    return 0;
  }
  if (!kind.empty()) {
    std::vector<std::string> kinds;
    for (std::uint32_t k = 1; k <= static_cast<std::uint32_t>(PluginKind::text_augmentation); ++k)
      kinds.emplace_back(kind_name(static_cast<PluginKind>(k)));
    if (std::find(kinds.begin(), kinds.end(), kind) == kinds.end()) {
      std::string hint = closest_match(kind, kinds), list;
      for (std::size_t i = 0; i < kinds.size(); ++i) list += (i ? ", " : "") + kinds[i];
      std::fprintf(stderr, "contra plugins: unknown kind '%s'%s; kinds are %s\n", kind.c_str(),
                   hint.empty() ? "" : (" (did you mean '" + hint + "'?)").c_str(), list.c_str());
      return 2;
    }
  }
  PluginRegistry registry;
  registry.include_device_builds();  // GPU builds are listed too, marked with their device
  runtime::PipelineSpec none;
  for (const auto& p : extra) none.plugin_paths.emplace_back(p);
  try {
    runtime::scan_plugin_path(none, registry);
  } catch (const Error& e) {
    print_error(e);
    return 1;
  }
  auto records = registry.all();
  if (!markdown.empty()) return write_plugin_markdown(records, markdown);
  if (!describe.empty()) {
    std::vector<const runtime::PluginRecord*> hits;
    std::vector<std::string> names;
    for (auto* r : records) {
      names.push_back(r->name);
      if (r->name == describe && (kind.empty() || kind == kind_name(r->kind))) hits.push_back(r);
    }
    if (hits.empty()) {
      std::string hint = closest_match(describe, names);
      std::fprintf(stderr, "contra plugins: no plugin named '%s'%s\n", describe.c_str(),
                   hint.empty() ? "" : ("; did you mean '" + hint + "'?").c_str());
      return 1;
    }
    // One plugin may come in several builds (CPU and CUDA) of one schema: its
    // text once, with every build's device and library.
    std::vector<const runtime::PluginRecord*> shown;
    for (auto* r : hits) {
      bool seen = false;
      for (auto* s : shown) seen = seen || (s->kind == r->kind && s->schema.describe() == r->schema.describe());
      if (seen) continue;
      shown.push_back(r);
      std::printf("%s (%s plugin)\n", r->name.c_str(), kind_name(r->kind));
      for (auto* b : hits)
        if (b->kind == r->kind && b->schema.describe() == r->schema.describe())
          std::printf("  %s build: %s\n", device_name(b->device), b->library.string().c_str());
      std::printf("%s", r->schema.describe().c_str());
      std::string header = r->kind == PluginKind::augmentation ? std::string("[[augment.chain]]")
                                                                : std::string("[") + kind_name(r->kind) + "]";
      std::printf("\nexample:\n  %s\n  plugin = \"%s\"\n", header.c_str(), r->name.c_str());
      for (const auto& p : r->schema.params())
        std::printf("  %s = %s\n", p.name.c_str(),
                    p.default_value ? value_to_string(*p.default_value).c_str() : "...  # required");
      // A built-in plugin's README: its conventions, beyond the schema.
      if (const std::filesystem::path readme = plugin_readme(kind_name(r->kind), r->name); !readme.empty()) {
        std::ifstream in(readme);
        std::stringstream text;
        text << in.rdbuf();
        std::printf("\n--- %s ---\n%s", readme.string().c_str(), text.str().c_str());
        if (!text.str().empty() && text.str().back() != '\n') std::printf("\n");
      }
    }
    return 0;
  }
  const char* current = nullptr;
  bool first_kind = true;
  for (auto* r : records) {
    if (!kind.empty() && kind != kind_name(r->kind)) continue;
    if (!current || std::string(current) != kind_name(r->kind)) {
      current = kind_name(r->kind);
      std::printf("%s%s:\n", first_kind ? "" : "\n", current);
      first_kind = false;
    }
    // A GPU twin is listed under its CPU build, marked with its device.
    std::string label = r->device == Device::cpu ? r->name : r->name + " (" + device_name(r->device) + ")";
    std::printf("  %-22s %s\n", label.c_str(), r->schema.summary().c_str());
  }
  if (!registry.problems().empty()) {
    std::printf("\nlibraries that could not be loaded:\n");
    for (const auto& p : registry.problems()) std::printf("  %s\n", p.message.c_str());
  }
  return 0;
}

Command add_run_command(CLI::App& contra) {
  auto pa = std::make_shared<PipelineArgs>();
  CLI::App* run = contra.add_subcommand("run", "train the pipeline in FILE, or continue a run (--resume RUN_DIR)");
  run->add_option("FILE", pa->file, "the pipeline (TOML)");
  add_set_option(*run, pa->overrides);
  CLI::Option* run_dir = run->add_option("--run-dir", pa->run_dir, "record the run in DIR")->type_name("DIR");
  run->add_option("--resume", pa->resume, "continue the run in RUN_DIR from its latest checkpoint")
      ->type_name("RUN_DIR");
  run->add_flag("--no-record", pa->no_record, "record nothing")->excludes(run_dir);
  run->footer(
      "Train the pipeline described in FILE (TOML), e.g.\n"
      "  contra run FILE --set train.max_steps=100 --set loss.temperature=0.2\n"
      "The run is recorded in a folder ([record] dir/<name>-<time>, or --run-dir):\n"
      "pipeline.toml, run.json, metrics.jsonl, summary.json, checkpoints/.\n"
      "Ctrl-C stops after the batches in flight, writes a checkpoint and exits 130;\n"
      "--resume RUN_DIR (alone) continues from that folder's latest checkpoint.\n"
      "Progress goes to standard output; per-stage times are printed at the end.");
  return {run, [pa] { return run_command(*pa); }};
}

Command add_eval_command(CLI::App& contra) {
  auto pa = std::make_shared<PipelineArgs>();
  CLI::App* eval = contra.add_subcommand("eval", "run the pipeline's [eval] on a saved encoder");
  eval->add_option("RUN_DIR|CHECKPOINT", pa->file, "a run folder (its latest checkpoint) or a checkpoint file");
  eval->add_option("--pipeline", pa->pipeline, "the pipeline, when not the run folder's own")->type_name("FILE");
  add_set_option(*eval, pa->overrides);
  eval->footer(
      "Run the pipeline's [eval] evaluators on the encoder saved in CHECKPOINT (a\n"
      "checkpoints/step-*.safetensors file) or in RUN_DIR's latest checkpoint. The\n"
      "pipeline is the run folder's own pipeline.toml unless --pipeline names one.\n"
      "The figures are printed and, for a run folder, appended to its\n"
      "evaluations.jsonl; [eval] save_embeddings = true writes the test split's\n"
      "features to RUN_DIR/embeddings/eval-step-<n>.npy.");
  return {eval, [pa] { return eval_command(*pa); }};
}

Command add_embed_command(CLI::App& contra) {
  auto pa = std::make_shared<PipelineArgs>();
  CLI::App* embed = contra.add_subcommand("embed", "write a source's embeddings as .npy");
  embed->add_option("RUN_DIR|CHECKPOINT", pa->file, "a run folder (its latest checkpoint) or a checkpoint file");
  CLI::Option* images =
      embed->add_option("--images", pa->images, "the source's images (its `images` parameter)")->type_name("FILE");
  embed->add_option("--labels", pa->labels, "their labels (else none)")->type_name("FILE")->needs(images);
  embed->add_option("--out", pa->out, "the .npy file to write")->type_name("FILE.npy");
  embed->add_option("--pipeline", pa->pipeline, "the pipeline, when not the run folder's own")->type_name("FILE");
  add_set_option(*embed, pa->overrides);
  embed->footer(
      "Write the encoder's embeddings (its output, before any projection head) of\n"
      "every sample of a source as .npy: float32 [N, D], row i = the source's sample\n"
      "i, and its labels beside (…-labels.npy, int64; -1 where there are none).\n"
      "The source is the pipeline's [source]; --images FILE (and --labels FILE)\n"
      "set its images (and labels, else none), --set source.KEY=VALUE anything else.\n"
      "Images go through [eval]'s chain. Default --out: RUN_DIR/embeddings/\n"
      "embed-step-<n>.npy.");
  return {embed, [pa] { return embed_command(*pa); }};
}

Command add_validate_command(CLI::App& contra) {
  auto pa = std::make_shared<PipelineArgs>();
  CLI::App* validate = contra.add_subcommand("validate", "check FILE and its plugins' parameters");
  validate->add_option("FILE", pa->file, "the pipeline (TOML)");
  add_set_option(*validate, pa->overrides);
  validate->footer(
      "Check FILE without running it: TOML syntax, sections and keys, plugin names,\n"
      "and every plugin's parameters against its schema; then open its data (the\n"
      "[source] and [eval] sources). Prints every problem with file:line:column;\n"
      "exits 1 if there is any.");
  return {validate, [pa] { return validate_command(*pa); }};
}

Command add_plugins_command(CLI::App& contra) {
  auto args = std::make_shared<PluginsArgs>();
  CLI::App* plugins = contra.add_subcommand("plugins", "list plugins, or describe one");
  plugins->add_option("--describe", args->describe, "describe the plugin NAME's parameters")->type_name("NAME");
  plugins->add_option("--kind", args->kind, "only plugins of this kind")->type_name("KIND");
  plugins->add_option("--path", args->paths, "also search this folder (or .so file); repeatable")
      ->type_name("DIR")
      ->allow_extra_args(false);
  plugins->add_flag("--sections", args->sections, "describe the built-in pipeline sections instead");
  plugins->add_option("--markdown", args->markdown, "write the plugin reference (DIR/README.md, DIR/<kind>/<name>.md)")
      ->type_name("DIR");
  plugins->footer(
      "List the plugins found on the plugin path, or describe one plugin's\n"
      "parameters.");
  return {plugins, [args] { return plugins_command(*args); }};
}

}  // namespace contra::cli
