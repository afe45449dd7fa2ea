// A plugin library's manifest, as the registry checks it once the library is
// loaded (runtime::check_manifest): magic, ABI version, version and
// fingerprint strings, and up to eight entries whose kind, device and schema
// come from the bytes. The schemas are built through the SDK's Schema API
// (what a plugin's schema() does) and may throw; those that pass are then
// described (`contra plugins --describe`) and bound to parameters from the
// bytes (what a pipeline table does).
//
// Layout, read front to back; missing bytes read as zero and strings as "":
//   flags        bit 0: a magic u32 follows (else the right one)
//                bit 1: an ABI u32 follows (else this SDK's)
//                bit 2: no sdk_version string (a null pointer)
//                bit 3: no fingerprint (null); bit 4: this build's own
//                fingerprint with the "isa=" field's value from the bytes
//   [magic u32] [abi u32] [sdk_version str] [fingerprint str | isa str]
//   count        entries, byte % 9
//   entry        kind byte (255: a u32 follows), device byte, schema flags
//                (bit 0 throws a std::runtime_error, bit 1 an int),
//                name str, summary str, params byte % 7 of:
//                  type byte % 7, required byte & 1, name str, help str,
//                  default value of the type (unless required),
//                  modifiers byte: 1 range(f64, f64), 2 at_least(f64),
//                  4 choices(byte % 5 strs), 8 length(i64, i64)
//   raw          byte % 6 of: key str, value (type byte % 7, then the value)
// str: a length byte, then that many bytes. Integers little-endian.
#include "fuzz_support.hpp"

#include "loader/registry.hpp"

#include <contra/plugin.hpp>
#include <contra/version.hpp>

#include <array>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

using namespace contra;

namespace {

class Bytes {
 public:
  Bytes(const std::uint8_t* data, std::size_t size) : p_(data), end_(data + size) {}
  std::uint8_t byte() { return p_ < end_ ? *p_++ : 0; }
  template <class T> T number() {
    unsigned char raw[sizeof(T)] = {};
    for (auto& b : raw) b = byte();
    T v;
    std::memcpy(&v, raw, sizeof v);
    return v;
  }
  std::string str() {
    std::string s;
    for (std::size_t n = byte(); n > 0 && p_ < end_; --n) s += static_cast<char>(*p_++);
    return s;
  }

 private:
  const std::uint8_t* p_;
  const std::uint8_t* end_;
};

Value value_of(Bytes& in, ParamType type) {
  const auto list_size = [&] { return static_cast<std::size_t>(in.byte() % 5); };
  switch (type) {
    case ParamType::boolean: return static_cast<bool>(in.byte() & 1);
    case ParamType::integer: return in.number<std::int64_t>();
    case ParamType::real: return in.number<double>();
    case ParamType::string: return in.str();
    case ParamType::integer_list: {
      std::vector<std::int64_t> v(list_size());
      for (auto& x : v) x = in.number<std::int64_t>();
      return v;
    }
    case ParamType::real_list: {
      std::vector<double> v(list_size());
      for (auto& x : v) x = in.number<double>();
      return v;
    }
    case ParamType::string_list: {
      std::vector<std::string> v(list_size());
      for (auto& x : v) x = in.str();
      return v;
    }
  }
  return false;
}

struct ParamDescription {
  ParamType type;
  bool required;
  std::string name, help;
  Value default_value;
  std::uint8_t modifiers;
  double lo, hi, least;
  std::vector<std::string> choices;
  std::int64_t min_length, max_length;
};

struct SchemaDescription {
  std::uint8_t flags = 0;
  std::string name, summary;
  std::vector<ParamDescription> params;
};

constexpr std::size_t max_entries = 8;
std::array<SchemaDescription, max_entries> descriptions;

// One parameter through the typed Schema API, as a plugin declares it.
void declare(Schema& s, const ParamDescription& p) {
  std::visit(
      [&](const auto& v) {
        using T = std::decay_t<decltype(v)>;
        if (p.required) s.required<T>(p.name, p.help);
        else s.add<T>(p.name, v, p.help);
      },
      p.default_value);
  if (p.modifiers & 1) s.range(p.lo, p.hi);
  if (p.modifiers & 2) s.at_least(p.least);
  if (p.modifiers & 4) s.choices(p.choices);
  if (p.modifiers & 8) s.length(p.min_length, p.max_length);
}

template <std::size_t K> Schema schema_of() {
  const SchemaDescription& d = descriptions[K];
  if (d.flags & 1) throw std::runtime_error("schema() failed");
  if (d.flags & 2) throw 42;
  Schema s(d.name, d.summary);
  for (const auto& p : d.params) declare(s, p);
  return s;
}

template <std::size_t... K>
constexpr std::array<Schema (*)(), max_entries> schema_functions(std::index_sequence<K...>) {
  return {&schema_of<K>...};
}
constexpr auto schemas = schema_functions(std::make_index_sequence<max_entries>());

Plugin* create_nothing(const Params&) { return nullptr; }
void destroy_nothing(Plugin*) noexcept {}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  Bytes in(data, size);
  LibraryManifest m{};
  const std::uint8_t flags = in.byte();
  m.magic = flags & 1 ? in.number<std::uint32_t>() : manifest_magic;
  m.abi_version = flags & 2 ? in.number<std::uint32_t>() : sdk_abi_version;
  const std::string version = in.str();
  m.sdk_version = flags & 4 ? nullptr : version.c_str();
  std::string fingerprint = in.str();
  if (flags & 16) {
    // This build's fingerprint, its CPU extensions replaced.
    const std::string own = CONTRA_BUILD_FINGERPRINT;
    fingerprint = own.substr(0, own.find("isa=") + 4) + fingerprint;
  }
  m.build_fingerprint = flags & 8 ? nullptr : fingerprint.c_str();

  std::vector<PluginEntry> entries(in.byte() % (max_entries + 1));
  for (std::size_t i = 0; i < entries.size(); ++i) {
    const std::uint8_t kind = in.byte();
    entries[i].kind = static_cast<PluginKind>(kind == 255 ? in.number<std::uint32_t>() : kind);
    entries[i].device = static_cast<Device>(in.byte());
    entries[i].schema = schemas[i];
    entries[i].create = create_nothing;
    entries[i].destroy = destroy_nothing;
    SchemaDescription& d = descriptions[i];
    d.flags = in.byte();
    d.name = in.str();
    d.summary = in.str();
    d.params.assign(in.byte() % 7, {});
    for (auto& p : d.params) {
      p.type = static_cast<ParamType>(in.byte() % 7);
      p.required = in.byte() & 1;
      p.name = in.str();
      p.help = in.str();
      p.default_value = value_of(in, p.type);  // its alternative is the type, also for required ones
      p.modifiers = in.byte();
      if (p.modifiers & 1) p.lo = in.number<double>(), p.hi = in.number<double>();
      if (p.modifiers & 2) p.least = in.number<double>();
      if (p.modifiers & 4) {
        p.choices.resize(in.byte() % 5);
        for (auto& c : p.choices) c = in.str();
      }
      if (p.modifiers & 8) p.min_length = in.number<std::int64_t>(), p.max_length = in.number<std::int64_t>();
    }
  }
  std::vector<RawParam> raw(in.byte() % 6);
  for (auto& r : raw) {
    r.key = in.str();
    r.value = value_of(in, static_cast<ParamType>(in.byte() % 7));
    r.where = SourceLocation{"pipeline.toml", 3, 1};
  }
  m.plugins = entries.data();
  m.plugin_count = entries.size();

  const std::string file = "/plugins/libcontra_fuzz.so";
  fuzz::run_reader(
      [&] {
        for (const runtime::PluginRecord& r : runtime::check_manifest(m, file)) {
          (void)r.schema.describe();
          Diagnostics d;
          const Params p = r.schema.bind(raw, "section", SourceLocation{"pipeline.toml", 2, 1}, d);
          (void)format_diagnostics(d);
          for (const auto& e : p.entries()) (void)value_to_string(e.value);
        }
      },
      file);
  return 0;
}
