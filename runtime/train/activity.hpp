#pragma once
// What a pipeline stage is running now, for the stage watchdog
// (graph/watchdog.hpp): a stage opens an Activity on its thread for each
// batch, and the calls into plugins made on that thread say which plugin and
// which call they are in, so that a stage that never returns is named.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>

namespace contra::runtime {

struct Activity {
  const char* stage = "";  ///< "load", "augment", "train"
  std::string what;        ///< the plugins the stage runs, for messages
  std::int64_t step = -1;
  std::chrono::steady_clock::time_point started = std::chrono::steady_clock::now();
  /// The plugin being called (its table label) and the call; null when none.
  /// The strings outlive the activity (the trainer's labels).
  std::atomic<const std::string*> plugin{nullptr};
  std::atomic<const char*> call{nullptr};
};

/// This thread's activity; null outside a watched stage.
Activity*& current_activity();

/// Says, to this thread's activity if there is one, that `plugin`'s `call`
/// runs now.
inline void entering_plugin(const std::string& plugin, const char* call) {
  if (Activity* a = current_activity()) {
    a->plugin.store(&plugin, std::memory_order_relaxed);
    a->call.store(call, std::memory_order_relaxed);
  }
}

}  // namespace contra::runtime
