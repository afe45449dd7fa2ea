// Compiled for the x86-64 baseline whatever CONTRA_ARCH is (see
// sdk/CMakeLists.txt): it runs before the rest of libcontra_sdk, which may be
// compiled for more (CONTRA_ARCH=native), and must not itself use what it
// checks for.
#include <contra/cpu.hpp>

#include <cpuid.h>

#include <cstdio>
#include <cstdlib>

namespace contra {

namespace detail {
extern const char sdk_build_isa[];  // cpu.cpp: CONTRA_BUILD_ISA of the library
}

namespace {

#if defined(__clang__) && __clang_major__ < 16
// Clang before 16 does not know these names in __builtin_cpu_supports: their
// CPUID bits, each with the register state its instructions need.
bool cpuid_bit(unsigned leaf, int reg, int bit) {
  unsigned r[4] = {};
  if (!__get_cpuid_count(leaf, 0, &r[0], &r[1], &r[2], &r[3])) return false;
  return (r[reg] >> bit) & 1u;
}
#define CONTRA_CPU_F16C (__builtin_cpu_supports("avx") && cpuid_bit(1, 2, 29))
#define CONTRA_CPU_AVX512FP16 (__builtin_cpu_supports("avx512bw") && cpuid_bit(7, 3, 23))
#define CONTRA_CPU_VAES (__builtin_cpu_supports("avx") && cpuid_bit(7, 2, 9))
#else
#define CONTRA_CPU_F16C __builtin_cpu_supports("f16c")
#define CONTRA_CPU_AVX512FP16 __builtin_cpu_supports("avx512fp16")
#define CONTRA_CPU_VAES __builtin_cpu_supports("vaes")
#endif

// __builtin_cpu_supports takes only literals: one row per extension that
// contra/build_isa.hpp can list.
bool cpu_has(const std::string& f) {
#define CONTRA_CPU_FEATURE(name) \
  if (f == name) return __builtin_cpu_supports(name);
  __builtin_cpu_init();
  if (f == "x86-64") return true;
  if (f == "f16c") return CONTRA_CPU_F16C;
  if (f == "avx512fp16") return CONTRA_CPU_AVX512FP16;
  if (f == "vaes") return CONTRA_CPU_VAES;
  CONTRA_CPU_FEATURE("sse3") CONTRA_CPU_FEATURE("ssse3") CONTRA_CPU_FEATURE("sse4.1") CONTRA_CPU_FEATURE("sse4.2")
  CONTRA_CPU_FEATURE("popcnt") CONTRA_CPU_FEATURE("avx") CONTRA_CPU_FEATURE("avx2") CONTRA_CPU_FEATURE("fma")
  CONTRA_CPU_FEATURE("bmi") CONTRA_CPU_FEATURE("bmi2") CONTRA_CPU_FEATURE("avx512f")
  CONTRA_CPU_FEATURE("avx512cd") CONTRA_CPU_FEATURE("avx512bw") CONTRA_CPU_FEATURE("avx512dq")
  CONTRA_CPU_FEATURE("avx512vl") CONTRA_CPU_FEATURE("avx512ifma") CONTRA_CPU_FEATURE("avx512vbmi")
  CONTRA_CPU_FEATURE("avx512vbmi2") CONTRA_CPU_FEATURE("avx512vnni") CONTRA_CPU_FEATURE("avx512bitalg")
  CONTRA_CPU_FEATURE("avx512vpopcntdq") CONTRA_CPU_FEATURE("avx512bf16")
  CONTRA_CPU_FEATURE("gfni") CONTRA_CPU_FEATURE("vpclmulqdq")
#undef CONTRA_CPU_FEATURE
  return false;
}

// A build for extensions this CPU lacks would die of an illegal instruction
// somewhere later; say why instead, before any of it runs.
__attribute__((constructor(101))) void refuse_build_for_another_cpu() {
  const std::string missing = missing_cpu_features(detail::sdk_build_isa);
  if (missing.empty()) return;
  std::fprintf(stderr,
               "contra: this build was compiled for CPU extensions this CPU lacks (%s): it was configured with "
               "-DCONTRA_ARCH=%s on another machine. Rebuild it here (tools/quickstart.sh, or a new build "
               "folder), or configure with -DCONTRA_ARCH= (the default) for binaries that run on any x86-64 CPU.\n",
               missing.c_str(), CONTRA_ARCH_NAME);
  std::_Exit(1);
}

}  // namespace

std::string missing_cpu_features(const std::string& build_isa) {
  std::string missing;
  std::size_t start = 0;
  while (start <= build_isa.size()) {
    std::size_t end = build_isa.find(',', start);
    if (end == std::string::npos) end = build_isa.size();
    const std::string f = build_isa.substr(start, end - start);
    if (!f.empty() && !cpu_has(f)) missing += (missing.empty() ? "" : ",") + f;
    start = end + 1;
  }
  return missing;
}

}  // namespace contra
