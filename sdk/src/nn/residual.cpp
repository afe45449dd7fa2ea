#include <contra/nn/residual.hpp>

#include "dnnl_util.hpp"

#include <unordered_map>

namespace contra::nn {

using namespace detail;

namespace {

constexpr std::int64_t oneDNN_threshold = 1 << 16;

void check_operand(const Tensor& t, const char* fn, const char* what) {
  if (!t.defined() || t.dtype() != DType::f32 || t.device() != Device::cpu)
    throw UsageError(std::string(fn) + ": " + what + " must be a defined f32 cpu tensor, got " +
                     dtype_name(t.dtype()) + " " + device_name(t.device()) + " " + t.shape().str());
}

bool overlap(const float* p, const float* q, std::int64_t n) { return p < q + n && q < p + n; }

// d = a + b over n floats; d may equal a or b, but overlap nothing otherwise.
void add_n(const float* a, const float* b, float* d, std::int64_t n) {
  if (n < oneDNN_threshold) {
    // d is a, b or disjoint from both: no dependence between iterations.
#pragma GCC ivdep
    for (std::int64_t i = 0; i < n; ++i) d[i] = a[i] + b[i];
    return;
  }
  // oneDNN's binary primitive works in place on src0 only: put the operand
  // that d aliases first (addition commutes).
  if (d == b) std::swap(a, b);
  struct Entry {
    dnnl::memory a, b, d;
    dnnl::primitive prim;
    Tensor scratch_buf;
    std::unordered_map<int, dnnl::memory> args;
  };
  thread_local std::unordered_map<std::int64_t, Entry> cache;
  auto it = cache.find(n);
  try {
    if (it == cache.end()) {
      Entry e;
      dnnl::memory::desc md({n}, dt::f32, tag::a);
      dnnl::primitive_attr attr;
      attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
      dnnl::binary::primitive_desc pd(dnnl::binary::desc(dnnl::algorithm::binary_add, md, md, md), attr, engine());
      e.a = dnnl::memory(md, engine(), DNNL_MEMORY_NONE);
      e.b = dnnl::memory(md, engine(), DNNL_MEMORY_NONE);
      e.d = dnnl::memory(md, engine(), DNNL_MEMORY_NONE);
      e.prim = dnnl::binary(pd);
      e.args = {{DNNL_ARG_SRC_0, e.a},
                {DNNL_ARG_SRC_1, e.b},
                {DNNL_ARG_DST, e.d},
                {DNNL_ARG_SCRATCHPAD, scratch(e.scratch_buf, pd.scratchpad_desc())}};
      it = cache.emplace(n, std::move(e)).first;
    }
    Entry& e = it->second;
    e.a.set_data_handle(const_cast<float*>(a));
    e.b.set_data_handle(const_cast<float*>(b));
    e.d.set_data_handle(d);
    e.prim.execute(stream(), e.args);
    stream().wait();
  } catch (const dnnl::error& err) {
    rethrow("add", err);
  }
}

}  // namespace

void add(const Tensor& a, const Tensor& b, Tensor& out) {
  check_operand(a, "add", "a");
  check_operand(b, "add", "b");
  if (a.shape() != b.shape())
    throw UsageError("add: shapes differ: a is " + a.shape().str() + ", b is " + b.shape().str());
  // Read the operands' addresses before ensure(): out may be one of them.
  const float* pa = a.data<float>();
  const float* pb = b.data<float>();
  const std::int64_t n = a.numel();
  out.ensure(a.shape(), DType::f32);
  float* pd = out.data<float>();
  if ((pd != pa && overlap(pd, pa, n)) || (pd != pb && overlap(pd, pb, n)))
    throw UsageError("add: out overlaps a or b without being the same tensor");
  add_n(pa, pb, pd, n);
}

void accumulate(Tensor& into, const Tensor& from) {
  check_operand(into, "accumulate", "into");
  check_operand(from, "accumulate", "from");
  if (into.shape() != from.shape())
    throw UsageError("accumulate: shapes differ: into is " + into.shape().str() + ", from is " +
                     from.shape().str());
  float* pi = into.data<float>();
  const float* pf = from.data<float>();
  if (pi != pf && overlap(pi, pf, into.numel()))
    throw UsageError("accumulate: into and from overlap without being the same tensor");
  add_n(pi, pf, pi, into.numel());
}

}  // namespace contra::nn
