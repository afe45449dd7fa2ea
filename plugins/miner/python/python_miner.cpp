#include "python_miner.hpp"

namespace contra::plugins {

contra::Schema PythonMiner::schema() {
  contra::Schema s("python",
                   "a miner written in Python: an instance of the pipeline's class, called with the batch each "
                   "step (numpy arrays or torch tensors), returns the pairs as a dict of row-index arrays");
  return contra::python_host::add_class_parameters(s);
}

PythonMiner::PythonMiner(const contra::Params& p) : object_(p, "miner") {}

void PythonMiner::mine(const contra::Embeddings& z, contra::Pairs& out) { object_.mine(z, out); }

}  // namespace contra::plugins
