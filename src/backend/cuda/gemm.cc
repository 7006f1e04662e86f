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

}  // namespace

// The descriptors and algorithm of one shape.
struct LtGemm::Descriptors {
  cublasLtMatmulDesc_t op = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, d = nullptr;
  cublasLtMatmulPreference_t preference = nullptr;
  cublasLtMatmulAlgo_t algo{};
  ~Descriptors() {
    if (preference) cublasLtMatmulPreferenceDestroy(preference);
    if (d) cublasLtMatrixLayoutDestroy(d);
    if (b) cublasLtMatrixLayoutDestroy(b);
    if (a) cublasLtMatrixLayoutDestroy(a);
    if (op) cublasLtMatmulDescDestroy(op);
  }
};

LtGemm::LtGemm() = default;
LtGemm::~LtGemm() {
  plans_.clear();
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
// A = w seen as a column-major k x n matrix, transposed. The descriptors and the
// heuristic's algorithm are made once per shape: asking for them costs more host
// time than a prefill chunk's GEMM takes on the GPU.
Status LtGemm::Run(DType type, const void* x, int64_t ld_x, const void* w, int64_t ld_w, bool w_is_k_by_n,
                   float* out, int64_t ld_out, int64_t t, int64_t n, int64_t k, cudaStream_t stream) {
  const PlanKey key{static_cast<int>(type) * 2 + (w_is_k_by_n ? 1 : 0), t, n, k, ld_x, ld_w, ld_out};
  auto it = plans_.find(key);
  if (it == plans_.end()) {
    auto plan = std::make_unique<Descriptors>();
    const cudaDataType_t ab = CudaType(type);
    cublasStatus_t s = cublasLtMatmulDescCreate(&plan->op, CUBLAS_COMPUTE_32F, CUDA_R_32F);
    if (s != CUBLAS_STATUS_SUCCESS) return LtError("matmul desc", s);
    // w [k, n] row-major is already the column-major n x k matrix op(A) must be.
    const cublasOperation_t transpose = CUBLAS_OP_T, none = CUBLAS_OP_N;
    cublasLtMatmulDescSetAttribute(plan->op, CUBLASLT_MATMUL_DESC_TRANSA, w_is_k_by_n ? &none : &transpose,
                                   sizeof(transpose));
    cublasLtMatmulDescSetAttribute(plan->op, CUBLASLT_MATMUL_DESC_TRANSB, &none, sizeof(none));
    s = w_is_k_by_n ? cublasLtMatrixLayoutCreate(&plan->a, ab, n, k, ld_w) : cublasLtMatrixLayoutCreate(&plan->a, ab, k, n, ld_w);
    if (s != CUBLAS_STATUS_SUCCESS) return LtError("layout a", s);
    if ((s = cublasLtMatrixLayoutCreate(&plan->b, ab, k, t, ld_x)) != CUBLAS_STATUS_SUCCESS) return LtError("layout b", s);
    if ((s = cublasLtMatrixLayoutCreate(&plan->d, CUDA_R_32F, n, t, ld_out)) != CUBLAS_STATUS_SUCCESS) {
      return LtError("layout d", s);
    }
    if ((s = cublasLtMatmulPreferenceCreate(&plan->preference)) != CUBLAS_STATUS_SUCCESS) {
      return LtError("preference", s);
    }
    cublasLtMatmulPreferenceSetAttribute(plan->preference, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &workspace_bytes_,
                                         sizeof(workspace_bytes_));
    cublasLtMatmulHeuristicResult_t heuristic{};
    int found = 0;
    s = cublasLtMatmulAlgoGetHeuristic(static_cast<cublasLtHandle_t>(handle_), plan->op, plan->a, plan->b, plan->d,
                                       plan->d, plan->preference, 1, &heuristic, &found);
    if (s != CUBLAS_STATUS_SUCCESS || found == 0) return LtError("no algorithm", s);
    plan->algo = heuristic.algo;
    if (plans_.size() >= kMaxPlans) plans_.clear();  // shapes are few; a bound for odd callers
    it = plans_.emplace(key, std::move(plan)).first;
  }
  const Descriptors& plan = *it->second;
  const float alpha = 1.0f, beta = 0.0f;
  const cublasStatus_t s = cublasLtMatmul(static_cast<cublasLtHandle_t>(handle_), plan.op, &alpha, w, plan.a, x,
                                          plan.b, &beta, out, plan.d, out, plan.d, &plan.algo, workspace_,
                                          workspace_bytes_, stream);
  if (s != CUBLAS_STATUS_SUCCESS) return LtError("matmul", s);
  return Status::Ok();
}

}  // namespace gemmarun::cuda
