#include <contra/roles/plugin.hpp>

namespace contra {

Plugin::~Plugin() = default;

const char* kind_name(PluginKind k) noexcept {
  switch (k) {
    case PluginKind::source: return "source";
    case PluginKind::augmentation: return "augmentation";
    case PluginKind::sampler: return "sampler";
    case PluginKind::encoder: return "encoder";
    case PluginKind::miner: return "miner";
    case PluginKind::loss: return "loss";
    case PluginKind::optimizer: return "optimizer";
    case PluginKind::memory: return "memory";
    case PluginKind::evaluator: return "evaluator";
    case PluginKind::tokenizer: return "tokenizer";
    case PluginKind::text_augmentation: return "text_augmentation";
  }
  return "unknown";
}

}  // namespace contra
