#pragma once
/// \file
/// `neighbor_batches` sampler: batches made of groups of mutually near
/// samples, from the embeddings the training sends back (hard negatives share
/// a batch).

#include <contra/rng.hpp>
#include <contra/roles/sampler.hpp>
#include <contra/schema.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <utility>
#include <vector>

namespace contra::plugins {

/// observe() keeps the latest normalised embedding of every sample id (the
/// mean of its normalised views, normalised) and, at the first observed step
/// of each window [k*refresh, (k+1)*refresh), k >= 1, copies the table into
/// a snapshot tagged with that step. plan(epoch, batch), global step
/// s = epoch * batches_per_epoch() + batch, uses the newest snapshot whose
/// tag is <= s - lag (none before `warmup_steps`), so its result depends on
/// the observed steps <= s - lag only, never on thread timing, and it never
/// waits.
///
/// An epoch hands out each sample at most once: it starts from all samples,
/// and whenever the usable snapshot changes (at the epoch's first batch, or
/// mid-epoch when a newer one becomes usable) the samples not yet handed out
/// this epoch are re-arranged: the ones the snapshot has seen are ordered by
/// a random-projection tree (split recursively at a multiple of
/// cluster_size along the direction between two far-apart members, down to
/// leaves of cluster_size), giving groups of cluster_size near samples; the
/// unseen ones are shuffled into groups; the full groups are shuffled and
/// the partial ones (at most two) put last. Batches take consecutive
/// batch_size samples of that arrangement. With no usable snapshot this is a
/// plain shuffle, as the `random` sampler. The remainder of size mod
/// batch_size samples at the end of an epoch is not visited in it.
///
/// plan() runs on the planning thread, observe() on the train thread; they
/// share only the list of snapshots, under a mutex. Snapshots are immutable.
class NeighborBatchesSampler final : public contra::Sampler {
 public:
  /// Rng op of the shuffles ("NBSH").
  static constexpr std::uint32_t shuffle_op = 0x4e425348u;
  /// Rng op of the projection tree ("NBTR").
  static constexpr std::uint32_t tree_op = 0x4e425452u;

  static contra::Schema schema();
  /// Throws ConfigError for cluster_size > batch_size.
  explicit NeighborBatchesSampler(const contra::Params& p);

  /// Throws ConfigError for an empty data set or one smaller than a batch;
  /// UsageError for a negative lag. Forgets all observations.
  void configure(const contra::SamplerContext& ctx) override;
  /// dataset_size / batch_size, rounded down.
  std::int64_t batches_per_epoch() const override;
  /// The batch_size indices of batch `batch` of `epoch`. Called in order it
  /// costs O(batch_size), plus a re-arrangement (O(n log n) projections of
  /// width D) when the usable snapshot changes. An earlier batch of the
  /// current epoch, or another epoch, replays the epoch from its first batch
  /// with the snapshots still held. Throws UsageError before configure() or
  /// for a batch outside [0, batches_per_epoch()).
  void plan(std::int64_t epoch, std::int64_t batch, std::vector<std::int64_t>& indices) override;
  /// Takes in the embeddings of step `step` (rows v*N + i, batch.ids set).
  /// Throws UsageError for a wrong shape, dtype or device, missing ids, an id
  /// outside [0, dataset_size) or an embedding width that changes.
  void observe(std::int64_t step, const contra::Embeddings& batch) override;

  /// Tag of the snapshot behind the last planned batch; -1 when it was
  /// arranged at random. For diagnostics and tests; planning thread only.
  std::int64_t last_snapshot() const noexcept { return arranged_tag_; }

 private:
  struct Snapshot {
    std::int64_t tag;
    std::int64_t dim;
    std::vector<float> emb;          // [n, dim], unit rows where seen
    std::vector<std::uint8_t> seen;  // [n]
  };

  std::shared_ptr<const Snapshot> usable(std::int64_t step);
  void arrange(std::int64_t epoch, std::int64_t batch, const Snapshot* snap);
  void split(std::vector<std::int64_t>& ids, std::size_t lo, std::size_t hi, const Snapshot& snap,
             contra::Rng& rng);

  std::int64_t batch_size_, refresh_, cluster_size_, warmup_;
  std::int64_t size_ = -1;  // -1 until configure()
  std::uint64_t seed_ = 0;
  std::int64_t lag_ = 1;

  // Planning thread.
  std::int64_t epoch_ = -1, next_batch_ = 0;
  std::int64_t arranged_tag_ = -2;          // snapshot of the current arrangement; -1 random, -2 none yet
  std::vector<std::int64_t> arrangement_;   // this epoch; [offset_, end) not handed out yet
  std::size_t offset_ = 0;
  std::vector<std::int64_t> seen_ids_, unseen_ids_, pool_;  // scratch of arrange()
  std::vector<std::size_t> groups_;
  std::vector<std::pair<float, std::int64_t>> keys_;  // projections, scratch of split()
  std::vector<float> dir_;

  // Train thread.
  std::int64_t dim_ = 0;  // embedding width, 0 until the first observe()
  std::vector<float> table_;
  std::vector<std::uint8_t> table_seen_;
  std::int64_t window_ = 0;  // last window [k*refresh, (k+1)*refresh) snapshotted
  std::vector<float> acc_;

  // Shared.
  std::mutex mutex_;
  std::vector<std::shared_ptr<const Snapshot>> snapshots_;
};

}  // namespace contra::plugins
