#pragma once
/// \file
/// What this CPU can run: its instruction sets, the one oneDNN's kernels use,
/// and whether bf16 arithmetic is available. Read once per process.
///
/// oneDNN picks its kernels at run time from the CPU's instruction sets,
/// capped by the environment variable DNNL_MAX_CPU_ISA (e.g. AVX2 on an
/// AVX-512 machine runs the AVX2 kernels, as tests and CI do). oneDNN 2.6
/// runs bf16 convolutions and matrix products only from AVX-512
/// (avx512_core, emulated) and natively from avx512_core_bf16; on an AVX2 CPU
/// a bf16 primitive cannot be created at all.

#include <string>

namespace contra {

struct CpuCapabilities {
  /// oneDNN's effective instruction set for its kernels, after any cap:
  /// "sse41", "avx", "avx2", "avx2_vnni", "avx512_core", "avx512_core_vnni",
  /// "avx512_core_bf16", "avx512_core_amx".
  std::string isa;
  /// The CPU's own features that matter here, from cpuid, whatever the cap:
  /// of "avx2 fma avx512f avx512bw avx512vl avx512vnni avx512bf16".
  std::string cpu_flags;
  /// DNNL_MAX_CPU_ISA (or ONEDNN_MAX_CPU_ISA) when set, else empty.
  std::string isa_cap;
  /// oneDNN creates bf16 convolution and matrix-product primitives here
  /// (checked by creating them, not inferred).
  bool bf16 = false;
  /// bf16 dot-product instructions in hardware (oneDNN's ISA is at least
  /// avx512_core_bf16); otherwise bf16 is emulated, with less speed-up.
  bool bf16_native = false;

  /// One line for logs and benchmark headers, e.g.
  /// "oneDNN ISA avx2; CPU avx2 fma; bf16 no".
  std::string summary() const;
};

/// This process's CPU (computed on the first call; thread-safe).
const CpuCapabilities& cpu_capabilities();

/// Empty when bf16 can run here; otherwise why not, naming what is missing:
/// "bf16 needs oneDNN's AVX-512 kernels (avx512_core or later); this CPU's
/// oneDNN ISA is avx2 (CPU avx2 fma)".
std::string bf16_unavailable_reason();

/// The extensions of a build's instruction-set list (CONTRA_BUILD_ISA, e.g.
/// "x86-64,avx2,fma,avx512f") that this CPU lacks, comma-separated; empty when
/// it has them all. A name it does not know counts as missing.
std::string missing_cpu_features(const std::string& build_isa);

}  // namespace contra
