#include <contra/nn/pooling.hpp>

#include "dnnl_util.hpp"
#include "simd.hpp"

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <map>
#include <unordered_map>
#include <utility>

namespace contra::nn {

namespace {

using ShapeKey = std::array<std::int64_t, Shape::max_rank + 1>;

ShapeKey key_of(const Shape& s) {
  ShapeKey k{};
  k[0] = s.rank();
  for (int i = 0; i < s.rank(); ++i) k[i + 1] = s[i];
  return k;
}

void* ptr(const Tensor& t) { return const_cast<void*>(t.raw()); }

std::string describe(const Tensor& t) {
  return std::string(dtype_name(t.dtype())) + " " + device_name(t.device()) + " " + t.shape().str();
}

// Max pooling on NHWC, written out: oneDNN 2.6's kernel for channels-last
// overlapping windows (3x3, stride 2) runs near 1 GB/s on AVX2 (42 ms forward,
// 34 ms backward for [512, 28, 28, 64] on two cores), where one pass over the
// data takes a few milliseconds. Channels are contiguous, so each window
// position is a compare-and-select over C values (simd.hpp). `Index` holds a
// maximum's place in its window (kernel² values): u8 for kernels up to 16,
// else i32.

// Maxima and their window places for channels [k, k + lanes<T>) of one output
// position, the window's valid input rows r0..r1, columns q0..q1 (padding
// never wins). The first maximum wins ties; a NaN wins and stays (PyTorch's
// rule).
template <class T, class Index>
void window_max(const float* xi, std::int64_t w, std::int64_t c, std::int64_t k, int r0, int r1, int q0, int q1,
                int kernel, int base, float* y, Index* arg) {
  using I = typename detail::int_lanes<T>::type;
  auto at = [&](std::int64_t r, std::int64_t q) { return xi + (r * w + q) * c + k; };
  T best = detail::load<T>(at(r0, q0));  // the window's first valid position starts the maxima
  I where = I{} + (base + r0 * kernel + q0);
  for (int r = r0; r < r1; ++r)
    for (int q = (r == r0 ? q0 + 1 : q0); q < q1; ++q) {
      const T v = detail::load<T>(at(r, q));
      const auto take = (v > best) | ((v != v) & (best == best));
      best = take ? v : best;
      where = take ? I{} + (base + r * kernel + q) : where;
    }
  detail::store<T>(y + k, best);
  if (arg)
    for (int l = 0; l < detail::lanes<T>; ++l) arg[k + l] = static_cast<Index>(detail::lane(where, l));
}

template <class Index>
void max_pool_forward(const float* x, float* y, Index* arg, std::int64_t n, std::int64_t h, std::int64_t w,
                      std::int64_t c, std::int64_t oh, std::int64_t ow, int kernel, int stride, int padding) {
#pragma omp parallel for schedule(static)
  for (std::int64_t row = 0; row < n * oh; ++row) {
    const std::int64_t img = row / oh, i = row % oh;
    const float* xi = x + img * h * w * c;
    const int r0 = static_cast<int>(std::max<std::int64_t>(0, i * stride - padding));
    const int r1 = static_cast<int>(std::min<std::int64_t>(h, i * stride - padding + kernel));
    for (std::int64_t j = 0; j < ow; ++j) {
      const std::int64_t o = (row * ow + j) * c;
      const int q0 = static_cast<int>(std::max<std::int64_t>(0, j * stride - padding));
      const int q1 = static_cast<int>(std::min<std::int64_t>(w, j * stride - padding + kernel));
      // Window place of input (r, q): (r − (i·stride − padding))·kernel + ...
      const int base = -static_cast<int>((i * stride - padding) * kernel + (j * stride - padding));
      Index* where = arg ? arg + o : nullptr;
      std::int64_t k = 0;
      for (; k + 8 <= c; k += 8) window_max<detail::f32x8>(xi, w, c, k, r0, r1, q0, q1, kernel, base, y + o, where);
      for (; k < c; ++k) window_max<float>(xi, w, c, k, r0, r1, q0, q1, kernel, base, y + o, where);
    }
  }
}

template <class Index>
void max_pool_backward(const float* dy, const Index* arg, float* dx, std::int64_t n, std::int64_t h, std::int64_t w,
                       std::int64_t c, std::int64_t oh, std::int64_t ow, int kernel, int stride, int padding) {
  // One image per task: overlapping windows add into the same dx rows.
#pragma omp parallel for schedule(static)
  for (std::int64_t img = 0; img < n; ++img) {
    float* dxi = dx + img * h * w * c;
    std::memset(dxi, 0, static_cast<std::size_t>(h * w * c) * sizeof(float));
    for (std::int64_t i = 0; i < oh; ++i)
      for (std::int64_t j = 0; j < ow; ++j) {
        const std::int64_t o = ((img * oh + i) * ow + j) * c;
        const std::int64_t r0 = i * stride - padding, q0 = j * stride - padding;
        for (std::int64_t k = 0; k < c; ++k) {
          const int at = static_cast<int>(arg[o + k]);
          dxi[((r0 + at / kernel) * w + q0 + at % kernel) * c + k] += dy[o + k];
        }
      }
  }
}

}  // namespace

namespace detail {

struct Pool {
  std::string who;
  dnnl::algorithm alg;
  int kernel = 0, stride = 0, padding = 0;
  bool global = false;  // kernel = the whole image; output [N, C]
  bool direct = false;  // max pooling by max_pool_forward/backward, not oneDNN
  Tensor arg;           // direct: where each maximum was, u8 (kernel <= 16) or i32

  struct Entry {
    Shape in, out;
    dnnl::memory src, dst, diff_dst, diff_src, ws;
    dnnl::primitive fwd_train, fwd_infer, bwd;
    Tensor ws_buf, fwd_train_scratch, fwd_infer_scratch, bwd_scratch;
    std::unordered_map<int, dnnl::memory> fwd_train_args, fwd_infer_args, bwd_args;
  };
  std::map<ShapeKey, Entry> cache;
  Tensor y, dx;
  Entry* last = nullptr;  // entry of the last forward, when it ran in train mode

  Pool(std::string name, dnnl::algorithm a, int k, int s, int p) : who(std::move(name)), alg(a), kernel(k), stride(s), padding(p) {
    if (k < 1) throw UsageError(who + ": kernel must be >= 1, got " + std::to_string(k));
    if (s < 1) throw UsageError(who + ": stride must be >= 1, got " + std::to_string(s));
    if (p < 0 || p > k / 2)
      throw UsageError(who + ": padding must be in [0, kernel/2] = [0, " + std::to_string(k / 2) + "], got " +
                       std::to_string(p));
    direct = a == dnnl::algorithm::pooling_max;
  }

  Shape output_shape(const Shape& in) const {
    return Shape{in[0], (in[1] + 2 * padding - kernel) / stride + 1, (in[2] + 2 * padding - kernel) / stride + 1,
                 in[3]};
  }
  bool small_kernel() const { return kernel <= 16; }  // window places fit in a u8

  const Tensor& forward_direct(const Tensor& x, Mode mode) {
    const Shape out = output_shape(x.shape());
    y.ensure(out, DType::f32);
    const bool train = mode == Mode::train;
    if (train) arg.ensure(out, small_kernel() ? DType::u8 : DType::i32);
    if (x.numel() > 0) {
      const auto run = [&](auto* where) {
        max_pool_forward(x.data<float>(), y.data<float>(), where, x.dim(0), x.dim(1), x.dim(2), x.dim(3), out[1],
                         out[2], kernel, stride, padding);
      };
      if (!train) run(static_cast<std::uint8_t*>(nullptr));
      else if (small_kernel()) run(arg.data<std::uint8_t>());
      else run(arg.data<std::int32_t>());
    }
    direct_in = x.shape();
    direct_out = out;
    trained = train;
    return y;
  }

  const Tensor& backward_direct(const Tensor& dy, bool want_input_grad) {
    if (!trained) throw UsageError(who + ": backward() without a train-mode forward()");
    dy.expect(direct_out, DType::f32, (who + " backward dy").c_str());
    if (!want_input_grad) {
      static const Tensor none;
      return none;
    }
    dx.ensure(direct_in, DType::f32);
    if (dx.numel() == 0) return dx;
    const auto run = [&](const auto* where) {
      max_pool_backward(dy.data<float>(), where, dx.data<float>(), direct_in[0], direct_in[1], direct_in[2],
                        direct_in[3], direct_out[1], direct_out[2], kernel, stride, padding);
    };
    if (small_kernel()) run(arg.data<std::uint8_t>());
    else run(arg.data<std::int32_t>());
    return dx;
  }
  Shape direct_in, direct_out;
  bool trained = false;

  Entry& entry(const Shape& in) {
    auto it = cache.find(key_of(in));
    if (it != cache.end()) return it->second;
    const std::int64_t n = in[0], h = in[1], w = in[2], c = in[3];
    Entry e;
    e.in = in;
    dnnl::memory::dims strides, kern, pad_l, pad_r;
    dnnl::memory::desc src_md = nhwc_desc(in), dst_md;
    if (global) {
      e.out = Shape{n, c};
      dst_md = nhwc_desc(Shape{n, 1, 1, c});  // the same bytes as [N, C]
      strides = {1, 1};
      kern = {h, w};
      pad_l = pad_r = {0, 0};
    } else {
      const std::int64_t oh = (h + 2 * padding - kernel) / stride + 1;
      const std::int64_t ow = (w + 2 * padding - kernel) / stride + 1;
      e.out = Shape{n, oh, ow, c};
      dst_md = nhwc_desc(e.out);
      strides = {stride, stride};
      kern = {kernel, kernel};
      // oneDNN checks (in + pad_l + pad_r − kernel) / stride + 1 == out with
      // integer division, so the symmetric padding gives PyTorch's floor.
      pad_l = pad_r = {padding, padding};
    }
    dnnl::primitive_attr attr;
    attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
    using fwd = dnnl::pooling_forward;
    using bwd = dnnl::pooling_backward;
    fwd::primitive_desc ft(fwd::desc(dnnl::prop_kind::forward_training, alg, src_md, dst_md, strides, kern, pad_l, pad_r),
                           attr, engine());
    fwd::primitive_desc fi(
        fwd::desc(dnnl::prop_kind::forward_inference, alg, src_md, dst_md, strides, kern, pad_l, pad_r), attr, engine());
    bwd::primitive_desc bd(bwd::desc(alg, src_md, dst_md, strides, kern, pad_l, pad_r), attr, engine(), ft);
    auto mem = [](const dnnl::memory::desc& md) { return dnnl::memory(md, engine(), DNNL_MEMORY_NONE); };
    e.src = mem(src_md);
    e.dst = mem(dst_md);
    e.diff_dst = mem(dst_md);
    e.diff_src = mem(src_md);
    e.fwd_train = fwd(ft);
    e.fwd_infer = fwd(fi);
    e.bwd = bwd(bd);
    e.fwd_train_args = {{DNNL_ARG_SRC, e.src}, {DNNL_ARG_DST, e.dst},
                        {DNNL_ARG_SCRATCHPAD, scratch(e.fwd_train_scratch, ft.scratchpad_desc())}};
    e.fwd_infer_args = {{DNNL_ARG_SRC, e.src}, {DNNL_ARG_DST, e.dst},
                        {DNNL_ARG_SCRATCHPAD, scratch(e.fwd_infer_scratch, fi.scratchpad_desc())}};
    e.bwd_args = {{DNNL_ARG_DIFF_DST, e.diff_dst}, {DNNL_ARG_DIFF_SRC, e.diff_src},
                  {DNNL_ARG_SCRATCHPAD, scratch(e.bwd_scratch, bd.scratchpad_desc())}};
    if (ft.workspace_desc().get_size() != 0) {  // max pooling: where each maximum was
      e.ws = scratch(e.ws_buf, ft.workspace_desc());
      e.fwd_train_args[DNNL_ARG_WORKSPACE] = e.ws;
      e.bwd_args[DNNL_ARG_WORKSPACE] = e.ws;
    }
    return cache.emplace(key_of(in), std::move(e)).first->second;
  }

  const Tensor& forward(const Tensor& x, Mode mode) {
    if (x.rank() != 4 || x.dtype() != DType::f32 || x.device() != Device::cpu)
      throw UsageError(who + ": expected an f32 cpu NHWC tensor [N, H, W, C], got " + describe(x));
    if (!global && (x.dim(1) + 2 * padding < kernel || x.dim(2) + 2 * padding < kernel))
      throw UsageError(who + ": input " + x.shape().str() + " is smaller than the kernel: H + 2*padding and W + " +
                       "2*padding must be >= " + std::to_string(kernel));
    last = nullptr;
    trained = false;
    if (direct && !global) return forward_direct(x, mode);
    try {
      Entry& e = entry(x.shape());
      y.ensure(e.out, DType::f32);
      if (x.numel() == 0) return y;
      e.src.set_data_handle(ptr(x));
      e.dst.set_data_handle(y.raw());
      if (mode == Mode::train) {
        e.fwd_train.execute(stream(), e.fwd_train_args);
      } else {
        e.fwd_infer.execute(stream(), e.fwd_infer_args);
      }
      stream().wait();
      if (mode == Mode::train) last = &e;
    } catch (const dnnl::error& err) {
      rethrow(who + " forward", err);
    }
    return y;
  }

  const Tensor& backward(const Tensor& dy, bool want_input_grad) {
    if (direct && !global) return backward_direct(dy, want_input_grad);
    if (!last) throw UsageError(who + ": backward() without a train-mode forward()");
    Entry& e = *last;
    dy.expect(e.out, DType::f32, (who + " backward dy").c_str());
    if (!want_input_grad) {
      static const Tensor none;
      return none;
    }
    dx.ensure(e.in, DType::f32);
    try {
      e.diff_dst.set_data_handle(ptr(dy));
      e.diff_src.set_data_handle(dx.raw());
      e.bwd.execute(stream(), e.bwd_args);
      stream().wait();
    } catch (const dnnl::error& err) {
      rethrow(who + " backward", err);
    }
    return dx;
  }
};

}  // namespace detail

MaxPool2d::MaxPool2d(int kernel, int stride, int padding)
    : impl_(std::make_unique<detail::Pool>("MaxPool2d", dnnl::algorithm::pooling_max, kernel, stride, padding)) {}
MaxPool2d::~MaxPool2d() = default;
const Tensor& MaxPool2d::forward(const Tensor& x, Mode mode) { return impl_->forward(x, mode); }
const Tensor& MaxPool2d::backward(const Tensor& dy, bool want_input_grad) {
  return impl_->backward(dy, want_input_grad);
}

AvgPool2d::AvgPool2d(int kernel, int stride, int padding, bool count_include_pad)
    : impl_(std::make_unique<detail::Pool>("AvgPool2d",
                                           count_include_pad ? dnnl::algorithm::pooling_avg_include_padding
                                                             : dnnl::algorithm::pooling_avg_exclude_padding,
                                           kernel, stride, padding)) {}
AvgPool2d::~AvgPool2d() = default;
const Tensor& AvgPool2d::forward(const Tensor& x, Mode mode) { return impl_->forward(x, mode); }
const Tensor& AvgPool2d::backward(const Tensor& dy, bool want_input_grad) {
  return impl_->backward(dy, want_input_grad);
}

GlobalAvgPool::GlobalAvgPool()
    : impl_(std::make_unique<detail::Pool>("GlobalAvgPool", dnnl::algorithm::pooling_avg_exclude_padding, 1, 1, 0)) {
  impl_->global = true;
}
GlobalAvgPool::~GlobalAvgPool() = default;
const Tensor& GlobalAvgPool::forward(const Tensor& x, Mode mode) { return impl_->forward(x, mode); }
const Tensor& GlobalAvgPool::backward(const Tensor& dy, bool want_input_grad) {
  return impl_->backward(dy, want_input_grad);
}

Flatten::~Flatten() = default;

const Tensor& Flatten::forward(const Tensor& x, Mode mode) {
  if (x.rank() < 2)
    throw UsageError("Flatten: expected a tensor of rank >= 2 [N, ...], got " + describe(x));
  in_ = x.shape();
  const std::int64_t n = x.dim(0);
  std::int64_t rest = 1;
  for (int i = 1; i < x.rank(); ++i) rest *= x.dim(i);
  y_ = Tensor::wrap(ptr(x), Shape{n, rest}, x.dtype(), x.device());
  trained_ = mode == Mode::train;
  return y_;
}

const Tensor& Flatten::backward(const Tensor& dy, bool want_input_grad) {
  if (!trained_) throw UsageError("Flatten: backward() without a train-mode forward()");
  dy.expect(y_.shape(), y_.dtype(), "Flatten backward dy");
  if (!want_input_grad) {
    static const Tensor none;
    return none;
  }
  dx_ = Tensor::wrap(ptr(dy), in_, dy.dtype(), dy.device());
  return dx_;
}

}  // namespace contra::nn
