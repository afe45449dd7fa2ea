#include "queue.hpp"

#include <contra/l2_normalize.hpp>
#include <contra/memory_budget.hpp>

#include <algorithm>
#include <cmath>
#include <sstream>

namespace contra::plugins {

namespace {
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

void write_keys_on_host(const contra::Tensor& src, std::int64_t first_row, std::int64_t count, contra::Tensor& keys,
                        std::int64_t first_slot) {
  const std::int64_t size = keys.dim(0), dim = keys.dim(1);
  for (std::int64_t i = 0; i < count; ++i)
    contra::l2_normalize_rows(src.data<float>() + (first_row + i) * dim, 1, dim,
                              keys.data<float>() + ((first_slot + i) % size) * dim, nullptr);
}
}  // namespace

contra::Schema QueueMemory::schema() {
  return contra::Schema("queue", "MoCo FIFO queue of momentum-encoder keys (He et al. 2020)")
      .add<std::int64_t>("size", 4096, "keys kept (K); the oldest are overwritten").at_least(1)
      .add<double>("momentum", 0.999, "momentum m in [0, 1) of the key encoder: theta_k <- m theta_k + (1 - m) theta_q")
      .range(0.0, 1.0);
}

QueueMemory::QueueMemory(const contra::Params& p, contra::Device device, QueueKeyWriter write_keys)
    : size_(p.get<std::int64_t>("size")),
      momentum_(p.get<double>("momentum")),
      device_(device),
      write_keys_(write_keys ? write_keys : &write_keys_on_host),
      size_key_(key(p, "size")) {
  if (momentum_ >= 1.0)
    throw contra::ConfigError(located(p, "momentum") + key(p, "momentum") +
                              ": expected a value in [0, 1), found " + num(momentum_));
}

void QueueMemory::configure(const contra::MemoryContext& ctx) {
  if (ctx.dim < 1)
    throw contra::ConfigError("queue: the embedding width must be at least 1, got " + std::to_string(ctx.dim));
  // Keys (on the host unless the queue lives on a device) and the ids and
  // labels beside them, before allocating any.
  const auto k = static_cast<std::uint64_t>(size_), d = static_cast<std::uint64_t>(ctx.dim);
  const bool host_keys = device_ == contra::Device::cpu;
  contra::require_memory(
      size_key_ + " = " + std::to_string(size_),
      contra::add_bytes(host_keys ? contra::mul_bytes(contra::mul_bytes(k, d), sizeof(float)) : 0,
                        contra::mul_bytes(k, 2 * sizeof(std::int64_t))),
      host_keys ? "keys, ids and labels" : "ids and labels (the keys go on the device)",
      std::to_string(size_) + " × " + (host_keys ? "(" + std::to_string(ctx.dim) + " f32 + 2 i64)" : "2 i64"));
  dim_ = ctx.dim;
  labelled_ = ctx.labels != nullptr;
  keys_ = contra::Tensor::zeros({size_, dim_}, contra::DType::f32, device_);
  ids_.assign(static_cast<std::size_t>(size_), -1);
  labels_.assign(static_cast<std::size_t>(size_), -1);
  ids_t_ = contra::Tensor::wrap(ids_.data(), {size_}, contra::DType::i64);
  labels_t_ = contra::Tensor::wrap(labels_.data(), {size_}, contra::DType::i64);
  pointer_ = contra::Tensor::zeros({1}, contra::DType::i64);
  adopt_state();
}

void QueueMemory::adopt_state() const {
  keys_.expect({size_, dim_}, contra::DType::f32, "queue: state tensor queue.keys");
  if (keys_.device() != device_)
    throw contra::UsageError(std::string("queue: state tensor queue.keys: expected it on ") +
                             contra::device_name(device_) + ", got it on " + contra::device_name(keys_.device()));
  auto adopt = [this](contra::Tensor& t, std::vector<std::int64_t>& storage, const char* what) {
    if (t.raw() == static_cast<void*>(storage.data())) return;
    t.expect({size_}, contra::DType::i64, what);
    std::copy_n(t.data<std::int64_t>(), size_, storage.begin());
    t = contra::Tensor::wrap(storage.data(), {size_}, contra::DType::i64);
  };
  adopt(ids_t_, ids_, "queue: state tensor queue.ids");
  adopt(labels_t_, labels_, "queue: state tensor queue.labels");
  pointer_.expect({1}, contra::DType::i64, "queue: state tensor queue.pointer");
  const std::int64_t p = pointer_.data<std::int64_t>()[0];
  if (p < 0 || p >= size_)
    throw contra::UsageError("queue: state tensor queue.pointer holds " + std::to_string(p) +
                             ", outside the slots [0, " + std::to_string(size_) + ")");
  view_.keys = keys_;
  view_.ids = &ids_;
  view_.labels = labelled_ ? &labels_ : nullptr;
}

const contra::MemoryView& QueueMemory::view() const {
  if (dim_ == 0) throw contra::UsageError("queue: view() called before configure()");
  adopt_state();
  return view_;
}

void QueueMemory::update(const contra::Embeddings& batch) {
  if (dim_ == 0) throw contra::UsageError("queue: update() called before configure()");
  adopt_state();
  const bool momentum_keys = batch.keys.defined();
  const contra::Tensor& src = momentum_keys ? batch.keys : batch.z;
  const char* name = momentum_keys ? "Embeddings::keys" : "Embeddings::z";
  if (src.rank() != 2 || src.dtype() != contra::DType::f32 || src.device() != device_ || src.dim(1) != dim_)
    throw contra::UsageError(std::string("queue: expected ") + name + " as an f32 [rows, " +
                             std::to_string(dim_) + "] " + (device_ == contra::Device::cpu ? "CPU" : "cuda") +
                             " tensor, got " + contra::dtype_name(src.dtype()) +
                             " " + src.shape().str() + " on " + contra::device_name(src.device()));
  const std::int64_t rows = src.dim(0), V = batch.views;
  if (V < 1 || rows % V != 0)
    throw contra::UsageError("queue: " + std::to_string(rows) + " rows do not split into " + std::to_string(V) +
                             " views");
  if (!batch.ids || static_cast<std::int64_t>(batch.ids->size()) != rows)
    throw contra::UsageError("queue: update() needs Embeddings::ids, the sample id of each of the " +
                             std::to_string(rows) + " rows");
  if (batch.label && static_cast<std::int64_t>(batch.label->size()) != rows)
    throw contra::UsageError("queue: Embeddings::label has " + std::to_string(batch.label->size()) +
                             " entries for " + std::to_string(rows) + " rows");

  const std::int64_t N = rows / V, first = (V - 1) * N;
  const std::int64_t skip = std::max<std::int64_t>(0, N - size_);  // N > K: keep the last K
  std::int64_t& pointer = pointer_.data<std::int64_t>()[0];
  write_keys_(src, first + skip, N - skip, keys_, pointer);
  for (std::int64_t i = skip; i < N; ++i) {
    const std::int64_t r = first + i;
    ids_[static_cast<std::size_t>(pointer)] = (*batch.ids)[static_cast<std::size_t>(r)];
    labels_[static_cast<std::size_t>(pointer)] = batch.label ? (*batch.label)[static_cast<std::size_t>(r)] : -1;
    pointer = pointer + 1 == size_ ? 0 : pointer + 1;
  }
}

void QueueMemory::state(std::vector<std::pair<std::string, contra::Tensor*>>& out) {
  out.emplace_back("queue.keys", &keys_);
  out.emplace_back("queue.ids", &ids_t_);
  out.emplace_back("queue.labels", &labels_t_);
  out.emplace_back("queue.pointer", &pointer_);
}

}  // namespace contra::plugins
