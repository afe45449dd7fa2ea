#include "cross_modal_hard.hpp"

#include <contra/blas.hpp>
#include <contra/errors.hpp>
#include <contra/l2_normalize.hpp>
#include <contra/pairs_check.hpp>

#include <algorithm>
#include <cstring>

namespace contra::plugins {

contra::Schema CrossModalHard::schema() {
  return contra::Schema("cross_modal_hard",
                        "per row, the k most similar rows of the other towers among other samples as negatives "
                        "(the hardest captions for an image, the hardest images for a caption), its own sample's "
                        "other towers as positives")
      .add<std::int64_t>("k", 16, "negatives per anchor row (fewer when the other towers hold fewer)")
      .range(1, 1 << 20)
      .add<bool>("exclude_same_label", false,
                 "never take a row of the anchor's label as a negative (labelled sources: no false negatives)");
}

CrossModalHard::CrossModalHard(const contra::Params& p)
    : k_(p.get<std::int64_t>("k")), exclude_same_label_(p.get<bool>("exclude_same_label")) {}

void CrossModalHard::mine(const contra::Embeddings& z, contra::Pairs& out) {
  const std::int64_t m = contra::check_embeddings("cross_modal_hard", z), d = z.z.dim(1);
  if (!z.view_tower || z.views < 2)
    throw contra::UsageError("cross_modal_hard: contrasts the rows of different towers, and these embeddings come "
                             "from one tower; give the pipeline a [tower.NAME] (or use another miner)");
  if (static_cast<std::int64_t>(z.view_tower->size()) != z.views)
    throw contra::UsageError("cross_modal_hard: view_tower has " + std::to_string(z.view_tower->size()) +
                             " entries for " + std::to_string(z.views) + " views");
  if (exclude_same_label_ && !z.label)
    throw contra::UsageError("cross_modal_hard: exclude_same_label needs labels, and the source gives none");
  const std::int64_t n = m / z.views;
  auto tower_of = [&](std::int64_t row) { return (*z.view_tower)[static_cast<std::size_t>(row / n)]; };

  // Cosine similarities of every pair of rows, one product.
  unit_.resize(static_cast<std::size_t>(m * d));
  norms_.resize(static_cast<std::size_t>(m));
  contra::l2_normalize_rows(z.z.data<float>(), m, d, unit_.data(), norms_.data());
  sim_.resize(static_cast<std::size_t>(m * m));
  contra::sgemm(false, true, m, m, d, 1.0f, unit_.data(), d, unit_.data(), d, 0.0f, sim_.data(), m);

  const std::vector<std::int64_t>& sample = *z.sample;
  for (std::int64_t a = 0; a < m; ++a) {
    const float* s = sim_.data() + a * m;
    candidates_.clear();
    for (std::int64_t r = 0; r < m; ++r) {
      if (tower_of(r) == tower_of(a)) continue;
      if (sample[static_cast<std::size_t>(r)] == sample[static_cast<std::size_t>(a)]) {
        out.positive.emplace_back(static_cast<std::int32_t>(a), static_cast<std::int32_t>(r));
        continue;
      }
      if (exclude_same_label_ && (*z.label)[static_cast<std::size_t>(r)] == (*z.label)[static_cast<std::size_t>(a)])
        continue;
      candidates_.push_back(static_cast<std::int32_t>(r));
    }
    const auto keep = static_cast<std::ptrdiff_t>(std::min<std::int64_t>(k_, static_cast<std::int64_t>(candidates_.size())));
    auto harder = [&](std::int32_t x, std::int32_t y) { return s[x] > s[y] || (s[x] == s[y] && x < y); };
    std::partial_sort(candidates_.begin(), candidates_.begin() + keep, candidates_.end(), harder);
    for (std::ptrdiff_t i = 0; i < keep; ++i)
      out.negative.emplace_back(static_cast<std::int32_t>(a), candidates_[static_cast<std::size_t>(i)]);
  }
}

}  // namespace contra::plugins
