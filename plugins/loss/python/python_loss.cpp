#include "python_loss.hpp"

namespace contra::plugins {

contra::Schema PythonLoss::schema() {
  contra::Schema s("python",
                   "a loss written in Python: an instance of the pipeline's class, called with the batch each step "
                   "(numpy arrays or torch tensors), returns the value and dL/dz, or a torch scalar for autograd");
  return contra::python_host::add_class_parameters(s);
}

PythonLoss::PythonLoss(const contra::Params& p) : object_(p, "loss") {}

void PythonLoss::compute(const contra::Embeddings& z, const contra::Pairs& pairs, contra::LossResult& out) {
  object_.compute_loss(z, pairs, out);
}

}  // namespace contra::plugins
