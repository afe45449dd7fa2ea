#include <contra/batch_stats.hpp>

namespace contra {

namespace {

// Per thread: a train step installs its reducer on its own thread, and
// several steps (tests, in-process ranks) may run side by side.
thread_local BatchStatsReducer* installed = nullptr;

}  // namespace

BatchStatsReducer* batch_stats_reducer() noexcept { return installed; }

ScopedBatchStatsReducer::ScopedBatchStatsReducer(BatchStatsReducer* reducer) noexcept : previous_(installed) {
  installed = reducer;
}

ScopedBatchStatsReducer::~ScopedBatchStatsReducer() { installed = previous_; }

}  // namespace contra
