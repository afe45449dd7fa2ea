#include <contra/nn/activation.hpp>

#include "dnnl_util.hpp"

#include <map>
#include <string>
#include <unordered_map>

namespace contra::nn {

using namespace detail;

namespace {

// One element-wise activation on oneDNN's eltwise primitives, forward and
// backward, what ReLU and Gelu share. The backward primitive reads either the
// saved output (`from_dst`: algorithms that oneDNN differentiates from y) or
// the input, to which the layer then keeps a non-owning reference.
struct Eltwise {
  // Primitives for one element count; memories are placeholders whose data
  // handles are set on each call.
  struct Entry {
    dnnl::memory src, dst, diff_dst, diff_src;
    dnnl::primitive fwd, bwd;
    Tensor fwd_scratch, bwd_scratch;
    std::unordered_map<int, dnnl::memory> fwd_args, bwd_args;
  };

  std::string who;  // how messages name the layer
  dnnl::algorithm alg;
  bool from_dst;
  std::map<std::int64_t, Entry> cache;
  Tensor x, y, dx;
  Entry* last = nullptr;  // the entry of the last forward, when it ran in train mode
  Shape shape;            // its shape

  Eltwise(std::string name, dnnl::algorithm algorithm, bool backward_from_dst)
      : who(std::move(name)), alg(algorithm), from_dst(backward_from_dst) {}

  Entry& entry(std::int64_t n) {
    auto it = cache.find(n);
    if (it != cache.end()) return it->second;
    Entry e;
    // Element-wise: every shape of n elements is the same 1-D problem.
    dnnl::memory::desc md({n}, dt::f32, tag::a);
    dnnl::primitive_attr attr;
    attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
    dnnl::eltwise_forward::primitive_desc fpd(
        dnnl::eltwise_forward::desc(dnnl::prop_kind::forward_training, alg, md, 0.f, 0.f), attr, engine());
    dnnl::eltwise_backward::primitive_desc bpd(dnnl::eltwise_backward::desc(alg, md, md, 0.f, 0.f), attr,
                                               engine(), fpd);
    auto mem = [&] { return dnnl::memory(md, engine(), DNNL_MEMORY_NONE); };
    e.src = mem();
    e.dst = mem();
    e.diff_dst = mem();
    e.diff_src = mem();
    e.fwd = dnnl::eltwise_forward(fpd);
    e.bwd = dnnl::eltwise_backward(bpd);
    e.fwd_args = {{DNNL_ARG_SRC, e.src},
                  {DNNL_ARG_DST, e.dst},
                  {DNNL_ARG_SCRATCHPAD, scratch(e.fwd_scratch, fpd.scratchpad_desc())}};
    e.bwd_args = {{from_dst ? DNNL_ARG_DST : DNNL_ARG_SRC, from_dst ? e.dst : e.src},
                  {DNNL_ARG_DIFF_DST, e.diff_dst},
                  {DNNL_ARG_DIFF_SRC, e.diff_src},
                  {DNNL_ARG_SCRATCHPAD, scratch(e.bwd_scratch, bpd.scratchpad_desc())}};
    return cache.emplace(n, std::move(e)).first->second;
  }

  const Tensor& forward(const Tensor& in, Mode mode) {
    if (in.dtype() != DType::f32 || in.device() != Device::cpu || !in.defined())
      throw UsageError(who + ": expected an f32 cpu tensor, got " + dtype_name(in.dtype()) + " " +
                       device_name(in.device()) + " " + in.shape().str());
    last = nullptr;
    shape = in.shape();
    y.ensure(in.shape(), DType::f32);
    if (in.numel() == 0) return y;
    try {
      Entry& e = entry(in.numel());
      e.src.set_data_handle(const_cast<void*>(in.raw()));
      e.dst.set_data_handle(y.raw());
      e.fwd.execute(stream(), e.fwd_args);
      stream().wait();
      if (mode == Mode::train) {
        if (!from_dst) x = Tensor::wrap(const_cast<void*>(in.raw()), in.shape(), DType::f32);
        last = &e;
      }
    } catch (const dnnl::error& err) {
      rethrow(who + " forward", err);
    }
    return y;
  }

  const Tensor& backward(const Tensor& dy, bool want_input_grad) {
    if (!last) throw UsageError(who + ": backward() without a train-mode forward()");
    dy.expect(shape, DType::f32, (who + " backward dy").c_str());
    if (!want_input_grad) {
      static const Tensor none;
      return none;
    }
    dx.ensure(shape, DType::f32);
    try {
      Entry& e = *last;
      if (from_dst) e.dst.set_data_handle(y.raw());
      else e.src.set_data_handle(x.raw());
      e.diff_dst.set_data_handle(const_cast<void*>(dy.raw()));
      e.diff_src.set_data_handle(dx.raw());
      e.bwd.execute(stream(), e.bwd_args);
      stream().wait();
    } catch (const dnnl::error& err) {
      rethrow(who + " backward", err);
    }
    return dx;
  }
};

}  // namespace

struct ReLU::Impl : Eltwise {
  Impl() : Eltwise("ReLU", dnnl::algorithm::eltwise_relu_use_dst_for_bwd, true) {}
};

ReLU::ReLU() : impl_(std::make_unique<Impl>()) {}
ReLU::~ReLU() = default;
const Tensor& ReLU::forward(const Tensor& x, Mode mode) { return impl_->forward(x, mode); }
const Tensor& ReLU::backward(const Tensor& dy, bool want_input_grad) {
  return impl_->backward(dy, want_input_grad);
}

struct Gelu::Impl : Eltwise {
  Impl() : Eltwise("GELU", dnnl::algorithm::eltwise_gelu_erf, false) {}
};

Gelu::Gelu() : impl_(std::make_unique<Impl>()) {}
Gelu::~Gelu() = default;
const Tensor& Gelu::forward(const Tensor& x, Mode mode) { return impl_->forward(x, mode); }
const Tensor& Gelu::backward(const Tensor& dy, bool want_input_grad) {
  return impl_->backward(dy, want_input_grad);
}

}  // namespace contra::nn
