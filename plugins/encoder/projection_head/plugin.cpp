#include "projection_head.hpp"

#include <contra/plugin.hpp>

CONTRA_PLUGIN_LIBRARY(CONTRA_ENCODER(contra::plugins::ProjectionHead))
