#pragma once
/// \file
/// Parameter schemas. A plugin declares each of its parameters once: name,
/// type, default (or required), range or choices, one-line help. The runtime
/// validates a pipeline's table against the schema, collecting every error with
/// its file:line:column, and hands the plugin `Params`: typed values that are
/// already valid. The same schema renders `contra plugins --describe`.

#include <contra/errors.hpp>

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

namespace contra {

enum class ParamType { boolean, integer, real, string, integer_list, real_list, string_list };
const char* param_type_name(ParamType t) noexcept;

using Value = std::variant<bool, std::int64_t, double, std::string, std::vector<std::int64_t>,
                           std::vector<double>, std::vector<std::string>>;

/// Renders a value the way TOML writes it: true, 3, 0.5, "text", [1, 2].
std::string value_to_string(const Value& v);

/// Where a value came from: a file position, or a command-line override.
struct SourceLocation {
  std::string file;  ///< path as the user gave it, or "--set"
  int line = 0;      ///< 1-based; 0 when unknown
  int column = 0;    ///< 1-based; 0 when unknown
  /// "file:line:column", "file:line", "file" or "" depending on what is known.
  std::string str() const;
};

/// One validation error.
struct Diagnostic {
  SourceLocation where;
  std::string key;      ///< dotted key, e.g. "loss.temperature"; may be empty
  std::string message;  ///< what was found and what was expected
  /// "file:12:3: error: loss.temperature: expected ...". One line.
  std::string str() const;
};
using Diagnostics = std::vector<Diagnostic>;

/// Joins diagnostics one per line.
std::string format_diagnostics(const Diagnostics& d);

/// Closest candidate by edit distance, or "" when none is close enough to be
/// a plausible typo. Used for "did you mean" hints.
std::string closest_match(std::string_view word, const std::vector<std::string>& candidates);

struct ParamSpec {
  std::string name;
  ParamType type = ParamType::real;
  std::optional<Value> default_value;  ///< absent for required parameters
  bool required = false;
  std::optional<double> min, max;      ///< numeric bounds, inclusive; per element for lists
  std::vector<std::string> choices;    ///< allowed strings (string and string_list)
  std::int64_t min_length = 0, max_length = -1;  ///< list length bounds; -1 = unbounded
  std::string help;
};

/// A value as found in the pipeline file, before validation.
struct RawParam {
  std::string key;
  Value value;
  SourceLocation where;
};

class Params;

class Schema {
 public:
  Schema() = default;
  Schema(std::string name, std::string summary);
  /// Schema of a built-in pipeline section rather than a plugin: messages say
  /// "unknown key 'x' in section [name]".
  static Schema section(std::string name, std::string summary);
  bool is_section() const noexcept { return section_; }

  /// Optional parameter with a default. T: bool, integral, floating, string,
  /// or std::vector of those.
  template <class T> Schema& add(std::string name, T default_value, std::string help) {
    return add_spec(std::move(name), type_for<T>(), Value(to_value(std::move(default_value))),
                    false, std::move(help));
  }
  /// Parameter the pipeline must set.
  template <class T> Schema& required(std::string name, std::string help) {
    return add_spec(std::move(name), type_for<T>(), std::nullopt, true, std::move(help));
  }
  /// Inclusive numeric range of the last added parameter (each element for lists).
  Schema& range(double lo, double hi);
  /// Lower bound only.
  Schema& at_least(double lo);
  /// Allowed strings of the last added parameter.
  Schema& choices(std::vector<std::string> allowed);
  /// List length bounds of the last added parameter (-1: no upper bound).
  Schema& length(std::int64_t lo, std::int64_t hi);

  const std::string& name() const noexcept { return name_; }
  const std::string& summary() const noexcept { return summary_; }
  const std::vector<ParamSpec>& params() const noexcept { return params_; }
  const ParamSpec* find(std::string_view param) const noexcept;

  /// Validate `raw` (the keys of one table, `prefix` being its dotted path,
  /// e.g. "loss" or "augment.chain[1]") and return typed values with defaults
  /// filled in. Every problem is appended to `out` instead of thrown.
  /// Integers are accepted where reals are expected; nothing else converts.
  Params bind(const std::vector<RawParam>& raw, std::string_view prefix,
              const SourceLocation& table, Diagnostics& out) const;

  /// Convenience for code and tests: bind from name/value pairs; throws
  /// ConfigError listing every problem.
  Params bind(std::initializer_list<std::pair<std::string, Value>> values) const;

  /// Throws UsageError when the schema itself is malformed (duplicate names,
  /// default outside its range or choices, empty name or help).
  void check_well_formed() const;

  /// Text for `contra plugins --describe`.
  std::string describe() const;

  template <class T> static Value to_value(T v) {
    if constexpr (std::is_same_v<T, bool>) return Value(v);
    else if constexpr (std::is_integral_v<T>) return Value(static_cast<std::int64_t>(v));
    else if constexpr (std::is_floating_point_v<T>) return Value(static_cast<double>(v));
    else if constexpr (std::is_convertible_v<T, std::string>) return Value(std::string(v));
    else return to_list(std::move(v));
  }

 private:
  template <class T> static ParamType type_for() {
    using U = std::decay_t<T>;
    if constexpr (std::is_same_v<U, bool>) return ParamType::boolean;
    else if constexpr (std::is_integral_v<U>) return ParamType::integer;
    else if constexpr (std::is_floating_point_v<U>) return ParamType::real;
    else if constexpr (std::is_convertible_v<U, std::string>) return ParamType::string;
    else {
      using E = typename U::value_type;
      if constexpr (std::is_same_v<E, bool>) static_assert(sizeof(E) == 0, "no bool lists");
      if constexpr (std::is_integral_v<E>) return ParamType::integer_list;
      else if constexpr (std::is_floating_point_v<E>) return ParamType::real_list;
      else return ParamType::string_list;
    }
  }
  template <class L> static Value to_list(L v) {
    using E = typename L::value_type;
    if constexpr (std::is_integral_v<E>) return Value(std::vector<std::int64_t>(v.begin(), v.end()));
    else if constexpr (std::is_floating_point_v<E>) return Value(std::vector<double>(v.begin(), v.end()));
    else return Value(std::vector<std::string>(v.begin(), v.end()));
  }
  Schema& add_spec(std::string name, ParamType type, std::optional<Value> def, bool required,
                   std::string help);
  ParamSpec& last();

  std::string name_;
  std::string summary_;
  std::vector<ParamSpec> params_;
  bool section_ = false;
};

/// Typed, validated parameter values of one plugin instance.
class Params {
 public:
  struct Entry {
    std::string name;
    Value value;
    SourceLocation where;  ///< where the value was set; empty for defaults
    bool set = false;      ///< set in the pipeline (not defaulted)
  };

  Params() = default;
  Params(std::string prefix, SourceLocation table, std::vector<Entry> entries);

  /// Typed value. T may be bool, any integral or floating type, std::string,
  /// std::vector<std::int64_t|int|double|float|std::string>. Throws UsageError
  /// for an undeclared name or a type that does not match the schema.
  template <class T> T get(std::string_view name) const;

  /// True when the pipeline set it explicitly.
  bool is_set(std::string_view name) const;
  /// Where the value was set (for errors about it, e.g. a missing file).
  const SourceLocation& where(std::string_view name) const;
  /// A string parameter read as a file path: a relative path set in a pipeline
  /// file is taken relative to that file's folder; one set elsewhere (--set,
  /// defaults) relative to the working directory. "" stays "".
  std::string path(std::string_view name) const;
  /// Dotted key prefix of the table, e.g. "loss".
  const std::string& prefix() const noexcept { return prefix_; }
  /// Location of the table header.
  const SourceLocation& table() const noexcept { return table_; }
  const std::vector<Entry>& entries() const noexcept { return entries_; }

 private:
  const Entry& entry(std::string_view name) const;
  std::string prefix_;
  SourceLocation table_;
  std::vector<Entry> entries_;
};

template <class T> T Params::get(std::string_view name) const {
  const Value& v = entry(name).value;
  auto wrong = [&]() -> T {
    throw UsageError("parameter '" + std::string(name) + "' of " + prefix_ +
                     " requested with a type that does not match its schema");
  };
  using U = std::decay_t<T>;
  if constexpr (std::is_same_v<U, bool>) {
    if (auto p = std::get_if<bool>(&v)) return *p;
    return wrong();
  } else if constexpr (std::is_integral_v<U>) {
    if (auto p = std::get_if<std::int64_t>(&v)) return static_cast<U>(*p);
    return wrong();
  } else if constexpr (std::is_floating_point_v<U>) {
    if (auto p = std::get_if<double>(&v)) return static_cast<U>(*p);
    if (auto p = std::get_if<std::int64_t>(&v)) return static_cast<U>(*p);
    return wrong();
  } else if constexpr (std::is_same_v<U, std::string>) {
    if (auto p = std::get_if<std::string>(&v)) return *p;
    return wrong();
  } else {
    using E = typename U::value_type;
    if constexpr (std::is_same_v<E, std::string>) {
      if (auto p = std::get_if<std::vector<std::string>>(&v)) return *p;
    } else if constexpr (std::is_integral_v<E>) {
      if (auto p = std::get_if<std::vector<std::int64_t>>(&v)) return U(p->begin(), p->end());
    } else {
      if (auto p = std::get_if<std::vector<double>>(&v)) return U(p->begin(), p->end());
      if (auto p = std::get_if<std::vector<std::int64_t>>(&v)) return U(p->begin(), p->end());
    }
    return wrong();
  }
}

}  // namespace contra
