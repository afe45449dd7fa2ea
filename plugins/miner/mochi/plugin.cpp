#include "mochi.hpp"

#include <contra/plugin.hpp>

CONTRA_PLUGIN_LIBRARY(CONTRA_MINER(contra::plugins::Mochi))
