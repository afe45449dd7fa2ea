#include "color_jitter.hpp"

#include <contra/plugin.hpp>

CONTRA_PLUGIN_LIBRARY(CONTRA_AUGMENTATION(contra::plugins::ColorJitter))
