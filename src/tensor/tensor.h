// Shape, owning Tensor and non-owning TensorView. Shapes are row-major, last
// dimension contiguous, written [num_tokens, model_dim] (never ggml's reversed ne[0]).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <string>

#include "base/buffer.h"
#include "base/check.h"
#include "tensor/device.h"
#include "tensor/dtype.h"

namespace gemmarun {

class Shape {
 public:
  static constexpr int kMaxRank = 4;
  Shape() = default;
  Shape(std::initializer_list<int64_t> dims);
  template <class It>
  static Shape FromRange(It begin, It end) {
    Shape shape;
    for (It it = begin; it != end; ++it) {
      GR_CHECK(shape.rank_ < kMaxRank);
      shape.dims_[shape.rank_++] = static_cast<int64_t>(*it);
    }
    return shape;
  }

  int rank() const { return rank_; }
  int64_t operator[](int i) const { return dims_[i]; }
  int64_t& operator[](int i) { return dims_[i]; }
  int64_t elements() const;
  int64_t rows() const { return rank_ == 0 ? 1 : elements() / dims_[rank_ - 1]; }
  int64_t cols() const { return rank_ == 0 ? 1 : dims_[rank_ - 1]; }
  std::string ToString() const;  // "[2, 64]"
  bool operator==(const Shape& other) const;
  bool operator!=(const Shape& other) const { return !(*this == other); }

 private:
  std::array<int64_t, kMaxRank> dims_{};
  int rank_ = 0;
};

// A view of memory someone else owns, on `device` (the host unless a device
// backend allocated it: only host views may be read through data on the CPU).
struct TensorView {
  void* data = nullptr;
  DType dtype = DType::kF32;
  Shape shape;
  Device device = Device{};  // where data lives (host unless a device backend allocated it)

  template <class T>
  T* as() const { return static_cast<T*>(data); }
  float* f32() const {
    GR_DCHECK(dtype == DType::kF32);
    return static_cast<float*>(data);
  }
  size_t row_bytes() const { return RowBytes(dtype, shape.cols()); }
  size_t bytes() const { return row_bytes() * shape.rows(); }
  // Row r of the tensor seen as [rows, cols].
  uint8_t* row(int64_t r) const { return static_cast<uint8_t*>(data) + r * row_bytes(); }
  bool empty() const { return data == nullptr; }
  // The same bytes (same device) seen with another shape of equal or smaller size.
  TensorView Reshaped(Shape new_shape) const { return TensorView{data, dtype, new_shape, device}; }
};

// Rows [begin, begin + count) of a view seen as [rows, cols].
TensorView RowRange(const TensorView& t, int64_t begin, int64_t count);

// Owning memory on the host (a huge-page Buffer) or on a backend's device.
class Tensor {
 public:
  Tensor() = default;
  Tensor(DType dtype, Shape shape);  // host, zero-filled, aborts on OOM
  static bool TryCreate(DType dtype, Shape shape, Tensor* out);  // host, zero-filled
  // Zero-filled memory from `memory`: a host Buffer when memory is the host's.
  static Result<Tensor> Allocate(DeviceMemory& memory, DType dtype, Shape shape);
  ~Tensor();
  Tensor(Tensor&& other) noexcept { *this = std::move(other); }
  Tensor& operator=(Tensor&& other) noexcept;
  Tensor(const Tensor&) = delete;
  Tensor& operator=(const Tensor&) = delete;

  DType dtype() const { return dtype_; }
  const Shape& shape() const { return shape_; }
  Device device() const { return memory_ ? memory_->device() : Device{}; }
  bool on_host() const { return memory_ == nullptr; }
  size_t bytes() const { return memory_ ? device_bytes_ : buffer_.size(); }
  bool empty() const { return bytes() == 0; }
  // Host or device address; only a host tensor's bytes may be read on the CPU.
  uint8_t* data() { return memory_ ? static_cast<uint8_t*>(device_data_) : buffer_.data(); }
  const uint8_t* data() const { return memory_ ? static_cast<const uint8_t*>(device_data_) : buffer_.data(); }
  float* f32() {
    GR_DCHECK(dtype_ == DType::kF32 && on_host());
    return reinterpret_cast<float*>(data());
  }
  const float* f32() const {
    GR_DCHECK(dtype_ == DType::kF32 && on_host());
    return reinterpret_cast<const float*>(data());
  }
  TensorView view() const { return TensorView{const_cast<uint8_t*>(data()), dtype_, shape_, device()}; }
  // The same bytes seen with another shape of equal size (e.g. [T, H*hd] as [T, H, hd]).
  TensorView view(Shape shape) const;

 private:
  void Release();
  DType dtype_ = DType::kF32;
  Shape shape_;
  Buffer buffer_;                   // host memory
  DeviceMemory* memory_ = nullptr;  // owner of device_data_ when not on the host
  void* device_data_ = nullptr;
  size_t device_bytes_ = 0;
};

// A copy of `host` (a host tensor) on `memory`'s device; the same tensor moved
// when memory is the host's.
Result<Tensor> ToDevice(DeviceMemory& memory, Tensor host);
// A host copy of `t`, wherever it lives.
Result<Tensor> ToHost(DeviceMemory& memory, const TensorView& t);

}  // namespace gemmarun
