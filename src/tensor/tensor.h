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

// A view of memory someone else owns.
struct TensorView {
  void* data = nullptr;
  DType dtype = DType::kF32;
  Shape shape;

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
};

class Tensor {
 public:
  Tensor() = default;
  Tensor(DType dtype, Shape shape);  // zero-filled, aborts on OOM
  static bool TryCreate(DType dtype, Shape shape, Tensor* out);

  DType dtype() const { return dtype_; }
  const Shape& shape() const { return shape_; }
  size_t bytes() const { return buffer_.size(); }
  bool empty() const { return buffer_.empty(); }
  uint8_t* data() { return buffer_.data(); }
  const uint8_t* data() const { return buffer_.data(); }
  float* f32() {
    GR_DCHECK(dtype_ == DType::kF32);
    return reinterpret_cast<float*>(buffer_.data());
  }
  const float* f32() const {
    GR_DCHECK(dtype_ == DType::kF32);
    return reinterpret_cast<const float*>(buffer_.data());
  }
  TensorView view() const {
    return TensorView{const_cast<uint8_t*>(buffer_.data()), dtype_, shape_};
  }
  // The same bytes seen with another shape of equal size (e.g. [T, H*hd] as [T, H, hd]).
  TensorView view(Shape shape) const;

 private:
  DType dtype_ = DType::kF32;
  Shape shape_;
  Buffer buffer_;
};

}  // namespace gemmarun
