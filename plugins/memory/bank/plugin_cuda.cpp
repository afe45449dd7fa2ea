#include "bank_cuda.hpp"

#include <contra/plugin.hpp>

CONTRA_PLUGIN_LIBRARY(CONTRA_MEMORY_CUDA(contra::plugins::MemoryBankCuda))
