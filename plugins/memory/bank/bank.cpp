#include "bank.hpp"

#include <contra/memory_budget.hpp>
#include <contra/rng.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <sstream>

namespace contra::plugins {

namespace {
// Norms below this are clamped, as torch.nn.functional.normalize does.
constexpr double norm_eps = 1e-12;

std::string located(const contra::Params& p, const char* key) {
  std::string where = p.where(key).str();
  return where.empty() ? std::string() : where + ": ";
}
std::string key(const contra::Params& p, const char* name) {
  return p.prefix().empty() ? std::string(name) : p.prefix() + "." + name;
}
std::string num(double v) {
  std::ostringstream os;
  os << v;
  return os.str();
}

// The slots on the host: the loops in double.
class HostBankKernels final : public BankKernels {
 public:
  void place(const contra::Tensor& host_slots, contra::Tensor& keys) override { keys = host_slots; }

  void move_slots(const contra::Tensor& src, const std::vector<std::int64_t>& rows, std::int64_t n,
                  std::int64_t views, const std::vector<std::int64_t>& ids, contra::Tensor& keys,
                  double momentum) override {
    const std::int64_t dim = keys.dim(1);
    zhat_.resize(static_cast<std::size_t>(dim));
    mix_.resize(static_cast<std::size_t>(dim));
    const float* in = src.data<float>();
    const double m = momentum;
    for (std::size_t j = 0; j < rows.size(); ++j) {
      const std::int64_t i = rows[j];
      // z^ = mean over views of the normalised rows.
      std::fill(zhat_.begin(), zhat_.end(), 0.0);
      for (std::int64_t v = 0; v < views; ++v) {
        const float* x = in + (v * n + i) * dim;
        double ss = 0.0;
        for (std::int64_t c = 0; c < dim; ++c) ss += double(x[c]) * x[c];
        const double w = 1.0 / (std::max(std::sqrt(ss), norm_eps) * static_cast<double>(views));
        for (std::int64_t c = 0; c < dim; ++c) zhat_[static_cast<std::size_t>(c)] += x[c] * w;
      }
      float* slot = keys.data<float>() + ids[j] * dim;
      double ss = 0.0;
      for (std::int64_t c = 0; c < dim; ++c) {
        const double y = m * slot[c] + (1.0 - m) * zhat_[static_cast<std::size_t>(c)];
        mix_[static_cast<std::size_t>(c)] = y;
        ss += y * y;
      }
      const double inv = 1.0 / std::max(std::sqrt(ss), norm_eps);
      for (std::int64_t c = 0; c < dim; ++c) slot[c] = static_cast<float>(mix_[static_cast<std::size_t>(c)] * inv);
    }
  }

  void gather(const contra::Tensor& keys, const std::vector<std::int64_t>& slots, contra::Tensor& out) override {
    const std::int64_t dim = keys.dim(1), k = static_cast<std::int64_t>(slots.size());
    out.ensure({k, dim}, contra::DType::f32);
    const float* from = keys.data<float>();
    float* to = out.data<float>();
    for (std::int64_t j = 0; j < k; ++j)
      std::memcpy(to + j * dim, from + slots[static_cast<std::size_t>(j)] * dim,
                  static_cast<std::size_t>(dim) * sizeof(float));
  }

 private:
  std::vector<double> zhat_, mix_;  // one sample's mean view, its mix with the slot
};
}  // namespace

contra::Schema MemoryBank::schema() {
  return contra::Schema("bank", "memory bank: one embedding per sample, moved by momentum (Wu et al. 2018)")
      .add<double>("momentum", 0.5, "m in [0, 1): slot <- normalise(m slot + (1 - m) embedding)").range(0.0, 1.0)
      .add<std::int64_t>("negatives", 0,
                         "slots the view exposes: 0 = all, else a random subset of this many, redrawn at each update")
      .at_least(0);
}

MemoryBank::MemoryBank(const contra::Params& p, contra::Device device, std::unique_ptr<BankKernels> kernels)
    : momentum_(p.get<double>("momentum")),
      negatives_(p.get<std::int64_t>("negatives")),
      device_(device),
      kernels_(kernels ? std::move(kernels) : std::make_unique<HostBankKernels>()) {
  if (momentum_ >= 1.0)
    throw contra::ConfigError(located(p, "momentum") + key(p, "momentum") +
                              ": expected a value in [0, 1), found " + num(momentum_));
}

MemoryBank::~MemoryBank() = default;

void MemoryBank::configure(const contra::MemoryContext& ctx) {
  if (ctx.dataset_size < 1) throw contra::ConfigError("bank: the data set is empty; there is nothing to remember");
  if (ctx.dim < 1)
    throw contra::ConfigError("bank: the embedding width must be at least 1, got " + std::to_string(ctx.dim));
  if (negatives_ > ctx.dataset_size)
    throw contra::ConfigError("bank: negatives = " + std::to_string(negatives_) + " but the data set has only " +
                              std::to_string(ctx.dataset_size) +
                              (ctx.dataset_size == 1 ? " sample" : " samples") +
                              ", one slot each (lower negatives, or set 0 for all slots)");
  if (ctx.labels && static_cast<std::int64_t>(ctx.labels->size()) != ctx.dataset_size)
    throw contra::UsageError("bank: the source has " + std::to_string(ctx.dataset_size) + " samples but " +
                             std::to_string(ctx.labels->size()) + " labels");
  {
    // The slots (drawn on the host, then placed on the keys' device), the
    // ids, labels and counters beside them, before allocating any.
    const auto n = static_cast<std::uint64_t>(ctx.dataset_size), d = static_cast<std::uint64_t>(ctx.dim);
    const std::uint64_t per_slot = d * sizeof(float) + 2 * sizeof(std::int64_t) + sizeof(std::int32_t) +
                                   (negatives_ > 0 ? 1 : 0);
    contra::require_memory("bank: one slot for each of the data set's " + std::to_string(ctx.dataset_size) +
                               " samples",
                           contra::mul_bytes(n, per_slot), "slots",
                           std::to_string(ctx.dataset_size) + " × (" + std::to_string(ctx.dim) +
                               " f32 + id, label and counter " + std::to_string(per_slot - d * sizeof(float)) + " B)");
  }
  size_ = ctx.dataset_size;
  dim_ = ctx.dim;
  seed_ = ctx.seed;
  labelled_ = ctx.labels != nullptr;
  labels_ = labelled_ ? *ctx.labels : std::vector<std::int64_t>{};
  all_ids_.resize(static_cast<std::size_t>(size_));
  for (std::int64_t i = 0; i < size_; ++i) all_ids_[static_cast<std::size_t>(i)] = i;
  seen_.assign(static_cast<std::size_t>(size_), 0);

  // As the paper: random unit vectors, one stream per slot, drawn on the host.
  contra::Tensor slots = contra::Tensor::empty({size_, dim_}, contra::DType::f32);
  float* k = slots.data<float>();
  for (std::int64_t i = 0; i < size_; ++i) {
    contra::Rng rng(seed_, 0, static_cast<std::uint64_t>(i), 0, init_op);
    float* row = k + i * dim_;
    double ss = 0.0;
    for (std::int64_t c = 0; c < dim_; ++c) {
      const double x = rng.normal();
      row[c] = static_cast<float>(x);
      ss += x * x;
    }
    const double inv = 1.0 / std::max(std::sqrt(ss), norm_eps);
    for (std::int64_t c = 0; c < dim_; ++c) row[c] = static_cast<float>(row[c] * inv);
  }
  kernels_->place(slots, keys_);
  updates_ = contra::Tensor::zeros({1}, contra::DType::i64);
  subset_for_ = -1;
  marked_.assign(negatives_ > 0 ? static_cast<std::size_t>(size_) : 0, 0);
}

void MemoryBank::check_state() const {
  keys_.expect({size_, dim_}, contra::DType::f32, "bank: state tensor bank.keys");
  if (keys_.device() != device_)
    throw contra::UsageError(std::string("bank: state tensor bank.keys: expected it on ") +
                             contra::device_name(device_) + ", got it on " + contra::device_name(keys_.device()));
  updates_.expect({1}, contra::DType::i64, "bank: state tensor bank.updates");
  if (updates_.device() != contra::Device::cpu)
    throw contra::UsageError(std::string("bank: state tensor bank.updates: expected it on cpu, got it on ") +
                             contra::device_name(updates_.device()));
}

// Floyd's algorithm: k distinct slots out of n in O(k), then ascending.
void MemoryBank::draw_subset(std::int64_t u) const {
  contra::Rng rng(seed_, static_cast<std::uint64_t>(u), 0, 0, negatives_op);
  subset_.clear();
  for (std::int64_t j = size_ - negatives_; j < size_; ++j) {
    std::int64_t t = rng.integer(0, j);
    if (marked_[static_cast<std::size_t>(t)]) t = j;
    marked_[static_cast<std::size_t>(t)] = 1;
    subset_.push_back(t);
  }
  for (std::int64_t t : subset_) marked_[static_cast<std::size_t>(t)] = 0;
  std::sort(subset_.begin(), subset_.end());
  subset_labels_.clear();
  if (labelled_)
    for (std::int64_t t : subset_) subset_labels_.push_back(labels_[static_cast<std::size_t>(t)]);
  subset_for_ = u;
}

const contra::MemoryView& MemoryBank::view() const {
  if (size_ == 0) throw contra::UsageError("bank: view() called before configure()");
  check_state();
  if (negatives_ == 0) {
    view_.keys = keys_;
    view_.ids = &all_ids_;
    view_.labels = labelled_ ? &labels_ : nullptr;
    return view_;
  }
  const std::int64_t u = updates_.data<std::int64_t>()[0];
  if (u != subset_for_) draw_subset(u);
  kernels_->gather(keys_, subset_, subset_keys_);
  view_.keys = subset_keys_;
  view_.ids = &subset_;
  view_.labels = labelled_ ? &subset_labels_ : nullptr;
  return view_;
}

void MemoryBank::update(const contra::Embeddings& batch) {
  if (size_ == 0) throw contra::UsageError("bank: update() called before configure()");
  check_state();
  const bool momentum_keys = batch.keys.defined();
  const contra::Tensor& src = momentum_keys ? batch.keys : batch.z;
  const char* name = momentum_keys ? "Embeddings::keys" : "Embeddings::z";
  if (src.rank() != 2 || src.dtype() != contra::DType::f32 || src.device() != device_ || src.dim(1) != dim_)
    throw contra::UsageError(std::string("bank: expected ") + name + " as an f32 [rows, " + std::to_string(dim_) +
                             "] " + (device_ == contra::Device::cpu ? "CPU" : "cuda") + " tensor, got " +
                             contra::dtype_name(src.dtype()) + " " + src.shape().str() + " on " +
                             contra::device_name(src.device()));
  const std::int64_t rows = src.dim(0), V = batch.views;
  if (V < 1 || rows % V != 0)
    throw contra::UsageError("bank: " + std::to_string(rows) + " rows do not split into " + std::to_string(V) +
                             " views");
  if (!batch.ids || static_cast<std::int64_t>(batch.ids->size()) != rows)
    throw contra::UsageError("bank: update() needs Embeddings::ids, the sample id of each of the " +
                             std::to_string(rows) + " rows");
  const std::int64_t N = rows / V;
  for (std::int64_t i = 0; i < N; ++i) {
    const std::int64_t id = (*batch.ids)[static_cast<std::size_t>(i)];
    if (id < 0 || id >= size_)
      throw contra::UsageError("bank: sample id " + std::to_string(id) + " of row " + std::to_string(i) +
                               " is outside the bank's slots [0, " + std::to_string(size_) + ")");
  }

  // Rounds: round r holds the rows whose id occurred r times before them in
  // the batch, so a round's ids are distinct and the rounds in turn apply a
  // repeated sample in row order.
  std::size_t rounds = 0;
  for (std::int64_t i = 0; i < N; ++i) {
    const std::int64_t id = (*batch.ids)[static_cast<std::size_t>(i)];
    const auto r = static_cast<std::size_t>(seen_[static_cast<std::size_t>(id)]++);
    if (r == rounds) {
      if (round_rows_.size() == rounds) {
        round_rows_.emplace_back();
        round_ids_.emplace_back();
      }
      round_rows_[r].clear();
      round_ids_[r].clear();
      ++rounds;
    }
    round_rows_[r].push_back(i);
    round_ids_[r].push_back(id);
  }
  for (std::int64_t i = 0; i < N; ++i) seen_[static_cast<std::size_t>((*batch.ids)[static_cast<std::size_t>(i)])] = 0;
  for (std::size_t r = 0; r < rounds; ++r)
    kernels_->move_slots(src, round_rows_[r], N, V, round_ids_[r], keys_, momentum_);
  ++updates_.data<std::int64_t>()[0];
}

void MemoryBank::state(std::vector<std::pair<std::string, contra::Tensor*>>& out) {
  out.emplace_back("bank.keys", &keys_);
  out.emplace_back("bank.updates", &updates_);
}

}  // namespace contra::plugins
