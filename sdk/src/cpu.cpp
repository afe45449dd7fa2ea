#include <contra/build_isa.hpp>
#include <contra/cpu.hpp>

#include <oneapi/dnnl/dnnl.hpp>

#include <cstdlib>

namespace contra {

namespace detail {
// What this library was compiled for, read by build_isa_check.cpp (compiled
// for the baseline) before anything else of the library runs.
extern const char sdk_build_isa[];
const char sdk_build_isa[] = CONTRA_BUILD_ISA;
}  // namespace detail

namespace {

std::string isa_name(dnnl::cpu_isa isa) {
  switch (isa) {
    case dnnl::cpu_isa::sse41: return "sse41";
    case dnnl::cpu_isa::avx: return "avx";
    case dnnl::cpu_isa::avx2: return "avx2";
    case dnnl::cpu_isa::avx2_vnni: return "avx2_vnni";
    case dnnl::cpu_isa::avx512_mic: return "avx512_mic";
    case dnnl::cpu_isa::avx512_mic_4ops: return "avx512_mic_4ops";
    case dnnl::cpu_isa::avx512_core: return "avx512_core";
    case dnnl::cpu_isa::avx512_core_vnni: return "avx512_core_vnni";
    case dnnl::cpu_isa::avx512_core_bf16: return "avx512_core_bf16";
    case dnnl::cpu_isa::avx512_core_amx: return "avx512_core_amx";
    case dnnl::cpu_isa::all: return "all";
  }
  return "isa " + std::to_string(static_cast<int>(isa));
}

// The features a user compares machines by (the full list is in
// /proc/cpuinfo), checked as build_isa_check.cpp checks a build's list.
std::string cpu_flags() {
  std::string f;
  for (const char* name : {"avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512vnni", "avx512bf16"})
    if (missing_cpu_features(name).empty()) f += (f.empty() ? "" : " ") + std::string(name);
  return f.empty() ? "none of avx2/avx512" : f;
}

// Whether oneDNN creates the bf16 primitives contra's layers use: a
// convolution (forward and both backward passes) and a matrix product.
bool bf16_primitives_available() {
  using namespace dnnl;
  using dt = memory::data_type;
  using tag = memory::format_tag;
  try {
    engine eng(engine::kind::cpu, 0);
    const memory::desc src({2, 16, 8, 8}, dt::bf16, tag::nhwc), dst({2, 16, 8, 8}, dt::f32, tag::nhwc),
        dst16({2, 16, 8, 8}, dt::bf16, tag::nhwc), wei({16, 16, 3, 3}, dt::bf16, tag::any),
        wei32({16, 16, 3, 3}, dt::f32, tag::any);
    const memory::dims strides{1, 1}, pad{1, 1};
    convolution_forward::primitive_desc fwd(
        convolution_forward::desc(prop_kind::forward_training, algorithm::convolution_direct, src, wei, dst,
                                  strides, pad, pad),
        eng);
    convolution_backward_data::primitive_desc bwd_data(
        convolution_backward_data::desc(algorithm::convolution_direct, dst, wei, dst16, strides, pad,
                                        pad),
        eng, fwd);
    convolution_backward_weights::primitive_desc bwd_weights(
        convolution_backward_weights::desc(algorithm::convolution_direct, src, wei32, dst16, strides, pad, pad),
        eng, fwd);
    const memory::desc a({8, 16}, dt::bf16, tag::ab), b({16, 8}, dt::bf16, tag::ab), c({8, 8}, dt::f32, tag::ab);
    matmul::primitive_desc mm(matmul::desc(a, b, c), eng);
    return true;
  } catch (const dnnl::error&) {
    return false;
  }
}

CpuCapabilities probe() {
  CpuCapabilities c;
  const dnnl::cpu_isa isa = dnnl::get_effective_cpu_isa();
  c.isa = isa_name(isa);
  c.cpu_flags = cpu_flags();
  for (const char* var : {"ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA"})
    if (const char* v = std::getenv(var); v && *v) c.isa_cap = v;
  c.bf16 = bf16_primitives_available();
  c.bf16_native = c.bf16 && (isa == dnnl::cpu_isa::avx512_core_bf16 || isa == dnnl::cpu_isa::avx512_core_amx);
  return c;
}

}  // namespace

std::string CpuCapabilities::summary() const {
  std::string s = "oneDNN ISA " + isa;
  if (!isa_cap.empty()) s += " (capped by DNNL_MAX_CPU_ISA=" + isa_cap + ")";
  s += "; CPU " + cpu_flags + "; bf16 ";
  s += bf16 ? (bf16_native ? "yes (native)" : "yes (emulated)") : "no";
  return s;
}

const CpuCapabilities& cpu_capabilities() {
  static const CpuCapabilities caps = probe();
  return caps;
}

std::string bf16_unavailable_reason() {
  const CpuCapabilities& c = cpu_capabilities();
  if (c.bf16) return "";
  std::string why = "bf16 needs oneDNN's AVX-512 kernels (avx512_core or later); this CPU's oneDNN ISA is " + c.isa;
  if (!c.isa_cap.empty()) why += ", capped by DNNL_MAX_CPU_ISA=" + c.isa_cap;
  return why + " (CPU " + c.cpu_flags + ")";
}

}  // namespace contra
