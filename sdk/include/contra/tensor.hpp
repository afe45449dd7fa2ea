#pragma once
/// \file
/// Tensor: a typed, shaped block of memory on a device. Storage is 64-byte
/// aligned and shared between a tensor and its views; a view made from
/// foreign memory does not own it. Row-major, contiguous. Storage on
/// Device::cuda comes from the allocator libcontra_cuda installs
/// (contra/device.hpp); host code must not read it through data<T>().

#include <contra/errors.hpp>

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>

namespace contra {

enum class DType : std::uint8_t { u8, i32, i64, f32 };
enum class Device : std::uint8_t { cpu, cuda };

/// Bytes per element.
std::size_t dtype_size(DType t) noexcept;
const char* dtype_name(DType t) noexcept;
const char* device_name(Device d) noexcept;

template <class T> constexpr DType dtype_of();
template <> constexpr DType dtype_of<std::uint8_t>() { return DType::u8; }
template <> constexpr DType dtype_of<std::int32_t>() { return DType::i32; }
template <> constexpr DType dtype_of<std::int64_t>() { return DType::i64; }
template <> constexpr DType dtype_of<float>() { return DType::f32; }

/// Up to 6 dimensions, stored inline so that shapes never allocate.
class Shape {
 public:
  static constexpr int max_rank = 6;
  Shape() = default;
  Shape(std::initializer_list<std::int64_t> dims);
  int rank() const noexcept { return rank_; }
  std::int64_t operator[](int i) const noexcept { return dims_[i]; }
  std::int64_t& operator[](int i) noexcept { return dims_[i]; }
  std::int64_t numel() const noexcept;
  bool operator==(const Shape& o) const noexcept;
  bool operator!=(const Shape& o) const noexcept { return !(*this == o); }
  /// "[2, 3, 28, 28]"
  std::string str() const;

 private:
  std::int64_t dims_[max_rank] = {};
  int rank_ = 0;
};

class Tensor {
 public:
  static constexpr std::size_t alignment = 64;

  /// An undefined tensor (no storage); defined() is false.
  Tensor() = default;

  /// Uninitialised owning tensor.
  static Tensor empty(const Shape& shape, DType dtype, Device device = Device::cpu);
  /// Zero-filled owning tensor.
  static Tensor zeros(const Shape& shape, DType dtype, Device device = Device::cpu);
  /// Non-owning view of memory the caller keeps alive.
  static Tensor wrap(void* data, const Shape& shape, DType dtype, Device device = Device::cpu);
  /// Owning tensor over storage someone else allocated (e.g. page-locked host
  /// memory): `storage` is released by its deleter when the last tensor
  /// sharing it goes; `capacity` is its size in bytes, at least the shape's.
  static Tensor adopt(std::shared_ptr<void> storage, std::size_t capacity, const Shape& shape,
                      DType dtype, Device device = Device::cpu);

  /// False for a default-constructed tensor.
  bool defined() const noexcept { return shape_.rank() > 0; }
  const Shape& shape() const noexcept { return shape_; }
  std::int64_t dim(int i) const noexcept { return shape_[i]; }
  int rank() const noexcept { return shape_.rank(); }
  std::int64_t numel() const noexcept { return shape_.numel(); }
  std::size_t nbytes() const noexcept { return static_cast<std::size_t>(numel()) * dtype_size(dtype_); }
  DType dtype() const noexcept { return dtype_; }
  Device device() const noexcept { return device_; }

  /// Address of the first element: a host address on Device::cpu, a device
  /// address otherwise (only device code and copies may dereference it).
  void* raw() noexcept { return data_; }
  const void* raw() const noexcept { return data_; }

  /// Typed access; throws UsageError when T does not match dtype().
  template <class T> T* data() {
    check_dtype(dtype_of<T>());
    return static_cast<T*>(data_);
  }
  template <class T> const T* data() const {
    check_dtype(dtype_of<T>());
    return static_cast<const T*>(data_);
  }

  /// View of rows [begin, end) along the first dimension (shares storage).
  Tensor rows(std::int64_t begin, std::int64_t end) const;
  /// View with another shape of the same element count (shares storage).
  Tensor reshape(const Shape& shape) const;

  /// Make this tensor an owning tensor of `shape` and `dtype`, reusing its
  /// storage when it owns enough of it alone. Contents are unspecified
  /// afterwards. This is how hot paths avoid allocating per sample.
  void ensure(const Shape& shape, DType dtype, Device device = Device::cpu);

  /// Deep copy into fresh storage on the same device (device copies go
  /// through the device's allocator, on the current stream).
  Tensor clone() const;
  /// Set every byte to zero (on a device: through its allocator, on the
  /// current stream).
  void zero();
  /// Bytes of storage owned from raw() onwards (0 for views and wrapped memory).
  std::size_t capacity() const noexcept { return capacity_; }
  /// Throws UsageError naming `what` unless shape and dtype match.
  void expect(const Shape& shape, DType dtype, const char* what) const;

 private:
  void check_dtype(DType want) const;

  std::shared_ptr<void> owner_;  // keeps the allocation alive; null for wrapped memory
  void* data_ = nullptr;
  std::size_t capacity_ = 0;     // bytes owned from data_ onwards (0 for views)
  Shape shape_;
  DType dtype_ = DType::f32;
  Device device_ = Device::cpu;
};

}  // namespace contra
