#include <contra/device.hpp>
#include <contra/tensor.hpp>

#include <atomic>
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

DeviceAllocator::~DeviceAllocator() = default;

namespace {
// Device::cuda's allocator; written once by libcontra_cuda, read by every
// thread that allocates.
std::atomic<DeviceAllocator*> cuda_allocator{nullptr};

DeviceAllocator* allocator_for(Device d) {
  DeviceAllocator* a = device_allocator(d);
  if (!a)
    throw DeviceError(std::string("no usable GPU: no allocator for device ") + device_name(d) +
                      " is installed (the CUDA runtime, libcontra_cuda, was not initialised with "
                      "contra::cuda::require())");
  return a;
}

std::shared_ptr<void> allocate(std::size_t bytes, Device device) {
  if (device != Device::cpu) {
    DeviceAllocator* a = allocator_for(device);
    void* p = a->allocate(bytes);
    return std::shared_ptr<void>(p, [a, bytes](void* q) { a->release(q, bytes); });
  }
  std::size_t rounded = (bytes + Tensor::alignment - 1) / Tensor::alignment * Tensor::alignment;
  if (rounded == 0) rounded = Tensor::alignment;
  void* p = std::aligned_alloc(Tensor::alignment, rounded);
  if (!p) throw std::bad_alloc();
  return std::shared_ptr<void>(p, [](void* q) { std::free(q); });
}
}  // namespace

void set_device_allocator(Device d, DeviceAllocator* a) noexcept {
  if (d == Device::cuda) cuda_allocator.store(a, std::memory_order_release);
}

DeviceAllocator* device_allocator(Device d) noexcept {
  if (d == Device::cuda) return cuda_allocator.load(std::memory_order_acquire);
  return nullptr;
}

void expect_host(const Tensor& t, const char* what) {
  if (t.device() != Device::cpu)
    throw UsageError(std::string(what) + ": expected a tensor on the cpu, got one on " +
                     device_name(t.device()) + " (copy it to the host first)");
}

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

Tensor Tensor::adopt(std::shared_ptr<void> storage, std::size_t capacity, const Shape& shape,
                     DType dtype, Device device) {
  std::size_t bytes = static_cast<std::size_t>(shape.numel()) * dtype_size(dtype);
  if (!storage || capacity < bytes)
    throw UsageError("Tensor::adopt: " + std::to_string(capacity) + " bytes of storage for a " +
                     dtype_name(dtype) + " tensor of shape " + shape.str() + " (" +
                     std::to_string(bytes) + " bytes)");
  Tensor t;
  t.data_ = storage.get();
  t.owner_ = std::move(storage);
  t.capacity_ = capacity;
  t.shape_ = shape;
  t.dtype_ = dtype;
  t.device_ = device;
  return t;
}

Tensor Tensor::clone() const {
  Tensor t = empty(shape_, dtype_, device_);
  if (!nbytes()) return t;
  if (device_ == Device::cpu)
    std::memcpy(t.data_, data_, nbytes());
  else
    allocator_for(device_)->copy(t.data_, data_, nbytes());
  return t;
}

void Tensor::zero() {
  if (!nbytes()) return;
  if (device_ == Device::cpu)
    std::memset(data_, 0, nbytes());
  else
    allocator_for(device_)->zero(data_, nbytes());
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
