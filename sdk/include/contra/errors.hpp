#pragma once
/// \file
/// The one error hierarchy. Everything a user can cause (a bad pipeline file,
/// a bad plugin, a bad data file, a missing device) is reported by throwing one
/// of these with a message that names the file, key or plugin, what was found
/// and what was expected.

#include <stdexcept>
#include <string>

namespace contra {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// A pipeline file or parameter is wrong.
class ConfigError : public Error {
 public:
  using Error::Error;
};

/// A plugin library cannot be loaded, or a plugin misbehaved.
class PluginError : public Error {
 public:
  using Error::Error;
};

/// A data file is missing, truncated or not of the expected format.
class DataError : public Error {
 public:
  using Error::Error;
};

/// A compute device is missing or failed.
class DeviceError : public Error {
 public:
  using Error::Error;
};

/// A plugin was used against its contract (wrong shape, dtype, call order).
class UsageError : public Error {
 public:
  using Error::Error;
};

}  // namespace contra
