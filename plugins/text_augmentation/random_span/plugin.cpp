#include "random_span.hpp"

#include <contra/plugin.hpp>

CONTRA_PLUGIN_LIBRARY(CONTRA_TEXT_AUGMENTATION(contra::plugins::RandomSpan))
