#include <contra/nn/activation.hpp>

#include "dnnl_util.hpp"

#include <map>
#include <unordered_map>

namespace contra::nn {

using namespace detail;

struct ReLU::Impl {
  // Primitives for one element count; memories are placeholders whose data
  // handles are set on each call.
  struct Entry {
    dnnl::memory src, dst, diff_dst, diff_src;
    dnnl::primitive fwd, bwd;
    Tensor fwd_scratch, bwd_scratch;
    std::unordered_map<int, dnnl::memory> fwd_args, bwd_args;
  };
  std::map<std::int64_t, Entry> cache;
  Tensor y, dx;
  Entry* last = nullptr;  // the entry of the last forward, when it ran in train mode
  Shape shape;            // its shape

  Entry& entry(std::int64_t n) {
    auto it = cache.find(n);
    if (it != cache.end()) return it->second;
    Entry e;
    // Element-wise: every shape of n elements is the same 1-D problem.
    dnnl::memory::desc md({n}, dt::f32, tag::a);
    dnnl::primitive_attr attr;
    attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
    const auto alg = dnnl::algorithm::eltwise_relu_use_dst_for_bwd;
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
    e.bwd_args = {{DNNL_ARG_DST, e.dst},
                  {DNNL_ARG_DIFF_DST, e.diff_dst},
                  {DNNL_ARG_DIFF_SRC, e.diff_src},
                  {DNNL_ARG_SCRATCHPAD, scratch(e.bwd_scratch, bpd.scratchpad_desc())}};
    return cache.emplace(n, std::move(e)).first->second;
  }
};

ReLU::ReLU() : impl_(std::make_unique<Impl>()) {}
ReLU::~ReLU() = default;

const Tensor& ReLU::forward(const Tensor& x, Mode mode) {
  Impl& m = *impl_;
  if (x.dtype() != DType::f32 || x.device() != Device::cpu || !x.defined())
    throw UsageError(std::string("ReLU: expected an f32 cpu tensor, got ") + dtype_name(x.dtype()) + " " +
                     device_name(x.device()) + " " + x.shape().str());
  m.last = nullptr;
  m.shape = x.shape();
  m.y.ensure(x.shape(), DType::f32);
  if (x.numel() == 0) return m.y;
  try {
    Impl::Entry& e = m.entry(x.numel());
    e.src.set_data_handle(const_cast<void*>(x.raw()));
    e.dst.set_data_handle(m.y.raw());
    e.fwd.execute(stream(), e.fwd_args);
    stream().wait();
    if (mode == Mode::train) m.last = &e;
  } catch (const dnnl::error& err) {
    rethrow("ReLU forward", err);
  }
  return m.y;
}

const Tensor& ReLU::backward(const Tensor& dy, bool want_input_grad) {
  Impl& m = *impl_;
  if (!m.last) throw UsageError("ReLU: backward() without a train-mode forward()");
  dy.expect(m.shape, DType::f32, "ReLU backward dy");
  if (!want_input_grad) {
    static const Tensor none;
    return none;
  }
  m.dx.ensure(m.shape, DType::f32);
  try {
    Impl::Entry& e = *m.last;
    e.dst.set_data_handle(m.y.raw());
    e.diff_dst.set_data_handle(const_cast<void*>(dy.raw()));
    e.diff_src.set_data_handle(m.dx.raw());
    e.bwd.execute(stream(), e.bwd_args);
    stream().wait();
  } catch (const dnnl::error& err) {
    rethrow("ReLU backward", err);
  }
  return m.dx;
}

}  // namespace contra::nn
