#include "queue.hpp"

#include <contra/plugin.hpp>

CONTRA_PLUGIN_LIBRARY(CONTRA_MEMORY(contra::plugins::QueueMemory))
