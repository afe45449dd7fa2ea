#include "python_host.hpp"

#include <contra/errors.hpp>

#include <pybind11/embed.h>
#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include <dlfcn.h>

#include <cctype>
#include <cstring>
#include <filesystem>
#include <limits>
#include <mutex>
#include <utility>
#include <vector>

namespace contra::python_host {

namespace py = pybind11;

namespace {

// The contra CLI has no interpreter: start one, once, and let go of its lock
// so that the train stage's thread (or any other) can take it. In a process
// Python started (the contra module) it is there already.
void ensure_interpreter() {
  static std::once_flag once;
  std::call_once(once, [] {
    if (Py_IsInitialized()) return;
    // The plugin was loaded with RTLD_LOCAL, and libpython with it: its
    // symbols must be global for the extension modules Python loads
    // (numpy's, torch's) to find them.
    Dl_info info{};
    if (dladdr(reinterpret_cast<void*>(&Py_Initialize), &info) && info.dli_fname)
      dlopen(info.dli_fname, RTLD_NOW | RTLD_NOLOAD | RTLD_GLOBAL);
    py::initialize_interpreter(false);  // no signal handlers: Ctrl-C stays the runtime's
    PyEval_SaveThread();
  });
}

std::string located(const Params& p, const char* key, const std::string& message) {
  const std::string where = p.where(key).str().empty() ? p.table().str() : p.where(key).str();
  return (where.empty() ? std::string() : where + ": error: ") + p.prefix() + "." + key + ": " + message;
}

// "ValueError: message (file.py:12, in __call__)", from the error being handled.
std::string python_error(py::error_already_set& e) {
  std::string text = std::string(py::str(e.type().attr("__name__"))) + ": " + std::string(py::str(e.value()));
  try {
    if (e.trace()) {
      py::list frames = py::module_::import("traceback").attr("extract_tb")(e.trace());
      if (!frames.empty()) {
        py::object last = frames[frames.size() - 1];
        text += " (" + std::string(py::str(last.attr("filename"))) + ":" + std::string(py::str(last.attr("lineno"))) +
                ", in " + std::string(py::str(last.attr("name"))) + ")";
      }
    }
  } catch (const py::error_already_set&) {
  }
  return text;
}

// Arrays that view a tensor's storage: they keep it alive (a Tensor copy
// shares it), so an array kept past the call stays valid.
py::array view_of(const Tensor& t, bool writeable) {
  auto* keep = new Tensor(t);
  py::capsule owner(keep, [](void* p) { delete static_cast<Tensor*>(p); });
  std::vector<py::ssize_t> shape, strides;
  py::ssize_t stride = sizeof(float);
  for (int i = t.rank() - 1; i >= 0; --i) {
    shape.insert(shape.begin(), static_cast<py::ssize_t>(t.dim(i)));
    strides.insert(strides.begin(), stride);
    stride *= static_cast<py::ssize_t>(t.dim(i));
  }
  py::array a(py::dtype::of<float>(), shape, strides, const_cast<void*>(keep->raw()), owner);
  if (!writeable) a.attr("flags").attr("writeable") = false;
  return a;
}

template <class T> py::array copy_of(const std::vector<T>& v) {
  py::array_t<T> a(static_cast<py::ssize_t>(v.size()));
  if (!v.empty()) std::memcpy(a.mutable_data(), v.data(), v.size() * sizeof(T));
  return a;
}

py::array pair_array(const std::vector<std::pair<std::int32_t, std::int32_t>>& v) {
  py::array_t<std::int32_t> a({static_cast<py::ssize_t>(v.size()), py::ssize_t(2)});
  auto m = a.mutable_unchecked<2>();
  for (std::size_t i = 0; i < v.size(); ++i) m(i, 0) = v[i].first, m(i, 1) = v[i].second;
  return a;
}

}  // namespace

Schema& add_class_parameters(Schema& schema) {
  return schema.required<std::string>("module", "Python module holding the class (my_losses: my_losses.py)")
      .required<std::string>("class", "the class; the plugin calls class(**args) once, then the instance per step")
      .add<std::string>("path", "",
                        "folder searched first for the module (relative to the pipeline file); the pipeline's "
                        "own folder and PYTHONPATH come after it")
      .add<std::vector<std::string>>("args", {},
                                     "the class's keyword arguments, each \"NAME=VALUE\" with VALUE in TOML "
                                     "(\"temperature=0.2\", \"name='x'\")")
      .add<std::string>("tensors", "numpy",
                        "what the instance receives: numpy arrays, or torch tensors (python3-torch), where a loss "
                        "may return a scalar for autograd to differentiate")
      .choices({"numpy", "torch"});
}

struct PythonObject::Impl {
  std::string label, kind;
  bool torch = false;
  py::object instance, namespace_type, torch_module;

  // The batch as the instance sees it; z_torch is the leaf autograd
  // differentiates (torch mode).
  py::object batch(const Embeddings& z, const Pairs* pairs, py::object& z_torch) {
    auto tensor = [&](const Tensor& t, bool writeable) -> py::object {
      if (!t.defined()) return py::none();
      py::array a = view_of(t, writeable || torch);
      return torch ? torch_module.attr("from_numpy")(a) : py::object(a);
    };
    auto indices = [&](const std::vector<std::int64_t>* v) -> py::object {
      if (!v) return py::none();
      py::array a = copy_of(*v);
      return torch ? torch_module.attr("from_numpy")(a) : py::object(a);
    };
    py::dict fields;
    py::object zs = tensor(z.z, false);
    if (torch) {
      zs = zs.attr("requires_grad_")(true);
      z_torch = zs;
    }
    fields["z"] = zs;
    fields["sample"] = indices(z.sample);
    fields["label"] = indices(z.label);
    fields["ids"] = indices(z.ids);
    fields["views"] = z.views;
    // The step (SDK StepContext): a stochastic loss or miner seeds its own
    // generator from random_seed (numpy.random.default_rng(batch.random_seed)):
    // the same numbers at every rerun and resume of this step.
    if (z.context) {
      fields["step"] = z.context->step;
      fields["epoch"] = z.context->epoch;
      fields["seed"] = z.context->seed;
      fields["random_seed"] = z.context->random(0x505954484f4eull).next_u64();  // "PYTHON"
    } else {
      for (const char* key : {"step", "epoch", "seed", "random_seed"}) fields[key] = py::none();
    }
    fields["keys"] = tensor(z.keys, false);
    if (z.memory) {
      py::dict m;
      m["keys"] = tensor(z.memory->keys, false);
      m["ids"] = indices(z.memory->ids);
      m["labels"] = indices(z.memory->labels);
      fields["memory"] = namespace_type(**m);
    } else {
      fields["memory"] = py::none();
    }
    if (z.view_tower) {
      py::array towers = copy_of(*z.view_tower);
      fields["view_tower"] = torch ? torch_module.attr("from_numpy")(towers) : py::object(towers);
    } else {
      fields["view_tower"] = py::none();
    }
    if (pairs) {
      py::dict p;
      p["all"] = pairs->all;
      p["positive"] = pair_array(pairs->positive);
      p["negative"] = pair_array(pairs->negative);
      p["memory_negative"] = pair_array(pairs->memory_negative);
      py::array_t<std::int32_t> t({static_cast<py::ssize_t>(pairs->triplets.size()), py::ssize_t(3)});
      auto m = t.mutable_unchecked<2>();
      for (std::size_t i = 0; i < pairs->triplets.size(); ++i)
        m(i, 0) = pairs->triplets[i].anchor, m(i, 1) = pairs->triplets[i].positive,
        m(i, 2) = pairs->triplets[i].negative;
      p["triplets"] = t;
      // A miner's synthetic negatives (mochi's mixtures): constants.
      p["synthetic"] = tensor(pairs->synthetic, false);
      p["synthetic_negative"] = pair_array(pairs->synthetic_negative);
      fields["pairs"] = namespace_type(**p);
    }
    return namespace_type(**fields);
  }

  [[noreturn]] void fail(const std::string& what) const {
    throw PluginError("python " + kind + " '" + label + "': " + what);
  }

  double number(py::handle v, const char* what) const {
    try {
      if (torch && py::isinstance(v, torch_module.attr("Tensor"))) {
        if (py::int_(v.attr("numel")()).cast<long long>() != 1)
          fail(std::string(what) + " is a tensor of shape " + std::string(py::str(v.attr("shape"))) +
               ", expected one number");
        return v.attr("item")().cast<double>();
      }
      return py::float_(py::reinterpret_borrow<py::object>(v)).cast<double>();
    } catch (const py::error_already_set&) {
      fail(std::string(what) + " is " + std::string(py::str(py::type::of(v).attr("__name__"))) +
           ", expected a number");
    }
  }

  // A [rows, cols] float32 array from what the instance returned (numpy, a
  // torch tensor, nested lists).
  py::array_t<float, py::array::c_style | py::array::forcecast> matrix(py::handle v, const char* what) const {
    py::object x = py::reinterpret_borrow<py::object>(v);
    if (torch && py::isinstance(x, torch_module.attr("Tensor"))) x = x.attr("detach")().attr("cpu")().attr("numpy")();
    try {
      return py::array_t<float, py::array::c_style | py::array::forcecast>::ensure(x);
    } catch (const py::error_already_set&) {
      fail(std::string(what) + " is " + std::string(py::str(py::type::of(v).attr("__name__"))) +
           ", expected an array of numbers");
    }
  }

  void copy_grad(py::handle g, const Tensor& z, LossResult& out) const {
    auto a = matrix(g, "the gradient it returned");
    if (!a) fail("the gradient it returned is not an array of numbers");
    const std::int64_t rows = z.dim(0), cols = z.dim(1);
    if (a.ndim() != 2 || a.shape(0) != rows || a.shape(1) != cols) {
      std::string shape = "[";
      for (py::ssize_t i = 0; i < a.ndim(); ++i) shape += (i ? ", " : "") + std::to_string(a.shape(i));
      fail("returned a gradient of shape " + shape + "], expected " + Shape{rows, cols}.str() + " (dL/dz)");
    }
    out.grad.ensure(z.shape(), DType::f32);
    std::memcpy(out.grad.raw(), a.data(), static_cast<std::size_t>(rows * cols) * sizeof(float));
  }
};

PythonObject::PythonObject(const Params& p, const char* kind) : impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  m.kind = kind;
  const std::string module = p.get<std::string>("module"), cls = p.get<std::string>("class");
  m.label = module + "." + cls;
  m.torch = p.get<std::string>("tensors") == "torch";
  // NAME=VALUE entries, checked before anything of Python runs.
  std::vector<std::pair<std::string, std::string>> args;
  for (const std::string& entry : p.get<std::vector<std::string>>("args")) {
    const std::size_t eq = entry.find('=');
    std::string name = eq == std::string::npos ? entry : entry.substr(0, eq);
    while (!name.empty() && std::isspace(static_cast<unsigned char>(name.back()))) name.pop_back();
    bool identifier = !name.empty() && !std::isdigit(static_cast<unsigned char>(name[0]));
    for (char c : name) identifier = identifier && (std::isalnum(static_cast<unsigned char>(c)) || c == '_');
    if (eq == std::string::npos || !identifier)
      throw ConfigError(located(p, "args", "\"" + entry + "\" is not NAME=VALUE (a keyword argument of " + m.label +
                                               ", its value in TOML: \"temperature=0.2\")"));
    args.emplace_back(name, entry.substr(eq + 1));
  }
  std::vector<std::string> folders;
  if (!p.get<std::string>("path").empty()) folders.push_back(p.path("path"));
  if (!p.table().file.empty() && p.table().file.rfind("--set", 0) != 0) {
    std::error_code ec;
    const std::filesystem::path folder = std::filesystem::path(p.table().file).parent_path();
    const std::filesystem::path absolute = std::filesystem::absolute(folder.empty() ? "." : folder, ec);
    if (!ec) folders.push_back(absolute.lexically_normal().string());
  }

  ensure_interpreter();
  py::gil_scoped_acquire gil;
  try {
    m.namespace_type = py::module_::import("types").attr("SimpleNamespace");
    if (m.torch) {
      try {
        m.torch_module = py::module_::import("torch");
      } catch (py::error_already_set& e) {
        throw ConfigError(located(p, "tensors", "\"torch\" needs PyTorch (Debian's python3-torch): " +
                                                    python_error(e)));
      }
    }
    py::list path = py::module_::import("sys").attr("path");
    for (auto it = folders.rbegin(); it != folders.rend(); ++it)
      if (!path.contains(py::str(*it))) path.insert(0, py::str(*it));
    py::object mod;
    try {
      mod = py::module_::import("importlib").attr("import_module")(module);
    } catch (py::error_already_set& e) {
      if (e.matches(PyExc_ImportError))
        throw ConfigError(located(p, "module", "cannot import '" + module + "': " + python_error(e) +
                                                   " (searched first: " +
                                                   (folders.empty() ? std::string("PYTHONPATH") : folders.front()) +
                                                   ")"));
      m.fail("importing " + module + " raised " + python_error(e));
    }
    if (!py::hasattr(mod, cls.c_str()))
      throw ConfigError(located(p, "class", "module '" + module + "' (" +
                                                std::string(py::str(py::getattr(mod, "__file__", py::str("?")))) +
                                                ") has no '" + cls + "'"));
    py::dict kwargs;
    py::object parse = py::module_::import("tomllib").attr("loads");
    for (const auto& [name, value] : args) {
      try {
        kwargs[py::str(name)] = parse("v = " + value)["v"];
      } catch (py::error_already_set& e) {
        throw ConfigError(located(p, "args", "the value of " + name + " (\"" + value + "\") is not TOML: " +
                                                 python_error(e)));
      }
    }
    try {
      m.instance = mod.attr(cls.c_str())(**kwargs);
    } catch (py::error_already_set& e) {
      m.fail(cls + "(" + std::to_string(args.size()) + " arguments) raised " + python_error(e));
    }
  } catch (py::error_already_set& e) {
    m.fail(python_error(e));
  }
}

PythonObject::~PythonObject() {
  if (!Py_IsInitialized()) {
    // The interpreter went first (a process ending): nothing to give back.
    impl_->instance.release();
    impl_->namespace_type.release();
    impl_->torch_module.release();
    return;
  }
  py::gil_scoped_acquire gil;
  impl_.reset();
}

const std::string& PythonObject::label() const noexcept { return impl_->label; }

void PythonObject::compute_loss(const Embeddings& z, const Pairs& pairs, LossResult& out) {
  Impl& m = *impl_;
  py::gil_scoped_acquire gil;
  try {
    py::object z_torch;
    py::object batch = m.batch(z, &pairs, z_torch);
    py::object r;
    try {
      r = m.instance(batch);
    } catch (py::error_already_set& e) {
      m.fail("raised " + python_error(e));
    }
    py::object value = r, grad = py::none(), metrics = py::none();
    if (py::isinstance<py::tuple>(r) || py::isinstance<py::list>(r)) {
      py::sequence s = r;
      if (s.size() < 2 || s.size() > 3)
        m.fail("returned a sequence of " + std::to_string(s.size()) +
               " items, expected (value, grad) or (value, grad, metrics)");
      value = s[0];
      grad = s[1];
      if (s.size() == 3) metrics = s[2];
    }
    if (grad.is_none()) {
      // Only a value: with torch tensors, autograd gives dL/dz.
      const bool differentiable = m.torch && py::isinstance(value, m.torch_module.attr("Tensor")) &&
                                  value.attr("requires_grad").cast<bool>();
      if (!differentiable)
        m.fail(m.torch ? "returned a value that autograd cannot differentiate (no torch tensor computed from "
                         "batch.z); return a torch scalar computed from batch.z, or (value, grad)"
                       : "returned no gradient; with tensors = \"numpy\" return (value, dL/dz), or set tensors = "
                         "\"torch\" and return a scalar for autograd");
      try {
        value.attr("backward")();
      } catch (py::error_already_set& e) {
        m.fail("autograd failed: " + python_error(e));
      }
      py::object g = z_torch.attr("grad");
      if (g.is_none()) {
        out.grad.ensure(z.z.shape(), DType::f32);
        std::memset(out.grad.raw(), 0, out.grad.nbytes());
      } else {
        m.copy_grad(g, z.z, out);
      }
    } else {
      m.copy_grad(grad, z.z, out);
    }
    out.value = m.number(value, "the value it returned");
    out.metrics.clear();
    if (!metrics.is_none()) {
      if (!py::isinstance<py::dict>(metrics))
        m.fail("returned metrics of type " + std::string(py::str(py::type::of(metrics).attr("__name__"))) +
               ", expected a dict of name: number");
      for (auto [k, v] : py::dict(metrics))
        out.metrics.emplace_back(std::string(py::str(k)), m.number(v, ("metric '" + std::string(py::str(k)) + "'").c_str()));
    }
  } catch (py::error_already_set& e) {
    m.fail(python_error(e));
  }
}

void PythonObject::mine(const Embeddings& z, Pairs& out) {
  Impl& m = *impl_;
  py::gil_scoped_acquire gil;
  try {
    py::object unused;
    py::object batch = m.batch(z, nullptr, unused);
    py::object r;
    try {
      r = m.instance(batch);
    } catch (py::error_already_set& e) {
      m.fail("raised " + python_error(e));
    }
    if (r.is_none()) return;  // nothing mined
    if (!py::isinstance<py::dict>(r))
      m.fail("returned " + std::string(py::str(py::type::of(r).attr("__name__"))) +
             ", expected a dict of positive, negative, memory_negative, synthetic_negative ([P, 2] rows), "
             "triplets ([T, 3]), synthetic ([S, D]) or all");
    // Checked row indices, [N, width] (N may be 0), read in place.
    auto rows = [&](py::handle v, const std::string& key, py::ssize_t width) {
      py::object x = py::reinterpret_borrow<py::object>(v);
      if (m.torch && py::isinstance(x, m.torch_module.attr("Tensor"))) x = x.attr("detach")().attr("cpu")().attr("numpy")();
      py::array_t<std::int64_t, py::array::c_style | py::array::forcecast> a;
      try {
        a = py::array_t<std::int64_t, py::array::c_style | py::array::forcecast>::ensure(x);
      } catch (const py::error_already_set&) {
      }
      if (!a) m.fail("'" + key + "' is not an array of integers");
      if (a.size() > 0 && (a.ndim() != 2 || a.shape(1) != width))
        m.fail("'" + key + "' has " + std::to_string(a.ndim()) + " dimensions" +
               (a.ndim() == 2 ? " of width " + std::to_string(a.shape(1)) : std::string()) + ", expected [N, " +
               std::to_string(width) + "]");
      for (py::ssize_t i = 0; i < a.size(); ++i)
        if (a.data()[i] < 0 || a.data()[i] > std::numeric_limits<std::int32_t>::max())
          m.fail("'" + key + "' holds the row " + std::to_string(a.data()[i]) + ", outside [0, 2^31)");
      return a;
    };
    for (auto [k, v] : py::dict(r)) {
      const std::string key = py::str(k);
      if (key == "all") {
        out.all = py::bool_(py::reinterpret_borrow<py::object>(v)).cast<bool>();
      } else if (key == "positive" || key == "negative" || key == "memory_negative" ||
                 key == "synthetic_negative") {
        auto& list = key == "positive"          ? out.positive
                     : key == "negative"        ? out.negative
                     : key == "memory_negative" ? out.memory_negative
                                                : out.synthetic_negative;
        const auto a = rows(v, key, 2);
        const std::int64_t* x = a.data();
        for (py::ssize_t i = 0; i + 1 < a.size(); i += 2)
          list.emplace_back(static_cast<std::int32_t>(x[i]), static_cast<std::int32_t>(x[i + 1]));
      } else if (key == "triplets") {
        const auto a = rows(v, key, 3);
        const std::int64_t* x = a.data();
        for (py::ssize_t i = 0; i + 2 < a.size(); i += 3)
          out.triplets.push_back({static_cast<std::int32_t>(x[i]), static_cast<std::int32_t>(x[i + 1]),
                                  static_cast<std::int32_t>(x[i + 2])});
      } else if (key == "synthetic") {
        // [S, D] rows of the embeddings' width, copied (the runtime checks the width).
        const auto a = m.matrix(v, "'synthetic'");
        if (!a || a.ndim() != 2) m.fail("'synthetic' is not an [S, D] array of numbers");
        out.synthetic = Tensor::empty({a.shape(0), a.shape(1)}, DType::f32);
        std::memcpy(out.synthetic.raw(), a.data(), out.synthetic.nbytes());
      } else {
        m.fail("returned the key '" + key + "'; a miner returns positive, negative, memory_negative, "
               "synthetic_negative, triplets, synthetic or all");
      }
    }
  } catch (py::error_already_set& e) {
    m.fail(python_error(e));
  }
}

}  // namespace contra::python_host
