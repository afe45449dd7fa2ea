#include "device/cuda_library.hpp"

#include "cuda_bridge.hpp"
#include "device/own_library.hpp"

#include <contra/errors.hpp>

#include <dlfcn.h>

#include <string>
#include <vector>

#ifndef CONTRA_CUDA_LIBRARY_NAME
#define CONTRA_CUDA_LIBRARY_NAME "libcontra_cuda.so"
#endif

namespace contra::runtime {

bool built_with_cuda() noexcept {
#ifdef CONTRA_HAVE_CUDA
  return true;
#else
  return false;
#endif
}

namespace {

struct LoadedBridge {
  const cuda::detail::CudaBridge* bridge = nullptr;
  std::string error;
};

LoadedBridge load_bridge() {
  LoadedBridge out;
  if (!built_with_cuda()) {
    out.error = "this build of contra has no CUDA support (built with CONTRA_CUDA=OFF or without a CUDA compiler)";
    return out;
  }
  std::string why;
  void* handle = open_own_library(CONTRA_CUDA_LIBRARY_NAME, RTLD_NOW | RTLD_LOCAL, why);
  if (!handle) {
    out.error = "cannot load " + std::string(CONTRA_CUDA_LIBRARY_NAME) + ": " + why;
    return out;
  }
  using Entry = const cuda::detail::CudaBridge* (*)();
  auto entry = reinterpret_cast<Entry>(dlsym(handle, CONTRA_CUDA_BRIDGE_SYMBOL));
  const cuda::detail::CudaBridge* b = entry ? entry() : nullptr;
  if (!b || b->version != cuda::detail::bridge_version) {
    out.error = std::string(CONTRA_CUDA_LIBRARY_NAME) + " is not the one this contra was built with (no matching '" +
                CONTRA_CUDA_BRIDGE_SYMBOL + "')";
    return out;
  }
  out.bridge = b;
  return out;
}

}  // namespace

const cuda::detail::CudaBridge* cuda_bridge(std::string* error) {
  static const LoadedBridge loaded = load_bridge();
  if (!loaded.bridge && error) *error = loaded.error;
  return loaded.bridge;
}

const cuda::detail::CudaBridge& require_cuda_bridge(const char* what) {
  std::string error;
  const cuda::detail::CudaBridge* b = cuda_bridge(&error);
  if (!b) throw DeviceError(std::string(what) + ", but " + error);
  return *b;
}

std::string cuda_unusable_reason(const char* who) {
  if (!built_with_cuda())
    return "this build of contra has no CUDA support (built with CONTRA_CUDA=OFF or without a CUDA compiler)";
  std::string error;
  const cuda::detail::CudaBridge* b = cuda_bridge(&error);
  if (!b) return "no usable GPU: " + error;
  if (!b->available()) return "no usable GPU: " + b->unavailable_reason();
  try {
    b->require(who);
  } catch (const std::exception& e) {
    return e.what();
  }
  return {};
}

void set_cuda_math_mode(cuda::MathMode mode) {
  if (const cuda::detail::CudaBridge* b = cuda_bridge()) b->set_math_mode(mode);
}

cuda::MathMode cuda_math_mode(const std::string& precision) {
  if (precision == "tf32") return cuda::MathMode::tf32;
  if (precision == "bf16") return cuda::MathMode::bf16;
  return cuda::MathMode::strict_f32;
}

}  // namespace contra::runtime
