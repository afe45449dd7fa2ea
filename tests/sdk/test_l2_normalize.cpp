#include <contra/l2_normalize.hpp>

#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

namespace {

std::vector<float> random_rows(std::int64_t rows, std::int64_t d, unsigned seed) {
  std::mt19937 gen(seed);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> z(static_cast<std::size_t>(rows * d));
  for (float& x : z) x = dist(gen);
  return z;
}

// ẑ = z / max(‖z‖, eps) in double: the function whose derivative the backward pass gives.
std::vector<double> normalized(const std::vector<double>& z, std::int64_t rows, std::int64_t d) {
  std::vector<double> out(z.size());
  for (std::int64_t i = 0; i < rows; ++i) {
    double ss = 0;
    for (std::int64_t k = 0; k < d; ++k) ss += z[i * d + k] * z[i * d + k];
    const double n = std::max(std::sqrt(ss), static_cast<double>(contra::l2_norm_eps));
    for (std::int64_t k = 0; k < d; ++k) out[i * d + k] = z[i * d + k] / n;
  }
  return out;
}

}  // namespace

TEST_CASE("l2_normalize: rows of unit norm, their norms, zero and tiny rows clamped", "[sdk][l2_normalize]") {
  const std::int64_t rows = 4, d = 3;
  std::vector<float> z = {3, 4, 0, 0, 0, 0, 1e-14f, -2e-14f, 2e-14f, -1, 2, -2};
  std::vector<float> zhat(z.size()), norms(rows);
  contra::l2_normalize_rows(z.data(), rows, d, zhat.data(), norms.data());
  CHECK(norms[0] == 5.0f);
  CHECK(zhat[0] == 0.6f);
  CHECK(zhat[1] == 0.8f);
  CHECK(zhat[2] == 0.0f);
  CHECK(norms[1] == 0.0f);
  for (int k = 3; k < 6; ++k) CHECK(zhat[k] == 0.0f);
  // A norm below eps is clamped: the row is divided by eps, not by its norm.
  CHECK(norms[2] == Approx(3e-14f).epsilon(1e-6));
  CHECK(zhat[6] == Approx(1e-2f).epsilon(1e-5));
  CHECK(zhat[7] == Approx(-2e-2f).epsilon(1e-5));
  CHECK(norms[3] == 3.0f);
  CHECK(zhat[9] == Approx(-1.0f / 3.0f));

  // In place, and without norms: the same rows.
  std::vector<float> in_place = z;
  contra::l2_normalize_rows(in_place.data(), rows, d, in_place.data(), nullptr);
  CHECK(in_place == zhat);
}

TEST_CASE("l2_normalize: a row's result depends neither on the other rows nor on threads", "[sdk][l2_normalize]") {
  // 300 x 300 floats are split over the OpenMP team; each row alone is not.
  const std::int64_t rows = 300, d = 300;
  const std::vector<float> z = random_rows(rows, d, 3);
  std::vector<float> all(z.size()), norms(rows);
  contra::l2_normalize_rows(z.data(), rows, d, all.data(), norms.data());
  std::vector<float> one(static_cast<std::size_t>(d));
  float norm = 0;
  for (std::int64_t i = 0; i < rows; i += 37) {
    contra::l2_normalize_rows(z.data() + i * d, 1, d, one.data(), &norm);
    CHECK(norm == norms[i]);
    CHECK(std::equal(one.begin(), one.end(), all.begin() + i * d));
  }
}

TEST_CASE("l2_normalize: the backward pass is the derivative (finite differences)", "[sdk][l2_normalize]") {
  // L = scale · Σ c·ẑ, so dL/dẑ = c and dL/dz = what the backward pass returns.
  // The last row's norm is below eps: there ẑ = z / eps.
  const std::int64_t rows = 5, d = 4;
  std::vector<float> z = random_rows(rows, d, 11);
  for (std::int64_t k = 0; k < d; ++k) z[(rows - 1) * d + k] *= 1e-14f;
  const std::vector<float> c = random_rows(rows, d, 12);
  const float scale = 0.25f;
  std::vector<float> zhat(z.size()), norms(rows), grad(z.size());
  contra::l2_normalize_rows(z.data(), rows, d, zhat.data(), norms.data());
  contra::l2_normalize_rows_backward(zhat.data(), norms.data(), c.data(), scale, rows, d, grad.data());

  const std::vector<double> zd(z.begin(), z.end());
  auto loss = [&](const std::vector<double>& x) {
    const std::vector<double> xh = normalized(x, rows, d);
    double l = 0;
    for (std::size_t j = 0; j < xh.size(); ++j) l += scale * c[j] * xh[j];
    return l;
  };
  for (std::int64_t i = 0; i < rows; ++i)
    for (std::int64_t k = 0; k < d; ++k) {
      const std::size_t j = static_cast<std::size_t>(i * d + k);
      const double h = 1e-4 * std::max(std::abs(zd[j]), 1e-12);  // stays in the clamped region there
      std::vector<double> plus = zd, minus = zd;
      plus[j] += h;
      minus[j] -= h;
      const double numeric = (loss(plus) - loss(minus)) / (2 * h);
      INFO("row " << i << ", column " << k);
      CHECK(grad[j] == Approx(numeric).epsilon(1e-4).margin(1e-5));
    }

  // In place: grad_z over grad_zhat.
  std::vector<float> in_place = c;
  contra::l2_normalize_rows_backward(zhat.data(), norms.data(), in_place.data(), scale, rows, d, in_place.data());
  CHECK(in_place == grad);
}
