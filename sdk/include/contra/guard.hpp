#pragma once
/// \file
/// Calling code that may throw anything (a plugin, a user's callback) and
/// reporting what it threw as one contra error with context, whatever its
/// type: the `catch (const std::exception&)` / `catch (...)` pair written once.

#include <contra/errors.hpp>

#include <exception>
#include <string>
#include <utility>

namespace contra {

/// What a thrown exception says: its what(), or, for something that is no
/// std::exception, "it threw something that is not a std::exception".
/// Meant for a catch (...) block, where it names the exception being
/// handled; outside one it returns "no exception".
inline std::string current_exception_message() {
  if (!std::current_exception()) return "no exception";
  try {
    throw;
  } catch (const std::exception& e) {
    return e.what();
  } catch (...) {
    return "it threw something that is not a std::exception";
  }
}

/// f(), with anything it throws rethrown as Error(context + ": " +
/// current_exception_message()), e.g.
///   guarded("loss 'info_nce': compute()", [&] { loss.compute(z, pairs, out); });
/// Error is PluginError unless named: guarded<ConfigError>(...).
template <class Error = PluginError, class F>
decltype(auto) guarded(const std::string& context, F&& f) {
  try {
    return std::forward<F>(f)();
  } catch (...) {
    throw Error(context + ": " + current_exception_message());
  }
}

}  // namespace contra
