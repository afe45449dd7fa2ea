#pragma once
// PyTorch autograd (float64) as the oracle of forward and backward passes:
// a test dumps inputs, parameters and its results into a folder as raw f32,
// runs a Python script on it with Debian's /usr/bin/python3, and reads what
// the script prints. Finite differences cannot check deep ReLU/max-pool
// networks or many layer shapes this tightly in float32; autograd can.
//
// Without python3-torch the tests skip ("SKIPPED: ..."), unless
// CONTRA_REQUIRE_TORCH=1 (set by .ci/run: tools/test.sh installs
// python3-torch), where they fail: a CI run never passes without its oracle.

#include "test_support.hpp"
#include "cli_runner.hpp"

#include <contra/tensor.hpp>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace contra::test {

inline bool torch_available() {
  static const bool yes = std::system("/usr/bin/python3 -c 'import torch' >/dev/null 2>&1") == 0;
  return yes;
}

/// True when the oracle can run. Otherwise reports a skip (or, when
/// CONTRA_REQUIRE_TORCH=1, a failure) and returns false.
inline bool torch_oracle_ready() {
  if (torch_available()) return true;
  const char* required = std::getenv("CONTRA_REQUIRE_TORCH");
  if (required && std::string(required) == "1")
    FAIL("python3-torch is not installed but CONTRA_REQUIRE_TORCH=1: the autograd oracle must run here "
         "(tools/install-deps.sh --test installs it)");
  WARN("SKIPPED: python3-torch not installed (apt-get install python3-torch, or tools/install-deps.sh --test)");
  return false;
}

/// Writes t's bytes to <dir>/<name>.bin.
inline void dump_tensor(const TempDir& dir, const std::string& name, const Tensor& t) {
  std::ofstream f(dir.file(name + ".bin"), std::ios::binary);
  f.write(static_cast<const char*>(t.raw()), static_cast<std::streamsize>(t.nbytes()));
}

/// A shape as the oracles read it: a JSON array of its dimensions.
inline nlohmann::json shape_json(const Shape& s) {
  nlohmann::json dims = nlohmann::json::array();
  for (int i = 0; i < s.rank(); ++i) dims.push_back(s[i]);
  return dims;
}

/// Runs `/usr/bin/python3 <source dir>/<script> <args>` and returns what it
/// printed (stdout and stderr); REQUIREs exit status 0.
inline std::string run_oracle(const std::string& script, const std::string& args) {
  const std::string cmd = "/usr/bin/python3 " CONTRA_SOURCE_DIR "/" + script + " " + args + " 2>&1";
  const CommandResult r = run_shell(cmd);
  INFO(cmd << "\n" << r.out);
  REQUIRE(r.status == 0);
  return r.out;
}

/// The figures an oracle printed: the last line of `out` that is a JSON
/// object (warnings may come before it); REQUIREs one.
inline nlohmann::json oracle_figures(const std::string& out) {
  nlohmann::json figures;
  std::size_t start = 0;
  while (start < out.size()) {
    const std::size_t end = std::min(out.find('\n', start), out.size());
    nlohmann::json line = nlohmann::json::parse(out.begin() + static_cast<std::ptrdiff_t>(start),
                                                out.begin() + static_cast<std::ptrdiff_t>(end), nullptr, false);
    if (line.is_object()) figures = std::move(line);
    start = end + 1;
  }
  INFO(out);
  REQUIRE(figures.is_object());
  return figures;
}

}  // namespace contra::test
