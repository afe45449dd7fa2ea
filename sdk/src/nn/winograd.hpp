#pragma once
// 3×3, stride-1 convolution on NHWC tensors by Winograd's minimal filtering
// F(2×2, 3×3) (Lavin & Gray, "Fast Algorithms for Convolutional Neural
// Networks", 2016): each 2×2 block of outputs from a 4×4 input patch with 16
// multiplications per channel pair instead of 36. The input patches and the
// filters are transformed, the 16 products become 16 matrix products over
// channels (one batched oneDNN matmul per chunk of tiles), and the results are transformed back. Forward,
// backward-data (the same correlation of dL/dy with the flipped, transposed
// filter) and backward-weights (the transposed maps) run this way. Internal to
// libcontra_sdk (Conv2d uses it; see conv2d.cpp for when).

#include <contra/tensor.hpp>

#include <oneapi/dnnl/dnnl.hpp>

#include <cstdint>
#include <vector>

namespace contra::nn::detail {

class Winograd3x3 {
 public:
  /// Input [n, h, w, c], output channels k, symmetric padding p in [0, 2];
  /// the output is [n, h + 2p − 2, w + 2p − 2, k].
  Winograd3x3(std::int64_t n, std::int64_t h, std::int64_t w, std::int64_t c, std::int64_t k, int p);

  /// y = x ⋆ weight (+ bias): weight [k, c, 3, 3] (OIHW), bias [k] or null.
  void forward(const float* x, const float* weight, const float* bias, float* y);
  /// dx = dL/dx for dy = dL/dy [n, oh, ow, k].
  void backward_data(const float* dy, const float* weight, float* dx);
  /// weight_grad += dL/dW (OIHW), bias_grad += dL/db when not null.
  void backward_weights(const float* x, const float* dy, float* weight_grad, float* bias_grad);

 private:
  // One correlation: input [n, ih, iw, ci] padded by pad, output
  // [n, oh, ow, co] in th × tw tiles of 2×2 per image, chunk images at a time.
  struct Geometry {
    std::int64_t ih, iw, ci, co, oh, ow, th, tw, chunk;
    int pad;
  };
  static Geometry geometry(std::int64_t ih, std::int64_t iw, std::int64_t ci, std::int64_t co, int pad);

  // The 16 products of one chunk as one batched matmul, c = a · b (with
  // `accumulate`, c += a · b), built once per shape.
  struct Product {
    std::int64_t tiles = 0;
    dnnl::matmul prim;
    dnnl::memory a, b, c;
  };
  // The product of these descriptors for `tiles` rows, from `cache` or built.
  static Product& product(std::vector<Product>& cache, std::int64_t tiles, const dnnl::memory::desc& a,
                          const dnnl::memory::desc& b, const dnnl::memory::desc& c, const dnnl::primitive_attr& attr);
  // c = a · b (c += a · b for a filter product) on this thread's stream.
  static void run(Product& p, const float* a, const float* b, float* c);
  // m[16][tiles][co] = v[16][tiles][ci] · u[16][ci][co]
  Product& spatial_product(std::vector<Product>& cache, std::int64_t tiles, std::int64_t ci, std::int64_t co);
  // du[16][c][k] += v[16][tiles][c]ᵀ · z[16][tiles][k]
  Product& filter_product(std::int64_t tiles);

  // v[16][tiles][ci]: the transformed patches of images n0, n0 + 1, ...
  void transform_inputs(const Geometry& g, const float* in, std::int64_t n0, std::int64_t tiles, float* v);
  // out = in ⋆ filter for filters transformed into u [16][ci][co].
  void correlate(const Geometry& g, std::vector<Product>& products, const float* in, const float* u,
                 const float* bias, float* out);

  std::int64_t n_, k_;
  Geometry fwd_, bwd_;  // x → y, and dL/dy → dL/dx
  std::vector<Product> fwd_products_, bwd_products_, filter_products_;  // full and last chunks
  std::vector<float> zeros_;  // a row of max(c, k) zeros: the padding
};

}  // namespace contra::nn::detail
