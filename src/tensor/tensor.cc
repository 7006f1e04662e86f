#include "tensor/tensor.h"

#include <cstring>
#include <sstream>
#include <utility>

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
  return TensorView{const_cast<uint8_t*>(data()), dtype_, shape, device()};
}

TensorView RowRange(const TensorView& t, int64_t begin, int64_t count) {
  return TensorView{t.row(begin), t.dtype, Shape{count, t.shape.cols()}, t.device};
}

Tensor::~Tensor() { Release(); }

void Tensor::Release() {
  if (memory_ != nullptr && device_data_ != nullptr) memory_->Free(device_data_);
  memory_ = nullptr;
  device_data_ = nullptr;
  device_bytes_ = 0;
}

Tensor& Tensor::operator=(Tensor&& other) noexcept {
  if (this == &other) return *this;
  Release();
  dtype_ = other.dtype_;
  shape_ = other.shape_;
  buffer_ = std::move(other.buffer_);
  memory_ = std::exchange(other.memory_, nullptr);
  device_data_ = std::exchange(other.device_data_, nullptr);
  device_bytes_ = std::exchange(other.device_bytes_, 0);
  return *this;
}

Result<Tensor> Tensor::Allocate(DeviceMemory& memory, DType dtype, Shape shape) {
  Tensor t;
  if (memory.device().is_host()) {
    if (!TryCreate(dtype, shape, &t)) {
      return ResourceExhausted("out of memory for a tensor of " + shape.ToString());
    }
    return t;
  }
  GR_CHECK(shape.cols() % static_cast<int64_t>(Info(dtype).block_elements) == 0)
      << Name(dtype) << " rows must be whole blocks: " << shape.ToString();
  const size_t bytes = RowBytes(dtype, shape.cols()) * shape.rows();
  t.dtype_ = dtype;
  t.shape_ = shape;
  if (bytes == 0) return t;
  GR_ASSIGN_OR_RETURN(void* ptr, memory.Allocate(bytes));
  t.memory_ = &memory;
  t.device_data_ = ptr;
  t.device_bytes_ = bytes;
  memory.Zero(ptr, bytes);
  return t;
}

Result<Tensor> ToDevice(DeviceMemory& memory, Tensor host) {
  GR_CHECK(host.on_host()) << "ToDevice: the source must be a host tensor";
  if (memory.device().is_host() || host.empty()) return host;
  GR_ASSIGN_OR_RETURN(Tensor placed, Tensor::Allocate(memory, host.dtype(), host.shape()));
  GR_RETURN_IF_ERROR(memory.Upload(placed.data(), host.data(), host.bytes()));
  return placed;
}

Result<Tensor> ToHost(DeviceMemory& memory, const TensorView& t) {
  Tensor host;
  if (!Tensor::TryCreate(t.dtype, t.shape, &host)) {
    return ResourceExhausted("out of memory for a host copy of " + t.shape.ToString());
  }
  if (t.device.is_host()) {
    std::memcpy(host.data(), t.data, host.bytes());
  } else {
    GR_RETURN_IF_ERROR(memory.Download(host.data(), t.data, host.bytes()));
  }
  return host;
}

}  // namespace gemmarun
