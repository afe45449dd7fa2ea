#include "distributed/rank_collectives.hpp"

#include <algorithm>
#include <cstring>
#include <string>

namespace contra::runtime {

namespace {
// What each rank says of its slice before the payload.
enum Header : std::size_t { samples, rows, dim, has_labels, has_ids, has_keys, header_size };

std::string rank_text(std::size_t r) { return "rank " + std::to_string(r); }
}  // namespace

RankCollectives::RankCollectives(Communicator& comm, DataParallelOptions options, std::vector<Tensor*> buffers)
    : comm_(comm), options_(options), buffers_(std::move(buffers)) {
  for (const Tensor* b : buffers_)
    if (b->dtype() != DType::f32 || b->device() != Device::cpu)
      throw UsageError("data-parallel ranks: buffers must be f32 host tensors, got " +
                       std::string(dtype_name(b->dtype())) + " on " + device_name(b->device()));
}

const Embeddings& RankCollectives::gather(const Embeddings& local) {
  if (!options_.gather) return local;
  if (local.z.device() != Device::cpu && !comm_.device_memory())
    throw UsageError(std::string("the ") + comm_.backend() + " backend carries host memory; embeddings on " +
                     device_name(local.z.device()) + " need the nccl backend");
  const std::int64_t L = local.rows(), D = local.z.dim(1);
  // Row r is view r / n of sample r % n (Trainer::set_rows).
  std::int64_t n = 0;
  for (std::int64_t s : *local.sample) n = std::max(n, s + 1);
  if (n == 0 || L % n != 0)
    throw UsageError("data-parallel ranks: " + std::to_string(L) + " rows are not whole views of " +
                     std::to_string(n) + " samples");
  const auto R = static_cast<std::size_t>(comm_.size()), me = static_cast<std::size_t>(comm_.rank());
  const bool labels = local.label != nullptr, ids = local.ids != nullptr, keys = local.keys.defined();
  std::vector<std::int64_t> header(R * header_size);
  const std::int64_t mine[header_size] = {n, L, D, labels, ids, keys};
  comm_.all_gather(mine, header.data(), std::vector<std::size_t>(R, sizeof mine));

  samples_.assign(R, 0);
  offset_.assign(R, 0);
  total_ = 0;
  views_ = L / n;
  std::vector<std::size_t> bytes(R);
  for (std::size_t r = 0; r < R; ++r) {
    const std::int64_t* h = &header[r * header_size];
    // Every rank runs the same pipeline: a difference is a bug, said plainly.
    if (h[dim] != D || h[rows] != h[samples] * views_ || h[has_labels] != labels || h[has_ids] != ids ||
        h[has_keys] != keys)
      throw DistributedError(rank_text(r) + " has " + std::to_string(h[samples]) + " samples in " +
                             std::to_string(h[rows]) + " rows of " + std::to_string(h[dim]) + " dimensions; " +
                             rank_text(me) + " has " + std::to_string(n) + " in " + std::to_string(L) + " of " +
                             std::to_string(D) + " (the ranks must run one pipeline)");
    samples_[r] = h[samples];
    offset_[r] = total_;
    total_ += h[samples];
    const std::size_t row_bytes = static_cast<std::size_t>(D) * sizeof(float);
    bytes[r] = static_cast<std::size_t>(h[rows]) * row_bytes * (keys ? 2 : 1) +
               static_cast<std::size_t>(h[samples]) * sizeof(std::int64_t) * ((ids ? 1 : 0) + (labels ? 1 : 0));
  }

  // This rank's payload: z, keys, then per sample its id and label.
  std::vector<unsigned char> payload(bytes[me]);
  unsigned char* at = payload.data();
  auto put = [&](const void* p, std::size_t b) {
    std::memcpy(at, p, b);
    at += b;
  };
  const std::size_t z_bytes = static_cast<std::size_t>(L * D) * sizeof(float);
  put(local.z.data<float>(), z_bytes);
  if (keys) put(local.keys.data<float>(), z_bytes);
  if (ids) put(local.ids->data(), static_cast<std::size_t>(n) * sizeof(std::int64_t));
  if (labels) put(local.label->data(), static_cast<std::size_t>(n) * sizeof(std::int64_t));
  std::size_t all = 0;
  for (std::size_t b : bytes) all += b;
  staging_.resize(all);
  comm_.all_gather(payload.data(), staging_.data(), bytes);

  const std::int64_t N = total_, rows_out = views_ * N;
  z_.ensure({rows_out, D}, DType::f32);
  if (keys) keys_.ensure({rows_out, D}, DType::f32);
  else keys_ = Tensor();
  std::vector<std::int64_t> sample_ids(ids ? N : 0), sample_labels(labels ? N : 0);
  const unsigned char* from = staging_.data();
  for (std::size_t r = 0; r < R; ++r) {
    const std::int64_t nr = samples_[r], off = offset_[r];
    const std::size_t block = static_cast<std::size_t>(nr * views_ * D) * sizeof(float);
    // View v of the rank's samples -> rows v * N + off .. of the global batch.
    auto place = [&](Tensor& out) {
      for (std::int64_t v = 0; v < views_; ++v)
        std::memcpy(out.data<float>() + (v * N + off) * D, from + static_cast<std::size_t>(v * nr * D) * sizeof(float),
                    static_cast<std::size_t>(nr * D) * sizeof(float));
      from += block;
    };
    place(z_);
    if (keys) place(keys_);
    if (ids) {
      std::memcpy(sample_ids.data() + off, from, static_cast<std::size_t>(nr) * sizeof(std::int64_t));
      from += static_cast<std::size_t>(nr) * sizeof(std::int64_t);
    }
    if (labels) {
      std::memcpy(sample_labels.data() + off, from, static_cast<std::size_t>(nr) * sizeof(std::int64_t));
      from += static_cast<std::size_t>(nr) * sizeof(std::int64_t);
    }
  }
  sample_.resize(static_cast<std::size_t>(rows_out));
  id_.resize(ids ? static_cast<std::size_t>(rows_out) : 0);
  label_.resize(labels ? static_cast<std::size_t>(rows_out) : 0);
  for (std::int64_t row = 0; row < rows_out; ++row) {
    sample_[row] = row % N;
    if (ids) id_[row] = sample_ids[row % N];
    if (labels) label_[row] = sample_labels[row % N];
  }
  global_ = Embeddings{z_, &sample_, labels ? &label_ : nullptr, local.views, ids ? &id_ : nullptr, keys_, local.memory};
  return global_;
}

Tensor RankCollectives::local_gradient(const Tensor& g) {
  if (!options_.gather) return g;
  const auto me = static_cast<std::size_t>(comm_.rank());
  const std::int64_t n = samples_[me], off = offset_[me], D = g.dim(1), N = total_;
  Tensor out = Tensor::empty({views_ * n, D}, DType::f32);
  for (std::int64_t v = 0; v < views_; ++v)
    std::memcpy(out.data<float>() + v * n * D, g.data<float>() + (v * N + off) * D,
                static_cast<std::size_t>(n * D) * sizeof(float));
  return out;
}

void RankCollectives::plan_buckets(const std::vector<Parameter*>& params) {
  if (params == planned_for_) return;
  planned_for_ = params;
  buckets_.clear();
  bucket_of_.clear();
  const std::size_t capacity = std::max<std::size_t>(1, options_.bucket_bytes / sizeof(float));
  std::size_t at = 0;
  for (auto it = params.rbegin(); it != params.rend(); ++it) {
    const auto count = static_cast<std::size_t>((*it)->grad.numel());
    if (buckets_.empty() || (buckets_.back().count > 0 && buckets_.back().count + count > capacity)) {
      buckets_.emplace_back();
      buckets_.back().offset = at;
    }
    buckets_.back().params.push_back(*it);
    buckets_.back().count += count;
    bucket_of_.emplace_back(*it, buckets_.size() - 1);
    at += count;
  }
  std::sort(bucket_of_.begin(), bucket_of_.end());
  is_ready_.assign(bucket_of_.size(), 0);
  flat_.resize(at);
}

GradientReadyHook* RankCollectives::backward_hook(const std::vector<Parameter*>& params) {
  plan_buckets(params);
  for (Bucket& b : buckets_) b.waiting = b.params.size();
  std::fill(is_ready_.begin(), is_ready_.end(), 0);
  launched_ = 0;
  return options_.overlap ? this : nullptr;
}

void RankCollectives::ready(Parameter& p) {
  const auto it = std::lower_bound(bucket_of_.begin(), bucket_of_.end(), std::make_pair(&p, std::size_t(0)));
  // Not one of the step's parameters (a frozen layer's), or said twice: nothing to do.
  if (it == bucket_of_.end() || it->first != &p || is_ready_[static_cast<std::size_t>(it - bucket_of_.begin())]) return;
  is_ready_[static_cast<std::size_t>(it - bucket_of_.begin())] = 1;
  --buckets_[it->second].waiting;
  launch_ready_buckets();
  // MPI moves a started collective on only inside its calls.
  for (std::size_t b = 0; b < launched_; ++b) comm_.test(buckets_[b].handle);
}

void RankCollectives::launch(Bucket& b) {
  float* to = flat_.data() + b.offset;
  for (Parameter* p : b.params) {
    std::memcpy(to, p->grad.data<float>(), static_cast<std::size_t>(p->grad.numel()) * sizeof(float));
    to += p->grad.numel();
  }
  b.handle = comm_.start_all_reduce(flat_.data() + b.offset, b.count, CommType::f32, ReduceOp::sum);
}

void RankCollectives::launch_ready_buckets() {
  while (launched_ < buckets_.size() && buckets_[launched_].waiting == 0) {
    launch(buckets_[launched_++]);
    ++buckets_overlapped_;
  }
}

void RankCollectives::reduce_gradients(const std::vector<Parameter*>& params) {
  if (params != planned_for_ || buckets_.empty()) backward_hook(params);
  // What the backward pass did not announce goes now, in bucket order.
  while (launched_ < buckets_.size()) launch(buckets_[launched_++]);
  const float scale = options_.gather ? 1.0f : 1.0f / static_cast<float>(comm_.size());
  buckets_reduced_ += static_cast<std::int64_t>(buckets_.size());
  for (Bucket& b : buckets_) {
    comm_.wait(b.handle);
    const float* from = flat_.data() + b.offset;
    for (Parameter* p : b.params) {
      float* g = p->grad.data<float>();
      for (std::int64_t i = 0; i < p->grad.numel(); ++i) g[i] = from[i] * scale;
      from += p->grad.numel();
    }
  }
  launched_ = 0;

  if (buffers_.empty()) return;
  std::vector<float> values;
  for (const Tensor* b : buffers_) values.insert(values.end(), b->data<float>(), b->data<float>() + b->numel());
  comm_.broadcast(values.data(), values.size() * sizeof(float), 0);
  std::size_t at = 0;
  for (Tensor* b : buffers_) {
    std::memcpy(b->data<float>(), values.data() + at, static_cast<std::size_t>(b->numel()) * sizeof(float));
    at += static_cast<std::size_t>(b->numel());
  }
}

double RankCollectives::step_loss(double local) {
  if (options_.gather) return local;
  comm_.all_reduce(&local, 1, CommType::f64, ReduceOp::sum);
  return local / comm_.size();
}

}  // namespace contra::runtime
