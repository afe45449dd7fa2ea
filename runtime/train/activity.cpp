#include "train/activity.hpp"

namespace contra::runtime {

Activity*& current_activity() {
  thread_local Activity* activity = nullptr;
  return activity;
}

}  // namespace contra::runtime
