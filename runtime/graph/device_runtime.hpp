#pragma once
// The pipeline's compute device made ready before anything else runs.
// libcontra_cuda is loaded (dlopen) only here, only for [train] device =
// "cuda": CPU runs never map cuBLAS and cuDNN.

#include "config/pipeline_spec.hpp"

#include <contra/cuda.hpp>

#include <string>

namespace contra::cuda::detail {
struct CudaBridge;
}

namespace contra::runtime {

/// Nothing for a CPU pipeline. For [train] device = "cuda": loads
/// libcontra_cuda, requires a usable GPU and sets the process's math mode
/// from [train] precision (cuda_math_mode()); else throws DeviceError
///   "<file>:<line>:<col>: error: train.device: \"cuda\", but no usable GPU: <reason>"
/// or, in a build without CUDA,
///   "...: \"cuda\", but this build of contra has no CUDA support (built with
///   CONTRA_CUDA=OFF or without a CUDA compiler)".
void require_device(const PipelineSpec& spec);

/// The GPU math mode of a [train] precision: "f32" -> strict_f32 (results
/// match the CPU builds), "tf32" -> tf32 (TF32 tensor cores in cuBLAS and
/// cuDNN), "bf16" -> bf16 (matrix products on bf16 tensor cores; the encoders
/// also keep bf16 weights, f32 master copies).
cuda::MathMode cuda_math_mode(const std::string& precision);

/// Reads the pipeline (file and --set overrides) and require_device()s it.
/// A pipeline that cannot be read is left for load_pipeline() to report.
/// Cheap (no plugins are loaded): callers run it first, so that a missing
/// GPU is the first thing said.
void require_pipeline_device(const std::string& file, const std::vector<std::string>& overrides);

/// libcontra_cuda's function table, loaded on first call; nullptr with
/// `*error` set when this build has no CUDA or the library cannot be loaded.
const cuda::detail::CudaBridge* cuda_bridge(std::string* error = nullptr);

}  // namespace contra::runtime
