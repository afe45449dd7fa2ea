#include <contra/tensor.hpp>

#include <cstdlib>
#include <cstring>
#include <new>

namespace contra {

std::size_t dtype_size(DType t) noexcept {
  switch (t) {
    case DType::u8: return 1;
    case DType::i32: return 4;
    case DType::i64: return 8;
    case DType::f32: return 4;
  }
  return 0;
}

const char* dtype_name(DType t) noexcept {
  switch (t) {
    case DType::u8: return "u8";
    case DType::i32: return "i32";
    case DType::i64: return "i64";
    case DType::f32: return "f32";
  }
  return "unknown";
}

const char* device_name(Device d) noexcept {
  switch (d) {
    case Device::cpu: return "cpu";
    case Device::cuda: return "cuda";
  }
  return "unknown";
}

Shape::Shape(std::initializer_list<std::int64_t> dims) {
  if (dims.size() > static_cast<std::size_t>(max_rank))
    throw UsageError("shape of rank " + std::to_string(dims.size()) + " exceeds the maximum rank 6");
  for (auto d : dims) {
    if (d < 0) throw UsageError("negative dimension in shape");
    dims_[rank_++] = d;
  }
}

std::int64_t Shape::numel() const noexcept {
  if (rank_ == 0) return 0;
  std::int64_t n = 1;
  for (int i = 0; i < rank_; ++i) n *= dims_[i];
  return n;
}

bool Shape::operator==(const Shape& o) const noexcept {
  if (rank_ != o.rank_) return false;
  for (int i = 0; i < rank_; ++i)
    if (dims_[i] != o.dims_[i]) return false;
  return true;
}

std::string Shape::str() const {
  std::string s = "[";
  for (int i = 0; i < rank_; ++i) {
    if (i) s += ", ";
    s += std::to_string(dims_[i]);
  }
  return s + "]";
}

namespace {
std::shared_ptr<void> allocate(std::size_t bytes, Device device) {
  if (device != Device::cpu)
    throw DeviceError(std::string("Tensor::empty: no allocator for device ") + device_name(device) +
                      " in this build");
  std::size_t rounded = (bytes + Tensor::alignment - 1) / Tensor::alignment * Tensor::alignment;
  if (rounded == 0) rounded = Tensor::alignment;
  void* p = std::aligned_alloc(Tensor::alignment, rounded);
  if (!p) throw std::bad_alloc();
  return std::shared_ptr<void>(p, [](void* q) { std::free(q); });
}
}  // namespace

Tensor Tensor::empty(const Shape& shape, DType dtype, Device device) {
  Tensor t;
  t.ensure(shape, dtype, device);
  return t;
}

Tensor Tensor::zeros(const Shape& shape, DType dtype, Device device) {
  Tensor t = empty(shape, dtype, device);
  t.zero();
  return t;
}

Tensor Tensor::wrap(void* data, const Shape& shape, DType dtype, Device device) {
  Tensor t;
  t.data_ = data;
  t.shape_ = shape;
  t.dtype_ = dtype;
  t.device_ = device;
  return t;
}

void Tensor::ensure(const Shape& shape, DType dtype, Device device) {
  std::size_t bytes = static_cast<std::size_t>(shape.numel()) * dtype_size(dtype);
  bool reusable = owner_ && owner_.use_count() == 1 && capacity_ >= bytes && device_ == device;
  if (!reusable) {
    owner_ = allocate(bytes, device);
    data_ = owner_.get();
    capacity_ = bytes;
  }
  shape_ = shape;
  dtype_ = dtype;
  device_ = device;
}

Tensor Tensor::rows(std::int64_t begin, std::int64_t end) const {
  if (rank() == 0 || begin < 0 || end < begin || end > shape_[0])
    throw UsageError("Tensor::rows: range [" + std::to_string(begin) + ", " + std::to_string(end) +
                     ") outside a tensor of shape " + shape_.str());
  Tensor t = *this;
  std::int64_t row = shape_[0] == 0 ? 0 : numel() / shape_[0];
  std::size_t offset = static_cast<std::size_t>(begin * row) * dtype_size(dtype_);
  t.data_ = static_cast<char*>(data_) + offset;
  t.capacity_ = 0;
  t.shape_[0] = end - begin;
  return t;
}

Tensor Tensor::reshape(const Shape& shape) const {
  if (shape.numel() != numel())
    throw UsageError("Tensor::reshape: " + shape_.str() + " has " + std::to_string(numel()) +
                     " elements, " + shape.str() + " needs " + std::to_string(shape.numel()));
  Tensor t = *this;
  t.shape_ = shape;
  t.capacity_ = 0;
  return t;
}

Tensor Tensor::clone() const {
  Tensor t = empty(shape_, dtype_, device_);
  if (nbytes()) std::memcpy(t.data_, data_, nbytes());
  return t;
}

void Tensor::zero() {
  if (nbytes()) std::memset(data_, 0, nbytes());
}

void Tensor::expect(const Shape& shape, DType dtype, const char* what) const {
  if (shape_ != shape || dtype_ != dtype)
    throw UsageError(std::string(what) + ": expected a " + dtype_name(dtype) + " tensor of shape " +
                     shape.str() + ", got " + dtype_name(dtype_) + " " + shape_.str());
}

void Tensor::check_dtype(DType want) const {
  if (want != dtype_)
    throw UsageError(std::string("tensor of dtype ") + dtype_name(dtype_) + " accessed as " +
                     dtype_name(want));
}

}  // namespace contra
