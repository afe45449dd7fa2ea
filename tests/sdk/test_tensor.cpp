#include <contra/tensor.hpp>

#include <catch2/catch.hpp>

#include <cstdint>

using namespace contra;

TEST_CASE("tensor: owning storage is 64-byte aligned and zeros() is zero", "[sdk][tensor]") {
  Tensor t = Tensor::zeros({3, 5, 7}, DType::f32);
  CHECK(reinterpret_cast<std::uintptr_t>(t.raw()) % 64 == 0);
  CHECK(t.numel() == 105);
  CHECK(t.nbytes() == 420);
  for (std::int64_t i = 0; i < t.numel(); ++i) REQUIRE(t.data<float>()[i] == 0.0f);
  CHECK(t.shape().str() == "[3, 5, 7]");
}

TEST_CASE("tensor: typed access with the wrong dtype throws", "[sdk][tensor]") {
  Tensor t = Tensor::empty({4}, DType::u8);
  CHECK_THROWS_WITH(t.data<float>(), "tensor of dtype u8 accessed as f32");
}

TEST_CASE("tensor: rows() and reshape() share storage", "[sdk][tensor]") {
  Tensor t = Tensor::empty({4, 3}, DType::i64);
  for (int i = 0; i < 12; ++i) t.data<std::int64_t>()[i] = i;
  Tensor r = t.rows(1, 3);
  CHECK(r.shape() == Shape{2, 3});
  CHECK(r.data<std::int64_t>()[0] == 3);
  r.data<std::int64_t>()[0] = 100;
  CHECK(t.data<std::int64_t>()[3] == 100);
  Tensor flat = t.reshape({12});
  CHECK(flat.data<std::int64_t>()[3] == 100);
  CHECK_THROWS_WITH(t.reshape({5}), "Tensor::reshape: [4, 3] has 12 elements, [5] needs 5");
  CHECK_THROWS_WITH(t.rows(2, 5), "Tensor::rows: range [2, 5) outside a tensor of shape [4, 3]");
}

TEST_CASE("tensor: ensure() reuses storage it owns alone and reallocates otherwise", "[sdk][tensor]") {
  Tensor t = Tensor::empty({100}, DType::f32);
  void* before = t.raw();
  t.ensure({10, 10}, DType::u8);
  CHECK(t.raw() == before);
  CHECK(t.dtype() == DType::u8);
  Tensor keep = t;  // shared: must not be overwritten in place
  t.ensure({10}, DType::f32);
  CHECK(t.raw() != keep.raw());
  t.ensure({1000}, DType::f32);  // larger than capacity
  CHECK(t.numel() == 1000);
}

TEST_CASE("tensor: wrap() views foreign memory, clone() copies", "[sdk][tensor]") {
  float buf[6] = {1, 2, 3, 4, 5, 6};
  Tensor v = Tensor::wrap(buf, {2, 3}, DType::f32);
  Tensor c = v.clone();
  buf[0] = 9;
  CHECK(v.data<float>()[0] == 9);
  CHECK(c.data<float>()[0] == 1);
  CHECK_FALSE(Tensor().defined());
  CHECK(v.defined());
  CHECK_THROWS_WITH(v.expect({3, 2}, DType::f32, "encoder output"),
                    "encoder output: expected a f32 tensor of shape [3, 2], got f32 [2, 3]");
}
