#pragma once
// One chain of augmentations, as training's views and evaluation's
// transforms both use it: its plugins, the image format after each, and
// the skip rules of random_apply-like plugins (skip_following(), checked
// once against max_skip()). Applying it draws each augmentation's
// randomness from Rng(seed, epoch, sample, view, position in the chain).

#include "config/pipeline_spec.hpp"

#include <contra/roles/augmentation.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace contra::runtime {

class PluginRegistry;

class AugmentChain {
 public:
  /// Creates the chain's plugins and checks, once, that it takes `input`
  /// images and that every skip leaves the format alone (ConfigError naming
  /// the plugin otherwise).
  AugmentChain(const std::vector<PluginSpec>& chain, const PluginRegistry& registry, const ImageFormat& input);

  /// The images' format at the chain's end.
  const ImageFormat& output_format() const { return formats_.back(); }
  /// The format before each plugin and, last, after the chain: formats()[i]
  /// is plugin i's input, formats()[i + 1] its output.
  const std::vector<ImageFormat>& formats() const { return formats_; }
  /// Whether the chain may run on many threads at once.
  bool parallel() const { return parallel_; }
  bool empty() const { return ops_.empty(); }
  /// Bytes apply()'s two scratch tensors grow to for one image: the largest
  /// format each of them holds (plugin i writes buffer i % 2; with a
  /// random_apply-like skip, which shifts that, twice the largest format).
  std::uint64_t scratch_bytes() const;
  /// The last plugin's label ("the source" for an empty chain), for errors.
  std::string last_label() const;

  /// Which sample and view an image is, for the randomness and for errors.
  struct Draw {
    std::uint64_t seed = 0, epoch = 0, sample = 0;
    std::uint32_t view = 0;
    std::int64_t step = -1;  ///< named in errors when >= 0
  };
  /// Runs `in` through the chain, alternating between the two `scratch`
  /// tensors (reused), and returns the result (`in` itself for an empty
  /// chain). A plugin's failure is a PluginError naming it, the sample and
  /// the view, prefixed with `stage`.
  const Tensor& apply(const Tensor& in, Tensor* scratch, const Draw& draw, const char* stage) const;

  /// Writes `image`, the chain's result, into `dst` as f32 CHW (u8 HWC
  /// scaled to [0, 1]); a result other than output_format() said is a
  /// PluginError naming the chain's last plugin and `view`.
  void collate(const Tensor& image, float* dst, const char* stage, std::int64_t view) const;

 private:
  struct Op {
    std::shared_ptr<Augmentation> plugin;
    std::string label;
  };
  std::vector<Op> ops_;
  std::vector<ImageFormat> formats_;  // formats_[i]: the input of op i; back(): the output
  bool parallel_ = true;
};

/// "u8 28x28x1": how errors write an image format.
std::string format_text(const ImageFormat& f);

}  // namespace contra::runtime
