// Attention over a long KV cache: the paged kernel (backend/cpu/attention.cc)
// per cache dtype, against a copy of the contiguous f32 kernel it replaced
// (per query head and token: scores of every key into a context-sized buffer,
// softmax, weighted values; each KV row read once per query head).
//
// Shape: Gemma-3-like 4 query heads, 1 KV head, head_dim 256. Decode: one
// query row after `depth` keys; prefill: `rows` new rows after `depth` keys.
// Counters: keys/s (keys seen per query row, summed over rows).
//
//   build/bench/attention_bench --benchmark_filter='Decode' --benchmark_repetitions=5
//   build/bench/attention_bench --benchmark_filter='Prefill/.*/4096/512/1'
//
// Args: dtype (0 f32, 1 f16, 2 bf16, 3 q8_0; the legacy kernel is f32 only),
// depth, rows (prefill), threads. Other jobs on a shared machine skew single
// runs: repeat and compare medians.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <numeric>
#include <random>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/kernels.h"
#include "base/thread_pool.h"
#include "ops/backend.h"
#include "tensor/quant.h"
#include "tensor/tensor.h"

namespace gemmarun {
namespace {

constexpr int64_t kHeads = 4, kKvHeads = 1, kHeadDim = 256, kBlockSize = 16;
const DType kTypes[] = {DType::kF32, DType::kF16, DType::kBF16, DType::kQ8_0};

std::vector<float> RandomFloats(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

// A cache holding keys 0 .. depth + rows - 1 of one sequence in shuffled blocks.
struct PagedSetup {
  PagedSetup(DType dtype, int64_t depth, int64_t rows) {
    const int64_t keys = depth + rows;
    const int64_t blocks = (keys + kBlockSize - 1) / kBlockSize;
    table.resize(blocks);
    std::iota(table.begin(), table.end(), 0);
    std::shuffle(table.begin(), table.end(), std::mt19937(3));
    const Shape shape{blocks * kBlockSize, kKvHeads, kHeadDim};
    k = Tensor(dtype, shape);
    v = Tensor(dtype, shape);
    const std::vector<float> values = RandomFloats(shape.elements(), 1);
    for (int64_t r = 0; r < shape[0] * kKvHeads; ++r) {
      QuantizeRow(dtype, values.data() + r * kHeadDim, k.view().row(r), kHeadDim);
      QuantizeRow(dtype, values.data() + r * kHeadDim, v.view().row(r), kHeadDim);
    }
    q = RandomFloats(rows * kHeads * kHeadDim, 2);
    out.resize(q.size());
    sequence.num_rows = rows;
    sequence.first_index = depth;
    sequence.block_table = table;
    args.q = TensorView{q.data(), DType::kF32, Shape{rows, kHeads, kHeadDim}};
    args.out = TensorView{out.data(), DType::kF32, Shape{rows, kHeads, kHeadDim}};
    args.cache = KvCacheView{k.view(), v.view(), kBlockSize};
    args.sequences = std::span<const AttentionSequence>(&sequence, 1);
    args.scale = 1.0f / 16.0f;
  }
  Tensor k, v;
  std::vector<int32_t> table;
  std::vector<float> q, out;
  AttentionSequence sequence;
  AttentionArgs args;
};

void RunPaged(benchmark::State& state, int64_t rows) {
  const DType dtype = kTypes[state.range(0)];
  const int64_t depth = state.range(1);
  std::unique_ptr<Backend> backend = CreateCpuBackend(static_cast<int>(state.range(3)));
  PagedSetup setup(dtype, depth, rows);
  for (auto _ : state) {
    backend->Attention(setup.args);
    benchmark::DoNotOptimize(setup.out.data());
  }
  const double keys = static_cast<double>(rows) * depth + rows * (rows + 1) / 2.0;
  state.counters["keys/s"] = benchmark::Counter(keys, benchmark::Counter::kIsIterationInvariantRate);
  state.SetLabel(Name(dtype));
}

void BM_PagedDecode(benchmark::State& state) { RunPaged(state, 1); }
void BM_PagedPrefill(benchmark::State& state) { RunPaged(state, state.range(2)); }

// The replaced kernel, f32 contiguous cache (slot = index), for comparison.
void LegacyAttention(ThreadPool& pool, std::vector<std::vector<float>>& scratch, const float* q, const float* k_cache,
                     const float* v_cache, float* out, int64_t num_tokens, int64_t first_index, float scale) {
  const int64_t group = kHeads / kKvHeads;
  const size_t max_keys = first_index + num_tokens;
  pool.ParallelFor(num_tokens * kHeads, 1, [&](size_t begin, size_t end, int thread) {
    std::vector<float>& scores = scratch[thread];
    if (scores.size() < max_keys) scores.resize(max_keys);
    for (size_t item = begin; item < end; ++item) {
      const int64_t t = item / kHeads, h = item % kHeads, kv = h / group;
      const int64_t count = first_index + t + 1;
      const size_t stride = kKvHeads * kHeadDim;
      cpu::DotsF32(q + (t * kHeads + h) * kHeadDim, k_cache + kv * kHeadDim, stride, count, kHeadDim, scores.data());
      float max_score = -std::numeric_limits<float>::infinity();
      for (int64_t j = 0; j < count; ++j) max_score = std::max(max_score, scores[j] *= scale);
      const float inv_total = 1.0f / cpu::ExpShiftSum(scores.data(), count, max_score);
      for (int64_t j = 0; j < count; ++j) scores[j] *= inv_total;
      float* o = out + (t * kHeads + h) * kHeadDim;
      std::fill(o, o + kHeadDim, 0.0f);
      cpu::WeightedSumF32(scores.data(), v_cache + kv * kHeadDim, stride, count, kHeadDim, o);
    }
  });
}

void RunLegacy(benchmark::State& state, int64_t rows) {
  const int64_t depth = state.range(1);
  ThreadPool pool(static_cast<int>(state.range(3)));
  std::vector<std::vector<float>> scratch(pool.num_threads());
  const int64_t keys_total = depth + rows;
  const std::vector<float> k = RandomFloats(keys_total * kKvHeads * kHeadDim, 1);
  const std::vector<float> v = RandomFloats(keys_total * kKvHeads * kHeadDim, 1);
  const std::vector<float> q = RandomFloats(rows * kHeads * kHeadDim, 2);
  std::vector<float> out(q.size());
  for (auto _ : state) {
    LegacyAttention(pool, scratch, q.data(), k.data(), v.data(), out.data(), rows, depth, 1.0f / 16.0f);
    benchmark::DoNotOptimize(out.data());
  }
  const double keys = static_cast<double>(rows) * depth + rows * (rows + 1) / 2.0;
  state.counters["keys/s"] = benchmark::Counter(keys, benchmark::Counter::kIsIterationInvariantRate);
  state.SetLabel("f32 legacy");
}

void BM_LegacyDecode(benchmark::State& state) { RunLegacy(state, 1); }
void BM_LegacyPrefill(benchmark::State& state) { RunLegacy(state, state.range(2)); }

void DecodeArgs(benchmark::internal::Benchmark* b, bool all_types) {
  for (int64_t type = 0; type < (all_types ? 4 : 1); ++type) {
    for (int64_t depth : {4096, 16384}) {
      for (int64_t threads : {1, 2}) b->Args({type, depth, 1, threads});
    }
  }
}
void PrefillArgs(benchmark::internal::Benchmark* b, bool all_types) {
  for (int64_t type = 0; type < (all_types ? 4 : 1); ++type) {
    for (auto [depth, rows] : {std::pair<int64_t, int64_t>{0, 4096}, {4096, 512}}) {
      for (int64_t threads : {1, 2}) b->Args({type, depth, rows, threads});
    }
  }
}

BENCHMARK(BM_PagedDecode)
    ->Apply([](auto* b) { DecodeArgs(b, true); })
    ->ArgNames({"type", "depth", "rows", "threads"});
BENCHMARK(BM_LegacyDecode)
    ->Apply([](auto* b) { DecodeArgs(b, false); })
    ->ArgNames({"type", "depth", "rows", "threads"});
BENCHMARK(BM_PagedPrefill)
    ->Apply([](auto* b) { PrefillArgs(b, true); })
    ->ArgNames({"type", "depth", "rows", "threads"})
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_LegacyPrefill)
    ->Apply([](auto* b) { PrefillArgs(b, false); })
    ->ArgNames({"type", "depth", "rows", "threads"})
    ->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace gemmarun

BENCHMARK_MAIN();
