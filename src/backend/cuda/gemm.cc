#include "backend/cuda/gemm.h"

#include <cublasLt.h>
#include <cuda_runtime.h>

#include <string>

namespace gemmarun::cuda {
namespace {

Status LtError(const char* what, cublasStatus_t status) {
  return Internal(std::string("cublasLt ") + what + ": status " + std::to_string(static_cast<int>(status)));
}

cudaDataType_t CudaType(DType type) {
  switch (type) {
    case DType::kF16: return CUDA_R_16F;
    case DType::kBF16: return CUDA_R_16BF;
    default: return CUDA_R_32F;
  }
}

// Owns the descriptors of one call.
struct Descriptors {
  cublasLtMatmulDesc_t op = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, d = nullptr;
  cublasLtMatmulPreference_t preference = nullptr;
  ~Descriptors() {
    if (preference) cublasLtMatmulPreferenceDestroy(preference);
    if (d) cublasLtMatrixLayoutDestroy(d);
    if (b) cublasLtMatrixLayoutDestroy(b);
    if (a) cublasLtMatrixLayoutDestroy(a);
    if (op) cublasLtMatmulDescDestroy(op);
  }
};

}  // namespace

LtGemm::~LtGemm() {
  if (workspace_) cudaFree(workspace_);
  if (handle_) cublasLtDestroy(static_cast<cublasLtHandle_t>(handle_));
}

Status LtGemm::Init(size_t workspace_bytes) {
  cublasLtHandle_t handle;
  if (cublasStatus_t s = cublasLtCreate(&handle); s != CUBLAS_STATUS_SUCCESS) return LtError("create", s);
  handle_ = handle;
  if (cudaMalloc(&workspace_, workspace_bytes) != cudaSuccess) {
    workspace_ = nullptr;
    return ResourceExhausted("cuda: cannot allocate the cuBLASLt workspace");
  }
  workspace_bytes_ = workspace_bytes;
  return Status::Ok();
}

// Row-major out[t, n] = x[t, k] w[n, k]^T is column-major out^T (n x t) = w^T (n x k) x^T (k x t):
// A = w seen as a column-major k x n matrix, transposed.
Status LtGemm::Run(DType type, const void* x, const void* w, float* out, int64_t t, int64_t n, int64_t k,
                   int64_t ld_out, cudaStream_t stream) {
  Descriptors desc;
  const cudaDataType_t ab = CudaType(type);
  cublasStatus_t s = cublasLtMatmulDescCreate(&desc.op, CUBLAS_COMPUTE_32F, CUDA_R_32F);
  if (s != CUBLAS_STATUS_SUCCESS) return LtError("matmul desc", s);
  const cublasOperation_t transpose = CUBLAS_OP_T, none = CUBLAS_OP_N;
  cublasLtMatmulDescSetAttribute(desc.op, CUBLASLT_MATMUL_DESC_TRANSA, &transpose, sizeof(transpose));
  cublasLtMatmulDescSetAttribute(desc.op, CUBLASLT_MATMUL_DESC_TRANSB, &none, sizeof(none));
  if ((s = cublasLtMatrixLayoutCreate(&desc.a, ab, k, n, k)) != CUBLAS_STATUS_SUCCESS) return LtError("layout a", s);
  if ((s = cublasLtMatrixLayoutCreate(&desc.b, ab, k, t, k)) != CUBLAS_STATUS_SUCCESS) return LtError("layout b", s);
  if ((s = cublasLtMatrixLayoutCreate(&desc.d, CUDA_R_32F, n, t, ld_out)) != CUBLAS_STATUS_SUCCESS) {
    return LtError("layout d", s);
  }
  if ((s = cublasLtMatmulPreferenceCreate(&desc.preference)) != CUBLAS_STATUS_SUCCESS) return LtError("preference", s);
  cublasLtMatmulPreferenceSetAttribute(desc.preference, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &workspace_bytes_,
                                       sizeof(workspace_bytes_));
  auto handle = static_cast<cublasLtHandle_t>(handle_);
  cublasLtMatmulHeuristicResult_t heuristic{};
  int found = 0;
  s = cublasLtMatmulAlgoGetHeuristic(handle, desc.op, desc.a, desc.b, desc.d, desc.d, desc.preference, 1, &heuristic,
                                     &found);
  if (s != CUBLAS_STATUS_SUCCESS || found == 0) return LtError("no algorithm", s);
  const float alpha = 1.0f, beta = 0.0f;
  s = cublasLtMatmul(handle, desc.op, &alpha, w, desc.a, x, desc.b, &beta, out, desc.d, out, desc.d, &heuristic.algo,
                     workspace_, workspace_bytes_, stream);
  if (s != CUBLAS_STATUS_SUCCESS) return LtError("matmul", s);
  return Status::Ok();
}

}  // namespace gemmarun::cuda
