#include "bytes.hpp"

#include <contra/plugin.hpp>

CONTRA_PLUGIN_LIBRARY(CONTRA_TOKENIZER(contra::plugins::BytesTokenizer))
