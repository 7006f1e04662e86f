#include "tensor/tensor.h"

#include <sstream>

namespace gemmarun {

Shape::Shape(std::initializer_list<int64_t> dims) {
  GR_CHECK(dims.size() <= kMaxRank);
  for (int64_t d : dims) dims_[rank_++] = d;
}

int64_t Shape::elements() const {
  int64_t n = 1;
  for (int i = 0; i < rank_; ++i) n *= dims_[i];
  return n;
}

std::string Shape::ToString() const {
  std::ostringstream out;
  out << "[";
  for (int i = 0; i < rank_; ++i) out << (i ? ", " : "") << dims_[i];
  out << "]";
  return out.str();
}

bool Shape::operator==(const Shape& other) const {
  if (rank_ != other.rank_) return false;
  for (int i = 0; i < rank_; ++i) {
    if (dims_[i] != other.dims_[i]) return false;
  }
  return true;
}

Tensor::Tensor(DType dtype, Shape shape) { GR_CHECK(TryCreate(dtype, shape, this)) << "out of memory for tensor " << shape.ToString(); }

bool Tensor::TryCreate(DType dtype, Shape shape, Tensor* out) {
  GR_CHECK(shape.cols() % static_cast<int64_t>(Info(dtype).block_elements) == 0)
      << Name(dtype) << " rows must be whole blocks: " << shape.ToString();
  out->dtype_ = dtype;
  out->shape_ = shape;
  return Buffer::TryAllocate(RowBytes(dtype, shape.cols()) * shape.rows(), &out->buffer_);
}

TensorView Tensor::view(Shape shape) const {
  GR_CHECK(shape.elements() == shape_.elements()) << shape.ToString() << " vs " << shape_.ToString();
  return TensorView{const_cast<uint8_t*>(buffer_.data()), dtype_, shape};
}

}  // namespace gemmarun
