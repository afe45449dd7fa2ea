#include "brace_pattern.hpp"

#include <contra/errors.hpp>

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string_view>
#include <utility>

namespace contra::plugins::webdataset {

namespace {

/// An integer of a range, as written: its value and whether it is written
/// with a leading zero (which asks for padding).
struct Bound {
  std::int64_t value = 0;
  std::size_t width = 0;  // characters, sign included
  bool zero_padded = false;
};

std::optional<Bound> parse_bound(std::string_view s) {
  Bound b;
  b.width = s.size();
  const bool negative = !s.empty() && s[0] == '-';
  if (negative) s.remove_prefix(1);
  if (s.empty() || s.size() > 15) return std::nullopt;  // 15 digits: no overflow below
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    b.value = b.value * 10 + (c - '0');
  }
  b.zero_padded = s.size() > 1 && s[0] == '0';
  if (negative) b.value = -b.value;
  return b;
}

std::string padded(std::int64_t v, std::size_t width) {
  std::string digits = std::to_string(v < 0 ? -v : v);
  const std::size_t sign = v < 0 ? 1 : 0;
  if (digits.size() + sign < width) digits.insert(0, width - digits.size() - sign, '0');
  return (v < 0 ? "-" : "") + digits;
}

class Expander {
 public:
  Expander(const std::string& pattern, const std::string& where) : pattern_(pattern), where_(where) {}

  /// The paths pattern[begin, end) stands for.
  std::vector<std::string> expand(std::size_t begin, std::size_t end) {
    std::size_t open = begin;
    for (; open < end && pattern_[open] != '{'; ++open)
      if (pattern_[open] == '}')
        fail("the '}' at character " + std::to_string(open + 1) + " closes no '{'");
    if (open == end) return {pattern_.substr(begin, end - begin)};
    const std::size_t close = closing(open, end);
    const std::vector<std::string> middle = inside(open + 1, close);
    const std::vector<std::string> rest = expand(close + 1, end);
    check_count(middle.size(), rest.size());
    std::vector<std::string> out;
    out.reserve(middle.size() * rest.size());
    const std::string_view prefix = std::string_view(pattern_).substr(begin, open - begin);
    for (const std::string& m : middle)
      for (const std::string& r : rest) out.push_back(std::string(prefix) + m + r);
    return out;
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    throw ConfigError(where_ + "\"" + pattern_ + "\": " + what);
  }

  void check_count(std::size_t a, std::size_t b) const {
    if (a != 0 && b > max_expanded_paths / a)
      fail("expands to more than " + std::to_string(max_expanded_paths) + " paths");
  }

  /// The '}' that closes the '{' at `open`.
  std::size_t closing(std::size_t open, std::size_t end) const {
    std::size_t depth = 0;
    for (std::size_t i = open; i < end; ++i) {
      if (pattern_[i] == '{') ++depth;
      else if (pattern_[i] == '}' && --depth == 0) return i;
    }
    fail("the '{' at character " + std::to_string(open + 1) + " is never closed");
  }

  /// What the braces around pattern[begin, end) stand for.
  std::vector<std::string> inside(std::size_t begin, std::size_t end) {
    std::vector<std::pair<std::size_t, std::size_t>> parts;  // alternatives, split at top-level commas
    std::size_t depth = 0, start = begin;
    for (std::size_t i = begin; i < end; ++i) {
      if (pattern_[i] == '{') ++depth;
      else if (pattern_[i] == '}') --depth;
      else if (pattern_[i] == ',' && depth == 0) {
        parts.emplace_back(start, i);
        start = i + 1;
      }
    }
    parts.emplace_back(start, end);
    std::vector<std::string> out;
    if (parts.size() > 1) {
      for (const auto& [b, e] : parts) {
        std::vector<std::string> one = expand(b, e);
        check_count(1, out.size() + one.size());
        for (std::string& s : one) out.push_back(std::move(s));
      }
      return out;
    }
    if (range(std::string_view(pattern_).substr(begin, end - begin), out)) return out;
    // Neither alternatives nor a range: the braces stay, as braceexpand keeps them.
    for (std::string& s : expand(begin, end)) out.push_back("{" + s + "}");
    return out;
  }

  /// "a..b" or "a..b..step" into `out`; false when `body` is not a range.
  bool range(std::string_view body, std::vector<std::string>& out) const {
    const std::size_t dots = body.find("..");
    if (dots == std::string_view::npos) return false;
    std::string_view last = body.substr(dots + 2);
    std::optional<Bound> step{Bound{1, 1, false}};
    if (const std::size_t more = last.find(".."); more != std::string_view::npos) {
      step = parse_bound(last.substr(more + 2));
      last = last.substr(0, more);
    }
    const std::optional<Bound> from = parse_bound(body.substr(0, dots)), to = parse_bound(last);
    if (!from || !to || !step) return false;
    const std::int64_t stride = step->value == 0 ? 1 : (step->value < 0 ? -step->value : step->value);
    const std::int64_t span = to->value >= from->value ? to->value - from->value : from->value - to->value;
    check_count(1, static_cast<std::size_t>(span / stride) + 1);
    const std::size_t width = from->zero_padded || to->zero_padded ? std::max(from->width, to->width) : 0;
    const std::int64_t direction = to->value >= from->value ? 1 : -1;
    for (std::int64_t k = 0; k * stride <= span; ++k) out.push_back(padded(from->value + direction * k * stride, width));
    return true;
  }

  const std::string& pattern_;
  const std::string& where_;
};

}  // namespace

std::vector<std::string> expand_braces(const std::string& pattern, const std::string& where) {
  return Expander(pattern, where).expand(0, pattern.size());
}

}  // namespace contra::plugins::webdataset
