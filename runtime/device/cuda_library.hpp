#pragma once
// The device part of the runtime, below graph/ and train/: libcontra_cuda
// loaded (dlopen) on demand and reached through its bridge table
// (sdk/bridge/cuda_bridge.hpp), so CPU runs never map cuBLAS and cuDNN.
// Knows nothing of pipelines: runtime/assembly decides the device.

#include <contra/cuda.hpp>

#include <string>

namespace contra::cuda::detail {
struct CudaBridge;
}

namespace contra::runtime {

/// False when this build of contra has no CUDA support (CONTRA_CUDA=OFF, or
/// no CUDA compiler or cuDNN when it was configured).
bool built_with_cuda() noexcept;

/// libcontra_cuda's function table, loaded on first call; nullptr with
/// `*error` set when this build has no CUDA or the library cannot be loaded.
const cuda::detail::CudaBridge* cuda_bridge(std::string* error = nullptr);

/// The bridge, for `what` (e.g. "device tensors"); throws DeviceError
/// "<what>, but <why not>" when it cannot be loaded.
const cuda::detail::CudaBridge& require_cuda_bridge(const char* what);

/// Empty when a GPU is usable through libcontra_cuda (require()d for `who`,
/// which errors name); else why not, in a sentence that follows "but ".
std::string cuda_unusable_reason(const char* who);

/// The math mode of every later CUDA call of this process.
void set_cuda_math_mode(cuda::MathMode mode);

/// The GPU math mode of a [train] precision: "f32" -> strict_f32 (results
/// match the CPU builds), "tf32" -> tf32 (TF32 tensor cores in cuBLAS and
/// cuDNN), "bf16" -> bf16 (matrix products on bf16 tensor cores; the encoders
/// also keep bf16 weights, f32 master copies).
cuda::MathMode cuda_math_mode(const std::string& precision);

}  // namespace contra::runtime
