#include "neighbor_batches.hpp"

#include <contra/plugin.hpp>

CONTRA_PLUGIN_LIBRARY(CONTRA_SAMPLER(contra::plugins::NeighborBatchesSampler))
