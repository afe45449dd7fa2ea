#pragma once
/// \file
/// Base of every plugin role, and what a plugin says about its threading.

#include <cstdint>

namespace contra {

enum class PluginKind : std::uint32_t {
  source = 1,
  augmentation = 2,
  sampler = 3,
  encoder = 4,
  miner = 5,
  loss = 6,
  optimizer = 7,
  memory = 8,
  evaluator = 9,
  tokenizer = 10,          ///< since SDK ABI 4
  text_augmentation = 11,  ///< since SDK ABI 4
};

/// "source", "augmentation", ...; "unknown" for values this SDK does not know.
const char* kind_name(PluginKind k) noexcept;

/// How the runtime may call a plugin's per-sample functions.
enum class Concurrency {
  parallel,  ///< stateless and thread-safe: called from many threads at once
  serial,    ///< called from one thread at a time
};

/// Every plugin object derives from this. Objects are created and destroyed
/// by the library that defines them; the runtime keeps that library loaded
/// while any of its objects lives.
class Plugin {
 public:
  virtual ~Plugin();
  Plugin() = default;
  Plugin(const Plugin&) = delete;
  Plugin& operator=(const Plugin&) = delete;
};

}  // namespace contra
