// Run records. The bytes are JSON text for json::parse, object_lines and
// last_object_line (what reads a peer program's output and metrics.jsonl),
// then, split at NUL bytes, the files of a run folder: run.json,
// summary.json, metrics.jsonl, checkpoints/latest and pipeline.toml, read
// by `contra report` (read_run, the grouping, the settings that differ and
// the pages written from it, over steps, epochs and time), by
// --resume (latest_checkpoint) and by a resumed run trimming its metrics
// (RunRecord::keep_steps_through).
#include "fuzz_support.hpp"

#include "graph/run_record.hpp"
#include "report.hpp"
#include "train/json_io.hpp"

#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

using namespace contra;
namespace fs = std::filesystem;
namespace json = runtime::json;

namespace {

// Reads a value member by member, as contra's readers do (copying or
// dumping it whole would recurse through a hostile nesting depth).
void walk_members(const json::Json& v) {
  (void)json::kind_of(v);
  for (const char* key : {"type", "step", "loss", "figures", "pipeline"}) {
    (void)json::number_at(v, key);
    (void)json::string_at(v, key);
    if (const json::Json* m = json::find(v, key)) (void)json::kind_of(*m);
  }
}

std::vector<std::string_view> split_at_nul(std::string_view text, std::size_t parts) {
  std::vector<std::string_view> out;
  while (out.size() + 1 < parts) {
    const std::size_t nul = text.find('\0');
    if (nul == std::string_view::npos) break;
    out.push_back(text.substr(0, nul));
    text.remove_prefix(nul + 1);
  }
  out.push_back(text);
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text = fuzz::bytes_of(data, size);

  fuzz::run_reader([&] { walk_members(json::parse(text, "input.json")); }, "input.json");
  fuzz::run_reader([&] {
    for (const json::Json& line : json::object_lines(text)) walk_members(line);
    walk_members(json::last_object_line(text));
  });

  // A fresh run folder for each input: files a part leaves out are absent.
  const fs::path dir = fuzz::work_dir() / "run";
  std::error_code ec;
  fs::remove_all(dir, ec);
  const char* files[] = {"run.json", "summary.json", "metrics.jsonl", "checkpoints/latest", "pipeline.toml"};
  const std::vector<std::string_view> parts = split_at_nul(text, std::size(files));
  for (std::size_t i = 0; i < parts.size(); ++i) fuzz::write_file("run/" + std::string(files[i]), parts[i]);

  fuzz::run_reader(
      [&] {
        // The run twice, as two groups (another override), so that settings are compared.
        std::vector<cli::RunData> runs{cli::read_run(dir), cli::read_run(dir)};
        runs[1].overrides.push_back("loss.temperature=0.1");
        const std::vector<cli::RunGroup> groups = cli::group_runs(std::move(runs));
        (void)cli::differing_settings(groups);
        (void)cli::markdown_table(groups);
        (void)cli::html_report(groups, "fuzz");
        for (const char* x : {"epoch", "time"}) {
          cli::ReportOptions options;
          options.x = x;
          options.smooth = 3;
          options.log_loss = true;
          (void)cli::html_report(groups, "fuzz", options);
        }
      },
      dir.string());
  fuzz::run_reader([&] { (void)runtime::RunRecord::latest_checkpoint(dir); }, dir.string());
  fuzz::run_reader([&] {
    // Resuming keeps the records through the checkpoint's step.
    runtime::RunRecord record(dir, runtime::PipelineSpec{}, {}, /*resuming=*/true);
    record.keep_steps_through(2);
  });
  return 0;
}
