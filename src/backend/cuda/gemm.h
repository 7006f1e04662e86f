// Row-major GEMM through cuBLASLt: out[t, n] = sum_k x[t, k] * w[n, k] for float
// activations and weights already in `type` (f32, f16 or bf16), f32 out. f32
// runs in true f32 (no TF32): the f32 path must match the reference to 1e-4.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "gemmarun/status.h"
#include "tensor/dtype.h"

namespace gemmarun::cuda {

class LtGemm {
 public:
  ~LtGemm();
  Status Init(size_t workspace_bytes);
  // out has leading dimension ld_out (>= n). w and x have leading dimension k.
  Status Run(DType type, const void* x, const void* w, float* out, int64_t t, int64_t n, int64_t k, int64_t ld_out,
             cudaStream_t stream);

 private:
  void* handle_ = nullptr;  // cublasLtHandle_t
  void* workspace_ = nullptr;
  size_t workspace_bytes_ = 0;
};

}  // namespace gemmarun::cuda
