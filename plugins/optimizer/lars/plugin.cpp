#include "lars.hpp"

#include <contra/plugin.hpp>

CONTRA_PLUGIN_LIBRARY(CONTRA_OPTIMIZER(contra::plugins::Lars))
