// @NAME@: a contra loss plugin. See README.md.
#include "@NAME@.hpp"

#include <contra/plugin.hpp>
#include <contra/rng.hpp>

#include <algorithm>
#include <cmath>

contra::Schema @CLASS@::schema() {
  // Every parameter once: name, default, help, range. The runtime validates a
  // pipeline's [loss] table against this and `contra plugins --describe`
  // prints it.
  return contra::Schema("@NAME@", "weighted mean squared distance of positive pairs")
      .add<double>("weight", 1.0, "factor of the loss").range(0.0, 1e3);
}

@CLASS@::@CLASS@(const contra::Params& p) : weight_(p.get<double>("weight")) {}

// Skeleton: L = weight · mean over positive pairs (i, j) of ½‖z_i − z_j‖²,
// the positives being the miner's list or, without one, every pair of rows
// of one sample. Replace it with your loss; keep out.grad = dL/dz.
void @CLASS@::compute(const contra::Embeddings& z, const contra::Pairs& pairs, contra::LossResult& out) {
  if (!pairs.triplets.empty()) throw contra::UsageError("@NAME@: takes pairs, not triplets");
  const std::int64_t rows = z.rows(), dim = z.z.dim(1);
  positives_.clear();
  if (!pairs.positive.empty() && !pairs.all) {
    positives_ = pairs.positive;
  } else {
    for (std::int32_t i = 0; i < rows; ++i)
      for (std::int32_t j = 0; j < rows; ++j)
        if (i != j && (*z.sample)[i] == (*z.sample)[j]) positives_.push_back({i, j});
  }
  out.grad.ensure(z.z.shape(), contra::DType::f32);
  out.grad.zero();
  const float* x = z.z.data<float>();
  float* g = out.grad.data<float>();
  double sum = 0;
  const double scale = positives_.empty() ? 0.0 : weight_ / static_cast<double>(positives_.size());
  for (const auto& [i, j] : positives_) {
    for (std::int64_t d = 0; d < dim; ++d) {
      const double diff = static_cast<double>(x[i * dim + d]) - x[j * dim + d];
      sum += 0.5 * diff * diff;
      g[i * dim + d] += static_cast<float>(scale * diff);
      g[j * dim + d] -= static_cast<float>(scale * diff);
    }
  }
  out.value = scale * sum;
  out.metrics.push_back({"positive_pairs", static_cast<double>(positives_.size())});
}

// The library's one exported symbol: its manifest (SDK ABI version and the
// plugins it provides), checked by contra before any code here runs.
CONTRA_PLUGIN_LIBRARY(CONTRA_LOSS(@CLASS@))
