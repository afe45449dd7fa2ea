#pragma once
// An environment variable set for a scope, restored after it: e.g.
// CONTRA_MEMORY_AVAILABLE, so that the memory checks
// (contra/memory_budget.hpp) say the same figures on every machine.

#include <cstdlib>
#include <optional>
#include <string>
#include <utility>

namespace contra::test {

class ScopedEnv {
 public:
  ScopedEnv(std::string name, const std::string& value) : name_(std::move(name)) {
    if (const char* old = std::getenv(name_.c_str())) old_ = old;
    ::setenv(name_.c_str(), value.c_str(), 1);
  }
  ~ScopedEnv() {
    if (old_) ::setenv(name_.c_str(), old_->c_str(), 1);
    else ::unsetenv(name_.c_str());
  }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  std::string name_;
  std::optional<std::string> old_;
};

}  // namespace contra::test
