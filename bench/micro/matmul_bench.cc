// CPU MatMul throughput per weight type, and the machine's streaming read
// bandwidth to compare decode against.
//
//   Decode (one token): GB/s of weight bytes read (decode is bandwidth-bound:
//   the ceiling is ReadBandwidth with the same thread count).
//   Prefill (T tokens): GFLOP/s (2 * T * N * K per call).
//
//   build-perf/bench/matmul_bench --benchmark_filter='Decode' --benchmark_repetitions=5
//   GR_QUANT_PATH=avx2 build-perf/bench/matmul_bench ...   (portable | avx2 | avx512_vnni_no_vbmi | avx512_vnni)
//   GR_MATMUL_PRECISION=bf16 build-perf/bench/matmul_bench --benchmark_filter='Prefill.*type:1/'
//
// Other jobs on a shared machine skew single runs: repeat and compare medians.
#include <benchmark/benchmark.h>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <cstring>
#include <memory>
#include <random>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/matmul_quant.h"
#include "base/buffer.h"
#include "base/thread_pool.h"
#include "ops/backend.h"
#include "tensor/quant.h"
#include "tensor/tensor.h"

namespace gemmarun {
namespace {

const DType kTypes[] = {DType::kF32, DType::kBF16, DType::kF16, DType::kQ8_0,
                        DType::kQ4_0, DType::kQ5_0, DType::kQ4_K, DType::kQ6_K};

// Random weights of any type. Block types get random codes with sane f16
// scales (speed does not depend on the values, only NaNs would look odd).
Tensor RandomWeights(DType type, int64_t n, int64_t k) {
  Tensor w(type, Shape{n, k});
  std::mt19937 rng(1);
  std::normal_distribution<float> normal(0.0f, 0.02f);
  if (!IsQuantized(type)) {
    std::vector<float> row(k);
    for (int64_t r = 0; r < n; ++r) {
      for (float& v : row) v = normal(rng);
      QuantizeRow(type, row.data(), w.view().row(r), k);
    }
    return w;
  }
  uint8_t* bytes = w.data();
  for (size_t i = 0; i < w.bytes(); i += 4) {
    const uint32_t v = rng();
    std::memcpy(bytes + i, &v, std::min<size_t>(4, w.bytes() - i));
  }
  const uint16_t scale = F32ToF16(0.01f);
  const size_t block_bytes = Info(type).block_bytes;
  for (size_t off = 0; off < w.bytes(); off += block_bytes) {
    uint8_t* block = bytes + off;
    if (type == DType::kQ6_K) {
      std::memcpy(block + 208, &scale, 2);
    } else {
      std::memcpy(block, &scale, 2);
      if (type == DType::kQ4_K) std::memcpy(block + 2, &scale, 2);
    }
  }
  return w;
}

// GR_QUANT_PATH picks the integer kernels to measure (default: the best here).
void ApplyPathFromEnvironment() {
  const char* wanted = std::getenv("GR_QUANT_PATH");
  if (wanted == nullptr) return;
  for (cpu::QuantPath path : cpu::SupportedQuantPaths()) {
    if (std::string(cpu::Name(path)) == wanted) return cpu::SetQuantPathForTest(path);
  }
  std::fprintf(stderr, "GR_QUANT_PATH=%s is not supported here\n", wanted);
  std::exit(1);
}

void RunMatMul(benchmark::State& state, int64_t tokens, int64_t n, int64_t k, bool from_dram = true) {
  ApplyPathFromEnvironment();
  const DType type = kTypes[state.range(0)];
  const int threads = static_cast<int>(state.range(1));
  // GR_MATMUL_PRECISION=bf16: bf16 weights multiply bf16-rounded activations.
  const char* precision = std::getenv("GR_MATMUL_PRECISION");
  auto backend = CreateCpuBackend(threads, precision != nullptr && std::string(precision) == "bf16"
                                               ? MatMulPrecision::kBF16
                                               : MatMulPrecision::kF32);
  // Decode rotates over copies of the weights, 256 MiB in all, so that the
  // 32 MiB L3 cannot serve a matrix it has just seen: every byte comes from DRAM.
  const size_t bytes = RowBytes(type, k) * n;
  const size_t copies = tokens == 1 && from_dram ? std::max<size_t>(1, ((size_t{256} << 20) + bytes - 1) / bytes) : 1;
  std::vector<Tensor> weights;
  for (size_t c = 0; c < copies; ++c) weights.push_back(RandomWeights(type, n, k));
  Tensor x(DType::kF32, Shape{tokens, k}), out(DType::kF32, Shape{tokens, n});
  std::mt19937 rng(2);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (int64_t i = 0; i < tokens * k; ++i) x.f32()[i] = normal(rng);
  backend->MatMul(x.view(), weights[0].view(), TensorView{}, out.view());  // warm-up: size buffers
  size_t next = 0;
  for (auto _ : state) {
    backend->MatMul(x.view(), weights[next].view(), TensorView{}, out.view());
    next = (next + 1) % copies;
    benchmark::DoNotOptimize(out.f32()[0]);
  }
  const Tensor& w = weights[0];
  state.SetLabel(std::string(Name(type)) + " " + cpu::Name(cpu::ActiveQuantPath()));
  if (tokens == 1) {
    state.counters["GB/s"] = benchmark::Counter(static_cast<double>(w.bytes()) / 1e9,
                                                benchmark::Counter::kIsIterationInvariantRate);
  } else {
    state.counters["GFLOP/s"] = benchmark::Counter(2.0 * tokens * n * k / 1e9,
                                                   benchmark::Counter::kIsIterationInvariantRate);
  }
}

void TypeAndThreads(benchmark::internal::Benchmark* b) {
  b->ArgNames({"type", "threads"});
  for (int threads : {1, 2}) {
    for (int t = 0; t < static_cast<int>(std::size(kTypes)); ++t) b->Args({t, threads});
  }
  b->UseRealTime()->Unit(benchmark::kMillisecond);
}

// Gemma-2B shapes: the MLP's gate/up (N=16384, K=2048) and down (N=2048, K=16384).
void BM_DecodeWide(benchmark::State& state) { RunMatMul(state, 1, 16384, 2048); }
void BM_DecodeDeep(benchmark::State& state) { RunMatMul(state, 1, 2048, 16384); }
BENCHMARK(BM_DecodeWide)->Apply(TypeAndThreads);
BENCHMARK(BM_DecodeDeep)->Apply(TypeAndThreads);
// Prefill: GFLOP/s on a 2048 x 2048 matrix (compute-bound).
void BM_Prefill128(benchmark::State& state) { RunMatMul(state, 128, 2048, 2048); }
void BM_Prefill512(benchmark::State& state) { RunMatMul(state, 512, 2048, 2048); }
BENCHMARK(BM_Prefill128)->Apply(TypeAndThreads);
BENCHMARK(BM_Prefill512)->Apply(TypeAndThreads);
// Prefill on the MLP's shapes, where Gemma-2B spends 90% of its prefill.
void BM_Prefill512Wide(benchmark::State& state) { RunMatMul(state, 512, 16384, 2048); }
void BM_Prefill512Deep(benchmark::State& state) { RunMatMul(state, 512, 2048, 16384); }
BENCHMARK(BM_Prefill512Wide)->Apply(TypeAndThreads);
BENCHMARK(BM_Prefill512Deep)->Apply(TypeAndThreads);

// Batched decode (8 and 16 sequences, one token each) on the MLP's gate/up shape.
void BM_Batch8Wide(benchmark::State& state) { RunMatMul(state, 8, 16384, 2048); }
void BM_Batch16Wide(benchmark::State& state) { RunMatMul(state, 16, 16384, 2048); }
BENCHMARK(BM_Batch8Wide)->Apply(TypeAndThreads);
BENCHMARK(BM_Batch16Wide)->Apply(TypeAndThreads);

// Gemma 3 270M's tied LM head: many short rows (K=640: 20 blocks of 32; the
// K-quants need K % 256 == 0, so they are left out).
void BM_DecodeVocab(benchmark::State& state) { RunMatMul(state, 1, 262144, 640); }
BENCHMARK(BM_DecodeVocab)
    ->ArgNames({"type", "threads"})
    ->ArgsProduct({{0, 1, 2, 3, 4, 5}, {1, 2}})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);
// K sweep at a constant 32 Mi weights (Q8_0, one thread): how row length affects decode.
void BM_DecodeShape(benchmark::State& state) {
  RunMatMul(state, 1, (int64_t{1} << 25) / state.range(2), state.range(2));
}
BENCHMARK(BM_DecodeShape)
    ->ArgNames({"type", "threads", "k"})
    ->ArgsProduct({{3}, {1}, {1024, 2048, 4096, 8192, 12288, 16384, 32768}})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);
// Weights that stay in L2 (N=64): the call's fixed cost.
void BM_DecodeCached(benchmark::State& state) { RunMatMul(state, 1, 64, 2048); }
BENCHMARK(BM_DecodeCached)->Apply(TypeAndThreads);
// Weights that fill about half of a 1 MiB L2 (512 x 2048; under 1.1 MiB for
// every type but f32): the kernels' arithmetic pace per thread, which decode
// needs above the memory's.
void BM_DecodeL2(benchmark::State& state) { RunMatMul(state, 1, 512, 2048, /*from_dram=*/false); }
BENCHMARK(BM_DecodeL2)->Apply(TypeAndThreads);

// Activation quantization (once per MatMul call), per 2048 values.
void BM_QuantizeActivations(benchmark::State& state) {
  std::vector<float> x(2048);
  std::mt19937 rng(3);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (float& v : x) v = normal(rng);
  cpu::QuantizedActivations acts;
  acts.Resize(1, x.size());
  for (auto _ : state) {
    acts.QuantizeRow(0, x.data());
    benchmark::DoNotOptimize(acts.qs(0));
  }
}
BENCHMARK(BM_QuantizeActivations);

// Streaming read over a 1 GiB buffer (huge-page advised, as weights are), split
// across the pool as MatMul splits rows: the ceiling for decode. The loop sums
// 256-bit loads into four accumulators so that it is bound by memory, not by
// the additions.
#if defined(__x86_64__)
__attribute__((target("avx2"))) uint64_t SumWords(const uint8_t* p, size_t bytes) {
  __m256i s0 = _mm256_setzero_si256(), s1 = s0, s2 = s0, s3 = s0;
  for (size_t i = 0; i + 128 <= bytes; i += 128) {
    s0 = _mm256_add_epi64(s0, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i)));
    s1 = _mm256_add_epi64(s1, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i + 32)));
    s2 = _mm256_add_epi64(s2, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i + 64)));
    s3 = _mm256_add_epi64(s3, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i + 96)));
  }
  const __m256i s = _mm256_add_epi64(_mm256_add_epi64(s0, s1), _mm256_add_epi64(s2, s3));
  alignas(32) uint64_t lanes[4];
  _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), s);
  return lanes[0] + lanes[1] + lanes[2] + lanes[3];
}
#else
uint64_t SumWords(const uint8_t* p, size_t bytes) {
  uint64_t s0 = 0, s1 = 0;
  for (size_t i = 0; i + 16 <= bytes; i += 16) {
    uint64_t a, b;
    std::memcpy(&a, p + i, 8);
    std::memcpy(&b, p + i + 8, 8);
    s0 += a;
    s1 += b;
  }
  return s0 + s1;
}
#endif

void BM_ReadBandwidth(benchmark::State& state) {
  const int threads = static_cast<int>(state.range(0));
  const size_t bytes = size_t{1} << 30;
  Buffer buffer(bytes);
  std::memset(buffer.data(), 1, bytes);
  ThreadPool pool(threads);
  constexpr size_t kChunk = size_t{1} << 20;  // whole 1 MiB pieces, 64-byte aligned
  std::vector<uint64_t> sums(threads);
  for (auto _ : state) {
    pool.ParallelFor(bytes / kChunk, 1, [&](size_t begin, size_t end, int index) {
      sums[index] = SumWords(buffer.data() + begin * kChunk, (end - begin) * kChunk);
    });
    benchmark::DoNotOptimize(sums.data());
  }
  state.counters["GB/s"] =
      benchmark::Counter(static_cast<double>(bytes) / 1e9, benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_ReadBandwidth)->ArgName("threads")->Arg(1)->Arg(2)->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace gemmarun

BENCHMARK_MAIN();
