// Matrix-vector bandwidth on the GPU: GB/s of weights streamed by
// CudaBackend::MatMul per dtype and Gemma shape, next to the device's copy
// bandwidth measured with a 16-byte copy kernel (read + write bytes). Weights
// rotate through enough copies to defeat the L2. Not a test; timings only.
//   cuda_gemv_bench [--rows 1] [--quick] [--bf16]   (--rows > 8 measures the cuBLASLt prefill
//   path; --quick skips f32 weights; --bf16 multiplies in bf16 on tensor cores, else exact f32)
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/kernels.h"

namespace gemmarun {
namespace {

double Seconds(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

double CopyBandwidth() {
  const size_t bytes = size_t{2} << 30;
  void *src = nullptr, *dst = nullptr;
  if (cudaMalloc(&src, bytes) != cudaSuccess || cudaMalloc(&dst, bytes) != cudaSuccess) return 0.0;
  cudaMemset(src, 1, bytes);
  cuda::LaunchCopy(src, dst, bytes, nullptr);
  cudaDeviceSynchronize();
  cudaEvent_t begin, end;
  cudaEventCreate(&begin);
  cudaEventCreate(&end);
  const int iterations = 20;
  cudaEventRecord(begin);
  for (int i = 0; i < iterations; ++i) cuda::LaunchCopy(src, dst, bytes, nullptr);
  cudaEventRecord(end);
  cudaEventSynchronize(end);
  float ms = 0.0f;
  cudaEventElapsedTime(&ms, begin, end);
  cudaFree(src);
  cudaFree(dst);
  return 2.0 * bytes * iterations / (ms * 1e-3) / 1e9;
}

struct Shape2 {
  const char* name;
  int64_t n, k;
};

int Main(int argc, char** argv) {
  int rows = 1;
  bool quick = false;
  MatMulPrecision precision = MatMulPrecision::kF32;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--rows") == 0 && i + 1 < argc) {
      rows = std::atoi(argv[++i]);
    } else if (std::strcmp(argv[i], "--quick") == 0) {
      quick = true;
    } else if (std::strcmp(argv[i], "--bf16") == 0) {
      precision = MatMulPrecision::kBF16;
    } else {
      std::fprintf(stderr, "error: unknown flag %s (expected --rows N, --quick, --bf16)\n", argv[i]);
      return 1;
    }
  }
  if (CudaDeviceCount() == 0) {
    std::fprintf(stderr, "error: no CUDA device\n");
    return 1;
  }
  cudaDeviceProp prop{};
  cudaGetDeviceProperties(&prop, 0);
  const double copy = CopyBandwidth();
  std::printf("device: %s, %d SMs; copy kernel: %.0f GB/s (read + write)\n", prop.name, prop.multiProcessorCount,
              copy);
  auto backend = CudaBackend::Create(0, precision).value();
  const Shape2 shapes[] = {{"2B qkv", 2560, 2048},      {"2B gate/up", 16384, 2048}, {"2B down", 2048, 16384},
                           {"9B gate/up", 14336, 3584}, {"9B down", 3584, 14336},    {"27B-ish down", 4608, 16384},
                           {"lm head 256k", 256000, 2304}};
  const DType types[] = {DType::kF32,  DType::kBF16, DType::kF16,  DType::kQ8_0,
                         DType::kQ4_0, DType::kQ5_0, DType::kQ4_K, DType::kQ6_K};
  std::printf("rows=%d\n%-14s %-5s %10s %10s %8s %7s %8s\n", rows, "shape", "dtype", "MB", "us/call", "GB/s", "%copy",
              "TFLOP/s");
  for (const Shape2& s : shapes) {
    void *x = nullptr, *out = nullptr;
    cudaMalloc(&x, rows * s.k * sizeof(float));
    cudaMalloc(&out, rows * s.n * sizeof(float));
    cudaMemset(x, 0, rows * s.k * sizeof(float));
    for (DType type : types) {
      if (quick && type == DType::kF32) continue;
      const size_t bytes = RowBytes(type, s.k) * s.n;
      const int copies = static_cast<int>(std::max<size_t>(1, (size_t{512} << 20) / bytes + 1));
      std::vector<void*> weights(copies, nullptr);
      bool ok = true;
      for (void*& w : weights) {
        ok = ok && cudaMalloc(&w, bytes) == cudaSuccess;
        if (ok) cudaMemset(w, 0x11, bytes);  // small finite scales and codes in every format
      }
      if (!ok) {
        std::printf("%-14s %-5s  (out of memory)\n", s.name, Name(type));
        for (void* w : weights) cudaFree(w);
        cudaGetLastError();
        continue;
      }
      auto run = [&](int iterations) {
        for (int i = 0; i < iterations; ++i) {
          backend->MatMul(TensorView{x, DType::kF32, Shape{rows, s.k}},
                          TensorView{weights[i % copies], type, Shape{s.n, s.k}}, TensorView{},
                          TensorView{out, DType::kF32, Shape{rows, s.n}});
        }
        return backend->Synchronize();
      };
      if (Status st = run(copies + 2); !st.ok()) {
        std::fprintf(stderr, "error: %s\n", st.message().c_str());
        return 1;
      }
      const int iterations = std::max(20, static_cast<int>(std::min<double>(2000, 2e9 / bytes)));
      const auto start = std::chrono::steady_clock::now();
      (void)run(iterations);
      const double seconds = Seconds(start) / iterations;
      const double gbs = bytes / seconds / 1e9;
      const double tflops = 2.0 * rows * s.n * s.k / seconds / 1e12;
      std::printf("%-14s %-5s %10.1f %10.1f %8.0f %6.0f%% %8.1f\n", s.name, Name(type), bytes / 1e6, seconds * 1e6,
                  gbs, 100.0 * gbs / copy, tflops);
      for (void* w : weights) cudaFree(w);
    }
    cudaFree(x);
    cudaFree(out);
  }
  return 0;
}

}  // namespace
}  // namespace gemmarun

int main(int argc, char** argv) { return gemmarun::Main(argc, argv); }
