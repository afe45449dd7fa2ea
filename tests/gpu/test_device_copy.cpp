// The to_device stage on a GPU: the copy of batch k+1 overlaps step k
// (measured with CUDA event timestamps), and the images arrive intact.
#include "cuda_bridge.hpp"
#include "graph/device_copy.hpp"
#include "graph/executor.hpp"

#include <contra/cuda.hpp>

#include "gpu_test.hpp"

#include <cublas_v2.h>

#include <algorithm>
#include <cstring>
#include <vector>

extern "C" const contra::cuda::detail::CudaBridge* contra_cuda_bridge();

using namespace contra;
using namespace contra::runtime;

TEST_CASE("device copy: the copy of batch k+1 overlaps step k on the GPU", "[runtime][gpu]") {
  CONTRA_REQUIRE_GPU();
  const cuda::detail::CudaBridge& bridge = *contra_cuda_bridge();
  // The slots (prefetch + 2 = 4) are each staged through a fresh pinned copy
  // the first time (faulting in and pinning 77 MB, tens of ms): overlap is
  // checked once every slot has had its first round.
  const int batches = 12, warm = 5;
  const Shape images{128, 3, 224, 224};  // 77 MB of f32: a few ms over PCIe
  const int n = 4096, products = 16;     // the "step": 16 sgemm of 4096^3, about 40 ms in strict f32 on an H100

  cuda::Stream train_stream;
  cuda::set_current_stream(train_stream.get());
  Tensor a = Tensor::zeros({n, n}, DType::f32, Device::cuda);
  Tensor b = Tensor::zeros({n, n}, DType::f32, Device::cuda);
  Tensor c = Tensor::zeros({n, n}, DType::f32, Device::cuda);
  cuda::Event origin(true);
  origin.record(train_stream.get());

  DeviceCopyStage copy(/*timing=*/true);
  std::vector<cuda::Event> step_start, step_end;
  for (int k = 0; k < batches; ++k) {
    step_start.emplace_back(true);
    step_end.emplace_back(true);
  }
  std::vector<float> copy_start(batches), copy_end(batches);
  std::vector<float> first_value(batches, -1.0f);

  int planned = 0;
  ExecutorStages s;
  s.plan = [&](BatchWork& w) {
    w.batch.step = planned;
    w.batch.ids = {planned};
    return planned++ < batches;
  };
  s.load = [](BatchWork&) {};
  s.augment = [&](BatchWork& w) {
    w.batch.images.ensure(images, DType::f32);
    float* p = w.batch.images.data<float>();
    std::fill(p, p + images.numel(), static_cast<float>(w.batch.step));
  };
  s.to_device = [&](BatchWork& w) { copy(w); };
  s.train = [&](BatchWork& w) {
    const auto k = w.batch.step;
    cuda::set_current_stream(train_stream.get());
    copy.wait(w, train_stream.get());
    step_start[k].record(train_stream.get());
    auto h = static_cast<cublasHandle_t>(cuda::cublas_handle());
    const float one = 1.0f, zero = 0.0f;
    for (int i = 0; i < products; ++i)
      REQUIRE(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, n, n, n, &one, a.data<float>(), n, b.data<float>(), n, &zero,
                          c.data<float>(), n) == CUBLAS_STATUS_SUCCESS);
    step_end[k].record(train_stream.get());
    copy.consumed(w, train_stream.get());
    // As a loss read back to the host would.
    step_end[k].synchronize();
    copy.release(w);
    auto [start, end] = copy.copy_window(w);
    copy_start[k] = bridge.event_elapsed_ms(origin.get(), start);
    copy_end[k] = bridge.event_elapsed_ms(origin.get(), end);
    Tensor row;
    cuda::copy_to_host(row, w.device_batch.images.rows(0, 1), train_stream.get());
    cuda::synchronize(train_stream.get());
    first_value[k] = row.data<float>()[row.numel() - 1];
  };
  s.sink = [](BatchWork&) {};
  // prefetch 2: batch k+1 is loaded, augmented and copied while step k runs.
  ExecutorReport r = run_graph(s, ExecutorOptions{2, 2, true});
  cuda::synchronize_device();
  cuda::set_current_stream(nullptr);
  REQUIRE(r.batches == batches);

  for (int k = 0; k < batches; ++k) {
    CHECK(first_value[k] == static_cast<float>(k));
    // The step started after its own copy ended (the event ordered them).
    CHECK(step_start[k].elapsed_ms_since(origin) >= copy_end[k]);
  }
  int overlapping = 0;
  for (int k = warm; k + 1 < batches; ++k) {
    float s0 = step_start[k].elapsed_ms_since(origin), s1 = step_end[k].elapsed_ms_since(origin);
    INFO("step " << k << " [" << s0 << ", " << s1 << "] ms, copy of batch " << k + 1 << " [" << copy_start[k + 1]
                 << ", " << copy_end[k + 1] << "] ms");
    bool overlaps = copy_start[k + 1] < s1 && copy_end[k + 1] > s0;
    CHECK(overlaps);
    overlapping += overlaps;
  }
  CHECK(overlapping == batches - 1 - warm);
  // After each slot's first round, augmentation wrote into pinned memory:
  // only the first use of a slot was staged through a host copy.
  CHECK(copy.staged_copies() <= max_batches_alive(2) + 1);
}
