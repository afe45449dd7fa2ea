#pragma once
/// \file
/// The two-input pieces of a residual block: the join (y = a + b) and, in
/// backward, the fork (a gradient that reaches one tensor along two paths is
/// the sum of both). f32 cpu tensors of any shape.
///
/// Small tensors are added in a vectorised loop on the calling thread; large
/// ones (>= 65536 elements) on oneDNN's binary primitive, which uses the
/// calling thread's OpenMP team. Those primitives are cached per thread and
/// element count.

#include <contra/tensor.hpp>

namespace contra::nn {

/// out = a + b. a and b must have the same shape; out is ensure()d to it
/// (reusing its storage when it can). out may be a or b itself (in place);
/// any other overlap of out with a or b is a UsageError.
void add(const Tensor& a, const Tensor& b, Tensor& out);

/// into += from, for tensors of the same shape (into must be defined).
/// `from` may be `into` (doubling it).
void accumulate(Tensor& into, const Tensor& from);

}  // namespace contra::nn
