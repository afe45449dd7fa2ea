#include "class_balanced.hpp"

#include <contra/rng.hpp>

#include <algorithm>
#include <cstddef>
#include <map>
#include <string>

namespace contra::plugins {

namespace {

std::string count(std::int64_t n, const char* one, const char* many) {
  return std::to_string(n) + " " + (n == 1 ? one : many);
}

void shuffle(std::vector<std::int64_t>& v, contra::Rng& rng) {
  for (std::int64_t i = static_cast<std::int64_t>(v.size()) - 1; i > 0; --i)
    std::swap(v[static_cast<std::size_t>(i)], v[static_cast<std::size_t>(rng.integer(0, i))]);
}

// One stream of shuffled permutations of a set: `perm` is the current
// permutation and `pos` how much of it has been handed out.
struct Stream {
  std::vector<std::int64_t> perm;
  std::size_t pos;
  contra::Rng rng;
};

// Appends `n` distinct members of the stream to `out`. When the current
// permutation runs out, a new one is shuffled and the members this call has
// already taken are moved (stably) to its back, so they are not repeated here
// but still come once in that permutation. Needs n <= perm.size().
void draw(Stream& s, std::size_t n, std::vector<std::int64_t>& out) {
  const std::size_t start = out.size();
  const std::size_t r = std::min(n, s.perm.size() - s.pos);
  out.insert(out.end(), s.perm.begin() + static_cast<std::ptrdiff_t>(s.pos),
             s.perm.begin() + static_cast<std::ptrdiff_t>(s.pos + r));
  s.pos += r;
  if (r == n) return;
  shuffle(s.perm, s.rng);
  if (r > 0) {
    auto fresh = [&](std::int64_t x) {
      return std::find(out.begin() + static_cast<std::ptrdiff_t>(start), out.end(), x) == out.end();
    };
    std::stable_partition(s.perm.begin(), s.perm.end(), fresh);
  }
  const std::size_t rest = n - r;
  out.insert(out.end(), s.perm.begin(), s.perm.begin() + static_cast<std::ptrdiff_t>(rest));
  s.pos = rest;
}

}  // namespace

contra::Schema ClassBalancedSampler::schema() {
  return contra::Schema("class_balanced", "P classes x K samples per batch (needs labels)")
      .add<std::int64_t>("classes_per_batch", 16, "distinct classes in each batch (P)").at_least(1)
      .add<std::int64_t>("samples_per_class", 4, "distinct samples of each of those classes (K); batch = P*K")
      .at_least(1);
}

ClassBalancedSampler::ClassBalancedSampler(const contra::Params& p)
    : per_batch_(p.get<std::int64_t>("classes_per_batch")),
      per_class_(p.get<std::int64_t>("samples_per_class")) {}

void ClassBalancedSampler::configure(const contra::SamplerContext& ctx) {
  if (!ctx.labels)
    throw ConfigError(
        "class_balanced: needs a labelled source, but the source gives no labels (use a sampler that "
        "ignores labels, e.g. random)");
  if (ctx.dataset_size < 1)
    throw ConfigError("class_balanced: the data set is empty; there is nothing to sample");
  if (static_cast<std::int64_t>(ctx.labels->size()) != ctx.dataset_size)
    throw UsageError("class_balanced: the source has " + count(ctx.dataset_size, "sample", "samples") +
                     " but " + count(static_cast<std::int64_t>(ctx.labels->size()), "label", "labels"));

  std::map<std::int64_t, std::vector<std::int64_t>> by_label;
  for (std::int64_t i = 0; i < ctx.dataset_size; ++i) by_label[(*ctx.labels)[static_cast<std::size_t>(i)]].push_back(i);
  const auto classes = static_cast<std::int64_t>(by_label.size());
  if (classes < per_batch_)
    throw ConfigError("class_balanced: classes_per_batch = " + std::to_string(per_batch_) +
                      " but the data set has only " + count(classes, "class", "classes") +
                      " (lower classes_per_batch to at most " + std::to_string(classes) + ")");
  std::int64_t smallest_label = 0, smallest = -1, short_classes = 0;
  for (const auto& [label, ids] : by_label) {
    const auto n = static_cast<std::int64_t>(ids.size());
    if (n < per_class_) ++short_classes;
    if (smallest < 0 || n < smallest) smallest = n, smallest_label = label;
  }
  if (short_classes > 0)
    throw ConfigError("class_balanced: samples_per_class = " + std::to_string(per_class_) + " but class " +
                      std::to_string(smallest_label) + " has only " + count(smallest, "sample", "samples") +
                      " (" + std::to_string(short_classes) + " of " + std::to_string(classes) +
                      " classes have fewer than " + std::to_string(per_class_) +
                      "); a batch would have to repeat a sample, which the loss would take as its own "
                      "negative (lower samples_per_class to at most " + std::to_string(smallest) +
                      " or leave those classes out of the source)");

  members_.clear();
  members_.reserve(by_label.size());
  for (auto& [label, ids] : by_label) members_.push_back(std::move(ids));
  size_ = ctx.dataset_size;
  seed_ = ctx.seed;
  cached_epoch_ = -1;
  epoch_.clear();
}

std::int64_t ClassBalancedSampler::batches_per_epoch() const {
  if (size_ < 0) throw UsageError("class_balanced: batches_per_epoch() called before configure()");
  return size_ / (per_batch_ * per_class_);
}

void ClassBalancedSampler::build_epoch(std::int64_t epoch) {
  const auto e = static_cast<std::uint64_t>(epoch);
  Stream classes{{}, 0, contra::Rng(seed_, e, 0, 0, class_op)};
  classes.perm.resize(members_.size());
  for (std::size_t c = 0; c < members_.size(); ++c) classes.perm[c] = static_cast<std::int64_t>(c);
  classes.pos = classes.perm.size();  // exhausted: the first draw shuffles
  std::vector<Stream> samples;
  samples.reserve(members_.size());
  for (std::size_t c = 0; c < members_.size(); ++c)
    samples.push_back(Stream{members_[c], members_[c].size(), contra::Rng(seed_, e, c, 0, sample_op)});

  const std::int64_t batches = batches_per_epoch();
  epoch_.clear();
  epoch_.reserve(static_cast<std::size_t>(batches * per_batch_ * per_class_));
  std::vector<std::int64_t> chosen;
  for (std::int64_t b = 0; b < batches; ++b) {
    chosen.clear();
    draw(classes, static_cast<std::size_t>(per_batch_), chosen);
    for (std::int64_t c : chosen) draw(samples[static_cast<std::size_t>(c)], static_cast<std::size_t>(per_class_), epoch_);
  }
  cached_epoch_ = epoch;
}

void ClassBalancedSampler::plan(std::int64_t epoch, std::int64_t batch, std::vector<std::int64_t>& indices) {
  if (size_ < 0) throw UsageError("class_balanced: plan() called before configure()");
  const std::int64_t batches = batches_per_epoch();
  if (epoch < 0 || batch < 0 || batch >= batches)
    throw UsageError("class_balanced: plan(" + std::to_string(epoch) + ", " + std::to_string(batch) +
                     ") outside epochs >= 0 and batches [0, " + std::to_string(batches) + ")");
  if (epoch != cached_epoch_) build_epoch(epoch);
  const std::int64_t n = per_batch_ * per_class_;
  indices.assign(epoch_.begin() + batch * n, epoch_.begin() + (batch + 1) * n);
}

}  // namespace contra::plugins
