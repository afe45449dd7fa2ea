#include "pipeline_spec.hpp"

#include <contra/cpu.hpp>


#include <toml++/toml.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>

namespace contra::runtime {
namespace fs = std::filesystem;

std::int64_t PipelineSpec::total_views() const {
  std::int64_t v = 0;
  for (const auto& g : views) v += g.count;
  return v;
}

std::vector<const PluginSpec*> PipelineSpec::plugins() const {
  std::vector<const PluginSpec*> all{&source, &sampler, &encoder, &miner, &loss, &optimizer, &head, &memory,
                                     &eval_train, &eval_test};
  for (const auto& v : views)
    for (const auto& p : v.chain) all.push_back(&p);
  for (const auto& p : eval_chain) all.push_back(&p);
  for (const auto& p : evaluators) all.push_back(&p);
  for (const auto& t : towers) {
    all.push_back(&t.tokenizer);
    for (const auto& p : t.chain) all.push_back(&p);
    all.push_back(&t.encoder);
    all.push_back(&t.head);
  }
  std::erase_if(all, [](const PluginSpec* p) { return p->name.empty(); });
  return all;
}

std::string towers_text(const PipelineSpec& spec) {
  std::string s;
  for (const TowerSpec& t : spec.towers) {
    std::string field = t.params.get<std::string>("field");
    if (field.empty()) field = t.name;
    s += ", tower '" + t.name + "' (field '" + field + "': tokenizer '" + t.tokenizer.name + "', encoder '" +
         t.encoder.name + "'" + (t.head.name.empty() ? "" : ", head '" + t.head.name + "'") + ")";
  }
  return s;
}

std::string PluginSpec::label() const {
  std::string s = std::string(kind_name(kind)) + " '" + name + "'";
  std::string at = where.str();
  std::string inside = section.empty() ? std::string() : "[" + section + "]";
  if (!at.empty()) inside += (section.empty() ? "" : " at ") + at;
  if (!library.empty()) inside += (inside.empty() ? "library " : ", library ") + library.string();
  if (!inside.empty()) s += " (" + inside + ")";
  return s;
}

namespace {

const std::vector<std::string>& known_sections() {
  static const std::vector<std::string> s{"pipeline", "runtime", "train",   "schedule", "record", "eval", "plugins", "data",
                                          "distributed", "augment",  "source",  "sampler", "encoder",  "head",
                                          "memory",   "miner",   "loss",    "optimizer", "tower"};
  return s;
}

struct PluginSection {
  const char* name;
  PluginKind kind;
  const char* default_plugin;  // used when the section is absent; null = required
  bool optional = false;       // absent means "none" (the projection head)
};

const std::vector<PluginSection>& plugin_sections() {
  static const std::vector<PluginSection> s{
      {"source", PluginKind::source, nullptr},       {"sampler", PluginKind::sampler, "random"},
      {"encoder", PluginKind::encoder, nullptr},     {"miner", PluginKind::miner, "all_pairs"},
      {"loss", PluginKind::loss, nullptr},           {"optimizer", PluginKind::optimizer, nullptr},
      {"head", PluginKind::encoder, nullptr, true},  {"memory", PluginKind::memory, nullptr, true}};
  return s;
}

// Reads one pipeline: the TOML tree plus where --set overrides came from.
class Reader {
 public:
  Reader(std::string file, Diagnostics& out) : file_(std::move(file)), out_(out) {}

  SourceLocation at(const toml::source_region& r) const {
    return SourceLocation{file_, static_cast<int>(r.begin.line), static_cast<int>(r.begin.column)};
  }
  SourceLocation file_only() const { return SourceLocation{file_, 0, 0}; }

  void error(SourceLocation where, std::string key, std::string message) {
    out_.push_back({std::move(where), std::move(key), std::move(message)});
  }

  // Location of the value at `key`: the override that set it, or its place in the file.
  SourceLocation where(const std::string& key, const toml::source_region& r) const {
    auto it = overrides_.find(key);
    if (it != overrides_.end()) return SourceLocation{it->second, 0, 0};
    if (r.begin.line == 0) {
      // A table that only an override made (--set trian.epochs=1 makes [trian]).
      for (const auto& [dotted, text] : overrides_)
        if (dotted.rfind(key + ".", 0) == 0) return SourceLocation{text, 0, 0};
      return file_only();
    }
    return at(r);
  }

  void apply_override(toml::table& root, const std::string& text);

  bool to_value(const toml::node& n, const std::string& key, const SourceLocation& loc, Value& out);

  // Values of a table as RawParams; nested tables are errors unless allowed.
  std::vector<RawParam> values(const toml::table& t, const std::string& prefix,
                               const std::vector<std::string>& skip);

  PluginSpec plugin(const toml::table& t, PluginKind kind, const std::string& section);

  const std::string& file() const { return file_; }

 private:
  std::string file_;
  Diagnostics& out_;
  std::map<std::string, std::string> overrides_;  // dotted key -> "--set key=value"
};

// "a loss", "an encoder".
std::string a_kind(PluginKind k) {
  std::string name = kind_name(k);
  bool vowel = std::string("aeiou").find(name[0]) != std::string::npos;
  return (vowel ? "an " : "a ") + name;
}

// A view count as bound; one where the value was refused (its range error
// is reported already, with its location: reading it would hide that error
// behind an unlocated one).
std::int64_t count_of(const Params& p, const char* key) {
  try {
    return p.get<std::int64_t>(key);
  } catch (const UsageError&) {
    return 1;
  }
}

bool is_index(const std::string& s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isdigit(c); });
}

void Reader::apply_override(toml::table& root, const std::string& text) {
  SourceLocation loc{"--set " + text, 0, 0};
  auto eq = text.find('=');
  if (eq == std::string::npos || eq == 0) {
    error(loc, "", "expected section.key=value");
    return;
  }
  std::string path = text.substr(0, eq), raw = text.substr(eq + 1);
  std::vector<std::string> parts;
  for (std::size_t s = 0;;) {
    auto dot = path.find('.', s);
    parts.push_back(path.substr(s, dot == std::string::npos ? std::string::npos : dot - s));
    if (dot == std::string::npos) break;
    s = dot + 1;
  }
  if (parts.size() < 2 || std::any_of(parts.begin(), parts.end(), [](auto& p) { return p.empty(); })) {
    error(loc, "", "expected section.key=value, e.g. loss.temperature=0.2");
    return;
  }
  // Take the value as TOML when it parses as one, else as a plain string, so
  // that --set source.images=/data/x.gz needs no quotes.
  toml::table parsed;
  bool is_toml = true;
  try {
    parsed = toml::parse("v = " + raw);
  } catch (const toml::parse_error&) {
    is_toml = false;
  }
  toml::node* cur = &root;
  std::string dotted;
  for (std::size_t i = 0; i + 1 < parts.size(); ++i) {
    const std::string& p = parts[i];
    if (auto* arr = cur->as_array(); arr && is_index(p)) {
      // An index too long for any array (it would overflow stoul) is past
      // the end like any other.
      const std::size_t idx = p.size() > 9 ? arr->size() : std::stoul(p);
      if (idx >= arr->size()) {
        error(loc, dotted, "index " + p + " is past the end (" + std::to_string(arr->size()) + " entries)");
        return;
      }
      dotted += "[" + p + "]";
      cur = arr->get(idx);
      continue;
    }
    auto* tbl = cur->as_table();
    if (!tbl) {
      error(loc, dotted, "cannot set a key inside a value that is not a table");
      return;
    }
    if (!tbl->contains(p)) tbl->insert(p, toml::table{});
    dotted += (dotted.empty() ? "" : ".") + p;
    cur = tbl->get(p);
  }
  auto* tbl = cur->as_table();
  if (!tbl) {
    error(loc, dotted, "cannot set a key inside a value that is not a table");
    return;
  }
  const std::string& last = parts.back();
  if (is_toml)
    parsed.get("v")->visit([&](auto& v) { tbl->insert_or_assign(last, v); });
  else
    tbl->insert_or_assign(last, raw);
  overrides_[dotted + "." + last] = "--set " + text;
}

bool Reader::to_value(const toml::node& n, const std::string& key, const SourceLocation& loc, Value& out) {
  if (auto v = n.as_boolean()) return out = v->get(), true;
  if (auto v = n.as_integer()) return out = v->get(), true;
  if (auto v = n.as_floating_point()) return out = v->get(), true;
  if (auto v = n.as_string()) return out = v->get(), true;
  if (auto arr = n.as_array()) {
    if (arr->empty()) return out = std::vector<std::int64_t>{}, true;
    if (arr->is_homogeneous(toml::node_type::integer)) {
      std::vector<std::int64_t> v;
      for (auto& e : *arr) v.push_back(e.as_integer()->get());
      return out = std::move(v), true;
    }
    bool numbers = std::all_of(arr->begin(), arr->end(), [](auto& e) { return e.is_number(); });
    if (numbers) {
      std::vector<double> v;
      for (auto& e : *arr) v.push_back(e.is_integer() ? double(e.as_integer()->get()) : e.as_floating_point()->get());
      return out = std::move(v), true;
    }
    if (arr->is_homogeneous(toml::node_type::string)) {
      std::vector<std::string> v;
      for (auto& e : *arr) v.push_back(e.as_string()->get());
      return out = std::move(v), true;
    }
    error(loc, key, "expected an array of numbers or of strings, found an array of mixed or nested values");
    return false;
  }
  if (n.is_table()) {
    error(loc, key, "expected a value, found a table");
    return false;
  }
  error(loc, key, "expected a boolean, number, string or array, found a date or time");
  return false;
}

std::vector<RawParam> Reader::values(const toml::table& t, const std::string& prefix,
                                     const std::vector<std::string>& skip) {
  std::vector<RawParam> raw;
  for (auto&& [k, v] : t) {
    std::string name(k.str());
    if (std::find(skip.begin(), skip.end(), name) != skip.end()) continue;
    std::string key = prefix + "." + name;
    SourceLocation loc = where(key, k.source());
    Value val;
    if (to_value(v, key, loc, val)) raw.push_back({name, std::move(val), loc});
  }
  return raw;
}

PluginSpec Reader::plugin(const toml::table& t, PluginKind kind, const std::string& section) {
  PluginSpec s;
  s.kind = kind;
  s.section = section;
  s.where = t.source().begin.line ? at(t.source()) : file_only();
  const toml::node* name = t.get("plugin");
  if (!name) {
    error(s.where, section + ".plugin",
          std::string("missing required key 'plugin' (the name of ") + a_kind(kind) +
              " plugin; `contra plugins` lists them)");
  } else if (!name->is_string()) {
    error(where(section + ".plugin", name->source()), section + ".plugin",
          std::string("expected a string naming ") + a_kind(kind) + " plugin");
  } else if (name->as_string()->get().empty()) {
    error(where(section + ".plugin", name->source()), section + ".plugin",
          std::string("an empty name; expected the name of ") + a_kind(kind) + " plugin (`contra plugins` lists them)");
  } else {
    s.name = name->as_string()->get();
    s.name_where = where(section + ".plugin", name->source());
  }
  s.raw = values(t, section, {"plugin"});
  return s;
}

Params bind_section(Reader& r, const Schema& schema, const toml::table* t, const std::string& name,
                    Diagnostics& out, const std::vector<std::string>& skip = {}) {
  std::vector<RawParam> raw;
  SourceLocation loc = r.file_only();
  if (t) {
    raw = r.values(*t, name, skip);
    if (t->source().begin.line) loc = r.at(t->source());
  }
  return schema.bind(raw, name, loc, out);
}

PipelineSpec read(toml::table root, const std::string& file, const std::vector<std::string>& overrides,
                  Diagnostics& out) {
  Reader r(file, out);
  for (const auto& o : overrides) r.apply_override(root, o);

  PipelineSpec spec;
  spec.file = file;
  const auto& sections = known_sections();
  for (auto&& [k, v] : root) {
    std::string name(k.str());
    bool known = std::find(sections.begin(), sections.end(), name) != sections.end();
    SourceLocation loc = r.where(name, k.source());
    if (!known) {
      std::string msg = v.is_table() ? "unknown section [" + name + "]" : "unknown top-level key '" + name + "'";
      std::string hint = closest_match(name, sections);
      if (!hint.empty()) msg += "; did you mean [" + hint + "]?";
      else msg += "; sections are [pipeline], [runtime], [train], [schedule], [record], [eval], [plugins], [data], [distributed], [augment], [source], "
                  "[sampler], [encoder], [head], [memory], [miner], [loss], [optimizer] and [tower.NAME]";
      r.error(loc, "", msg);
    } else if (!v.is_table()) {
      r.error(loc, name, "expected a table [" + name + "], found a value");
    }
  }
  auto table = [&](const char* name) { return root.get_as<toml::table>(name); };

  spec.pipeline = bind_section(r, pipeline_section_schema(), table("pipeline"), "pipeline", out);
  spec.runtime = bind_section(r, runtime_section_schema(), table("runtime"), "runtime", out);
  // The trace is written after the last step: a folder that is not there
  // is said now, not after all the training.
  try {
    if (!spec.runtime.get<std::string>("trace").empty()) {
      const fs::path trace = spec.runtime.path("trace");
      const fs::path folder = trace.has_parent_path() ? trace.parent_path() : fs::path(".");
      std::error_code ec;
      if (!fs::is_directory(folder, ec))
        r.error(spec.runtime.where("trace"), "runtime.trace",
                "no such folder: " + folder.string() + " (the trace " + trace.string() + " is written there)");
    }
  } catch (const UsageError&) {  // [runtime] did not bind: reported already
  }
  spec.train = bind_section(r, train_section_schema(), table("train"), "train", out);
  if (pipeline_device(spec) == Device::cpu) {
    const std::string precision = train_precision_setting(spec);
    if (precision == "tf32")
      r.error(spec.train.where("precision"), "train.precision",
              "\"tf32\" is the GPU's tensor-core arithmetic and needs [train] device = \"cuda\"; on the CPU use "
              "\"f32\", \"bf16\" or \"auto\"");
    else if (precision == "bf16" && !cpu_capabilities().bf16)
      r.error(spec.train.where("precision"), "train.precision",
              "\"bf16\" cannot run on this CPU: " + bf16_unavailable_reason() +
                  "; use --set train.precision=f32, or \"auto\" (bf16 where the CPU has bf16 instructions, else f32)");
  }
  spec.schedule = bind_section(r, schedule_section_schema(), table("schedule"), "schedule", out);
  spec.augment = bind_section(r, augment_section_schema(), table("augment"), "augment", out, {"chain", "view"});
  spec.data = bind_section(r, data_section_schema(), table("data"), "data", out);
  spec.record = bind_section(r, record_section_schema(), table("record"), "record", out);
  spec.distributed = bind_section(r, distributed_section_schema(), table("distributed"), "distributed", out);
  // Which memory a backend's collectives carry is known now: a mismatch
  // with [train] device is said at its key.
  try {
    const std::string backend = spec.distributed.get<std::string>("backend");
    const bool cuda = pipeline_device(spec) == Device::cuda;
    if (backend == "nccl" && !cuda)
      r.error(spec.distributed.where("backend"), "distributed.backend",
              "\"nccl\" carries GPU memory and needs [train] device = \"cuda\"; a CPU pipeline uses \"mpi\"");
    else if (backend == "mpi" && cuda)
      r.error(spec.distributed.where("backend"), "distributed.backend",
              "\"mpi\" carries host memory; a cuda pipeline uses \"nccl\" (bootstrapped over MPI)");
  } catch (const UsageError&) {  // [distributed] did not bind: reported already
  }

  // [eval]: the splits to embed, their chain, and the evaluators.
  const toml::table* ev = table("eval");
  spec.eval = bind_section(r, eval_section_schema(), ev, "eval", out, {"train", "test", "chain", "evaluator"});
  if (ev) {
    spec.has_eval = true;
    auto plugin_table = [&](const char* key, PluginKind kind, PluginSpec& into, bool required) {
      const toml::node* n = ev->get(key);
      const std::string section = std::string("eval.") + key;
      if (!n) {
        if (required)
          r.error(r.at(ev->source()), section,
                  std::string("missing [") + section + "] (the " + (kind == PluginKind::source ? "source" : "plugin") +
                      " of the split evaluated: plugin = \"...\")");
        return;
      }
      if (!n->is_table()) {
        r.error(r.where(section, n->source()), section, "expected a table [" + section + "]");
        return;
      }
      into = r.plugin(*n->as_table(), kind, section);
    };
    plugin_table("train", PluginKind::source, spec.eval_train, false);
    plugin_table("test", PluginKind::source, spec.eval_test, true);
    auto plugin_array = [&](const char* key, PluginKind kind, std::vector<PluginSpec>& into) {
      const toml::node* n = ev->get(key);
      const std::string section = std::string("eval.") + key;
      if (!n) return;
      const toml::array* arr = n->as_array();
      if (!arr || !arr->is_array_of_tables()) {
        r.error(r.where(section, n->source()), section, "expected [[" + section + "]] tables");
        return;
      }
      for (std::size_t i = 0; i < arr->size(); ++i)
        into.push_back(r.plugin(*arr->get(i)->as_table(), kind, section + "[" + std::to_string(i) + "]"));
    };
    plugin_array("chain", PluginKind::augmentation, spec.eval_chain);
    plugin_array("evaluator", PluginKind::evaluator, spec.evaluators);
    if (spec.evaluators.empty())
      r.error(r.at(ev->source()), "eval.evaluator", "[eval] needs at least one [[eval.evaluator]] (e.g. plugin = \"knn\")");
  }
  Params plugins = bind_section(r, plugins_section_schema(), table("plugins"), "plugins", out);

  // [plugins] paths, relative to the pipeline file.
  if (const toml::table* pt = table("plugins"); pt && pt->get_as<toml::array>("paths")) {
    fs::path base = fs::path(file).parent_path();
    std::vector<std::string> paths;
    try {
      paths = plugins.get<std::vector<std::string>>("paths");
    } catch (const UsageError&) {  // reported by the schema already
    }
    SourceLocation loc = plugins.where("paths");
    for (const auto& p : paths) {
      fs::path full = fs::path(p).is_absolute() || loc.line == 0 ? fs::path(p) : base / p;
      if (!fs::exists(full)) r.error(loc, "plugins.paths", "no such folder or file: " + full.string());
      else spec.plugin_paths.push_back(full.lexically_normal());
    }
  }

  // Views: a shared [[augment.chain]], or [[augment.view]] tables each with its own chain.
  auto read_chain = [&](const toml::table& t, const std::string& prefix, std::vector<PluginSpec>& chain) {
    const toml::node* node = t.get("chain");
    if (!node) return;
    const toml::array* arr = node->as_array();
    if (!arr || !arr->is_array_of_tables()) {
      r.error(r.where(prefix + ".chain", node->source()), prefix + ".chain",
              "expected [[" + prefix + ".chain]] tables, one per augmentation");
      return;
    }
    for (std::size_t i = 0; i < arr->size(); ++i)
      chain.push_back(r.plugin(*arr->get(i)->as_table(), PluginKind::augmentation,
                               prefix + ".chain[" + std::to_string(i) + "]"));
  };
  const toml::table* aug = table("augment");
  const toml::node* view_node = aug ? aug->get("view") : nullptr;
  if (view_node) {
    const toml::array* arr = view_node->as_array();
    if (!arr || !arr->is_array_of_tables()) {
      r.error(r.where("augment.view", view_node->source()), "augment.view",
              "expected [[augment.view]] tables, one per group of views");
    } else {
      if (aug->get("chain"))
        r.error(r.where("augment.chain", aug->get("chain")->source()), "augment.chain",
                "a shared [[augment.chain]] cannot be combined with [[augment.view]] tables; give each view "
                "table its own [[augment.view.chain]]");
      if (spec.augment.is_set("views"))
        r.error(spec.augment.where("views"), "augment.views",
                "with [[augment.view]] tables, set each table's count instead of augment.views");
      for (std::size_t j = 0; j < arr->size(); ++j) {
        const toml::table& vt = *arr->get(j)->as_table();
        const std::string prefix = "augment.view[" + std::to_string(j) + "]";
        ViewSpec v;
        Params vp = bind_section(r, augment_view_schema(), &vt, prefix, out, {"chain"});
        v.count = count_of(vp, "count");
        read_chain(vt, prefix, v.chain);
        spec.views.push_back(std::move(v));
      }
    }
  } else {
    ViewSpec v;
    v.count = count_of(spec.augment, "views");
    if (aug) read_chain(*aug, "augment", v.chain);
    spec.views.push_back(std::move(v));
  }

  // Towers after the first: [tower.NAME] tables, in file order.
  if (const toml::table* towers = table("tower")) {
    std::vector<std::pair<std::string, const toml::table*>> found;
    for (auto&& [k, v] : *towers) {
      const std::string name(k.str());
      if (const toml::table* t = v.as_table()) found.emplace_back(name, t);
      else r.error(r.where("tower." + name, v.source()), "tower." + name,
                   "expected a table [tower." + name + "] describing a tower (field, tokenizer, encoder)");
    }
    std::stable_sort(found.begin(), found.end(), [](const auto& a, const auto& b) {
      return a.second->source().begin.line < b.second->source().begin.line;
    });
    for (const auto& entry : found) {
      // Named, not a structured binding: the lambdas below capture them.
      const std::string& name = entry.first;
      const toml::table* t = entry.second;
      const std::string prefix = "tower." + name;
      TowerSpec tower;
      tower.name = name;
      tower.where = t->source().begin.line ? r.at(t->source()) : r.file_only();
      tower.params = bind_section(r, tower_section_schema(), t, prefix, out, {"tokenizer", "chain", "encoder", "head"});
      auto plugin_table = [&](const char* key, PluginKind kind, PluginSpec& into, bool required) {
        const std::string section = prefix + "." + key;
        const toml::node* n = t->get(key);
        if (!n) {
          if (required)
            r.error(tower.where, section,
                    "missing [" + section + "] (the tower's " + kind_name(kind) + ": plugin = \"...\")");
        } else if (!n->is_table()) {
          r.error(r.where(section, n->source()), section, "expected a table [" + section + "]");
        } else {
          into = r.plugin(*n->as_table(), kind, section);
        }
      };
      plugin_table("tokenizer", PluginKind::tokenizer, tower.tokenizer, true);
      plugin_table("encoder", PluginKind::encoder, tower.encoder, true);
      plugin_table("head", PluginKind::encoder, tower.head, false);
      if (const toml::node* node = t->get("chain")) {
        const toml::array* arr = node->as_array();
        if (!arr || !arr->is_array_of_tables())
          r.error(r.where(prefix + ".chain", node->source()), prefix + ".chain",
                  "expected [[" + prefix + ".chain]] tables, one per text augmentation");
        else
          for (std::size_t i = 0; i < arr->size(); ++i)
            tower.chain.push_back(r.plugin(*arr->get(i)->as_table(), PluginKind::text_augmentation,
                                           prefix + ".chain[" + std::to_string(i) + "]"));
      }
      spec.towers.push_back(std::move(tower));
    }
  }

  PluginSpec* slots[] = {&spec.source, &spec.sampler,   &spec.encoder, &spec.miner,
                         &spec.loss,   &spec.optimizer, &spec.head,    &spec.memory};
  for (std::size_t i = 0; i < plugin_sections().size(); ++i) {
    const auto& ps = plugin_sections()[i];
    if (const toml::table* t = table(ps.name)) {
      *slots[i] = r.plugin(*t, ps.kind, ps.name);
    } else if (ps.default_plugin) {
      slots[i]->kind = ps.kind;
      slots[i]->section = ps.name;
      slots[i]->name = ps.default_plugin;
      slots[i]->where = r.file_only();
      slots[i]->name_where = r.file_only();
    } else if (!root.get(ps.name) && !ps.optional) {
      r.error(r.file_only(), "",
              std::string("missing section [") + ps.name + "] (it names the " + kind_name(ps.kind) +
                  " plugin: plugin = \"...\")");
    }
  }

  // The resolved pipeline is read again from a run folder (--resume): its
  // plugin folders are written absolute, as found from this file.
  if (!spec.plugin_paths.empty())
    if (toml::table* pt = root.get_as<toml::table>("plugins")) {
      toml::array absolute;
      for (const auto& p : spec.plugin_paths) absolute.push_back(fs::absolute(p).lexically_normal().string());
      pt->insert_or_assign("paths", std::move(absolute));
    }
  std::ostringstream os;
  os << root;
  spec.resolved_toml = os.str() + "\n";
  return spec;
}

}  // namespace

std::optional<PipelineSpec> read_pipeline_text(const std::string& text, const std::string& name,
                                               const std::vector<std::string>& overrides,
                                               Diagnostics& out) {
  toml::table root;
  try {
    root = toml::parse(text, name);
  } catch (const toml::parse_error& e) {
    out.push_back({SourceLocation{name, static_cast<int>(e.source().begin.line),
                                  static_cast<int>(e.source().begin.column)},
                   "", "invalid TOML: " + std::string(e.description())});
    return std::nullopt;
  }
  return read(std::move(root), name, overrides, out);
}

std::optional<PipelineSpec> read_pipeline(const std::string& file,
                                          const std::vector<std::string>& overrides, Diagnostics& out) {
  std::ifstream in(file, std::ios::binary);
  if (!in) {
    out.push_back({SourceLocation{file, 0, 0}, "", std::string("cannot open the pipeline file: ") +
                                                       std::strerror(errno)});
    return std::nullopt;
  }
  // Read at most a bound's worth: a pipeline file is text of a few KiB, and
  // a device or a pipe (/dev/zero) would otherwise be read forever.
  constexpr std::size_t max_bytes = 4u << 20;
  std::string text(max_bytes + 1, '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<std::size_t>(in.gcount()));
  if (text.size() > max_bytes) {
    out.push_back({SourceLocation{file, 0, 0}, "",
                   "more than " + std::to_string(max_bytes >> 20) + " MiB: not a pipeline file"});
    return std::nullopt;
  }
  return read_pipeline_text(text, file, overrides, out);
}

Device pipeline_device(const PipelineSpec& spec) {
  try {
    return spec.train.get<std::string>("device") == "cuda" ? Device::cuda : Device::cpu;
  } catch (const UsageError&) {
    return Device::cpu;  // [train] did not bind: already reported
  }
}

std::string train_precision_setting(const PipelineSpec& spec) {
  try {
    return spec.train.get<std::string>("precision");
  } catch (const UsageError&) {
    return "f32";  // [train] did not bind: already reported
  }
}

std::string train_precision_name(const PipelineSpec& spec) {
  const std::string setting = train_precision_setting(spec);
  if (setting != "auto") return setting;
  // Every GPU that runs contra's CUDA build (sm_90 and later) has bf16 tensor cores.
  if (pipeline_device(spec) == Device::cuda) return "bf16";
  // Emulated bf16 (AVX-512 without bf16 instructions) is rarely faster than f32.
  return cpu_capabilities().bf16_native ? "bf16" : "f32";
}

Precision train_precision(const PipelineSpec& spec) {
  return train_precision_name(spec) == "bf16" ? Precision::bf16 : Precision::f32;
}

SourceLocation pipeline_device_location(const PipelineSpec& spec) {
  try {
    const SourceLocation& at = spec.train.where("device");
    if (at.file == spec.file) return at;
  } catch (const UsageError&) {
  }
  return SourceLocation{spec.file, 0, 0};
}

namespace {

// The table at a dotted key with indices into arrays of tables
// ("augment.view[1].chain[0]"), or null.
toml::table* table_at(toml::table& root, const std::string& dotted) {
  toml::table* t = &root;
  std::size_t begin = 0;
  while (t && begin <= dotted.size()) {
    const std::size_t end = std::min(dotted.find('.', begin), dotted.size());
    std::string part = dotted.substr(begin, end - begin);
    long index = -1;
    if (const auto open = part.find('['); open != std::string::npos) {
      index = std::strtol(part.c_str() + open + 1, nullptr, 10);
      part.resize(open);
    }
    toml::node* n = t->get(part);
    if (index >= 0) {
      toml::array* a = n ? n->as_array() : nullptr;
      n = a && static_cast<std::size_t>(index) < a->size() ? a->get(static_cast<std::size_t>(index)) : nullptr;
    }
    t = n ? n->as_table() : nullptr;
    begin = end + 1;
  }
  return t;
}

// Adds, to `t`, every parameter of `params` the pipeline left at its default.
// `passed`: keys left out unless set in the table (a source's [data] keys,
// which take [data]'s value when the pipeline is read again).
void add_defaults(toml::table& t, const Params& params, const std::vector<std::string>& passed = {}) {
  for (const auto& e : params.entries()) {
    if (e.set || t.contains(e.name)) continue;
    if (std::find(passed.begin(), passed.end(), e.name) != passed.end()) continue;
    std::visit(
        [&](const auto& v) {
          using T = std::decay_t<decltype(v)>;
          if constexpr (std::is_same_v<T, bool> || std::is_same_v<T, std::int64_t> || std::is_same_v<T, double> ||
                        std::is_same_v<T, std::string>) {
            t.insert(e.name, v);
          } else {
            toml::array a;
            for (const auto& x : v) a.push_back(x);
            t.insert(e.name, std::move(a));
          }
        },
        e.value);
  }
}

}  // namespace

const std::vector<std::string>& source_data_keys(bool training_source) {
  static const std::vector<std::string> training{"on_error", "max_skip_fraction", "max_image_pixels"};
  static const std::vector<std::string> evaluation{"max_image_pixels"};
  return training_source ? training : evaluation;
}

std::string resolved_with_defaults(const PipelineSpec& spec) {
  toml::table root;
  try {
    root = toml::parse(spec.resolved_toml);
  } catch (const toml::parse_error&) {
    return spec.resolved_toml;  // cannot happen: toml++ wrote it
  }
  // Built-in sections, written out even where the file has none, except
  // [eval], whose presence turns evaluation on.
  const std::pair<const char*, const Params*> sections[] = {
      {"pipeline", &spec.pipeline}, {"runtime", &spec.runtime}, {"train", &spec.train},
      {"schedule", &spec.schedule}, {"augment", &spec.augment}, {"data", &spec.data},
      {"record", &spec.record}, {"distributed", &spec.distributed}};
  for (const auto& [name, params] : sections) {
    if (!root.contains(name)) root.insert(name, toml::table{});
    if (toml::table* t = root.get_as<toml::table>(name)) add_defaults(*t, *params);
  }
  if (spec.has_eval)
    if (toml::table* t = root.get_as<toml::table>("eval")) add_defaults(*t, spec.eval);
  for (const PluginSpec* p : spec.plugins()) {
    if (p->section.empty()) continue;
    toml::table* t = table_at(root, p->section);
    if (!t) {
      // A plugin the pipeline did not name (the default sampler, miner):
      // its table, with its name.
      if (p->section.find_first_of(".[") != std::string::npos || root.contains(p->section)) continue;
      root.insert(p->section, toml::table{{"plugin", p->name}});
      t = root.get_as<toml::table>(p->section);
    }
    if (p->kind == PluginKind::source) add_defaults(*t, p->params, source_data_keys(p == &spec.source));
    else add_defaults(*t, p->params);
  }
  std::ostringstream os;
  os << root;
  return os.str() + "\n";
}

namespace {
// "section.key" -> its value as toml++ writes it; tables and arrays of tables
// are walked (the k-th [[x]] is x.k), other arrays are one value.
void flatten(const toml::table& t, const std::string& prefix, std::map<std::string, std::string>& out) {
  for (const auto& [k, node] : t) {
    const std::string key = prefix + std::string(k.str());
    if (const toml::table* sub = node.as_table()) {
      flatten(*sub, key + ".", out);
    } else if (const toml::array* a = node.as_array(); a && a->is_array_of_tables()) {
      for (std::size_t i = 0; i < a->size(); ++i) flatten(*a->get(i)->as_table(), key + "." + std::to_string(i) + ".", out);
    } else {
      std::ostringstream v;
      node.visit([&](const auto& x) { v << x; });
      out[key] = v.str();
    }
  }
}
}  // namespace

std::vector<std::string> changed_settings(const std::string& was, const std::string& now) {
  std::map<std::string, std::string> before, after;
  flatten(toml::parse(was), "", before);
  flatten(toml::parse(now), "", after);
  std::vector<std::string> changed;
  for (const auto& [key, value] : before) {
    if (key.rfind("runtime.", 0) == 0 || key.rfind("record.", 0) == 0) continue;
    // How the ranks talk, not what they learn.
    if (key == "distributed.backend" || key == "distributed.timeout_s" || key == "distributed.bucket_mb" ||
        key == "distributed.overlap")
      continue;
    auto it = after.find(key);
    if (it == after.end())
      changed.push_back(key + " = " + value + " in the checkpoint's run, absent now");
    else if (it->second != value)
      changed.push_back(key + " = " + value + " in the checkpoint's run, " + it->second + " now");
  }
  return changed;
}

}  // namespace contra::runtime
