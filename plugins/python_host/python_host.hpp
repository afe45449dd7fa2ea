#pragma once
// Not a plugin: what the `python` loss and miner share (README.md here). A
// Python class named in a pipeline, its instance, and the batch handed to it
// as numpy arrays (or torch tensors) that view contra's memory. Works in a
// process that Python started (the contra module: the interpreter is there)
// and in one it did not (the contra CLI: the interpreter is started once,
// then its lock released so that any thread may take it).

#include <contra/roles/loss.hpp>
#include <contra/roles/miner.hpp>
#include <contra/schema.hpp>

#include <memory>
#include <string>

namespace contra::python_host {

/// The parameters both plugins declare (module, class, path, args,
/// tensors), added to `schema`.
Schema& add_class_parameters(Schema& schema);

/// An instance of the pipeline's Python class. Every call takes the
/// interpreter lock itself.
class PythonObject {
 public:
  /// `kind`: "loss" or "miner", for messages. Imports the module (sys.path
  /// gets `path`, then the pipeline file's folder, first) and calls
  /// class(**args). Throws ConfigError naming the key for what the pipeline
  /// says wrong (an entry of args that is not NAME=VALUE), PluginError with
  /// the Python error, file and line otherwise.
  PythonObject(const Params& p, const char* kind);
  ~PythonObject();
  PythonObject(const PythonObject&) = delete;
  PythonObject& operator=(const PythonObject&) = delete;

  /// loss(batch): value and dL/dz into out (see README.md: (value, grad),
  /// (value, grad, metrics), or a torch scalar to differentiate).
  void compute_loss(const Embeddings& z, const Pairs& pairs, LossResult& out);
  /// miner(batch): the pairs it returns (a dict) into out.
  void mine(const Embeddings& z, Pairs& out);

  /// "my_losses.NTXent": how messages name it.
  const std::string& label() const noexcept;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace contra::python_host
