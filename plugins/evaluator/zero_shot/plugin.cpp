#include "zero_shot.hpp"

#include <contra/plugin.hpp>

CONTRA_PLUGIN_LIBRARY(CONTRA_EVALUATOR(contra::plugins::ZeroShot))
