#pragma once
// Test helpers shared by test_clip.cpp and test_siglip.cpp: two-view batches
// laid out as the runtime lays them out, metrics and parameters by name,
// derivatives with respect to a loss's scalar parameter, the checks of what
// both losses refuse, and the PyTorch oracle (two_tower_vs_torch.py). Named
// test_* so that, like the tests, it may include tests/support.

#include "torch_oracle.hpp"  // tests/support

#include <contra/roles/loss.hpp>
#include <contra/testing.hpp>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace contra::test::two_tower {

/// V views of N samples, row v·N + i = view v of sample i, and the tower of
/// each view (CLIP's image and text: {0, 1}).
struct Batch {
  Tensor z;  ///< [V·N, D] f32
  std::vector<std::int64_t> sample;
  std::vector<std::int32_t> towers{0, 1};
  std::int64_t views = 2;
  bool with_towers = true;  ///< false: Embeddings::view_tower null (a one-tower pipeline)

  std::int64_t samples() const { return z.dim(0) / views; }
  std::int64_t dim() const { return z.dim(1); }
  /// Points into this object: keep it alive while the view is used.
  Embeddings embeddings() const {
    Embeddings e;
    e.z = z;
    e.sample = &sample;
    e.views = views;
    e.view_tower = with_towers ? &towers : nullptr;
    return e;
  }
};

inline std::vector<std::int64_t> row_samples(std::int64_t n, std::int64_t views) {
  std::vector<std::int64_t> s;
  for (std::int64_t v = 0; v < views; ++v)
    for (std::int64_t i = 0; i < n; ++i) s.push_back(i);
  return s;
}

/// Rows given in order: view 0's N rows, then view 1's.
inline Batch from_rows(std::int64_t n, std::int64_t d, const std::vector<float>& rows) {
  REQUIRE(static_cast<std::int64_t>(rows.size()) == 2 * n * d);
  Batch b;
  b.z = Tensor::empty({2 * n, d}, DType::f32);
  std::copy(rows.begin(), rows.end(), b.z.data<float>());
  b.sample = row_samples(n, 2);
  return b;
}

/// Random rows whose two views of a sample are correlated, as a trained
/// pair of towers' would be (contra::testing::random_embeddings).
inline Batch random_batch(std::int64_t n, std::int64_t d, std::uint64_t seed) {
  Batch b;
  b.z = contra::testing::random_embeddings(n, 2, d, seed).z;
  b.sample = row_samples(n, 2);
  return b;
}

/// C_ij = cos(row first·N + i, row second·N + j) in long double, N × N
/// row-major: what the references of the tests start from.
inline std::vector<long double> reference_cosines(const Batch& b, std::int64_t first, std::int64_t second) {
  const std::int64_t n = b.samples(), d = b.dim();
  const float* z = b.z.data<float>();
  auto unit = [&](std::int64_t row) {
    std::vector<long double> u(z + row * d, z + (row + 1) * d);
    long double norm = 0;
    for (long double x : u) norm += x * x;
    for (long double& x : u) x /= std::sqrt(norm);
    return u;
  };
  std::vector<long double> c(static_cast<std::size_t>(n * n));
  for (std::int64_t i = 0; i < n; ++i) {
    const std::vector<long double> a = unit(first * n + i);
    for (std::int64_t j = 0; j < n; ++j) {
      const std::vector<long double> o = unit(second * n + j);
      long double dot = 0;
      for (std::int64_t k = 0; k < d; ++k) dot += a[k] * o[k];
      c[i * n + j] = dot;
    }
  }
  return c;
}

/// The same batch with the two views' rows exchanged, and their towers.
inline Batch swapped(const Batch& b) {
  Batch s = b;
  const std::int64_t n = b.samples(), d = b.dim();
  s.z = Tensor::empty(b.z.shape(), DType::f32);
  const float* from = b.z.data<float>();
  float* to = s.z.data<float>();
  std::copy(from, from + n * d, to + n * d);
  std::copy(from + n * d, from + 2 * n * d, to);
  s.towers = {b.towers[1], b.towers[0]};
  return s;
}

inline Pairs all_pairs() {
  Pairs p;
  p.all = true;
  return p;
}

inline double metric(const LossResult& r, const std::string& name) {
  for (const auto& [k, v] : r.metrics)
    if (k == name) return v;
  FAIL("metric " << name << " missing");
  return 0.0;
}

/// The loss's learnt parameter called `name`; REQUIREs it.
inline Parameter& parameter(Loss& loss, const std::string& name) {
  Parameter* found = nullptr;
  for (Parameter* p : loss.parameters())
    if (p->name == name) found = p;
  INFO("parameter " << name);
  REQUIRE(found != nullptr);
  return *found;
}

/// Central difference of f with respect to the scalar p.value, divided by the
/// step between the two f32 values actually stored (p.value is restored).
inline double parameter_derivative(const std::function<double()>& f, Parameter& p, double eps) {
  float& t = p.value.data<float>()[0];
  const float saved = t;
  t = static_cast<float>(saved + eps);
  const double up_at = t, up = f();
  t = static_cast<float>(saved - eps);
  const double down_at = t, down = f();
  t = saved;
  return (up - down) / (up_at - down_at);
}

/// Rows in the layout pick_views refuses or accepts; view count and towers as given.
inline Batch with_views(std::int64_t views, std::vector<std::int32_t> towers) {
  Batch b;
  b.views = views;
  b.z = contra::testing::random_embeddings(3, views, 4, 5).z;
  b.sample = row_samples(3, views);
  b.towers = std::move(towers);
  return b;
}

/// What both losses refuse, with their messages ("<who>: ...").
inline void check_refusals(Loss& loss, const std::string& who) {
  LossResult out;
  auto refused = [&](const Batch& b, const Pairs& pairs, const std::string& message) {
    CHECK_THROWS_WITH(loss.compute(b.embeddings(), pairs, out), who + ": " + message);
  };
  SECTION("three views") {
    refused(with_views(3, {0, 0, 1}), all_pairs(),
            "contrasts 2 views, one per tower (e.g. an image and its caption), but the batch has 3 views (from "
            "towers 0, 0, 1): set [augment] views = 1 beside one [tower.NAME]");
    Batch b = with_views(3, {0, 0, 1});
    b.with_towers = false;
    refused(b, all_pairs(), "contrasts 2 views, one per tower (e.g. an image and its caption), but the batch has 3 views");
  }
  SECTION("one view") {
    refused(with_views(1, {0}), all_pairs(),
            "contrasts 2 views, one per tower (e.g. an image and its caption), but the batch has 1 view (from "
            "towers 0): set [augment] views = 1 beside one [tower.NAME]");
  }
  SECTION("two views of one tower") {
    refused(with_views(2, {0, 0}), all_pairs(),
            "both views come from tower 0; it contrasts the views of two towers (e.g. the [encoder]'s images and "
            "a [tower.NAME]'s captions)");
    refused(with_views(2, {1, 1}), all_pairs(),
            "both views come from tower 1; it contrasts the views of two towers (e.g. the [encoder]'s images and "
            "a [tower.NAME]'s captions)");
    refused(with_views(2, {0, 1, 2}), all_pairs(), "Embeddings::view_tower has 3 entries for 2 views");
  }
  SECTION("rows that are not view v of sample i") {
    Batch b = with_views(2, {0, 1});
    std::swap(b.sample[4], b.sample[5]);
    refused(b, all_pairs(), "rows 1 and 4 are samples 1 and 2; row v·N + i must be view v of sample i");
  }
  SECTION("a memory or momentum keys") {
    Batch b = with_views(2, {0, 1});
    MemoryView memory;
    Embeddings e = b.embeddings();
    e.memory = &memory;
    CHECK_THROWS_WITH(loss.compute(e, all_pairs(), out),
                      who + ": takes no momentum keys and no memory (it contrasts the two towers' views of the "
                            "batch); remove [memory]");
    e.memory = nullptr;
    e.keys = b.z;
    CHECK_THROWS_WITH(loss.compute(e, all_pairs(), out),
                      who + ": takes no momentum keys and no memory (it contrasts the two towers' views of the "
                            "batch); remove [memory]");
  }
  SECTION("pairs other than Pairs::all") {
    const Batch b = with_views(2, {0, 1});
    Pairs negatives;
    negatives.negative.emplace_back(0, 1);
    refused(b, negatives, "Pairs::negative is not supported; it takes Pairs::all (the all_pairs miner) only");
    Pairs triplets;
    triplets.triplets.push_back({0, 3, 1});
    refused(b, triplets, "Pairs::triplets is not supported; it takes Pairs::all (the all_pairs miner) only");
    refused(b, Pairs{}, "nothing selected to compute on; it takes Pairs::all (the all_pairs miner) only");
  }
  SECTION("the declared forms say the same before a run") {
    const PairsForms forms = loss.pairs_forms();
    CHECK(forms.declared);
    CHECK(forms.all);
    MinedLists hardest;
    hardest.declared = hardest.positive = hardest.negative = true;
    CHECK(pairs_mismatch(forms, hardest) ==
          "Pairs::positive is not supported; it takes Pairs::all (the all_pairs miner) only");
    MinedLists all;
    all.declared = all.all = true;
    CHECK(pairs_mismatch(forms, all).empty());
  }
}

/// The loss's value, dL/dz and dL/dθ against two_tower_vs_torch.py (autograd
/// in float64). `first`, `second`: the views the loss pairs (by the towers).
inline nlohmann::json torch_figures(const std::string& loss_name, const Batch& b, std::int64_t first,
                                    std::int64_t second, double t, double bias, double max_scale,
                                    const LossResult& out, double dt, double db) {
  TempDir dir("two-tower-torch");
  dump_tensor(dir, "z", b.z);
  dump_tensor(dir, "grad", out.grad);
  const nlohmann::json meta = {{"loss", loss_name}, {"n", b.samples()}, {"d", b.dim()},   {"first", first},
                               {"second", second},  {"t", t},           {"b", bias},      {"max_scale", max_scale},
                               {"value", out.value}, {"dt", dt},        {"db", db}};
  write_file(dir.file("meta.json"), meta.dump());
  return oracle_figures(run_oracle("plugins/loss/two_tower_vs_torch.py", dir.path().string()));
}

}  // namespace contra::test::two_tower
