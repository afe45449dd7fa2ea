#include "report.hpp"

#include "config/pipeline_spec.hpp"
#include "train/json_io.hpp"

#include <contra/errors.hpp>

#include <CLI/CLI.hpp>
#include <toml++/toml.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <sstream>

namespace contra::cli {
namespace fs = std::filesystem;
namespace json = runtime::json;
using json::Json;

// ---------------------------------------------------------------------------
// Reading run folders

const Curve* RunData::step_curve(const std::string& name) const {
  for (const auto& [k, c] : step_curves)
    if (k == name) return &c;
  return nullptr;
}

const Curve* RunData::eval_curve(const std::string& name) const {
  for (const auto& [k, c] : eval_curves)
    if (k == name) return &c;
  return nullptr;
}

namespace {

std::string read_text(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  if (!f) throw DataError(p.string() + ": cannot be read");
  return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

// Points of one figure, by step, before sorting.
struct Points {
  std::vector<std::pair<double, double>> p;  // (step, value)
};

Curve to_curve(Points& pts) {
  // Sort by step; when a step repeats (a resumed run re-does the steps after
  // its checkpoint), the line written last wins.
  std::stable_sort(pts.p.begin(), pts.p.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  Curve c;
  for (std::size_t i = 0; i < pts.p.size(); ++i) {
    if (i + 1 < pts.p.size() && pts.p[i + 1].first == pts.p[i].first) continue;
    c.step.push_back(pts.p[i].first);
    c.value.push_back(pts.p[i].second);
  }
  return c;
}

void add_point(std::vector<std::pair<std::string, Points>>& into, std::map<std::string, std::size_t>& index,
               const std::string& name, double step, double value) {
  auto it = index.find(name);
  if (it == index.end()) {
    it = index.emplace(name, into.size()).first;
    into.emplace_back(name, Points{});
  }
  into[it->second].second.p.emplace_back(step, value);
}

// `first_step`: the number metrics.jsonl gives the first step (1; 0 in run
// folders written before run.json said "steps_from").
void read_metrics(const fs::path& file, RunData& r, double first_step) {
  std::string text = read_text(file);
  std::vector<std::pair<std::string, Points>> steps, evals;
  std::map<std::string, std::size_t> step_index, eval_index;
  std::size_t pos = 0;
  int line_no = 0;
  const std::string name = file.string();
  while (pos < text.size()) {
    std::size_t end = text.find('\n', pos);
    bool last_unterminated = end == std::string::npos;
    if (last_unterminated) end = text.size();
    std::string_view line(text.data() + pos, end - pos);
    pos = end + 1;
    ++line_no;
    if (line.find_first_not_of(" \t\r") == std::string_view::npos) continue;
    Json v;
    try {
      v = json::parse(line, name, line_no);
    } catch (const DataError& e) {
      // A run killed while writing leaves a partial last line: skip it.
      if (last_unterminated) {
        std::fprintf(stderr, "warning: %s:%d: skipped an incomplete last line\n", name.c_str(), line_no);
        break;
      }
      throw;
    }
    if (!v.is_object())
      throw DataError(name + ":" + std::to_string(line_no) + ": error: expected a JSON object, found " +
                      json::kind_of(v));
    const std::string type = json::string_at(v, "type");
    double step = json::number_at(v, "step");
    if (!std::isfinite(step)) continue;
    step += 1 - first_step;  // the number of steps done, as the CLI prints it
    if (type == "step") {
      if (const Json* x = json::find(v, "epoch"); x && x->is_number())
        add_point(steps, step_index, "\x01epoch", step, x->get<double>());
      if (const Json* x = json::find(v, "time_s"); x && x->is_number())
        add_point(steps, step_index, "\x01time", step, x->get<double>());
      for (const char* k : {"loss", "lr"})
        if (const Json* x = json::find(v, k); x && x->is_number())
          add_point(steps, step_index, k, step, x->get<double>());
      if (const Json* m = json::find(v, "metrics"); m && m->is_object())
        for (const auto& [k, x] : m->items())
          if (x.is_number()) add_point(steps, step_index, k, step, x.get<double>());
    } else if (type == "eval") {
      if (const Json* f = json::find(v, "figures"); f && f->is_object())
        for (const auto& [k, x] : f->items())
          if (x.is_number()) add_point(evals, eval_index, k, step, x.get<double>());
    }
  }
  for (auto& [k, p] : steps) {
    // The epoch and time of each step are axes, not figures.
    if (k == "\x01epoch") r.epoch_at = to_curve(p);
    else if (k == "\x01time") r.time_at = to_curve(p);
    else r.step_curves.emplace_back(k, to_curve(p));
  }
  for (auto& [k, p] : evals) r.eval_curves.emplace_back(k, to_curve(p));
}

// A figure read as an integer, when it is one an int64_t holds (NaN, 1e300
// and the like read as missing, as a member of the wrong type does).
std::optional<std::int64_t> integer_of(double v) {
  // 2^62 bounds what a seed or step count can be, far inside int64_t: the
  // cast below never sees a value it cannot hold, whatever the optimiser
  // makes of the comparison.
  if (!std::isfinite(v) || std::fabs(v) > 4.6e18) return std::nullopt;
  return static_cast<std::int64_t>(v);
}

std::string plugin_names(const fs::path& pipeline_toml) {
  std::error_code ec;
  if (!fs::exists(pipeline_toml, ec)) return "";
  Diagnostics ignored;
  std::optional<runtime::PipelineSpec> spec;
  try {
    spec = runtime::read_pipeline(pipeline_toml.string(), {}, ignored);
  } catch (const std::exception&) {
    return "";
  }
  if (!spec) return "";
  std::string o;
  auto add = [&](const char* what, const runtime::PluginSpec& p) {
    if (!p.name.empty()) o += (o.empty() ? "" : ", ") + std::string(what) + " " + p.name;
  };
  add("source", spec->source);
  add("encoder", spec->encoder);
  add("head", spec->head);
  add("memory", spec->memory);
  add("miner", spec->miner);
  add("loss", spec->loss);
  add("optimizer", spec->optimizer);
  for (const runtime::TowerSpec& t : spec->towers) {
    add(("tower " + t.name + " tokenizer").c_str(), t.tokenizer);
    add(("tower " + t.name + " encoder").c_str(), t.encoder);
    add(("tower " + t.name + " head").c_str(), t.head);
  }
  return o;
}

// pipeline.toml as dotted keys and TOML values, in file order; nothing when
// it cannot be read (the report still reads what the run recorded).
std::vector<std::pair<std::string, std::string>> resolved_settings(const fs::path& pipeline_toml) {
  std::vector<std::pair<std::string, std::string>> out;
  std::error_code ec;
  if (!fs::exists(pipeline_toml, ec)) return out;
  toml::table root;
  try {
    root = toml::parse_file(pipeline_toml.string());
  } catch (const std::exception&) {
    return out;
  }
  // Iterative: a hostile file nests tables deeper than a stack should go.
  std::vector<std::pair<const toml::node*, std::string>> todo{{&root, ""}};
  while (!todo.empty()) {
    auto [node, key] = todo.back();
    todo.pop_back();
    if (const toml::table* t = node->as_table()) {
      std::vector<std::pair<const toml::node*, std::string>> children;
      for (auto&& [k, v] : *t) children.emplace_back(&v, key.empty() ? std::string(k.str()) : key + "." + std::string(k.str()));
      todo.insert(todo.end(), children.rbegin(), children.rend());
    } else if (const toml::array* a = node->as_array(); a && a->is_array_of_tables()) {
      for (std::size_t i = a->size(); i-- > 0;) todo.emplace_back(a->get(i), key + "[" + std::to_string(i) + "]");
    } else {
      std::ostringstream text;
      node->visit([&](auto&& value) { text << value; });
      out.emplace_back(key, text.str());
    }
  }
  return out;
}

}  // namespace

RunData read_run(const fs::path& dir) {
  RunData r;
  r.dir = dir;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) throw DataError(dir.string() + ": not a folder");
  fs::path run_json = dir / "run.json";
  if (!fs::exists(run_json, ec)) throw DataError(dir.string() + ": not a run folder (it has no run.json)");
  const Json run = json::parse_file(run_json.string());
  if (!run.is_object())
    throw DataError(run_json.string() + ":1:1: error: expected a JSON object, found " + json::kind_of(run));
  r.pipeline = json::string_at(run, "pipeline");
  if (r.pipeline.empty()) r.pipeline = fs::path(json::string_at(run, "file")).stem().string();
  if (r.pipeline.empty()) r.pipeline = dir.filename().string();
  if (const Json* o = json::find(run, "overrides"); o && o->is_array())
    for (const auto& x : *o)
      if (x.is_string()) r.overrides.push_back(x.get<std::string>());
  if (auto s = integer_of(json::number_at(run, "seed"))) r.seed = *s;
  r.git_revision = json::string_at(run, "git_revision");
  r.plugins = plugin_names(dir / "pipeline.toml");
  r.resolved = resolved_settings(dir / "pipeline.toml");

  fs::path summary = dir / "summary.json";
  if (fs::exists(summary, ec)) {
    const Json s = json::parse_file(summary.string());
    if (!s.is_object())
      throw DataError(summary.string() + ":1:1: error: expected a JSON object, found " + json::kind_of(s));
    // A run that failed records its error there; it does not count as finished.
    r.error = json::string_at(s, "error");
    r.finished = r.error.empty();
    if (auto v = integer_of(json::number_at(s, "steps"))) r.steps = *v;
    r.final_loss = json::number_at(s, "final_loss");
    r.images_per_s = json::number_at(s, "images_per_s");
    r.wall_s = json::number_at(s, "wall_s");
    // null (how NaN is written) or anything but a number reads as NaN.
    if (const Json* e = json::find(s, "eval"); e && e->is_object())
      for (const auto& [k, x] : e->items()) r.eval.emplace_back(k, x.is_number() ? x.get<double>() : NAN);
    if (const Json* st = json::find(s, "stages"); st && st->is_array())
      for (const auto& x : *st) {
        if (!x.is_object()) continue;
        r.stages.push_back({json::string_at(x, "name"), json::number_at(x, "calls"), json::number_at(x, "busy_s"),
                            json::number_at(x, "idle_s")});
      }
  }
  fs::path metrics = dir / "metrics.jsonl";
  const double steps_from = json::number_at(run, "steps_from");
  if (fs::exists(metrics, ec)) read_metrics(metrics, r, std::isfinite(steps_from) ? steps_from : 0.0);
  return r;
}

std::vector<fs::path> expand_run_dirs(const std::vector<std::string>& args) {
  std::vector<fs::path> out;
  for (const auto& a : args) {
    fs::path p(a);
    std::error_code ec;
    if (fs::exists(p / "run.json", ec)) {
      out.push_back(p);
      continue;
    }
    if (!fs::is_directory(p, ec)) throw DataError(a + ": no such folder");
    std::vector<fs::path> found;
    if (fs::exists(p / "sweep.json", ec)) {
      const Json sweep = json::parse_file((p / "sweep.json").string());
      if (const Json* runs = json::find(sweep, "runs"); runs && runs->is_array())
        for (const auto& r : *runs) {
          const std::string d = json::string_at(r, "dir");
          if (!d.empty() && fs::exists(p / d / "run.json", ec)) found.push_back(p / d);
        }
    } else {
      for (fs::directory_iterator it(p, ec), end; !ec && it != end; it.increment(ec))
        if (it->is_directory() && fs::exists(it->path() / "run.json")) found.push_back(it->path());
      std::sort(found.begin(), found.end());
    }
    if (found.empty()) throw DataError(a + ": neither a run folder (no run.json) nor a folder of runs");
    out.insert(out.end(), found.begin(), found.end());
  }
  return out;
}

// ---------------------------------------------------------------------------
// Grouping and statistics

std::string RunGroup::label() const {
  std::string o = pipeline;
  for (const auto& s : settings) o += " " + s;
  return o;
}

namespace {
// A value as a legend shows it: a path cut to its file name, quotes gone.
std::string short_value(std::string v) {
  if (v.size() >= 2 && v.front() == '"' && v.back() == '"') v = v.substr(1, v.size() - 2);
  if (const auto slash = v.rfind('/'); slash != std::string::npos && slash + 1 < v.size()) v = v.substr(slash + 1);
  return v.size() > 24 ? v.substr(0, 23) + "…" : v;
}

void name_groups(std::vector<RunGroup>& groups) {
  // Without pipeline.toml (older records), what differs is the overrides.
  const std::vector<DifferingSetting> differ = differing_settings(groups);
  bool pipelines_differ = false;
  for (const auto& g : groups) pipelines_differ = pipelines_differ || g.pipeline != groups.front().pipeline;
  for (std::size_t i = 0; i < groups.size(); ++i) {
    RunGroup& g = groups[i];
    std::string name = pipelines_differ ? g.pipeline : "";
    if (!differ.empty()) {
      for (const auto& d : differ) {
        if (d.key == "pipeline.name") continue;
        name += (name.empty() ? "" : ", ") + d.key + "=" + short_value(d.values[i]);
      }
    } else {
      for (const auto& s : g.settings) {
        const std::size_t eq = s.find('=');
        name += (name.empty() ? "" : ", ") +
                (eq == std::string::npos ? s : s.substr(0, eq + 1) + short_value(s.substr(eq + 1)));
      }
    }
    if (name.empty()) name = g.pipeline;
    if (name.size() > 48) name = "G" + std::to_string(i + 1);
    g.name = name;
  }
}

bool defines_group(const std::string& key) {
  return key != "pipeline.seed" && key.rfind("runtime.", 0) != 0 && key.rfind("record.", 0) != 0;
}
}  // namespace

std::vector<RunGroup> group_runs(std::vector<RunData> runs) {
  std::vector<RunGroup> groups;
  std::map<std::string, std::size_t> by_key;
  for (auto& r : runs) {
    // The settings that define the group: last value per key wins, as with --set.
    std::vector<std::pair<std::string, std::string>> kv;
    for (const auto& o : r.overrides) {
      auto eq = o.find('=');
      std::string k = o.substr(0, eq), v = eq == std::string::npos ? "" : o.substr(eq + 1);
      if (!defines_group(k)) continue;
      auto it = std::find_if(kv.begin(), kv.end(), [&](const auto& p) { return p.first == k; });
      if (it != kv.end()) kv.erase(it);
      kv.emplace_back(k, v);
    }
    auto sorted = kv;
    std::sort(sorted.begin(), sorted.end());
    std::string key = r.pipeline;
    for (const auto& [k, v] : sorted) key += '\n' + k + '=' + v;
    auto it = by_key.find(key);
    if (it == by_key.end()) {
      it = by_key.emplace(key, groups.size()).first;
      RunGroup g;
      g.pipeline = r.pipeline;
      for (const auto& [k, v] : kv) g.settings.push_back(k + "=" + v);
      groups.push_back(std::move(g));
    }
    groups[it->second].runs.push_back(std::move(r));
  }
  name_groups(groups);
  return groups;
}

double x_of(const RunData& run, double step, const std::string& x) {
  if (x == "step") return step;
  const Curve& at = x == "epoch" ? run.epoch_at : run.time_at;
  if (at.step.empty()) return NAN;
  if (x == "epoch") {
    // Steps of the first epoch: those recorded with the first epoch number.
    double per_epoch = 0;
    for (std::size_t i = 0; i < at.step.size() && at.value[i] == at.value.front(); ++i) ++per_epoch;
    if (per_epoch == at.step.size()) per_epoch = at.step.back();  // one epoch so far: its steps
    return per_epoch > 0 ? step / per_epoch : NAN;
  }
  // Time: linear between the recorded steps, flat beyond them.
  auto it = std::lower_bound(at.step.begin(), at.step.end(), step);
  if (it == at.step.begin()) return at.value.front();
  if (it == at.step.end()) return at.value.back();
  const std::size_t i = static_cast<std::size_t>(it - at.step.begin());
  const double s0 = at.step[i - 1], s1 = at.step[i];
  return at.value[i - 1] + (at.value[i] - at.value[i - 1]) * (step - s0) / (s1 - s0);
}

bool is_bookkeeping_figure(const std::string& name) {
  const std::string last = name.substr(name.rfind('.') + 1);
  return last == "iterations" || last == "classes" || (last == "loss" && name.rfind("linear_probe.", 0) == 0);
}

std::vector<DifferingSetting> differing_settings(const std::vector<RunGroup>& groups) {
  std::vector<DifferingSetting> out;
  if (groups.size() < 2) return out;
  auto describes_training = [](const std::string& k) {
    for (const char* prefix : {"runtime.", "record.", "plugins."})
      if (k.rfind(prefix, 0) == 0) return false;
    return k != "pipeline.seed" && k != "pipeline.name" && k != "train.log_every";
  };
  std::vector<std::string> keys;  // in the order the groups' files give them
  std::set<std::string> seen;
  for (const auto& g : groups)
    for (const auto& [k, v] : g.runs.front().resolved)
      if (describes_training(k) && seen.insert(k).second) keys.push_back(k);
  for (const auto& k : keys) {
    DifferingSetting d{k, {}};
    for (const auto& g : groups) {
      const auto& r = g.runs.front().resolved;
      auto it = std::find_if(r.begin(), r.end(), [&](const auto& kv) { return kv.first == k; });
      d.values.push_back(it == r.end() ? "—" : it->second);
    }
    if (std::any_of(d.values.begin(), d.values.end(), [&](const std::string& v) { return v != d.values.front(); }))
      out.push_back(std::move(d));
  }
  return out;
}

Stat stat_of(const std::vector<double>& values) {
  Stat s;
  double sum = 0;
  for (double v : values)
    if (std::isfinite(v)) {
      sum += v;
      ++s.n;
    }
  if (s.n == 0) return s;
  s.mean = sum / static_cast<double>(s.n);
  if (s.n >= 2) {
    double ss = 0;
    for (double v : values)
      if (std::isfinite(v)) ss += (v - s.mean) * (v - s.mean);
    s.std = std::sqrt(ss / static_cast<double>(s.n - 1));
  }
  return s;
}

std::string format_stat(const Stat& s, int decimals) {
  if (s.n == 0) return "—";
  char buf[96];
  if (s.n == 1) std::snprintf(buf, sizeof buf, "%.*f", decimals, s.mean);
  else std::snprintf(buf, sizeof buf, "%.*f ± %.*f", decimals, s.mean, decimals, s.std);
  return buf;
}

std::vector<std::string> eval_figure_names(const std::vector<RunGroup>& groups) {
  std::vector<std::string> names;
  for (const auto& g : groups)
    for (const auto& r : g.runs)
      for (const auto& [k, v] : r.eval)
        if (std::find(names.begin(), names.end(), k) == names.end()) names.push_back(k);
  return names;
}

namespace {

std::size_t finished_count(const RunGroup& g) {
  return static_cast<std::size_t>(std::count_if(g.runs.begin(), g.runs.end(), [](const RunData& r) { return r.finished; }));
}

std::string runs_cell(const RunGroup& g) {
  std::size_t f = finished_count(g);
  return f == g.runs.size() ? std::to_string(f) : std::to_string(f) + " of " + std::to_string(g.runs.size());
}

Stat final_loss_stat(const RunGroup& g) {
  std::vector<double> v;
  for (const auto& r : g.runs)
    if (r.finished) v.push_back(r.final_loss);
  return stat_of(v);
}

Stat eval_stat(const RunGroup& g, const std::string& name) {
  std::vector<double> v;
  for (const auto& r : g.runs)
    if (r.finished)
      for (const auto& [k, x] : r.eval)
        if (k == name) v.push_back(x);
  return stat_of(v);
}

// A figure present in fewer of the group's finished runs than the others says so.
std::string stat_cell(const Stat& s, std::size_t finished, int decimals = 4) {
  std::string c = format_stat(s, decimals);
  if (s.n > 0 && s.n < finished) c += " (n=" + std::to_string(s.n) + ")";
  return c;
}

std::string md_escape(const std::string& s) {
  std::string o;
  for (char c : s) o += c == '|' ? std::string("\\|") : std::string(1, c);
  return o;
}

}  // namespace

std::string markdown_table(const std::vector<RunGroup>& groups) {
  std::vector<std::string> figs = eval_figure_names(groups);  // results only, as the page's table
  std::erase_if(figs, [](const std::string& f) { return is_bookkeeping_figure(f); });
  std::string o = "| group | runs | final loss |";
  for (const auto& f : figs) o += " " + md_escape(f) + " |";
  o += "\n|---|---:|---:|";
  for (std::size_t i = 0; i < figs.size(); ++i) o += "---:|";
  o += "\n";
  for (const auto& g : groups) {
    std::size_t fin = finished_count(g);
    o += "| " + md_escape(g.label()) + " | " + runs_cell(g) + " | " + stat_cell(final_loss_stat(g), fin) + " |";
    for (const auto& f : figs) o += " " + stat_cell(eval_stat(g, f), fin) + " |";
    o += "\n";
  }
  return o;
}

Band average_curves(const std::vector<const Curve*>& curves, std::size_t max_points) {
  struct Acc {
    double sum = 0, sumsq = 0;
    std::size_t n = 0;
  };
  std::map<double, Acc> at;
  // Two passes (mean, then squared deviations) keep the std exact enough.
  for (const Curve* c : curves)
    if (c)
      for (std::size_t i = 0; i < c->step.size(); ++i)
        if (std::isfinite(c->value[i])) {
          Acc& a = at[c->step[i]];
          a.sum += c->value[i];
          ++a.n;
        }
  for (const Curve* c : curves)
    if (c)
      for (std::size_t i = 0; i < c->step.size(); ++i)
        if (std::isfinite(c->value[i])) {
          Acc& a = at[c->step[i]];
          double d = c->value[i] - a.sum / static_cast<double>(a.n);
          a.sumsq += d * d;
        }
  Band full;
  for (const auto& [s, a] : at) {
    full.step.push_back(s);
    full.mean.push_back(a.sum / static_cast<double>(a.n));
    full.std.push_back(a.n >= 2 ? std::sqrt(a.sumsq / static_cast<double>(a.n - 1)) : 0.0);
  }
  if (max_points == 0 || full.step.size() <= max_points) return full;
  // Equal buckets of consecutive steps, each drawn at its mean step.
  Band out;
  const std::size_t n = full.step.size();
  for (std::size_t b = 0; b < max_points; ++b) {
    std::size_t lo = b * n / max_points, hi = (b + 1) * n / max_points;
    if (hi <= lo) continue;
    double s = 0, m = 0, d = 0;
    for (std::size_t i = lo; i < hi; ++i) {
      s += full.step[i];
      m += full.mean[i];
      d += full.std[i];
    }
    double k = static_cast<double>(hi - lo);
    out.step.push_back(s / k);
    out.mean.push_back(m / k);
    out.std.push_back(d / k);
  }
  return out;
}

// ---------------------------------------------------------------------------
// HTML and SVG

namespace {

const char* palette[] = {"#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f",
                         "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"};
const char* dashes[] = {"", "6 3", "2 2", "8 3 2 3"};

std::string color_of(std::size_t g) { return palette[g % 10]; }
std::string dash_of(std::size_t g) { return dashes[(g / 10) % 4]; }

std::string esc(const std::string& s) {
  std::string o;
  for (char c : s) {
    switch (c) {
      case '&': o += "&amp;"; break;
      case '<': o += "&lt;"; break;
      case '>': o += "&gt;"; break;
      case '"': o += "&quot;"; break;
      case '\'': o += "&#39;"; break;
      default: o += c;
    }
  }
  return o;
}

std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

std::string num(double v) { return fmt("%.1f", v); }

// Ticks at 1, 2 or 5 times a power of ten covering [lo, hi].
struct Ticks {
  double lo, hi, step;
  std::vector<double> at;
  int decimals;
};
Ticks nice_ticks(double lo, double hi, int target, bool extend) {
  if (!(hi > lo)) {
    double pad = lo == 0 ? 1.0 : std::fabs(lo) * 0.1;
    lo -= pad;
    hi += pad;
  }
  double raw = (hi - lo) / target;
  double mag = std::pow(10.0, std::floor(std::log10(raw)));
  double step = mag;
  for (double m : {1.0, 2.0, 5.0, 10.0})
    if (m * mag >= raw) {
      step = m * mag;
      break;
    }
  Ticks t;
  t.step = step;
  if (extend) {
    lo = std::floor(lo / step + 1e-9) * step;
    hi = std::ceil(hi / step - 1e-9) * step;
  }
  t.lo = lo;
  t.hi = hi;
  // Counted, not accumulated: adding the step to figures far from 0 next to
  // their spread (a diverged loss near 1e16 changing by 2) leaves them
  // unchanged, and a spread beyond a double's range has no finite step.
  const double first = std::ceil(lo / step - 1e-9) * step;
  const double count = std::floor((hi - first) / step + 1e-9) + 1;
  if (std::isfinite(first) && count >= 1 && count <= 100)
    for (int i = 0; i < static_cast<int>(count); ++i) {
      const double v = first + i * step;
      if (t.at.empty() || v != t.at.back()) t.at.push_back(std::fabs(v) < step * 1e-9 ? 0.0 : v);
    }
  const double decimals = -std::floor(std::log10(step) + 1e-9);
  t.decimals = std::isfinite(decimals) ? static_cast<int>(std::clamp(decimals, 0.0, 20.0)) : 0;
  return t;
}

std::string tick_label(double v, int decimals, bool general = false) {
  char buf[64];
  if (general || (decimals == 0 && std::fabs(v) >= 1e6)) std::snprintf(buf, sizeof buf, "%.3g", v);
  else std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}

// Ticks of a log10 axis over [lo, hi] (log10 values): at 1, 2 and 5 times
// powers of ten, or only at powers of ten over a wide range.
Ticks log_ticks(double lo, double hi) {
  if (!(hi > lo)) lo -= 0.5, hi += 0.5;
  Ticks t;
  t.lo = std::floor(lo * 10) / 10;
  t.hi = std::ceil(hi * 10) / 10;
  t.step = 1;
  t.decimals = 0;
  const bool wide = hi - lo > 3;
  for (double e = std::floor(lo); e <= std::ceil(hi) && t.at.size() < 40; ++e)
    for (double m : {1.0, 2.0, 5.0}) {
      if (wide && m != 1.0) continue;
      const double v = e + std::log10(m);
      if (v >= t.lo - 1e-9 && v <= t.hi + 1e-9) t.at.push_back(v);
    }
  return t;
}

struct Series {
  std::size_t group;
  std::string label;
  Band band;
};

const double W = 640, H = 280, ML = 64, MR = 24, MT = 12, MB = 42;

// A line chart: mean per step, ±1 std band, markers when there are few points.
std::string line_chart(const std::string& title, const std::string& y_label, std::vector<Series> series,
                       bool log_y = false, const std::string& x_label = "step") {
  // A logarithmic axis draws log10 of the values; it needs them positive
  // (the band's lower edge is cut at a thousandth of the mean).
  if (log_y)
    for (const auto& s : series)
      for (double m : s.band.mean)
        log_y = log_y && m > 0;
  if (log_y)
    for (auto& s : series)
      for (std::size_t i = 0; i < s.band.mean.size(); ++i) {
        const double m = s.band.mean[i], lo = std::max(m - s.band.std[i], m * 1e-3), hi = m + s.band.std[i];
        s.band.mean[i] = std::log10(m);
        s.band.std[i] = std::max(std::log10(hi) - std::log10(m), std::log10(m) - std::log10(lo));
      }
  double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
  std::size_t points = 0;
  for (const auto& s : series)
    for (std::size_t i = 0; i < s.band.step.size(); ++i) {
      x0 = std::min(x0, s.band.step[i]);
      x1 = std::max(x1, s.band.step[i]);
      y0 = std::min(y0, s.band.mean[i] - s.band.std[i]);
      y1 = std::max(y1, s.band.mean[i] + s.band.std[i]);
      ++points;
    }
  if (points == 0) return "";
  Ticks ty = log_y ? log_ticks(y0, y1) : nice_ticks(y0, y1, 5, true);
  auto y_text = [&](double y) { return log_y ? tick_label(std::pow(10.0, y), 0, true) : tick_label(y, ty.decimals); };
  Ticks tx = nice_ticks(std::min(0.0, x0), x1, 6, false);
  if (!(tx.hi > tx.lo)) tx = nice_ticks(x0 - 1, x1 + 1, 6, false);
  const double pw = W - ML - MR, ph = H - MT - MB;
  auto px = [&](double x) { return ML + (x - tx.lo) / (tx.hi - tx.lo) * pw; };
  auto py = [&](double y) { return MT + (1 - (y - ty.lo) / (ty.hi - ty.lo)) * ph; };

  std::string o = "<figure class=\"chart\"><figcaption>" + esc(title) + "</figcaption>\n";
  o += "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 " + num(W) + " " + num(H) +
       "\" role=\"img\" aria-label=\"" + esc(title) + "\">\n";
  // Grid and axes.
  for (double y : ty.at)
    o += "<line class=\"grid\" x1=\"" + num(ML) + "\" x2=\"" + num(W - MR) + "\" y1=\"" + num(py(y)) + "\" y2=\"" +
         num(py(y)) + "\"/><text class=\"tick\" x=\"" + num(ML - 6) + "\" y=\"" + num(py(y) + 4) +
         "\" text-anchor=\"end\">" + y_text(y) + "</text>\n";
  for (double x : tx.at)
    o += "<line class=\"grid\" x1=\"" + num(px(x)) + "\" x2=\"" + num(px(x)) + "\" y1=\"" + num(MT) + "\" y2=\"" +
         num(H - MB) + "\"/><text class=\"tick\" x=\"" + num(px(x)) + "\" y=\"" + num(H - MB + 16) +
         "\" text-anchor=\"middle\">" + tick_label(x, tx.decimals) + "</text>\n";
  o += "<rect class=\"frame\" x=\"" + num(ML) + "\" y=\"" + num(MT) + "\" width=\"" + num(pw) + "\" height=\"" +
       num(ph) + "\"/>\n";
  o += "<text class=\"axis\" x=\"" + num(ML + pw / 2) + "\" y=\"" + num(H - 6) + "\" text-anchor=\"middle\">" + esc(x_label) + "</text>\n";
  o += "<text class=\"axis\" transform=\"translate(14 " + num(MT + ph / 2) + ") rotate(-90)\" text-anchor=\"middle\">" +
       esc(y_label + (log_y ? " (log scale)" : "")) + "</text>\n";
  for (const auto& s : series) {
    const Band& b = s.band;
    if (b.step.empty()) continue;
    std::string c = color_of(s.group);
    bool has_band = std::any_of(b.std.begin(), b.std.end(), [](double d) { return d > 0; });
    if (has_band) {
      std::string pts;
      for (std::size_t i = 0; i < b.step.size(); ++i) pts += num(px(b.step[i])) + "," + num(py(b.mean[i] + b.std[i])) + " ";
      for (std::size_t i = b.step.size(); i-- > 0;) pts += num(px(b.step[i])) + "," + num(py(b.mean[i] - b.std[i])) + " ";
      pts.pop_back();
      o += "<polygon class=\"band\" fill=\"" + c + "\" points=\"" + pts + "\"/>\n";
    }
    std::string pts;
    for (std::size_t i = 0; i < b.step.size(); ++i) pts += num(px(b.step[i])) + "," + num(py(b.mean[i])) + " ";
    pts.pop_back();
    std::string dash = dash_of(s.group);
    o += "<polyline class=\"line\" stroke=\"" + c + "\"" + (dash.empty() ? "" : " stroke-dasharray=\"" + dash + "\"") +
         " points=\"" + pts + "\"><title>" + esc(s.label) + ": last " +
         esc(format_stat(Stat{b.mean.back(), b.std.back(), b.std.back() > 0 ? 2u : 1u})) + " at step " +
         tick_label(b.step.back(), 0) + "</title></polyline>\n";
    if (b.step.size() <= 40)
      for (std::size_t i = 0; i < b.step.size(); ++i)
        o += "<circle cx=\"" + num(px(b.step[i])) + "\" cy=\"" + num(py(b.mean[i])) + "\" r=\"3\" fill=\"" + c +
             "\"><title>" + esc(s.label) + ", step " + tick_label(b.step[i], 0) + ": " +
             esc(format_stat(Stat{b.mean[i], b.std[i], b.std[i] > 0 ? 2u : 1u})) + "</title></circle>\n";
  }
  o += "</svg>\n<div class=\"legend\">";
  for (const auto& s : series)
    if (!s.band.step.empty())
      o += "<span><i style=\"background:" + color_of(s.group) + "\"></i>" + esc(s.label) + "</span>";
  o += "</div></figure>\n";
  return o;
}

// Horizontal bars: one row per stage, one bar per group (mean over its runs).
struct BarRow {
  std::string name;
  std::vector<Stat> per_group;
};
std::string bar_chart(const std::string& title, const std::vector<BarRow>& rows, const std::vector<RunGroup>& groups,
                      const std::string& unit = "seconds") {
  double vmax = 0;
  for (const auto& r : rows)
    for (const auto& s : r.per_group)
      if (s.n) vmax = std::max(vmax, s.mean + (std::isfinite(s.std) ? s.std : 0));
  if (rows.empty()) return "";
  const double bar = 12, gap = 14, left = 110, right = 24, top = 8, bottom = 36;
  const double row_h = bar * static_cast<double>(groups.size()) + gap;
  const double height = top + row_h * static_cast<double>(rows.size()) + bottom;
  Ticks t = nice_ticks(0, vmax > 0 ? vmax : 1, 6, true);
  const double pw = W - left - right;
  auto px = [&](double v) { return left + v / t.hi * pw; };
  std::string o = "<figure class=\"chart\"><figcaption>" + esc(title) + "</figcaption>\n";
  o += "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 " + num(W) + " " + num(height) +
       "\" role=\"img\" aria-label=\"" + esc(title) + "\">\n";
  for (double v : t.at)
    o += "<line class=\"grid\" x1=\"" + num(px(v)) + "\" x2=\"" + num(px(v)) + "\" y1=\"" + num(top) + "\" y2=\"" +
         num(height - bottom) + "\"/><text class=\"tick\" x=\"" + num(px(v)) + "\" y=\"" + num(height - bottom + 16) +
         "\" text-anchor=\"middle\">" + tick_label(v, t.decimals) + "</text>\n";
  o += "<text class=\"axis\" x=\"" + num(left + pw / 2) + "\" y=\"" + num(height - 4) +
       "\" text-anchor=\"middle\">" + esc(unit) + "</text>\n";
  for (std::size_t r = 0; r < rows.size(); ++r) {
    double y = top + row_h * static_cast<double>(r) + gap / 2;
    o += "<text class=\"tick\" x=\"" + num(left - 8) + "\" y=\"" + num(y + row_h / 2 - gap / 2 + 4) +
         "\" text-anchor=\"end\">" + esc(rows[r].name) + "</text>\n";
    for (std::size_t g = 0; g < groups.size(); ++g) {
      const Stat& s = rows[r].per_group[g];
      if (!s.n) continue;
      double yb = y + bar * static_cast<double>(g);
      o += "<rect x=\"" + num(left) + "\" y=\"" + num(yb + 1) + "\" width=\"" + num(std::max(0.5, px(s.mean) - left)) +
           "\" height=\"" + num(bar - 2) + "\" fill=\"" + color_of(g) + "\"><title>" + esc(groups[g].name) + ", " +
           esc(rows[r].name) + ": " + esc(format_stat(s, 3)) + (unit == "seconds" ? " s" : "") + "</title></rect>\n";
      if (s.n >= 2 && s.std > 0)
        o += "<line class=\"err\" x1=\"" + num(px(s.mean - s.std)) + "\" x2=\"" + num(px(s.mean + s.std)) + "\" y1=\"" +
             num(yb + bar / 2) + "\" y2=\"" + num(yb + bar / 2) + "\"/>\n";
    }
  }
  o += "<line class=\"axisline\" x1=\"" + num(left) + "\" x2=\"" + num(left) + "\" y1=\"" + num(top) + "\" y2=\"" +
       num(height - bottom) + "\"/>\n</svg>\n<div class=\"legend\">";
  for (std::size_t g = 0; g < groups.size(); ++g)
    o += "<span><i style=\"background:" + color_of(g) + "\"></i>" + esc(groups[g].name) + "</span>";
  o += "</div></figure>\n";
  return o;
}

// A centred moving average over `window` points of the mean and std.
Band smoothed(const Band& b, int window) {
  if (window <= 1 || b.step.size() < 3) return b;
  Band out = b;
  const std::ptrdiff_t half = window / 2, n = static_cast<std::ptrdiff_t>(b.step.size());
  for (std::ptrdiff_t i = 0; i < n; ++i) {
    const std::ptrdiff_t lo = std::max<std::ptrdiff_t>(0, i - half), hi = std::min(n - 1, i + half);
    double m = 0, d = 0;
    for (std::ptrdiff_t j = lo; j <= hi; ++j) m += b.mean[j], d += b.std[j];
    out.mean[i] = m / static_cast<double>(hi - lo + 1);
    out.std[i] = d / static_cast<double>(hi - lo + 1);
  }
  return out;
}

std::vector<Series> series_for(const std::vector<RunGroup>& groups, const std::string& name, bool eval,
                               int smooth, const std::string& x = "step") {
  std::vector<Series> out;
  for (std::size_t g = 0; g < groups.size(); ++g) {
    std::vector<const Curve*> curves;
    for (const auto& r : groups[g].runs)
      if (const Curve* c = eval ? r.eval_curve(name) : r.step_curve(name)) curves.push_back(c);
    if (curves.empty()) continue;
    Band band = smoothed(average_curves(curves, 500), smooth);
    // Another axis: each point's step mapped through the group's first run
    // that can say (its seeds train the same steps per epoch, at about the same pace).
    if (x != "step") {
      const RunData* by = nullptr;
      for (const auto& r : groups[g].runs)
        if (!by && std::isfinite(x_of(r, 1, x))) by = &r;
      if (!by) continue;
      for (double& s : band.step) s = x_of(*by, s, x);
    }
    out.push_back({g, groups[g].name, std::move(band)});
  }
  return out;
}

const char* css = R"(
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #222; margin: 24px auto; max-width: 1360px; padding: 0 16px; }
h1 { font-size: 22px; margin-bottom: 4px; }
h2 { font-size: 18px; margin-top: 32px; border-bottom: 1px solid #ddd; padding-bottom: 4px; }
p.meta, p.note { color: #555; margin-top: 4px; }
p.warn { background: #fff4e5; border-left: 4px solid #e69500; padding: 6px 10px; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; margin: 8px 0; }
th, td { border: 1px solid #ddd; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f5f5f5; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.path { font-family: ui-monospace, monospace; font-size: 12px; overflow-wrap: anywhere; max-width: 420px; }
i.sw, .legend i { display: inline-block; width: 12px; height: 12px; border-radius: 2px; margin-right: 6px; vertical-align: -1px; }
.charts { display: grid; grid-template-columns: repeat(auto-fill, minmax(560px, 1fr)); gap: 16px; }
figure.chart { margin: 0; border: 1px solid #e4e4e4; border-radius: 4px; padding: 8px; background: #fff; }
figure.chart figcaption { font-weight: 600; margin-bottom: 4px; }
figure.chart svg { width: 100%; height: auto; display: block; }
.legend { font-size: 12px; color: #333; display: flex; flex-wrap: wrap; gap: 4px 14px; margin-top: 4px; }
svg .grid { stroke: #eee; stroke-width: 1; }
svg .frame { fill: none; stroke: #bbb; stroke-width: 1; }
svg .axisline { stroke: #999; stroke-width: 1; }
svg .tick { font-size: 11px; fill: #555; }
svg .axis { font-size: 12px; fill: #333; }
svg .line { fill: none; stroke-width: 1.8; stroke-linejoin: round; }
svg .band { opacity: 0.18; stroke: none; }
svg .err { stroke: #333; stroke-width: 1.2; }
details { margin-top: 24px; }
summary { cursor: pointer; font-weight: 600; }
)";

std::string now_text() {
  std::time_t t = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M", std::localtime(&t));
  return buf;
}

std::string charts_section(const std::vector<std::string>& charts) {
  std::string o = "<div class=\"charts\">\n";
  for (const auto& c : charts) o += c;
  return o + "</div>\n";
}

}  // namespace

std::string html_report(const std::vector<RunGroup>& groups, const std::string& title, const ReportOptions& options) {
  std::size_t n_runs = 0;
  for (const auto& g : groups) n_runs += g.runs.size();
  std::string o = "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
                  "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
                  "<link rel=\"icon\" href=\"data:,\">\n<title>" +
                  esc(title) + "</title>\n<style>" + css + "</style>\n</head>\n<body>\n";
  o += "<h1>" + esc(title) + "</h1>\n<p class=\"meta\">" + std::to_string(n_runs) + " run" + (n_runs == 1 ? "" : "s") +
       " in " + std::to_string(groups.size()) + " group" + (groups.size() == 1 ? "" : "s") +
       " (runs that differ only by seed form a group); written by contra report on " + esc(now_text()) + ".</p>\n";

  // Groups.
  // Runs of several code revisions: their figures may differ for that reason alone.
  std::map<std::string, std::size_t> revisions;
  for (const auto& g : groups)
    for (const auto& r : g.runs) ++revisions[r.git_revision.empty() ? "unknown" : r.git_revision];
  if (revisions.size() > 1) {
    o += "<p class=\"warn\" id=\"mixed-revisions\">These runs come from " + std::to_string(revisions.size()) +
         " revisions of contra (";
    std::string list;
    for (const auto& [rev, n] : revisions) list += (list.empty() ? "" : ", ") + esc(rev) + ": " + std::to_string(n) + " run" + (n == 1 ? "" : "s");
    o += list + "): a difference between groups may come from the code, not from their settings.</p>\n";
  }

  o += "<h2 id=\"groups\">Groups</h2>\n<div class=\"scroll\"><table id=\"groups-table\">\n<tr><th>group</th><th>overrides</th><th>plugins</th><th>seeds</th><th>run folders</th></tr>\n";
  for (std::size_t g = 0; g < groups.size(); ++g) {
    std::string seeds, dirs;
    for (const auto& r : groups[g].runs) {
      seeds += (seeds.empty() ? "" : ", ") + (r.seed >= 0 ? std::to_string(r.seed) : std::string("?"));
      dirs += (dirs.empty() ? "" : "<br>") + esc(r.dir.string()) + (r.finished ? "" : r.error.empty() ? " (unfinished: no summary.json)" : " (failed)");
    }
    std::string overrides;
    for (const auto& s : groups[g].settings) overrides += (overrides.empty() ? "" : "<br>") + esc(s);
    o += "<tr><td><i class=\"sw\" style=\"background:" + color_of(g) + "\"></i>" + esc(groups[g].name) +
         "</td><td class=\"path\">" + (overrides.empty() ? "none" : overrides) + "</td><td>" +
         esc(groups[g].runs.front().plugins) + "</td><td>" + seeds + "</td><td class=\"path\">" + dirs + "</td></tr>\n";
  }
  o += "</table></div>\n";

  // What differs between the groups, from their resolved pipelines.
  if (groups.size() > 1) {
    const std::vector<DifferingSetting> differ = differing_settings(groups);
    o += "<h2 id=\"differences\">What differs</h2>\n";
    if (differ.empty()) {
      o += "<p class=\"note\">The groups' pipeline.toml files agree on every setting that changes what is trained "
           "(or are missing).</p>\n";
    } else {
      o += "<p class=\"note\">Settings of the resolved pipelines (pipeline.toml, defaults written out) whose values "
           "differ between the groups; seeds, runtime, record and plugin paths left out.</p>\n";
      o += "<div class=\"scroll\"><table id=\"differences-table\">\n<tr><th>group</th>";
      for (const auto& d : differ) o += "<th>" + esc(d.key) + "</th>";
      o += "</tr>\n";
      for (std::size_t g = 0; g < groups.size(); ++g) {
        o += "<tr><td><i class=\"sw\" style=\"background:" + color_of(g) + "\"></i>" + esc(groups[g].name) + "</td>";
        for (const auto& d : differ) o += "<td class=\"path\">" + esc(d.values[g]) + "</td>";
        o += "</tr>\n";
      }
      o += "</table></div>\n";
    }
  }

  // Final figures.
  std::vector<std::string> figs, bookkeeping;
  for (const auto& f : eval_figure_names(groups)) (is_bookkeeping_figure(f) ? bookkeeping : figs).push_back(f);
  o += "<h2 id=\"final\">Final figures</h2>\n<p class=\"note\">Mean ± sample standard deviation (n − 1) over the "
       "group's finished runs. Final loss: summary.json <code>final_loss</code> (mean of the last 10 steps' loss); the "
       "other columns: the last evaluation (summary.json <code>eval</code>). (n=k) marks a figure only k runs have.</p>\n";
  o += "<div class=\"scroll\"><table id=\"final-figures\">\n<tr><th>group</th><th>runs</th><th>final loss</th>";
  for (const auto& f : figs) o += "<th>" + esc(f) + "</th>";
  o += "</tr>\n";
  for (std::size_t g = 0; g < groups.size(); ++g) {
    std::size_t fin = finished_count(groups[g]);
    o += "<tr><td><i class=\"sw\" style=\"background:" + color_of(g) + "\"></i>" + esc(groups[g].name) +
         "</td><td class=\"num\">" + esc(runs_cell(groups[g])) + "</td><td class=\"num\">" +
         esc(stat_cell(final_loss_stat(groups[g]), fin)) + "</td>";
    for (const auto& f : figs) o += "<td class=\"num\">" + esc(stat_cell(eval_stat(groups[g], f), fin)) + "</td>";
    o += "</tr>\n";
  }
  o += "</table></div>\n";
  if (!bookkeeping.empty()) {
    o += "<p class=\"note\">How the evaluations ran (not results):</p>\n<div class=\"scroll\"><table "
         "id=\"bookkeeping\">\n<tr><th>group</th>";
    for (const auto& f : bookkeeping) o += "<th>" + esc(f) + "</th>";
    o += "</tr>\n";
    for (std::size_t g = 0; g < groups.size(); ++g) {
      o += "<tr><td><i class=\"sw\" style=\"background:" + color_of(g) + "\"></i>" + esc(groups[g].name) + "</td>";
      for (const auto& f : bookkeeping)
        o += "<td class=\"num\">" + esc(stat_cell(eval_stat(groups[g], f), finished_count(groups[g]))) + "</td>";
      o += "</tr>\n";
    }
    o += "</table></div>\n";
  }

  // Training curves.
  std::vector<std::string> charts;
  std::set<std::string> drawn = {"loss", "lr"};
  const std::string smoothing =
      options.smooth > 1 ? ", moving average over " + std::to_string(options.smooth) + " points" : "";
  const std::string& x = options.x;
  const std::string x_label = x == "time" ? "seconds" : x;
  if (auto s = series_for(groups, "loss", false, options.smooth, x); !s.empty())
    charts.push_back(line_chart("Training loss per " + (x == "time" ? std::string("second") : x) +
                                    " (mean over seeds, band ±1 std" + smoothing + ")",
                                "loss", s, options.log_loss, x_label));
  if (auto s = series_for(groups, "lr", false, 1, x); !s.empty())
    charts.push_back(line_chart("Learning rate", "lr", s, false, x_label));
  o += "<h2 id=\"training\">Training</h2>\n";
  o += charts.empty() ? "<p class=\"note\">No step lines in metrics.jsonl.</p>\n" : charts_section(charts);

  // Evaluations over steps.
  charts.clear();
  std::vector<std::string> eval_names;
  for (const auto& g : groups)
    for (const auto& r : g.runs)
      for (const auto& [k, c] : r.eval_curves)
        if (std::find(eval_names.begin(), eval_names.end(), k) == eval_names.end()) eval_names.push_back(k);
  // Runs evaluated once (after their last step) have no curve to draw: their
  // figures are bars, one per group, mean ± std over its runs.
  std::erase_if(eval_names, [](const std::string& k) { return is_bookkeeping_figure(k); });
  std::vector<BarRow> once;
  for (const auto& k : eval_names) {
    bool curve = false;
    for (const auto& g : groups)
      for (const auto& r : g.runs)
        if (const Curve* c = r.eval_curve(k)) curve = curve || c->step.size() > 1;
    if (curve) {
      if (auto s = series_for(groups, k, true, 1, x); !s.empty())
        charts.push_back(line_chart(k + " per evaluation", k, s, false, x_label));
      continue;
    }
    BarRow row{k, {}};
    for (const auto& g : groups) {
      std::vector<double> v;
      for (const auto& r : g.runs)
        if (const Curve* c = r.eval_curve(k); c && !c->value.empty()) v.push_back(c->value.back());
      row.per_group.push_back(stat_of(v));
    }
    once.push_back(std::move(row));
  }
  if (!once.empty())
    charts.insert(charts.begin(), bar_chart("Evaluated once, after the last step (mean ± std over seeds)", once, groups,
                                            "value"));
  o += "<h2 id=\"evaluation\">Evaluation</h2>\n";
  o += charts.empty() ? "<p class=\"note\">No evaluations in metrics.jsonl (the pipelines have no [eval]).</p>\n"
                      : charts_section(charts);

  // Mining diagnostics.
  charts.clear();
  const std::vector<std::pair<std::string, std::string>> mining = {
      {"mining.neg_sim_mean", "Similarity of the negatives used, mean"},
      {"mining.neg_sim_p90", "Similarity of the negatives used, 90th percentile"},
      {"mining.pos_sim_mean", "Similarity of the positives, mean"}};
  for (const auto& [k, t] : mining) {
    drawn.insert(k);
    if (auto s = series_for(groups, k, false, options.smooth, x); !s.empty())
      charts.push_back(line_chart(t + " (" + k + ")" + smoothing, k, s, false, x_label));
  }
  o += "<h2 id=\"mining\">Mining diagnostics</h2>\n";
  o += charts.empty() ? "<p class=\"note\">No mining.* figures in metrics.jsonl.</p>\n" : charts_section(charts);

  // Stage timings.
  std::vector<std::string> stage_names;
  for (const auto& g : groups)
    for (const auto& r : g.runs)
      for (const auto& st : r.stages)
        if (std::find(stage_names.begin(), stage_names.end(), st.name) == stage_names.end()) stage_names.push_back(st.name);
  auto stage_stat = [&](const RunGroup& g, const std::string& name, bool idle) {
    std::vector<double> v;
    for (const auto& r : g.runs)
      for (const auto& st : r.stages)
        if (st.name == name) v.push_back(idle ? st.idle_s : st.busy_s);
    return stat_of(v);
  };
  auto run_stat = [&](const RunGroup& g, double RunData::*field) {
    std::vector<double> v;
    for (const auto& r : g.runs)
      if (r.finished) v.push_back(r.*field);
    return stat_of(v);
  };
  o += "<h2 id=\"timings\">Stage timings</h2>\n";
  if (stage_names.empty()) {
    o += "<p class=\"note\">No stage timings (no summary.json).</p>\n";
  } else {
    std::vector<BarRow> rows;
    for (const auto& s : stage_names) {
      BarRow row{s + " busy", {}};
      for (const auto& g : groups) row.per_group.push_back(stage_stat(g, s, false));
      rows.push_back(std::move(row));
    }
    bool has_train = std::find(stage_names.begin(), stage_names.end(), "train") != stage_names.end();
    if (has_train) {
      BarRow row{"train idle", {}};
      for (const auto& g : groups) row.per_group.push_back(stage_stat(g, "train", true));
      rows.push_back(std::move(row));
    }
    o += "<p class=\"note\">Seconds each stage of the flow graph was busy over the whole run, and how long the train "
         "stage waited for data (train idle), mean over the group's runs (summary.json <code>stages</code>).</p>\n";
    o += charts_section({bar_chart("Busy seconds per stage, and train idle", rows, groups)});
    o += "<div class=\"scroll\"><table id=\"timings-table\">\n<tr><th>group</th>";
    for (const auto& s : stage_names) o += "<th>" + esc(s) + " busy (s)</th>";
    if (has_train) o += "<th>train idle (s)</th>";
    o += "<th>wall (s)</th><th>images/s</th></tr>\n";
    for (std::size_t g = 0; g < groups.size(); ++g) {
      o += "<tr><td><i class=\"sw\" style=\"background:" + color_of(g) + "\"></i>" + esc(groups[g].name) + "</td>";
      for (const auto& s : stage_names) o += "<td class=\"num\">" + esc(format_stat(stage_stat(groups[g], s, false), 2)) + "</td>";
      if (has_train) o += "<td class=\"num\">" + esc(format_stat(stage_stat(groups[g], "train", true), 2)) + "</td>";
      o += "<td class=\"num\">" + esc(format_stat(run_stat(groups[g], &RunData::wall_s), 1)) + "</td><td class=\"num\">" +
           esc(format_stat(run_stat(groups[g], &RunData::images_per_s), 0)) + "</td></tr>\n";
    }
    o += "</table></div>\n";
  }

  // Every run.
  o += "<h2 id=\"runs\">Runs</h2>\n<div class=\"scroll\"><table id=\"runs-table\">\n<tr><th>run folder</th><th>group</th>"
       "<th>seed</th><th>steps</th><th>final loss</th><th>wall (s)</th><th>revision</th></tr>\n";
  for (std::size_t g = 0; g < groups.size(); ++g)
    for (const auto& r : groups[g].runs) {
      o += "<tr><td class=\"path\">" + esc(r.dir.string()) + "</td><td><i class=\"sw\" style=\"background:" +
           color_of(g) + "\"></i>" + esc(groups[g].name) + "</td><td class=\"num\">" +
           (r.seed >= 0 ? std::to_string(r.seed) : std::string("?")) + "</td>";
      if (r.finished)
        o += "<td class=\"num\">" + std::to_string(r.steps) + "</td><td class=\"num\">" +
             esc(format_stat(stat_of({r.final_loss}))) + "</td><td class=\"num\">" +
             esc(format_stat(stat_of({r.wall_s}), 1)) + "</td>";
      else
        o += r.error.empty() ? std::string("<td colspan=\"3\">unfinished (no summary.json)</td>")
                             : "<td colspan=\"3\">failed: " + esc(r.error) + "</td>";
      o += "<td class=\"path\">" + esc(r.git_revision) + "</td></tr>\n";
    }
  o += "</table></div>\n";

  // The other per-step figures, folded.
  charts.clear();
  std::vector<std::string> others;
  for (const auto& g : groups)
    for (const auto& r : g.runs)
      for (const auto& [k, c] : r.step_curves)
        if (!drawn.count(k) && std::find(others.begin(), others.end(), k) == others.end()) others.push_back(k);
  for (const auto& k : others)
    if (auto s = series_for(groups, k, false, options.smooth, x); !s.empty())
      charts.push_back(line_chart(k, k, s, false, x_label));
  if (!charts.empty())
    o += "<details id=\"more\"><summary>Other per-step figures (" + std::to_string(charts.size()) + ")</summary>\n" +
         charts_section(charts) + "</details>\n";
  o += "</body>\n</html>\n";
  return o;
}

// ---------------------------------------------------------------------------
// The command

namespace {

// What `contra report` takes on its command line.
struct ReportArgs {
  std::vector<std::string> dirs;
  std::string out = "report.html", markdown, title;
  ReportOptions options;
};

bool write_text(const std::string& path, const std::string& text) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f << text;
  f.close();
  if (!f) {
    std::fprintf(stderr, "contra report: cannot write %s\n", path.c_str());
    return false;
  }
  return true;
}

int report_command(const ReportArgs& args) {
  const std::string& out = args.out;
  const std::string& markdown = args.markdown;
  std::string title = args.title;
  if (args.dirs.empty()) {
    std::fprintf(stderr, "contra report: no run folder given (see contra report --help)\n");
    return 2;
  }
  try {
    std::vector<RunData> runs;
    for (const auto& d : expand_run_dirs(args.dirs)) runs.push_back(read_run(d));
    std::vector<RunGroup> groups = group_runs(std::move(runs));
    if (title.empty()) {
      std::set<std::string> names;
      for (const auto& g : groups) names.insert(g.pipeline);
      title = "contra report: ";
      std::string joined;
      for (const auto& n : names) joined += (joined.empty() ? "" : ", ") + n;
      title += joined;
    }
    std::string md = markdown_table(groups);
    std::fputs(md.c_str(), stdout);
    if (!markdown.empty() && !write_text(markdown, md)) return 1;
    if (!write_text(out, html_report(groups, title, args.options))) return 1;
    std::size_t n = 0;
    for (const auto& g : groups) n += g.runs.size();
    std::fprintf(stderr, "report of %zu run%s in %zu group%s written to %s%s%s\n", n, n == 1 ? "" : "s", groups.size(),
                 groups.size() == 1 ? "" : "s", out.c_str(), markdown.empty() ? "" : " and ", markdown.c_str());
    return 0;
  } catch (const Error& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
}

}  // namespace

Command add_report_command(CLI::App& contra) {
  auto args = std::make_shared<ReportArgs>();
  CLI::App* report = contra.add_subcommand("report", "compare runs: one HTML page, a Markdown table");
  report->add_option("RUN_DIR", args->dirs, "run folders, or folders of runs (a sweep's)");
  report->add_option("--out", args->out, "the HTML page (default report.html)")->type_name("FILE");
  report->add_option("--markdown", args->markdown, "also write the table of final figures here")->type_name("FILE");
  report->add_option("--title", args->title, "the page's title (default: the pipelines' names)")->type_name("TEXT");
  report->add_option("--smooth", args->options.smooth,
                     "draw per-step curves (loss, mining) as a moving average over N points (default 1: as recorded)")
      ->type_name("N")
      ->check(CLI::Range(1, 100000));
  report->add_flag("--log-loss", args->options.log_loss, "draw the training loss on a logarithmic axis");
  report->add_option("--x", args->options.x, "draw the curves over steps (default), epochs or wall time (seconds)")
      ->type_name("step|epoch|time")
      ->check(CLI::IsMember({"step", "epoch", "time"}));
  report->footer(
      "Read run folders (pipeline.toml, run.json, metrics.jsonl, summary.json) and\n"
      "write one self-contained HTML page (inline SVG and CSS; no script, no network):\n"
      "the final figures as mean ± std over seeds, loss and evaluation curves, mining\n"
      "diagnostics over steps and per-stage timings. Runs that differ only by seed\n"
      "(same pipeline name, same --set overrides apart from pipeline.seed, runtime.*\n"
      "and record.*) form one group. A folder without run.json stands for the runs\n"
      "in it (a sweep folder: those its sweep.json lists).\n"
      "The table of final figures is printed as Markdown, and written to --markdown.");
  return {report, [args] { return report_command(*args); }};
}

}  // namespace contra::cli
