#pragma once
/// \file
/// python: a miner written in Python (README.md): a class named in the
/// pipeline, called once per step with the batch as numpy arrays or torch
/// tensors; it returns the pairs it picks as a dict of index arrays.

#include "../../python_host/python_host.hpp"

#include <contra/roles/miner.hpp>
#include <contra/schema.hpp>

namespace contra::plugins {

class PythonMiner final : public contra::Miner {
 public:
  static contra::Schema schema();
  /// Imports the module and makes the instance (python_host.hpp says what
  /// is refused, and how).
  explicit PythonMiner(const contra::Params& p);
  void mine(const contra::Embeddings& z, contra::Pairs& out) override;

 private:
  contra::python_host::PythonObject object_;
};

}  // namespace contra::plugins
