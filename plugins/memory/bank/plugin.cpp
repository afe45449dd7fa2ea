#include "bank.hpp"

#include <contra/plugin.hpp>

CONTRA_PLUGIN_LIBRARY(CONTRA_MEMORY(contra::plugins::MemoryBank))
