#include "zero_shot.hpp"

#include "../cross_modal_testing.hpp"

#include <contra/errors.hpp>
#include <contra/testing.hpp>

#include <catch2/catch.hpp>

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

using contra::plugins::ZeroShot;
using namespace contra::test::cross_modal;

namespace {

using Texts = std::vector<std::pair<std::string, std::int64_t>>;
using Strings = std::vector<std::string>;

ZeroShot make(Strings templates, Labels top_k = {1, 5}) {
  return ZeroShot(ZeroShot::schema().bind({{"templates", templates}, {"top_k", top_k}}));
}

Labels labels_of(const Texts& texts) {
  Labels l;
  for (const auto& [text, label] : texts) l.push_back(label);
  return l;
}

// The definition, written directly in double: class c's embedding is the
// normalised mean of its normalised prompts; the fraction of images (all of
// whose labels are classes 0..C-1) whose class has fewer than k other
// classes at least as similar.
double reference_top_k(const contra::CrossModalFeatures& f, std::int64_t classes, std::int64_t k) {
  const std::int64_t d = f.queries.dim(1);
  auto unit = [d](std::vector<double> x) {
    double ss = 0;
    for (double v : x) ss += v * v;
    for (double& v : x) v /= std::sqrt(ss);
    return x;
  };
  auto row = [d](const contra::Tensor& t, std::int64_t i) {
    return std::vector<double>(t.data<float>() + i * d, t.data<float>() + (i + 1) * d);
  };
  std::vector<std::vector<double>> class_rows(static_cast<std::size_t>(classes), std::vector<double>(d, 0.0));
  for (std::int64_t j = 0; j < f.gallery.dim(0); ++j) {
    const auto u = unit(row(f.gallery, j));
    for (std::int64_t m = 0; m < d; ++m) class_rows[f.gallery_labels[j]][m] += u[m];
  }
  for (auto& c : class_rows) c = unit(c);
  std::int64_t right = 0;
  for (std::int64_t i = 0; i < f.queries.dim(0); ++i) {
    const auto q = unit(row(f.queries, i));
    std::vector<double> sims;
    for (const auto& c : class_rows) {
      double dot = 0;
      for (std::int64_t m = 0; m < d; ++m) dot += q[m] * c[m];
      sims.push_back(dot);
    }
    const std::int64_t y = f.query_labels[i];
    std::int64_t rank = 0;
    for (std::int64_t c = 0; c < classes; ++c) rank += c != y && sims[c] >= sims[y];
    right += rank < k;
  }
  return static_cast<double>(right) / static_cast<double>(f.queries.dim(0));
}

}  // namespace

TEST_CASE("zero_shot: schema, defaults and figure names", "[evaluator]") {
  auto r = contra::testing::check_schema<ZeroShot>();
  INFO(r.message);
  CHECK(r.ok);
  ZeroShot zero_shot(ZeroShot::schema().bind({}));
  CHECK(zero_shot.cross_modal());
  CHECK(zero_shot.figure_names() == Strings{"top1", "top5", "classes"});
  // The default template is the bare class name.
  CHECK(zero_shot.gallery_texts({"cat", "dog"}) == Texts{{"cat", 0}, {"dog", 1}});
  const Figures f = zero_shot.evaluate_cross_modal(features({{1, 0}}, {0}, {{1, 0}, {0, 1}}, {0, 1}), 0);
  CHECK(names(f) == Strings{"top1", "top5", "classes"});
}

TEST_CASE("zero_shot: gallery texts are one prompt per (class, template), labelled by class", "[evaluator]") {
  const ZeroShot zero_shot = make({"a photo of a {}.", "{}, rendered"});
  CHECK(zero_shot.gallery_texts({"cat", "dog", "sea lion"}) == Texts{{"a photo of a cat.", 0},
                                                                       {"cat, rendered", 0},
                                                                       {"a photo of a dog.", 1},
                                                                       {"dog, rendered", 1},
                                                                       {"a photo of a sea lion.", 2},
                                                                       {"sea lion, rendered", 2}});
  // A class name is put in as it is, even one holding "{}".
  CHECK(make({"<{}>"}).gallery_texts({"x{}y"}) == Texts{{"<x{}y>", 0}});
}

TEST_CASE("zero_shot: class names are required", "[evaluator]") {
  const ZeroShot zero_shot(ZeroShot::schema().bind({}));
  CHECK_THROWS_AS(zero_shot.gallery_texts({}), contra::ConfigError);
  CHECK_THROWS_WITH(zero_shot.gallery_texts({}),
                    "the test split's source names no classes; zero_shot needs class names (Source::class_names)");
}

TEST_CASE("zero_shot: each template holds \"{}\" exactly once", "[evaluator]") {
  CHECK_THROWS_AS(make({"a photo"}), contra::ConfigError);
  CHECK_THROWS_WITH(make({"a photo"}), "error: zero_shot.templates: template 1 \"a photo\" holds \"{}\" 0 times; "
                                       "each template holds it exactly once, where the class name goes");
  CHECK_THROWS_WITH(make({"{}", "a {} and a {}"}),
                    "error: zero_shot.templates: template 2 \"a {} and a {}\" holds \"{}\" 2 times; "
                    "each template holds it exactly once, where the class name goes");
  CHECK_THROWS_AS(make({}), contra::ConfigError);  // at least one template
  CHECK_NOTHROW(make({"{}", "a photo of a {}.", "{{}}"}));
}

TEST_CASE("zero_shot: refuses top_k below 1 and repeated top_k", "[evaluator]") {
  CHECK_THROWS_AS(make({"{}"}, {0}), contra::ConfigError);
  CHECK_THROWS_WITH(make({"{}"}, {5, 1, 5}), "error: zero_shot.top_k: 5 is listed twice; each value names its own "
                                             "figures, which would collide");
}

TEST_CASE("zero_shot: prompt ensembling worked by hand changes the answer", "[evaluator]") {
  // Two classes, two templates; gallery rows in gallery_texts() order:
  //   class 0: template 0 at  50° (radius 1),  template 1 at -50° (radius 3)
  //   class 1: template 0 at  20° (radius 10), template 1 at 100° (radius 1)
  // Ensembled: the mean of the unit prompts of class 0 points at 0°, of class 1 at 60°.
  //   image  0° (label 0): cos 0° = 1     vs cos 60° = 0.5   -> class 0, right
  //   image 90° (label 1): cos 90° = 0    vs cos 30° = 0.866 -> class 1, right   top1 = 1
  // Template 0 alone (class 0 at 50°, class 1 at 20°):
  //   image  0°: cos 50° = 0.643 vs cos 20° = 0.940          -> class 1, wrong
  //   image 90°: cos 40° = 0.766 vs cos 70° = 0.342          -> class 0, wrong   top1 = 0
  // Averaging the prompts before normalising them would let the long ones dominate: class 0 at
  // -30.8°, class 1 at 25.5°, and image 0° would go to class 1 (cos 30.8° = 0.859 < cos 25.5° = 0.903).
  ZeroShot zero_shot = make({"a photo of a {}.", "a {} rendered"}, {1, 2});
  const Texts texts = zero_shot.gallery_texts({"cat", "dog"});
  REQUIRE(labels_of(texts) == Labels{0, 0, 1, 1});
  const Rows images{at_angle(0, 2.0), at_angle(90, 0.3)};
  const Figures both = zero_shot.evaluate_cross_modal(
      features(images, {0, 1}, {at_angle(50), at_angle(-50, 3.0), at_angle(20, 10.0), at_angle(100)}, labels_of(texts)),
      0);
  CHECK(figure(both, "top1") == 1.0);
  CHECK(figure(both, "top2") == 1.0);
  CHECK(figure(both, "classes") == 2.0);

  const Figures first_template =
      make({"a photo of a {}."}, {1, 2})
          .evaluate_cross_modal(features(images, {0, 1}, {at_angle(50), at_angle(20, 10.0)}, {0, 1}), 0);
  CHECK(figure(first_template, "top1") == 0.0);
  CHECK(figure(first_template, "top2") == 1.0);  // two classes: always within the top 2
}

TEST_CASE("zero_shot: a class as similar as the true one ranks before it", "[evaluator]") {
  // Image (1, 0) of class 0; class 0's prompt (1, -1), class 1's (1, 1): cosine 1/√2 both.
  const Figures f = make({"{}"}, {1, 2}).evaluate_cross_modal(features({{1, 0}}, {0}, {{1, -1}, {1, 1}}, {0, 1}), 0);
  CHECK(figure(f, "top1") == 0.0);
  CHECK(figure(f, "top2") == 1.0);
}

TEST_CASE("zero_shot: classes are the gallery's labels, images of other labels are not counted", "[evaluator]") {
  // Classes 3 (prompts at 0° and 10°) and 8 (at 90°); image labels 3, 8 and 5 (not a class).
  // Image 5° -> class 3 (right), image 80° -> class 8 (right), image 45° of label 5: not counted.
  ZeroShot zero_shot = make({"{}"}, {1, 5});
  const auto f = features({at_angle(5), at_angle(80), at_angle(45)}, {3, 8, 5},
                          {at_angle(0), at_angle(90), at_angle(10)}, {3, 8, 3});
  const Figures r = zero_shot.evaluate_cross_modal(f, 0);
  CHECK(figure(r, "top1") == 1.0);
  CHECK(figure(r, "top5") == 1.0);  // top_k above the number of classes: every counted image
  CHECK(figure(r, "classes") == 2.0);

  // The image at 80° labelled 3 instead is wrong: one of two counted images right.
  auto wrong = f;
  wrong.query_labels = {3, 3, 5};
  CHECK(figure(zero_shot.evaluate_cross_modal(wrong, 0), "top1") == 0.5);

  // No image has a class among the prompts': nothing to count.
  auto none = f;
  none.query_labels = {0, 1, 2};
  const Figures n = zero_shot.evaluate_cross_modal(none, 0);
  CHECK(std::isnan(figure(n, "top1")));
  CHECK(std::isnan(figure(n, "top5")));
  CHECK(figure(n, "classes") == 2.0);
}

TEST_CASE("zero_shot: refuses the single-tower path and features that do not fit", "[evaluator]") {
  ZeroShot zero_shot(ZeroShot::schema().bind({}));
  check_refusals(zero_shot, "zero_shot");
}

TEST_CASE("zero_shot: matches the definition on clustered data, whatever the thread count", "[evaluator]") {
  // 40 classes, 3 prompts each around the class centre; 500 images.
  const std::int64_t classes = 40;
  Labels prompt_labels;
  for (std::int64_t c = 0; c < classes; ++c)
    for (int t = 0; t < 3; ++t) prompt_labels.push_back(c);
  const Labels image_labels = random_labels(500, classes, 12);
  contra::CrossModalFeatures f;
  f.queries = clustered(image_labels, 16, classes, 1.0, 13);
  f.query_labels = image_labels;
  f.gallery = clustered(prompt_labels, 16, classes, 1.0, 14);
  f.gallery_labels = prompt_labels;
  ZeroShot zero_shot = make({"{}"}, {1, 5, 10});
  const Figures all = zero_shot.evaluate_cross_modal(f, 0);
  const int threads = omp_get_max_threads();
  omp_set_num_threads(1);
  const Figures serial = zero_shot.evaluate_cross_modal(f, 0);
  omp_set_num_threads(threads);
  CHECK(serial == all);
  for (std::int64_t k : {1, 5, 10})
    CHECK(figure(all, "top" + std::to_string(k)) == Approx(reference_top_k(f, classes, k)).margin(1e-12));
  CHECK(figure(all, "top1") > 0.3);
  CHECK(figure(all, "top1") < 1.0);
  CHECK(figure(all, "classes") == 40.0);
}
