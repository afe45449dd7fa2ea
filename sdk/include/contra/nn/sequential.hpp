#pragma once
/// \file
/// Sequential: layers applied one after the other, backward in reverse.

#include <contra/nn/layer.hpp>

#include <memory>
#include <utility>
#include <vector>

namespace contra::nn {

class Sequential final : public Layer {
 public:
  /// Appends a layer and returns it.
  template <class L, class... Args> L& emplace(Args&&... args) {
    auto layer = std::make_unique<L>(std::forward<Args>(args)...);
    L& ref = *layer;
    layers_.push_back(std::move(layer));
    return ref;
  }
  Sequential& add(std::unique_ptr<Layer> layer);

  const Tensor& forward(const Tensor& x, Mode mode) override;
  const Tensor& backward(const Tensor& dy, bool want_input_grad = true) override;
  void parameters(std::vector<Parameter*>& out) override;
  void buffers(std::vector<std::pair<std::string, Tensor*>>& out) override;

  std::size_t size() const noexcept { return layers_.size(); }
  Layer& operator[](std::size_t i) { return *layers_[i]; }

 private:
  std::vector<std::unique_ptr<Layer>> layers_;
  Tensor none_;
};

/// [N, C, H, W] → [N, H, W, C] into `out` (reused). For C = 1 the layouts
/// coincide and `out` becomes a view of `x`.
void nchw_to_nhwc(const Tensor& x, Tensor& out);
/// [N, H, W, C] → [N, C, H, W] into `out` (reused).
void nhwc_to_nchw(const Tensor& x, Tensor& out);

}  // namespace contra::nn
