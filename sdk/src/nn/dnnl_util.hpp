#pragma once
// oneDNN plumbing shared by the layers. Internal to libcontra_sdk: no oneDNN
// type appears in an installed header.

#include <contra/errors.hpp>
#include <contra/roles/encoder.hpp>
#include <contra/tensor.hpp>

#include <oneapi/dnnl/dnnl.hpp>

#include <string>

namespace contra::nn::detail {

using dt = dnnl::memory::data_type;
using tag = dnnl::memory::format_tag;

/// The process's CPU engine.
dnnl::engine& engine();

/// A stream for the calling thread (oneDNN streams are not thread-safe).
dnnl::stream& stream();

/// oneDNN dims of a contra shape.
dnnl::memory::dims dims_of(const Shape& s);

/// Descriptor of an NHWC tensor [N, H, W, C] as oneDNN's logical NCHW dims
/// with the nhwc tag.
dnnl::memory::desc nhwc_desc(const Shape& nhwc, dt type = dt::f32);

/// Descriptor of a plain row-major tensor with the given logical dims.
dnnl::memory::desc plain_desc(const dnnl::memory::dims& d, dt type = dt::f32);

/// A oneDNN memory over a tensor's storage (no copy). The tensor must hold at
/// least md.get_size() bytes.
dnnl::memory wrap(const Tensor& t, const dnnl::memory::desc& md);

/// Make `buf` an owning byte buffer large enough for `md` and return a memory
/// over it. Used for weights in the primitive's preferred layout, bf16 copies
/// and workspaces.
dnnl::memory scratch(Tensor& buf, const dnnl::memory::desc& md);

/// Reorder `from` into `to` on this thread's stream.
void reorder(const dnnl::memory& from, const dnnl::memory& to);

/// `src` in the layout and type of `want`: `src` itself when they already
/// match, else a reorder into `buf`.
dnnl::memory as_desc(const dnnl::memory& src, const dnnl::memory::desc& want, Tensor& buf);

/// oneDNN data type of a precision's matrix arithmetic.
inline dt compute_type(Precision p) { return p == Precision::bf16 ? dt::bf16 : dt::f32; }

/// Throws DeviceError naming `who` when this CPU cannot run `p` (bf16 on a
/// CPU without AVX-512), instead of oneDNN's "could not create a primitive
/// descriptor iterator" at the first call.
void require_precision(const std::string& who, Precision p);

/// Rethrow a dnnl::error as contra::UsageError naming the layer and call.
[[noreturn]] void rethrow(const std::string& where, const dnnl::error& e);

}  // namespace contra::nn::detail
