// Row-major GEMM through cuBLASLt: out[t, n] = sum_k x[t, k] * w[n, k] for float
// activations and weights already in `type` (f32, f16 or bf16), f32 out. f32
// runs in true f32 (no TF32): the f32 path must match the reference to 1e-4.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <tuple>

#include "gemmarun/status.h"
#include "tensor/dtype.h"

namespace gemmarun::cuda {

class LtGemm {
 public:
  LtGemm();
  ~LtGemm();
  Status Init(size_t workspace_bytes);
  // out has leading dimension ld_out (>= n). w and x have leading dimension k.
  Status Run(DType type, const void* x, const void* w, float* out, int64_t t, int64_t n, int64_t k, int64_t ld_out,
             cudaStream_t stream) {
    return Run(type, x, k, w, k, false, out, ld_out, t, n, k, stream);
  }
  // Leading dimensions (elements between rows) given for each matrix; with
  // w_is_k_by_n, w is stored [k, n] (out = x w) instead of [n, k] (out = x w^T).
  Status Run(DType type, const void* x, int64_t ld_x, const void* w, int64_t ld_w, bool w_is_k_by_n, float* out,
             int64_t ld_out, int64_t t, int64_t n, int64_t k, cudaStream_t stream);

 private:
  struct Descriptors;
  using PlanKey = std::tuple<int, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t>;
  static constexpr size_t kMaxPlans = 256;
  std::map<PlanKey, std::unique_ptr<Descriptors>> plans_;
  void* handle_ = nullptr;  // cublasLtHandle_t
  void* workspace_ = nullptr;
  size_t workspace_bytes_ = 0;
};

}  // namespace gemmarun::cuda
