#pragma once
// For tests tagged [gpu]: CONTRA_REQUIRE_GPU() at the top of a test case
// skips it (a "SKIPPED:" warning, which ctest reports as skipped) when no GPU
// is usable, giving the reason, and otherwise initialises libcontra_cuda.
//
//     TEST_CASE("info_nce cuda: matches the CPU loss", "[loss][gpu]") {
//       CONTRA_REQUIRE_GPU();
//       ...
//     }

#include <contra/cuda.hpp>

#include <catch2/catch.hpp>

#define CONTRA_REQUIRE_GPU()                                                      \
  do {                                                                           \
    if (!::contra::cuda::available()) {                                          \
      WARN("SKIPPED: no usable GPU: " << ::contra::cuda::unavailable_reason());   \
      return;                                                                    \
    }                                                                            \
    ::contra::cuda::require("test");                                             \
  } while (0)
