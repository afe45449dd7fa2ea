#include "class_balanced.hpp"

#include <contra/plugin.hpp>

CONTRA_PLUGIN_LIBRARY(CONTRA_SAMPLER(contra::plugins::ClassBalancedSampler))
