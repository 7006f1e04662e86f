// The CPU attention over a paged cache against the double-precision reference,
// for every cache dtype, decode / prefill / mixed calls, global, sliding-window,
// soft-capped and prefix-LM masks, MHA / GQA / MQA, head dims that are and are
// not multiples of the vector, block sizes 1 to 32, several sequences whose
// physical blocks are shuffled and whose blocks behind the window are unmapped
// (-1). With the test hook's small tiles the inputs cross many query blocks,
// key tiles and decode pieces; with the default tiles they take the production
// path.
//
// Two references per case: on the same (rounded) cache, where only f32
// arithmetic separates the kernel from the reference, so the tolerance is tight
// for every dtype; and on an f32 cache of the unrounded values, where the
// tolerance is the cache dtype's rounding.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "backend/cpu/attention.h"
#include "backend/cpu/cpu_backend.h"
#include "hwy/targets.h"
#include "ops/ops.h"
#include "ops/reference/reference_ops.h"
#include "tensor/quant.h"

namespace gemmarun {
namespace {

std::vector<float> RandomFloats(size_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

double MaxAbsDiff(const std::vector<float>& a, const std::vector<float>& b) {
  double diff = 0.0;
  for (size_t i = 0; i < a.size(); ++i) diff = std::max(diff, std::fabs(static_cast<double>(a[i]) - b[i]));
  return diff;
}

struct SequenceSpec {
  int64_t first_index, num_rows, prefix_end;
};

enum class Mask { kGlobal, kWindow, kSoftcap, kPrefix };
enum class Mode { kDecode, kPrefill, kMixed };

const char* MaskName(Mask m) {
  switch (m) {
    case Mask::kGlobal: return "global";
    case Mask::kWindow: return "window";
    case Mask::kSoftcap: return "softcap";
    default: return "prefix";
  }
}
const char* ModeName(Mode m) { return m == Mode::kDecode ? "decode" : m == Mode::kPrefill ? "prefill" : "mixed"; }

// A paged cache with its sequences: the keys/values of every index a sequence's
// rows can see are written (through ops::WriteKv) into physical blocks taken in
// a shuffled order from one pool; blocks no row sees stay -1. `exact` holds the
// same values in an f32 cache with the same layout.
struct PagedCase {
  DType dtype;
  int64_t heads, kv_heads, head_dim, block_size, window = 0;
  float softcap = 0.0f, scale = 1.0f;
  std::vector<SequenceSpec> specs;
  bool map_all_blocks = false;  // also write the keys behind the window

  Tensor k, v, exact_k, exact_v;
  std::vector<std::vector<int32_t>> tables;
  std::vector<AttentionSequence> sequences;
  std::vector<float> q, out;
  int64_t num_rows = 0;

  void Build(const ops::OpContext& ctx, uint32_t seed) {
    std::mt19937 rng(seed);
    int64_t logical_blocks = 0;
    std::vector<std::pair<int64_t, int64_t>> seen;  // per sequence: lowest, highest visible index
    for (const SequenceSpec& s : specs) {
      const int64_t last = s.first_index + s.num_rows - 1;
      const int64_t highest = s.first_index < s.prefix_end ? std::max(last, s.prefix_end - 1) : last;
      const int64_t lowest =
          window > 0 && !map_all_blocks ? std::max<int64_t>(0, s.first_index - window + 1) : 0;
      seen.push_back({lowest, highest});
      logical_blocks += highest / block_size + 1;
    }
    const int64_t num_blocks = logical_blocks + 3;  // a few blocks nobody uses
    std::vector<int32_t> pool(num_blocks);
    std::iota(pool.begin(), pool.end(), 0);
    std::shuffle(pool.begin(), pool.end(), rng);
    const Shape cache_shape{num_blocks * block_size, kv_heads, head_dim};
    k = Tensor(dtype, cache_shape);
    v = Tensor(dtype, cache_shape);
    exact_k = Tensor(DType::kF32, cache_shape);
    exact_v = Tensor(DType::kF32, cache_shape);
    // Unused slots hold garbage: reading one would show.
    std::vector<float> junk = RandomFloats(cache_shape.elements(), seed + 1, 1000.0f);
    std::memcpy(exact_k.data(), junk.data(), exact_k.bytes());
    std::memcpy(exact_v.data(), junk.data(), exact_v.bytes());
    const int64_t kv_dim = kv_heads * head_dim;
    for (int64_t r = 0; r < cache_shape[0]; ++r) {
      for (int64_t h = 0; h < kv_heads; ++h) {
        QuantizeRow(dtype, junk.data() + (r * kv_heads + h) * head_dim, k.view().row(r * kv_heads + h), head_dim);
        QuantizeRow(dtype, junk.data() + (r * kv_heads + h) * head_dim, v.view().row(r * kv_heads + h), head_dim);
      }
    }
    size_t next_block = 0;
    tables.clear();
    for (size_t s = 0; s < specs.size(); ++s) {
      const auto [lowest, highest] = seen[s];
      std::vector<int32_t> table(highest / block_size + 1, -1);
      for (int64_t b = lowest / block_size; b <= highest / block_size; ++b) table[b] = pool[next_block++];
      std::vector<int64_t> slots;
      for (int64_t j = lowest; j <= highest; ++j) slots.push_back(table[j / block_size] * block_size + j % block_size);
      const int64_t count = static_cast<int64_t>(slots.size());
      std::vector<float> keys = RandomFloats(count * kv_dim, seed + 10 + s);
      std::vector<float> values = RandomFloats(count * kv_dim, seed + 20 + s);
      const Shape rows{count, kv_dim};
      const TensorView key_view{keys.data(), DType::kF32, rows}, value_view{values.data(), DType::kF32, rows};
      ops::WriteKv(ctx, key_view, value_view, slots, KvCacheView{k.view(), v.view(), block_size});
      ops::WriteKv(ctx, key_view, value_view, slots, KvCacheView{exact_k.view(), exact_v.view(), block_size});
      tables.push_back(std::move(table));
    }
    // Rows of the call: the sequences in a shuffled order.
    std::vector<size_t> order(specs.size());
    std::iota(order.begin(), order.end(), 0);
    std::shuffle(order.begin(), order.end(), rng);
    sequences.assign(specs.size(), AttentionSequence{});
    num_rows = 0;
    for (size_t s : order) {
      sequences[s].first_row = num_rows;
      sequences[s].num_rows = specs[s].num_rows;
      sequences[s].first_index = specs[s].first_index;
      sequences[s].prefix_end = specs[s].prefix_end;
      sequences[s].block_table = tables[s];
      num_rows += specs[s].num_rows;
    }
    // Queries scaled so that scores spread over a few units (and a soft-cap bites).
    q = RandomFloats(num_rows * heads * head_dim, seed + 2, 1.5f);
    out.assign(q.size(), -7.0f);
  }

  AttentionArgs Args(bool exact_cache) {
    AttentionArgs args;
    const Shape shape{num_rows, heads, head_dim};
    args.q = TensorView{q.data(), DType::kF32, shape};
    args.out = TensorView{out.data(), DType::kF32, shape};
    args.cache = exact_cache ? KvCacheView{exact_k.view(), exact_v.view(), block_size}
                             : KvCacheView{k.view(), v.view(), block_size};
    args.sequences = sequences;
    args.window = window;
    args.scale = scale;
    args.softcap = softcap;
    return args;
  }
};

// Tolerance against the reference on the unrounded cache: the cache dtype's
// rounding of keys (through the scores) and values. Measured maxima are a
// third to a half of these.
double RoundingTolerance(DType dtype) {
  switch (dtype) {
    case DType::kF16: return 4e-3;
    case DType::kBF16: return 4e-2;
    case DType::kQ8_0: return 8e-2;
    default: return 5e-6;
  }
}

std::vector<SequenceSpec> Specs(Mode mode, Mask mask) {
  // Decode rows (1 to 3) far enough in for several pieces and windows; prefill
  // rows that span several query blocks and, for the window, more than a window.
  const bool prefix = mask == Mask::kPrefix;
  std::vector<SequenceSpec> specs;
  if (mode != Mode::kPrefill) {
    specs.push_back({37, 1, prefix ? 12 : 0});
    specs.push_back({0, 1, 0});
    specs.push_back({20, 3, prefix ? 22 : 0});  // prefix-LM: rows 20, 21 inside the prefix
  }
  if (mode != Mode::kDecode) {
    specs.push_back({0, 23, prefix ? 9 : 0});
    specs.push_back({14, 11, prefix ? 17 : 0});  // a chunk after an earlier one
  }
  return specs;
}

PagedCase MakeCase(DType dtype, Mode mode, Mask mask, int64_t heads, int64_t kv_heads, int64_t head_dim,
                   int64_t block_size) {
  PagedCase c;
  c.dtype = dtype;
  c.heads = heads;
  c.kv_heads = kv_heads;
  c.head_dim = head_dim;
  c.block_size = block_size;
  c.scale = 1.0f / std::sqrt(static_cast<float>(head_dim));
  if (mask == Mask::kWindow) c.window = 7;
  if (mask == Mask::kSoftcap) c.softcap = 1.5f;
  c.specs = Specs(mode, mask);
  return c;
}

// every: run one case in `every` (the per-target test takes a quarter of them).
void ExpectAllCasesMatchReference(const ops::OpContext& ctx, int every = 1) {
  const int64_t head_dims[] = {16, 24, 32, 64, 256};
  const int64_t q8_head_dims[] = {32, 64, 256};
  const int64_t block_sizes[] = {1, 16, 32};
  const std::pair<int64_t, int64_t> layouts[] = {{3, 3}, {6, 2}, {4, 1}};  // MHA, GQA, MQA
  int counter = 0;
  for (DType dtype : {DType::kF32, DType::kF16, DType::kBF16, DType::kQ8_0}) {
    for (Mode mode : {Mode::kDecode, Mode::kPrefill, Mode::kMixed}) {
      for (Mask mask : {Mask::kGlobal, Mask::kWindow, Mask::kSoftcap, Mask::kPrefix}) {
        for (auto [heads, kv_heads] : layouts) {
          // Head dims and block sizes cycle with the other choices, so each one
          // meets each dtype, mode, mask and layout (pairwise, not every tuple).
          ++counter;
          if (counter % every != 0) continue;
          const int64_t head_dim = dtype == DType::kQ8_0 ? q8_head_dims[counter % 3] : head_dims[counter % 5];
          const int64_t block_size = block_sizes[(counter / 5) % 3];
          PagedCase c = MakeCase(dtype, mode, mask, heads, kv_heads, head_dim, block_size);
          c.Build(ctx, counter);
          SCOPED_TRACE(std::string(Name(dtype)) + " " + ModeName(mode) + " " + MaskName(mask) + " heads " +
                       std::to_string(heads) + "/" + std::to_string(kv_heads) + " head_dim " +
                       std::to_string(head_dim) + " block " + std::to_string(block_size));
          ops::Attention(ctx, c.Args(false));
          const std::vector<float> same_cache = reference::Attention(c.Args(false));
          EXPECT_LT(MaxAbsDiff(c.out, same_cache), 5e-6);
          const std::vector<float> unrounded = reference::Attention(c.Args(true));
          EXPECT_LT(MaxAbsDiff(c.out, unrounded), RoundingTolerance(dtype));
          // The f32 path on the f32 cache as well.
          ops::Attention(ctx, c.Args(true));
          EXPECT_LT(MaxAbsDiff(c.out, unrounded), 5e-6);
        }
      }
    }
  }
}

struct Params {
  int threads;
  bool small_tiles;
};
void PrintTo(const Params& p, std::ostream* os) { *os << p.threads << " threads, small tiles " << p.small_tiles; }

class AttentionTest : public ::testing::TestWithParam<Params> {
 protected:
  void SetUp() override {
    backend_ = CreateCpuBackend(GetParam().threads);
    ctx_.backend = backend_.get();
    if (GetParam().small_tiles) cpu::SetAttentionTileSizesForTest({3, 4, 8});
  }
  void TearDown() override { cpu::SetAttentionTileSizesForTest(cpu::kAttentionTileSizes); }

  std::unique_ptr<Backend> backend_;
  ops::OpContext ctx_;
};

TEST_P(AttentionTest, MatchesReferenceForEveryDtypeMaskLayoutAndBlockSize) { ExpectAllCasesMatchReference(ctx_); }

// The same cases on every Highway target compiled in and supported by this CPU.
TEST(AttentionTargetsTest, MatchesReferenceOnEveryTarget) {
  std::unique_ptr<Backend> backend = CreateCpuBackend(2);
  const ops::OpContext ctx{backend.get()};
  cpu::SetAttentionTileSizesForTest({3, 4, 8});
  for (int64_t target : hwy::SupportedAndGeneratedTargets()) {
    hwy::SetSupportedTargetsForTest(target);
    SCOPED_TRACE(hwy::TargetName(target));
    ExpectAllCasesMatchReference(ctx, 4);
  }
  hwy::SetSupportedTargetsForTest(0);
  cpu::SetAttentionTileSizesForTest(cpu::kAttentionTileSizes);
}

// The cases above must be able to fail on the mask features: without the
// window or the soft-cap, the reference differs from the kernel by far more
// than the tolerance.
TEST_P(AttentionTest, WindowAndSoftcapChangeTheResultMeasurably) {
  for (Mode mode : {Mode::kDecode, Mode::kPrefill, Mode::kMixed}) {
    for (Mask mask : {Mask::kWindow, Mask::kSoftcap, Mask::kPrefix}) {
      PagedCase c = MakeCase(DType::kF16, mode, mask, 4, 1, 24, 16);
      c.map_all_blocks = true;  // without the window, every earlier key counts
      c.Build(ctx_, 99);
      ops::Attention(ctx_, c.Args(false));
      ASSERT_LT(MaxAbsDiff(c.out, reference::Attention(c.Args(false))), 5e-6);
      AttentionArgs without = c.Args(false);
      without.window = 0;
      without.softcap = 0.0f;
      std::vector<AttentionSequence> no_prefix = c.sequences;
      for (AttentionSequence& s : no_prefix) s.prefix_end = 0;
      without.sequences = no_prefix;
      EXPECT_GT(MaxAbsDiff(c.out, reference::Attention(without)), 0.05) << ModeName(mode) << " " << MaskName(mask);
    }
  }
}

// A sequence's output does not depend on what else is in the call, nor on the
// thread count: bit for bit.
TEST_P(AttentionTest, SequenceAloneOrInABatchGivesBitIdenticalOutput) {
  for (DType dtype : {DType::kF32, DType::kF16, DType::kQ8_0}) {
    for (Mask mask : {Mask::kGlobal, Mask::kWindow, Mask::kPrefix}) {
      PagedCase c = MakeCase(dtype, Mode::kMixed, mask, 4, 2, 64, 16);
      c.Build(ctx_, 7);
      ops::Attention(ctx_, c.Args(false));
      const std::vector<float> batched = c.out;
      const int64_t row_values = c.heads * c.head_dim;
      for (int threads : {1, 2, 5}) {
        std::unique_ptr<Backend> other = CreateCpuBackend(threads);
        const ops::OpContext other_ctx{other.get()};
        for (const AttentionSequence& s : c.sequences) {
          AttentionSequence alone = s;
          alone.first_row = 0;
          std::vector<float> q(c.q.begin() + s.first_row * row_values,
                               c.q.begin() + (s.first_row + s.num_rows) * row_values);
          std::vector<float> out(q.size());
          AttentionArgs args = c.Args(false);
          const Shape shape{s.num_rows, c.heads, c.head_dim};
          args.q = TensorView{q.data(), DType::kF32, shape};
          args.out = TensorView{out.data(), DType::kF32, shape};
          args.sequences = std::span<const AttentionSequence>(&alone, 1);
          ops::Attention(other_ctx, args);
          EXPECT_EQ(std::memcmp(out.data(), batched.data() + s.first_row * row_values, out.size() * sizeof(float)), 0)
              << Name(dtype) << " " << MaskName(mask) << " threads " << threads << " rows " << s.num_rows;
        }
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(ThreadsAndTiles, AttentionTest,
                         ::testing::Values(Params{1, true}, Params{3, true}, Params{2, false}),
                         [](const auto& info) {
                           return std::to_string(info.param.threads) + "Threads" +
                                  (info.param.small_tiles ? "SmallTiles" : "DefaultTiles");
                         });

// WriteKv stores exactly what the reference stores (QuantizeRow), in the right
// slots, and reads back within the dtype's rounding; large calls (threaded)
// included.
TEST(WriteKvTest, RoundTripsEveryDtypeIntoShuffledSlots) {
  std::unique_ptr<Backend> backend = CreateCpuBackend(3);
  const ops::OpContext ctx{backend.get()};
  for (DType dtype : {DType::kF32, DType::kF16, DType::kBF16, DType::kQ8_0}) {
    for (auto [rows, kv_heads, head_dim] : {std::tuple{1, 1, 32}, {5, 2, 64}, {300, 2, 128}}) {
      const int64_t slots_total = rows * 2;
      const int64_t kv_dim = kv_heads * head_dim;
      std::vector<int64_t> slots(slots_total);
      std::iota(slots.begin(), slots.end(), 0);
      std::shuffle(slots.begin(), slots.end(), std::mt19937(rows));
      slots.resize(rows);
      std::vector<float> k = RandomFloats(rows * kv_dim, 1, 2.0f), v = RandomFloats(rows * kv_dim, 2, 2.0f);
      const Shape cache_shape{slots_total, kv_heads, head_dim};
      Tensor ck(dtype, cache_shape), cv(dtype, cache_shape), rk(dtype, cache_shape), rv(dtype, cache_shape);
      const TensorView kv{k.data(), DType::kF32, Shape{rows, kv_dim}}, vv{v.data(), DType::kF32, Shape{rows, kv_dim}};
      ops::WriteKv(ctx, kv, vv, slots, KvCacheView{ck.view(), cv.view(), 2});
      reference::WriteKv(kv, vv, slots, KvCacheView{rk.view(), rv.view(), 2});
      SCOPED_TRACE(std::string(Name(dtype)) + " rows " + std::to_string(rows));
      EXPECT_EQ(std::memcmp(ck.data(), rk.data(), ck.bytes()), 0);
      EXPECT_EQ(std::memcmp(cv.data(), rv.data(), cv.bytes()), 0);
      std::vector<float> back(head_dim);
      for (int64_t t = 0; t < rows; ++t) {
        for (int64_t h = 0; h < kv_heads; ++h) {
          const float* expected = v.data() + (t * kv_heads + h) * head_dim;
          DequantizeRow(dtype, cv.view().row(slots[t] * kv_heads + h), back.data(), head_dim);
          for (int64_t i = 0; i < head_dim; ++i) {
            const double x = expected[i];
            // Half an ulp of f16/bf16; q8_0: half a step of its block's max / 127 (plus the f16 scale).
            double tolerance = 0.0;
            if (dtype == DType::kF16) tolerance = std::fabs(x) * std::ldexp(1.0, -11) + 1e-7;
            if (dtype == DType::kBF16) tolerance = std::fabs(x) * std::ldexp(1.0, -8);
            if (dtype == DType::kQ8_0) {
              const float* block = expected + i / 32 * 32;
              double amax = 0.0;
              for (int b = 0; b < 32; ++b) amax = std::max(amax, std::fabs(static_cast<double>(block[b])));
              tolerance = amax / 127.0 * 0.5 + amax * 1e-3;
            }
            ASSERT_NEAR(back[i], x, tolerance) << "row " << t << " head " << h << " element " << i;
          }
        }
      }
    }
  }
}

TEST(AttentionOpsDeathTest, RejectsUnmappedVisibleBlocksAndUncoveredRows) {
  std::unique_ptr<Backend> backend = CreateCpuBackend(1);
  const ops::OpContext ctx{backend.get()};
  std::vector<float> q(2 * 8), out(q.size()), cache(4 * 8);
  const int32_t table[] = {0, -1};
  AttentionSequence seq{0, 2, 2, 0, table};  // rows at indices 2, 3: block 1 is visible but unmapped
  AttentionArgs args;
  args.q = TensorView{q.data(), DType::kF32, Shape{2, 1, 8}};
  args.out = TensorView{out.data(), DType::kF32, Shape{2, 1, 8}};
  args.cache = KvCacheView{TensorView{cache.data(), DType::kF32, Shape{4, 1, 8}},
                           TensorView{cache.data(), DType::kF32, Shape{4, 1, 8}}, 2};
  args.sequences = std::span<const AttentionSequence>(&seq, 1);
  EXPECT_DEATH(ops::Attention(ctx, args), "logical block 1 maps to -1");
  AttentionSequence one_row{0, 1, 0, 0, table};
  args.sequences = std::span<const AttentionSequence>(&one_row, 1);
  EXPECT_DEATH(ops::Attention(ctx, args), "row 1 is in no sequence");
}

}  // namespace
}  // namespace gemmarun
