#include "winograd.hpp"

#include "dnnl_util.hpp"
#include "simd.hpp"

#include <algorithm>

namespace contra::nn::detail {

namespace {

constexpr std::int64_t target_tiles = 256;  // rows of each chunk's matrix products

// Working memory of one call, kept per thread and shared by every layer (a
// call needs nothing of it afterwards): transformed filters [16][ci][co],
// inputs [16][tiles][ci], products [16][tiles][co], dL/dy [16][tiles][k],
// dL/dU [16][c][k]. A network's largest layer sets its size, not their sum.
// Tensors, for their 64-byte alignment: the products and the vector loops
// over channels then start on cache lines.
struct Scratch {
  Tensor u, v, m, z, du;
};
Scratch& scratch() {
  thread_local Scratch s;
  return s;
}

// Grows `buf` to hold `n` floats and returns it (never shrinks).
float* room(Tensor& buf, std::int64_t n) {
  if (!buf.defined() || buf.numel() < n) buf = Tensor::empty({n}, DType::f32);
  return buf.data<float>();
}

// G, the filter transform (4×3): U = G·f·Gᵀ.
constexpr float G[4][3] = {{1, 0, 0}, {0.5f, 0.5f, 0.5f}, {0.5f, -0.5f, 0.5f}, {0, 0, 1}};

// u[ξν][i][o] = (G f Gᵀ)[ξ][ν] for the 3×3 filter f of input channel i and
// output channel o; `flip` takes f[r][s] = w[o'][i'][2 − r][2 − s] with the
// roles of weight's two channel axes swapped (the backward-data filter).
void transform_filters(const float* w, std::int64_t k, std::int64_t c, bool flip, float* u) {
  const std::int64_t ci = flip ? k : c, co = flip ? c : k;
#pragma omp parallel for schedule(static)
  for (std::int64_t i = 0; i < ci; ++i)
    for (std::int64_t o = 0; o < co; ++o) {
      const float* f = flip ? w + (i * c + o) * 9 : w + (o * c + i) * 9;
      float g[3][3];
      for (int r = 0; r < 3; ++r)
        for (int s = 0; s < 3; ++s) g[r][s] = flip ? f[(2 - r) * 3 + (2 - s)] : f[r * 3 + s];
      float t[4][3];
      for (int a = 0; a < 4; ++a)
        for (int s = 0; s < 3; ++s) t[a][s] = G[a][0] * g[0][s] + G[a][1] * g[1][s] + G[a][2] * g[2][s];
      for (int a = 0; a < 4; ++a)
        for (int b = 0; b < 4; ++b)
          u[((a * 4 + b) * ci + i) * co + o] = t[a][0] * G[b][0] + t[a][1] * G[b][1] + t[a][2] * G[b][2];
    }
}

// The 4×4 rows of channels of one tile's input patch (the zero row outside).
void patch_rows(const float* img, std::int64_t ih, std::int64_t iw, std::int64_t ci, std::int64_t r0, std::int64_t q0,
                const float* zeros, const float* rows[16]) {
  for (int r = 0; r < 4; ++r)
    for (int q = 0; q < 4; ++q) {
      const std::int64_t y = r0 + r, x = q0 + q;
      rows[r * 4 + q] = (y < 0 || y >= ih || x < 0 || x >= iw) ? zeros : img + (y * iw + x) * ci;
    }
}

// The transforms work on 8 channels at a time, then on the last c % 8 one by
// one (simd.hpp): T is f32x8 or float.

// o[ξν][k..] = (Bᵀ d B)[ξ][ν] for the patch rows d.
template <class T> void input_tile(const float* const d[16], float* const o[16], std::int64_t k) {
  T b[4][4];  // Bᵀ d: rows
  for (int q = 0; q < 4; ++q) {
    const T d0 = load<T>(d[q] + k), d1 = load<T>(d[4 + q] + k), d2 = load<T>(d[8 + q] + k),
            d3 = load<T>(d[12 + q] + k);
    b[0][q] = d0 - d2;
    b[1][q] = d1 + d2;
    b[2][q] = d2 - d1;
    b[3][q] = d1 - d3;
  }
  for (int r = 0; r < 4; ++r) {  // (Bᵀ d) B: columns
    store<T>(o[r * 4 + 0] + k, b[r][0] - b[r][2]);
    store<T>(o[r * 4 + 1] + k, b[r][1] + b[r][2]);
    store<T>(o[r * 4 + 2] + k, b[r][2] - b[r][1]);
    store<T>(o[r * 4 + 3] + k, b[r][1] - b[r][3]);
  }
}

// y[·][k..] = (Aᵀ m A) + bias for the tile's 2×2 outputs (the ones inside).
template <class T>
void output_tile(const float* const m[16], float* const y[4], const bool inside[4], const float* bias, std::int64_t k) {
  T a[2][4];  // Aᵀ m
  for (int q = 0; q < 4; ++q) {
    const T m1 = load<T>(m[4 + q] + k), m2 = load<T>(m[8 + q] + k);
    a[0][q] = load<T>(m[q] + k) + m1 + m2;
    a[1][q] = m1 - m2 - load<T>(m[12 + q] + k);
  }
  const T b = bias ? load<T>(bias + k) : T{};
  const T out[4] = {a[0][0] + a[0][1] + a[0][2] + b, a[0][1] - a[0][2] - a[0][3] + b,
                    a[1][0] + a[1][1] + a[1][2] + b, a[1][1] - a[1][2] - a[1][3] + b};
  for (int e = 0; e < 4; ++e)
    if (inside[e]) store<T>(y[e] + k, out[e]);
}

// z[ξν][k..] = (A dY Aᵀ)[ξ][ν] for the tile's 2×2 values of dL/dy.
template <class T> void gradient_tile(const float* const dy[4], float* const z[16], std::int64_t k) {
  const T a00 = load<T>(dy[0] + k), a01 = load<T>(dy[1] + k), a10 = load<T>(dy[2] + k), a11 = load<T>(dy[3] + k);
  const T r[4][2] = {{a00, a01}, {a00 + a10, a01 + a11}, {a00 - a10, a01 - a11}, {-a10, -a11}};  // A dY
  for (int a = 0; a < 4; ++a) {  // (A dY) Aᵀ
    store<T>(z[a * 4 + 0] + k, r[a][0]);
    store<T>(z[a * 4 + 1] + k, r[a][0] + r[a][1]);
    store<T>(z[a * 4 + 2] + k, r[a][0] - r[a][1]);
    store<T>(z[a * 4 + 3] + k, -r[a][1]);
  }
}

// v[ξν][t][·] = (Bᵀ d B)[ξ][ν] for the patch rows d.
void transform_input(const float* const d[16], std::int64_t ci, std::int64_t tiles, std::int64_t t, float* v) {
  float* o[16];
  for (int i = 0; i < 16; ++i) o[i] = v + (i * tiles + t) * ci;
  std::int64_t k = 0;
  for (; k + 8 <= ci; k += 8) input_tile<f32x8>(d, o, k);
  for (; k < ci; ++k) input_tile<float>(d, o, k);
}

}  // namespace

Winograd3x3::Geometry Winograd3x3::geometry(std::int64_t ih, std::int64_t iw, std::int64_t ci, std::int64_t co,
                                            int pad) {
  Geometry g;
  g.ih = ih, g.iw = iw, g.ci = ci, g.co = co, g.pad = pad;
  g.oh = ih + 2 * pad - 2;
  g.ow = iw + 2 * pad - 2;
  g.th = (g.oh + 1) / 2;
  g.tw = (g.ow + 1) / 2;
  g.chunk = std::max<std::int64_t>(1, target_tiles / (g.th * g.tw));
  return g;
}

Winograd3x3::Winograd3x3(std::int64_t n, std::int64_t h, std::int64_t w, std::int64_t c, std::int64_t k, int p)
    : n_(n), k_(k) {
  fwd_ = geometry(h, w, c, k, p);
  // dL/dx is the correlation of dL/dy with the flipped filter, padded by 2 − p.
  bwd_ = geometry(fwd_.oh, fwd_.ow, k, c, 2 - p);
  zeros_.assign(static_cast<std::size_t>(std::max(c, k)), 0.0f);
}

Winograd3x3::Product& Winograd3x3::product(std::vector<Product>& cache, std::int64_t tiles,
                                           const dnnl::memory::desc& a, const dnnl::memory::desc& b,
                                           const dnnl::memory::desc& c, const dnnl::primitive_attr& attr) {
  for (Product& p : cache)
    if (p.tiles == tiles) return p;
  Product p;
  p.tiles = tiles;
  p.prim = dnnl::matmul(dnnl::matmul::primitive_desc(dnnl::matmul::desc(a, b, c), attr, engine()));
  p.a = dnnl::memory(a, engine(), DNNL_MEMORY_NONE);
  p.b = dnnl::memory(b, engine(), DNNL_MEMORY_NONE);
  p.c = dnnl::memory(c, engine(), DNNL_MEMORY_NONE);
  cache.push_back(std::move(p));
  return cache.back();
}

Winograd3x3::Product& Winograd3x3::spatial_product(std::vector<Product>& cache, std::int64_t tiles,
                                                   std::int64_t ci, std::int64_t co) {
  return product(cache, tiles, plain_desc({16, tiles, ci}), plain_desc({16, ci, co}), plain_desc({16, tiles, co}),
                 dnnl::primitive_attr());
}

Winograd3x3::Product& Winograd3x3::filter_product(std::int64_t tiles) {
  const std::int64_t c = fwd_.ci, k = fwd_.co;
  dnnl::post_ops sum;  // dU accumulates over the chunks
  sum.append_sum(1.0f);
  dnnl::primitive_attr attr;
  attr.set_post_ops(sum);
  // v read transposed: [16][c][tiles] with the strides of [16][tiles][c].
  return product(filter_products_, tiles, dnnl::memory::desc({16, c, tiles}, dt::f32, dnnl::memory::dims{tiles * c, 1, c}),
                 plain_desc({16, tiles, k}), plain_desc({16, c, k}), attr);
}

void Winograd3x3::run(Product& p, const float* a, const float* b, float* c) {
  p.a.set_data_handle(const_cast<float*>(a));
  p.b.set_data_handle(const_cast<float*>(b));
  p.c.set_data_handle(c);
  p.prim.execute(stream(), {{DNNL_ARG_SRC, p.a}, {DNNL_ARG_WEIGHTS, p.b}, {DNNL_ARG_DST, p.c}});
  stream().wait();
}

void Winograd3x3::transform_inputs(const Geometry& g, const float* in, std::int64_t n0, std::int64_t tiles, float* v) {
  const std::int64_t per_image = g.th * g.tw;
#pragma omp parallel for schedule(static)
  for (std::int64_t t = 0; t < tiles; ++t) {
    const std::int64_t img = n0 + t / per_image, i = (t / g.tw) % g.th, j = t % g.tw;
    const float* rows[16];
    patch_rows(in + img * g.ih * g.iw * g.ci, g.ih, g.iw, g.ci, 2 * i - g.pad, 2 * j - g.pad, zeros_.data(), rows);
    transform_input(rows, g.ci, tiles, t, v);
  }
}

void Winograd3x3::correlate(const Geometry& g, std::vector<Product>& products, const float* in, const float* u,
                            const float* bias, float* out) {
  const std::int64_t per_image = g.th * g.tw;
  const std::int64_t most = std::min(g.chunk, n_) * per_image;
  float* v = room(scratch().v, 16 * most * g.ci);
  float* m = room(scratch().m, 16 * most * g.co);
  for (std::int64_t n0 = 0; n0 < n_; n0 += g.chunk) {
    const std::int64_t images = std::min(g.chunk, n_ - n0), tiles = images * per_image;
    transform_inputs(g, in, n0, tiles, v);
    // The 16 products over channels: m[ξν] = v[ξν] · u[ξν].
    run(spatial_product(products, tiles, g.ci, g.co), v, u, m);
#pragma omp parallel for schedule(static)
    for (std::int64_t t = 0; t < tiles; ++t) {
      const std::int64_t img = n0 + t / per_image, i = (t / g.tw) % g.th, j = t % g.tw;
      const float* s[16];
      for (int e = 0; e < 16; ++e) s[e] = m + (e * tiles + t) * g.co;
      const bool down = 2 * i + 1 < g.oh, right = 2 * j + 1 < g.ow;  // odd sizes: the last tile is cut
      const bool inside[4] = {true, right, down, down && right};
      float* y00 = out + img * g.oh * g.ow * g.co + ((2 * i) * g.ow + 2 * j) * g.co;
      float* const y[4] = {y00, y00 + g.co, y00 + g.ow * g.co, y00 + (g.ow + 1) * g.co};  // only `inside` ones written
      std::int64_t k = 0;
      for (; k + 8 <= g.co; k += 8) output_tile<f32x8>(s, y, inside, bias, k);
      for (; k < g.co; ++k) output_tile<float>(s, y, inside, bias, k);
    }
  }
}

void Winograd3x3::forward(const float* x, const float* weight, const float* bias, float* y) {
  float* u = room(scratch().u, 16 * fwd_.ci * fwd_.co);
  transform_filters(weight, k_, fwd_.ci, false, u);
  correlate(fwd_, fwd_products_, x, u, bias, y);
}

void Winograd3x3::backward_data(const float* dy, const float* weight, float* dx) {
  float* u = room(scratch().u, 16 * bwd_.ci * bwd_.co);
  transform_filters(weight, k_, bwd_.co, true, u);
  correlate(bwd_, bwd_products_, dy, u, nullptr, dx);
}

void Winograd3x3::backward_weights(const float* x, const float* dy, float* weight_grad, float* bias_grad) {
  // y = Aᵀ[(G w Gᵀ) ⊙ (Bᵀ d B)]A per tile, so dL/dU = Σ_tiles (A dY Aᵀ) ⊙ V and
  // dL/dw = Gᵀ (dL/dU) G.
  const Geometry& g = fwd_;
  const std::int64_t c = g.ci, k = g.co, per_image = g.th * g.tw;
  const std::int64_t most = std::min(g.chunk, n_) * per_image;
  float* v = room(scratch().v, 16 * most * c);
  float* z = room(scratch().z, 16 * most * k);
  float* du = room(scratch().du, 16 * c * k);
  std::fill(du, du + 16 * c * k, 0.0f);
  for (std::int64_t n0 = 0; n0 < n_; n0 += g.chunk) {
    const std::int64_t images = std::min(g.chunk, n_ - n0), tiles = images * per_image;
    transform_inputs(g, x, n0, tiles, v);
#pragma omp parallel for schedule(static)
    for (std::int64_t t = 0; t < tiles; ++t) {
      const std::int64_t img = n0 + t / per_image, i = (t / g.tw) % g.th, j = t % g.tw;
      // Z = A dY Aᵀ, dY the tile's 2×2 outputs (zero past an odd edge).
      const float* o = dy + img * g.oh * g.ow * k;
      const float* d00 = o + ((2 * i) * g.ow + 2 * j) * k;
      const bool down = 2 * i + 1 < g.oh, right = 2 * j + 1 < g.ow;
      const float* const d[4] = {d00, right ? d00 + k : zeros_.data(), down ? d00 + g.ow * k : zeros_.data(),
                                 down && right ? d00 + (g.ow + 1) * k : zeros_.data()};
      float* zr[16];
      for (int e = 0; e < 16; ++e) zr[e] = z + (e * tiles + t) * k;
      std::int64_t q = 0;
      for (; q + 8 <= k; q += 8) gradient_tile<f32x8>(d, zr, q);
      for (; q < k; ++q) gradient_tile<float>(d, zr, q);
    }
    // dU[ξν] += V[ξν]ᵀ · Z[ξν]: [c × tiles] · [tiles × k].
    run(filter_product(tiles), v, z, du);
  }
  // dL/dw[o][i] = Gᵀ dU[·][i][o] G.
#pragma omp parallel for schedule(static)
  for (std::int64_t o = 0; o < k; ++o)
    for (std::int64_t i = 0; i < c; ++i) {
      float t[3][4];  // Gᵀ dU
      for (int r = 0; r < 3; ++r)
        for (int b = 0; b < 4; ++b) {
          float sum = 0;
          for (int a = 0; a < 4; ++a) sum += G[a][r] * du[((a * 4 + b) * c + i) * k + o];
          t[r][b] = sum;
        }
      float* dw = weight_grad + (o * c + i) * 9;
      for (int r = 0; r < 3; ++r)
        for (int s = 0; s < 3; ++s) dw[r * 3 + s] += t[r][0] * G[0][s] + t[r][1] * G[1][s] + t[r][2] * G[2][s] + t[r][3] * G[3][s];
    }
  if (bias_grad) {
    // dL/db = Σ dL/dy over every position, in double.
    const std::int64_t rows = n_ * g.oh * g.ow;
    std::vector<double> sum(static_cast<std::size_t>(k), 0.0);
    for (std::int64_t r = 0; r < rows; ++r)
      for (std::int64_t q = 0; q < k; ++q) sum[q] += dy[r * k + q];
    for (std::int64_t q = 0; q < k; ++q) bias_grad[q] += static_cast<float>(sum[q]);
  }
}

}  // namespace contra::nn::detail
