#pragma once
// The pipeline's compute device made ready before anything else runs: one
// decision from [train] device and precision, on top of runtime/device.

#include "config/pipeline_spec.hpp"

#include <string>
#include <vector>

namespace contra::runtime {

/// Nothing for a CPU pipeline. For [train] device = "cuda": loads
/// libcontra_cuda, requires a usable GPU and sets the process's math mode
/// from [train] precision (cuda_math_mode()); else throws DeviceError
///   "<file>:<line>:<col>: error: train.device: \"cuda\", but no usable GPU: <reason>"
/// or, in a build without CUDA,
///   "...: \"cuda\", but this build of contra has no CUDA support (built with
///   CONTRA_CUDA=OFF or without a CUDA compiler)".
void require_device(const PipelineSpec& spec);

/// Reads the pipeline (file and --set overrides) and require_device()s it.
/// A pipeline that cannot be read is left for load_pipeline() to report.
/// Cheap (no plugins are loaded): callers run it first, so that a missing
/// GPU is the first thing said.
void require_pipeline_device(const std::string& file, const std::vector<std::string>& overrides);

}  // namespace contra::runtime
