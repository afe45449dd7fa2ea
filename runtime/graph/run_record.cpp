#include "run_record.hpp"

#include "train/safetensors.hpp"

#include <contra/cpu.hpp>
#include <contra/errors.hpp>
#include <contra/plugin.hpp>
#include <contra/version.hpp>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstring>
#include <ctime>
#include <fstream>
#include <map>

#include <zlib.h>
#include <sstream>

#ifndef CONTRA_GIT_REVISION
#define CONTRA_GIT_REVISION "unknown"
#endif

namespace contra::runtime {
namespace fs = std::filesystem;

std::string json_number(double v) {
  if (!std::isfinite(v)) return "null";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.9g", v);
  return buf;
}

std::string json_quote(const std::string& s) {
  std::string o = "\"";
  for (char c : s) {
    switch (c) {
      case '"': o += "\\\""; break;
      case '\\': o += "\\\\"; break;
      case '\n': o += "\\n"; break;
      case '\t': o += "\\t"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          o += buf;
        } else {
          o += c;
        }
    }
  }
  return o + "\"";
}

namespace {

std::string now_iso() {
  std::time_t t = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  return buf;
}

std::string figures_json(const std::vector<std::pair<std::string, double>>& f) {
  std::string o = "{";
  for (std::size_t i = 0; i < f.size(); ++i) o += (i ? ", " : "") + json_quote(f[i].first) + ": " + json_number(f[i].second);
  return o + "}";
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
std::string plugins_json(const PipelineSpec& spec) {
  std::map<std::string, std::string> crc;  // each library read once
  std::string o = "[";
  for (const PluginSpec* p : spec.plugins()) {
    const std::string lib = p->library.empty() ? "" : fs::absolute(p->library).lexically_normal().string();
    if (!lib.empty() && !crc.count(lib)) crc[lib] = file_crc32(lib);
    o += std::string(o.size() > 1 ? ",\n    " : "\n    ") + "{\"table\": " + json_quote(p->section) +
         ", \"plugin\": " + json_quote(p->name) + ", \"device\": " + json_quote(device_name(p->device)) +
         ", \"library\": " + json_quote(lib) + ", \"crc32\": " + json_quote(lib.empty() ? "" : crc[lib]) + "}";
  }
  return o + (o.size() > 1 ? "\n  ]" : "]");
}

}  // namespace

void append_evaluation(const fs::path& run_dir, const std::string& checkpoint, const std::string& pipeline,
                       const std::vector<std::string>& overrides, std::int64_t step,
                       const std::vector<std::pair<std::string, double>>& figures) {
  std::string o = "[";
  for (std::size_t i = 0; i < overrides.size(); ++i) o += (i ? ", " : "") + json_quote(overrides[i]);
  o += "]";
  const std::string line = "{\"checkpoint\": " + json_quote(checkpoint) + ", \"step\": " + std::to_string(step + 1) +
                           ", \"pipeline\": " + json_quote(pipeline) + ", \"overrides\": " + o +
                           ", \"figures\": " + figures_json(figures) + ", \"time\": " + json_quote(now_iso()) + "}\n";
  const fs::path file = run_dir / "evaluations.jsonl";
  std::FILE* f = std::fopen(file.string().c_str(), "a");
  if (!f) throw Error("cannot write " + file.string() + ": " + std::strerror(errno));
  const bool ok = std::fputs(line.c_str(), f) >= 0;
  if (std::fclose(f) != 0 || !ok) throw Error("cannot write " + file.string() + ": " + std::strerror(errno));
}

fs::path RunRecord::default_dir(const PipelineSpec& spec) {
  std::string name = spec.pipeline.get<std::string>("name");
  if (name.empty()) name = fs::path(spec.file).stem().string();
  std::time_t t = std::time(nullptr);
  char stamp[32];
  std::strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", std::localtime(&t));
  fs::path dir = fs::path(spec.record.get<std::string>("dir")) / (name + "-" + stamp);
  // Two runs started in the same second get distinct folders.
  for (int i = 2; fs::exists(dir); ++i)
    dir = fs::path(spec.record.get<std::string>("dir")) / (name + "-" + stamp + "-" + std::to_string(i));
  return dir;
}

std::string RunRecord::latest_checkpoint(const fs::path& run_dir) {
  fs::path latest = run_dir / "checkpoints" / "latest";
  std::ifstream f(latest);
  std::string name;
  if (!f || !std::getline(f, name) || name.empty())
    throw ConfigError(run_dir.string() + ": no checkpoint to resume from (" + latest.string() + " is missing)");
  fs::path p = run_dir / "checkpoints" / name;
  if (!fs::exists(p)) throw ConfigError(latest.string() + " names " + name + ", which does not exist");
  return p.string();
}

RunRecord::RunRecord(fs::path dir, const PipelineSpec& spec, const std::vector<std::string>& overrides, bool resuming)
    : dir_(std::move(dir)) {
  std::error_code ec;
  fs::create_directories(dir_ / "checkpoints", ec);
  if (ec) throw Error("cannot create the run folder " + dir_.string() + ": " + ec.message());
  if (!resuming) {
    write_file_atomically((dir_ / "pipeline.toml").string(),
                          "# Resolved from " + spec.file + " by contra " + sdk_version + "\n" + spec.resolved_toml);
    std::string o = "[";
    for (std::size_t i = 0; i < overrides.size(); ++i) o += (i ? ", " : "") + json_quote(overrides[i]);
    o += "]";
    std::string run = "{\n  \"pipeline\": " + json_quote(spec.pipeline.get<std::string>("name")) +
                      ",\n  \"file\": " + json_quote(spec.file) + ",\n  \"overrides\": " + o +
                      ",\n  \"seed\": " + std::to_string(spec.pipeline.get<std::int64_t>("seed")) +
                      ",\n  \"steps_from\": 1" +
                      ",\n  \"precision\": " + json_quote(train_precision_name(spec)) +
                      ",\n  \"precision_setting\": " + json_quote(train_precision_setting(spec)) +
                      ",\n  \"cpu\": " + json_quote(cpu_capabilities().summary()) +
                      ",\n  \"git_revision\": " + json_quote(CONTRA_GIT_REVISION) +
                      ",\n  \"build\": " + json_quote(CONTRA_BUILD_FINGERPRINT) +
                      ",\n  \"sdk_version\": " + json_quote(sdk_version) +
                      ",\n  \"plugins\": " + plugins_json(spec) +
                      ",\n  \"started\": " + json_quote(now_iso()) + "\n}\n";
    write_file_atomically((dir_ / "run.json").string(), run);
  }
  metrics_ = std::fopen((dir_ / "metrics.jsonl").string().c_str(), resuming ? "a" : "w");
  if (!metrics_) throw Error("cannot write " + (dir_ / "metrics.jsonl").string() + ": " + std::strerror(errno));
}

RunRecord::~RunRecord() {
  if (metrics_) std::fclose(metrics_);
}

void RunRecord::step(const StepReport& r) {
  std::string line = "{\"type\": \"step\", \"step\": " + std::to_string(r.step + 1) + ", \"epoch\": " +
                     std::to_string(r.epoch) + ", \"loss\": " + json_number(r.loss) + ", \"lr\": " + json_number(r.lr) +
                     ", \"images_per_s\": " + json_number(r.images_per_s) + ", \"time_s\": " + json_number(r.elapsed_s);
  if (r.metrics && !r.metrics->empty()) line += ", \"metrics\": " + figures_json(*r.metrics);
  line += "}\n";
  std::fputs(line.c_str(), metrics_);
  std::fflush(metrics_);
}

void RunRecord::eval(std::int64_t step, std::int64_t epoch, const std::vector<std::pair<std::string, double>>& figures) {
  std::string line = "{\"type\": \"eval\", \"step\": " + std::to_string(step + 1) + ", \"epoch\": " +
                     std::to_string(epoch) + ", \"figures\": " + figures_json(figures) + "}\n";
  std::fputs(line.c_str(), metrics_);
  std::fflush(metrics_);
}

void RunRecord::eval_error(std::int64_t step, std::int64_t epoch, const std::string& message) {
  std::string line = "{\"type\": \"eval_error\", \"step\": " + std::to_string(step + 1) + ", \"epoch\": " +
                     std::to_string(epoch) + ", \"error\": " + json_quote(message) + "}\n";
  std::fputs(line.c_str(), metrics_);
  std::fflush(metrics_);
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
  for (std::size_t i = 0; i + static_cast<std::size_t>(keep) < all.size(); ++i) {
    std::error_code ec;
    fs::remove(all[i], ec);
  }
}

void RunRecord::summary(const RunSummary& s, const std::string& error) {
  std::string stages = "[";
  for (std::size_t i = 0; i < s.telemetry.stages.size(); ++i) {
    const auto& st = s.telemetry.stages[i];
    stages += (i ? ", " : "") + std::string("{\"name\": ") + json_quote(st.name) + ", \"calls\": " +
              std::to_string(st.calls) + ", \"busy_s\": " + json_number(st.busy_s) + ", \"idle_s\": " +
              json_number(st.wait_s) + "}";
  }
  stages += "]";
  double final_loss = NAN;
  if (!s.losses.empty()) {
    std::size_t k = std::min<std::size_t>(10, s.losses.size());
    final_loss = 0;
    for (std::size_t i = s.losses.size() - k; i < s.losses.size(); ++i) final_loss += s.losses[i] / static_cast<double>(k);
  }
  std::string text = "{\n  \"steps\": " + std::to_string(s.steps) + ",\n  \"first_step\": " +
                     std::to_string(s.first_step) + ",\n  \"images\": " + std::to_string(s.images) +
                     ",\n  \"wall_s\": " + json_number(s.telemetry.wall_s) + ",\n  \"images_per_s\": " +
                     json_number(s.images_per_s) + ",\n  \"eval_s\": " + json_number(s.eval_s) + ",\n  \"final_loss\": " + json_number(final_loss) +
                     ",\n  \"skipped_samples\": " + std::to_string(s.skipped_samples) + ",\n  \"eval\": " +
                     figures_json(s.eval) + ",\n  \"stages\": " + stages +
                     (s.eval_error.empty() ? "" : ",\n  \"eval_error\": " + json_quote(s.eval_error)) +
                     (error.empty() ? "" : ",\n  \"error\": " + json_quote(error)) +
                     ",\n  \"" + (error.empty() ? "finished" : "failed") + "\": " + json_quote(now_iso()) + "\n}\n";
  write_file_atomically((dir_ / "summary.json").string(), text);
}

}  // namespace contra::runtime
