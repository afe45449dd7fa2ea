#include "dnnl_util.hpp"

#include <contra/cpu.hpp>
#include <contra/nn/layer.hpp>

#include <cmath>

namespace contra::nn::detail {

dnnl::engine& engine() {
  static dnnl::engine e(dnnl::engine::kind::cpu, 0);
  return e;
}

dnnl::stream& stream() {
  thread_local dnnl::stream s(engine());
  return s;
}

dnnl::memory::dims dims_of(const Shape& s) {
  dnnl::memory::dims d;
  for (int i = 0; i < s.rank(); ++i) d.push_back(s[i]);
  return d;
}

dnnl::memory::desc nhwc_desc(const Shape& nhwc, dt type) {
  if (nhwc.rank() != 4) throw UsageError("expected an NHWC tensor of rank 4, got shape " + nhwc.str());
  return dnnl::memory::desc({nhwc[0], nhwc[3], nhwc[1], nhwc[2]}, type, tag::nhwc);
}

dnnl::memory::desc plain_desc(const dnnl::memory::dims& d, dt type) {
  static const tag tags[] = {tag::undef, tag::a, tag::ab, tag::abc, tag::abcd, tag::abcde, tag::abcdef};
  if (d.empty() || d.size() > 6) throw UsageError("plain_desc: unsupported rank");
  return dnnl::memory::desc(d, type, tags[d.size()]);
}

dnnl::memory wrap(const Tensor& t, const dnnl::memory::desc& md) {
  if (t.nbytes() < md.get_size())
    throw UsageError("tensor of shape " + t.shape().str() + " is smaller than the oneDNN memory it backs");
  return dnnl::memory(md, engine(), const_cast<void*>(t.raw()));
}

dnnl::memory scratch(Tensor& buf, const dnnl::memory::desc& md) {
  std::size_t bytes = md.get_size();
  if (buf.nbytes() < bytes || buf.dtype() != DType::u8)
    buf.ensure({static_cast<std::int64_t>(bytes == 0 ? 1 : bytes)}, DType::u8);
  return dnnl::memory(md, engine(), buf.raw());
}

void reorder(const dnnl::memory& from, const dnnl::memory& to) {
  dnnl::reorder(from, to).execute(stream(), const_cast<dnnl::memory&>(from), const_cast<dnnl::memory&>(to));
  stream().wait();
}

dnnl::memory as_desc(const dnnl::memory& src, const dnnl::memory::desc& want, Tensor& buf) {
  if (src.get_desc() == want) return src;
  dnnl::memory dst = scratch(buf, want);
  reorder(src, dst);
  return dst;
}

void require_precision(const std::string& who, Precision p) {
  if (p != Precision::bf16) return;
  const std::string why = bf16_unavailable_reason();
  if (!why.empty()) throw DeviceError(who + ": " + why + "; use f32 precision");
}

[[noreturn]] void rethrow(const std::string& where, const dnnl::error& e) {
  throw UsageError(where + ": oneDNN error: " + e.what());
}

}  // namespace contra::nn::detail

namespace contra::nn {

Layer::~Layer() = default;

double kaiming_uniform_bound(std::int64_t fan_in) { return std::sqrt(6.0 / static_cast<double>(fan_in)); }

void fill_uniform(Tensor& t, double bound, Rng& rng) {
  float* p = t.data<float>();
  for (std::int64_t i = 0; i < t.numel(); ++i) p[i] = static_cast<float>(rng.uniform(-bound, bound));
}

void fill_normal(Tensor& t, double std, Rng& rng) {
  float* p = t.data<float>();
  for (std::int64_t i = 0; i < t.numel(); ++i) p[i] = static_cast<float>(std * rng.normal());
}

}  // namespace contra::nn
