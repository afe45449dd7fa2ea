#pragma once
// The stage watchdog: a stage that works on one batch for longer than
// [runtime] stage_timeout_s (a plugin that hangs, a deadlock) stops the run
// with the stage, the step and the plugin call named. A plugin call cannot be
// interrupted from outside, so the watchdog ends the process: the run folder
// says why, and its last checkpoint is what a resume continues from.

#include "train/activity.hpp"

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <list>
#include <mutex>
#include <string>
#include <thread>

namespace contra::runtime {

class StageWatchdog {
 public:
  /// Called once, on the watchdog's thread, with the message, when a stage
  /// outlives the limit; it must not return (it ends the process).
  using OnTimeout = std::function<void(const std::string& message)>;
  /// `limit_s` = 0: no watchdog (no thread). `setting` names the limit in
  /// messages.
  StageWatchdog(double limit_s, std::string setting, OnTimeout on_timeout);
  ~StageWatchdog();
  StageWatchdog(const StageWatchdog&) = delete;
  StageWatchdog& operator=(const StageWatchdog&) = delete;

  /// Watches the work of one stage on one batch, on this thread, for its
  /// scope; `watchdog` may be null (nothing is watched).
  class Watch {
   public:
    Watch(StageWatchdog* watchdog, const char* stage, std::string what, std::int64_t step);
    ~Watch();
    Watch(const Watch&) = delete;
    Watch& operator=(const Watch&) = delete;

   private:
    StageWatchdog* watchdog_;
    Activity activity_;
    Activity* outer_ = nullptr;
    std::list<Activity*>::iterator at_;
  };

  /// The message for an activity that has run `seconds`.
  std::string describe(const Activity& a, double seconds) const;

 private:
  void watch();

  double limit_s_;
  std::string setting_;
  OnTimeout on_timeout_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::list<Activity*> running_;
  std::thread thread_;
};

}  // namespace contra::runtime
