#pragma once
/// \file
/// Conformance checks for plugin tests. Header-only, and independent of any
/// test framework: every check returns a `CheckResult` (passed or not, the
/// worst score, and a message saying what is wrong), so a Catch2 test reads
///
///     auto r = contra::testing::check_schema<MyLoss>();
///     INFO(r.message);
///     CHECK(r.ok);
///
/// and a GoogleTest or plain `main()` test uses the same fields.
///
/// What is here:
///   - schema: well formed, defaults (plus the values given for required
///     parameters) validate, and the plugin constructs from them
///     (`check_schema`);
///   - the built library: loads as the runtime loads it, with its manifest,
///     ABI version and schemas checked, and each plugin created and destroyed
///     (`check_library`);
///   - determinism: the same seed and inputs give the same output
///     (`check_deterministic` and one check per plugin kind:
///     `check_augmentation`, `check_source`, `check_sampler`, `check_miner`,
///     `check_loss`, `check_encoder_deterministic`, `check_tokenizer`,
///     `check_text_augmentation`);
///   - gradients by central finite differences: a loss's dL/dz
///     (`check_loss_gradient`), an encoder's dL/dx and dL/dθ
///     (`check_encoder_gradients`), anything with forward/backward
///     (`check_gradients`);
///   - inputs: `random_tensor`, `random_image`, `random_embeddings`.
///
/// Checks run on the calling thread. Nothing here is used by the runtime.

#include <contra/guard.hpp>
#include <contra/plugin.hpp>
#include <contra/rng.hpp>

#include <dlfcn.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <initializer_list>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

namespace contra::testing {

/// Outcome of one check.
struct CheckResult {
  bool ok = true;
  /// Gradient checks: the worst |analytic − numeric| / tolerance seen (≤ 1
  /// passes). Other checks: 0.
  double worst = 0.0;
  /// Empty when ok; otherwise every problem found, one per line.
  std::string message;
  /// Notes that do not fail the check (e.g. coordinates skipped next to a kink).
  std::string notes;

  explicit operator bool() const noexcept { return ok; }
  /// Records a failure.
  void fail(const std::string& line) {
    ok = false;
    if (!message.empty()) message += "\n";
    message += line;
  }
  void note(const std::string& line) {
    if (!notes.empty()) notes += "\n";
    notes += line;
  }
  /// Adds another check's failures (prefixed with `what`) and worst score.
  void merge(const CheckResult& other, const std::string& what = "") {
    worst = std::max(worst, other.worst);
    if (!other.ok) {
      std::istringstream lines(other.message);
      for (std::string line; std::getline(lines, line);) fail(what.empty() ? line : what + ": " + line);
    }
    if (!other.notes.empty()) note(what.empty() ? other.notes : what + ": " + other.notes);
  }
};

/// Values for a schema's required parameters (and any other to override).
using ParamValues = std::vector<std::pair<std::string, Value>>;

// ---------------------------------------------------------------------------
// Inputs

/// f32 tensor of `shape`, uniform in [lo, hi), from Rng(key, 0, 0, 0, 0).
inline Tensor random_tensor(const Shape& shape, std::uint64_t key, double lo = -1.0, double hi = 1.0) {
  Tensor t = Tensor::empty(shape, DType::f32);
  Rng rng(key, 0, 0, 0, 0);
  float* p = t.data<float>();
  for (std::int64_t i = 0; i < t.numel(); ++i) p[i] = static_cast<float>(rng.uniform(lo, hi));
  return t;
}

/// u8 HWC image with uniformly random pixels (what a source hands to an
/// augmentation).
inline Tensor random_image(std::int64_t height, std::int64_t width, std::int64_t channels, std::uint64_t key) {
  Tensor t = Tensor::empty({height, width, channels}, DType::u8);
  Rng rng(key, 0, 0, 0, 1);
  auto* p = t.data<std::uint8_t>();
  for (std::int64_t i = 0; i < t.numel(); ++i) p[i] = static_cast<std::uint8_t>(rng.integer(0, 255));
  return t;
}

/// A batch of embeddings that owns what `Embeddings` points to. Rows are
/// V views of N samples, row r = v·N + i (as the runtime lays them out).
struct EmbeddingBatch {
  Tensor z;                          ///< [V·N, D] f32
  std::vector<std::int64_t> sample;  ///< per row: i
  std::vector<std::int64_t> label;   ///< per row: class label; empty when unlabelled
  std::vector<std::int64_t> ids;     ///< per row: sample id in the source (1000 + i)
  std::int64_t views = 0;
  Tensor keys;                       ///< momentum keys [V·N, D] (with_momentum_keys()); undefined by default
  /// The step the embeddings belong to (Embeddings::context): step 0 of
  /// epoch 0, seed 1 unless a test sets another.
  StepContext context{0, 0, 1};
  /// The memory (with_memory()): keys, ids, labels; absent by default.
  Tensor memory_keys;
  std::vector<std::int64_t> memory_ids, memory_labels;
  MemoryView memory;
  bool has_memory = false;

  /// The view a miner or loss receives. Points into this object: keep it
  /// alive (and unmoved) while the view is used.
  Embeddings embeddings() const {
    Embeddings e;
    e.z = z;
    e.sample = &sample;
    e.label = label.empty() ? nullptr : &label;
    e.views = views;
    e.ids = &ids;
    e.keys = keys;
    e.memory = has_memory ? &memory : nullptr;
    e.context = &context;
    return e;
  }

  /// Momentum keys for every row: the row plus N(0, noise²) entries drawn
  /// from `seed` (a momentum encoder that lags a little).
  EmbeddingBatch& with_momentum_keys(std::uint64_t seed, double noise = 0.1) {
    keys = Tensor::empty(z.shape(), DType::f32);
    const float* src = z.data<float>();
    float* dst = keys.data<float>();
    Rng rng(seed, 1, 0, 0, 0);
    for (std::int64_t i = 0; i < z.numel(); ++i) dst[i] = src[i] + static_cast<float>(noise * rng.normal());
    return *this;
  }

  /// A memory of `size` keys of the batch's width (L2-normalised, normal
  /// entries from `seed`) with ids 2000 + k, except that the keys listed in
  /// `same_ids` take the id of that row (a key of the anchor's own sample)
  /// and those in `empty` the id -1 (a slot not yet filled); labels k %
  /// `classes` when `classes` > 0.
  EmbeddingBatch& with_memory(std::int64_t size, std::uint64_t seed,
                              const std::vector<std::pair<std::int64_t, std::int64_t>>& same_ids = {},
                              const std::vector<std::int64_t>& empty = {}, std::int64_t classes = 0) {
    const std::int64_t d = z.dim(1);
    memory_keys = Tensor::empty({size, d}, DType::f32);
    float* k = memory_keys.data<float>();
    memory_ids.assign(static_cast<std::size_t>(size), 0);
    memory_labels.clear();
    for (std::int64_t r = 0; r < size; ++r) {
      Rng rng(seed, 2, static_cast<std::uint64_t>(r), 0, 0);
      double norm = 0;
      for (std::int64_t c = 0; c < d; ++c) {
        k[r * d + c] = static_cast<float>(rng.normal());
        norm += static_cast<double>(k[r * d + c]) * k[r * d + c];
      }
      for (std::int64_t c = 0; c < d; ++c) k[r * d + c] = static_cast<float>(k[r * d + c] / std::sqrt(norm));
      memory_ids[static_cast<std::size_t>(r)] = 2000 + r;
      if (classes > 0) memory_labels.push_back(r % classes);
    }
    for (const auto& [key, row] : same_ids) memory_ids[static_cast<std::size_t>(key)] = ids[static_cast<std::size_t>(row)];
    for (std::int64_t key : empty) memory_ids[static_cast<std::size_t>(key)] = -1;
    memory = MemoryView{memory_keys, &memory_ids, classes > 0 ? &memory_labels : nullptr};
    has_memory = true;
    return *this;
  }
};

/// N samples × V views of D-dimensional embeddings, normal entries drawn from
/// `seed`; views of one sample are correlated (a shared component plus
/// noise), as an encoder's would be. `classes` > 0 adds labels i % classes.
/// With `normalize`, rows have unit length.
inline EmbeddingBatch random_embeddings(std::int64_t n, std::int64_t views, std::int64_t dim, std::uint64_t seed,
                                        std::int64_t classes = 0, bool normalize = false) {
  EmbeddingBatch b;
  b.views = views;
  b.z = Tensor::empty({views * n, dim}, DType::f32);
  float* z = b.z.data<float>();
  for (std::int64_t i = 0; i < n; ++i) {
    Rng base(seed, 0, static_cast<std::uint64_t>(i), 0, 0);
    std::vector<double> shared(static_cast<std::size_t>(dim));
    for (auto& s : shared) s = base.normal();
    for (std::int64_t v = 0; v < views; ++v) {
      Rng noise(seed, 0, static_cast<std::uint64_t>(i), static_cast<std::uint32_t>(v + 1), 0);
      float* row = z + (v * n + i) * dim;
      double norm = 0;
      for (std::int64_t d = 0; d < dim; ++d) {
        row[d] = static_cast<float>(shared[static_cast<std::size_t>(d)] + 0.5 * noise.normal());
        norm += static_cast<double>(row[d]) * row[d];
      }
      if (normalize && norm > 0)
        for (std::int64_t d = 0; d < dim; ++d) row[d] = static_cast<float>(row[d] / std::sqrt(norm));
    }
  }
  for (std::int64_t v = 0; v < views; ++v)
    for (std::int64_t i = 0; i < n; ++i) {
      b.sample.push_back(i);
      b.ids.push_back(1000 + i);
      if (classes > 0) b.label.push_back(i % classes);
    }
  return b;
}

// ---------------------------------------------------------------------------
// Comparisons

namespace detail {
inline std::string str(double v) {
  std::ostringstream os;
  os.precision(9);
  os << v;
  return os.str();
}
inline bool all_finite(const Tensor& t) {
  if (t.dtype() != DType::f32) return true;
  const float* p = t.data<float>();
  for (std::int64_t i = 0; i < t.numel(); ++i)
    if (!std::isfinite(p[i])) return false;
  return true;
}
}  // namespace detail

/// Byte-exact equality of two tensors (shape, dtype and contents).
inline CheckResult same_tensor(const Tensor& a, const Tensor& b, const std::string& what = "output") {
  CheckResult r;
  if (a.defined() != b.defined()) {
    r.fail(what + ": defined in one run and undefined in the other");
    return r;
  }
  if (!a.defined()) return r;
  if (a.shape() != b.shape() || a.dtype() != b.dtype()) {
    r.fail(what + ": " + dtype_name(a.dtype()) + " " + a.shape().str() + " in one run, " + dtype_name(b.dtype()) +
           " " + b.shape().str() + " in the other");
    return r;
  }
  const auto* pa = static_cast<const unsigned char*>(a.raw());
  const auto* pb = static_cast<const unsigned char*>(b.raw());
  for (std::size_t i = 0; i < a.nbytes(); ++i)
    if (pa[i] != pb[i]) {
      const std::size_t e = i / dtype_size(a.dtype());
      r.fail(what + ": differs between two runs with the same seed and inputs, first at element " +
             std::to_string(e) + " of " + std::to_string(a.numel()));
      break;
    }
  return r;
}

/// Equality of two miners' outputs.
inline CheckResult same_pairs(const Pairs& a, const Pairs& b, const std::string& what = "pairs") {
  CheckResult r;
  auto cmp = [&](bool equal, const char* field) {
    if (!equal) r.fail(what + ": " + field + " differs between two runs with the same inputs");
  };
  cmp(a.all == b.all, "all");
  cmp(a.positive == b.positive, "positive");
  cmp(a.negative == b.negative, "negative");
  cmp(a.memory_negative == b.memory_negative, "memory_negative");
  bool same_triplets = a.triplets.size() == b.triplets.size();
  for (std::size_t i = 0; same_triplets && i < a.triplets.size(); ++i)
    same_triplets = a.triplets[i].anchor == b.triplets[i].anchor &&
                    a.triplets[i].positive == b.triplets[i].positive &&
                    a.triplets[i].negative == b.triplets[i].negative;
  cmp(same_triplets, "triplets");
  return r;
}

/// Runs `produce` `runs` times (≥ 2) and checks every result equals the
/// first. `produce` returns a Tensor, Pairs, a std::vector or anything with
/// ==; each call should start from the same state (build a fresh plugin, or
/// use the same seed), which is what makes a run reproducible.
template <class F> CheckResult check_deterministic(F&& produce, int runs = 2, const std::string& what = "output") {
  CheckResult r;
  auto first = produce();
  for (int k = 1; k < std::max(2, runs); ++k) {
    auto again = produce();
    using T = std::decay_t<decltype(first)>;
    if constexpr (std::is_same_v<T, Tensor>) {
      r.merge(same_tensor(first, again, what));
    } else if constexpr (std::is_same_v<T, Pairs>) {
      r.merge(same_pairs(first, again, what));
    } else {
      if (!(first == again)) r.fail(what + ": differs between two runs with the same seed and inputs");
    }
    if (!r.ok) break;
  }
  return r;
}

// ---------------------------------------------------------------------------
// Schema

/// The schema is well formed (Schema::check_well_formed: unique names, help
/// texts, defaults inside their ranges and choices), its name is a lower-case
/// identifier, and bind(`values`) — the defaults plus `values` — validates.
/// Give `values` for every required parameter.
inline CheckResult check_schema(const Schema& schema, const ParamValues& values = {}) {
  CheckResult r;
  try {
    schema.check_well_formed();
  } catch (...) {
    r.fail(std::string("schema is malformed: ") + current_exception_message());
    return r;
  }
  const std::string& n = schema.name();
  bool ident = !n.empty() && (std::islower(static_cast<unsigned char>(n[0])) != 0);
  for (char c : n)
    ident = ident && (std::islower(static_cast<unsigned char>(c)) || std::isdigit(static_cast<unsigned char>(c)) ||
                      c == '_');
  if (!ident)
    r.fail("plugin name '" + n + "' is not a lower-case identifier ([a-z][a-z0-9_]*), which pipelines name it by");
  for (const auto& p : schema.params()) {
    bool given = std::any_of(values.begin(), values.end(), [&](const auto& v) { return v.first == p.name; });
    if (p.required && !given)
      r.fail("parameter '" + p.name + "' is required: pass a value for it to check_schema()");
  }
  if (!r.ok) return r;
  std::vector<RawParam> raw;
  for (const auto& [k, v] : values) raw.push_back({k, v, {}});
  Diagnostics d;
  schema.bind(raw, schema.name(), {}, d);
  for (const auto& diag : d) r.fail("bind: " + diag.str());
  return r;
}

/// check_schema(P::schema(), values), then constructs a P from the bound
/// parameters (its constructor must accept its own defaults).
template <class P> CheckResult check_schema(const ParamValues& values = {}) {
  CheckResult r;
  Schema s;
  try {
    s = P::schema();
  } catch (...) {
    r.fail(std::string("schema() threw: ") + current_exception_message());
    return r;
  }
  r = check_schema(s, values);
  if (!r.ok) return r;
  try {
    std::vector<RawParam> raw;
    for (const auto& [k, v] : values) raw.push_back({k, v, {}});
    Diagnostics d;
    Params params = s.bind(raw, s.name(), {}, d);
    P plugin(params);
    (void)plugin;
  } catch (...) {
    r.fail("constructor rejects the schema's defaults: " + std::string(current_exception_message()));
  }
  return r;
}

// ---------------------------------------------------------------------------
// The built library

/// Loads the plugin library at `path` the way the runtime does (RTLD_NOW, so
/// an unresolved symbol is an error here), reads its manifest and checks
/// magic, SDK ABI version and standard-library ABI against this SDK, then for
/// every plugin: its schema (check_schema), and create() + destroy() with the
/// defaults. Plugins with required parameters are created only when
/// `values` holds them (values are looked up by parameter name; unknown
/// names are ignored for plugins that do not declare them).
inline CheckResult check_library(const std::string& path, const ParamValues& values = {}) {
  CheckResult r;
  void* h = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!h) {
    const char* e = ::dlerror();
    r.fail("cannot load " + path + ": " + (e ? e : "unknown error"));
    return r;
  }
  std::unique_ptr<void, int (*)(void*)> lib(h, &::dlclose);
  void* sym = ::dlsym(h, CONTRA_MANIFEST_SYMBOL);
  if (!sym) {
    r.fail(path + " does not export '" CONTRA_MANIFEST_SYMBOL "' (declare its plugins with CONTRA_PLUGIN_LIBRARY)");
    return r;
  }
  const auto* m = static_cast<const LibraryManifest*>(*static_cast<const void* const*>(sym));
  if (!m || m->magic != manifest_magic) {
    r.fail(path + ": '" CONTRA_MANIFEST_SYMBOL "' does not point to a contra plugin manifest");
    return r;
  }
  if (m->abi_version != sdk_abi_version) {
    r.fail(path + " was built for SDK ABI " + std::to_string(m->abi_version) + ", this SDK is ABI " +
           std::to_string(sdk_abi_version));
    return r;
  }
  const std::string fp = m->build_fingerprint ? m->build_fingerprint : "";
  if (fp != CONTRA_BUILD_FINGERPRINT)
    r.note(path + " fingerprint '" + fp + "' differs from this test's '" CONTRA_BUILD_FINGERPRINT "'");
  if (m->plugin_count == 0) r.fail(path + " declares no plugin");
  for (std::size_t i = 0; i < m->plugin_count; ++i) {
    const PluginEntry& e = m->plugins[i];
    const std::string what = std::string(kind_name(e.kind)) + " plugin #" + std::to_string(i);
    if (std::strcmp(kind_name(e.kind), "unknown") == 0) {
      r.fail(what + ": unknown kind " + std::to_string(static_cast<unsigned>(e.kind)));
      continue;
    }
    Schema s;
    try {
      s = e.schema();
    } catch (...) {
      r.fail(what + ": schema() threw: " + current_exception_message());
      continue;
    }
    ParamValues mine;
    bool missing = false;
    for (const auto& p : s.params()) {
      auto it = std::find_if(values.begin(), values.end(), [&](const auto& v) { return v.first == p.name; });
      if (it != values.end()) mine.push_back(*it);
      else if (p.required) missing = true;
    }
    const std::string label = what + " '" + s.name() + "'";
    if (missing) {
      try {
        s.check_well_formed();
      } catch (...) {
        r.fail(label + ": schema is malformed: " + current_exception_message());
      }
      r.note(label + ": not created (required parameters without values)");
      continue;
    }
    CheckResult sr = check_schema(s, mine);
    r.merge(sr, label);
    if (!sr.ok) continue;
    Diagnostics d;
    std::vector<RawParam> raw;
    for (const auto& [k, v] : mine) raw.push_back({k, v, {}});
    Params params = s.bind(raw, s.name(), {}, d);
    try {
      Plugin* p = e.create(params);
      if (!p) r.fail(label + ": create() returned null");
      else e.destroy(p);
    } catch (...) {
      r.fail(label + ": create() with the defaults threw: " + current_exception_message());
    }
  }
  return r;
}

// ---------------------------------------------------------------------------
// Per-kind behaviour

/// An augmentation on `in` (u8 HWC, or f32 CHW after normalize): the output
/// has the format output_format() announced, the same Rng key gives the same
/// output, `in` is left untouched, and f32 outputs are finite.
inline CheckResult check_augmentation(const Augmentation& a, const Tensor& in, std::uint64_t seed = 1) {
  CheckResult r;
  ImageFormat fin;
  fin.dtype = in.dtype();
  fin.shape = in.dtype() == DType::u8 ? ImageShape{in.dim(0), in.dim(1), in.dim(2)}
                                       : ImageShape{in.dim(1), in.dim(2), in.dim(0)};
  ImageFormat fout;
  try {
    fout = a.output_format(fin);
  } catch (...) {
    r.fail(std::string("output_format() refused the input: ") + current_exception_message());
    return r;
  }
  const Tensor before = in.clone();
  auto run = [&](std::uint32_t view) {
    Tensor out;
    Rng rng(seed, 0, 7, view, 0);
    a.apply(in, out, rng);
    return out;
  };
  Tensor out;
  try {
    out = run(0);
  } catch (...) {
    r.fail(std::string("apply() threw: ") + current_exception_message());
    return r;
  }
  const Shape want = fout.dtype == DType::u8 ? Shape{fout.shape.height, fout.shape.width, fout.shape.channels}
                                             : Shape{fout.shape.channels, fout.shape.height, fout.shape.width};
  if (out.shape() != want || out.dtype() != fout.dtype)
    r.fail(std::string("apply() produced ") + dtype_name(out.dtype()) + " " + out.shape().str() +
           ", output_format() announced " + dtype_name(fout.dtype) + " " + want.str());
  if (!detail::all_finite(out)) r.fail("apply() produced NaN or Inf");
  r.merge(same_tensor(run(0), out, "apply() with the same Rng key"));
  r.merge(same_tensor(before, in, "the input (apply() must not modify it)"));
  return r;
}

namespace detail {
/// What is wrong with `v` as a tokenizer's vocabulary, or "".
inline std::string vocabulary_problem(const Vocabulary& v) {
  const std::int32_t specials[] = {v.pad, v.bos, v.eos, v.unk};
  if (v.size <= 4) return "size " + std::to_string(v.size) + " leaves no id beside pad, bos, eos and unk";
  for (std::int32_t id : specials)
    if (id < 0 || id >= v.size)
      return "special id " + std::to_string(id) + " lies outside the vocabulary [0, " + std::to_string(v.size) + ")";
  for (int a = 0; a < 4; ++a)
    for (int b = a + 1; b < 4; ++b)
      if (specials[a] == specials[b])
        return "pad, bos, eos and unk are not distinct (id " + std::to_string(specials[a]) + " is two of them)";
  return "";
}

/// Why `ids` cannot be a text's tokens in vocabulary `v`, or "": an id outside
/// [0, v.size), or pad, bos or eos, which only the runtime puts in a row.
inline std::string token_problem(const std::vector<std::int32_t>& ids, const Vocabulary& v) {
  for (std::int32_t id : ids) {
    if (id < 0 || id >= v.size)
      return "id " + std::to_string(id) + " lies outside the vocabulary [0, " + std::to_string(v.size) + ")";
    if (id == v.pad || id == v.bos || id == v.eos)
      return "holds the special id " + std::to_string(id) + " (pad, bos or eos: the runtime adds those)";
  }
  return "";
}

inline std::string quoted(const std::string& text) {
  constexpr std::size_t shown = 40;
  return "\"" + (text.size() > shown ? text.substr(0, shown) + "..." : text) + "\"";
}
}  // namespace detail

/// A tokenizer on `samples` (UTF-8 texts; add invalid UTF-8, empty and
/// unusual texts to cover what encode() must survive): its vocabulary has
/// distinct special ids inside it; encode() clears its output, never throws,
/// gives the same ids twice, and makes only ids of the vocabulary, never pad,
/// bos or eos; decode() of them does not throw and, where no id is unk, gives
/// a text that encodes to the same ids again; and encoding every sample from
/// `threads` threads at once gives the same ids as encoding them one by one.
inline CheckResult check_tokenizer(const Tokenizer& t, const std::vector<std::string>& samples, int threads = 4) {
  CheckResult r;
  const Vocabulary v = t.vocabulary();
  if (const std::string problem = detail::vocabulary_problem(v); !problem.empty()) {
    r.fail("vocabulary(): " + problem);
    return r;
  }
  // Left in `out` before each call: encode() must clear it.
  const std::vector<std::int32_t> stale{v.bos, v.eos, v.pad};
  auto encode = [&](const std::string& text) {
    std::vector<std::int32_t> ids = stale;
    t.encode(text, ids);
    return ids;
  };
  std::vector<std::vector<std::int32_t>> serial;
  for (const std::string& s : samples) {
    const std::string what = "encode(" + detail::quoted(s) + ")";
    std::vector<std::int32_t> ids;
    try {
      ids = encode(s);
      if (ids != encode(s)) r.fail(what + " gave different ids the second time");
    } catch (...) {
      r.fail(what + " threw (it must not, for any bytes): " + current_exception_message());
      return r;
    }
    if (ids.size() >= stale.size() && std::equal(stale.begin(), stale.end(), ids.begin()))
      r.fail(what + " did not clear `out` first");
    else if (const std::string problem = detail::token_problem(ids, v); !problem.empty())
      r.fail(what + ": " + problem);
    try {
      const std::string text = t.decode(ids);
      if (std::find(ids.begin(), ids.end(), v.unk) == ids.end() && encode(text) != ids)
        r.fail("decode(" + what + ") is " + detail::quoted(text) + ", which encodes to other ids");
    } catch (...) {
      r.fail("decode(" + what + ") threw: " + current_exception_message());
    }
    serial.push_back(std::move(ids));
  }
  if (!r.ok || samples.empty()) return r;
  // Thread-safety smoke test: each thread encodes every sample, starting at a
  // different one, and keeps whether all matched the serial ids.
  std::vector<char> matched(static_cast<std::size_t>(std::max(threads, 1)), 1);
  {
    std::vector<std::thread> pool;
    for (std::size_t k = 0; k < matched.size(); ++k)
      pool.emplace_back([&, k] {
        for (std::size_t i = 0; i < samples.size(); ++i) {
          const std::size_t at = (i + k) % samples.size();
          try {
            if (encode(samples[at]) != serial[at]) matched[k] = 0;
          } catch (...) {
            matched[k] = 0;
          }
        }
      });
    for (auto& th : pool) th.join();
  }
  if (std::find(matched.begin(), matched.end(), 0) != matched.end())
    r.fail("encode() from " + std::to_string(matched.size()) +
           " threads at once gave other ids than one by one (it is called from several threads)");
  return r;
}

/// A text augmentation on token sequences of 0, 1, 2, 7 and 40 ordinary ids
/// of `vocabulary` (no special id), drawn from `seed`: apply() clears `out`,
/// makes only ids of the vocabulary (never pad, bos or eos), gives the same
/// output for the same Rng key, and leaves its input untouched.
inline CheckResult check_text_augmentation(const TextAugmentation& a, const Vocabulary& vocabulary,
                                           std::uint64_t seed = 1) {
  CheckResult r;
  if (const std::string problem = detail::vocabulary_problem(vocabulary); !problem.empty()) {
    r.fail("the vocabulary given: " + problem);
    return r;
  }
  const std::int32_t specials[] = {vocabulary.pad, vocabulary.bos, vocabulary.eos, vocabulary.unk};
  Rng draw(seed, 0, 0, 0, 2);
  for (std::int64_t length : {0, 1, 2, 7, 40}) {
    std::vector<std::int32_t> in;
    while (static_cast<std::int64_t>(in.size()) < length) {
      const auto id = static_cast<std::int32_t>(draw.integer(0, vocabulary.size - 1));
      if (std::find(std::begin(specials), std::end(specials), id) == std::end(specials)) in.push_back(id);
    }
    const std::vector<std::int32_t> before = in;
    const std::string what = "apply() to " + std::to_string(length) + " tokens";
    // An id no vocabulary has, left in `out`: apply() must clear it.
    constexpr std::int32_t stale = -1;
    auto run = [&] {
      std::vector<std::int32_t> out{stale};
      Rng rng(seed, 0, 7, static_cast<std::uint32_t>(length), 0);
      a.apply(in, out, vocabulary, rng);
      return out;
    };
    std::vector<std::int32_t> out;
    try {
      out = run();
      if (run() != out) r.fail(what + " gave another output for the same Rng key");
    } catch (...) {
      r.fail(what + " threw: " + current_exception_message());
      continue;
    }
    if (!out.empty() && out.front() == stale)
      r.fail(what + " did not clear `out` first");
    else if (const std::string problem = detail::token_problem(out, vocabulary); !problem.empty())
      r.fail(what + ": the output " + problem);
    if (in != before) r.fail(what + " modified its input");
  }
  return r;
}

/// A source's first `count` samples: each loads as u8 HWC of info().shape,
/// twice the same, labels in range and equal to labels()[i].
inline CheckResult check_source(const Source& s, std::int64_t count = 8) {
  CheckResult r;
  const SourceInfo info = s.info();
  if (info.size <= 0) r.fail("info().size is " + std::to_string(info.size));
  const Shape want{info.shape.height, info.shape.width, info.shape.channels};
  const auto labels = s.labels();
  if (!labels.empty() && static_cast<std::int64_t>(labels.size()) != info.size)
    r.fail("labels() has " + std::to_string(labels.size()) + " entries for " + std::to_string(info.size) + " samples");
  for (std::int64_t i = 0; i < std::min(count, info.size); ++i) {
    Tensor a, b;
    std::int64_t la = 0, lb = 0;
    try {
      la = s.load(i, a);
      lb = s.load(i, b);
    } catch (...) {
      r.fail("load(" + std::to_string(i) + ") threw: " + current_exception_message());
      continue;
    }
    if (a.dtype() != DType::u8 || a.shape() != want)
      r.fail("load(" + std::to_string(i) + ") gave " + dtype_name(a.dtype()) + " " + a.shape().str() +
             ", expected u8 " + want.str());
    r.merge(same_tensor(a, b, "load(" + std::to_string(i) + ")"));
    if (la != lb) r.fail("load(" + std::to_string(i) + ") returned labels " + std::to_string(la) + " and " + std::to_string(lb));
    if (info.num_classes > 0 && (la < 0 || la >= info.num_classes))
      r.fail("load(" + std::to_string(i) + ") returned label " + std::to_string(la) + " outside [0, " +
             std::to_string(info.num_classes) + ")");
    if (!labels.empty() && labels[static_cast<std::size_t>(i)] != la)
      r.fail("labels()[" + std::to_string(i) + "] differs from what load() returned");
  }
  return r;
}

/// A sampler built twice by `make` (a fresh object each call) and configured
/// with `ctx`: both plan the same batches for the first `batches` of epochs 0
/// and 1, every index is in [0, ctx.dataset_size), no batch is empty.
inline CheckResult check_sampler(const std::function<std::shared_ptr<Sampler>()>& make, const SamplerContext& ctx,
                                 std::int64_t batches = 4) {
  CheckResult r;
  auto a = make(), b = make();
  a->configure(ctx);
  b->configure(ctx);
  if (a->batches_per_epoch() <= 0) r.fail("batches_per_epoch() is " + std::to_string(a->batches_per_epoch()));
  for (std::int64_t epoch = 0; epoch < 2; ++epoch)
    for (std::int64_t k = 0; k < std::min(batches, a->batches_per_epoch()); ++k) {
      std::vector<std::int64_t> ia, ib;
      a->plan(epoch, k, ia);
      b->plan(epoch, k, ib);
      const std::string at = "plan(" + std::to_string(epoch) + ", " + std::to_string(k) + ")";
      if (ia.empty()) r.fail(at + " planned an empty batch");
      if (ia != ib) r.fail(at + " differs between two samplers with the same seed");
      for (auto i : ia)
        if (i < 0 || i >= ctx.dataset_size) {
          r.fail(at + " planned index " + std::to_string(i) + " outside [0, " + std::to_string(ctx.dataset_size) + ")");
          break;
        }
    }
  return r;
}

/// A miner on `z`: mining twice gives the same pairs, and every row index is
/// in [0, rows), every memory index in [0, memory size).
inline CheckResult check_miner(Miner& m, const Embeddings& z) {
  CheckResult r;
  Pairs a, b;
  try {
    m.mine(z, a);
    m.mine(z, b);
  } catch (...) {
    r.fail(std::string("mine() threw: ") + current_exception_message());
    return r;
  }
  r.merge(same_pairs(a, b, "mine()"));
  const std::int64_t rows = z.rows(), keys = z.memory ? z.memory->size() : 0;
  auto in = [](std::int64_t i, std::int64_t n) { return i >= 0 && i < n; };
  auto check_list = [&](const auto& list, const char* field, std::int64_t second_bound) {
    for (const auto& [x, y] : list)
      if (!in(x, rows) || !in(y, second_bound)) {
        r.fail(std::string("mine(): ") + field + " holds (" + std::to_string(x) + ", " + std::to_string(y) +
               "), outside the batch's " + std::to_string(rows) + " rows" +
               (second_bound != rows ? " or the memory's " + std::to_string(second_bound) + " keys" : ""));
        return;
      }
  };
  check_list(a.positive, "positive", rows);
  check_list(a.negative, "negative", rows);
  check_list(a.memory_negative, "memory_negative", keys);
  for (const auto& t : a.triplets)
    if (!in(t.anchor, rows) || !in(t.positive, rows) || !in(t.negative, rows)) {
      r.fail("mine(): a triplet indexes a row outside the batch's " + std::to_string(rows) + " rows");
      break;
    }
  return r;
}

/// A loss on (z, pairs): a finite value, an f32 gradient of z's shape with
/// finite entries, and the same value and gradient when computed twice.
inline CheckResult check_loss(Loss& loss, const Embeddings& z, const Pairs& pairs) {
  CheckResult r;
  LossResult a, b;
  try {
    loss.compute(z, pairs, a);
    a.grad = a.grad.clone();  // the loss may reuse its buffer
    loss.compute(z, pairs, b);
  } catch (...) {
    r.fail(std::string("compute() threw: ") + current_exception_message());
    return r;
  }
  if (!std::isfinite(a.value)) r.fail("compute() gave a loss that is not finite: " + detail::str(a.value));
  if (a.grad.dtype() != DType::f32 || a.grad.shape() != z.z.shape())
    r.fail(std::string("compute() gave a gradient of ") + dtype_name(a.grad.dtype()) + " " + a.grad.shape().str() +
           ", expected f32 " + z.z.shape().str());
  else if (!detail::all_finite(a.grad))
    r.fail("compute() gave a gradient with NaN or Inf");
  if (a.value != b.value)
    r.fail("compute() gave " + detail::str(a.value) + " and then " + detail::str(b.value) + " for the same inputs");
  r.merge(same_tensor(a.grad, b.grad, "compute()'s gradient"));
  return r;
}

/// Two encoders from `make` (fresh objects), built with the same `ctx`,
/// give the same output for `x`, in eval and in train mode.
inline CheckResult check_encoder_deterministic(const std::function<std::shared_ptr<Encoder>()>& make,
                                               const EncoderContext& ctx, const Tensor& x) {
  CheckResult r;
  auto a = make(), b = make();
  a->build(ctx);
  b->build(ctx);
  if (a->output_dim() <= 0) r.fail("output_dim() is " + std::to_string(a->output_dim()));
  for (Mode mode : {Mode::eval, Mode::train}) {
    const Tensor ya = a->forward(x, mode).clone();
    const Tensor& yb = b->forward(x, mode);
    const char* name = mode == Mode::eval ? "forward(eval)" : "forward(train)";
    if (ya.dtype() != DType::f32 || ya.rank() != 2 || ya.dim(0) != x.dim(0) || ya.dim(1) != a->output_dim())
      r.fail(std::string(name) + " gave " + dtype_name(ya.dtype()) + " " + ya.shape().str() + ", expected f32 " +
             Shape{x.dim(0), a->output_dim()}.str());
    if (!detail::all_finite(ya)) r.fail(std::string(name) + " gave NaN or Inf");
    r.merge(same_tensor(ya, yb, std::string(name) + " of two encoders built with the same seed"));
  }
  return r;
}

// ---------------------------------------------------------------------------
// Gradients

struct GradientOptions {
  double eps = 1e-2;      ///< finite-difference step
  double rel_tol = 2e-2;  ///< pass: |a − n| <= abs_tol + rel_tol·max(|a|, |n|)
  double abs_tol = 2e-3;
  int samples = 24;       ///< coordinates checked per tensor (first, last, then random ones)
  Mode mode = Mode::train;
  /// Share of checked coordinates that must agree. Below 1 only for deep
  /// ReLU/max-pool networks in float32, where some step crosses a kink that
  /// the one-sided test misses; a wiring bug fails most coordinates.
  double min_agreement = 1.0;
  /// Largest share of sampled coordinates that may be skipped as next to a
  /// kink (the check fails above it: too little was compared).
  double max_skipped = 0.25;
};

/// One compared coordinate.
struct GradientSample {
  std::string what;  ///< "dL/dx", "dL/dfc0.weight", "dL/dz"
  std::int64_t index = 0;
  double analytic = 0, numeric = 0;
  double score = 0;  ///< |analytic − numeric| / tolerance; ≤ 1 agrees
};

struct GradientReport : CheckResult {
  int checked = 0, skipped = 0, disagreed = 0;
  std::vector<GradientSample> samples;  ///< every compared coordinate, in order
};

namespace detail {
// Compares the analytic gradient `analytic` of f with respect to `data` with
// central differences of f at sampled coordinates. A coordinate whose one-sided
// differences disagree (a kink within eps: ReLU, max-pool, a hinge) is skipped.
inline void compare_gradient(GradientReport& rep, const std::string& what, float* data, const float* analytic,
                             std::int64_t n, const std::function<double()>& f, const GradientOptions& o) {
  Rng pick(99, 0, static_cast<std::uint64_t>(n), 0, 0);
  for (int s = 0; s < std::min<std::int64_t>(o.samples, n); ++s) {
    std::int64_t i = s < 2 ? (s == 0 ? 0 : n - 1) : pick.integer(0, n - 1);
    const float saved = data[i];
    const double f0 = f();
    data[i] = static_cast<float>(saved + o.eps);
    const double up = f();
    data[i] = static_cast<float>(saved - o.eps);
    const double down = f();
    data[i] = saved;
    const double forward_d = (up - f0) / o.eps, backward_d = (f0 - down) / o.eps;
    const double num = (up - down) / (2 * o.eps);
    const double a = analytic[i];
    const double scale = o.abs_tol + o.rel_tol * std::max(std::fabs(a), std::fabs(num));
    if (std::fabs(forward_d - backward_d) > 2 * scale) {
      ++rep.skipped;
      continue;
    }
    ++rep.checked;
    const double score = std::fabs(a - num) / scale;
    rep.worst = std::max(rep.worst, score);
    rep.samples.push_back({what, i, a, num, score});
    if (score > 1.0) ++rep.disagreed;
  }
}

inline void finish(GradientReport& rep, const GradientOptions& o) {
  int listed = 0;
  for (const auto& s : rep.samples)
    if (s.score > 1.0) {
      std::string line = s.what + "[" + std::to_string(s.index) + "]: analytic " + str(s.analytic) + ", numeric " +
                         str(s.numeric);
      if (o.min_agreement < 1.0) rep.note(line + " (tolerated)");
      else if (listed++ < 8) rep.fail(line);
    }
  if (listed > 8) rep.fail("... " + std::to_string(listed - 8) + " more coordinates disagree");
  const std::string counts = std::to_string(rep.skipped) + " of " + std::to_string(rep.checked + rep.skipped) +
                             " coordinates skipped as next to a kink, " + std::to_string(rep.disagreed) + " of " +
                             std::to_string(rep.checked) + " disagreed";
  rep.note(counts);
  if (rep.skipped > o.max_skipped * (rep.checked + rep.skipped))
    rep.fail("too many coordinates next to a kink: " + counts);
  if (rep.checked - rep.disagreed < o.min_agreement * rep.checked && o.min_agreement < 1.0)
    rep.fail("too few coordinates agree: " + counts);
}
}  // namespace detail

/// Gradient check of anything with forward(x) -> y and backward(dy) -> dx
/// that accumulates into `params`' grads, in double arithmetic of the float
/// outputs: L = Σ y ⊙ w for a fixed random w (so dL/dy = w); the analytic
/// dL/dx and dL/dθ are compared with (L(θ+ε) − L(θ−ε)) / 2ε at sampled
/// coordinates. `x` is perturbed in place and restored.
template <class Forward, class Backward>
GradientReport check_gradients(Forward forward, Backward backward, const std::vector<Parameter*>& params, Tensor x,
                               const GradientOptions& o = {}) {
  GradientReport rep;
  Tensor y0 = forward(x).clone();
  Tensor w = random_tensor(y0.shape(), 777);
  auto loss = [&]() {
    const Tensor& y = forward(x);
    const float* py = y.template data<float>();
    const float* pw = w.data<float>();
    double s = 0;
    for (std::int64_t i = 0; i < y.numel(); ++i) s += static_cast<double>(py[i]) * pw[i];
    return s;
  };
  for (Parameter* p : params) p->grad.zero();
  forward(x);
  Tensor dx = backward(w).clone();
  std::vector<Tensor> grads;
  for (Parameter* p : params) grads.push_back(p->grad.clone());
  detail::compare_gradient(rep, "dL/dx", x.data<float>(), dx.data<float>(), x.numel(), loss, o);
  for (std::size_t k = 0; k < params.size(); ++k)
    detail::compare_gradient(rep, "dL/d" + params[k]->name, params[k]->value.data<float>(), grads[k].data<float>(),
                             params[k]->value.numel(), loss, o);
  detail::finish(rep, o);
  return rep;
}

/// check_gradients for an encoder plugin, already built: dL/dx and dL/dθ of
/// every parameter.
inline GradientReport check_encoder_gradients(Encoder& e, Tensor x, const GradientOptions& o = {}) {
  return check_gradients([&](const Tensor& in) -> const Tensor& { return e.forward(in, o.mode); },
                         [&](const Tensor& dy) -> const Tensor& { return e.backward(dy, true); }, e.parameters(), x,
                         o);
}

/// Finite-difference check of a loss: its gradient out.grad against central
/// differences of out.value with respect to entries of z.z (perturbed in
/// place and restored). `pairs` stay fixed, as in a train step (the miner
/// runs before the loss). The defaults suit losses of O(1) on unit-scale
/// embeddings.
inline GradientReport check_loss_gradient(Loss& loss, const Embeddings& z, const Pairs& pairs,
                                          GradientOptions o = {1e-3, 2e-2, 1e-3, 32}) {
  GradientReport rep;
  LossResult out;
  try {
    loss.compute(z, pairs, out);
  } catch (...) {
    rep.fail(std::string("compute() threw: ") + current_exception_message());
    return rep;
  }
  if (out.grad.dtype() != DType::f32 || out.grad.shape() != z.z.shape()) {
    rep.fail(std::string("compute() gave a gradient of ") + dtype_name(out.grad.dtype()) + " " +
             out.grad.shape().str() + ", expected f32 " + z.z.shape().str());
    return rep;
  }
  const Tensor analytic = out.grad.clone();
  Tensor zt = z.z;  // shares storage: perturbing it perturbs what the loss sees
  LossResult scratch;
  auto f = [&]() {
    loss.compute(z, pairs, scratch);
    return scratch.value;
  };
  detail::compare_gradient(rep, "dL/dz", zt.data<float>(), analytic.data<float>(), zt.numel(), f, o);
  detail::finish(rep, o);
  return rep;
}

}  // namespace contra::testing
