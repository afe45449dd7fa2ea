#pragma once
/// \file
/// python: a loss written in Python (README.md): a class named in the
/// pipeline, called once per step with the batch as numpy arrays or torch
/// tensors; it returns the value and dL/dz, or a torch scalar that autograd
/// differentiates.

#include "../../python_host/python_host.hpp"

#include <contra/roles/loss.hpp>
#include <contra/schema.hpp>

namespace contra::plugins {

class PythonLoss final : public contra::Loss {
 public:
  static contra::Schema schema();
  /// Imports the module and makes the instance (python_host.hpp says what
  /// is refused, and how).
  explicit PythonLoss(const contra::Params& p);
  void compute(const contra::Embeddings& z, const contra::Pairs& pairs, contra::LossResult& out) override;

 private:
  contra::python_host::PythonObject object_;
};

}  // namespace contra::plugins
