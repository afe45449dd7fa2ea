#include "python_loss.hpp"

#include <contra/plugin.hpp>

CONTRA_PLUGIN_LIBRARY(CONTRA_LOSS(contra::plugins::PythonLoss))
