#include "knn.hpp"

#include <contra/blas.hpp>
#include <contra/errors.hpp>
#include <contra/tensor.hpp>

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <string>
#include <utility>
#include <vector>

namespace contra::plugins {

namespace {

// Norms below this are clamped, as torch.nn.functional.normalize does.
constexpr double norm_eps = 1e-12;

[[noreturn]] void bad_param(const contra::Params& p, const char* name, const std::string& what) {
  contra::Diagnostic d{p.where(name), p.prefix() + "." + name, what};
  throw ConfigError(d.str());
}

// 0.1 -> "0.1", 0.07 -> "0.07", 1e-3 -> "0.001" (printf's %g: 6 significant digits).
std::string number_text(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

void check_split(const contra::FeatureSet& s, const char* which) {
  const std::string w = std::string("knn: ") + which + " split";
  if (!s.features.defined() || s.features.rank() != 2 || s.features.dtype() != DType::f32 ||
      s.features.device() != Device::cpu)
    throw UsageError(w + ": features must be a [N, D] f32 tensor on the CPU, got " +
                     (s.features.defined() ? s.features.shape().str() + " " + dtype_name(s.features.dtype()) +
                                                 " on " + device_name(s.features.device())
                                           : std::string("an undefined tensor")));
  const std::int64_t n = s.features.dim(0);
  if (n == 0) throw UsageError(w + " is empty");
  if (n > std::numeric_limits<std::int32_t>::max())
    throw UsageError(w + " has " + std::to_string(n) + " rows; at most 2^31 - 1 are supported");
  if (static_cast<std::int64_t>(s.labels.size()) != n)
    throw UsageError(w + ": " + std::to_string(s.labels.size()) + " labels for " + std::to_string(n) + " rows");
  if (s.num_classes < 1) throw UsageError(w + ": num_classes is " + std::to_string(s.num_classes));
  for (std::size_t i = 0; i < s.labels.size(); ++i)
    if (s.labels[i] < 0 || s.labels[i] >= s.num_classes)
      throw UsageError(w + ": label " + std::to_string(s.labels[i]) + " of row " + std::to_string(i) +
                       " is outside [0, " + std::to_string(s.num_classes) + ")");
}

// Rows of `in` divided by their L2 norm (clamped at norm_eps).
contra::Tensor normalised(const contra::Tensor& in) {
  const std::int64_t n = in.dim(0), d = in.dim(1);
  contra::Tensor out = contra::Tensor::empty({n, d}, DType::f32);
  const float* x = in.data<float>();
  float* y = out.data<float>();
#pragma omp parallel for schedule(static)
  for (std::int64_t i = 0; i < n; ++i) {
    double ss = 0;
    for (std::int64_t k = 0; k < d; ++k) ss += static_cast<double>(x[i * d + k]) * x[i * d + k];
    const float inv = static_cast<float>(1.0 / std::max(std::sqrt(ss), norm_eps));
    for (std::int64_t k = 0; k < d; ++k) y[i * d + k] = x[i * d + k] * inv;
  }
  return out;
}

struct Neighbour {
  float s;
  std::int32_t j;
};

// a ranks before b: higher similarity, then lower index.
inline bool better(const Neighbour& a, const Neighbour& b) { return a.s > b.s || (a.s == b.s && a.j < b.j); }

// The kk best entries of s[0..n) in rank order, into top[0..kk).
void select_top(const float* s, std::int64_t n, std::int64_t kk, Neighbour* top) {
  for (std::int64_t j = 0; j < kk; ++j) top[j] = {s[j], static_cast<std::int32_t>(j)};
  // Heap whose front is the worst kept entry.
  std::make_heap(top, top + kk, better);
  float threshold = top[0].s;
  for (std::int64_t j = kk; j < n; ++j) {
    // Scanning in index order, an equal similarity never beats a kept entry
    // (which has a lower index), so strictly greater is the whole test.
    if (s[j] > threshold) {
      std::pop_heap(top, top + kk, better);
      top[kk - 1] = {s[j], static_cast<std::int32_t>(j)};
      std::push_heap(top, top + kk, better);
      threshold = top[0].s;
    }
  }
  std::sort_heap(top, top + kk, better);  // best first
}

}  // namespace

contra::Schema Knn::schema() {
  return contra::Schema("knn", "weighted k-nearest-neighbour accuracy of frozen features (cosine, exp(s/T) votes)")
      .add<std::vector<std::int64_t>>("k", {200, 20}, "neighbours that vote, one figure per (k, temperature) pair")
      .at_least(1)
      .length(1, -1)
      .add<std::vector<double>>("temperature", {0.1, 0.07},
                                "vote weight exp(similarity / T), paired elementwise with k")
      .range(1e-3, 100.0)
      .length(1, -1)
      .add<std::int64_t>("chunk", 1024, "test rows whose similarities to every train row are held at once")
      .at_least(1);
}

Knn::Knn(const contra::Params& p)
    : k_(p.get<std::vector<std::int64_t>>("k")),
      temperature_(p.get<std::vector<double>>("temperature")),
      chunk_(p.get<std::int64_t>("chunk")) {
  if (k_.size() != temperature_.size())
    bad_param(p, "temperature",
              "has " + std::to_string(temperature_.size()) + " values but k has " + std::to_string(k_.size()) +
                  "; they are paired elementwise (figure top1_k<k>_t<T> for each pair), so give as many of each");
  for (std::size_t i = 0; i < k_.size(); ++i) {
    std::string name = "top1_k" + std::to_string(k_[i]) + "_t" + number_text(temperature_[i]);
    if (std::find(names_.begin(), names_.end(), name) != names_.end())
      bad_param(p, "temperature",
                "the (k, temperature) pair " + std::to_string(i + 1) + " repeats an earlier one (" + name + ")");
    names_.push_back(std::move(name));
  }
  names_.push_back("top5_k" + std::to_string(k_[0]) + "_t" + number_text(temperature_[0]));
}

std::vector<std::pair<std::string, double>> Knn::evaluate(const contra::FeatureSet& train,
                                                          const contra::FeatureSet& test, std::uint64_t) {
  check_split(train, "train");
  check_split(test, "test");
  const std::int64_t n_train = train.features.dim(0), n_test = test.features.dim(0);
  const std::int64_t d = train.features.dim(1);
  if (test.features.dim(1) != d)
    throw UsageError("knn: train features have " + std::to_string(d) + " dimensions, test features " +
                     std::to_string(test.features.dim(1)));
  const std::int64_t classes = std::max(train.num_classes, test.num_classes);
  const std::size_t pairs = k_.size();

  std::int64_t kmax = 0;
  for (std::int64_t k : k_) kmax = std::max(kmax, std::min(k, n_train));

  const contra::Tensor tr = normalised(train.features);
  const contra::Tensor te = normalised(test.features);
  const std::int64_t rows = std::min(chunk_, n_test);
  contra::Tensor sim = contra::Tensor::empty({rows, n_train}, DType::f32);
  float* s = sim.data<float>();
  const std::int64_t* ytr = train.labels.data();

  // Correct predictions per pair, then top-5 of the first pair. Integer sums:
  // the same whatever the thread count.
  std::vector<std::int64_t> correct(pairs + 1, 0);

  for (std::int64_t begin = 0; begin < n_test; begin += rows) {
    const std::int64_t c = std::min(rows, n_test - begin);
    contra::sgemm(false, true, c, n_train, d, 1.0f, te.data<float>() + begin * d, d, tr.data<float>(), d, 0.0f,
                  s, n_train);
#pragma omp parallel
    {
      std::vector<Neighbour> top(static_cast<std::size_t>(kmax));
      std::vector<double> score(static_cast<std::size_t>(classes));
      std::vector<std::int64_t> local(pairs + 1, 0);
#pragma omp for schedule(dynamic, 16)
      for (std::int64_t r = 0; r < c; ++r) {
        select_top(s + r * n_train, n_train, kmax, top.data());
        const std::int64_t y = test.labels[static_cast<std::size_t>(begin + r)];
        const double best = top[0].s;  // shift: every weight <= 1, the first is 1
        for (std::size_t p = 0; p < pairs; ++p) {
          const std::int64_t kk = std::min(k_[p], n_train);
          const double inv_t = 1.0 / temperature_[p];
          std::fill(score.begin(), score.end(), 0.0);
          for (std::int64_t m = 0; m < kk; ++m)
            score[static_cast<std::size_t>(ytr[top[m].j])] += std::exp((top[m].s - best) * inv_t);
          // Rank of the true class: classes scoring more, or as much with a lower index.
          const double sy = score[static_cast<std::size_t>(y)];
          std::int64_t rank = 0;
          for (std::int64_t k = 0; k < classes; ++k) {
            const double sk = score[static_cast<std::size_t>(k)];
            rank += (sk > sy || (sk == sy && k < y)) ? 1 : 0;
          }
          local[p] += rank == 0 ? 1 : 0;
          if (p == 0) local[pairs] += rank < 5 ? 1 : 0;
        }
      }
#pragma omp critical(contra_knn_counts)
      for (std::size_t p = 0; p <= pairs; ++p) correct[p] += local[p];
    }
  }

  std::vector<std::pair<std::string, double>> out;
  for (std::size_t p = 0; p <= pairs; ++p)
    out.emplace_back(names_[p], static_cast<double>(correct[p]) / static_cast<double>(n_test));
  return out;
}

}  // namespace contra::plugins
