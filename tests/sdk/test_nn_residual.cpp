#include <contra/nn/residual.hpp>

#include "layer_check.hpp"

#include <catch2/catch.hpp>

using namespace contra;
using contra::test::random_tensor;

namespace {
void check_sum(const Tensor& got, const Tensor& a, const Tensor& b) {
  REQUIRE(got.shape() == a.shape());
  std::int64_t bad = 0;
  for (std::int64_t i = 0; i < a.numel(); ++i)
    bad += got.data<float>()[i] != a.data<float>()[i] + b.data<float>()[i];
  CHECK(bad == 0);
}
}  // namespace

TEST_CASE("residual: add gives a + b, small (loop) and large (oneDNN) tensors", "[sdk][nn][residual]") {
  for (Shape s : {Shape{2, 3, 4, 5}, Shape{7}, Shape{4, 32, 32, 16}, Shape{3, 70001}}) {
    INFO("shape " << s.str());
    Tensor a = random_tensor(s, 1), b = random_tensor(s, 2);
    Tensor out;
    nn::add(a, b, out);
    check_sum(out, a, b);
    // Reused storage: a second add of the same shape keeps out's buffer.
    const void* before = out.raw();
    nn::add(b, a, out);
    CHECK(out.raw() == before);
    check_sum(out, a, b);
  }
}

TEST_CASE("residual: add works in place on either operand", "[sdk][nn][residual]") {
  for (Shape s : {Shape{3, 5}, Shape{2, 300, 300}}) {
    INFO("shape " << s.str());
    Tensor a = random_tensor(s, 3), b = random_tensor(s, 4);
    Tensor a0 = a.clone(), b0 = b.clone();
    nn::add(a, b, a);
    check_sum(a, a0, b0);
    Tensor c = a0.clone();
    nn::add(b0, c, c);
    check_sum(c, a0, b0);
    Tensor d = a0.clone();
    nn::add(d, d, d);
    check_sum(d, a0, a0);
  }
}

TEST_CASE("residual: accumulate adds into the first tensor", "[sdk][nn][residual]") {
  for (Shape s : {Shape{4, 6}, Shape{8, 16, 16, 64}}) {
    INFO("shape " << s.str());
    Tensor into = random_tensor(s, 5), from = random_tensor(s, 6);
    Tensor into0 = into.clone();
    const void* p = into.raw();
    nn::accumulate(into, from);
    CHECK(into.raw() == p);
    check_sum(into, into0, from);
    Tensor twice = from.clone();
    nn::accumulate(twice, twice);
    check_sum(twice, from, from);
  }
}

TEST_CASE("residual: errors", "[sdk][nn][residual]") {
  Tensor a = random_tensor({2, 3}, 1), b = random_tensor({3, 2}, 2), out;
  CHECK_THROWS_WITH(nn::add(a, b, out), "add: shapes differ: a is [2, 3], b is [3, 2]");
  CHECK_THROWS_WITH(nn::add(a, Tensor::zeros({2, 3}, DType::i64), out),
                    "add: b must be a defined f32 cpu tensor, got i64 cpu [2, 3]");
  CHECK_THROWS_WITH(nn::accumulate(out, a), "accumulate: into must be a defined f32 cpu tensor, got f32 cpu []");
  CHECK_THROWS_WITH(nn::accumulate(a, b), "accumulate: shapes differ: into is [2, 3], from is [3, 2]");
  Tensor big = random_tensor({4, 3}, 3);
  Tensor shifted = big.rows(1, 3);
  Tensor first = big.rows(0, 2);
  CHECK_THROWS_WITH(nn::accumulate(shifted, first), "accumulate: into and from overlap without being the same tensor");
  // out keeps its own storage (ensure() reuses it) while a non-owning view of
  // that storage, shifted by one row, is an operand.
  Tensor out2 = random_tensor({4, 3}, 4);
  Tensor alias = Tensor::wrap(out2.data<float>() + 3, {2, 3}, DType::f32);
  CHECK_THROWS_WITH(nn::add(alias, a, out2), "add: out overlaps a or b without being the same tensor");
}
