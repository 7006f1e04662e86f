// Griffin's (RecurrentGemma's) temporal-block ops at RecurrentGemma-2B's shapes
// (lru width 2560, 10 heads of 256, Conv1D width 4): a decode step (1 token)
// and a 512-token prefill, per thread count. GEMMARUN_CPU_TARGET pins the target.
//
//   build/bench/griffin_bench --benchmark_repetitions=5
//   GEMMARUN_CPU_TARGET=avx2 build/bench/griffin_bench --benchmark_filter=BlockDiagonal
//
// BlockDiagonalViaMatMul is the alternative the backend does not take: each
// head through the regular MatMul (weights transposed once to [out, in], the
// head's activations gathered and its outputs scattered), for comparison.
// Other jobs on a shared machine skew single runs: repeat and compare medians.
#include <benchmark/benchmark.h>

#include <memory>
#include <random>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/kernels.h"
#include "ops/backend.h"
#include "tensor/tensor.h"

namespace gemmarun {
namespace {

constexpr int64_t kWidth = 2560, kHeads = 10, kBlock = 256, kConvWidth = 4;

std::vector<float> Random(size_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

TensorView View(std::vector<float>& v, Shape shape) { return TensorView{v.data(), DType::kF32, shape}; }

void Label(benchmark::State& state) { state.SetLabel(cpu::SelectedTarget()); }

void BlockDiagonal(benchmark::State& state) {
  const int64_t tokens = state.range(0);
  auto backend = CreateCpuBackend(static_cast<int>(state.range(1)));
  std::vector<float> x = Random(tokens * kWidth, 1), w = Random(kHeads * kBlock * kBlock, 2, 0.06f);
  std::vector<float> b = Random(kWidth, 3), out(tokens * kWidth);
  for (auto _ : state) {
    backend->BlockDiagonalMatMul(View(x, Shape{tokens, kWidth}), View(w, Shape{kHeads, kBlock, kBlock}),
                                 View(b, Shape{kHeads, kBlock}), View(out, Shape{tokens, kWidth}));
    benchmark::DoNotOptimize(out[0]);
  }
  state.counters["GFLOP/s"] = benchmark::Counter(2.0 * tokens * kWidth * kBlock / 1e9,
                                                 benchmark::Counter::kIsIterationInvariantRate);
  Label(state);
}

void BlockDiagonalViaMatMul(benchmark::State& state) {
  const int64_t tokens = state.range(0);
  auto backend = CreateCpuBackend(static_cast<int>(state.range(1)));
  std::vector<float> x = Random(tokens * kWidth, 1), w = Random(kHeads * kBlock * kBlock, 2, 0.06f);
  std::vector<float> b = Random(kWidth, 3), out(tokens * kWidth);
  std::vector<float> wt(w.size()), xh(tokens * kBlock), oh(tokens * kBlock);
  for (int64_t h = 0; h < kHeads; ++h) {
    for (int64_t i = 0; i < kBlock; ++i) {
      for (int64_t j = 0; j < kBlock; ++j) wt[(h * kBlock + j) * kBlock + i] = w[(h * kBlock + i) * kBlock + j];
    }
  }
  for (auto _ : state) {
    for (int64_t h = 0; h < kHeads; ++h) {
      for (int64_t t = 0; t < tokens; ++t) {
        std::copy_n(x.data() + t * kWidth + h * kBlock, kBlock, xh.data() + t * kBlock);
      }
      backend->MatMul(View(xh, Shape{tokens, kBlock}),
                      TensorView{wt.data() + h * kBlock * kBlock, DType::kF32, Shape{kBlock, kBlock}},
                      TensorView{b.data() + h * kBlock, DType::kF32, Shape{kBlock}}, View(oh, Shape{tokens, kBlock}));
      for (int64_t t = 0; t < tokens; ++t) {
        std::copy_n(oh.data() + t * kBlock, kBlock, out.data() + t * kWidth + h * kBlock);
      }
    }
    benchmark::DoNotOptimize(out[0]);
  }
  state.counters["GFLOP/s"] = benchmark::Counter(2.0 * tokens * kWidth * kBlock / 1e9,
                                                 benchmark::Counter::kIsIterationInvariantRate);
  Label(state);
}

void CausalConv(benchmark::State& state) {
  const int64_t tokens = state.range(0);
  auto backend = CreateCpuBackend(static_cast<int>(state.range(1)));
  std::vector<float> x = Random(tokens * kWidth, 1), w = Random(kWidth * kConvWidth, 2), b = Random(kWidth, 3);
  std::vector<float> st = Random((kConvWidth - 1) * kWidth, 4), out(tokens * kWidth);
  for (auto _ : state) {
    backend->CausalConv1D(View(x, Shape{tokens, kWidth}), View(w, Shape{kWidth, kConvWidth}), View(b, Shape{kWidth}),
                          View(st, Shape{kConvWidth - 1, kWidth}), View(out, Shape{tokens, kWidth}));
    benchmark::DoNotOptimize(out[0]);
  }
  state.SetItemsProcessed(state.iterations() * tokens * kWidth);
  Label(state);
}

void RgLru(benchmark::State& state) {
  const int64_t tokens = state.range(0);
  auto backend = CreateCpuBackend(static_cast<int>(state.range(1)));
  std::vector<float> x = Random(tokens * kWidth, 1), gx = Random(tokens * kWidth, 2), ga = Random(tokens * kWidth, 3);
  std::vector<float> param = Random(kWidth, 4), h = Random(kWidth, 5), out(tokens * kWidth);
  const Shape shape{tokens, kWidth};
  for (auto _ : state) {
    backend->RgLru(View(x, shape), View(gx, shape), View(ga, shape), View(param, Shape{kWidth}), 1,
                   View(h, Shape{kWidth}), View(out, shape));
    benchmark::DoNotOptimize(out[0]);
  }
  state.SetItemsProcessed(state.iterations() * tokens * kWidth);
  Label(state);
}

void GeluAndMul(benchmark::State& state) {
  const int64_t tokens = state.range(0);
  auto backend = CreateCpuBackend(static_cast<int>(state.range(1)));
  std::vector<float> x = Random(tokens * kWidth, 1), y = Random(tokens * kWidth, 2), out(tokens * kWidth);
  const Shape shape{tokens, kWidth};
  for (auto _ : state) {  // out = gelu(x * y): no feedback from one iteration into the next
    backend->Mul(View(x, shape), View(y, shape), View(out, shape));
    backend->Gelu(View(out, shape));
    benchmark::DoNotOptimize(out[0]);
  }
  state.SetItemsProcessed(state.iterations() * tokens * kWidth);
  Label(state);
}

void Shapes(benchmark::internal::Benchmark* b) {
  b->ArgNames({"tokens", "threads"});
  for (int threads : {1, 2}) {
    for (int tokens : {1, 512}) b->Args({tokens, threads});
  }
  b->UseRealTime()->Unit(benchmark::kMicrosecond);
}

BENCHMARK(BlockDiagonal)->Apply(Shapes);
BENCHMARK(BlockDiagonalViaMatMul)->Apply(Shapes);
BENCHMARK(CausalConv)->Apply(Shapes);
BENCHMARK(RgLru)->Apply(Shapes);
BENCHMARK(GeluAndMul)->Apply(Shapes);

}  // namespace
}  // namespace gemmarun

BENCHMARK_MAIN();
