#include "graph/watchdog.hpp"

#include <algorithm>
#include <cstdio>

namespace contra::runtime {

StageWatchdog::StageWatchdog(double limit_s, std::string setting, OnTimeout on_timeout)
    : limit_s_(limit_s), setting_(std::move(setting)), on_timeout_(std::move(on_timeout)) {
  if (limit_s_ > 0) thread_ = std::thread([this] { watch(); });
}

StageWatchdog::~StageWatchdog() {
  if (!thread_.joinable()) return;
  {
    const std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  thread_.join();
}

std::string StageWatchdog::describe(const Activity& a, double seconds) const {
  const std::string* plugin = a.plugin.load(std::memory_order_relaxed);
  const char* call = a.call.load(std::memory_order_relaxed);
  const std::string who = plugin && call ? *plugin + ": " + call : a.what;
  char figures[128];
  std::snprintf(figures, sizeof figures, " has not returned after %.0f s (over %s = %g s)", seconds, setting_.c_str(),
                limit_s_);
  // "(step N)" as the stages' own errors say it.
  return std::string(a.stage) + " stage (step " + std::to_string(a.step) + "): " + who + figures +
         "; the run stops, and a resume continues from its last checkpoint";
}

void StageWatchdog::watch() {
  // Checked ten times per limit (at most once a second): a hang is said
  // within 10% of the limit, or a second.
  const auto period = std::chrono::duration<double>(std::min(1.0, limit_s_ / 10));
  std::unique_lock<std::mutex> lock(mutex_);
  while (!stopping_) {
    wake_.wait_for(lock, period);
    const auto now = std::chrono::steady_clock::now();
    for (const Activity* a : running_) {
      const double seconds = std::chrono::duration<double>(now - a->started).count();
      if (seconds > limit_s_) {
        const std::string message = describe(*a, seconds);
        lock.unlock();
        on_timeout_(message);
        return;  // only if on_timeout returned, against its contract
      }
    }
  }
}

StageWatchdog::Watch::Watch(StageWatchdog* watchdog, const char* stage, std::string what, std::int64_t step)
    : watchdog_(watchdog && watchdog->thread_.joinable() ? watchdog : nullptr) {
  if (!watchdog_) return;
  activity_.stage = stage;
  activity_.what = std::move(what);
  activity_.step = step;
  outer_ = current_activity();
  current_activity() = &activity_;
  const std::lock_guard<std::mutex> lock(watchdog_->mutex_);
  at_ = watchdog_->running_.insert(watchdog_->running_.end(), &activity_);
}

StageWatchdog::Watch::~Watch() {
  if (!watchdog_) return;
  current_activity() = outer_;
  const std::lock_guard<std::mutex> lock(watchdog_->mutex_);
  watchdog_->running_.erase(at_);
}

}  // namespace contra::runtime
