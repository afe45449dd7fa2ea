// contra::cpu_capabilities(): what oneDNN runs here, and the layers' refusal
// of bf16 where it cannot. CI runs the suite at the CPU's own ISA and capped
// at AVX2 (DNNL_MAX_CPU_ISA), so both branches run on an AVX-512 machine.
#include <contra/build_isa.hpp>
#include <contra/cpu.hpp>
#include <contra/errors.hpp>
#include <contra/nn/conv2d.hpp>
#include <contra/nn/linear.hpp>
#include <contra/plugin.hpp>

#include <catch2/catch.hpp>

#include <cstdlib>
#include <string>

using namespace contra;

TEST_CASE("cpu: capabilities name oneDNN's ISA, the CPU's features and bf16", "[sdk][cpu]") {
  const CpuCapabilities& c = cpu_capabilities();
  INFO(c.summary());
  CHECK(&c == &cpu_capabilities());
  CHECK_FALSE(c.isa.empty());
  CHECK_FALSE(c.cpu_flags.empty());
  CHECK(c.summary().rfind("oneDNN ISA " + c.isa, 0) == 0);
  // oneDNN 2.6 has bf16 kernels from avx512_core on; native ones from avx512_core_bf16.
  if (c.bf16) CHECK(c.isa.rfind("avx512_core", 0) == 0);
  if (c.bf16_native) CHECK(c.bf16);
  if (c.isa.rfind("avx512", 0) != 0) CHECK_FALSE(c.bf16);
  const char* cap = std::getenv("DNNL_MAX_CPU_ISA");
  if (cap && *cap) CHECK(c.summary().find("capped by DNNL_MAX_CPU_ISA=" + std::string(cap)) != std::string::npos);
  if (c.bf16) {
    CHECK(bf16_unavailable_reason().empty());
  } else {
    CHECK(bf16_unavailable_reason() == "bf16 needs oneDNN's AVX-512 kernels (avx512_core or later); this CPU's "
                                       "oneDNN ISA is " + c.isa +
                                           (c.isa_cap.empty() ? "" : ", capped by DNNL_MAX_CPU_ISA=" + c.isa_cap) +
                                           " (CPU " + c.cpu_flags + ")");
  }
}

TEST_CASE("cpu: bf16 layers are refused at construction where the CPU cannot run them", "[sdk][cpu][conv2d][linear]") {
  Rng init(1, 0, 0, 0, 0);
  if (cpu_capabilities().bf16) {
    CHECK_NOTHROW(nn::Conv2d("c", 3, 8, 3, 1, 1, false, init, Precision::bf16));
    CHECK_NOTHROW(nn::Linear("fc", 8, 4, true, init, Precision::bf16));
    return;
  }
  const std::string why = bf16_unavailable_reason();
  CHECK_THROWS_AS(nn::Conv2d("stem.conv", 3, 8, 3, 1, 1, false, init, Precision::bf16), DeviceError);
  CHECK_THROWS_WITH(nn::Conv2d("stem.conv", 3, 8, 3, 1, 1, false, init, Precision::bf16),
                    "conv2d 'stem.conv': " + why + "; use f32 precision");
  CHECK_THROWS_WITH(nn::Linear("fc", 8, 4, true, init, Precision::bf16), "linear 'fc': " + why + "; use f32 precision");
  CHECK_NOTHROW(nn::Linear("fc", 8, 4, true, init, Precision::f32));
}

TEST_CASE("cpu: missing_cpu_features lists what a build's ISA needs and this CPU lacks", "[sdk][cpu]") {
  CHECK(missing_cpu_features("") == "");
  CHECK(missing_cpu_features("x86-64") == "");
  CHECK(missing_cpu_features("x86-64,sse3,ssse3,sse4.1,sse4.2") == "");  // every x86-64 CPU contra meets has these
  CHECK(missing_cpu_features("x86-64,made_up,sse3,also_made_up") == "made_up,also_made_up");
  // This very build's list (the test is compiled with CONTRA_ARCH like the rest).
  CHECK(missing_cpu_features(CONTRA_BUILD_ISA) == "");
  const bool avx512 = __builtin_cpu_supports("avx512f");
  CHECK(missing_cpu_features("x86-64,avx512f") == (avx512 ? "" : "avx512f"));
  // Built-in plugin libraries record their list in the manifest's fingerprint.
  CHECK(std::string(CONTRA_BUILD_FINGERPRINT).find(";isa=" CONTRA_BUILD_ISA) != std::string::npos);
}
