#include "random_apply.hpp"

#include <contra/plugin.hpp>

CONTRA_PLUGIN_LIBRARY(CONTRA_AUGMENTATION(contra::plugins::RandomApply))
