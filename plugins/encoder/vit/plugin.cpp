#include "vit.hpp"

#include <contra/plugin.hpp>

CONTRA_PLUGIN_LIBRARY(CONTRA_ENCODER(contra::plugins::VisionTransformer))
