#include "run_record.hpp"

#include "config/settings.hpp"
#include "train/json_io.hpp"
#include "train/safetensors.hpp"

#include <contra/cpu.hpp>
#include <contra/errors.hpp>
#include <contra/plugin.hpp>
#include <contra/version.hpp>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <map>

#include <zlib.h>

#include <csignal>
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#ifndef CONTRA_GIT_REVISION
#define CONTRA_GIT_REVISION "unknown"
#endif

namespace contra::runtime {
namespace fs = std::filesystem;

using json::Json;

namespace {

std::string now_iso() {
  std::time_t t = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  return buf;
}

Json figures_json(const std::vector<std::pair<std::string, double>>& figures) {
  Json o = Json::object();
  for (const auto& [name, value] : figures) o[name] = json::number(value);
  return o;
}

// CRC-32 (zlib) of a file's bytes, as 8 hex digits; "" when unreadable.
std::string file_crc32(const fs::path& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return "";
  uLong crc = crc32(0L, Z_NULL, 0);
  std::vector<char> buf(1 << 20);
  while (f.read(buf.data(), static_cast<std::streamsize>(buf.size())) || f.gcount() > 0)
    crc = crc32(crc, reinterpret_cast<const Bytef*>(buf.data()), static_cast<uInt>(f.gcount()));
  char hex[16];
  std::snprintf(hex, sizeof hex, "%08lx", static_cast<unsigned long>(crc));
  return hex;
}

// Each plugin of the run with the library that provided it and a checksum of
// that library's bytes: which build ran, also after a rebuild.
Json plugins_json(const PipelineSpec& spec) {
  std::map<std::string, std::string> crc;  // each library read once
  Json o = Json::array();
  for (const PluginSpec* p : spec.plugins()) {
    const std::string lib = p->library.empty() ? "" : fs::absolute(p->library).lexically_normal().string();
    if (!lib.empty() && !crc.count(lib)) crc[lib] = file_crc32(lib);
    o.push_back({{"table", p->section}, {"plugin", p->name}, {"device", device_name(p->device)}, {"library", lib},
                 {"crc32", lib.empty() ? "" : crc[lib]}});
  }
  return o;
}


}  // namespace

void append_evaluation(const fs::path& run_dir, const std::string& checkpoint, const std::string& pipeline,
                       const std::vector<std::string>& overrides, std::int64_t step,
                       const std::vector<std::pair<std::string, double>>& figures) {
  const Json record = {{"checkpoint", checkpoint},
                       {"step", step + 1},
                       {"pipeline", pipeline},
                       {"overrides", overrides},
                       {"figures", figures_json(figures)},
                       {"time", now_iso()}};
  const fs::path file = run_dir / "evaluations.jsonl";
  std::FILE* f = std::fopen(file.string().c_str(), "a");
  if (!f) throw Error("cannot write " + file.string() + ": " + std::strerror(errno));
  const bool ok = std::fputs((json::one_line(record) + "\n").c_str(), f) >= 0;
  if (std::fclose(f) != 0 || !ok) throw Error("cannot write " + file.string() + ": " + std::strerror(errno));
}

namespace {
// Takes RUN/.lock (flock, exclusive, without waiting) and writes who holds
// it; the lock goes with the descriptor or the process. A folder held by
// another run is a ConfigError naming its holder.
int lock_run_folder(const fs::path& dir) {
  const fs::path file = dir / ".lock";
  const int fd = ::open(file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) throw Error("cannot open " + file.string() + ": " + std::strerror(errno));
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    std::string holder;
    char buf[256];
    const ssize_t n = ::pread(fd, buf, sizeof buf - 1, 0);
    if (n > 0) holder.assign(buf, static_cast<std::size_t>(n));
    while (!holder.empty() && (holder.back() == '\n' || holder.back() == '\0')) holder.pop_back();
    ::close(fd);
    if (err == EWOULDBLOCK)
      throw ConfigError(dir.string() + ": the run folder is in use by another run (" +
                        (holder.empty() ? std::string("holder unknown") : holder) +
                        "); wait for it to end, or give another --run-dir");
    throw Error("cannot lock " + file.string() + ": " + std::strerror(err));
  }
  char host[256] = "";
  ::gethostname(host, sizeof host - 1);
  const std::time_t t = std::time(nullptr);
  char when[32];
  std::strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", std::localtime(&t));
  const std::string holder = "pid " + std::to_string(::getpid()) + " on " + host + ", since " + when + "\n";
  if (::ftruncate(fd, 0) != 0 || ::pwrite(fd, holder.data(), holder.size(), 0) != static_cast<ssize_t>(holder.size())) {
    const int err = errno;
    ::close(fd);
    throw Error("cannot write " + file.string() + ": " + std::strerror(err));
  }
  return fd;
}
// Temporary files ("<file>.tmp.<pid>.<n>", write_file_atomically) of a
// writer that died before its rename: the folder is locked by now, so only
// files of processes that are gone are removed.
void remove_orphaned_temporaries(const fs::path& dir) {
  for (const fs::path& folder : {dir, dir / "checkpoints"}) {
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(folder, ec)) {
      const std::string name = e.path().filename().string();
      const std::size_t at = name.rfind(".tmp.");
      if (at == std::string::npos) continue;
      char* end = nullptr;
      const long pid = std::strtol(name.c_str() + at + 5, &end, 10);
      if (pid <= 0 || *end != '.') continue;  // not one of ours
      if (::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH) {
        std::error_code ignored;
        fs::remove(e.path(), ignored);
      }
    }
  }
}
}  // namespace

fs::path RunRecord::default_dir(const PipelineSpec& spec) {
  const PipelineSettings settings = decode_settings(spec);
  std::string name = settings.name;
  if (name.empty()) name = fs::path(spec.file).stem().string();
  std::time_t t = std::time(nullptr);
  char stamp[32];
  std::strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", std::localtime(&t));
  std::error_code ec;
  fs::create_directories(settings.record.dir, ec);
  if (ec) throw Error("cannot create the folder of run folders " + settings.record.dir.string() + ": " + ec.message());
  // mkdir either creates the folder or finds it there: of two runs started
  // in the same second, each gets a folder of its own.
  for (int i = 1;; ++i) {
    fs::path dir = settings.record.dir / (name + "-" + stamp + (i == 1 ? "" : "-" + std::to_string(i)));
    if (fs::create_directory(dir, ec)) return dir;
    if (ec) throw Error("cannot create the run folder " + dir.string() + ": " + ec.message());
  }
}

RunRecord::CheckpointLocation RunRecord::locate_checkpoint(const std::string& path) {
  std::error_code ec;
  const fs::path p(path);
  CheckpointLocation out;
  if (fs::is_directory(p, ec)) {
    out.checkpoint = latest_checkpoint(p);
    if (fs::exists(p / "run.json", ec)) out.run_dir = p;
    return out;
  }
  if (!fs::exists(p, ec)) throw ConfigError(path + ": no such checkpoint file or run folder");
  out.checkpoint = path;
  const fs::path dir = p.parent_path();
  if (dir.filename() == "checkpoints" && fs::exists(dir.parent_path() / "run.json", ec)) out.run_dir = dir.parent_path();
  return out;
}

std::string RunRecord::latest_checkpoint(const fs::path& run_dir) {
  fs::path latest = run_dir / "checkpoints" / "latest";
  std::ifstream f(latest);
  std::string name;
  if (!f || !std::getline(f, name) || name.empty())
    throw ConfigError(run_dir.string() + ": no checkpoint to resume from (" + latest.string() + " is missing)");
  // A file name in checkpoints/, nothing else: `latest` never leads outside
  // the run folder.
  if (name.find_first_of(std::string("/\0", 2)) != std::string::npos || name == "." || name == "..") {
    std::string shown;  // a NUL would end the message
    for (char c : name) shown += c == '\0' ? std::string("\\0") : std::string(1, c);
    throw ConfigError(latest.string() + " names " + shown + ", which is not a file name in " +
                      (run_dir / "checkpoints").string());
  }
  fs::path p = run_dir / "checkpoints" / name;
  // A name the file system refuses (too long) is said as such, not thrown as a filesystem_error.
  std::error_code ec;
  const bool there = fs::exists(p, ec);
  if (ec) throw ConfigError(latest.string() + " names " + name + ", which cannot be read: " + ec.message());
  if (!there) throw ConfigError(latest.string() + " names " + name + ", which does not exist");
  return p.string();
}

RunRecord::RunRecord(fs::path dir, const PipelineSpec& spec, const std::vector<std::string>& overrides, bool resuming,
                     const std::string& backend, int ranks)
    : dir_(std::move(dir)) {
  std::error_code ec;
  fs::create_directories(dir_ / "checkpoints", ec);
  if (ec) throw Error("cannot create the run folder " + dir_.string() + ": " + ec.message());
  lock_fd_ = lock_run_folder(dir_);
  remove_orphaned_temporaries(dir_);
  if (!resuming) {
    write_file_atomically((dir_ / "pipeline.toml").string(),
                          "# Resolved from " + spec.file + " by contra " + sdk_version + "\n" + spec.resolved_toml);
    const PipelineSettings settings = decode_settings(spec);
    const Json run = {{"pipeline", settings.name},
                      {"file", spec.file},
                      {"overrides", overrides},
                      {"seed", settings.seed},
                      {"steps_from", 1},
                      {"precision", train_precision_name(spec)},
                      {"precision_setting", train_precision_setting(spec)},
                      {"cpu", cpu_capabilities().summary()},
                      {"distributed", {{"backend", backend}, {"ranks", ranks}}},
                      {"git_revision", CONTRA_GIT_REVISION},
                      {"build", CONTRA_BUILD_FINGERPRINT},
                      {"sdk_version", sdk_version},
                      {"plugins", plugins_json(spec)},
                      {"started", now_iso()}};
    write_file_atomically((dir_ / "run.json").string(), json::document(run, {"plugins"}));
  }
  metrics_ = std::fopen((dir_ / "metrics.jsonl").string().c_str(), resuming ? "a" : "w");
  if (!metrics_) throw Error("cannot write " + (dir_ / "metrics.jsonl").string() + ": " + std::strerror(errno));
}

RunRecord::~RunRecord() {
  if (metrics_) std::fclose(metrics_);
  if (lock_fd_ >= 0) ::close(lock_fd_);  // releases the lock
}

// One record of metrics.jsonl, flushed: a run killed later keeps its lines.
// A write that fails (a full disk, a device refusing it) stops the run,
// naming the file, rather than leaving a cut line behind unsaid.
void RunRecord::write_metrics(const Json& record) {
  const std::string line = json::one_line(record) + "\n";
  if (std::fputs(line.c_str(), metrics_) == EOF || std::fflush(metrics_) != 0)
    throw Error("cannot write " + (dir_ / "metrics.jsonl").string() + ": " + std::strerror(errno));
}

void RunRecord::keep_steps_through(std::int64_t steps) {
  const fs::path file = dir_ / "metrics.jsonl";
  std::ifstream in(file);
  std::string kept;
  for (std::string line; std::getline(in, line);) {
    // A line cut by a crash, or of a step after the checkpoint, goes.
    Json record;
    try {
      record = json::parse(line, file.string());
    } catch (const DataError&) {
      continue;
    }
    const Json* step = json::find(record, "step");
    if (step && step->is_number_integer() && step->get<std::int64_t>() > steps) continue;
    kept += line + "\n";
  }
  in.close();
  std::fclose(metrics_);
  metrics_ = nullptr;
  write_file_atomically(file.string(), kept);
  metrics_ = std::fopen(file.string().c_str(), "a");
  if (!metrics_) throw Error("cannot write " + file.string() + ": " + std::strerror(errno));
}

void RunRecord::step(const StepReport& r) {
  Json line = {{"type", "step"},
               {"step", r.step + 1},
               {"epoch", r.epoch},
               {"loss", json::number(r.loss)},
               {"lr", json::number(r.lr)},
               {"images_per_s", json::number(r.images_per_s)},
               {"time_s", json::number(r.elapsed_s)}};
  if (r.metrics && !r.metrics->empty()) line["metrics"] = figures_json(*r.metrics);
  write_metrics(line);
}

void RunRecord::eval(std::int64_t step, std::int64_t epoch, const std::vector<std::pair<std::string, double>>& figures) {
  write_metrics({{"type", "eval"}, {"step", step + 1}, {"epoch", epoch}, {"figures", figures_json(figures)}});
}

void RunRecord::eval_error(std::int64_t step, std::int64_t epoch, const std::string& message) {
  write_metrics({{"type", "eval_error"}, {"step", step + 1}, {"epoch", epoch}, {"error", message}});
}

std::string RunRecord::checkpoint_path(std::int64_t step) const {
  char name[48];
  std::snprintf(name, sizeof name, "step-%08lld.safetensors", static_cast<long long>(step + 1));
  return (dir_ / "checkpoints" / name).string();
}

std::string RunRecord::embeddings_path(std::int64_t step) const {
  std::error_code ec;
  fs::create_directories(dir_ / "embeddings", ec);
  char name[48];
  std::snprintf(name, sizeof name, "test-step-%08lld.npy", static_cast<long long>(step + 1));
  return (dir_ / "embeddings" / name).string();
}

void RunRecord::checkpoint_written(const std::string& path, std::int64_t keep) {
  write_file_atomically((dir_ / "checkpoints" / "latest").string(), fs::path(path).filename().string() + "\n");
  std::vector<fs::path> all;
  for (const auto& e : fs::directory_iterator(dir_ / "checkpoints"))
    if (e.path().extension() == ".safetensors") all.push_back(e.path());
  std::sort(all.begin(), all.end());
  // Of the files up to the one `latest` names, the newest `keep` stay;
  // later ones (written by steps not recorded yet) wait for their own turn.
  const auto newest = std::find(all.begin(), all.end(), fs::path(path));
  if (newest == all.end()) return;
  const auto upto = static_cast<std::size_t>(newest - all.begin()) + 1;
  for (std::size_t i = 0; i + static_cast<std::size_t>(keep) < upto; ++i) {
    std::error_code ec;
    fs::remove(all[i], ec);
  }
}

void RunRecord::summary(const RunSummary& s, const std::string& error) {
  Json stages = Json::array();
  for (const auto& st : s.telemetry.stages)
    stages.push_back({{"name", st.name}, {"calls", st.calls}, {"busy_s", json::number(st.busy_s)},
                      {"idle_s", json::number(st.wait_s)}});
  double final_loss = NAN;
  if (!s.losses.empty()) {
    std::size_t k = std::min<std::size_t>(10, s.losses.size());
    final_loss = 0;
    for (std::size_t i = s.losses.size() - k; i < s.losses.size(); ++i) final_loss += s.losses[i] / static_cast<double>(k);
  }
  Json summary = {{"steps", s.steps},
                  {"first_step", s.first_step},
                  {"images", s.images},
                  {"wall_s", json::number(s.telemetry.wall_s)},
                  {"images_per_s", json::number(s.images_per_s)},
                  {"eval_s", json::number(s.eval_s)},
                  {"final_loss", json::number(final_loss)},
                  {"skipped_samples", s.skipped_samples},
                  {"skipped_distinct", s.skipped_distinct},
                  {"eval", figures_json(s.eval)},
                  {"stages", std::move(stages)}};
  if (s.ranks > 1) {
    Json per_rank = Json::array();
    for (const RankFigures& f : s.rank_figures)
      per_rank.push_back({{"rank", f.rank},
                          {"steps", f.steps},
                          {"wall_s", json::number(f.wall_s)},
                          {"train_busy_s", json::number(f.train_busy_s)},
                          {"train_idle_s", json::number(f.train_idle_s)},
                          {"load_busy_s", json::number(f.load_busy_s)},
                          {"augment_busy_s", json::number(f.augment_busy_s)},
                          {"collective_s", json::number(f.collective_s)},
                          {"state_digest", f.state_digest},
                          {"gradient_buckets", f.buckets},
                          {"buckets_overlapped", f.buckets_overlapped}});
    summary["distributed"] = {{"backend", s.backend},
                              {"ranks", s.ranks},
                              {"ranks_agree", s.ranks_agree},
                              {"per_rank", std::move(per_rank)}};
  }
  if (!s.eval_error.empty()) summary["eval_error"] = s.eval_error;
  if (!error.empty()) summary["error"] = error;
  summary[error.empty() ? "finished" : "failed"] = now_iso();
  write_file_atomically((dir_ / "summary.json").string(), json::document(summary));
}

void RunRecord::stopped(const std::string& error) {
  const Json summary = {{"error", error}, {"failed", now_iso()}};
  write_file_atomically((dir_ / "summary.json").string(), json::document(summary));
}

}  // namespace contra::runtime
