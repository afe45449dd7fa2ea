#include "image_text.hpp"

#include <contra/plugin.hpp>

CONTRA_PLUGIN_LIBRARY(CONTRA_SOURCE(contra::plugins::ImageTextSource))
