#include <contra/batch_stats.hpp>
#include <contra/gradient_ready.hpp>

namespace contra {

namespace {

// Per thread: a train step installs its reducer on its own thread, and
// several steps (tests, in-process ranks) may run side by side.
thread_local BatchStatsReducer* installed = nullptr;
thread_local GradientReadyHook* installed_hook = nullptr;

}  // namespace

BatchStatsReducer* batch_stats_reducer() noexcept { return installed; }

ScopedBatchStatsReducer::ScopedBatchStatsReducer(BatchStatsReducer* reducer) noexcept : previous_(installed) {
  installed = reducer;
}

ScopedBatchStatsReducer::~ScopedBatchStatsReducer() { installed = previous_; }

GradientReadyHook* gradient_ready_hook() noexcept { return installed_hook; }

ScopedGradientReadyHook::ScopedGradientReadyHook(GradientReadyHook* hook) noexcept : previous_(installed_hook) {
  installed_hook = hook;
}

ScopedGradientReadyHook::~ScopedGradientReadyHook() { installed_hook = previous_; }

}  // namespace contra
