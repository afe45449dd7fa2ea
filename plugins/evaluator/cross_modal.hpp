#pragma once
// What the cross-modal evaluators (retrieval, zero_shot) share: the checks of
// the CrossModalFeatures the runtime hands them, their refusal of the
// single-tower path, rows scaled to unit length, cosine similarities computed
// a block of rows at a time, and the rank of a row's first match with ties
// counted against it, and the checks of their parameters. Header-only, like plugins/loss/two_tower.hpp: each
// plugin library compiles its own copy.

#include <contra/blas.hpp>
#include <contra/errors.hpp>
#include <contra/l2_normalize.hpp>
#include <contra/roles/evaluator.hpp>
#include <contra/schema.hpp>
#include <contra/tensor.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace contra::plugins::cross_modal {

/// Similarities held at once by for_each_similarity_block(): 4 Mi floats
/// (16 MiB), e.g. 419 rows of 10 000 columns; never Nq × Ng when that is more.
inline constexpr std::int64_t block_elements = std::int64_t{1} << 22;

/// Throws ConfigError "<file:line:col>: error: <table>.<name>: <what>", the
/// form the schema's own checks take.
[[noreturn]] inline void bad_param(const Params& p, const char* name, const std::string& what) {
  throw ConfigError(Diagnostic{p.where(name), p.prefix() + "." + name, what}.str());
}

/// The integer list parameter `name`, refused (bad_param()) when a value
/// repeats: each value names figures, which would collide.
inline std::vector<std::int64_t> distinct_list(const Params& p, const char* name) {
  const auto values = p.get<std::vector<std::int64_t>>(name);
  for (std::size_t i = 0; i < values.size(); ++i)
    if (std::find(values.begin(), values.begin() + static_cast<std::ptrdiff_t>(i), values[i]) !=
        values.begin() + static_cast<std::ptrdiff_t>(i))
      bad_param(p, name,
                std::to_string(values[i]) + " is listed twice; each value names its own figures, which would collide");
  return values;
}

/// What evaluate(), the single-tower path, answers for a cross-modal
/// evaluator: the runtime calls it when the pipeline has no text tower.
[[noreturn]] inline void refuse_single_tower(std::string_view who) {
  throw UsageError(std::string(who) +
                   " is a cross-modal evaluator: it measures the images embedded by the first tower against "
                   "texts embedded by a text tower, and needs a pipeline with a text tower ([tower.NAME])");
}

/// Throws UsageError "<who>: <what> ..." unless `rows` is a non-empty
/// [N, D] f32 CPU tensor with `labels` labels (N of them).
inline void check_rows(std::string_view who, std::string_view what, const Tensor& rows, std::size_t labels) {
  const std::string w = std::string(who) + ": " + std::string(what);
  if (!rows.defined() || rows.rank() != 2 || rows.dtype() != DType::f32 || rows.device() != Device::cpu)
    throw UsageError(w + " must be a [N, D] f32 tensor on the CPU, got " +
                     (rows.defined() ? rows.shape().str() + " " + dtype_name(rows.dtype()) + " on " +
                                           device_name(rows.device())
                                     : std::string("an undefined tensor")));
  const std::int64_t n = rows.dim(0);
  if (n == 0) throw UsageError(w + " has no rows");
  if (static_cast<std::int64_t>(labels) != n)
    throw UsageError(w + ": " + std::to_string(labels) + " labels for " + std::to_string(n) + " rows");
}

/// Checks queries and gallery (check_rows()) and that their rows have the
/// same width; returns it (D).
inline std::int64_t check_features(std::string_view who, const CrossModalFeatures& f) {
  check_rows(who, "queries", f.queries, f.query_labels.size());
  check_rows(who, "gallery", f.gallery, f.gallery_labels.size());
  const std::int64_t d = f.queries.dim(1);
  if (f.gallery.dim(1) != d)
    throw UsageError(std::string(who) + ": queries have " + std::to_string(d) + " dimensions, gallery rows " +
                     std::to_string(f.gallery.dim(1)) + "; the towers must embed into one joint space");
  return d;
}

/// The rows of an [N, D] f32 tensor scaled to unit length (a zero row stays
/// zero: its norm is clamped at l2_norm_eps), row-major N × D.
inline std::vector<float> unit_rows(const Tensor& rows) {
  const std::int64_t n = rows.dim(0), d = rows.dim(1);
  std::vector<float> unit(static_cast<std::size_t>(n * d));
  l2_normalize_rows(rows.data<float>(), n, d, unit.data(), nullptr);
  return unit;
}

/// Cosine similarities of unit rows A (na × d) against unit rows B (nb × d),
/// one block of A's rows at a time: calls visit(first, count, sims) with sims
/// the count × nb block (row-major) of Â[first, first + count) · B̂ᵀ, blocks in
/// order, each of at most max_elements similarities (or one row of A when a
/// row is longer). One sgemm per block, on the calling thread's OpenMP team.
template <class Visit>
void for_each_similarity_block(const float* a, std::int64_t na, const float* b, std::int64_t nb, std::int64_t d,
                               Visit&& visit, std::int64_t max_elements = block_elements) {
  const std::int64_t rows = std::clamp<std::int64_t>(max_elements / nb, 1, na);
  std::vector<float> sims(static_cast<std::size_t>(rows * nb));
  for (std::int64_t first = 0; first < na; first += rows) {
    const std::int64_t count = std::min(rows, na - first);
    sgemm(false, true, count, nb, d, 1.0f, a + first * d, d, b, d, 0.0f, sims.data(), nb);
    visit(first, count, static_cast<const float*>(sims.data()));
  }
}

/// The 0-based rank of the first match in one row of n similarities: the
/// number of entries that do not match (labels[j] ≠ label) whose similarity
/// is at least the best matching one. Ties go against the match
/// (pessimistic), so collapsed embeddings, all similarities equal, rank every
/// match last instead of first; a NaN similarity (from a NaN embedding)
/// never helps either. -1 when no entry matches.
inline std::int64_t first_match_rank(const float* sims, const std::int64_t* labels, std::int64_t n,
                                     std::int64_t label) {
  bool matched = false;
  float best = 0.0f;
  for (std::int64_t j = 0; j < n; ++j)
    if (labels[j] == label && (!matched || sims[j] > best)) {
      best = sims[j];
      matched = true;
    }
  if (!matched) return -1;
  std::int64_t rank = 0;
  // !(s < best) rather than s >= best: true when either is NaN.
  for (std::int64_t j = 0; j < n; ++j) rank += (labels[j] != label && !(sims[j] < best)) ? 1 : 0;
  return rank;
}

/// How many ranks (first_match_rank()) are within the first k: in [0, k).
inline std::int64_t count_within(const std::vector<std::int64_t>& ranks, std::int64_t k) {
  return std::count_if(ranks.begin(), ranks.end(), [k](std::int64_t r) { return r >= 0 && r < k; });
}

}  // namespace contra::plugins::cross_modal
