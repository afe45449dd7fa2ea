// libcontra_cuda on a real GPU. Every case but the first is [gpu] and skips
// where no GPU is usable.
#include "cuda_bridge.hpp"

#include <contra/cuda.hpp>
#include <contra/device.hpp>

#include "gpu_test.hpp"

#include <cublas_v2.h>
#include <cudnn.h>

#include <cstdint>
#include <cstring>
#include <limits>
#include <thread>
#include <vector>

extern "C" const contra::cuda::detail::CudaBridge* contra_cuda_bridge();

using namespace contra;

TEST_CASE("cuda: without a usable GPU, require() and cuda tensors say why", "[cuda]") {
  if (cuda::available()) {
    CHECK(cuda::unavailable_reason().empty());
    CHECK_FALSE(cuda::device_description().empty());
    return;
  }
  INFO(cuda::unavailable_reason());
  CHECK_FALSE(cuda::unavailable_reason().empty());
  CHECK_THROWS_WITH(cuda::require("the test"),
                    "no usable GPU: " + cuda::unavailable_reason() + " (needed by the test)");
  CHECK_THROWS_AS(Tensor::empty({4}, DType::f32, Device::cuda), DeviceError);
}

TEST_CASE("cuda: a tensor copied to the device and back is unchanged", "[cuda][gpu]") {
  CONTRA_REQUIRE_GPU();
  Tensor host = Tensor::empty({3, 1000}, DType::f32);
  for (std::int64_t i = 0; i < host.numel(); ++i) host.data<float>()[i] = 0.25f * static_cast<float>(i) - 7;
  cuda::Stream stream;
  Tensor dev;
  cuda::copy_to_device(dev, host, stream.get());
  CHECK(dev.device() == Device::cuda);
  CHECK(dev.shape() == host.shape());
  Tensor back;
  cuda::copy_to_host(back, dev, stream.get());
  cuda::synchronize(stream.get());
  REQUIRE(back.device() == Device::cpu);
  REQUIRE(back.shape() == host.shape());
  CHECK(std::memcmp(back.raw(), host.raw(), host.nbytes()) == 0);
}

TEST_CASE("cuda: zero() and clone() of a device tensor run on the device", "[cuda][gpu]") {
  CONTRA_REQUIRE_GPU();
  Tensor host = Tensor::empty({257}, DType::i32);
  for (int i = 0; i < 257; ++i) host.data<std::int32_t>()[i] = i + 1;
  Tensor dev;
  cuda::copy_to_device(dev, host, cuda::current_stream());
  Tensor copy = dev.clone();
  dev.zero();
  Tensor a, b;
  cuda::copy_to_host(a, dev, cuda::current_stream());
  cuda::copy_to_host(b, copy, cuda::current_stream());
  cuda::synchronize(cuda::current_stream());
  for (int i = 0; i < 257; ++i) {
    REQUIRE(a.data<std::int32_t>()[i] == 0);
    REQUIRE(b.data<std::int32_t>()[i] == i + 1);
  }
}

TEST_CASE("cuda: freed device memory is cached and reused", "[cuda][gpu]") {
  CONTRA_REQUIRE_GPU();
  cuda::synchronize_device();
  void* first = nullptr;
  {
    Tensor t = Tensor::empty({1 << 20}, DType::f32, Device::cuda);
    first = t.raw();
    CHECK(cuda::memory_stats().in_use >= (std::size_t{4} << 20));
  }
  auto before = cuda::memory_stats();
  CHECK(before.cached >= (std::size_t{4} << 20));
  Tensor again = Tensor::empty({1 << 20}, DType::f32, Device::cuda);
  CHECK(again.raw() == first);
  CHECK(cuda::memory_stats().cache_hits == before.cache_hits + 1);
}

TEST_CASE("cuda: pinned host tensors come back from the pool", "[cuda][gpu]") {
  CONTRA_REQUIRE_GPU();
  void* first = nullptr;
  {
    Tensor p = cuda::pinned_host_tensor({64, 64}, DType::u8);
    first = p.raw();
    std::memset(p.raw(), 7, p.nbytes());
  }
  std::size_t pool = cuda::pinned_pool_bytes();
  Tensor q = cuda::pinned_host_tensor({64, 64}, DType::u8);
  CHECK(q.raw() == first);
  CHECK(cuda::pinned_pool_bytes() == pool);
}

TEST_CASE("cuda: cuBLAS and cuDNN handles are per stream and bound to it", "[cuda][gpu]") {
  CONTRA_REQUIRE_GPU();
  void* h = cuda::cublas_handle();  // the null stream's (this thread's)
  void* d = cuda::cudnn_handle();
  REQUIRE(h != nullptr);
  REQUIRE(d != nullptr);
  CHECK(cuda::cublas_handle() == h);
  CHECK(cuda::cudnn_handle() == d);
  cuda::Stream s;
  cuda::set_current_stream(s.get());
  void* hs = cuda::cublas_handle();
  void* ds = cuda::cudnn_handle();
  CHECK(hs != h);  // the stream's own handles...
  CHECK(ds != d);
  CHECK(cuda::cublas_handle() == hs);  // ...kept for it
  cudaStream_t bound = nullptr;
  REQUIRE(cublasGetStream(static_cast<cublasHandle_t>(hs), &bound) == CUBLAS_STATUS_SUCCESS);
  CHECK(bound == static_cast<cudaStream_t>(s.get()));
  REQUIRE(cudnnGetStream(static_cast<cudnnHandle_t>(ds), &bound) == CUDNN_STATUS_SUCCESS);
  CHECK(bound == static_cast<cudaStream_t>(s.get()));
  // Another thread using the same stream gets the same handles.
  void* other = nullptr;
  std::thread([&] {
    cuda::set_current_stream(s.get());
    other = cuda::cublas_handle();
    cuda::set_current_stream(nullptr);
  }).join();
  CHECK(other == hs);
  cuda::set_current_stream(nullptr);
  CHECK(cuda::cublas_handle() == h);
}

TEST_CASE("cuda: the bridge counts NaN and Inf per stream, from any thread using it", "[cuda][gpu]") {
  CONTRA_REQUIRE_GPU();
  const cuda::detail::CudaBridge& bridge = *contra_cuda_bridge();
  cuda::Stream s;
  cuda::set_current_stream(s.get());
  Tensor host = Tensor::zeros({1000}, DType::f32);
  host.data<float>()[3] = std::numeric_limits<float>::quiet_NaN();
  host.data<float>()[700] = -std::numeric_limits<float>::infinity();
  host.data<float>()[999] = std::numeric_limits<float>::infinity();
  Tensor dev;
  cuda::copy_to_device(dev, host, s.get());
  CHECK(bridge.count_nonfinite(dev.raw(), dev.numel(), s.get()) == 3);
  CHECK(bridge.count_nonfinite(dev.raw(), 500, s.get()) == 1);  // the counter is reset per call
  // The train stage may run on any worker: the stream's counter serves them all.
  std::int64_t other = -1;
  std::thread([&] { other = bridge.count_nonfinite(dev.raw(), dev.numel(), s.get()); }).join();
  CHECK(other == 3);
  cuda::set_current_stream(nullptr);
}
