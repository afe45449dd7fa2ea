#pragma once
// A pipeline's plugin object from its bound table: the one place a run,
// its evaluation and its augmentation chains create plugins.

#include "config/pipeline_spec.hpp"
#include "loader/registry.hpp"

#include <contra/errors.hpp>
#include <contra/guard.hpp>

#include <memory>

namespace contra::runtime {

/// Creates the plugin `ps` names (bound by bind_plugins()) as a `Role`;
/// anything its constructor throws becomes a PluginError naming its table.
template <class Role> std::shared_ptr<Role> make_plugin(const PluginRegistry& registry, const PluginSpec& ps) {
  const PluginRecord* rec = registry.find(ps.kind, ps.name, ps.device);
  if (!rec) throw PluginError(ps.label() + ": plugin not found");  // bind_plugins() reported it already
  return guarded(ps.label(), [&] { return registry.create<Role>(*rec, ps.params); });
}

}  // namespace contra::runtime
