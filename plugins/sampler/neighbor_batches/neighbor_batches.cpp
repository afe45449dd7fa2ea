#include "neighbor_batches.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>

namespace contra::plugins {

namespace {

// Members compared when looking for a far-apart pair to split along.
constexpr std::int64_t pivot_candidates = 32;

std::string located(const contra::Params& p, const char* key) {
  std::string where = p.where(key).str();
  return where.empty() ? std::string() : where + ": ";
}
std::string key(const contra::Params& p, const char* name) {
  return p.prefix().empty() ? std::string(name) : p.prefix() + "." + name;
}

template <class T> void shuffle(std::vector<T>& v, contra::Rng& rng) {
  for (std::int64_t i = static_cast<std::int64_t>(v.size()) - 1; i > 0; --i)
    std::swap(v[static_cast<std::size_t>(i)], v[static_cast<std::size_t>(rng.integer(0, i))]);
}

float dist2(const float* a, const float* b, std::int64_t d) {
  float s = 0.0f;
  for (std::int64_t k = 0; k < d; ++k) s += (a[k] - b[k]) * (a[k] - b[k]);
  return s;
}

}  // namespace

contra::Schema NeighborBatchesSampler::schema() {
  return contra::Schema("neighbor_batches",
                        "batches of groups of mutually near samples (hard negatives), from fed-back embeddings")
      .add<std::int64_t>("batch_size", 256, "samples per batch").at_least(1)
      .add<std::int64_t>("refresh", 200, "steps between snapshots of the embeddings the groups are built from")
      .at_least(1)
      .add<std::int64_t>("cluster_size", 16,
                         "samples per group of near neighbours; a batch is batch_size / cluster_size groups")
      .at_least(1)
      .add<std::int64_t>("warmup_steps", -1, "steps planned at random before snapshots are used; -1 = refresh")
      .at_least(-1);
}

NeighborBatchesSampler::NeighborBatchesSampler(const contra::Params& p)
    : batch_size_(p.get<std::int64_t>("batch_size")),
      refresh_(p.get<std::int64_t>("refresh")),
      cluster_size_(p.get<std::int64_t>("cluster_size")),
      warmup_(p.get<std::int64_t>("warmup_steps")) {
  if (warmup_ < 0) warmup_ = refresh_;
  if (cluster_size_ > batch_size_)
    throw contra::ConfigError(located(p, "cluster_size") + key(p, "cluster_size") + " = " +
                              std::to_string(cluster_size_) + " exceeds " + key(p, "batch_size") + " = " +
                              std::to_string(batch_size_) + "; a group must fit in a batch");
}

void NeighborBatchesSampler::configure(const contra::SamplerContext& ctx) {
  if (ctx.dataset_size < 1)
    throw ConfigError("neighbor_batches: the data set is empty; there is nothing to sample");
  if (ctx.dataset_size < batch_size_)
    throw ConfigError("neighbor_batches: the data set has " + std::to_string(ctx.dataset_size) +
                      (ctx.dataset_size == 1 ? " sample" : " samples") + ", fewer than one batch of " +
                      std::to_string(batch_size_) + " (lower batch_size)");
  if (ctx.lag < 0)
    throw UsageError("neighbor_batches: the planning lag must be >= 0, got " + std::to_string(ctx.lag));
  size_ = ctx.dataset_size;
  seed_ = ctx.seed;
  lag_ = ctx.lag;
  epoch_ = -1;
  next_batch_ = 0;
  arranged_tag_ = -2;
  arrangement_.clear();
  offset_ = 0;
  dim_ = 0;
  table_.clear();
  table_seen_.clear();
  window_ = 0;
  std::lock_guard<std::mutex> lock(mutex_);
  snapshots_.clear();
}

std::int64_t NeighborBatchesSampler::batches_per_epoch() const {
  if (size_ < 0) throw UsageError("neighbor_batches: batches_per_epoch() called before configure()");
  return size_ / batch_size_;
}

std::shared_ptr<const NeighborBatchesSampler::Snapshot> NeighborBatchesSampler::usable(std::int64_t step) {
  if (step < warmup_) return nullptr;
  const std::int64_t limit = step - lag_;
  std::lock_guard<std::mutex> lock(mutex_);
  std::shared_ptr<const Snapshot> best;
  for (const auto& s : snapshots_)
    if (s->tag <= limit && (!best || s->tag > best->tag)) best = s;
  if (best) {
    // Later plans (in order) never need a snapshot older than this one.
    const std::int64_t tag = best->tag;
    snapshots_.erase(std::remove_if(snapshots_.begin(), snapshots_.end(),
                                    [tag](const auto& s) { return s->tag < tag; }),
                     snapshots_.end());
  }
  return best;
}

void NeighborBatchesSampler::split(std::vector<std::int64_t>& ids, std::size_t lo, std::size_t hi,
                                   const Snapshot& snap, contra::Rng& rng) {
  const auto cs = static_cast<std::size_t>(cluster_size_);
  const std::size_t n = hi - lo;
  if (n <= cs) return;
  const std::size_t left = ((n + cs - 1) / cs / 2) * cs;  // a multiple of cs, >= cs, < n
  const std::int64_t D = snap.dim;
  auto x = [&](std::size_t i) { return snap.emb.data() + ids[i] * D; };
  auto pick = [&]() { return lo + static_cast<std::size_t>(rng.integer(0, static_cast<std::int64_t>(n) - 1)); };
  // Two far-apart members: the farthest (among a sample) from a random one,
  // then the farthest from that (a sampled FastMap pivot pair).
  auto farthest = [&](const float* from) {
    std::size_t best = lo;
    float best_d = -1.0f;
    for (std::int64_t t = 0; t < std::min<std::int64_t>(pivot_candidates, static_cast<std::int64_t>(n)); ++t) {
      const std::size_t j = pick();
      const float d = dist2(from, x(j), D);
      if (d > best_d) best_d = d, best = j;
    }
    return best;
  };
  const std::size_t a = farthest(x(pick()));
  const std::size_t b = farthest(x(a));
  dir_.resize(static_cast<std::size_t>(D));
  float nn = 0.0f;
  for (std::int64_t k = 0; k < D; ++k) {
    dir_[static_cast<std::size_t>(k)] = x(a)[k] - x(b)[k];
    nn += dir_[static_cast<std::size_t>(k)] * dir_[static_cast<std::size_t>(k)];
  }
  if (nn < 1e-12f)
    for (auto& v : dir_) v = static_cast<float>(rng.normal());
  for (std::size_t i = lo; i < hi; ++i) {
    const float* xi = x(i);
    float p = 0.0f;
    for (std::int64_t k = 0; k < D; ++k) p += xi[k] * dir_[static_cast<std::size_t>(k)];
    keys_[i] = {p, ids[i]};  // ties broken by id: the split does not depend on the library
  }
  std::nth_element(keys_.begin() + static_cast<std::ptrdiff_t>(lo), keys_.begin() + static_cast<std::ptrdiff_t>(lo + left),
                   keys_.begin() + static_cast<std::ptrdiff_t>(hi));
  for (std::size_t i = lo; i < hi; ++i) ids[i] = keys_[i].second;
  split(ids, lo, lo + left, snap, rng);
  split(ids, lo + left, hi, snap, rng);
}

void NeighborBatchesSampler::arrange(std::int64_t epoch, std::int64_t batch, const Snapshot* snap) {
  const auto cs = static_cast<std::size_t>(cluster_size_);
  seen_ids_.clear();
  unseen_ids_.clear();
  for (std::size_t i = offset_; i < arrangement_.size(); ++i) {
    const std::int64_t id = arrangement_[i];
    (snap && snap->seen[static_cast<std::size_t>(id)] ? seen_ids_ : unseen_ids_).push_back(id);
  }
  contra::Rng rng(seed_, static_cast<std::uint64_t>(epoch), static_cast<std::uint64_t>(batch), 0, shuffle_op);
  if (!seen_ids_.empty()) {
    contra::Rng tree(seed_, static_cast<std::uint64_t>(epoch), static_cast<std::uint64_t>(batch), 0, tree_op);
    keys_.resize(seen_ids_.size());
    split(seen_ids_, 0, seen_ids_.size(), *snap, tree);
  }
  shuffle(unseen_ids_, rng);

  // Full groups in a shuffled order, then the partial ones.
  pool_.assign(seen_ids_.begin(), seen_ids_.end());
  pool_.insert(pool_.end(), unseen_ids_.begin(), unseen_ids_.end());
  const std::size_t seen = seen_ids_.size(), unseen = unseen_ids_.size();
  groups_.clear();
  for (std::size_t k = 0; k < seen / cs; ++k) groups_.push_back(k * cs);
  for (std::size_t k = 0; k < unseen / cs; ++k) groups_.push_back(seen + k * cs);
  shuffle(groups_, rng);
  arrangement_.clear();
  for (std::size_t g : groups_) arrangement_.insert(arrangement_.end(), pool_.begin() + static_cast<std::ptrdiff_t>(g),
                                                    pool_.begin() + static_cast<std::ptrdiff_t>(g + cs));
  arrangement_.insert(arrangement_.end(), pool_.begin() + static_cast<std::ptrdiff_t>(seen / cs * cs),
                      pool_.begin() + static_cast<std::ptrdiff_t>(seen));
  arrangement_.insert(arrangement_.end(), pool_.begin() + static_cast<std::ptrdiff_t>(seen + unseen / cs * cs),
                      pool_.end());
  offset_ = 0;
}

void NeighborBatchesSampler::plan(std::int64_t epoch, std::int64_t batch, std::vector<std::int64_t>& indices) {
  if (size_ < 0) throw UsageError("neighbor_batches: plan() called before configure()");
  const std::int64_t batches = batches_per_epoch();
  if (epoch < 0 || batch < 0 || batch >= batches)
    throw UsageError("neighbor_batches: plan(" + std::to_string(epoch) + ", " + std::to_string(batch) +
                     ") outside epochs >= 0 and batches [0, " + std::to_string(batches) + ")");
  if (epoch != epoch_ || batch < next_batch_) {
    // A new epoch (or a replay of this one): start from every sample.
    epoch_ = epoch;
    next_batch_ = 0;
    arranged_tag_ = -2;
    arrangement_.resize(static_cast<std::size_t>(size_));
    std::iota(arrangement_.begin(), arrangement_.end(), std::int64_t{0});
    offset_ = 0;
  }
  const auto bs = static_cast<std::size_t>(batch_size_);
  while (next_batch_ <= batch) {
    const auto snap = usable(epoch * batches + next_batch_);
    const std::int64_t tag = snap ? snap->tag : -1;
    if (tag != arranged_tag_) {
      arrange(epoch, next_batch_, snap.get());
      arranged_tag_ = tag;
    }
    if (next_batch_ == batch)
      indices.assign(arrangement_.begin() + static_cast<std::ptrdiff_t>(offset_),
                     arrangement_.begin() + static_cast<std::ptrdiff_t>(offset_ + bs));
    offset_ += bs;
    ++next_batch_;
  }
}

void NeighborBatchesSampler::observe(std::int64_t step, const contra::Embeddings& batch) {
  if (size_ < 0) throw UsageError("neighbor_batches: observe() called before configure()");
  const contra::Tensor& z = batch.z;
  if (z.rank() != 2 || z.dtype() != contra::DType::f32 || z.device() != contra::Device::cpu)
    throw UsageError(std::string("neighbor_batches: expected Embeddings::z as an f32 [rows, D] CPU tensor, got ") +
                     contra::dtype_name(z.dtype()) + " " + z.shape().str() + " on " +
                     contra::device_name(z.device()));
  const std::int64_t rows = z.dim(0), D = z.dim(1), V = batch.views;
  if (V < 1 || rows % V != 0)
    throw UsageError("neighbor_batches: " + std::to_string(rows) + " rows do not split into " + std::to_string(V) +
                     " views");
  if (!batch.ids || static_cast<std::int64_t>(batch.ids->size()) != rows)
    throw UsageError("neighbor_batches: observe() needs Embeddings::ids, the sample id of each of the " +
                     std::to_string(rows) + " rows");
  if (dim_ == 0) {
    dim_ = D;
    table_.assign(static_cast<std::size_t>(size_ * D), 0.0f);
    table_seen_.assign(static_cast<std::size_t>(size_), 0);
    acc_.assign(static_cast<std::size_t>(D), 0.0f);
  } else if (D != dim_) {
    throw UsageError("neighbor_batches: embeddings of width " + std::to_string(D) + " after width " +
                     std::to_string(dim_));
  }
  const std::int64_t N = rows / V;
  const float* in = z.data<float>();
  for (std::int64_t i = 0; i < N; ++i) {
    const std::int64_t id = (*batch.ids)[static_cast<std::size_t>(i)];
    if (id < 0 || id >= size_)
      throw UsageError("neighbor_batches: sample id " + std::to_string(id) + " of row " + std::to_string(i) +
                       " is outside the data set [0, " + std::to_string(size_) + ")");
    std::fill(acc_.begin(), acc_.end(), 0.0f);
    for (std::int64_t v = 0; v < V; ++v) {
      const float* x = in + (v * N + i) * D;
      float ss = 0.0f;
      for (std::int64_t k = 0; k < D; ++k) ss += x[k] * x[k];
      const float inv = 1.0f / std::max(std::sqrt(ss), 1e-12f);
      for (std::int64_t k = 0; k < D; ++k) acc_[static_cast<std::size_t>(k)] += x[k] * inv;
    }
    float ss = 0.0f;
    for (float a : acc_) ss += a * a;
    const float norm = std::sqrt(ss);
    if (!std::isfinite(norm) || norm < 1e-12f) continue;  // nothing usable: keep what the table had
    float* row = table_.data() + id * D;
    for (std::int64_t k = 0; k < D; ++k) row[k] = acc_[static_cast<std::size_t>(k)] / norm;
    table_seen_[static_cast<std::size_t>(id)] = 1;
  }

  const std::int64_t window = step / refresh_;
  if (window >= 1 && window > window_) {
    window_ = window;
    auto snap = std::make_shared<const Snapshot>(Snapshot{step, dim_, table_, table_seen_});
    std::lock_guard<std::mutex> lock(mutex_);
    // Plans still to come are for steps > `step`; they need no snapshot older
    // than the newest one usable at step + 1.
    std::int64_t keep_from = -1;
    for (const auto& s : snapshots_)
      if (s->tag <= step + 1 - lag_) keep_from = std::max(keep_from, s->tag);
    snapshots_.erase(std::remove_if(snapshots_.begin(), snapshots_.end(),
                                    [keep_from](const auto& s) { return s->tag < keep_from; }),
                     snapshots_.end());
    snapshots_.push_back(std::move(snap));
  }
}

}  // namespace contra::plugins
