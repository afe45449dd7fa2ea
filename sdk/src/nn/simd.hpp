#pragma once
// Eight f32 (or i32) lanes as GCC vector types, for the layers' written-out
// loops over contiguous channels (max pooling, Winograd's transforms). GCC lowers them to AVX registers where the build targets AVX,
// SSE pairs otherwise. Written this way rather than as plain loops: loops
// over several row pointers do not vectorise (the compiler cannot rule out
// their aliasing), and a plain select may become masked stores, slow on AMD.
// Internal to libcontra_sdk.
//
// Code generic over the lane type T takes f32x8 for 8 channels at a time and
// float for the last c % 8 one by one.

#include <cstdint>

namespace contra::nn::detail {

using f32x8 = float __attribute__((vector_size(32)));
using i32x8 = std::int32_t __attribute__((vector_size(32)));

template <class T> constexpr int lanes = 1;
template <> inline constexpr int lanes<f32x8> = 8;

template <class T> T load(const float* p) {
  T v;
  __builtin_memcpy(&v, p, sizeof v);
  return v;
}
template <class T> void store(float* p, T v) { __builtin_memcpy(p, &v, sizeof v); }

/// Lane l of v (v itself for a scalar).
inline float lane(float v, int) { return v; }
inline float lane(f32x8 v, int l) { return v[l]; }
inline std::int32_t lane(std::int32_t v, int) { return v; }
inline std::int32_t lane(i32x8 v, int l) { return v[l]; }

/// The i32 lanes matching float lanes T.
template <class T> struct int_lanes { using type = std::int32_t; };
template <> struct int_lanes<f32x8> { using type = i32x8; };

}  // namespace contra::nn::detail
