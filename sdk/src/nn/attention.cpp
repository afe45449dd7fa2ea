#include <contra/nn/attention.hpp>

#include <contra/blas.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

namespace contra::nn {

namespace {

// The shape of one forward: `batch` sequences of `length` rows of `width`
// features, split into `heads` heads.
struct Geometry {
  std::int64_t batch, length, width, heads;
  bool causal;

  std::int64_t head_dim() const { return width / heads; }
  std::int64_t qkv_stride() const { return 3 * width; }  // row stride of the fused projection
  float scale() const { return 1.0f / std::sqrt(static_cast<float>(head_dim())); }
  // Offset of sample b, head h's first query feature in qkv (keys + width, values + 2·width).
  std::int64_t qkv_offset(std::int64_t b, std::int64_t h) const { return b * length * qkv_stride() + h * head_dim(); }
  // Offset of sample b, head h's first feature in the attention output [B·L, width].
  std::int64_t out_offset(std::int64_t b, std::int64_t h) const { return b * length * width + h * head_dim(); }
  // Each (sample, head) has an [L, L] block of probabilities.
  std::int64_t prob_offset(std::int64_t task) const { return task * length * length; }
};

// Zeroes `rows` rows of `cols` floats, `stride` apart.
void zero_rows(float* p, std::int64_t rows, std::int64_t cols, std::int64_t stride) {
  for (std::int64_t r = 0; r < rows; ++r) std::memset(p + r * stride, 0, static_cast<std::size_t>(cols) * sizeof(float));
}

// Softmax of s[0, seen) in place (max subtracted first, so no exp overflows);
// s[seen, cols) become 0: the keys this query may not see.
void softmax_row(float* s, std::int64_t seen, std::int64_t cols) {
  float top = s[0];
  for (std::int64_t j = 1; j < seen; ++j) top = std::max(top, s[j]);
  float sum = 0;
  for (std::int64_t j = 0; j < seen; ++j) {
    s[j] = std::exp(s[j] - top);
    sum += s[j];
  }
  const float inv = 1.0f / sum;
  for (std::int64_t j = 0; j < seen; ++j) s[j] *= inv;
  std::fill(s + seen, s + cols, 0.0f);
}

// The softmax's backward in place: dp ← p ⊙ (dp − Σ_j p_j·dp_j). Entries
// with p = 0 (hidden keys) come out 0.
void softmax_backward_row(const float* p, float* dp, std::int64_t cols) {
  float dot = 0;
  for (std::int64_t j = 0; j < cols; ++j) dot += p[j] * dp[j];
  for (std::int64_t j = 0; j < cols; ++j) dp[j] = p[j] * (dp[j] - dot);
}

// The attention of every (sample, head): probabilities into `probs`
// ([B, H, L, L], the leading valid × valid block of each used) and the
// heads' outputs into `out` ([B·L, width]), zero at padded queries.
//
// One (sample, head) per task, on the OpenMP team: the sgemm calls inside
// run on one thread each (oneDNN does not nest parallel regions). The
// arguments are valid by construction, so sgemm does not throw here (an
// exception cannot leave an OpenMP region).
void attend(const Geometry& g, const std::int32_t* valid, const float* qkv, float* probs, float* out) {
  const std::int64_t d = g.width, dh = g.head_dim(), ld = g.qkv_stride(), l = g.length;
  const float scale = g.scale();
#pragma omp parallel for schedule(dynamic, 4)
  for (std::int64_t task = 0; task < g.batch * g.heads; ++task) {
    const std::int64_t b = task / g.heads, h = task % g.heads, n = valid[b];
    const float* q = qkv + g.qkv_offset(b, h);
    const float* k = q + d;
    const float* v = q + 2 * d;
    float* p = probs + g.prob_offset(task);
    float* o = out + g.out_offset(b, h);
    sgemm(false, true, n, n, dh, scale, q, ld, k, ld, 0.0f, p, l);  // S = Q·Kᵀ / sqrt(dh)
    for (std::int64_t i = 0; i < n; ++i) softmax_row(p + i * l, g.causal ? i + 1 : n, n);
    sgemm(false, false, n, dh, n, 1.0f, p, l, v, ld, 0.0f, o, d);   // O = P·V
    zero_rows(o + n * d, l - n, dh, d);
  }
}

// attend()'s backward: from dL/d(out) `dout` and the saved probabilities,
// dL/d(qkv) into `dqkv` (zero at padded positions). `dprobs` is scratch of
// probs' shape.
void attend_backward(const Geometry& g, const std::int32_t* valid, const float* qkv, const float* probs,
                     const float* dout, float* dprobs, float* dqkv) {
  const std::int64_t d = g.width, dh = g.head_dim(), ld = g.qkv_stride(), l = g.length;
  const float scale = g.scale();
#pragma omp parallel for schedule(dynamic, 4)
  for (std::int64_t task = 0; task < g.batch * g.heads; ++task) {
    const std::int64_t b = task / g.heads, h = task % g.heads, n = valid[b];
    const float* q = qkv + g.qkv_offset(b, h);
    const float* k = q + d;
    const float* v = q + 2 * d;
    float* dq = dqkv + g.qkv_offset(b, h);
    float* dk = dq + d;
    float* dv = dq + 2 * d;
    const float* p = probs + g.prob_offset(task);
    float* ds = dprobs + g.prob_offset(task);
    const float* dout_bh = dout + g.out_offset(b, h);
    sgemm(false, true, n, n, dh, 1.0f, dout_bh, d, v, ld, 0.0f, ds, l);  // dP = dO·Vᵀ
    sgemm(true, false, n, dh, n, 1.0f, p, l, dout_bh, d, 0.0f, dv, ld);  // dV = Pᵀ·dO
    for (std::int64_t i = 0; i < n; ++i) softmax_backward_row(p + i * l, ds + i * l, n);  // dS
    sgemm(false, false, n, dh, n, scale, ds, l, k, ld, 0.0f, dq, ld);    // dQ = dS·K / sqrt(dh)
    sgemm(true, false, n, dh, n, scale, ds, l, q, ld, 0.0f, dk, ld);     // dK = dSᵀ·Q / sqrt(dh)
    for (float* part : {dq, dk, dv}) zero_rows(part + n * ld, l - n, dh, ld);
  }
}

// How messages name the layer.
std::string label(const std::string& name) { return "MultiHeadSelfAttention '" + name + "'"; }

}  // namespace

struct MultiHeadSelfAttention::Impl {
  Linear in_proj, out_proj;

  // What set_sequences() gave.
  std::int64_t length = 0;
  std::vector<std::int32_t> valid;  // empty: every position is real

  // The last forward: its geometry and valid lengths (one per sample), the
  // projection it attended over (in_proj's output) and the probabilities.
  Geometry last{};
  std::vector<std::int32_t> last_valid;
  const Tensor* qkv = nullptr;
  bool trained = false;  // the last forward ran in train mode
  Tensor probs, out;

  Tensor dprobs, dqkv;

  Impl(const std::string& name, std::int64_t width, Rng& init, Precision precision)
      : in_proj(name + ".in_proj", width, 3 * width, true, init, precision),
        out_proj(name + ".out_proj", width, width, true, init, precision) {}
};

MultiHeadSelfAttention::MultiHeadSelfAttention(std::string name, std::int64_t width, std::int64_t heads, Rng& init,
                                               Precision precision, bool causal)
    : name_(std::move(name)), width_(width), heads_(heads), causal_(causal) {
  if (width < 1 || heads < 1 || width % heads != 0)
    throw UsageError(label(name_) + ": width must be a positive multiple of heads, got width " + std::to_string(width) +
                     " and " + std::to_string(heads) + " heads");
  impl_ = std::make_unique<Impl>(name_, width, init, precision);
  // PyTorch's nn.MultiheadAttention._reset_parameters: Xavier-uniform
  // in_proj_weight (fan_in width, fan_out 3·width), zero biases; out_proj
  // keeps nn.Linear's weight.
  fill_uniform(impl_->in_proj.weight().value, std::sqrt(6.0 / static_cast<double>(4 * width)), init);
  impl_->in_proj.bias()->value.zero();
  impl_->out_proj.bias()->value.zero();
}

MultiHeadSelfAttention::~MultiHeadSelfAttention() = default;

Linear& MultiHeadSelfAttention::in_proj() noexcept { return impl_->in_proj; }
Linear& MultiHeadSelfAttention::out_proj() noexcept { return impl_->out_proj; }

void MultiHeadSelfAttention::parameters(std::vector<Parameter*>& out) {
  impl_->in_proj.parameters(out);
  impl_->out_proj.parameters(out);
}

void MultiHeadSelfAttention::set_sequences(std::int64_t length, std::span<const std::int32_t> valid) {
  if (length < 1) throw UsageError(label(name_) + ": sequence length must be >= 1, got " + std::to_string(length));
  for (std::size_t b = 0; b < valid.size(); ++b)
    if (valid[b] < 1 || valid[b] > length)
      throw UsageError(label(name_) + ": sample " + std::to_string(b) + " has " + std::to_string(valid[b]) +
                       " valid positions, outside [1, " + std::to_string(length) + "]");
  Impl& m = *impl_;
  m.length = length;
  m.valid.assign(valid.begin(), valid.end());
}

const Tensor& MultiHeadSelfAttention::forward(const Tensor& x, Mode mode) {
  Impl& m = *impl_;
  if (m.length == 0) throw UsageError(label(name_) + ": forward() called before set_sequences()");
  const std::int64_t rows = x.rank() == 2 ? x.dim(0) : 0;
  if (x.dtype() != DType::f32 || x.device() != Device::cpu || x.rank() != 2 || x.dim(1) != width_ || rows == 0 ||
      rows % m.length != 0)
    throw UsageError(label(name_) + ": expected an f32 cpu tensor [B·L, " + std::to_string(width_) + "] with L = " +
                     std::to_string(m.length) + ", got " + dtype_name(x.dtype()) + " " + device_name(x.device()) +
                     " " + x.shape().str());
  const std::int64_t batch = rows / m.length;
  if (!m.valid.empty() && static_cast<std::int64_t>(m.valid.size()) != batch)
    throw UsageError(label(name_) + ": set_sequences() gave valid lengths of " + std::to_string(m.valid.size()) +
                     " samples, but the input " + x.shape().str() + " holds " + std::to_string(batch) +
                     " sequences of " + std::to_string(m.length));
  m.trained = false;
  m.last = {batch, m.length, width_, heads_, causal_};
  if (m.valid.empty()) m.last_valid.assign(static_cast<std::size_t>(batch), static_cast<std::int32_t>(m.length));
  else m.last_valid = m.valid;

  m.qkv = &m.in_proj.forward(x, mode);
  m.probs.ensure({batch, heads_, m.length, m.length}, DType::f32);
  m.out.ensure({rows, width_}, DType::f32);
  attend(m.last, m.last_valid.data(), m.qkv->data<float>(), m.probs.data<float>(), m.out.data<float>());
  const Tensor& y = m.out_proj.forward(m.out, mode);
  m.trained = mode == Mode::train;
  return y;
}

const Tensor& MultiHeadSelfAttention::backward(const Tensor& dy, bool want_input_grad) {
  Impl& m = *impl_;
  if (!m.trained) throw UsageError(label(name_) + ": backward() without a train-mode forward()");
  const Geometry& g = m.last;
  if (dy.shape() != Shape{g.batch * g.length, width_} || dy.dtype() != DType::f32)
    dy.expect({g.batch * g.length, width_}, DType::f32, (label(name_) + " backward dy").c_str());
  const Tensor& dout = m.out_proj.backward(dy, true);
  m.dprobs.ensure(m.probs.shape(), DType::f32);
  m.dqkv.ensure(m.qkv->shape(), DType::f32);
  attend_backward(g, m.last_valid.data(), m.qkv->data<float>(), m.probs.data<float>(), dout.data<float>(),
                  m.dprobs.data<float>(), m.dqkv.data<float>());
  return m.in_proj.backward(m.dqkv, want_input_grad);
}

}  // namespace contra::nn
