#include <contra/nn/sequential.hpp>

namespace contra::nn {

Sequential& Sequential::add(std::unique_ptr<Layer> layer) {
  layers_.push_back(std::move(layer));
  return *this;
}

const Tensor& Sequential::forward(const Tensor& x, Mode mode) {
  const Tensor* cur = &x;
  for (auto& l : layers_) cur = &l->forward(*cur, mode);
  return *cur;
}

const Tensor& Sequential::backward(const Tensor& dy, bool want_input_grad) {
  const Tensor* cur = &dy;
  for (std::size_t i = layers_.size(); i-- > 0;) cur = &layers_[i]->backward(*cur, i > 0 || want_input_grad);
  return want_input_grad ? *cur : none_;
}

void Sequential::parameters(std::vector<Parameter*>& out) {
  for (auto& l : layers_) l->parameters(out);
}

void Sequential::buffers(std::vector<std::pair<std::string, Tensor*>>& out) {
  for (auto& l : layers_) l->buffers(out);
}

void nchw_to_nhwc(const Tensor& x, Tensor& out) {
  if (x.rank() != 4) throw UsageError("nchw_to_nhwc: expected [N, C, H, W], got " + x.shape().str());
  const std::int64_t n = x.dim(0), c = x.dim(1), h = x.dim(2), w = x.dim(3);
  if (c == 1) {
    out = x.reshape({n, h, w, 1});
    return;
  }
  out.ensure({n, h, w, c}, DType::f32);
  const float* src = x.data<float>();
  float* dst = out.data<float>();
  const std::int64_t hw = h * w;
  for (std::int64_t b = 0; b < n; ++b)
    for (std::int64_t p = 0; p < hw; ++p)
      for (std::int64_t ch = 0; ch < c; ++ch) dst[(b * hw + p) * c + ch] = src[(b * c + ch) * hw + p];
}

void nhwc_to_nchw(const Tensor& x, Tensor& out) {
  if (x.rank() != 4) throw UsageError("nhwc_to_nchw: expected [N, H, W, C], got " + x.shape().str());
  const std::int64_t n = x.dim(0), h = x.dim(1), w = x.dim(2), c = x.dim(3);
  out.ensure({n, c, h, w}, DType::f32);
  const float* src = x.data<float>();
  float* dst = out.data<float>();
  const std::int64_t hw = h * w;
  for (std::int64_t b = 0; b < n; ++b)
    for (std::int64_t ch = 0; ch < c; ++ch)
      for (std::int64_t p = 0; p < hw; ++p) dst[(b * c + ch) * hw + p] = src[(b * hw + p) * c + ch];
}

}  // namespace contra::nn
