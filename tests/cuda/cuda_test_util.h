// Shared by the CUDA tests: the backend (one per process), device copies of
// host data, random inputs and the skip when no GPU is present.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <memory>
#include <random>
#include <vector>

#include "backend/cuda/cuda_backend.h"

namespace gemmarun::testing {

inline CudaBackend* SharedCudaBackend(MatMulPrecision precision = MatMulPrecision::kF32) {
  static std::unique_ptr<CudaBackend> backends[2];
  auto& backend = backends[precision == MatMulPrecision::kF32 ? 0 : 1];
  if (!backend && CudaDeviceCount() > 0) {
    auto created = CudaBackend::Create(0, precision);
    if (created.ok()) backend = std::move(created).value();
  }
  return backend.get();
}

#define GR_SKIP_WITHOUT_GPU()                                                   \
  do {                                                                          \
    if (::gemmarun::CudaDeviceCount() == 0) {                                   \
      GTEST_SKIP() << "no CUDA device";                                         \
    }                                                                           \
  } while (0)

// Device memory holding a copy of host bytes; freed with the backend's Free.
class DeviceBuffer {
 public:
  DeviceBuffer(CudaBackend* backend, const void* host, size_t bytes) : backend_(backend), bytes_(bytes) {
    data_ = backend->Allocate(bytes).value();
    if (host != nullptr) {
      EXPECT_TRUE(backend->Upload(data_, host, bytes).ok());
    }
  }
  template <class T>
  DeviceBuffer(CudaBackend* backend, const std::vector<T>& host)
      : DeviceBuffer(backend, host.data(), host.size() * sizeof(T)) {}
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  ~DeviceBuffer() { backend_->Free(data_); }

  TensorView view(DType dtype, Shape shape, size_t byte_offset = 0) const {
    return TensorView{static_cast<uint8_t*>(data_) + byte_offset, dtype, shape};
  }
  TensorView f32(Shape shape) const { return view(DType::kF32, shape); }
  template <class T = float>
  std::vector<T> Download() const {
    std::vector<T> host(bytes_ / sizeof(T));
    EXPECT_TRUE(backend_->Download(host.data(), data_, bytes_).ok());
    return host;
  }
  void* data() const { return data_; }

 private:
  CudaBackend* backend_;
  void* data_ = nullptr;
  size_t bytes_ = 0;
};

inline std::vector<float> RandomFloats(size_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

inline TensorView HostView(std::vector<float>& v, Shape shape) { return TensorView{v.data(), DType::kF32, shape}; }

inline void ExpectNear(const std::vector<float>& actual, const std::vector<float>& expected, double tolerance) {
  ASSERT_EQ(actual.size(), expected.size());
  for (size_t i = 0; i < actual.size(); ++i) {
    ASSERT_NEAR(actual[i], expected[i], tolerance) << "at " << i << " of " << actual.size();
  }
}

}  // namespace gemmarun::testing
