#include "retrieval.hpp"

#include "../cross_modal.hpp"

#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>
#include <utility>
#include <vector>

namespace contra::plugins {

namespace {

namespace cm = cross_modal;

constexpr const char* who = "retrieval";

// The figures of one direction, in the order they are returned.
std::vector<std::string> direction_names(const std::string& direction, const std::vector<std::int64_t>& ks) {
  std::vector<std::string> names;
  for (std::int64_t k : ks) names.push_back(direction + "_r" + std::to_string(k));
  names.push_back(direction + "_mean_rank");
  return names;
}

// For each row of `from` (unit rows, n_from × d), the 0-based rank of its
// first match among the rows of `to` (cm::first_match_rank(); -1: none).
std::vector<std::int64_t> first_match_ranks(const std::vector<float>& from, const std::vector<std::int64_t>& from_labels,
                                            const std::vector<float>& to, const std::vector<std::int64_t>& to_labels,
                                            std::int64_t d) {
  const auto n_from = static_cast<std::int64_t>(from_labels.size());
  const auto n_to = static_cast<std::int64_t>(to_labels.size());
  std::vector<std::int64_t> ranks(from_labels.size());
  auto rank_block = [&](std::int64_t first, std::int64_t count, const float* sims) {
#pragma omp parallel for schedule(dynamic, 16)
    for (std::int64_t r = 0; r < count; ++r)
      ranks[first + r] = cm::first_match_rank(sims + r * n_to, to_labels.data(), n_to, from_labels[first + r]);
  };
  cm::for_each_similarity_block(from.data(), n_from, to.data(), n_to, d, rank_block);
  return ranks;
}

// Recall@k for each k over every query (one without any match is a miss at
// every k), then the mean 1-based rank over the queries that have a match
// (NaN when none has). Serial sums: the same whatever the thread count.
void add_figures(const std::vector<std::int64_t>& ranks, const std::vector<std::int64_t>& ks,
                 std::vector<std::string>::const_iterator name, std::vector<std::pair<std::string, double>>& out) {
  const auto queries = static_cast<double>(ranks.size());
  for (std::int64_t k : ks) out.emplace_back(*name++, static_cast<double>(cm::count_within(ranks, k)) / queries);
  double rank_sum = 0;
  std::int64_t matched = 0;
  for (std::int64_t r : ranks)
    if (r >= 0) {
      rank_sum += static_cast<double>(r + 1);
      ++matched;
    }
  out.emplace_back(*name, matched > 0 ? rank_sum / static_cast<double>(matched)
                                      : std::numeric_limits<double>::quiet_NaN());
}

}  // namespace

contra::Schema Retrieval::schema() {
  return contra::Schema("retrieval",
                        "image->text and text->image Recall@K between the towers (cosine; ties count against)")
      .add<std::vector<std::int64_t>>("k", {1, 5, 10},
                                      "ranks within which a match counts as retrieved: figures i2t_r<k>, t2i_r<k>")
      .at_least(1)
      .length(1, -1);
}

Retrieval::Retrieval(const contra::Params& p) : k_(cm::distinct_list(p, "k")) {
  names_ = direction_names("i2t", k_);
  const auto t2i = direction_names("t2i", k_);
  names_.insert(names_.end(), t2i.begin(), t2i.end());
}

std::vector<std::pair<std::string, double>> Retrieval::evaluate(const contra::FeatureSet&, const contra::FeatureSet&,
                                                                std::uint64_t) {
  cm::refuse_single_tower(who);
}

std::vector<std::pair<std::string, double>> Retrieval::evaluate_cross_modal(const contra::CrossModalFeatures& f,
                                                                            std::uint64_t) {
  const std::int64_t d = cm::check_features(who, f);
  const std::vector<float> images = cm::unit_rows(f.queries);
  const std::vector<float> texts = cm::unit_rows(f.gallery);
  std::vector<std::pair<std::string, double>> out;
  add_figures(first_match_ranks(images, f.query_labels, texts, f.gallery_labels, d), k_, names_.begin(), out);
  add_figures(first_match_ranks(texts, f.gallery_labels, images, f.query_labels, d), k_,
              names_.begin() + static_cast<std::ptrdiff_t>(k_.size() + 1), out);
  return out;
}

}  // namespace contra::plugins
