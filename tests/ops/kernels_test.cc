// The CPU MatMul kernels against the scalar references of tensor/quant.h, for
// every weight type, on every Highway target compiled in (f32/bf16/f16 paths)
// and every integer-kernel path this CPU runs (portable, AVX2, AVX-512 VNNI),
// with 1 and 3 threads; also the attention/GELU row kernels per target and the
// thread pool they all run on.
//
// Shapes hit the tails: K of one block and not a multiple of the 8-block
// groups, token counts that are odd and cross the 64-token blocks, N that is
// not a multiple of the 8-row tiles, and a K long enough to be split into
// chunks. Activation pointers are misaligned.
//
// Tolerances come from magnitudes. Quantized weights: the integer kernels and
// DotRowQ8Activations compute the same sum over the SAME quantized
// activations, exactly in integers per block, so they differ only by f32
// rounding of the scaled block sums: (chain length) * eps * sum|w_i * xq_i|.
// Against the f32 reference the activation quantization adds at most
// sum |w_i| * |x_i - xq_i|, which the test computes exactly.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/cpu_target.h"
#include "backend/cpu/kernels.h"
#include "backend/cpu/matmul_quant.h"
#include "base/thread_pool.h"
#include "hwy/targets.h"
#include "ops/backend.h"
#include "tensor/quant.h"
#include "tensor/tensor.h"

namespace gemmarun {
namespace {

constexpr double kEps = std::numeric_limits<float>::epsilon();

std::vector<float> RandomFloats(size_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

// Weights of any type. Block types get random bytes (every code, Q8_0's -128
// included) with scales set to sane f16 values, positive and negative.
Tensor RandomWeights(DType type, int64_t n, int64_t k, uint32_t seed) {
  Tensor w(type, Shape{n, k});
  std::mt19937 rng(seed);
  if (!IsQuantized(type)) {
    const auto values = RandomFloats(n * k, seed, 0.5f);
    for (int64_t r = 0; r < n; ++r) EXPECT_TRUE(QuantizeRow(type, values.data() + r * k, w.view().row(r), k));
    return w;
  }
  for (size_t i = 0; i < w.bytes(); ++i) w.data()[i] = static_cast<uint8_t>(rng());
  std::uniform_real_distribution<float> scale(0.001f, 0.05f);
  auto put_half = [&](uint8_t* p, float v) {
    const uint16_t bits = F32ToF16(v);
    std::memcpy(p, &bits, sizeof(bits));
  };
  const size_t block_bytes = Info(type).block_bytes;
  for (size_t off = 0; off < w.bytes(); off += block_bytes) {
    uint8_t* block = w.data() + off;
    const float sign = rng() % 2 ? 1.0f : -1.0f;
    switch (type) {
      case DType::kQ6_K: put_half(block + 208, sign * scale(rng)); break;
      case DType::kQ4_K:
        put_half(block, scale(rng));
        put_half(block + 2, scale(rng));
        break;
      default: put_half(block, sign * scale(rng));
    }
  }
  return w;
}

std::string PathName(cpu::QuantPath path) { return cpu::Name(path); }

// The row-major magnitudes the tolerances scale with, for one weight row and
// token: sum |w_i * xq_i| (with Q4_K's min term counted separately, since
// d*sc*q and dmin*min may cancel in w_i) and the quantization error bound.
struct QuantBounds {
  double magnitude = 0.0;
  double quantization = 0.0;
};

QuantBounds Bounds(DType type, const uint8_t* w_row, const float* x, const int8_t* qs, const float* scales,
                   size_t k) {
  std::vector<float> w(k);
  DequantizeRow(type, w_row, w.data(), k);
  QuantBounds b;
  for (size_t i = 0; i < k; ++i) {
    const double xq = static_cast<double>(qs[i]) * scales[i / 32];
    b.magnitude += std::fabs(w[i] * xq);
    b.quantization += std::fabs(w[i]) * std::fabs(x[i] - xq);
  }
  if (type == DType::kQ4_K) {
    for (size_t sb = 0; sb < k / kQKK; ++sb) {
      BlockQ4_K block;
      std::memcpy(&block, w_row + sb * sizeof(block), sizeof(block));
      for (int j = 0; j < 8; ++j) {
        uint8_t scale, min;
        Q4KScaleMin(j, block.scales, &scale, &min);
        const double m = F16ToF32(block.dmin) * min;
        for (size_t i = 0; i < 32; ++i) {
          const size_t idx = sb * kQKK + 32 * j + i;
          b.magnitude += 2 * std::fabs(m * qs[idx] * scales[idx / 32]);
        }
      }
    }
  }
  return b;
}

struct Case {
  int tokens, k, n;
};

// --------------------------------------------------------------- activations

TEST(QuantizeActivationsTest, SimdMatchesReferenceBitForBit) {
  for (cpu::QuantPath path : cpu::SupportedQuantPaths()) {
    SCOPED_TRACE(PathName(path));
    cpu::SetQuantPathForTest(path);
    for (int k : {32, 64, 96, 256, 800, 2048, 4096}) {
      for (int offset : {0, 1, 3}) {
        std::vector<float> x = RandomFloats(k + offset, k, 3.0f);
        // A block of zeros, a block with one large value, a block at float extremes.
        if (k >= 128) {
          std::fill(x.begin() + offset, x.begin() + offset + 32, 0.0f);
          x[offset + 40] = 1e4f;
          x[offset + 64] = std::numeric_limits<float>::max();
          x[offset + 65] = -std::numeric_limits<float>::denorm_min();
        }
        cpu::QuantizedActivations acts;
        acts.Resize(2, k);
        acts.QuantizeRow(1, x.data() + offset);
        std::vector<int8_t> qs(k);
        std::vector<float> scales(k / 32);
        QuantizeActivationsQ8(x.data() + offset, k, qs.data(), scales.data());
        ASSERT_EQ(std::memcmp(acts.qs(1), qs.data(), k), 0) << "k " << k;
        for (int b = 0; b < k / 32; ++b) {
          ASSERT_EQ(acts.scales(1)[b], scales[b]) << "block " << b;
          int sum[2] = {0, 0};
          for (int i = 0; i < 32; ++i) sum[i / 16] += qs[32 * b + i];
          ASSERT_EQ(acts.sums16(1)[2 * b], sum[0]);
          ASSERT_EQ(acts.sums16(1)[2 * b + 1], sum[1]);
          ASSERT_EQ(acts.scaled_sums(1)[b], scales[b] * static_cast<float>(sum[0] + sum[1]));
        }
      }
    }
  }
  cpu::ResetQuantPath();
}

TEST(QuantizeActivationsTest, CodesRoundTripWithinHalfAStep) {
  const int k = 256;
  std::vector<float> x = RandomFloats(k, 7, 2.0f);
  std::vector<int8_t> qs(k);
  std::vector<float> scales(k / 32);
  QuantizeActivationsQ8(x.data(), k, qs.data(), scales.data());
  for (int i = 0; i < k; ++i) {
    EXPECT_LE(std::abs(qs[i]), 127);
    EXPECT_LE(std::fabs(x[i] - qs[i] * scales[i / 32]), 0.5001f * scales[i / 32]) << i;
  }
}

TEST(QuantizeActivationsTest, NonFiniteInputsGiveInRangeCodes) {
  std::vector<float> x(64, 1.0f);
  x[3] = std::numeric_limits<float>::quiet_NaN();
  x[40] = std::numeric_limits<float>::infinity();
  for (cpu::QuantPath path : cpu::SupportedQuantPaths()) {
    cpu::SetQuantPathForTest(path);
    cpu::QuantizedActivations acts;
    acts.Resize(1, 64);
    acts.QuantizeRow(0, x.data());
    for (int i = 0; i < 64; ++i) EXPECT_LE(std::abs(acts.qs(0)[i]), 127) << PathName(path);
  }
  cpu::ResetQuantPath();
}

// --------------------------------------------------------------- quantized weights

class QuantMatMulTest : public ::testing::TestWithParam<std::tuple<DType, int>> {};

TEST_P(QuantMatMulTest, MatchesReferenceOnEveryPath) {
  const DType type = std::get<0>(GetParam());
  const int threads = std::get<1>(GetParam());
  const bool k_quant = Info(type).block_elements == kQKK;
  std::vector<Case> cases;
  if (k_quant) {
    cases = {{1, 256, 1}, {1, 256, 9}, {1, 512, 17}, {3, 256, 8}, {2, 1024, 5},
             {7, 768, 33}, {64, 256, 16}, {67, 512, 9}, {1, 4096, 11}, {130, 8192, 9}};
  } else {
    cases = {{1, 32, 1}, {1, 32, 9}, {1, 96, 8}, {1, 288, 17}, {2, 64, 3}, {3, 256, 8},
             {5, 800, 33}, {64, 32, 16}, {67, 544, 9}, {1, 4096, 11}, {130, 8192, 9}, {6, 96, 80}, {34, 96, 80}, {6, 160, 80}, {34, 160, 80}, {1, 160, 80}};
  }
  auto backend = CreateCpuBackend(threads);
  for (cpu::QuantPath path : cpu::SupportedQuantPaths()) {
    cpu::SetQuantPathForTest(path);
    for (const Case& c : cases) {
      for (int offset : {0, 3}) {
        SCOPED_TRACE(PathName(path) + " tokens " + std::to_string(c.tokens) + " k " + std::to_string(c.k) + " n " +
                     std::to_string(c.n) + " offset " + std::to_string(offset));
        Tensor w = RandomWeights(type, c.n, c.k, c.k + c.n);
        std::vector<float> x_storage = RandomFloats(c.tokens * c.k + offset, c.tokens + c.k, 2.0f);
        const float* x = x_storage.data() + offset;
        std::vector<float> bias = RandomFloats(c.n, 5);
        const bool with_bias = c.n % 2 == 1;
        std::vector<float> out(c.tokens * c.n, std::numeric_limits<float>::quiet_NaN());
        backend->MatMul(TensorView{const_cast<float*>(x), DType::kF32, Shape{c.tokens, c.k}}, w.view(),
                        with_bias ? TensorView{bias.data(), DType::kF32, Shape{c.n}} : TensorView{},
                        TensorView{out.data(), DType::kF32, Shape{c.tokens, c.n}});
        std::vector<int8_t> qs(c.k);
        std::vector<float> scales(c.k / 32);
        // Chain of f32 roundings per output: a few per 8-block group, then the lanes.
        const double steps = c.k / 256.0 + 16;
        for (int t = 0; t < c.tokens; ++t) {
          const float* xt = x + t * c.k;
          QuantizeActivationsQ8(xt, c.k, qs.data(), scales.data());
          for (int r = 0; r < c.n; ++r) {
            const uint8_t* row = w.view().row(r);
            const double add = with_bias ? bias[r] : 0.0;
            const QuantBounds bounds = Bounds(type, row, xt, qs.data(), scales.data(), c.k);
            const double same_acts = DotRowQ8Activations(type, row, qs.data(), scales.data(), c.k) + add;
            const double tolerance = 2 * steps * kEps * (bounds.magnitude + std::fabs(add));
            const double actual = out[t * c.n + r];
            ASSERT_NEAR(actual, same_acts, tolerance) << "token " << t << " row " << r;
            // Against f32 activations: the quantization error, exactly bounded.
            const double f32_reference = DotRow(type, row, xt, c.k) + add;
            ASSERT_NEAR(actual, f32_reference, bounds.quantization * 1.001 + 2 * tolerance) << "token " << t;
          }
        }
      }
    }
  }
  cpu::ResetQuantPath();
}

// Batch invariance: a token's outputs are the same bits whether it is alone in
// the call or one of many (a sequence decoded in a batch must give the text it
// gives alone). Shapes cross the K pieces (kQuantKChunk), short last groups and
// partial row tiles.
TEST_P(QuantMatMulTest, TokenOutputsDoNotDependOnTheOtherTokens) {
  const DType type = std::get<0>(GetParam());
  const int threads = std::get<1>(GetParam());
  const bool k_quant = Info(type).block_elements == kQKK;
  const std::vector<int> ks = k_quant ? std::vector<int>{256, 2048, 3328} : std::vector<int>{96, 640, 2080, 4096};
  auto backend = CreateCpuBackend(threads);
  for (cpu::QuantPath path : cpu::SupportedQuantPaths()) {
    cpu::SetQuantPathForTest(path);
    for (int k : ks) {
      for (int n : {24, 37}) {
        SCOPED_TRACE(PathName(path) + " k " + std::to_string(k) + " n " + std::to_string(n));
        const int tokens = 11;
        Tensor w = RandomWeights(type, n, k, k + n);
        const std::vector<float> x = RandomFloats(tokens * k, k, 2.0f);
        const std::vector<float> bias = RandomFloats(n, 5);
        const TensorView bias_view = n % 2 == 1 ? TensorView{const_cast<float*>(bias.data()), DType::kF32, Shape{n}}
                                                : TensorView{};
        const auto run = [&](int first, int count) {
          std::vector<float> out(count * n);
          backend->MatMul(TensorView{const_cast<float*>(x.data()) + first * k, DType::kF32, Shape{count, k}},
                          w.view(), bias_view, TensorView{out.data(), DType::kF32, Shape{count, n}});
          return out;
        };
        const std::vector<float> all = run(0, tokens);
        for (auto [first, count] : {std::pair{0, 1}, {4, 1}, {10, 1}, {3, 2}, {5, 3}, {1, 8}}) {
          const std::vector<float> part = run(first, count);
          ASSERT_EQ(std::memcmp(part.data(), all.data() + first * n, part.size() * sizeof(float)), 0)
              << "tokens [" << first << ", " << first + count << ") alone differ from the same tokens among " << tokens;
        }
      }
    }
  }
  cpu::ResetQuantPath();
}

INSTANTIATE_TEST_SUITE_P(
    Types, QuantMatMulTest,
    ::testing::Combine(::testing::Values(DType::kQ8_0, DType::kQ4_0, DType::kQ5_0, DType::kQ4_K, DType::kQ6_K),
                       ::testing::Values(1, 3)),
    [](const auto& info) {
      return std::string(Name(std::get<0>(info.param))) + "_threads" + std::to_string(std::get<1>(info.param));
    });

// All paths agree with each other to rounding as well, on a realistic shape.
TEST(QuantMatMulPathsTest, PathsAgree) {
  const auto paths = cpu::SupportedQuantPaths();
  auto backend = CreateCpuBackend(2);
  for (DType type : {DType::kQ8_0, DType::kQ4_0, DType::kQ5_0, DType::kQ4_K, DType::kQ6_K}) {
    for (int tokens : {1, 9}) {
      const int k = 2048, n = 24;
      Tensor w = RandomWeights(type, n, k, 11);
      std::vector<float> x = RandomFloats(tokens * k, 12);
      std::vector<std::vector<float>> outs;
      for (cpu::QuantPath path : paths) {
        cpu::SetQuantPathForTest(path);
        outs.emplace_back(tokens * n);
        backend->MatMul(TensorView{x.data(), DType::kF32, Shape{tokens, k}}, w.view(), TensorView{},
                        TensorView{outs.back().data(), DType::kF32, Shape{tokens, n}});
      }
      double scale = 0.0;
      for (float v : outs[0]) scale = std::max(scale, static_cast<double>(std::fabs(v)));
      for (size_t p = 1; p < outs.size(); ++p) {
        for (size_t i = 0; i < outs[0].size(); ++i) {
          ASSERT_NEAR(outs[p][i], outs[0][i], 1e-4 * (scale + 1)) << Name(type) << " " << PathName(paths[p]);
        }
      }
    }
  }
  cpu::ResetQuantPath();
}

// --------------------------------------------------------------- float weights

// Runs `body` once per Highway target compiled in and supported by this CPU,
// pinned as GEMMARUN_CPU_TARGET would: the cap applies to our intrinsics paths
// too, so on an AVX-512 machine "AVX2" runs the AVX2 kernels (panel included).
// Then once unpinned, with every feature the CPU has (AVX512_BF16, VNNI, ...).
template <class Body>
void ForEachTarget(Body&& body) {
  for (int64_t target : hwy::SupportedAndGeneratedTargets()) {
    ASSERT_TRUE(cpu::PinTarget(hwy::TargetName(target)).ok()) << hwy::TargetName(target);
    SCOPED_TRACE(hwy::TargetName(target));
    body();
  }
  ASSERT_TRUE(cpu::PinTarget("").ok());
  SCOPED_TRACE("unpinned");
  body();
}

class FloatMatMulTest : public ::testing::TestWithParam<std::tuple<DType, int>> {};

TEST_P(FloatMatMulTest, MatchesReferenceOnEveryTarget) {
  const DType type = std::get<0>(GetParam());
  const int threads = std::get<1>(GetParam());
  // {1, 5001, 7}: a row of activations over 16 KiB, decoded two rows at a time plus a single one.
  // From 16 tokens on, AVX-512 CPUs take the panel kernels: {67, 1000, 9} has
  // partial token groups, rows and K; {130, 1500, 5} two K chunks with a tail;
  // {509, 70, 130} two token blocks and a partial third 64-row panel.
  const Case cases[] = {{1, 1, 1},     {1, 3, 5},    {1, 17, 9},     {2, 16, 4},   {3, 33, 7},
                        {5, 64, 13},   {4, 257, 8},  {7, 100, 33},   {64, 48, 5},  {67, 1000, 9},
                        {1, 4096, 6},  {1, 5001, 7}, {130, 1500, 5}, {16, 31, 64}, {509, 70, 130}};
  auto backend = CreateCpuBackend(threads);
  ForEachTarget([&] {
    for (const Case& c : cases) {
      for (int offset : {0, 1}) {
        SCOPED_TRACE("tokens " + std::to_string(c.tokens) + " k " + std::to_string(c.k) + " n " +
                     std::to_string(c.n) + " offset " + std::to_string(offset));
        Tensor w = RandomWeights(type, c.n, c.k, c.k * 3 + c.n);
        std::vector<float> x_storage = RandomFloats(c.tokens * c.k + offset, c.k + c.tokens);
        const float* x = x_storage.data() + offset;
        std::vector<float> bias = RandomFloats(c.n, 6);
        std::vector<float> out(c.tokens * c.n, std::numeric_limits<float>::quiet_NaN());
        backend->MatMul(TensorView{const_cast<float*>(x), DType::kF32, Shape{c.tokens, c.k}}, w.view(),
                        TensorView{bias.data(), DType::kF32, Shape{c.n}},
                        TensorView{out.data(), DType::kF32, Shape{c.tokens, c.n}});
        std::vector<float> wf(c.k);
        for (int r = 0; r < c.n; ++r) {
          DequantizeRow(type, w.view().row(r), wf.data(), c.k);
          for (int t = 0; t < c.tokens; ++t) {
            double expected = bias[r], magnitude = std::fabs(bias[r]);
            for (int i = 0; i < c.k; ++i) {
              expected += static_cast<double>(wf[i]) * x[t * c.k + i];
              magnitude += std::fabs(static_cast<double>(wf[i]) * x[t * c.k + i]);
            }
            // Products are exact in f32 (weights widen exactly); any order of
            // k f32 additions stays within k * eps * sum|terms|.
            ASSERT_NEAR(out[t * c.n + r], expected, (c.k + 2) * kEps * magnitude) << "token " << t << " row " << r;
          }
        }
      }
    }
  });
}

INSTANTIATE_TEST_SUITE_P(
    Types, FloatMatMulTest,
    ::testing::Combine(::testing::Values(DType::kF32, DType::kBF16, DType::kF16), ::testing::Values(1, 3)),
    [](const auto& info) {
      return std::string(Name(std::get<0>(info.param))) + "_threads" + std::to_string(std::get<1>(info.param));
    });

// MatMulPrecision::kBF16: bf16 weights multiply activations rounded to bf16,
// so the reference rounds them too; products of two bf16 are exact in f32, so
// the tolerance is the same summation bound. Other types ignore the setting.
TEST(Bf16ProductsTest, MatchesReferenceWithRoundedActivations) {
  // {20, 2049, 65}: an odd K whose last pair is padded, after a full 2048 chunk.
  const Case cases[] = {{1, 64, 8}, {3, 33, 7}, {16, 31, 64}, {67, 1000, 9}, {20, 2049, 65}, {509, 70, 130}};
  for (int threads : {1, 3}) {
    auto backend = CreateCpuBackend(threads, MatMulPrecision::kBF16);
    for (const Case& c : cases) {
      SCOPED_TRACE("threads " + std::to_string(threads) + " tokens " + std::to_string(c.tokens) + " k " +
                   std::to_string(c.k) + " n " + std::to_string(c.n));
      Tensor w = RandomWeights(DType::kBF16, c.n, c.k, c.k + 5 * c.n);
      std::vector<float> x = RandomFloats(c.tokens * c.k, c.k + 2 * c.tokens);
      std::vector<float> out(c.tokens * c.n, std::numeric_limits<float>::quiet_NaN());
      backend->MatMul(TensorView{x.data(), DType::kF32, Shape{c.tokens, c.k}}, w.view(), TensorView{},
                      TensorView{out.data(), DType::kF32, Shape{c.tokens, c.n}});
      std::vector<float> wf(c.k);
      double error_vs_rounded = 0.0, error_vs_exact = 0.0;
      for (int r = 0; r < c.n; ++r) {
        DequantizeRow(DType::kBF16, w.view().row(r), wf.data(), c.k);
        for (int t = 0; t < c.tokens; ++t) {
          double expected = 0.0, exact = 0.0, magnitude = 0.0;
          for (int i = 0; i < c.k; ++i) {
            const float xi = x[t * c.k + i];
            expected += static_cast<double>(wf[i]) * BF16ToF32(F32ToBF16(xi));
            exact += static_cast<double>(wf[i]) * xi;
            magnitude += std::fabs(static_cast<double>(wf[i]) * xi);
          }
          const double tolerance = (c.k + 2) * kEps * magnitude;
          ASSERT_NEAR(out[t * c.n + r], expected, tolerance) << "token " << t << " row " << r;
          error_vs_rounded += std::fabs(out[t * c.n + r] - expected);
          error_vs_exact += std::fabs(out[t * c.n + r] - exact);
        }
      }
      // The rounding is really applied: the results are far closer to the
      // rounded reference than to the exact one (activations lose 16 of 24
      // mantissa bits; f32 summation errors are ~1000x smaller).
      EXPECT_LT(10 * error_vs_rounded, error_vs_exact);
    }
  }
}

TEST(Bf16ProductsTest, OtherWeightTypesAreUnaffected) {
  const int tokens = 40, k = 96, n = 70;
  std::vector<float> x = RandomFloats(tokens * k, 11);
  for (DType type : {DType::kF32, DType::kF16, DType::kQ8_0}) {
    SCOPED_TRACE(Name(type));
    Tensor w = RandomWeights(type, n, k, 12);
    std::vector<float> exact(tokens * n), bf16(tokens * n);
    for (auto [precision, out] : {std::pair{MatMulPrecision::kF32, &exact}, std::pair{MatMulPrecision::kBF16, &bf16}}) {
      CreateCpuBackend(2, precision)
          ->MatMul(TensorView{x.data(), DType::kF32, Shape{tokens, k}}, w.view(), TensorView{},
                   TensorView{out->data(), DType::kF32, Shape{tokens, n}});
    }
    EXPECT_EQ(exact, bf16);
  }
}

// The row kernels attention and norms use, on every target.
TEST(RowKernelsTest, DotsMatchReferenceOnEveryTarget) {
  ForEachTarget([&] {
    for (int n : {1, 3, 7, 8, 15, 16, 17, 31, 33, 64, 100, 255, 257, 1024}) {
      for (int offset : {0, 1, 3}) {
        std::vector<float> a = RandomFloats(n + offset, n), b = RandomFloats(n + offset, n + 1);
        std::vector<uint16_t> bf(n + offset), half(n + offset);
        for (int i = 0; i < n + offset; ++i) {
          bf[i] = F32ToBF16(a[i]);
          half[i] = F32ToF16(a[i]);
        }
        double expected = 0, expected_bf = 0, expected_half = 0, magnitude = 0;
        for (int i = offset; i < n + offset; ++i) {
          expected += static_cast<double>(a[i]) * b[i];
          expected_bf += static_cast<double>(BF16ToF32(bf[i])) * b[i];
          expected_half += static_cast<double>(F16ToF32(half[i])) * b[i];
          magnitude += std::fabs(a[i] * b[i]) * 1.01;
        }
        const double tolerance = (n + 2) * kEps * magnitude;
        EXPECT_NEAR(cpu::DotF32(a.data() + offset, b.data() + offset, n), expected, tolerance) << n;
        EXPECT_NEAR(cpu::DotBF16(bf.data() + offset, b.data() + offset, n), expected_bf, tolerance) << n;
        EXPECT_NEAR(cpu::DotF16(half.data() + offset, b.data() + offset, n), expected_half, tolerance) << n;
      }
    }
  });
}

// Attention's batched kernels: scores over a run of keys, the weighted sum of
// values, and the softmax numerator, against double references.
TEST(RowKernelsTest, AttentionKernelsMatchReferenceOnEveryTarget) {
  ForEachTarget([&] {
    for (int dim : {1, 7, 16, 64, 100, 256}) {
      for (int count : {1, 3, 4, 5, 17}) {
        const int stride = dim + 3;  // rows of a cache with other heads in between
        std::vector<float> q = RandomFloats(dim + 1, dim), rows = RandomFloats(count * stride, count + dim);
        std::vector<float> weights = RandomFloats(count, 9);
        std::vector<float> scores(count), sum(dim, 0.5f);
        cpu::DotsF32(q.data() + 1, rows.data(), stride, count, dim, scores.data());
        cpu::WeightedSumF32(weights.data(), rows.data(), stride, count, dim, sum.data());
        for (int j = 0; j < count; ++j) {
          double expected = 0, magnitude = 0;
          for (int i = 0; i < dim; ++i) {
            expected += static_cast<double>(q[1 + i]) * rows[j * stride + i];
            magnitude += std::fabs(q[1 + i] * rows[j * stride + i]);
          }
          ASSERT_NEAR(scores[j], expected, (dim + 2) * kEps * magnitude) << "dim " << dim << " key " << j;
        }
        for (int i = 0; i < dim; ++i) {
          double expected = 0.5, magnitude = 0.5;
          for (int j = 0; j < count; ++j) {
            expected += static_cast<double>(weights[j]) * rows[j * stride + i];
            magnitude += std::fabs(weights[j] * rows[j * stride + i]);
          }
          ASSERT_NEAR(sum[i], expected, (count + 2) * kEps * magnitude) << "dim " << dim << " element " << i;
        }
      }
    }
    for (int n : {1, 5, 16, 33, 257}) {
      std::vector<float> x = RandomFloats(n, n, 4.0f), e = x;
      const float max = *std::max_element(x.begin(), x.end());
      const float total = cpu::ExpShiftSum(e.data(), n, max);
      double expected_total = 0;
      for (int i = 0; i < n; ++i) {
        // Of the f32 difference, as the kernel takes it; then a few ulp of Exp.
        const double expected = std::exp(static_cast<double>(x[i] - max));
        expected_total += expected;
        ASSERT_NEAR(e[i], expected, 16 * kEps * expected) << i;  // Highway's Exp: within ~8 ulp on every target
      }
      ASSERT_NEAR(total, expected_total, (n + 8) * kEps * expected_total);
    }
  });
}

TEST(RowKernelsTest, GeluMulMatchesTanhFormulaOnEveryTarget) {
  ForEachTarget([&] {
    for (int n : {1, 7, 16, 17, 100, 257}) {
      std::vector<float> gate = RandomFloats(n, n, 3.0f), up = RandomFloats(n, n + 1), out(n);
      cpu::GeluMulRow(gate.data(), up.data(), out.data(), n);
      for (int i = 0; i < n; ++i) {
        const double x = gate[i];
        const double expected = 0.5 * x * (1.0 + std::tanh(0.7978845608028654 * (x + 0.044715 * x * x * x))) * up[i];
        ASSERT_NEAR(out[i], expected, 16 * kEps * (std::fabs(x * up[i]) + 1e-30)) << i;
      }
    }
  });
}

// The pool the kernels run on (here until tests/base has a home for it): every
// index is visited once, chunk indices of ParallelFor are distinct and below
// num_threads(), and back-to-back calls (a decode step makes hundreds) never
// mix up generations, also when a chunk is slow.
TEST(ThreadPoolTest, ParallelForVisitsEachIndexOnce) {
  for (int threads : {1, 2, 3}) {
    ThreadPool pool(threads);
    for (int call = 0; call < 2000; ++call) {
      const size_t count = 1 + call % 97, grain = 1 + call % 5;
      std::vector<std::atomic<int>> visits(count);
      std::vector<std::atomic<int>> index_used(threads);
      pool.ParallelFor(count, grain, [&](size_t begin, size_t end, int index) {
        ASSERT_GE(index, 0);
        ASSERT_LT(index, threads);
        ASSERT_EQ(index_used[index].fetch_add(1), 0) << "chunk index reused";
        ASSERT_EQ(begin % grain, 0u);
        if (call % 500 == 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
        for (size_t i = begin; i < end; ++i) visits[i].fetch_add(1);
      });
      for (size_t i = 0; i < count; ++i) ASSERT_EQ(visits[i].load(), 1) << "call " << call << " index " << i;
    }
  }
}

TEST(ThreadPoolTest, ParallelForDynamicVisitsEachIndexOnce) {
  for (int threads : {1, 2, 3}) {
    ThreadPool pool(threads);
    for (int call = 0; call < 2000; ++call) {
      const size_t count = 1 + call % 211, chunk = 1 + call % 7;
      std::vector<std::atomic<int>> visits(count);
      pool.ParallelForDynamic(count, chunk, [&](size_t begin, size_t end, int thread) {
        ASSERT_GE(thread, 0);
        ASSERT_LT(thread, threads);
        ASSERT_LE(end - begin, chunk);
        for (size_t i = begin; i < end; ++i) visits[i].fetch_add(1);
      });
      for (size_t i = 0; i < count; ++i) ASSERT_EQ(visits[i].load(), 1) << "call " << call << " index " << i;
    }
  }
}

// Many tiny calls back to back on more threads than cores, so that workers are
// often preempted inside Work while the caller starts the next call: every
// task must still run exactly once per call, and every call must return (a
// watchdog turns a lost task into a failure instead of a hang).
TEST(ThreadPoolTest, BackToBackTinyCallsOnAnOversubscribedMachine) {
  const int threads = static_cast<int>(std::max(4u, 2 * std::thread::hardware_concurrency()));
  ThreadPool pool(threads);
  std::atomic<bool> finished{false};
  std::atomic<int> calls_done{0};
  std::thread runner([&] {
    bool ok = true;
    for (int call = 0; call < 20000 && ok; ++call) {
      const size_t count = 2 + call % 3;
      std::vector<std::atomic<int>> visits(count);
      pool.ParallelForDynamic(count, 1, [&](size_t begin, size_t, int) { visits[begin].fetch_add(1); });
      for (size_t i = 0; i < count; ++i) {
        if (visits[i].load() != 1) {
          ADD_FAILURE() << "call " << call << " ran task " << i << " " << visits[i].load() << " times";
          ok = false;
        }
      }
      calls_done.fetch_add(1);
    }
    finished.store(true);
  });
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (!finished.load() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  if (!finished.load()) {
    ADD_FAILURE() << "a call never returned after " << calls_done.load() << " calls";
    runner.detach();  // it is stuck in the pool; the process ends with the test binary
    std::_Exit(1);
  }
  runner.join();
}

TEST(KernelsTest, ReportsPaths) {
  const auto paths = cpu::SupportedQuantPaths();
  ASSERT_FALSE(paths.empty());
  EXPECT_EQ(paths.front(), cpu::QuantPath::kPortable);
  EXPECT_EQ(cpu::ActiveQuantPath(), paths.back());
  EXPECT_FALSE(hwy::SupportedAndGeneratedTargets().empty());
}

}  // namespace
}  // namespace gemmarun
