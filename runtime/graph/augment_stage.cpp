#include "augment_stage.hpp"

#include <contra/errors.hpp>

#include <oneapi/tbb/blocked_range.h>
#include <oneapi/tbb/parallel_for.h>

namespace contra::runtime {

AugmentStage::AugmentStage(const std::vector<ViewChain>& views, std::uint64_t seed,
                           const std::vector<TextTower>* towers)
    : towers_(towers && !towers->empty() ? towers : nullptr), seed_(seed) {
  std::vector<ImageFormat> finals;
  for (const ViewChain& vc : views) {
    chains_.push_back(&vc.chain);
    parallel_ = parallel_ && vc.chain.parallel();
    for (std::int64_t c = 0; c < vc.count; ++c) {
      view_chain_.push_back(chains_.size() - 1);
      finals.push_back(vc.chain.output_format());
    }
  }
  // Views are grouped when consecutive and of one final size (assemble()
  // checked that they agree on channels).
  for (std::size_t v = 0; v < finals.size(); ++v) {
    if (groups_.empty() || !(groups_.back().format.shape == finals[v].shape))
      groups_.push_back({static_cast<std::int64_t>(v), 0, finals[v]});
    groups_.back().count++;
    view_group_.push_back(groups_.size() - 1);
  }
}

Shape AugmentStage::encoder_input() const {
  const ImageShape& s = groups_.front().format.shape;
  return Shape{s.channels, s.height, s.width};
}

void AugmentStage::run(BatchWork& w) const {
  const auto n = static_cast<std::int64_t>(w.indices.size());
  const std::int64_t views = this->views();
  w.batch.views = views;
  w.batch.more_images.resize(groups_.size() - 1);
  std::vector<float*> group_data(groups_.size());
  for (std::size_t g = 0; g < groups_.size(); ++g) {
    const ImageShape& s = groups_[g].format.shape;
    Tensor& t = g == 0 ? w.batch.images : w.batch.more_images[g - 1];
    t.ensure({groups_[g].count * n, s.channels, s.height, s.width}, DType::f32);
    group_data[g] = t.data<float>();
  }
  if (w.scratch.size() < static_cast<std::size_t>(2 * views * n)) w.scratch.resize(static_cast<std::size_t>(2 * views * n));

  auto one = [&](std::int64_t task) {
    const std::int64_t v = task / n, i = task % n;
    const AugmentChain& chain = *chains_[view_chain_[v]];
    const AugmentChain::Draw draw{seed_, static_cast<std::uint64_t>(w.batch.epoch),
                                  static_cast<std::uint64_t>(w.indices[i]), static_cast<std::uint32_t>(v),
                                  w.batch.step};
    const Tensor& image = chain.apply(w.raw[i], &w.scratch[2 * task], draw, "augment stage");
    const Group& g = groups_[view_group_[v]];
    const ImageShape& s = g.format.shape;
    const std::int64_t elems = s.channels * s.height * s.width;
    chain.collate(image, group_data[view_group_[v]] + ((v - g.first_view) * n + i) * elems, "augment stage", v);
  };
  if (parallel_)
    tbb::parallel_for(std::int64_t(0), views * n, one);
  else
    for (std::int64_t t = 0; t < views * n; ++t) one(t);
  if (towers_) make_tower_inputs(w);
}

void AugmentStage::make_tower_inputs(BatchWork& w) const {
  const auto n = static_cast<std::int64_t>(w.indices.size());
  const auto towers = static_cast<std::int64_t>(towers_->size());
  w.batch.views = views() + towers;
  w.batch.tower_inputs.resize(static_cast<std::size_t>(towers));
  if (w.texts.size() < static_cast<std::size_t>(n))
    throw UsageError("augment stage: the batch holds " + std::to_string(w.texts.size()) + " samples' texts for " +
                     std::to_string(n) + " samples (the load stage reads them)");
  for (std::int64_t t = 0; t < towers; ++t) {
    const TextTower& tower = (*towers_)[static_cast<std::size_t>(t)];
    Tensor& rows = w.batch.tower_inputs[static_cast<std::size_t>(t)];
    rows.ensure({n, tower.length()}, DType::i32);
    std::int32_t* data = rows.data<std::int32_t>();
    const auto view = static_cast<std::uint32_t>(views() + t);
    auto one = [&](std::int64_t i, TextTower::Scratch& scratch) {
      const TextTower::Draw draw{seed_, static_cast<std::uint64_t>(w.batch.epoch),
                                 static_cast<std::uint64_t>(w.indices[i]), view};
      tower.make_row(w.texts[i].at(tower.text_field()), draw, scratch, data + i * tower.length());
    };
    if (tower.parallel()) {
      tbb::parallel_for(tbb::blocked_range<std::int64_t>(0, n), [&](const tbb::blocked_range<std::int64_t>& r) {
        TextTower::Scratch scratch;
        for (std::int64_t i = r.begin(); i < r.end(); ++i) one(i, scratch);
      });
    } else {
      TextTower::Scratch scratch;
      for (std::int64_t i = 0; i < n; ++i) one(i, scratch);
    }
  }
}

}  // namespace contra::runtime
