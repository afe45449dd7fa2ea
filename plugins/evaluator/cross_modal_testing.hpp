#pragma once
// Test helpers shared by test_retrieval.cpp and test_zero_shot.cpp:
// CrossModalFeatures from hand-written rows or clustered random rows,
// figures by name, and the checks of what both evaluators refuse.

#include <contra/errors.hpp>
#include <contra/rng.hpp>
#include <contra/roles/evaluator.hpp>

#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace contra::test::cross_modal {

using Figures = std::vector<std::pair<std::string, double>>;
using Rows = std::vector<std::vector<float>>;
using Labels = std::vector<std::int64_t>;

/// An [N, D] f32 tensor holding `rows` (all of one length).
inline Tensor tensor(const Rows& rows) {
  const auto n = static_cast<std::int64_t>(rows.size()), d = static_cast<std::int64_t>(rows[0].size());
  Tensor t = Tensor::empty({n, d}, DType::f32);
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t k = 0; k < d; ++k) t.data<float>()[i * d + k] = rows[i][k];
  return t;
}

inline CrossModalFeatures features(const Rows& queries, Labels query_labels, const Rows& gallery,
                                   Labels gallery_labels) {
  CrossModalFeatures f;
  f.queries = tensor(queries);
  f.query_labels = std::move(query_labels);
  f.gallery = tensor(gallery);
  f.gallery_labels = std::move(gallery_labels);
  return f;
}

/// A 2-D point at `degrees` from the x axis, `radius` from the origin (the
/// evaluators normalise rows: the radius must not matter).
inline std::vector<float> at_angle(double degrees, double radius = 1.0) {
  const double a = degrees * 3.14159265358979323846 / 180.0;
  return {static_cast<float>(radius * std::cos(a)), static_cast<float>(radius * std::sin(a))};
}

/// n rows of d dimensions, row i of class labels[i] around a seeded random
/// centre of that class, plus Gaussian noise.
inline Tensor clustered(const Labels& labels, std::int64_t d, std::int64_t classes, double noise,
                        std::uint64_t seed) {
  Rng centres(99, 0, 0, 0, 0);
  std::vector<float> mu(static_cast<std::size_t>(classes * d));
  for (auto& v : mu) v = static_cast<float>(centres.normal());
  Rng rng(seed, 0, 0, 0, 1);
  const auto n = static_cast<std::int64_t>(labels.size());
  Tensor t = Tensor::empty({n, d}, DType::f32);
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t k = 0; k < d; ++k)
      t.data<float>()[i * d + k] = mu[labels[i] * d + k] + static_cast<float>(noise * rng.normal());
  return t;
}

/// n labels drawn uniformly from [0, classes).
inline Labels random_labels(std::int64_t n, std::int64_t classes, std::uint64_t seed) {
  Rng rng(seed, 0, 0, 0, 2);
  Labels labels;
  for (std::int64_t i = 0; i < n; ++i) labels.push_back(rng.integer(0, classes - 1));
  return labels;
}

inline double figure(const Figures& f, const std::string& name) {
  for (const auto& [k, v] : f)
    if (k == name) return v;
  FAIL("figure " << name << " missing");
  return 0.0;
}

inline std::vector<std::string> names(const Figures& f) {
  std::vector<std::string> n;
  for (const auto& [k, v] : f) n.push_back(k);
  return n;
}

/// What both evaluators refuse, with the messages they give: the
/// single-tower path, and features whose shapes do not fit together.
inline void check_refusals(Evaluator& evaluator, const std::string& who) {
  CHECK(evaluator.cross_modal());
  FeatureSet split;
  split.features = tensor({{1, 0}});
  split.labels = {0};
  split.num_classes = 1;
  CHECK_THROWS_AS(evaluator.evaluate(split, split, 0), UsageError);
  CHECK_THROWS_WITH(evaluator.evaluate(split, split, 0),
                    who +
                        " is a cross-modal evaluator: it measures the images embedded by the first tower against "
                        "texts embedded by a text tower, and needs a pipeline with a text tower ([tower.NAME])");

  const Rows two_d{{1, 0}, {0, 1}, {1, 1}};
  auto fits = features(two_d, {0, 1, 0}, two_d, {0, 1, 0});
  CHECK_NOTHROW(evaluator.evaluate_cross_modal(fits, 0));

  auto wider = features(two_d, {0, 1, 0}, {{1, 0, 0}, {0, 1, 0}}, {0, 1});
  CHECK_THROWS_AS(evaluator.evaluate_cross_modal(wider, 0), UsageError);
  CHECK_THROWS_WITH(evaluator.evaluate_cross_modal(wider, 0),
                    who + ": queries have 2 dimensions, gallery rows 3; the towers must embed into one joint space");

  auto few_query_labels = features(two_d, {0, 1}, two_d, {0, 1, 0});
  CHECK_THROWS_AS(evaluator.evaluate_cross_modal(few_query_labels, 0), UsageError);
  CHECK_THROWS_WITH(evaluator.evaluate_cross_modal(few_query_labels, 0), who + ": queries: 2 labels for 3 rows");

  auto many_gallery_labels = features(two_d, {0, 1, 0}, two_d, {0, 1, 0, 1});
  CHECK_THROWS_WITH(evaluator.evaluate_cross_modal(many_gallery_labels, 0), who + ": gallery: 4 labels for 3 rows");

  auto empty_gallery = fits;
  empty_gallery.gallery = Tensor::empty({0, 2}, DType::f32);
  empty_gallery.gallery_labels.clear();
  CHECK_THROWS_WITH(evaluator.evaluate_cross_modal(empty_gallery, 0), who + ": gallery has no rows");

  auto ints = fits;
  ints.queries = Tensor::empty({3, 2}, DType::i32);
  CHECK_THROWS_WITH(evaluator.evaluate_cross_modal(ints, 0),
                    who + ": queries must be a [N, D] f32 tensor on the CPU, got [3, 2] i32 on cpu");

  auto undefined = fits;
  undefined.gallery = Tensor();
  CHECK_THROWS_WITH(evaluator.evaluate_cross_modal(undefined, 0),
                    who + ": gallery must be a [N, D] f32 tensor on the CPU, got an undefined tensor");
}

}  // namespace contra::test::cross_modal
