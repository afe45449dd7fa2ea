#pragma once
// Cached oneDNN calls of the matrix layers (Conv2d, Linear): each plan builds
// its reorders and primitives once per input shape and re-points their
// memories at the caller's tensors on every call. Internal to libcontra_sdk.

#include "dnnl_util.hpp"

#include <unordered_map>
#include <utility>

namespace contra::nn::detail {

// A memory in the caller's layout and the memory a primitive reads: the same
// one when the descriptors match, else a cached reorder into a buffer owned
// here. run() points the caller's memory at `p` and converts.
struct Staged {
  dnnl::memory user, used;
  dnnl::reorder reorder;
  bool converts = false;
  Tensor buf;

  void init(const dnnl::memory::desc& user_md, const dnnl::memory::desc& want) {
    user = dnnl::memory(user_md, engine(), DNNL_MEMORY_NONE);
    converts = !(user_md == want);
    if (converts) {
      used = scratch(buf, want);
      reorder = dnnl::reorder(user, used);
    } else {
      used = user;
    }
  }
  void run(const void* p) {
    user.set_data_handle(const_cast<void*>(p));
    if (converts) reorder.execute(stream(), user, used);
  }
};

// A primitive with its arguments, built once; the memories in `args` are
// re-pointed with set_data_handle before each call.
struct Prim {
  dnnl::primitive prim;
  std::unordered_map<int, dnnl::memory> args;
  dnnl::memory pad;  // user-mode scratchpad (shared buffer of the layer)
  bool has_pad = false;

  void set(dnnl::primitive p, const dnnl::memory::desc& pad_md) {
    prim = std::move(p);
    has_pad = pad_md.get_size() > 0;
    if (has_pad) {
      pad = dnnl::memory(pad_md, engine(), DNNL_MEMORY_NONE);
      args[DNNL_ARG_SCRATCHPAD] = pad;
    }
  }
  void run(Tensor& pad_buf) {
    if (has_pad) pad.set_data_handle(pad_buf.raw());
    prim.execute(stream(), args);
  }
};

// User-mode scratchpad (the layer's shared buffer, passed to Prim::run); with
// `accumulate`, the result is added into dst (sum post-op, beta = 1).
inline dnnl::primitive_attr user_scratchpad(bool accumulate = false) {
  dnnl::primitive_attr a;
  a.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  if (accumulate) {
    dnnl::post_ops po;
    po.append_sum(1.f);
    a.set_post_ops(po);
  }
  return a;
}

}  // namespace contra::nn::detail
