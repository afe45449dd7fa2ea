#include "retrieval.hpp"

#include <contra/plugin.hpp>

CONTRA_PLUGIN_LIBRARY(CONTRA_EVALUATOR(contra::plugins::Retrieval))
