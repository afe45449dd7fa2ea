#include "random_span.hpp"

#include <algorithm>
#include <cmath>
#include <string>

namespace contra::plugins {

namespace {

// Fractions times lengths such as 0.3 × 10 land a hair off the integer in
// binary; this slack keeps ceil(2.9999999999) at 3 and floor(3.0000000001) at 3.
constexpr double rounding_slack = 1e-9;

std::string located(const contra::Params& p, const char* name) {
  std::string where = p.where(name).str();
  return where.empty() ? std::string() : where + ": ";
}

std::string key(const contra::Params& p, const char* name) {
  return p.prefix().empty() ? std::string(name) : p.prefix() + "." + name;
}

}  // namespace

contra::Schema RandomSpan::schema() {
  return contra::Schema("random_span",
                        "keep a random contiguous span of between min_fraction and max_fraction of the tokens")
      .add<double>("min_fraction", 0.5, "shortest span, as a fraction of the tokens (at least 1 token)")
      .range(0.0, 1.0)
      .add<double>("max_fraction", 1.0, "longest span, as a fraction of the tokens").range(0.0, 1.0);
}

RandomSpan::RandomSpan(const contra::Params& p)
    : min_fraction_(p.get<double>("min_fraction")), max_fraction_(p.get<double>("max_fraction")) {
  if (min_fraction_ > max_fraction_)
    throw contra::ConfigError(located(p, "min_fraction") + key(p, "min_fraction") + " = " +
                              contra::value_to_string(min_fraction_) + " is larger than " + key(p, "max_fraction") +
                              " = " + contra::value_to_string(max_fraction_) + "; expected min_fraction <= max_fraction");
}

std::pair<std::int64_t, std::int64_t> RandomSpan::span_lengths(std::int64_t n) const {
  const double tokens = static_cast<double>(n);
  const auto shortest = static_cast<std::int64_t>(std::ceil(min_fraction_ * tokens - rounding_slack));
  const auto longest = static_cast<std::int64_t>(std::floor(max_fraction_ * tokens + rounding_slack));
  const std::int64_t lo = std::clamp<std::int64_t>(shortest, 1, n);
  // A range too narrow to hold an integer (0.5 to 0.6 of 3 tokens) keeps the shortest.
  return {lo, std::clamp<std::int64_t>(longest, lo, n)};
}

void RandomSpan::apply(const std::vector<std::int32_t>& in, std::vector<std::int32_t>& out,
                       const contra::Vocabulary&, contra::Rng& rng) const {
  out.clear();
  if (in.empty()) return;
  const auto n = static_cast<std::int64_t>(in.size());
  const auto [shortest, longest] = span_lengths(n);
  const std::int64_t length = rng.integer(shortest, longest);
  const std::int64_t start = rng.integer(0, n - length);
  out.assign(in.begin() + start, in.begin() + start + length);
}

}  // namespace contra::plugins
