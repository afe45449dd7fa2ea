#pragma once
/// \file
/// CONTRA_BUILD_ISA: the x86-64 extensions the compiler was allowed to use for
/// the translation unit that expands it (its -march), as a comma-separated
/// list after the architecture, e.g. "x86-64" (the baseline) or
/// "x86-64,sse3,ssse3,sse4.1,sse4.2,popcnt,avx,avx2,fma,f16c,bmi,bmi2".
/// Code built with an extension the CPU lacks dies of an illegal instruction;
/// a plugin library records this list in its manifest's fingerprint
/// (";isa=...") and the runtime refuses the library on such a CPU
/// (contra::missing_cpu_features()) before calling into it.

#if defined(__SSE3__)
#define CONTRA_ISA_SSE3 ",sse3"
#else
#define CONTRA_ISA_SSE3 ""
#endif
#if defined(__SSSE3__)
#define CONTRA_ISA_SSSE3 ",ssse3"
#else
#define CONTRA_ISA_SSSE3 ""
#endif
#if defined(__SSE4_1__)
#define CONTRA_ISA_SSE4_1 ",sse4.1"
#else
#define CONTRA_ISA_SSE4_1 ""
#endif
#if defined(__SSE4_2__)
#define CONTRA_ISA_SSE4_2 ",sse4.2"
#else
#define CONTRA_ISA_SSE4_2 ""
#endif
#if defined(__POPCNT__)
#define CONTRA_ISA_POPCNT ",popcnt"
#else
#define CONTRA_ISA_POPCNT ""
#endif
#if defined(__AVX__)
#define CONTRA_ISA_AVX ",avx"
#else
#define CONTRA_ISA_AVX ""
#endif
#if defined(__AVX2__)
#define CONTRA_ISA_AVX2 ",avx2"
#else
#define CONTRA_ISA_AVX2 ""
#endif
#if defined(__FMA__)
#define CONTRA_ISA_FMA ",fma"
#else
#define CONTRA_ISA_FMA ""
#endif
#if defined(__F16C__)
#define CONTRA_ISA_F16C ",f16c"
#else
#define CONTRA_ISA_F16C ""
#endif
#if defined(__BMI__)
#define CONTRA_ISA_BMI ",bmi"
#else
#define CONTRA_ISA_BMI ""
#endif
#if defined(__BMI2__)
#define CONTRA_ISA_BMI2 ",bmi2"
#else
#define CONTRA_ISA_BMI2 ""
#endif
#if defined(__AVX512F__)
#define CONTRA_ISA_AVX512F ",avx512f"
#else
#define CONTRA_ISA_AVX512F ""
#endif
#if defined(__AVX512CD__)
#define CONTRA_ISA_AVX512CD ",avx512cd"
#else
#define CONTRA_ISA_AVX512CD ""
#endif
#if defined(__AVX512BW__)
#define CONTRA_ISA_AVX512BW ",avx512bw"
#else
#define CONTRA_ISA_AVX512BW ""
#endif
#if defined(__AVX512DQ__)
#define CONTRA_ISA_AVX512DQ ",avx512dq"
#else
#define CONTRA_ISA_AVX512DQ ""
#endif
#if defined(__AVX512VL__)
#define CONTRA_ISA_AVX512VL ",avx512vl"
#else
#define CONTRA_ISA_AVX512VL ""
#endif
#if defined(__AVX512IFMA__)
#define CONTRA_ISA_AVX512IFMA ",avx512ifma"
#else
#define CONTRA_ISA_AVX512IFMA ""
#endif
#if defined(__AVX512VBMI__)
#define CONTRA_ISA_AVX512VBMI ",avx512vbmi"
#else
#define CONTRA_ISA_AVX512VBMI ""
#endif
#if defined(__AVX512VBMI2__)
#define CONTRA_ISA_AVX512VBMI2 ",avx512vbmi2"
#else
#define CONTRA_ISA_AVX512VBMI2 ""
#endif
#if defined(__AVX512VNNI__)
#define CONTRA_ISA_AVX512VNNI ",avx512vnni"
#else
#define CONTRA_ISA_AVX512VNNI ""
#endif
#if defined(__AVX512BITALG__)
#define CONTRA_ISA_AVX512BITALG ",avx512bitalg"
#else
#define CONTRA_ISA_AVX512BITALG ""
#endif
#if defined(__AVX512VPOPCNTDQ__)
#define CONTRA_ISA_AVX512VPOPCNTDQ ",avx512vpopcntdq"
#else
#define CONTRA_ISA_AVX512VPOPCNTDQ ""
#endif
#if defined(__AVX512BF16__)
#define CONTRA_ISA_AVX512BF16 ",avx512bf16"
#else
#define CONTRA_ISA_AVX512BF16 ""
#endif
#if defined(__AVX512FP16__)
#define CONTRA_ISA_AVX512FP16 ",avx512fp16"
#else
#define CONTRA_ISA_AVX512FP16 ""
#endif
#if defined(__GFNI__)
#define CONTRA_ISA_GFNI ",gfni"
#else
#define CONTRA_ISA_GFNI ""
#endif
#if defined(__VAES__)
#define CONTRA_ISA_VAES ",vaes"
#else
#define CONTRA_ISA_VAES ""
#endif
#if defined(__VPCLMULQDQ__)
#define CONTRA_ISA_VPCLMULQDQ ",vpclmulqdq"
#else
#define CONTRA_ISA_VPCLMULQDQ ""
#endif

#if defined(__x86_64__)
#define CONTRA_ISA_ARCH "x86-64"
#else
#define CONTRA_ISA_ARCH "other"
#endif

#define CONTRA_BUILD_ISA CONTRA_ISA_ARCH \
  CONTRA_ISA_SSE3 CONTRA_ISA_SSSE3 CONTRA_ISA_SSE4_1 CONTRA_ISA_SSE4_2 \
  CONTRA_ISA_POPCNT CONTRA_ISA_AVX CONTRA_ISA_AVX2 CONTRA_ISA_FMA \
  CONTRA_ISA_F16C CONTRA_ISA_BMI CONTRA_ISA_BMI2 CONTRA_ISA_AVX512F \
  CONTRA_ISA_AVX512CD CONTRA_ISA_AVX512BW CONTRA_ISA_AVX512DQ CONTRA_ISA_AVX512VL \
  CONTRA_ISA_AVX512IFMA CONTRA_ISA_AVX512VBMI CONTRA_ISA_AVX512VBMI2 CONTRA_ISA_AVX512VNNI \
  CONTRA_ISA_AVX512BITALG CONTRA_ISA_AVX512VPOPCNTDQ CONTRA_ISA_AVX512BF16 CONTRA_ISA_AVX512FP16 \
  CONTRA_ISA_GFNI CONTRA_ISA_VAES CONTRA_ISA_VPCLMULQDQ
