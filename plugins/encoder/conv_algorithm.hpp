#pragma once
// The `conv_algorithm` parameter of the convolutional encoders (seed_resnet,
// resnet18), declared once: how their CPU builds run 3×3 convolutions. The
// GPU builds take the same parameter (they share the schema) and let cuDNN
// choose.

#include <contra/nn/conv2d.hpp>
#include <contra/schema.hpp>

#include <string>

namespace contra::plugins {

inline contra::Schema& add_conv_algorithm(contra::Schema& s) {
  return s.add<std::string>("conv_algorithm", "auto",
                            "3x3 convolutions on the CPU: auto (Winograd F(2x2, 3x3) where it pays), direct "
                            "(oneDNN's kernels), winograd (every 3x3 stride-1 layer); the GPU lets cuDNN choose")
      .choices({"auto", "direct", "winograd"});
}

inline contra::nn::ConvAlgorithm conv_algorithm_of(const contra::Params& p) {
  const std::string a = p.get<std::string>("conv_algorithm");
  if (a == "direct") return contra::nn::ConvAlgorithm::direct;
  if (a == "winograd") return contra::nn::ConvAlgorithm::winograd;
  return contra::nn::ConvAlgorithm::automatic;
}

/// `winograd` applies to the layers it can compute; the others stay direct.
inline void apply_conv_algorithm(contra::nn::Conv2d& conv, contra::nn::ConvAlgorithm a) {
  if (a != contra::nn::ConvAlgorithm::winograd || conv.winograd_applies()) conv.set_algorithm(a);
}

}  // namespace contra::plugins
