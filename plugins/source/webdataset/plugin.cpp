#include "webdataset.hpp"

#include <contra/plugin.hpp>

CONTRA_PLUGIN_LIBRARY(CONTRA_SOURCE(contra::plugins::WebDatasetSource))
