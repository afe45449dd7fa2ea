#include "clip.hpp"

#include <contra/plugin.hpp>

CONTRA_PLUGIN_LIBRARY(CONTRA_LOSS(contra::plugins::Clip))
