#include "retrieval.hpp"

#include "../cross_modal.hpp"
#include "../cross_modal_testing.hpp"

#include <contra/blas.hpp>
#include <contra/errors.hpp>
#include <contra/testing.hpp>

#include <catch2/catch.hpp>

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <iostream>
#include <string>
#include <vector>

using contra::plugins::Retrieval;
using namespace contra::test::cross_modal;

namespace {

Retrieval make(Labels k) { return Retrieval(Retrieval::schema().bind({{"k", k}})); }

// The definition, written directly: similarities in double, every pair.
// For each row of `from`, the 0-based rank of its first match among `to`
// (ties against the match), -1 without a match.
Labels reference_ranks(const contra::Tensor& from, const Labels& from_labels, const contra::Tensor& to,
                       const Labels& to_labels) {
  const std::int64_t d = from.dim(1);
  auto unit = [d](const float* x) {
    double ss = 0;
    for (std::int64_t k = 0; k < d; ++k) ss += double(x[k]) * x[k];
    std::vector<double> u(static_cast<std::size_t>(d));
    for (std::int64_t k = 0; k < d; ++k) u[k] = x[k] / std::sqrt(ss);
    return u;
  };
  Labels ranks;
  for (std::int64_t i = 0; i < from.dim(0); ++i) {
    const auto q = unit(from.data<float>() + i * d);
    std::vector<double> sims;
    for (std::int64_t j = 0; j < to.dim(0); ++j) {
      const auto g = unit(to.data<float>() + j * d);
      double dot = 0;
      for (std::int64_t k = 0; k < d; ++k) dot += q[k] * g[k];
      sims.push_back(dot);
    }
    double best = -2;
    for (std::size_t j = 0; j < sims.size(); ++j)
      if (to_labels[j] == from_labels[i]) best = std::max(best, sims[j]);
    std::int64_t rank = best == -2 ? -1 : 0;
    for (std::size_t j = 0; j < sims.size() && best != -2; ++j)
      rank += to_labels[j] != from_labels[i] && sims[j] >= best;
    ranks.push_back(rank);
  }
  return ranks;
}

double recall(const Labels& ranks, std::int64_t k) {
  return static_cast<double>(std::count_if(ranks.begin(), ranks.end(), [k](auto r) { return r >= 0 && r < k; })) /
         static_cast<double>(ranks.size());
}

}  // namespace

TEST_CASE("retrieval: schema, defaults and figure names", "[evaluator]") {
  auto r = contra::testing::check_schema<Retrieval>();
  INFO(r.message);
  CHECK(r.ok);
  Retrieval retrieval(Retrieval::schema().bind({}));
  CHECK(retrieval.cross_modal());
  CHECK(retrieval.gallery_texts({"cat", "dog"}).empty());  // the gallery is the split's own texts
  const std::vector<std::string> expected{"i2t_r1",  "i2t_r5",  "i2t_r10", "i2t_mean_rank",
                                          "t2i_r1",  "t2i_r5",  "t2i_r10", "t2i_mean_rank"};
  CHECK(retrieval.figure_names() == expected);
  const Figures f = retrieval.evaluate_cross_modal(features({{1, 0}}, {0}, {{1, 0}}, {0}), 0);
  CHECK(names(f) == expected);
}

TEST_CASE("retrieval: three images and three texts worked by hand", "[evaluator]") {
  // Images (queries) at 0, 90 and 180 degrees, labels 0, 1, 2; texts (gallery)
  // at 10, 60 and 100 degrees, labels 0, 1, 2. Radii differ: rows are normalised.
  //
  // i2t, cosines to texts 10° / 60° / 100°:
  //   image   0°: 0.985 / 0.500 / -0.174   match (10°) first           -> rank 1
  //   image  90°: 0.174 / 0.866 /  0.985   100° (label 2) beats 60°    -> rank 2
  //   image 180°: -0.985 / -0.500 / 0.174  match (100°) first          -> rank 1
  //   R@1 = 2/3, R@2 = 1, mean rank = (1 + 2 + 1) / 3 = 4/3.
  // t2i, cosines to images 0° / 90° / 180°:
  //   text  10°: 0.985 / 0.174 / -0.985    match (0°) first            -> rank 1
  //   text  60°: 0.500 / 0.866 / -0.500    match (90°) first           -> rank 1
  //   text 100°: -0.174 / 0.985 / 0.174    90° (label 1) beats 180°    -> rank 2
  //   R@1 = 2/3, R@2 = 1, mean rank = 4/3.
  const auto f = features({at_angle(0, 2.0), at_angle(90, 0.5), at_angle(180)}, {0, 1, 2},
                          {at_angle(10), at_angle(60, 3.0), at_angle(100, 0.1)}, {0, 1, 2});
  const Figures r = make({1, 2}).evaluate_cross_modal(f, 0);
  CHECK(names(r) == std::vector<std::string>{"i2t_r1", "i2t_r2", "i2t_mean_rank", "t2i_r1", "t2i_r2",
                                             "t2i_mean_rank"});
  CHECK(figure(r, "i2t_r1") == Approx(2.0 / 3.0));
  CHECK(figure(r, "i2t_r2") == 1.0);
  CHECK(figure(r, "i2t_mean_rank") == Approx(4.0 / 3.0));
  CHECK(figure(r, "t2i_r1") == Approx(2.0 / 3.0));
  CHECK(figure(r, "t2i_r2") == 1.0);
  CHECK(figure(r, "t2i_mean_rank") == Approx(4.0 / 3.0));
}

TEST_CASE("retrieval: several texts of one label (captions of one image class)", "[evaluator]") {
  // Images: 0° (label 0), 90° (label 1). Texts: 170° and 20° (label 0), 10° and 80° (label 1).
  // i2t: image 0° sees 10° (label 1, 0.985) above its best match 20° (0.940)  -> rank 2;
  //      image 90° sees its match 80° (0.985) first                           -> rank 1.
  //      R@1 = 1/2, R@2 = 1, mean rank = 3/2. The far caption 170° does not matter: the
  //      best match counts.
  // t2i (two images to rank):
  //   text 170° (label 0): image 0° -0.985, image 90° 0.174 (non-match above) -> rank 2
  //   text  20° (label 0): image 0° 0.940 first                               -> rank 1
  //   text  10° (label 1): image 0° 0.985 (non-match above), 90° 0.174        -> rank 2
  //   text  80° (label 1): image 90° 0.985 first                              -> rank 1
  //   R@1 = 2/4, R@2 = 1, mean rank = 6/4.
  const auto f = features({at_angle(0), at_angle(90)}, {0, 1},
                          {at_angle(170), at_angle(20), at_angle(10), at_angle(80)}, {0, 0, 1, 1});
  const Figures r = make({1, 2}).evaluate_cross_modal(f, 0);
  CHECK(figure(r, "i2t_r1") == 0.5);
  CHECK(figure(r, "i2t_r2") == 1.0);
  CHECK(figure(r, "i2t_mean_rank") == 1.5);
  CHECK(figure(r, "t2i_r1") == 0.5);
  CHECK(figure(r, "t2i_r2") == 1.0);
  CHECK(figure(r, "t2i_mean_rank") == 1.5);
}

TEST_CASE("retrieval: a non-match as similar as the match ranks before it", "[evaluator]") {
  // Image (1, 0) label 0; texts (1, 1) label 1 and (1, -1) label 0, both at cosine 1/√2 exactly:
  // the tie goes against the match whatever the gallery order.
  for (bool match_first : {false, true}) {
    const auto f = match_first ? features({{1, 0}}, {0}, {{1, -1}, {1, 1}}, {0, 1})
                               : features({{1, 0}}, {0}, {{1, 1}, {1, -1}}, {1, 0});
    const Figures r = make({1, 2}).evaluate_cross_modal(f, 0);
    CHECK(figure(r, "i2t_r1") == 0.0);
    CHECK(figure(r, "i2t_r2") == 1.0);
    CHECK(figure(r, "i2t_mean_rank") == 2.0);
  }
  // Collapsed embeddings: every row the same, every similarity 1. Each row ranks every
  // non-matching row first: R@1 = 0 rather than 1, and the mean rank is that of the last
  // place (2 of 2 texts, 3 of 3 images).
  const auto collapsed = features({{0, 2}, {0, 1}, {0, 3}}, {0, 1, 2}, {{0, 1}, {0, 5}}, {0, 1});
  const Figures c = make({1, 3}).evaluate_cross_modal(collapsed, 0);
  CHECK(figure(c, "i2t_r1") == 0.0);
  CHECK(figure(c, "i2t_r3") == Approx(2.0 / 3.0));  // image of label 2 has no text: a miss at every k
  CHECK(figure(c, "i2t_mean_rank") == 2.0);         // over the two images with a match
  CHECK(figure(c, "t2i_r1") == 0.0);
  CHECK(figure(c, "t2i_r3") == 1.0);
  CHECK(figure(c, "t2i_mean_rank") == 3.0);
}

TEST_CASE("retrieval: k above the gallery size, and labels that never match", "[evaluator]") {
  // Two texts: any k >= 2 retrieves every image that has a matching text at all.
  const auto f = features({at_angle(0), at_angle(90), at_angle(45)}, {0, 1, 2}, {at_angle(90), at_angle(0)}, {0, 1});
  const Figures r = make({2, 100}).evaluate_cross_modal(f, 0);
  CHECK(figure(r, "i2t_r2") == Approx(2.0 / 3.0));  // label 2 has no text
  CHECK(figure(r, "i2t_r100") == Approx(2.0 / 3.0));
  CHECK(figure(r, "t2i_r100") == 1.0);

  // No label in common: nothing is ever retrieved; there is no rank to average.
  const auto apart = features({at_angle(0), at_angle(90)}, {0, 1}, {at_angle(0), at_angle(90)}, {2, 3});
  const Figures none = make({1, 5, 10}).evaluate_cross_modal(apart, 0);
  for (const auto& [name, value] : none) {
    INFO(name);
    if (name.find("mean_rank") != std::string::npos)
      CHECK(std::isnan(value));
    else
      CHECK(value == 0.0);
  }
}

TEST_CASE("retrieval: refuses the single-tower path and features that do not fit", "[evaluator]") {
  Retrieval retrieval(Retrieval::schema().bind({}));
  check_refusals(retrieval, "retrieval");
}

TEST_CASE("retrieval: refuses k below 1 and repeated k", "[evaluator]") {
  CHECK_THROWS_AS(make({0}), contra::ConfigError);
  CHECK_THROWS_AS(make({}), contra::ConfigError);
  CHECK_THROWS_AS(make({1, 5, 1}), contra::ConfigError);
  CHECK_THROWS_WITH(make({1, 5, 1}),
                    "error: retrieval.k: 1 is listed twice; each value names its own figures, which would collide");
}

TEST_CASE("retrieval: similarity blocks cover the rows in order, as one sgemm would", "[evaluator]") {
  // 70 × 50 unit rows in blocks of at most 7 rows (350 / 50): 10 blocks.
  const auto a = clustered(random_labels(70, 3, 1), 6, 3, 1.0, 2);
  const auto b = clustered(random_labels(50, 3, 3), 6, 3, 1.0, 4);
  const auto ua = contra::plugins::cross_modal::unit_rows(a);
  const auto ub = contra::plugins::cross_modal::unit_rows(b);
  std::vector<float> whole(70 * 50), blocked(70 * 50, -9.0f);
  contra::sgemm(false, true, 70, 50, 6, 1.0f, ua.data(), 6, ub.data(), 6, 0.0f, whole.data(), 50);
  std::int64_t next = 0, blocks = 0;
  contra::plugins::cross_modal::for_each_similarity_block(
      ua.data(), 70, ub.data(), 50, 6,
      [&](std::int64_t first, std::int64_t count, const float* sims) {
        CHECK(first == next);
        CHECK(count <= 7);
        std::copy(sims, sims + count * 50, blocked.begin() + first * 50);
        next = first + count;
        ++blocks;
      },
      350);
  CHECK(next == 70);
  CHECK(blocks == 10);
  for (std::size_t i = 0; i < whole.size(); ++i) CHECK(blocked[i] == Approx(whole[i]).margin(1e-6));
}

TEST_CASE("retrieval: matches the definition on clustered data, whatever the thread count", "[evaluator]") {
  // 300 images and 200 texts of 12 classes: several texts per label, as with captions.
  const Labels image_labels = random_labels(300, 12, 5), text_labels = random_labels(200, 12, 6);
  contra::CrossModalFeatures f;
  f.queries = clustered(image_labels, 16, 12, 1.2, 7);
  f.query_labels = image_labels;
  f.gallery = clustered(text_labels, 16, 12, 1.2, 8);
  f.gallery_labels = text_labels;
  Retrieval retrieval = make({1, 5, 10, 50});
  const Figures all = retrieval.evaluate_cross_modal(f, 0);
  const int threads = omp_get_max_threads();
  omp_set_num_threads(1);
  const Figures serial = retrieval.evaluate_cross_modal(f, 0);
  omp_set_num_threads(threads);
  CHECK(serial == all);

  const Labels i2t = reference_ranks(f.queries, image_labels, f.gallery, text_labels);
  const Labels t2i = reference_ranks(f.gallery, text_labels, f.queries, image_labels);
  for (std::int64_t k : {1, 5, 10, 50}) {
    CHECK(figure(all, "i2t_r" + std::to_string(k)) == Approx(recall(i2t, k)).margin(1e-12));
    CHECK(figure(all, "t2i_r" + std::to_string(k)) == Approx(recall(t2i, k)).margin(1e-12));
  }
  // Clusters with noise: far better than chance, not perfect.
  CHECK(figure(all, "i2t_r1") > 0.3);
  CHECK(figure(all, "i2t_r1") < 1.0);
  CHECK(figure(all, "i2t_r1") <= figure(all, "i2t_r5"));
}

TEST_CASE("retrieval: 10k images x 10k texts x 512 timing", "[.][bench]") {
  const Labels labels = random_labels(10000, 1000, 9);
  contra::CrossModalFeatures f;
  f.queries = clustered(labels, 512, 1000, 3.0, 10);
  f.query_labels = labels;
  f.gallery = clustered(labels, 512, 1000, 3.0, 11);
  f.gallery_labels = labels;
  Retrieval retrieval(Retrieval::schema().bind({}));
  const auto t0 = std::chrono::steady_clock::now();
  const Figures r = retrieval.evaluate_cross_modal(f, 0);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::cout << "retrieval 10000 x 10000 x 512, defaults, " << omp_get_max_threads() << " threads: " << s << " s\n";
  for (const auto& [k, v] : r) std::cout << "  " << k << " = " << v << "\n";
}
