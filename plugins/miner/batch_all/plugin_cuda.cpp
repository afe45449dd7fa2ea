#include "batch_all_cuda.hpp"

#include <contra/plugin.hpp>

CONTRA_PLUGIN_LIBRARY(CONTRA_MINER_CUDA(contra::plugins::BatchAllCuda))
