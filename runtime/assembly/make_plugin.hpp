#pragma once
// A pipeline's plugin object from its bound table: the one place a run,
// its evaluation and its augmentation chains create plugins.

#include "config/pipeline_spec.hpp"
#include "loader/registry.hpp"

#include <contra/errors.hpp>
#include <contra/guard.hpp>
#include <contra/memory_budget.hpp>

#include <memory>
#include <new>

namespace contra::runtime {

/// Creates the plugin `ps` names (bound by bind_plugins()) as a `Role`;
/// anything its constructor throws becomes a PluginError naming its table,
/// std::bad_alloc too (the backstop behind the plugins' own memory checks,
/// contra/memory_budget.hpp): "out of memory (std::bad_alloc): the sizes its
/// table sets need more than this machine has, ...".
template <class Role> std::shared_ptr<Role> make_plugin(const PluginRegistry& registry, const PluginSpec& ps) {
  const PluginRecord* rec = registry.find(ps.kind, ps.name, ps.device);
  if (!rec) throw PluginError(ps.label() + ": plugin not found");  // bind_plugins() reported it already
  return guarded(ps.label(), [&] {
    try {
      return registry.create<Role>(*rec, ps.params);
    } catch (const std::bad_alloc&) {
      throw PluginError(out_of_memory_text());
    }
  });
}

}  // namespace contra::runtime
