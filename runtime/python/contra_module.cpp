// The Python module `contra` (its compiled part, contra._contra): validate
// and run pipelines, load a checkpoint's encoder and embed numpy arrays, list
// the plugins. Errors are Python exceptions with the CLI's messages.
// contra/__init__.py re-exports these and adds read_run().
#include "array_source.hpp"

#include "assembly/load_pipeline.hpp"
#include "assembly/pipeline_device.hpp"
#include "config/launch.hpp"
#include "config/pipeline_spec.hpp"
#include "device/device_ops.hpp"
#include "device/own_library.hpp"
#include "graph/evaluation.hpp"
#include "graph/pipeline_run.hpp"
#include "graph/run_record.hpp"
#include "loader/program_dir.hpp"
#include "loader/registry.hpp"

#include <contra/errors.hpp>
#include <contra/schema.hpp>
#include <contra/version.hpp>

#include <pybind11/functional.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <dlfcn.h>
#include <omp.h>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <cstring>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#ifndef CONTRA_PYTHON_BIN_FROM_MODULE
#define CONTRA_PYTHON_BIN_FROM_MODULE "../../../../bin"
#endif
#ifndef CONTRA_PYTHON_LIB_FROM_MODULE
#define CONTRA_PYTHON_LIB_FROM_MODULE "../../.."
#endif

namespace py = pybind11;
namespace fs = std::filesystem;
using namespace contra;
using namespace contra::runtime;
using contra::python::ArraySource;

namespace {

// The module stands in for the CLI's binary when the runtime looks for its
// plugins and libraries: the build tree's bin/ (build/python/contra/ →
// build/bin), or the installed one (<prefix>/<python dir>/contra →
// <prefix>/bin).
void find_program_dir() {
  Dl_info info{};
  if (!dladdr(reinterpret_cast<void*>(&find_program_dir), &info) || !info.dli_fname) return;
  const fs::path module_dir = fs::path(info.dli_fname).parent_path();
  std::error_code ec;
  struct Layout {
    const char *bin, *lib;
  };
  for (const Layout& l : {Layout{"../../bin", "../../lib"},
                          Layout{CONTRA_PYTHON_BIN_FROM_MODULE, CONTRA_PYTHON_LIB_FROM_MODULE}}) {
    const fs::path bin = (module_dir / l.bin).lexically_normal();
    if (fs::is_directory(bin / ".." / "plugins", ec) || fs::is_directory(bin / ".." / "lib" / "contra", ec)) {
      set_program_dir(bin);                                                          // the plugins
      set_own_library_dir((module_dir / l.lib).lexically_normal().string());  // libcontra_cuda, the backends
      return;
    }
  }
}

// --- Ctrl-C -----------------------------------------------------------------
// As in `contra run`: the first SIGINT stops the run after the batches in
// flight, with its final checkpoint (then KeyboardInterrupt); a second ends
// the process at once.
std::atomic<bool> interrupted{false};
extern "C" void on_interrupt(int sig) {
  if (interrupted.exchange(true)) std::_Exit(128 + sig);
}

struct InterruptScope {
  using Handler = void (*)(int);
  Handler previous = SIG_ERR;
  explicit InterruptScope(bool install) {
    interrupted = false;
    if (install) previous = std::signal(SIGINT, on_interrupt);
  }
  ~InterruptScope() {
    if (previous != SIG_ERR) std::signal(SIGINT, previous);
  }
};

bool on_main_thread() {
  return py::module_::import("threading").attr("current_thread")().is(
      py::module_::import("threading").attr("main_thread")());
}

py::dict figures_dict(const std::vector<std::pair<std::string, double>>& figures) {
  py::dict d;
  for (const auto& [k, v] : figures) d[py::str(k)] = v;
  return d;
}

// A tensor's storage handed to numpy without a copy: the array keeps it.
py::array_t<float> numpy_of(const Tensor& features) {
  auto* keep = new Tensor(features);
  py::capsule owner(keep, [](void* p) { delete static_cast<Tensor*>(p); });
  const auto n = static_cast<py::ssize_t>(features.dim(0)), d = static_cast<py::ssize_t>(features.dim(1));
  return py::array_t<float>({n, d}, {static_cast<py::ssize_t>(d * sizeof(float)), py::ssize_t(sizeof(float))},
                            keep->data<float>(), owner);
}

// --- validate ----------------------------------------------------------------

Diagnostics validation_diagnostics(const std::string& path, const std::vector<std::string>& overrides) {
  Diagnostics d;
  PluginRegistry registry;
  std::optional<PipelineSpec> spec = try_load_pipeline(path, overrides, registry, d);
  if (!spec) return d;
  // What `contra validate` runs next: every plugin created, the data opened,
  // the trainer built. Its errors name what failed, not a line.
  try {
    check_pipeline(*spec, registry);
  } catch (const Error& e) {
    d.push_back({SourceLocation{path, 0, 0}, "", e.what()});
  }
  return d;
}

// Diagnostics as (file, line, column, key, message, text) tuples;
// contra/__init__.py makes them contra.Diagnostic.
py::list validate(const std::string& path, const std::vector<std::string>& overrides) {
  Diagnostics d;
  {
    py::gil_scoped_release unlocked;
    d = validation_diagnostics(path, overrides);
  }
  py::list out;
  for (const Diagnostic& x : d) out.append(py::make_tuple(x.where.file, x.where.line, x.where.column, x.key, x.message, x.str()));
  return out;
}

// --- run ---------------------------------------------------------------------

py::dict run(const std::string& path, const std::vector<std::string>& overrides, std::optional<std::string> run_dir,
             bool record, std::optional<py::function> on_step) {
  const LaunchInfo launch = detect_launch();
  if (launch.size > 1)
    throw UsageError("contra.run() trains in this one process; a data-parallel run of " +
                     std::to_string(launch.size) + " ranks is started with `mpirun -np " +
                     std::to_string(launch.size) + " contra run FILE` (docs/distributed.md)");
  require_pipeline_device(path, overrides);
  PluginRegistry registry;
  PipelineSpec spec = load_pipeline(path, overrides, registry);

  RunOptions options;
  options.overrides = overrides;
  if (run_dir) options.run_dir = *run_dir;
  else if (record) options.run_dir = RunRecord::default_dir(spec).string();
  options.stop = &interrupted;
  // A callback that raises stops the run; the exception is raised again
  // once the run has ended (its records and final checkpoint written).
  std::optional<py::error_already_set> callback_error;
  if (on_step) {
    options.on_step = [&](const StepReport& r) {
      py::gil_scoped_acquire locked;
      if (callback_error) return;
      try {
        py::dict figures;
        figures["step"] = r.step + 1;  // as the console and metrics.jsonl number them
        figures["epoch"] = r.epoch;
        figures["total_steps"] = r.total_steps;
        figures["loss"] = r.loss;
        figures["lr"] = r.lr;
        figures["images_per_s"] = r.images_per_s;
        figures["time_s"] = r.elapsed_s;
        if (r.metrics) figures["metrics"] = figures_dict(*r.metrics);
        (*on_step)(figures);
      } catch (py::error_already_set& e) {
        callback_error = std::move(e);
        interrupted = true;
      }
    };
  }
  RunSummary s;
  {
    const InterruptScope scope(on_main_thread());
    py::gil_scoped_release unlocked;
    s = run_pipeline(spec, registry, options);
  }
  if (callback_error) throw std::move(*callback_error);
  if (interrupted) {
    PyErr_SetNone(PyExc_KeyboardInterrupt);
    throw py::error_already_set();
  }

  py::dict out;
  out["steps"] = s.steps;
  out["first_step"] = s.first_step;
  out["losses"] = py::array_t<double>(static_cast<py::ssize_t>(s.losses.size()), s.losses.data());
  out["images_per_s"] = s.images_per_s;
  out["wall_s"] = s.telemetry.wall_s;
  out["eval"] = figures_dict(s.eval);
  out["eval_error"] = s.eval_error;
  out["checkpoint"] = s.checkpoint;
  out["run_dir"] = options.run_dir;
  out["skipped_samples"] = s.skipped_samples;
  return out;
}

// --- Encoder -----------------------------------------------------------------

// A checkpoint's encoder with its pipeline, for embedding arrays.
class PyEncoder {
 public:
  static std::unique_ptr<PyEncoder> load(const std::string& path, std::optional<std::string> pipeline,
                                         const std::vector<std::string>& overrides) {
    auto e = std::unique_ptr<PyEncoder>(new PyEncoder());
    // A run folder (its latest checkpoint and pipeline.toml) or a checkpoint
    // file (its run folder's pipeline.toml, or `pipeline`), as `contra embed`.
    const RunRecord::CheckpointLocation where = RunRecord::locate_checkpoint(path);
    e->checkpoint_ = where.checkpoint;
    if (pipeline) e->pipeline_ = *pipeline;
    else if (!where.run_dir.empty()) e->pipeline_ = (where.run_dir / "pipeline.toml").string();
    else
      throw ConfigError(path + " is not in a run folder (RUN/checkpoints/); give the pipeline it was trained with: "
                        "Encoder.load(path, pipeline=FILE)");
    py::gil_scoped_release unlocked;
    e->spec_ = load_pipeline(e->pipeline_, overrides, e->registry_);
    e->loaded_ = load_checkpoint_encoder(e->spec_, e->registry_, e->checkpoint_);
    e->features_ = std::make_unique<FeatureExtractor>(e->spec_, e->registry_);
    e->settings_ = decode_settings(e->spec_);
    return e;
  }

  // uint8 images [N, H, W] or [N, H, W, C] (as sources decode them): through
  // [eval]'s chain, exactly as `contra embed`; float32 [N, ...] of the
  // encoder's input shape: straight into the encoder.
  py::array_t<float> embed(const py::array& images) {
    if (images.dtype().is(py::dtype::of<std::uint8_t>())) return embed_images(images);
    if (images.dtype().is(py::dtype::of<float>())) return embed_inputs(images);
    throw UsageError("Encoder.embed: expected uint8 images [N, H, W] or [N, H, W, C], or float32 encoder inputs "
                     "[N, " + input_shape().str().substr(1) + ", got an array of dtype " +
                     py::str(images.dtype()).cast<std::string>());
  }

  Shape input_shape() const { return loaded_.input; }
  std::int64_t output_dim() const { return loaded_.encoder->output_dim(); }
  std::int64_t step() const { return loaded_.step + 1; }
  const std::string& checkpoint() const { return checkpoint_; }
  const std::string& pipeline() const { return pipeline_; }

 private:
  PyEncoder() = default;

  py::array_t<float> embed_images(const py::array& any) {
    auto images = py::array_t<std::uint8_t, py::array::c_style>::ensure(any);  // a copy only when not C-contiguous
    if (!images || (images.ndim() != 3 && images.ndim() != 4) || images.shape(0) < 1)
      throw UsageError("Encoder.embed: expected uint8 images [N, H, W] or [N, H, W, C] with N >= 1, got shape " +
                       shape_text(any));
    ArraySource source(images.data(), images.shape(0), images.shape(1), images.shape(2),
                       images.ndim() == 4 ? images.shape(3) : 1);
    const ImageShape made = features_->chain_for(source.info()).output_format().shape;
    const Shape want = loaded_.input;
    if (want.rank() != 3 || made.channels != want[0] || made.height != want[1] || made.width != want[2])
      throw UsageError("Encoder.embed: [eval]'s chain makes images " + shape_text(any) + " into " +
                       Shape{made.channels, made.height, made.width}.str() + ", and the encoder was built for " +
                       want.str() + " (the training images' shape)");
    Tensor features;
    {
      py::gil_scoped_release unlocked;
      omp_set_num_threads(settings_.runtime.compute_threads);
      features = features_->embed(*loaded_.encoder, source, "Encoder.embed", false).features;
    }
    return numpy_of(features);
  }

  py::array_t<float> embed_inputs(const py::array& any) {
    auto inputs = py::array_t<float, py::array::c_style>::ensure(any);
    const Shape want = input_shape();
    bool fits = inputs && inputs.ndim() == static_cast<py::ssize_t>(want.rank() + 1) && inputs.shape(0) >= 1;
    for (std::int64_t i = 0; fits && i < want.rank(); ++i) fits = inputs.shape(i + 1) == want[i];
    if (!fits)
      throw UsageError("Encoder.embed: float32 inputs go straight into the encoder, which takes [N, " +
                       want.str().substr(1) + ", got shape " + shape_text(any));
    const std::int64_t n = inputs.shape(0), batch = settings_.eval.batch_size;
    Tensor out;
    {
      py::gil_scoped_release unlocked;
      omp_set_num_threads(settings_.runtime.compute_threads);
      const std::int64_t row = want.numel();
      for (std::int64_t begin = 0; begin < n; begin += batch) {
        const std::int64_t m = std::min(batch, n - begin);
        // A view of the caller's rows: no copy on the CPU.
        const Tensor rows =
            Tensor::wrap(const_cast<float*>(inputs.data()) + begin * row, batch_of(m, want), DType::f32);
        const Tensor& z = forward_host(rows);
        if (!out.defined()) out = Tensor::empty({n, z.dim(1)}, DType::f32);
        std::memcpy(out.data<float>() + begin * z.dim(1), z.raw(), z.nbytes());
      }
    }
    return numpy_of(out);
  }

  // The encoder's output for host rows, on the host.
  const Tensor& forward_host(const Tensor& rows) {
    const Tensor* input = &rows;
    if (settings_.train.device != Device::cpu) {
      device_ops::to_device_async(device_rows_, rows);
      input = &device_rows_;
    }
    const Tensor& z = loaded_.encoder->forward(*input, Mode::eval);
    device_ops::to_host_async(host_z_, z);  // on the host: z itself
    device_ops::finish(z.device());
    return host_z_;
  }

  // [m, one sample's shape...]
  static Shape batch_of(std::int64_t m, const Shape& one) {
    switch (one.rank()) {
      case 1: return {m, one[0]};
      case 2: return {m, one[0], one[1]};
      case 3: return {m, one[0], one[1], one[2]};
      case 4: return {m, one[0], one[1], one[2], one[3]};
      default: return {m, one[0], one[1], one[2], one[3], one[4]};
    }
  }

  static std::string shape_text(const py::array& a) {
    std::string s = "[";
    for (py::ssize_t i = 0; i < a.ndim(); ++i) s += (i ? ", " : "") + std::to_string(a.shape(i));
    return s + "]";
  }

  std::string checkpoint_, pipeline_;
  PluginRegistry registry_;
  PipelineSpec spec_;
  PipelineSettings settings_;
  CheckpointEncoder loaded_;
  std::unique_ptr<FeatureExtractor> features_;
  Tensor device_rows_, host_z_;
};

// --- plugins -----------------------------------------------------------------

py::object value_of(const Value& v) {
  return std::visit([](const auto& x) { return py::cast(x); }, v);
}

py::list plugins(const std::vector<std::string>& paths) {
  PluginRegistry registry;
  registry.include_device_builds();
  PipelineSpec none;
  for (const auto& p : paths) none.plugin_paths.emplace_back(p);
  {
    py::gil_scoped_release unlocked;
    scan_plugin_path(none, registry);
  }
  py::list out;
  for (const PluginRecord* r : registry.all()) {
    py::dict d;
    d["name"] = r->name;
    d["kind"] = kind_name(r->kind);
    d["device"] = device_name(r->device);
    d["library"] = r->library.string();
    d["summary"] = r->schema.summary();
    py::list params;
    for (const ParamSpec& p : r->schema.params()) {
      py::dict q;
      q["name"] = p.name;
      q["type"] = param_type_name(p.type);
      q["required"] = p.required;
      q["default"] = p.default_value ? value_of(*p.default_value) : py::none();
      q["min"] = p.min ? py::cast(*p.min) : py::none();
      q["max"] = p.max ? py::cast(*p.max) : py::none();
      q["choices"] = p.choices;
      q["help"] = p.help;
      params.append(q);
    }
    d["parameters"] = params;
    d["describe"] = r->schema.describe();
    out.append(d);
  }
  return out;
}

}  // namespace

PYBIND11_MODULE(_contra, m) {
  m.doc() = "contra: contrastive representation learning pipelines (the compiled part; import contra)";
  find_program_dir();
  m.attr("__version__") = CONTRA_SDK_VERSION_STRING;
  m.attr("sdk_abi_version") = CONTRA_SDK_ABI_VERSION;

  // The CLI's errors, as exceptions of the same names and messages. The
  // types are created once and never released: a static py::exception would
  // drop its reference in a C++ static destructor, after the interpreter
  // has finalised (a crash at exit, now and then).
  static PyObject* const error = PyErr_NewException("contra.Error", PyExc_Exception, nullptr);
  struct Kind {
    const char* name;
    PyObject* type;
  };
  static const Kind kinds[] = {{"ConfigError", PyErr_NewException("contra.ConfigError", error, nullptr)},
                               {"PluginError", PyErr_NewException("contra.PluginError", error, nullptr)},
                               {"DataError", PyErr_NewException("contra.DataError", error, nullptr)},
                               {"DeviceError", PyErr_NewException("contra.DeviceError", error, nullptr)},
                               {"UsageError", PyErr_NewException("contra.UsageError", error, nullptr)}};
  m.add_object("Error", py::handle(error));
  for (const Kind& k : kinds) m.add_object(k.name, py::handle(k.type));
  py::register_exception_translator([](std::exception_ptr thrown) {
    try {
      if (thrown) std::rethrow_exception(thrown);
    } catch (const ConfigError& e) {
      PyErr_SetString(kinds[0].type, e.what());
    } catch (const PluginError& e) {
      PyErr_SetString(kinds[1].type, e.what());
    } catch (const DataError& e) {
      PyErr_SetString(kinds[2].type, e.what());
    } catch (const DeviceError& e) {
      PyErr_SetString(kinds[3].type, e.what());
    } catch (const UsageError& e) {
      PyErr_SetString(kinds[4].type, e.what());
    } catch (const Error& e) {
      PyErr_SetString(error, e.what());
    }
  });

  m.def("_validate", &validate, py::arg("path"), py::arg("set") = std::vector<std::string>{},
        "What `contra validate PATH --set ...` checks, without running: the diagnostics (an empty list when the "
        "pipeline is valid).");
  m.def("run", &run, py::arg("path"), py::arg("set") = std::vector<std::string>{}, py::arg("run_dir") = py::none(),
        py::arg("record") = true, py::arg("on_step") = py::none(),
        "Run a pipeline as `contra run` does (recorded in run_dir, or the pipeline's default folder unless "
        "record=False); on_step(figures) is called after each step. Returns the run's summary.");
  m.def("plugins", &plugins, py::arg("paths") = std::vector<std::string>{},
        "Every plugin found (the default plugin folder, CONTRA_PLUGIN_PATH, then `paths`), with its schema.");

  py::class_<PyEncoder>(m, "Encoder", "A trained encoder from a checkpoint, for embedding arrays.")
      .def_static("load", &PyEncoder::load, py::arg("path"), py::arg("pipeline") = py::none(),
                  py::arg("set") = std::vector<std::string>{},
                  "A run folder (its latest checkpoint) or a checkpoint file; the pipeline is the run folder's "
                  "pipeline.toml unless given.")
      .def("embed", &PyEncoder::embed, py::arg("images"),
           "uint8 images [N, H, W] or [N, H, W, C] through [eval]'s chain (the numbers of `contra embed`), or "
           "float32 encoder inputs [N, ...]; returns float32 [N, D].")
      .def_property_readonly("input_shape",
                             [](const PyEncoder& e) {
                               std::vector<std::int64_t> dims;
                               for (std::int64_t i = 0; i < e.input_shape().rank(); ++i)
                                 dims.push_back(e.input_shape()[i]);
                               return py::tuple(py::cast(dims));
                             })
      .def_property_readonly("output_dim", &PyEncoder::output_dim)
      .def_property_readonly("step", &PyEncoder::step, "the steps trained before the checkpoint")
      .def_property_readonly("checkpoint", &PyEncoder::checkpoint)
      .def_property_readonly("pipeline", &PyEncoder::pipeline);
}
