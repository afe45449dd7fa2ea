#include "assembly/pipeline_device.hpp"

#include "device/cuda_library.hpp"

#include <contra/errors.hpp>

#include <optional>

namespace contra::runtime {

void require_device(const PipelineSpec& spec) {
  if (pipeline_device(spec) != Device::cuda) return;
  const std::string why = cuda_unusable_reason("[train] device = \"cuda\"");
  if (!why.empty())
    throw DeviceError(Diagnostic{pipeline_device_location(spec), "train.device", "\"cuda\", but " + why}.str());
  set_cuda_math_mode(cuda_math_mode(train_precision_name(spec)));
}

void require_pipeline_device(const std::string& file, const std::vector<std::string>& overrides) {
  Diagnostics ignored;  // load_pipeline() reports them
  std::optional<PipelineSpec> spec = read_pipeline(file, overrides, ignored);
  if (spec) require_device(*spec);
}

}  // namespace contra::runtime
