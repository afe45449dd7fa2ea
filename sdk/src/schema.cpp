#include <contra/schema.hpp>

#include <algorithm>
#include <charconv>
#include <filesystem>
#include <cmath>
#include <set>
#include <sstream>

namespace contra {

const char* param_type_name(ParamType t) noexcept {
  switch (t) {
    case ParamType::boolean: return "boolean";
    case ParamType::integer: return "integer";
    case ParamType::real: return "number";
    case ParamType::string: return "string";
    case ParamType::integer_list: return "list of integers";
    case ParamType::real_list: return "list of numbers";
    case ParamType::string_list: return "list of strings";
  }
  return "unknown";
}

namespace {

std::string number_to_string(double v) {
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  std::string s(buf, r.ptr);
  // TOML writes reals with a point: 1.0, not 1.
  if (s.find_first_of(".eEn") == std::string::npos) s += ".0";
  return s;
}

std::string bound_to_string(double v) {
  if (std::floor(v) == v && std::fabs(v) < 1e15) return std::to_string(static_cast<long long>(v));
  return number_to_string(v);
}

std::string quoted(const std::string& s) { return "\"" + s + "\""; }

template <class T, class F> std::string list_to_string(const std::vector<T>& v, F each) {
  std::string s = "[";
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (i) s += ", ";
    s += each(v[i]);
  }
  return s + "]";
}

const char* value_kind(const Value& v) {
  switch (v.index()) {
    case 0: return "a boolean";
    case 1: return "an integer";
    case 2: return "a float";
    case 3: return "a string";
    default: return "an array";
  }
}

std::string expected_text(const ParamSpec& s) {
  std::string t;
  switch (s.type) {
    case ParamType::boolean: t = "a boolean (true or false)"; break;
    case ParamType::integer: t = "an integer"; break;
    case ParamType::real: t = "a number"; break;
    case ParamType::string: t = "a string"; break;
    case ParamType::integer_list: t = "an array of integers"; break;
    case ParamType::real_list: t = "an array of numbers"; break;
    case ParamType::string_list: t = "an array of strings"; break;
  }
  return t;
}

std::string range_text(const ParamSpec& s) {
  if (s.min && s.max) return "in [" + bound_to_string(*s.min) + ", " + bound_to_string(*s.max) + "]";
  if (s.min) return ">= " + bound_to_string(*s.min);
  if (s.max) return "<= " + bound_to_string(*s.max);
  return "";
}

std::string choices_text(const std::vector<std::string>& c) {
  std::string s;
  for (std::size_t i = 0; i < c.size(); ++i) {
    if (i) s += i + 1 == c.size() ? " or " : ", ";
    s += quoted(c[i]);
  }
  return s;
}

bool in_range(const ParamSpec& s, double v) {
  return !(s.min && v < *s.min) && !(s.max && v > *s.max);
}

// Edits between a and b: insertions, deletions, substitutions, and swaps of
// two neighbours ("trian" for "train" is one typo, not two).
std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> before(b.size() + 1), prev(b.size() + 1), cur(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      std::size_t sub = prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1);
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, sub});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) cur[j] = std::min(cur[j], before[j - 2] + 1);
    }
    std::swap(before, prev);
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

// Converts `v` to the spec's type where TOML allows no ambiguity (an integer
// where a number is expected). Returns false when the type does not fit.
bool coerce(const ParamSpec& s, Value& v) {
  switch (s.type) {
    case ParamType::boolean: return std::holds_alternative<bool>(v);
    case ParamType::integer: return std::holds_alternative<std::int64_t>(v);
    case ParamType::real:
      if (auto i = std::get_if<std::int64_t>(&v)) v = static_cast<double>(*i);
      return std::holds_alternative<double>(v);
    case ParamType::string: return std::holds_alternative<std::string>(v);
    case ParamType::integer_list:
      if (auto d = std::get_if<std::vector<double>>(&v); d && d->empty()) v = std::vector<std::int64_t>{};
      if (auto d = std::get_if<std::vector<std::string>>(&v); d && d->empty()) v = std::vector<std::int64_t>{};
      return std::holds_alternative<std::vector<std::int64_t>>(v);
    case ParamType::real_list:
      if (auto i = std::get_if<std::vector<std::int64_t>>(&v)) v = std::vector<double>(i->begin(), i->end());
      if (auto d = std::get_if<std::vector<std::string>>(&v); d && d->empty()) v = std::vector<double>{};
      return std::holds_alternative<std::vector<double>>(v);
    case ParamType::string_list:
      if (auto i = std::get_if<std::vector<std::int64_t>>(&v); i && i->empty()) v = std::vector<std::string>{};
      if (auto d = std::get_if<std::vector<double>>(&v); d && d->empty()) v = std::vector<std::string>{};
      return std::holds_alternative<std::vector<std::string>>(v);
  }
  return false;
}

// Checks range, choices and length; returns "" or what is wrong. `shown` is
// the value as the user wrote it (before an integer became a number).
std::string check_value(const ParamSpec& s, const Value& v, const Value& shown) {
  auto list_len = [&](std::size_t n) -> std::string {
    if (static_cast<std::int64_t>(n) < s.min_length ||
        (s.max_length >= 0 && static_cast<std::int64_t>(n) > s.max_length)) {
      std::string want = s.min_length == s.max_length
                             ? std::to_string(s.min_length)
                             : s.max_length < 0 ? "at least " + std::to_string(s.min_length)
                                                : std::to_string(s.min_length) + " to " +
                                                      std::to_string(s.max_length);
      return "expected " + want + " element" + (want == "1" ? "" : "s") + ", found " +
             std::to_string(n) + " in " + value_to_string(v);
    }
    return "";
  };
  switch (v.index()) {
    case 1:
    case 2: {
      double x = v.index() == 1 ? static_cast<double>(std::get<std::int64_t>(v)) : std::get<double>(v);
      if (!std::isfinite(x)) return "expected a finite number, found " + value_to_string(shown);
      if (!in_range(s, x)) return "expected a value " + range_text(s) + ", found " + value_to_string(shown);
      return "";
    }
    case 3: {
      const auto& str = std::get<std::string>(v);
      if (!s.choices.empty() && std::find(s.choices.begin(), s.choices.end(), str) == s.choices.end())
        return "expected one of " + choices_text(s.choices) + ", found " + quoted(str);
      return "";
    }
    case 4: {
      const auto& l = std::get<std::vector<std::int64_t>>(v);
      if (auto e = list_len(l.size()); !e.empty()) return e;
      for (auto x : l)
        if (!in_range(s, static_cast<double>(x)))
          return "expected every element " + range_text(s) + ", found " + std::to_string(x);
      return "";
    }
    case 5: {
      const auto& l = std::get<std::vector<double>>(v);
      if (auto e = list_len(l.size()); !e.empty()) return e;
      for (auto x : l)
        if (!std::isfinite(x) || !in_range(s, x))
          return "expected every element " + range_text(s) + ", found " + number_to_string(x);
      return "";
    }
    case 6: {
      const auto& l = std::get<std::vector<std::string>>(v);
      if (auto e = list_len(l.size()); !e.empty()) return e;
      if (!s.choices.empty())
        for (const auto& x : l)
          if (std::find(s.choices.begin(), s.choices.end(), x) == s.choices.end())
            return "expected every element to be one of " + choices_text(s.choices) + ", found " +
                   quoted(x);
      return "";
    }
    default: return "";
  }
}

std::string join_key(std::string_view prefix, const std::string& name) {
  return prefix.empty() ? name : std::string(prefix) + "." + name;
}

}  // namespace

std::string value_to_string(const Value& v) {
  switch (v.index()) {
    case 0: return std::get<bool>(v) ? "true" : "false";
    case 1: return std::to_string(std::get<std::int64_t>(v));
    case 2: return number_to_string(std::get<double>(v));
    case 3: return quoted(std::get<std::string>(v));
    case 4:
      return list_to_string(std::get<std::vector<std::int64_t>>(v),
                            [](std::int64_t x) { return std::to_string(x); });
    case 5: return list_to_string(std::get<std::vector<double>>(v), number_to_string);
    case 6: return list_to_string(std::get<std::vector<std::string>>(v), quoted);
  }
  return "";
}

std::string SourceLocation::str() const {
  if (file.empty()) return "";
  if (line <= 0) return file;
  if (column <= 0) return file + ":" + std::to_string(line);
  return file + ":" + std::to_string(line) + ":" + std::to_string(column);
}

std::string Diagnostic::str() const {
  std::string s = where.str();
  s += s.empty() ? "error: " : ": error: ";
  if (!key.empty()) s += key + ": ";
  return s + message;
}

std::string format_diagnostics(const Diagnostics& d) {
  std::string s;
  for (const auto& x : d) s += x.str() + "\n";
  return s;
}

std::string closest_match(std::string_view word, const std::vector<std::string>& candidates) {
  std::string best;
  std::size_t best_d = SIZE_MAX;
  for (const auto& c : candidates) {
    std::size_t d = edit_distance(word, c);
    if (d < best_d) best_d = d, best = c;
  }
  // A plausible typo: at most a third of the word changed (and at least 1 edit allowed).
  std::size_t allowed = std::max<std::size_t>(1, std::max(word.size(), best.size()) / 3);
  return best_d <= allowed ? best : std::string();
}

Schema::Schema(std::string name, std::string summary)
    : name_(std::move(name)), summary_(std::move(summary)) {}

Schema Schema::section(std::string name, std::string summary) {
  Schema s(std::move(name), std::move(summary));
  s.section_ = true;
  return s;
}

Schema& Schema::add_spec(std::string name, ParamType type, std::optional<Value> def, bool required,
                         std::string help) {
  ParamSpec s;
  s.name = std::move(name);
  s.type = type;
  s.default_value = std::move(def);
  s.required = required;
  s.help = std::move(help);
  params_.push_back(std::move(s));
  return *this;
}

ParamSpec& Schema::last() {
  if (params_.empty()) throw UsageError("schema '" + name_ + "': range/choices/length before any add()");
  return params_.back();
}

Schema& Schema::range(double lo, double hi) {
  last().min = lo;
  last().max = hi;
  return *this;
}

Schema& Schema::at_least(double lo) {
  last().min = lo;
  return *this;
}

Schema& Schema::choices(std::vector<std::string> allowed) {
  last().choices = std::move(allowed);
  return *this;
}

Schema& Schema::length(std::int64_t lo, std::int64_t hi) {
  last().min_length = lo;
  last().max_length = hi;
  return *this;
}

const ParamSpec* Schema::find(std::string_view param) const noexcept {
  for (const auto& p : params_)
    if (p.name == param) return &p;
  return nullptr;
}

void Schema::check_well_formed() const {
  std::string where = "schema of plugin '" + name_ + "'";
  if (name_.empty()) throw UsageError("a plugin schema has an empty name");
  if (summary_.empty()) throw UsageError(where + " has no summary");
  std::set<std::string> seen;
  for (const auto& p : params_) {
    if (p.name.empty()) throw UsageError(where + " declares a parameter with an empty name");
    if (p.name == "plugin")
      throw UsageError(where + " declares a parameter named 'plugin', which the pipeline reserves");
    if (!seen.insert(p.name).second)
      throw UsageError(where + " declares parameter '" + p.name + "' twice");
    if (p.help.empty()) throw UsageError(where + ": parameter '" + p.name + "' has no help text");
    if (p.min && p.max && *p.min > *p.max)
      throw UsageError(where + ": parameter '" + p.name + "' has an empty range");
    if (p.default_value) {
      Value v = *p.default_value;
      if (!coerce(p, v))
        throw UsageError(where + ": default of '" + p.name + "' is not " + expected_text(p));
      if (auto e = check_value(p, v, v); !e.empty())
        throw UsageError(where + ": default of '" + p.name + "' is invalid: " + e);
    }
  }
}

Params Schema::bind(const std::vector<RawParam>& raw, std::string_view prefix,
                    const SourceLocation& table, Diagnostics& out) const {
  std::vector<Params::Entry> entries;
  std::vector<std::string> names;
  for (const auto& p : params_) names.push_back(p.name);
  std::vector<bool> given(params_.size(), false);

  for (const auto& r : raw) {
    auto it = std::find_if(params_.begin(), params_.end(), [&](const ParamSpec& s) { return s.name == r.key; });
    std::string key = join_key(prefix, r.key);
    if (it == params_.end()) {
      std::string msg = section_ ? "unknown key '" + r.key + "' in section [" + name_ + "]"
                                 : "unknown parameter '" + r.key + "' for plugin '" + name_ + "'";
      std::string hint = closest_match(r.key, names);
      if (!hint.empty()) msg += "; did you mean '" + hint + "'?";
      else if (names.empty()) msg += section_ ? "; it takes no keys" : "; it takes no parameters";
      else if (section_) msg += "; it takes " + choices_text(names);
      else msg += "; see `contra plugins --describe " + name_ + "`";
      out.push_back({r.where, key, msg});
      continue;
    }
    std::size_t idx = static_cast<std::size_t>(it - params_.begin());
    given[idx] = true;
    Value v = r.value;
    if (!coerce(*it, v)) {
      out.push_back({r.where, key,
                     "expected " + expected_text(*it) + ", found " + value_kind(r.value) + " (" +
                         value_to_string(r.value) + ")"});
      continue;
    }
    if (auto e = check_value(*it, v, r.value); !e.empty()) {
      out.push_back({r.where, key, e});
      continue;
    }
    entries.push_back({it->name, std::move(v), r.where, true});
  }
  for (std::size_t i = 0; i < params_.size(); ++i) {
    if (given[i]) continue;
    const auto& p = params_[i];
    if (p.required) {
      out.push_back({table, join_key(prefix, p.name),
                     std::string(section_ ? "missing required key '" : "missing required parameter '") + p.name + "' (" + expected_text(p) + ": " + p.help +
                         ")"});
      continue;
    }
    entries.push_back({p.name, *p.default_value, SourceLocation{}, false});
  }
  return Params(std::string(prefix), table, std::move(entries));
}

Params Schema::bind(std::initializer_list<std::pair<std::string, Value>> values) const {
  std::vector<RawParam> raw;
  for (const auto& [k, v] : values) raw.push_back({k, v, SourceLocation{}});
  Diagnostics d;
  Params p = bind(raw, name_, SourceLocation{}, d);
  if (!d.empty()) throw ConfigError(format_diagnostics(d));
  return p;
}

std::string Schema::describe() const {
  std::ostringstream os;
  os << (section_ ? "[" + name_ + "]" : name_) << ": " << summary_ << "\n";
  if (params_.empty()) {
    os << (section_ ? "\n(no keys)\n" : "\n(no parameters)\n");
    return os.str();
  }
  os << (section_ ? "\nkeys:\n" : "\nparameters:\n");
  for (const auto& p : params_) {
    os << "  " << p.name << " (" << param_type_name(p.type);
    if (p.required) os << ", required";
    else os << ", default " << value_to_string(*p.default_value);
    if (p.min || p.max) os << ", " << range_text(p);
    if (!p.choices.empty()) os << ", one of " << choices_text(p.choices);
    if (p.min_length > 0 || p.max_length >= 0) {
      if (p.min_length == p.max_length) os << ", " << p.min_length << " elements";
      else if (p.max_length < 0) os << ", at least " << p.min_length << " elements";
      else os << ", " << p.min_length << " to " << p.max_length << " elements";
    }
    os << ")\n      " << p.help << "\n";
  }
  return os.str();
}

Params::Params(std::string prefix, SourceLocation table, std::vector<Entry> entries)
    : prefix_(std::move(prefix)), table_(std::move(table)), entries_(std::move(entries)) {}

const Params::Entry& Params::entry(std::string_view name) const {
  for (const auto& e : entries_)
    if (e.name == name) return e;
  throw UsageError("parameter '" + std::string(name) + "' is not declared in the schema of " +
                   (prefix_.empty() ? std::string("this plugin") : prefix_));
}

bool Params::is_set(std::string_view name) const { return entry(name).set; }

const SourceLocation& Params::where(std::string_view name) const {
  const Entry& e = entry(name);
  return e.set ? e.where : table_;
}

}  // namespace contra

namespace contra {

std::string Params::path(std::string_view name) const {
  std::string value = get<std::string>(name);
  const Entry& e = entry(name);
  std::filesystem::path p(value);
  if (value.empty() || p.is_absolute() || !e.set || e.where.file.empty() || e.where.line <= 0) return value;
  std::filesystem::path base = std::filesystem::path(e.where.file).parent_path();
  return (base / p).lexically_normal().string();
}

}  // namespace contra
