#pragma once
/// \file
/// Defaults of the `[data]` keys a source may also declare as parameters of
/// its own (the runtime fills them in from `[data]` when the source's table
/// leaves them unset): written once, so that a source's schema and the
/// `[data]` section agree. Header-only constants: no ABI.

#include <cstdint>

namespace contra::data_defaults {

/// 8192 x 8192: a decoded RGB image of 192 MiB per data thread. A decoder's
/// memory grows with the pixels its header declares, not with the file's
/// size, so the limit is checked before decoding.
inline constexpr std::int64_t max_image_pixels = std::int64_t(1) << 26;
/// The largest value `max_image_pixels` may be set to.
inline constexpr std::int64_t max_image_pixels_bound = std::int64_t(1) << 30;
/// With on_error = "skip": the fraction of the samples that may fail to load.
inline constexpr double max_skip_fraction = 0.01;

}  // namespace contra::data_defaults
