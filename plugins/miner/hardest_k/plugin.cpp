#include "hardest_k.hpp"

#include <contra/plugin.hpp>

CONTRA_PLUGIN_LIBRARY(CONTRA_MINER(contra::plugins::HardestK))
