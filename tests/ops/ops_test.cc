// Every CPU kernel against the scalar double-precision reference, over sizes that
// hit full vectors, tails and single elements, with misaligned pointers, and with
// 1 and several threads. Tolerances scale with the operand magnitudes.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/kernels.h"
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

TensorView View(std::vector<float>& v, Shape shape) { return TensorView{v.data(), DType::kF32, shape}; }

void ExpectNear(const std::vector<float>& actual, const std::vector<float>& expected, double tolerance) {
  ASSERT_EQ(actual.size(), expected.size());
  for (size_t i = 0; i < actual.size(); ++i) {
    ASSERT_NEAR(actual[i], expected[i], tolerance) << "at " << i;
  }
}

// Sizes around common vector widths (4, 8, 16 floats) and the odd ones between.
const int kSizes[] = {1, 3, 7, 8, 9, 15, 16, 17, 31, 33, 64, 100, 255, 257};

class OpsTest : public ::testing::TestWithParam<int> {
 protected:
  void SetUp() override {
    backend_ = CreateCpuBackend(GetParam());
    ctx_.backend = backend_.get();
  }
  std::unique_ptr<Backend> backend_;
  ops::OpContext ctx_;
};

TEST_P(OpsTest, DotProductsMatchReferenceWithTailsAndMisalignment) {
  for (int n : kSizes) {
    for (int offset : {0, 1, 3}) {
      std::vector<float> a = RandomFloats(n + offset, n), b = RandomFloats(n + offset, n + 1);
      double expected = 0.0, magnitude = 0.0;
      for (int i = 0; i < n; ++i) {
        expected += static_cast<double>(a[i + offset]) * b[i + offset];
        magnitude += std::fabs(a[i + offset] * b[i + offset]);
      }
      EXPECT_NEAR(cpu::DotF32(a.data() + offset, b.data() + offset, n), expected, 1e-6 * (magnitude + 1)) << n;
      std::vector<uint16_t> bf(n + offset), half(n + offset);
      double expected_bf = 0.0, expected_half = 0.0;
      for (int i = 0; i < n + offset; ++i) {
        bf[i] = F32ToBF16(a[i]);
        half[i] = F32ToF16(a[i]);
      }
      for (int i = offset; i < n + offset; ++i) {
        expected_bf += static_cast<double>(BF16ToF32(bf[i])) * b[i];
        expected_half += static_cast<double>(F16ToF32(half[i])) * b[i];
      }
      EXPECT_NEAR(cpu::DotBF16(bf.data() + offset, b.data() + offset, n), expected_bf, 1e-6 * (magnitude + 1));
      EXPECT_NEAR(cpu::DotF16(half.data() + offset, b.data() + offset, n), expected_half, 1e-6 * (magnitude + 1));
    }
  }
}

TEST_P(OpsTest, MatMulMatchesReferenceForEveryWeightDtype) {
  for (DType dtype : {DType::kF32, DType::kBF16, DType::kF16}) {
    for (auto [tokens, k, n] : {std::tuple{1, 17, 5}, {3, 64, 33}, {5, 257, 19}}) {
      std::vector<float> x = RandomFloats(tokens * k, 1), w32 = RandomFloats(n * k, 2), bias = RandomFloats(n, 3);
      Tensor w(dtype, Shape{n, k});
      for (int r = 0; r < n; ++r) ASSERT_TRUE(QuantizeRow(dtype, w32.data() + r * k, w.view().row(r), k));
      std::vector<float> out(tokens * n);
      ops::MatMul(ctx_, View(x, Shape{tokens, k}), w.view(), View(bias, Shape{n}), View(out, Shape{tokens, n}));
      const auto expected = reference::MatMul(View(x, Shape{tokens, k}), w.view(), View(bias, Shape{n}));
      ExpectNear(out, expected, 2e-5 * std::sqrt(k) * 4);
    }
  }
}

TEST_P(OpsTest, RmsNormMatchesReference) {
  for (int dim : kSizes) {
    std::vector<float> x = RandomFloats(3 * dim, 4, 3.0f), w = RandomFloats(dim, 5), out(3 * dim);
    ops::RmsNorm(ctx_, View(x, Shape{3, dim}), View(w, Shape{dim}), 1e-6f, View(out, Shape{3, dim}));
    ExpectNear(out, reference::RmsNorm(View(x, Shape{3, dim}), View(w, Shape{dim}), 1e-6f), 1e-5);
  }
}

TEST_P(OpsTest, LayerNormMatchesReference) {
  for (int dim : kSizes) {
    std::vector<float> x = RandomFloats(2 * dim, 6, 2.0f), w = RandomFloats(dim, 7), b = RandomFloats(dim, 8);
    std::vector<float> out(2 * dim);
    ops::LayerNorm(ctx_, View(x, Shape{2, dim}), View(w, Shape{dim}), View(b, Shape{dim}), 1e-6f,
                   View(out, Shape{2, dim}));
    ExpectNear(out, reference::LayerNorm(View(x, Shape{2, dim}), View(w, Shape{dim}), View(b, Shape{dim}), 1e-6f),
               1e-4);
  }
}

TEST_P(OpsTest, RopeMatchesReferenceIncludingPartialAndScaled) {
  for (auto [head_dim, rotary, scale] : {std::tuple{16, 16, 1.0f}, {32, 16, 1.0f}, {8, 8, 8.0f}}) {
    std::vector<float> x = RandomFloats(4 * 3 * head_dim, 9);
    std::vector<float> positions = {0, 1, 17, 300};
    const Shape shape{4, 3, head_dim};
    const auto expected = reference::Rope(View(x, shape), positions, rotary, 10000.0f, scale);
    ops::Rope(ctx_, View(x, shape), positions, rotary, 10000.0f, scale);
    // f32 angles at position 300 carry ~3e-5 relative error, as HF's f32 RoPE does.
    ExpectNear(x, expected, 1e-4);
  }
}

TEST_P(OpsTest, GeluMulAndSoftCapMatchReference) {
  std::vector<float> gate = RandomFloats(257, 13, 3.0f), up = RandomFloats(257, 14), out(257);
  ops::GeluMul(ctx_, View(gate, Shape{1, 257}), View(up, Shape{1, 257}), View(out, Shape{1, 257}));
  ExpectNear(out, reference::GeluMul(gate, up), 1e-5);
  std::vector<float> x = RandomFloats(100, 15, 40.0f);
  const auto expected = reference::SoftCap(x, 30.0f);
  ops::SoftCap(ctx_, View(x, Shape{100}), 30.0f);
  ExpectNear(x, expected, 1e-4);
}

// Griffin ops. The state-carrying ones are also fed in chunks: any split of a
// sequence must leave the same state and outputs as feeding it whole.
TEST_P(OpsTest, CausalConv1DMatchesReferenceAndCarriesStateAcrossChunks) {
  for (int width : {1, 2, 4}) {
    for (int channels : {1, 7, 64, 100}) {
      for (int tokens : {1, 2, 3, 9}) {
        const int history = width - 1;
        std::vector<float> x = RandomFloats(tokens * channels, 20), w = RandomFloats(channels * width, 21);
        std::vector<float> b = RandomFloats(channels, 22), state = RandomFloats(history * channels, 23);
        std::vector<float> expected_state = state;
        const Shape shape{tokens, channels};
        const auto expected = reference::CausalConv1D(View(x, shape), View(w, Shape{channels, width}),
                                                      View(b, Shape{channels}), expected_state);
        // Whole, then split at every token (chunks of one, as decoding does).
        for (int chunk : {tokens, 1}) {
          std::vector<float> st = state, out(tokens * channels);
          for (int begin = 0; begin < tokens; begin += chunk) {
            const int n = std::min(chunk, tokens - begin);
            const TensorView state_view{history > 0 ? st.data() : nullptr, DType::kF32, Shape{history, channels}};
            ops::CausalConv1D(ctx_, TensorView{x.data() + begin * channels, DType::kF32, Shape{n, channels}},
                              View(w, Shape{channels, width}), View(b, Shape{channels}), state_view,
                              TensorView{out.data() + begin * channels, DType::kF32, Shape{n, channels}});
          }
          SCOPED_TRACE("width " + std::to_string(width) + " channels " + std::to_string(channels) + " tokens " +
                       std::to_string(tokens) + " chunk " + std::to_string(chunk));
          ExpectNear(out, expected, 1e-5 * width);
          ExpectNear(st, expected_state, 0.0);  // the state is a copy of inputs: exact
        }
      }
    }
  }
}

TEST_P(OpsTest, BlockDiagonalMatMulMatchesReference) {
  for (auto [tokens, heads, block] : {std::tuple{1, 1, 1}, {3, 4, 16}, {5, 2, 17}, {2, 10, 33}}) {
    const int channels = heads * block;
    std::vector<float> x = RandomFloats(tokens * channels, 24), w = RandomFloats(heads * block * block, 25);
    std::vector<float> b = RandomFloats(channels, 26), out(tokens * channels);
    const Shape shape{tokens, channels};
    ops::BlockDiagonalMatMul(ctx_, View(x, shape), View(w, Shape{heads, block, block}), View(b, Shape{heads, block}),
                             View(out, shape));
    const auto expected =
        reference::BlockDiagonalMatMul(View(x, shape), View(w, Shape{heads, block, block}), View(b, Shape{heads, block}));
    ExpectNear(out, expected, 2e-6 * std::sqrt(block) * 4);
  }
}

TEST_P(OpsTest, RgLruMatchesReferenceWithResetAndChunks) {
  for (int channels : {1, 7, 64, 257}) {
    for (int first_index : {0, 5}) {
      const int tokens = 11;
      const Shape shape{tokens, channels};
      std::vector<float> x = RandomFloats(tokens * channels, 27), gx = RandomFloats(tokens * channels, 28, 2.0f);
      std::vector<float> ga = RandomFloats(tokens * channels, 29, 2.0f);
      // Parameters from strongly negative (a near 1: sqrt(1 - a²) needs care) to past
      // softplus's linear threshold.
      std::vector<float> param = RandomFloats(channels, 30, 4.0f);
      param[0] = channels > 1 ? -12.0f : param[0];
      if (channels > 2) param[1] = 25.0f;
      std::vector<float> state = RandomFloats(channels, 31);
      std::vector<float> expected_state = state;
      const auto expected = reference::RgLru(View(x, shape), View(gx, shape), View(ga, shape),
                                             View(param, Shape{channels}), first_index, expected_state);
      for (int chunk : {tokens, 4, 1}) {
        std::vector<float> h = state, out = x;  // out aliases x, as the model calls it
        for (int begin = 0; begin < tokens; begin += chunk) {
          const int n = std::min(chunk, tokens - begin);
          auto rows = [&](std::vector<float>& v) {
            return TensorView{v.data() + begin * channels, DType::kF32, Shape{n, channels}};
          };
          ops::RgLru(ctx_, rows(out), rows(gx), rows(ga), View(param, Shape{channels}), first_index + begin,
                     View(h, Shape{channels}), rows(out));
        }
        SCOPED_TRACE("channels " + std::to_string(channels) + " first " + std::to_string(first_index) + " chunk " +
                     std::to_string(chunk));
        ExpectNear(out, expected, 2e-6);
        ExpectNear(h, expected_state, 2e-6);
      }
    }
  }
}

TEST_P(OpsTest, RgLruResetIgnoresTheIncomingState) {
  const int channels = 9;
  const Shape shape{1, channels};
  std::vector<float> x = RandomFloats(channels, 32), gx = RandomFloats(channels, 33), ga = RandomFloats(channels, 34);
  std::vector<float> param = RandomFloats(channels, 35);
  std::vector<float> h(channels, std::numeric_limits<float>::infinity()), out(channels);
  std::vector<float> zero(channels, 0.0f);
  const auto expected = reference::RgLru(View(x, shape), View(gx, shape), View(ga, shape),
                                         View(param, Shape{channels}), 0, zero);
  ops::RgLru(ctx_, View(x, shape), View(gx, shape), View(ga, shape), View(param, Shape{channels}), 0,
             View(h, Shape{channels}), View(out, shape));
  // At index 0: h = x * sigmoid(gate_x), whatever h held.
  ExpectNear(out, expected, 1e-6);
}

INSTANTIATE_TEST_SUITE_P(Threads, OpsTest, ::testing::Values(1, 3));

TEST(KernelsTest, ReportsADispatchTarget) { EXPECT_STRNE(cpu::SelectedTarget(), ""); }

}  // namespace
}  // namespace gemmarun
