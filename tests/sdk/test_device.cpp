// Tensors on Device::cuda without a GPU: the allocator hook of contra/device.hpp.
#include <contra/device.hpp>

#include <catch2/catch.hpp>

#include <cstdlib>
#include <cstring>
#include <vector>

using namespace contra;

namespace {
// Host memory posing as a device, recording what the tensor asked for.
struct RecordingAllocator final : DeviceAllocator {
  int allocations = 0, releases = 0, zeros = 0, copies = 0;
  void* allocate(std::size_t bytes) override {
    ++allocations;
    return std::malloc(bytes ? bytes : 1);
  }
  void release(void* p, std::size_t) noexcept override {
    ++releases;
    std::free(p);
  }
  void zero(void* p, std::size_t bytes) override {
    ++zeros;
    std::memset(p, 0, bytes);
  }
  void copy(void* dst, const void* src, std::size_t bytes) override {
    ++copies;
    std::memcpy(dst, src, bytes);
  }
};

struct Installed {
  explicit Installed(DeviceAllocator* a) { set_device_allocator(Device::cuda, a); }
  ~Installed() { set_device_allocator(Device::cuda, nullptr); }
};
}  // namespace

TEST_CASE("device: a cuda tensor without an installed allocator is refused", "[sdk][tensor]") {
  REQUIRE(device_allocator(Device::cuda) == nullptr);
  const char* expected =
      "no usable GPU: no allocator for device cuda is installed (the CUDA runtime, libcontra_cuda, "
      "was not initialised with contra::cuda::require())";
  CHECK_THROWS_AS(Tensor::empty({2, 3}, DType::f32, Device::cuda), DeviceError);
  CHECK_THROWS_WITH(Tensor::empty({2, 3}, DType::f32, Device::cuda), expected);
  CHECK_THROWS_WITH(Tensor::zeros({2}, DType::u8, Device::cuda), expected);
  Tensor t;
  CHECK_THROWS_WITH(t.ensure({4}, DType::i64, Device::cuda), expected);
  // A wrapped device address cannot be zeroed or cloned on the host either.
  float fake[4];
  Tensor w = Tensor::wrap(fake, {4}, DType::f32, Device::cuda);
  CHECK_THROWS_WITH(w.zero(), expected);
  CHECK_THROWS_WITH(w.clone(), expected);
}

TEST_CASE("device: cuda tensors allocate, zero, clone and release through the installed allocator",
          "[sdk][tensor]") {
  RecordingAllocator alloc;
  {
    Installed installed(&alloc);
    CHECK(device_allocator(Device::cuda) == &alloc);
    CHECK(device_allocator(Device::cpu) == nullptr);
    Tensor t = Tensor::zeros({8}, DType::f32, Device::cuda);
    CHECK(t.device() == Device::cuda);
    CHECK(alloc.allocations == 1);
    CHECK(alloc.zeros == 1);
    Tensor c = t.clone();
    CHECK(c.device() == Device::cuda);
    CHECK(alloc.copies == 1);
    CHECK(alloc.allocations == 2);
    // ensure() reuses device storage it owns alone, and never moves it to the host.
    void* before = c.raw();
    c.ensure({2, 4}, DType::i32, Device::cuda);
    CHECK(c.raw() == before);
    c.ensure({2}, DType::i32, Device::cpu);
    CHECK(c.device() == Device::cpu);
    CHECK(alloc.releases == 1);
  }
  CHECK(alloc.releases == 2);
}

TEST_CASE("device: expect_host() refuses device tensors with the device named", "[sdk][tensor]") {
  float fake[2];
  Tensor d = Tensor::wrap(fake, {2}, DType::f32, Device::cuda);
  CHECK_THROWS_WITH(expect_host(d, "knn (embeddings)"),
                    "knn (embeddings): expected a tensor on the cpu, got one on cuda (copy it to the host first)");
  CHECK_NOTHROW(expect_host(Tensor::empty({2}, DType::f32), "x"));
}

TEST_CASE("device: adopt() owns foreign storage and checks its size", "[sdk][tensor]") {
  bool released = false;
  {
    std::shared_ptr<void> storage(std::malloc(64), [&](void* p) {
      released = true;
      std::free(p);
    });
    Tensor t = Tensor::adopt(storage, 64, {16}, DType::f32);
    storage.reset();
    CHECK(t.capacity() == 64);
    t.data<float>()[15] = 1.0f;
    CHECK_THROWS_WITH(Tensor::adopt(nullptr, 0, {1}, DType::f32),
                      "Tensor::adopt: 0 bytes of storage for a f32 tensor of shape [1] (4 bytes)");
    CHECK_FALSE(released);
  }
  CHECK(released);
}
