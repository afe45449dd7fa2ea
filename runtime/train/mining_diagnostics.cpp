#include "mining_diagnostics.hpp"

#include <contra/rng.hpp>

#include <algorithm>
#include <cmath>
#include <unordered_map>
#include <vector>

namespace contra::runtime {

void MiningDiagnostics::append_to(std::vector<std::pair<std::string, double>>& m) const {
  m.emplace_back("mining.pos_sim_mean", pos_sim_mean);
  m.emplace_back("mining.pos_sim_p50", pos_sim_p50);
  m.emplace_back("mining.neg_sim_mean", neg_sim_mean);
  m.emplace_back("mining.neg_sim_p10", neg_sim_p10);
  m.emplace_back("mining.neg_sim_p50", neg_sim_p50);
  m.emplace_back("mining.neg_sim_p90", neg_sim_p90);
  m.emplace_back("mining.neg_sim_max", neg_sim_max);
  m.emplace_back("mining.negatives_per_anchor", negatives_per_anchor);
  if (false_negative_rate >= 0) m.emplace_back("mining.false_negative_rate", false_negative_rate);
}

namespace {

// a·b in double, in eight interleaved partial sums: the samples take up to
// 2^16 of these per step, and one long dependency chain made them the
// step's largest host cost.
double dot(const float* a, const float* b, std::int64_t d) {
  double s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  std::int64_t k = 0;
  for (; k + 8 <= d; k += 8)
    for (int j = 0; j < 8; ++j) s[j] += static_cast<double>(a[k + j]) * b[k + j];
  for (; k < d; ++k) s[0] += static_cast<double>(a[k]) * b[k];
  return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
}

// 1 / |x| of the rows of a [n, d] matrix, computed on first use (0 for a
// zero row: its cosine with anything is 0).
class InverseNorms {
 public:
  InverseNorms(const float* x, std::int64_t n, std::int64_t d)
      : x_(x), d_(d), inv_(static_cast<std::size_t>(n), -1.0) {}
  double operator()(std::int64_t r) {
    double& v = inv_[static_cast<std::size_t>(r)];
    if (v < 0) {
      const double n2 = dot(x_ + r * d_, x_ + r * d_, d_);
      v = n2 > 0 ? 1.0 / std::sqrt(n2) : 0.0;
    }
    return v;
  }

 private:
  const float* x_;
  std::int64_t d_;
  std::vector<double> inv_;
};

double quantile(std::vector<double>& v, double q) {
  if (v.empty()) return 0.0;
  auto k = static_cast<std::size_t>(q * static_cast<double>(v.size() - 1) + 0.5);
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(k), v.end());
  return v[k];
}

double mean(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return v.empty() ? 0.0 : s / static_cast<double>(v.size());
}

// A candidate negative: a batch row, or a memory key.
struct Candidate {
  bool memory;
  std::int64_t index;
};

}  // namespace

MiningDiagnostics diagnose_mining(const Embeddings& e, const Pairs& p, std::int64_t step, std::int64_t max_samples) {
  MiningDiagnostics d;
  const std::int64_t rows = e.rows(), dim = e.z.dim(1);
  const float* z = e.z.data<float>();
  const MemoryView* mem = e.memory && e.memory->size() > 0 ? e.memory : nullptr;
  const float* keys = mem ? mem->keys.data<float>() : nullptr;
  const auto& sample = *e.sample;
  const std::vector<std::int64_t>* label = e.label;
  const std::vector<std::int64_t>* mem_labels = mem ? mem->labels : nullptr;
  const std::vector<std::int64_t>* mem_ids = mem ? mem->ids : nullptr;
  auto row_id = [&](std::int64_t r) { return e.ids ? (*e.ids)[r] : -2 - sample[r]; };
  auto vec = [&](const Candidate& c) { return c.memory ? keys + c.index * dim : z + c.index * dim; };
  InverseNorms row_norm(z, rows, dim), key_norm(keys, mem ? mem->size() : 0, dim);
  auto cosine_rows = [&](std::int64_t a, std::int64_t b) {
    return dot(z + a * dim, z + b * dim, dim) * row_norm(a) * row_norm(b);
  };
  auto cosine_with = [&](std::int64_t a, const Candidate& c) {
    return dot(z + a * dim, vec(c), dim) * row_norm(a) * (c.memory ? key_norm(c.index) : row_norm(c.index));
  };
  auto cand_label = [&](const Candidate& c) -> std::int64_t {
    if (c.memory) return mem_labels ? (*mem_labels)[c.index] : -1;
    return label ? (*label)[c.index] : -1;
  };
  Rng rng(0x6d696e65ull, static_cast<std::uint64_t>(step), 0, 0, 0);
  std::vector<double> pos, neg;
  std::int64_t fn = 0, labelled_negs = 0;

  if (p.all) {
    // Every other-sample row (and memory key of another sample) is a negative.
    const std::int64_t views = std::max<std::int64_t>(1, e.views);
    const std::int64_t batch_negs = rows - views;
    std::int64_t mem_valid = 0;
    std::unordered_map<std::int64_t, std::int64_t> mem_by_label, mem_by_id;
    if (mem)
      for (std::int64_t k = 0; k < mem->size(); ++k)
        if ((*mem_ids)[k] >= 0) {
          ++mem_valid;
          ++mem_by_id[(*mem_ids)[k]];
          if (mem_labels) ++mem_by_label[(*mem_labels)[k]];
        }
    std::unordered_map<std::int64_t, std::int64_t> rows_by_label;
    if (label)
      for (std::int64_t r = 0; r < rows; ++r) ++rows_by_label[(*label)[r]];
    double negs_total = 0;
    for (std::int64_t a = 0; a < rows; ++a) {
      // The anchor's own sample in the memory is not a negative (counted by
      // id once per step: a scan of the K keys per anchor cost M·K).
      std::int64_t mem_same_id = 0;
      if (mem) {
        const auto it = mem_by_id.find(row_id(a));
        mem_same_id = it == mem_by_id.end() ? 0 : it->second;
      }
      const std::int64_t negs = batch_negs + mem_valid - mem_same_id;
      negs_total += static_cast<double>(negs);
      if (label) {
        // Same-label rows of other samples (the anchor's own views share its label).
        std::int64_t same = rows_by_label[(*label)[a]] - views;
        if (mem && mem_labels) same += mem_by_label[(*label)[a]] - mem_same_id;
        fn += same;
        labelled_negs += negs;
      }
    }
    d.negatives_per_anchor = rows ? negs_total / static_cast<double>(rows) : 0.0;
    d.negative_pairs = static_cast<std::int64_t>(negs_total);
    d.positive_pairs = rows * (views - 1);
    // Similarities from a deterministic sample of pairs.
    const std::int64_t want = std::min<std::int64_t>(max_samples, d.negative_pairs);
    for (std::int64_t s = 0; s < want; ++s) {
      std::int64_t a = rng.integer(0, rows - 1);
      std::int64_t pick = rng.integer(0, rows + (mem ? mem->size() : 0) - 1);
      Candidate c{pick >= rows, pick >= rows ? pick - rows : pick};
      if (!c.memory) {
        if (sample[c.index] == sample[a]) continue;  // rejection: a view of the anchor's own sample
      } else if ((*mem_ids)[c.index] < 0 || (*mem_ids)[c.index] == row_id(a)) {
        continue;
      }
      neg.push_back(cosine_with(a, c));
    }
    for (std::int64_t s = 0; s < std::min<std::int64_t>(max_samples, d.positive_pairs); ++s) {
      std::int64_t a = rng.integer(0, rows - 1);
      std::int64_t v = rng.integer(0, views - 2);
      std::int64_t n = rows / views;
      std::int64_t own = a / n;
      std::int64_t other = (v >= own ? v + 1 : v) * n + a % n;
      pos.push_back(cosine_rows(a, other));
    }
  } else {
    std::vector<std::pair<std::int64_t, Candidate>> negs;
    std::vector<std::pair<std::int64_t, std::int64_t>> poss;
    for (auto [a, q] : p.positive) poss.emplace_back(a, q);
    for (auto [a, n] : p.negative) negs.push_back({a, Candidate{false, n}});
    for (auto [a, k] : p.memory_negative) negs.push_back({a, Candidate{true, k}});
    for (const auto& t : p.triplets) {
      poss.emplace_back(t.anchor, t.positive);
      negs.push_back({t.anchor, Candidate{false, t.negative}});
    }
    std::vector<char> anchor_seen(static_cast<std::size_t>(rows), 0);
    std::int64_t anchors = 0;
    for (const auto& [a, c] : negs) {
      if (!anchor_seen[a]) anchor_seen[a] = 1, ++anchors;
      if (label) {
        std::int64_t cl = cand_label(c);
        if (cl >= 0) {
          ++labelled_negs;
          fn += cl == (*label)[a];
        }
      }
    }
    // Listed negatives without listed positives (hardest_k, mochi): the
    // losses that take them contrast each anchor with the other views of its
    // sample, and so do these figures.
    if (poss.empty() && p.triplets.empty() && !negs.empty()) {
      std::unordered_map<std::int64_t, std::vector<std::int64_t>> rows_of_sample;
      for (std::int64_t r = 0; r < rows; ++r) rows_of_sample[sample[r]].push_back(r);
      for (std::int64_t a = 0; a < rows; ++a)
        if (anchor_seen[a])
          for (std::int64_t r : rows_of_sample[sample[a]])
            if (r != a) poss.emplace_back(a, r);
    }
    d.negative_pairs = static_cast<std::int64_t>(negs.size());
    d.positive_pairs = static_cast<std::int64_t>(poss.size());
    d.negatives_per_anchor = anchors ? static_cast<double>(negs.size()) / static_cast<double>(anchors) : 0.0;
    auto take = [&](std::int64_t n, auto&& each) {
      if (n <= max_samples) {
        for (std::int64_t i = 0; i < n; ++i) each(i);
      } else {
        for (std::int64_t s = 0; s < max_samples; ++s) each(rng.integer(0, n - 1));
      }
    };
    take(static_cast<std::int64_t>(negs.size()), [&](std::int64_t i) {
      neg.push_back(cosine_with(negs[i].first, negs[i].second));
    });
    take(static_cast<std::int64_t>(poss.size()), [&](std::int64_t i) {
      pos.push_back(cosine_rows(poss[i].first, poss[i].second));
    });
  }
  d.pos_sim_mean = mean(pos);
  d.neg_sim_mean = mean(neg);
  d.neg_sim_max = neg.empty() ? 0.0 : *std::max_element(neg.begin(), neg.end());
  d.pos_sim_p50 = quantile(pos, 0.5);
  d.neg_sim_p10 = quantile(neg, 0.1);
  d.neg_sim_p50 = quantile(neg, 0.5);
  d.neg_sim_p90 = quantile(neg, 0.9);
  if (label) d.false_negative_rate = labelled_negs ? static_cast<double>(fn) / static_cast<double>(labelled_negs) : 0.0;
  return d;
}

}  // namespace contra::runtime
