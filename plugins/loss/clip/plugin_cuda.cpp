#include "clip_cuda.hpp"

#include <contra/plugin.hpp>

CONTRA_PLUGIN_LIBRARY(CONTRA_LOSS_CUDA(contra::plugins::ClipCuda))
