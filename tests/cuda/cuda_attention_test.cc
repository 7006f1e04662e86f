// WriteKv and Attention on the paged cache against reference::Attention: several
// sequences in one call (decode rows and prefill chunks), shuffled physical
// blocks, GQA/MQA/MHA, sliding window, soft-cap, the prefix-LM mask, and f32,
// f16 and bf16 caches. Each variant is also checked to differ from the same call
// without its feature, so a kernel ignoring the window or the cap fails.
#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "cuda/cuda_test_util.h"
#include "ops/reference/reference_ops.h"
#include "tensor/quant.h"

namespace gemmarun {
namespace {

using testing::DeviceBuffer;
using testing::RandomFloats;

struct Case {
  int64_t heads, kv_heads, head_dim;
  DType cache_type;
  int64_t window = 0;
  float softcap = 0.0f;
  int64_t prefix_end = 0;  // of the prefill sequence
};

std::string CaseName(const Case& c) {
  std::ostringstream name;
  name << "h" << c.heads << "kv" << c.kv_heads << "d" << c.head_dim << "_" << Name(c.cache_type)
       << (c.window > 0 ? "_window" : "") << (c.softcap > 0 ? "_softcap" : "") << (c.prefix_end > 0 ? "_prefix" : "");
  return name.str();
}
void PrintTo(const Case& c, std::ostream* os) { *os << CaseName(c); }

struct SequenceSpec {
  int64_t first_index, num_rows;
};

constexpr int64_t kBlockSize = 16;
constexpr int64_t kNumBlocks = 48;

class CudaAttentionTest : public ::testing::TestWithParam<Case> {
 protected:
  void SetUp() override {
    GR_SKIP_WITHOUT_GPU();
    backend_ = testing::SharedCudaBackend();
    ASSERT_NE(backend_, nullptr);
  }
  CudaBackend* backend_ = nullptr;
};

// Fills the cache for every sequence's indices [0, first_index + num_rows) with
// WriteKv, then attends the call's rows. Returns {device output, reference output}.
std::pair<std::vector<float>, std::vector<float>> RunAttention(CudaBackend* backend, const Case& c, int64_t window,
                                                      float softcap, int64_t prefix_end) {
  // Sequence 0 (the prefix-LM one) is long enough for the GEMM path, {100, 37}
  // takes the tiled kernel, the single rows the split (decode) kernel.
  const std::vector<SequenceSpec> specs = {{0, 70}, {150, 1}, {60, 5}, {200, 1}, {100, 37}};
  const int64_t kv_dim = c.kv_heads * c.head_dim;
  // Physical blocks in shuffled order, handed out to the sequences in turn.
  std::vector<int32_t> physical(kNumBlocks);
  std::iota(physical.begin(), physical.end(), 0);
  std::shuffle(physical.begin(), physical.end(), std::mt19937(5));
  std::vector<std::vector<int32_t>> tables;
  size_t next_block = 0;
  std::vector<int64_t> slots;
  for (const SequenceSpec& s : specs) {
    const int64_t length = s.first_index + s.num_rows;
    std::vector<int32_t> table;
    for (int64_t b = 0; b < (length + kBlockSize - 1) / kBlockSize; ++b) table.push_back(physical[next_block++]);
    for (int64_t i = 0; i < length; ++i) slots.push_back(table[i / kBlockSize] * kBlockSize + i % kBlockSize);
    tables.push_back(table);
  }
  EXPECT_LE(next_block, static_cast<size_t>(kNumBlocks));
  const int64_t written = static_cast<int64_t>(slots.size());
  std::vector<float> k = RandomFloats(written * kv_dim, 1), v = RandomFloats(written * kv_dim, 2);
  const size_t cache_bytes = kNumBlocks * kBlockSize * RowBytes(c.cache_type, kv_dim);
  DeviceBuffer dk(backend, k), dv(backend, v), dkc(backend, nullptr, cache_bytes), dvc(backend, nullptr, cache_bytes);
  KvCacheView cache;
  cache.k = dkc.view(c.cache_type, Shape{kNumBlocks * kBlockSize, c.kv_heads, c.head_dim});
  cache.v = dvc.view(c.cache_type, Shape{kNumBlocks * kBlockSize, c.kv_heads, c.head_dim});
  cache.block_size = kBlockSize;
  backend->WriteKv(dk.f32(Shape{written, kv_dim}), dv.f32(Shape{written, kv_dim}), slots, cache);

  // Blocks that no row of a windowed call can see are marked -1 (the kernel must not touch them).
  std::vector<AttentionSequence> sequences;
  int64_t row = 0;
  for (size_t s = 0; s < specs.size(); ++s) {
    AttentionSequence seq;
    seq.first_row = row;
    seq.num_rows = specs[s].num_rows;
    seq.first_index = specs[s].first_index;
    seq.prefix_end = s == 0 ? prefix_end : 0;
    if (window > 0) {
      const int64_t first_visible = std::max<int64_t>(0, seq.first_index - window + 1);
      for (int64_t b = 0; b < first_visible / kBlockSize; ++b) tables[s][b] = -1;
    }
    seq.block_table = tables[s];
    sequences.push_back(seq);
    row += seq.num_rows;
  }
  std::reverse(sequences.begin(), sequences.end());  // any order
  const int64_t tokens = row;
  std::vector<float> q = RandomFloats(tokens * c.heads * c.head_dim, 3);
  DeviceBuffer dq(backend, q), dout(backend, nullptr, q.size() * sizeof(float));
  AttentionArgs args;
  args.q = dq.f32(Shape{tokens, c.heads, c.head_dim});
  args.out = dout.f32(Shape{tokens, c.heads, c.head_dim});
  args.cache = cache;
  args.sequences = sequences;
  args.window = window;
  args.scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));
  args.softcap = softcap;
  backend->Attention(args);
  EXPECT_TRUE(backend->Synchronize().ok());

  // The reference reads the cache the device wrote, on the host.
  std::vector<uint8_t> host_k = dkc.Download<uint8_t>(), host_v = dvc.Download<uint8_t>();
  AttentionArgs host_args = args;
  host_args.q = TensorView{q.data(), DType::kF32, args.q.shape};
  host_args.cache.k.data = host_k.data();
  host_args.cache.v.data = host_v.data();
  // WriteKv stored each row converted to the cache type, in its slot.
  for (int64_t t = 0; t < written; ++t) {
    std::vector<float> stored(kv_dim), expected(kv_dim);
    DequantizeRow(c.cache_type, host_k.data() + slots[t] * RowBytes(c.cache_type, kv_dim), stored.data(), kv_dim);
    for (int64_t d = 0; d < kv_dim; ++d) expected[d] = RoundTo(c.cache_type, k[t * kv_dim + d]);
    EXPECT_EQ(stored, expected) << "slot " << slots[t];
    if (::testing::Test::HasFailure()) break;
  }
  return {dout.Download(), reference::Attention(host_args)};
}

double MaxDiff(const std::vector<float>& a, const std::vector<float>& b) {
  double diff = 0.0;
  for (size_t i = 0; i < a.size(); ++i) diff = std::max(diff, static_cast<double>(std::fabs(a[i] - b[i])));
  return diff;
}

TEST_P(CudaAttentionTest, MatchesReference) {
  const Case& c = GetParam();
  auto [actual, expected] = RunAttention(backend_, c, c.window, c.softcap, c.prefix_end);
  ASSERT_FALSE(::testing::Test::HasFailure());
  EXPECT_LE(MaxDiff(actual, expected), 2e-5);
  // Without the feature the reference result must be different, else the case tests nothing.
  if (c.window > 0) {
    EXPECT_GT(MaxDiff(actual, RunAttention(backend_, c, 0, c.softcap, c.prefix_end).second), 1e-3);
  }
  if (c.softcap > 0) {
    EXPECT_GT(MaxDiff(actual, RunAttention(backend_, c, c.window, 0.0f, c.prefix_end).second), 1e-3);
  }
  if (c.prefix_end > 0) {
    EXPECT_GT(MaxDiff(actual, RunAttention(backend_, c, c.window, c.softcap, 0).second), 1e-3);
  }
}

INSTANTIATE_TEST_SUITE_P(
    Variants, CudaAttentionTest,
    ::testing::Values(Case{8, 2, 64, DType::kF32}, Case{8, 1, 256, DType::kF16}, Case{4, 4, 128, DType::kBF16},
                      Case{8, 2, 256, DType::kBF16, /*window=*/20}, Case{8, 2, 32, DType::kF32, 0, /*softcap=*/0.5f},
                      Case{4, 2, 256, DType::kF16, 0, 0.0f, /*prefix_end=*/21},
                      Case{8, 4, 256, DType::kF32, 24, 1.0f, 17},
                      // Head sizes below a warp and not a multiple of 32: the fixtures' 16 and 24.
                      Case{4, 1, 16, DType::kF32}, Case{4, 2, 16, DType::kF32, /*window=*/8, /*softcap=*/0.5f},
                      Case{4, 4, 24, DType::kF16}, Case{4, 1, 16, DType::kF32, 0, 0.0f, /*prefix_end=*/19},
                      Case{2, 1, 80, DType::kBF16, 12}),
    [](const ::testing::TestParamInfo<Case>& info) { return CaseName(info.param); });

// The GEMM path in bf16 precision (tensor cores; bf16 queries, keys, values and
// probabilities): within bf16 rounding of the f32 reference, window and cap on.
TEST(CudaAttentionBf16, LongPrefillWithinBf16Rounding) {
  GR_SKIP_WITHOUT_GPU();
  CudaBackend* backend = testing::SharedCudaBackend(MatMulPrecision::kBF16);
  ASSERT_NE(backend, nullptr);
  const Case c{8, 2, 256, DType::kBF16, /*window=*/20, /*softcap=*/0.5f};
  auto [actual, expected] = RunAttention(backend, c, c.window, c.softcap, 0);
  ASSERT_FALSE(::testing::Test::HasFailure());
  EXPECT_LE(MaxDiff(actual, expected), 3e-2);
  EXPECT_GT(MaxDiff(actual, RunAttention(backend, c, 0, c.softcap, 0).second), 1e-1) << "the window matters";
}

TEST(CudaAttentionErrors, UnsupportedCacheReportsAStatus) {
  GR_SKIP_WITHOUT_GPU();
  CudaBackend* backend = testing::SharedCudaBackend();
  ASSERT_NE(backend, nullptr);
  std::vector<float> rows(2 * 64, 0.5f);
  DeviceBuffer dq(backend, rows), dcache(backend, nullptr, 4096);
  KvCacheView cache{dcache.view(DType::kQ8_0, Shape{16, 1, 64}), dcache.view(DType::kQ8_0, Shape{16, 1, 64}), 16};
  const std::vector<int64_t> slots = {0};
  backend->WriteKv(dq.f32(Shape{1, 64}), dq.f32(Shape{1, 64}), slots, cache);
  const Status status = backend->Synchronize();
  EXPECT_FALSE(status.ok());
  EXPECT_NE(status.message().find("q8_0"), std::string::npos) << status.message();
}

}  // namespace
}  // namespace gemmarun
