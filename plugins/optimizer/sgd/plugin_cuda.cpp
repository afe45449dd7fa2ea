#include "sgd_cuda.hpp"

#include <contra/plugin.hpp>

CONTRA_PLUGIN_LIBRARY(CONTRA_OPTIMIZER_CUDA(contra::plugins::SgdCuda))
