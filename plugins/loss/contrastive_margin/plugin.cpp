#include "contrastive_margin.hpp"

#include <contra/plugin.hpp>

CONTRA_PLUGIN_LIBRARY(CONTRA_LOSS(contra::plugins::ContrastiveMargin))
