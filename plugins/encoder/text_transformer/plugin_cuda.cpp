#include "text_transformer_cuda.hpp"

#include <contra/plugin.hpp>

CONTRA_PLUGIN_LIBRARY(CONTRA_ENCODER_CUDA(contra::plugins::TextTransformerCuda))
