#include "zero_shot.hpp"

#include "../cross_modal.hpp"

#include <contra/errors.hpp>
#include <contra/l2_normalize.hpp>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <numeric>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace contra::plugins {

namespace {

namespace cm = cross_modal;

constexpr const char* who = "zero_shot";
// Where a template takes the class name.
constexpr std::string_view placeholder = "{}";

std::size_t placeholders(const std::string& text) {
  std::size_t n = 0;
  for (auto at = text.find(placeholder); at != std::string::npos; at = text.find(placeholder, at + placeholder.size()))
    ++n;
  return n;
}

// Index of `label` in the ascending `classes`, or -1 when it is not a class.
std::int64_t class_index(const std::vector<std::int64_t>& classes, std::int64_t label) {
  const auto at = std::lower_bound(classes.begin(), classes.end(), label);
  return at != classes.end() && *at == label ? at - classes.begin() : -1;
}

// CLIP's prompt ensembling: each class's embedding is the mean of its
// prompts' unit rows, scaled to unit length again (C × d, row c for
// classes[c]). Sums in double: the mean does not depend on the prompts' order.
std::vector<float> class_embeddings(const std::vector<float>& unit_prompts, const std::vector<std::int64_t>& labels,
                                    const std::vector<std::int64_t>& classes, std::int64_t d) {
  const auto n_classes = static_cast<std::int64_t>(classes.size());
  std::vector<double> sum(static_cast<std::size_t>(n_classes * d), 0.0);
  std::vector<std::int64_t> prompts(classes.size(), 0);
  for (std::size_t j = 0; j < labels.size(); ++j) {
    const std::int64_t c = class_index(classes, labels[j]);
    ++prompts[c];
    for (std::int64_t k = 0; k < d; ++k) sum[c * d + k] += unit_prompts[j * d + k];
  }
  std::vector<float> mean(sum.size());
  for (std::int64_t c = 0; c < n_classes; ++c)
    for (std::int64_t k = 0; k < d; ++k)
      mean[c * d + k] = static_cast<float>(sum[c * d + k] / static_cast<double>(prompts[c]));
  l2_normalize_rows(mean.data(), n_classes, d, mean.data(), nullptr);
  return mean;
}

}  // namespace

contra::Schema ZeroShot::schema() {
  return contra::Schema("zero_shot",
                        "CLIP zero-shot classification: images against prompt-ensembled class names (cosine)")
      .add<std::vector<std::string>>("templates", std::vector<std::string>{"{}"},
                                     "prompts per class, each with \"{}\" once where the class name goes, e.g. "
                                     "\"a photo of a {}.\"; a class's text embedding is their mean")
      .length(1, -1)
      .add<std::vector<std::int64_t>>("top_k", {1, 5},
                                      "a prediction is right when the true class is among the k most similar: "
                                      "figures top<k>")
      .at_least(1)
      .length(1, -1);
}

ZeroShot::ZeroShot(const contra::Params& p)
    : templates_(p.get<std::vector<std::string>>("templates")), top_k_(cm::distinct_list(p, "top_k")) {
  for (std::size_t t = 0; t < templates_.size(); ++t)
    if (const std::size_t n = placeholders(templates_[t]); n != 1)
      cm::bad_param(p, "templates",
                    "template " + std::to_string(t + 1) + " \"" + templates_[t] + "\" holds \"{}\" " +
                        std::to_string(n) + " times; each template holds it exactly once, where the class name goes");
  for (std::int64_t k : top_k_) names_.push_back("top" + std::to_string(k));
  names_.push_back("classes");
}

std::vector<std::pair<std::string, std::int64_t>> ZeroShot::gallery_texts(
    const std::vector<std::string>& class_names) const {
  if (class_names.empty())
    throw ConfigError(
        "the test split's source names no classes; zero_shot needs class names (Source::class_names)");
  std::vector<std::pair<std::string, std::int64_t>> texts;
  texts.reserve(class_names.size() * templates_.size());
  for (std::size_t c = 0; c < class_names.size(); ++c)
    for (const std::string& t : templates_) {
      std::string prompt = t;
      prompt.replace(prompt.find(placeholder), placeholder.size(), class_names[c]);
      texts.emplace_back(std::move(prompt), static_cast<std::int64_t>(c));
    }
  return texts;
}

std::vector<std::pair<std::string, double>> ZeroShot::evaluate(const contra::FeatureSet&, const contra::FeatureSet&,
                                                               std::uint64_t) {
  cm::refuse_single_tower(who);
}

std::vector<std::pair<std::string, double>> ZeroShot::evaluate_cross_modal(const contra::CrossModalFeatures& f,
                                                                           std::uint64_t) {
  const std::int64_t d = cm::check_features(who, f);
  // The classes: the distinct gallery labels, ascending.
  std::vector<std::int64_t> classes = f.gallery_labels;
  std::sort(classes.begin(), classes.end());
  classes.erase(std::unique(classes.begin(), classes.end()), classes.end());
  const auto n_classes = static_cast<std::int64_t>(classes.size());
  const std::vector<float> class_rows = class_embeddings(cm::unit_rows(f.gallery), f.gallery_labels, classes, d);
  const std::vector<float> images = cm::unit_rows(f.queries);

  // Each image's true class as an index into `classes` (-1: not a class),
  // and the rank of the true class among the classes by similarity (-1 for
  // an image that is not counted: -1 matches no class id).
  const auto n_images = static_cast<std::int64_t>(f.query_labels.size());
  std::vector<std::int64_t> truth(f.query_labels.size()), ranks(f.query_labels.size());
  for (std::size_t i = 0; i < truth.size(); ++i) truth[i] = class_index(classes, f.query_labels[i]);
  std::vector<std::int64_t> class_ids(classes.size());
  std::iota(class_ids.begin(), class_ids.end(), 0);
  auto rank_block = [&](std::int64_t first, std::int64_t count, const float* sims) {
#pragma omp parallel for schedule(static)
    for (std::int64_t r = 0; r < count; ++r)
      ranks[first + r] = cm::first_match_rank(sims + r * n_classes, class_ids.data(), n_classes, truth[first + r]);
  };
  cm::for_each_similarity_block(images.data(), n_images, class_rows.data(), n_classes, d, rank_block);

  const auto counted = std::count_if(truth.begin(), truth.end(), [](std::int64_t c) { return c >= 0; });
  std::vector<std::pair<std::string, double>> out;
  for (std::size_t p = 0; p < top_k_.size(); ++p)
    out.emplace_back(names_[p], counted > 0 ? static_cast<double>(cm::count_within(ranks, top_k_[p])) /
                                                  static_cast<double>(counted)
                                            : std::numeric_limits<double>::quiet_NaN());
  out.emplace_back(names_.back(), static_cast<double>(n_classes));
  return out;
}

}  // namespace contra::plugins
