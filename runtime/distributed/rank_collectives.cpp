#include "distributed/rank_collectives.hpp"

#include "device/device_ops.hpp"

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
    if (b->dtype() != DType::f32 || b->device() != buffers_[0]->device())
      throw UsageError("data-parallel ranks: buffers must be f32 tensors on one device, got " +
                       std::string(dtype_name(b->dtype())) + " on " + device_name(b->device()));
}

namespace {
Memory memory_of(const Tensor& t) { return t.device() == Device::cpu ? Memory::host : Memory::device; }

// Copies tensor_of(item) for each of `items`, one after the other, into
// `flat` from `offset` on (into_flat), or back out of it.
template <class Items, class TensorOf>
void copy_flat(Tensor& flat, std::size_t offset, const Items& items, TensorOf tensor_of, bool into_flat) {
  for (auto* item : items) {
    Tensor& t = tensor_of(item);
    Tensor view = Tensor::wrap(flat.data<float>() + offset, t.shape(), DType::f32, flat.device());
    if (into_flat) device_ops::copy_async(view, t);
    else device_ops::copy_async(t, view);
    offset += static_cast<std::size_t>(t.numel());
  }
}

Tensor& grad_of(Parameter* p) { return p->grad; }
Tensor& itself(Tensor* t) { return *t; }
}  // namespace

const Embeddings& RankCollectives::gather(const Embeddings& local) {
  const Memory zmem = memory_of(local.z);
  if (zmem == Memory::device && !comm_.device_memory())
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
  std::int64_t all_rows = 0;
  std::vector<std::size_t> row_bytes(R), sample_bytes(R);
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
    all_rows += h[rows];
    row_bytes[r] = static_cast<std::size_t>(h[rows] * D) * sizeof(float);
    sample_bytes[r] = static_cast<std::size_t>(h[samples]) * sizeof(std::int64_t);
  }

  // Rows of every rank, rank after rank (where z lives), then placed in one
  // process's order: view v of rank r's samples at rows v * N + offset.
  const std::int64_t N = total_, rows_out = views_ * N;
  auto gather_rows = [&](const Tensor& rows, Tensor& staging, Tensor& out) {
    staging.ensure({all_rows, D}, DType::f32, rows.device());
    comm_.all_gather(rows.raw(), staging.raw(), row_bytes, zmem);
    out.ensure({rows_out, D}, DType::f32, rows.device());
    std::int64_t from = 0;
    for (std::size_t r = 0; r < R; ++r) {
      const std::int64_t nr = samples_[r];
      for (std::int64_t v = 0; v < views_; ++v, from += nr)
        if (nr > 0) device_ops::copy_rows(out, v * N + offset_[r], staging.rows(from, from + nr));
    }
  };
  gather_rows(local.z, staging_z_, z_);
  if (keys) gather_rows(local.keys, staging_keys_, keys_);
  else keys_ = Tensor();
  // Per sample, ids and labels (host), rank after rank: the global order.
  std::vector<std::int64_t> sample_ids(ids ? N : 0), sample_labels(labels ? N : 0);
  if (ids) comm_.all_gather(local.ids->data(), sample_ids.data(), sample_bytes);
  if (labels) comm_.all_gather(local.label->data(), sample_labels.data(), sample_bytes);
  sample_.resize(static_cast<std::size_t>(rows_out));
  id_.resize(ids ? static_cast<std::size_t>(rows_out) : 0);
  label_.resize(labels ? static_cast<std::size_t>(rows_out) : 0);
  for (std::int64_t row = 0; row < rows_out; ++row) {
    sample_[row] = row % N;
    if (ids) id_[row] = sample_ids[row % N];
    if (labels) label_[row] = sample_labels[row % N];
  }
  global_ = Embeddings{z_,     &sample_, labels ? &label_ : nullptr, local.views, ids ? &id_ : nullptr, keys_,
                       local.memory, local.view_tower};
  return global_;
}

Tensor RankCollectives::local_gradient(const Tensor& g) {
  const auto me = static_cast<std::size_t>(comm_.rank());
  const std::int64_t n = samples_[me], off = offset_[me], D = g.dim(1), N = total_;
  local_grad_.ensure({views_ * n, D}, DType::f32, g.device());
  for (std::int64_t v = 0; v < views_; ++v)
    device_ops::copy_rows(local_grad_, v * n, g.rows(v * N + off, v * N + off + n));
  return local_grad_;
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
  flat_.ensure({static_cast<std::int64_t>(std::max<std::size_t>(at, 1))}, DType::f32,
               params.empty() ? Device::cpu : params[0]->grad.device());
}

GradientReadyHook* RankCollectives::backward_hook(const std::vector<Parameter*>& params) {
  plan_buckets(params);
  for (Bucket& b : buckets_) b.waiting = b.params.size();
  std::fill(is_ready_.begin(), is_ready_.end(), 0);
  launched_ = 0;
  // On a GPU the collectives are queued on the train stream behind the
  // backward pass: nothing to overlap from here.
  const bool host = params.empty() || params[0]->grad.device() == Device::cpu;
  return options_.overlap && host ? this : nullptr;
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
  copy_flat(flat_, b.offset, b.params, grad_of, true);
  float* data = flat_.data<float>() + b.offset;
  if (flat_.device() == Device::cpu) {
    b.handle = comm_.start_all_reduce(data, b.count, CommType::f32, ReduceOp::sum);
    b.started = true;
  } else {
    // Queued on the train stream (and waited for) at once.
    comm_.all_reduce(data, b.count, CommType::f32, options_.gather ? ReduceOp::sum : ReduceOp::mean, Memory::device);
    b.started = false;
  }
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
  buckets_reduced_ += static_cast<std::int64_t>(buckets_.size());
  for (Bucket& b : buckets_) {
    if (b.started) {
      comm_.wait(b.handle);
      // Without gather the ranks' losses are averaged: so are their gradients.
      if (!options_.gather) {
        const float scale = 1.0f / static_cast<float>(comm_.size());
        float* g = flat_.data<float>() + b.offset;
        for (std::size_t i = 0; i < b.count; ++i) g[i] *= scale;
      }
    }
    copy_flat(flat_, b.offset, b.params, grad_of, false);
  }
  launched_ = 0;

  if (buffers_.empty()) return;
  std::int64_t count = 0;
  for (const Tensor* t : buffers_) count += t->numel();
  buffer_flat_.ensure({count}, DType::f32, buffers_[0]->device());
  copy_flat(buffer_flat_, 0, buffers_, itself, true);
  comm_.broadcast(buffer_flat_.raw(), buffer_flat_.nbytes(), 0, memory_of(buffer_flat_));
  copy_flat(buffer_flat_, 0, buffers_, itself, false);
}

double RankCollectives::step_loss(double local) {
  if (options_.gather) return local;
  comm_.all_reduce(&local, 1, CommType::f64, ReduceOp::sum);
  return local / comm_.size();
}

}  // namespace contra::runtime
