// @NAME@: a contra evaluator plugin. See README.md.
#include "@NAME@.hpp"

#include <contra/plugin.hpp>
#include <contra/rng.hpp>

#include <algorithm>
#include <cmath>

contra::Schema @CLASS@::schema() {
  // Every parameter once: name, default, help, range. Add yours with .add<T>().
  return contra::Schema("@NAME@", "nearest class mean accuracy on cosine similarity");
}

@CLASS@::@CLASS@(const contra::Params&) {}

// Skeleton: normalised class means of the train features; each test feature
// takes the class of the most similar mean. Replace with your measure.
std::vector<std::pair<std::string, double>> @CLASS@::evaluate(const contra::FeatureSet& train,
                                                             const contra::FeatureSet& test, std::uint64_t) {
  const std::int64_t dim = train.features.dim(1), classes = train.num_classes;
  std::vector<double> means(static_cast<std::size_t>(classes * dim), 0.0);
  auto row = [&](const contra::Tensor& t, std::int64_t i) { return t.data<float>() + i * dim; };
  for (std::int64_t i = 0; i < train.features.dim(0); ++i) {
    const float* x = row(train.features, i);
    double norm = 0;
    for (std::int64_t d = 0; d < dim; ++d) norm += static_cast<double>(x[d]) * x[d];
    norm = norm > 0 ? std::sqrt(norm) : 1.0;
    for (std::int64_t d = 0; d < dim; ++d) means[train.labels[i] * dim + d] += x[d] / norm;
  }
  std::int64_t correct = 0;
  for (std::int64_t i = 0; i < test.features.dim(0); ++i) {
    const float* x = row(test.features, i);
    std::int64_t best = 0;
    double best_s = -1e300;
    for (std::int64_t c = 0; c < classes; ++c) {
      double s = 0, n = 0;
      for (std::int64_t d = 0; d < dim; ++d) s += means[c * dim + d] * x[d], n += means[c * dim + d] * means[c * dim + d];
      s = n > 0 ? s / std::sqrt(n) : -1e300;
      if (s > best_s) best_s = s, best = c;
    }
    correct += best == test.labels[i];
  }
  const double n = static_cast<double>(std::max<std::int64_t>(1, test.features.dim(0)));
  return {{"top1", static_cast<double>(correct) / n}};
}

// The library's one exported symbol: its manifest (SDK ABI version and the
// plugins it provides), checked by contra before any code here runs.
CONTRA_PLUGIN_LIBRARY(CONTRA_EVALUATOR(@CLASS@))
