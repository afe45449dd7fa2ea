#include "sweep.hpp"

#include "assembly/load_pipeline.hpp"
#include "config/settings.hpp"
#include "graph/run_record.hpp"
#include "loader/registry.hpp"
#include "train/json_io.hpp"

#include <contra/errors.hpp>

#include <CLI/CLI.hpp>

#include <fcntl.h>
#include <sched.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <deque>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <thread>

extern char** environ;

namespace contra::cli {
namespace fs = std::filesystem;

std::vector<std::string> split_grid_values(const std::string& text) {
  std::vector<std::string> out;
  std::string cur;
  int depth = 0;
  char quote = 0;
  auto trim = [](std::string s) {
    std::size_t a = s.find_first_not_of(" \t"), b = s.find_last_not_of(" \t");
    return a == std::string::npos ? std::string() : s.substr(a, b - a + 1);
  };
  for (std::size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (quote) {
      cur += c;
      if (c == '\\' && quote == '"' && i + 1 < text.size()) cur += text[++i];
      else if (c == quote) quote = 0;
      continue;
    }
    if (c == '"' || c == '\'') quote = c;
    else if (c == '[' || c == '{') ++depth;
    else if ((c == ']' || c == '}') && depth > 0) --depth;
    else if (c == ',' && depth == 0) {
      out.push_back(trim(cur));
      cur.clear();
      continue;
    }
    cur += c;
  }
  out.push_back(trim(cur));
  return out;
}

GridAxis parse_grid_axis(const std::string& text) {
  auto eq = text.find('=');
  if (eq == std::string::npos || eq == 0)
    throw UsageError("--grid " + text + ": expected section.key=value1,value2,...");
  GridAxis axis{text.substr(0, eq), split_grid_values(text.substr(eq + 1))};
  if (axis.key.find('.') == std::string::npos || axis.key.front() == '.' || axis.key.back() == '.')
    throw UsageError("--grid " + text + ": the key must be section.key, e.g. loss.temperature");
  for (std::size_t i = 0; i < axis.values.size(); ++i)
    if (axis.values[i].empty())
      throw UsageError("--grid " + text + ": value " + std::to_string(i + 1) + " of " +
                       std::to_string(axis.values.size()) + " is empty");
  std::set<std::string> seen;
  for (const auto& v : axis.values)
    if (!seen.insert(v).second) throw UsageError("--grid " + text + ": the value " + v + " is given twice");
  return axis;
}

std::vector<SweepRun> expand_grid(const std::vector<GridAxis>& grid, std::int64_t seeds, std::int64_t base_seed) {
  for (const auto& a : grid)
    if (a.values.empty()) return {};
  std::vector<SweepRun> out;
  std::vector<std::size_t> index(grid.size(), 0);
  for (;;) {
    SweepRun base;
    for (std::size_t a = 0; a < grid.size(); ++a) {
      const std::string& v = grid[a].values[index[a]];
      base.point.emplace_back(grid[a].key, v);
      base.overrides.push_back(grid[a].key + "=" + v);
    }
    if (seeds <= 0) {
      out.push_back(base);
    } else {
      for (std::int64_t s = 0; s < seeds; ++s) {
        SweepRun r = base;
        r.seed_index = s;
        r.seed = base_seed + s;
        r.overrides.push_back("pipeline.seed=" + std::to_string(r.seed));
        out.push_back(std::move(r));
      }
    }
    // Odometer: the last axis turns fastest.
    std::size_t a = grid.size();
    while (a > 0) {
      --a;
      if (++index[a] < grid[a].values.size()) break;
      index[a] = 0;
      if (a == 0) return out;
    }
    if (grid.empty()) return out;
  }
}

std::string sanitize_name(const std::string& text) {
  std::string o;
  for (char c : text) {
    if (c == '"' || c == '\'') continue;
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
              c == '+' || c == '-' || c == '=';
    o += ok ? c : '_';
  }
  if (o.empty() || o == "." || o == "..") o = "_" + o;
  return o;
}

std::string run_folder_name(const std::string& pipeline, const SweepRun& run) {
  std::string name = sanitize_name(pipeline);
  for (const auto& [k, v] : run.point) name += "-" + sanitize_name(k + "=" + v);
  if (run.seed_index >= 0) name += "-seed" + std::to_string(run.seed_index);
  // Stay well under the 255-byte limit of a file name.
  if (name.size() > 200) {
    std::uint32_t h = 2166136261u;
    for (unsigned char c : name) h = (h ^ c) * 16777619u;
    char tail[16];
    std::snprintf(tail, sizeof tail, "-%08x", h);
    std::string keep = name.substr(0, 180);
    if (run.seed_index >= 0) keep = name.substr(0, 170) + "-seed" + std::to_string(run.seed_index);
    name = keep + tail;
  }
  return name;
}

std::vector<std::string> run_folder_names(const std::string& pipeline, const std::vector<SweepRun>& runs) {
  std::vector<std::string> names;
  std::set<std::string> used;
  for (const auto& r : runs) {
    std::string n = run_folder_name(pipeline, r);
    std::string candidate = n;
    for (int i = 2; !used.insert(candidate).second; ++i) candidate = n + "-" + std::to_string(i);
    names.push_back(candidate);
  }
  return names;
}

namespace {

namespace json = runtime::json;
using json::Json;

std::string shell_quote(const std::string& s) {
  bool plain = !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || std::strchr("._-+=/:,@%", c);
  });
  if (plain) return s;
  std::string o = "'";
  for (char c : s) o += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return o + "'";
}

int available_cores() {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0) {
    int n = CPU_COUNT(&set);
    if (n > 0) return n;
  }
  return std::max(1u, std::thread::hardware_concurrency());
}

bool has_key(const std::vector<std::string>& overrides, const std::string& key) {
  return std::any_of(overrides.begin(), overrides.end(),
                     [&](const std::string& o) { return o.compare(0, key.size() + 1, key + "=") == 0; });
}

std::string stamp() {
  std::time_t t = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y%m%d-%H%M%S", std::localtime(&t));
  return buf;
}

std::string last_lines(const fs::path& file, std::size_t n) {
  std::ifstream f(file);
  std::deque<std::string> lines;
  for (std::string l; std::getline(f, l);) {
    if (!l.empty() && l.back() == '\r') l.pop_back();
    // A terminal progress line is rewritten with \r: keep its last state.
    if (auto cr = l.rfind('\r'); cr != std::string::npos) l = l.substr(cr + 1);
    lines.push_back(l);
    if (lines.size() > n) lines.pop_front();
  }
  std::string o;
  for (const auto& l : lines) o += "    " + l + "\n";
  return o;
}

enum class Status { pending, running, ok, failed, interrupted, skipped, not_run };

const char* status_name(Status s) {
  switch (s) {
    case Status::pending: return "pending";
    case Status::running: return "running";
    case Status::ok: return "ok";
    case Status::failed: return "failed";
    case Status::interrupted: return "interrupted";
    case Status::skipped: return "skipped";
    case Status::not_run: return "not run";
  }
  return "?";
}

struct Job {
  SweepRun run;
  std::string name;
  fs::path dir;
  std::vector<std::string> overrides;  // everything passed to `contra run` as --set
  Status status = Status::pending;
  bool resume = false;  // continue from the folder's checkpoint (--continue)
  int exit_code = -1;
  std::string failure;  // how it failed, in words
  double wall_s = 0;
  pid_t pid = -1;
  std::chrono::steady_clock::time_point started;
};

std::atomic<bool> sweep_interrupted{false};
extern "C" void on_sweep_interrupt(int) { sweep_interrupted = true; }

void write_sweep_json(const fs::path& out, const std::string& file, const std::string& pipeline,
                      const std::vector<GridAxis>& grid, std::int64_t seeds, std::int64_t base_seed,
                      const std::vector<std::string>& sets, int jobs, const std::vector<Job>& all) {
  Json axes = Json::array();
  for (const auto& a : grid) axes.push_back({{"key", a.key}, {"values", a.values}});
  Json runs = Json::array();
  for (const Job& j : all) {
    // "seed": null without a seed axis.
    Json run = {{"dir", j.name},
                {"overrides", j.overrides},
                {"seed", j.run.seed >= 0 ? Json(j.run.seed) : Json(nullptr)},
                {"status", status_name(j.status)}};
    if (j.exit_code >= 0) run["exit_code"] = j.exit_code;
    if (j.status == Status::ok || j.status == Status::failed || j.status == Status::interrupted)
      run["wall_s"] = json::number(j.wall_s);
    runs.push_back(std::move(run));
  }
  const Json sweep = {{"pipeline", pipeline}, {"file", file},         {"grid", std::move(axes)},
                      {"seeds", seeds},       {"base_seed", base_seed}, {"set", sets},
                      {"jobs", jobs},         {"runs", std::move(runs)}};
  const std::string t = json::document(sweep, {"runs"});
  fs::path tmp = out / "sweep.json.tmp";
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    f << t;
  }
  std::error_code ec;
  fs::rename(tmp, out / "sweep.json", ec);
}

// "final loss 0.5123  knn.top1_k20_t0.07 0.8570" from a finished run's summary.json.
std::string summary_line(const fs::path& dir) {
  try {
    const Json s = json::parse_file((dir / "summary.json").string());
    char buf[96];
    std::snprintf(buf, sizeof buf, "final loss %.4f", json::number_at(s, "final_loss"));
    std::string o = buf;
    if (const Json* e = json::find(s, "eval"); e && e->is_object() && !e->empty()) {
      const std::string& name = e->begin().key();
      std::snprintf(buf, sizeof buf, "  %s %.4f", name.c_str(), json::number_at(*e, name));
      o += buf;
    }
    return o;
  } catch (const Error&) {
    return "no summary.json";
  }
}

}  // namespace

namespace {

// What `contra sweep` takes on its command line.
struct SweepArgs {
  std::string file, out_dir;
  std::vector<std::string> grid, sets;  // --grid and --set, as given
  std::int64_t seeds = -1;              // -1: not given
  int jobs = 1;
  bool dry_run = false, continue_sweep = false;
};

int sweep_command(const SweepArgs& args) {
  const std::string& file = args.file;
  const std::string& out_dir = args.out_dir;
  const std::vector<std::string>& sets = args.sets;
  const int jobs = args.jobs;
  const bool dry_run = args.dry_run, continue_sweep = args.continue_sweep;
  std::int64_t seeds = args.seeds;
  std::vector<GridAxis> grid;
  try {
    if (file.empty()) throw UsageError("no pipeline file given (see contra sweep --help)");
    for (const auto& text : args.grid) {
      GridAxis axis = parse_grid_axis(text);
      for (const auto& g : grid)
        if (g.key == axis.key) throw UsageError("--grid " + axis.key + " is given twice; list all its values in one");
      grid.push_back(std::move(axis));
    }
    for (const auto& v : sets)
      if (v.find('=') == std::string::npos) throw UsageError("--set " + v + ": expected section.key=value");
    for (const auto& g : grid) {
      if (has_key(sets, g.key)) throw UsageError(g.key + " is given both by --set and by --grid");
      if (g.key == "pipeline.seed" && seeds > 0)
        throw UsageError("--grid pipeline.seed and --seeds both choose the seed; use one of them");
    }
  } catch (const UsageError& e) {
    std::fprintf(stderr, "contra sweep: %s\n", e.what());
    return 2;
  }
  bool seed_in_grid = std::any_of(grid.begin(), grid.end(), [](const GridAxis& g) { return g.key == "pipeline.seed"; });
  if (seeds < 0) seeds = seed_in_grid ? 0 : 1;

  // The base pipeline, with --set applied: its name, seed and record folder.
  runtime::PluginRegistry registry;
  std::string pipeline_name;
  std::int64_t base_seed = 0;
  fs::path record_dir;
  try {
    runtime::PipelineSpec spec = runtime::load_pipeline(file, sets, registry);
    const runtime::PipelineSettings settings = runtime::decode_settings(spec);
    pipeline_name = settings.name;
    if (pipeline_name.empty()) pipeline_name = fs::path(file).stem().string();
    base_seed = static_cast<std::int64_t>(settings.seed);
    record_dir = settings.record.dir;
  } catch (const Error& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }

  std::vector<SweepRun> runs = expand_grid(grid, seeds, base_seed);
  std::vector<std::string> names = run_folder_names(pipeline_name, runs);
  fs::path out = out_dir.empty() ? record_dir / (sanitize_name(pipeline_name) + "-sweep-" + stamp()) : fs::path(out_dir);

  // Threads per run when several run at once; what --set or --grid names wins.
  std::vector<std::string> thread_sets;
  int cores = available_cores();
  if (jobs > 1) {
    int per_run = std::max(1, cores / jobs);
    for (const char* key : {"runtime.compute_threads", "runtime.data_threads"}) {
      bool named = has_key(sets, key) ||
                   std::any_of(grid.begin(), grid.end(), [&](const GridAxis& g) { return g.key == key; });
      if (!named) thread_sets.push_back(std::string(key) + "=" + std::to_string(per_run));
    }
  }

  std::vector<Job> all(runs.size());
  for (std::size_t i = 0; i < runs.size(); ++i) {
    Job& j = all[i];
    j.run = runs[i];
    j.name = names[i];
    j.dir = out / names[i];
    j.overrides = sets;
    j.overrides.insert(j.overrides.end(), thread_sets.begin(), thread_sets.end());
    j.overrides.insert(j.overrides.end(), runs[i].overrides.begin(), runs[i].overrides.end());
  }
  const std::size_t n = all.size();
  const std::string of = "/" + std::to_string(n) + "]";

  std::string shape;
  for (const auto& g : grid) shape += (shape.empty() ? "" : " x ") + std::to_string(g.values.size());
  if (!shape.empty()) shape += " values, ";
  shape += seeds > 0 ? std::to_string(seeds) + (seeds == 1 ? " seed" : " seeds") : std::string("seeds in the grid");
  std::printf("contra sweep %s: %zu run%s (%s), %d at a time, in %s\n", file.c_str(), n, n == 1 ? "" : "s",
              shape.c_str(), jobs, out.string().c_str());
  std::fflush(stdout);

  // Check every combination before running any.
  int invalid = 0;
  for (std::size_t i = 0; i < n; ++i) {
    try {
      runtime::load_pipeline(file, all[i].overrides, registry);
    } catch (const Error& e) {
      ++invalid;
      std::fprintf(stderr, "[%zu%s %s: invalid:\n%s\n", i + 1, of.c_str(), all[i].name.c_str(), e.what());
    }
  }
  if (invalid) {
    std::fprintf(stderr, "contra sweep: %d of %zu combinations are invalid; nothing was run\n", invalid, n);
    return 1;
  }

  std::string exe;
  {
    std::error_code ec;
    exe = fs::read_symlink("/proc/self/exe", ec).string();
    if (ec || exe.empty()) {
      std::fprintf(stderr, "contra sweep: cannot find the contra executable (/proc/self/exe)\n");
      return 1;
    }
  }
  auto child_argv = [&](const Job& j) {
    if (j.resume) return std::vector<std::string>{"contra", "run", "--resume", j.dir.string()};
    std::vector<std::string> v{"contra", "run", file};
    for (const auto& o : j.overrides) {
      v.push_back("--set");
      v.push_back(o);
    }
    v.push_back("--run-dir");
    v.push_back(j.dir.string());
    return v;
  };

  if (dry_run) {
    for (std::size_t i = 0; i < n; ++i) {
      std::string cmd;
      for (const auto& a : child_argv(all[i])) cmd += (cmd.empty() ? "" : " ") + shell_quote(a);
      std::printf("[%zu%s %s\n    %s\n", i + 1, of.c_str(), all[i].dir.string().c_str(), cmd.c_str());
    }
    std::printf("dry run: nothing was run\n");
    return 0;
  }

  // Folders that exist already are refused, unless --continue: then a run the
  // last sweep finished is skipped, one with a checkpoint is resumed, any other
  // is run again.
  std::map<std::string, std::string> previous;  // folder name -> status in the old sweep.json
  if (continue_sweep) {
    std::error_code ec;
    if (fs::exists(out / "sweep.json", ec)) {
      try {
        const Json old = json::parse_file((out / "sweep.json").string());
        if (const Json* runs_v = json::find(old, "runs"); runs_v && runs_v->is_array())
          for (const auto& r : *runs_v) previous[json::string_at(r, "dir")] = json::string_at(r, "status");
      } catch (const Error& e) {
        std::fprintf(stderr, "contra sweep: %s\n", e.what());
        return 1;
      }
    }
  }
  std::vector<std::string> clash;
  for (auto& j : all) {
    std::error_code ec;
    if (!fs::exists(j.dir, ec) || (fs::is_directory(j.dir, ec) && fs::is_empty(j.dir, ec))) continue;
    if (!continue_sweep) {
      clash.push_back(j.dir.string());
      continue;
    }
    auto it = previous.find(j.name);
    // A run that failed writes summary.json too, with its "error".
    bool finished = false;
    if (fs::exists(j.dir / "summary.json", ec) &&
        (it == previous.end() || it->second == "ok" || it->second == "skipped")) {
      try {
        finished = json::find(json::parse_file((j.dir / "summary.json").string()), "error") == nullptr;
      } catch (const Error& e) {
        std::fprintf(stderr, "contra sweep: %s\n", e.what());
        return 1;
      }
    }
    if (finished) j.status = Status::skipped;
    else if (fs::exists(j.dir / "checkpoints" / "latest", ec)) j.resume = true;
  }
  if (!clash.empty()) {
    std::fprintf(stderr, "contra sweep: %zu run folder%s already exist%s:\n", clash.size(),
                 clash.size() == 1 ? "" : "s", clash.size() == 1 ? "s" : "");
    for (const auto& c : clash) std::fprintf(stderr, "  %s\n", c.c_str());
    std::fprintf(stderr,
                 "choose another --out, remove %s, or add --continue to finish that sweep (skip the finished "
                 "runs, resume the interrupted ones)\n",
                 clash.size() == 1 ? "it" : "them");
    return 2;
  }
  {
    std::error_code ec;
    fs::create_directories(out, ec);
    if (ec) {
      std::fprintf(stderr, "contra sweep: cannot create %s: %s\n", out.string().c_str(), ec.message().c_str());
      return 1;
    }
  }
  auto record = [&] { write_sweep_json(out, file, pipeline_name, grid, seeds, base_seed, sets, jobs, all); };
  record();

  struct sigaction sa {}, old_sa{};
  sa.sa_handler = on_sweep_interrupt;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, &old_sa);

  std::map<pid_t, std::size_t> running;
  std::size_t next = 0;
  auto start = [&](std::size_t i) {
    Job& j = all[i];
    std::error_code ec;
    fs::create_directories(j.dir, ec);
    std::string log = (j.dir / "output.log").string();
    std::vector<std::string> argv_s = child_argv(j);
    std::vector<char*> argv;
    for (auto& s : argv_s) argv.push_back(s.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, log.c_str(),
                                     O_WRONLY | O_CREAT | (j.resume ? O_APPEND : O_TRUNC), 0644);
    posix_spawn_file_actions_adddup2(&fa, STDOUT_FILENO, STDERR_FILENO);
    pid_t pid = -1;
    j.started = std::chrono::steady_clock::now();
    int rc = posix_spawn(&pid, exe.c_str(), &fa, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) {
      j.status = Status::failed;
      j.failure = std::string("could not start: ") + std::strerror(rc);
      std::printf("[%zu%s FAILED %s  %s\n", i + 1, of.c_str(), j.dir.string().c_str(), j.failure.c_str());
      return;
    }
    j.pid = pid;
    j.status = Status::running;
    running[pid] = i;
    std::printf("[%zu%s %s %s  (output in %s)\n", i + 1, of.c_str(), j.resume ? "resume" : "start ",
                j.dir.string().c_str(), log.c_str());
    std::fflush(stdout);
    record();
  };

  for (;;) {
    while (!sweep_interrupted && running.size() < static_cast<std::size_t>(jobs) && next < n) {
      std::size_t i = next++;
      if (all[i].status == Status::skipped) {
        std::printf("[%zu%s skip   %s  (finished before)\n", i + 1, of.c_str(), all[i].dir.string().c_str());
        continue;
      }
      start(i);
    }
    if (running.empty()) break;
    int st = 0;
    pid_t pid = waitpid(-1, &st, 0);
    if (pid < 0) {
      if (errno == EINTR) continue;
      std::fprintf(stderr, "contra sweep: waitpid: %s\n", std::strerror(errno));
      break;
    }
    auto it = running.find(pid);
    if (it == running.end()) continue;
    Job& j = all[it->second];
    std::size_t i = it->second;
    running.erase(it);
    j.wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - j.started).count();
    if (WIFEXITED(st)) {
      j.exit_code = WEXITSTATUS(st);
      if (j.exit_code != 0) j.failure = "exit code " + std::to_string(j.exit_code);
    } else if (WIFSIGNALED(st)) {
      j.failure = std::string("killed by signal ") + std::to_string(WTERMSIG(st)) + " (" + strsignal(WTERMSIG(st)) + ")";
    }
    j.status = !j.failure.empty() ? Status::failed : sweep_interrupted ? Status::interrupted : Status::ok;
    if (j.status == Status::interrupted) {
      std::printf("[%zu%s interrupted %s  %.1f s; --continue resumes it\n",
                  i + 1, of.c_str(), j.dir.string().c_str(), j.wall_s);
    } else if (j.status == Status::ok) {
      std::printf("[%zu%s ok     %s  %.1f s  %s\n", i + 1, of.c_str(), j.dir.string().c_str(), j.wall_s,
                  summary_line(j.dir).c_str());
    } else {
      std::printf("[%zu%s FAILED %s  %s after %.1f s; the end of its output.log:\n%s", i + 1, of.c_str(),
                  j.dir.string().c_str(), j.failure.c_str(), j.wall_s, last_lines(j.dir / "output.log", 6).c_str());
    }
    std::fflush(stdout);
    record();
  }
  sigaction(SIGINT, &old_sa, nullptr);
  for (auto& j : all)
    if (j.status == Status::pending) j.status = Status::not_run;
  record();

  std::size_t ok = 0, failed = 0, skipped = 0, not_run = 0, interrupted = 0;
  std::printf("\nrun folders:\n");
  for (const auto& j : all) {
    ok += j.status == Status::ok;
    failed += j.status == Status::failed;
    skipped += j.status == Status::skipped;
    not_run += j.status == Status::not_run;
    interrupted += j.status == Status::interrupted;
    std::printf("  %-11s %s\n", status_name(j.status), j.dir.string().c_str());
  }
  std::printf("%zu ok, %zu failed", ok, failed);
  if (skipped) std::printf(", %zu skipped (finished before)", skipped);
  if (interrupted) std::printf(", %zu interrupted", interrupted);
  if (not_run) std::printf(", %zu not run", not_run);
  std::printf("; sweep recorded in %s\n", (out / "sweep.json").string().c_str());
  std::printf("compare them with: contra report %s\n", shell_quote(out.string()).c_str());
  if (interrupted || not_run)
    std::printf("to finish the sweep, run the same command with --continue (and --out %s)\n",
                shell_quote(out.string()).c_str());
  return failed || not_run || interrupted || sweep_interrupted ? 1 : 0;
}

}  // namespace

Command add_sweep_command(CLI::App& contra) {
  auto args = std::make_shared<SweepArgs>();
  CLI::App* sweep = contra.add_subcommand("sweep", "run a grid of overrides x seeds, a run folder each");
  sweep->add_option("FILE", args->file, "the pipeline (TOML)");
  sweep->add_option("--grid", args->grid, "a key and the values it takes, e.g. loss.temperature=0.1,0.5; repeatable")
      ->type_name("KEY=V1,V2,...")
      ->allow_extra_args(false);
  sweep->add_option("--seeds", args->seeds, "run each combination N times, seed + 0..N-1 (default 1)")
      ->type_name("N")
      ->check(CLI::Range(std::int64_t{1}, std::int64_t{100000}));
  add_set_option(*sweep, args->sets)->description("override one key in every run; repeatable");
  sweep->add_option("-j,--jobs", args->jobs, "runs at once (default 1)")->type_name("J")->check(CLI::Range(1, 1024));
  sweep->add_option("--out", args->out_dir, "the sweep's folder (default [record] dir/<pipeline>-sweep-<time>)")
      ->type_name("DIR");
  sweep->add_flag("--dry-run", args->dry_run, "print the runs (and check them) without running them");
  sweep->add_flag("--continue", args->continue_sweep, "finish an interrupted sweep (same command, same --out)");
  sweep->footer(
      "Run the pipeline in FILE once per combination of the --grid values (the\n"
      "cartesian product of all --grid keys) and per seed: with --seeds N each\n"
      "combination runs N times with pipeline.seed = the pipeline's seed + 0..N-1\n"
      "(default 1). Values are TOML as for --set (0.1, true, \"x\", [0.5,1.0]); commas\n"
      "inside [...] or quotes do not split. --set applies to every run.\n\n"
      "Each run is `contra run FILE --set ... --run-dir DIR` in its own process, with\n"
      "its own run folder DIR = OUT/<pipeline>-<key>=<value>-...-seed<i>; its output\n"
      "goes to DIR/output.log. Runs go one at a time; --jobs J runs up to J at once\n"
      "and gives each [runtime] compute_threads = data_threads = cores / J (unless\n"
      "--set or --grid names them). OUT/sweep.json lists the runs with their\n"
      "overrides and status.\n\n"
      "Every combination is validated before anything runs. A failed run is\n"
      "reported and the sweep goes on; the exit code is 1 if any run failed.\n"
      "--continue skips the runs that finished, resumes the interrupted ones from\n"
      "their checkpoint and runs the others again. Ctrl-C stops the running runs\n"
      "(each writes a checkpoint) and starts no new one. `contra report OUT` then\n"
      "compares the runs.");
  return {sweep, [args] { return sweep_command(*args); }};
}

}  // namespace contra::cli
