// Griffin's (RecurrentGemma's) CPU kernels against the scalar references of
// ops/reference, on every Highway target compiled in (pinned as
// GEMMARUN_CPU_TARGET would) and with 1 and 3 threads, at shapes the model
// has: RecurrentGemma-2B's 10 heads of 256, a decode step (1 token), a prefill
// whose token count is not a multiple of the 6-token micro-kernel nor of the
// 64-token work items, and odd widths that leave vector tails. ops_test covers
// the small shapes and state carried across chunks.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/cpu_target.h"
#include "hwy/targets.h"
#include "ops/reference/reference_ops.h"

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

// Relative to the magnitude of the expected values, with a floor for values near 0.
void ExpectClose(const std::vector<float>& actual, const std::vector<float>& expected, double tolerance) {
  ASSERT_EQ(actual.size(), expected.size());
  for (size_t i = 0; i < actual.size(); ++i) {
    ASSERT_NEAR(actual[i], expected[i], tolerance * (1.0 + std::fabs(expected[i]))) << "at " << i;
  }
}

class GriffinKernelsTest : public ::testing::TestWithParam<int> {
 protected:
  template <class Body>
  void ForEachTarget(Body&& body) {
    for (int64_t target : hwy::SupportedAndGeneratedTargets()) {
      ASSERT_TRUE(cpu::PinTarget(hwy::TargetName(target)).ok());
      SCOPED_TRACE(hwy::TargetName(target));
      auto backend = CreateCpuBackend(GetParam());
      body(*backend);
    }
    ASSERT_TRUE(cpu::PinTarget("").ok());
  }
};

TEST_P(GriffinKernelsTest, BlockDiagonalMatMulMatchesReference) {
  struct Case {
    int tokens, heads, block;
  };
  // {1, 10, 256}: decode; {71, 10, 256}: 11 full micro-tiles + 5, two token blocks;
  // {13, 3, 37}: columns past the vectors; {7, 2, 100}: a single-vector column step.
  const Case cases[] = {{1, 10, 256}, {71, 10, 256}, {13, 3, 37}, {7, 2, 100}};
  ForEachTarget([&](Backend& backend) {
    for (const Case& c : cases) {
      SCOPED_TRACE("tokens " + std::to_string(c.tokens) + " heads " + std::to_string(c.heads) + " block " +
                   std::to_string(c.block));
      const int channels = c.heads * c.block;
      std::vector<float> x = RandomFloats(c.tokens * channels, 1);
      std::vector<float> w = RandomFloats(c.heads * c.block * c.block, 2, 1.0f / std::sqrt(c.block));
      std::vector<float> b = RandomFloats(channels, 3), out(c.tokens * channels);
      const Shape shape{c.tokens, channels}, w_shape{c.heads, c.block, c.block}, b_shape{c.heads, c.block};
      backend.BlockDiagonalMatMul(View(x, shape), View(w, w_shape), View(b, b_shape), View(out, shape));
      // Sums of `block` unit-sized f32 products: a few ulp per term.
      ExpectClose(out, reference::BlockDiagonalMatMul(View(x, shape), View(w, w_shape), View(b, b_shape)),
                  4e-7 * c.block);
    }
  });
}

TEST_P(GriffinKernelsTest, CausalConv1DMatchesReference) {
  ForEachTarget([&](Backend& backend) {
    for (auto [tokens, channels] : {std::pair{1, 2560}, std::pair{19, 2560}, std::pair{5, 77}}) {
      SCOPED_TRACE("tokens " + std::to_string(tokens) + " channels " + std::to_string(channels));
      const int width = 4, history = width - 1;
      std::vector<float> x = RandomFloats(tokens * channels, 4), w = RandomFloats(channels * width, 5);
      std::vector<float> b = RandomFloats(channels, 6), state = RandomFloats(history * channels, 7);
      std::vector<float> expected_state = state, out(tokens * channels);
      const Shape shape{tokens, channels};
      const auto expected =
          reference::CausalConv1D(View(x, shape), View(w, Shape{channels, width}), View(b, Shape{channels}),
                                  expected_state);
      backend.CausalConv1D(View(x, shape), View(w, Shape{channels, width}), View(b, Shape{channels}),
                           View(state, Shape{history, channels}), View(out, shape));
      ExpectClose(out, expected, 1e-6 * width);
      EXPECT_EQ(state, expected_state);  // the state is a copy of inputs: exact
    }
  });
}

TEST_P(GriffinKernelsTest, RgLruMatchesReference) {
  ForEachTarget([&](Backend& backend) {
    for (auto [tokens, channels, first_index] : {std::tuple{1, 2560, 7}, {9, 2560, 0}, {6, 43, 3}}) {
      SCOPED_TRACE("tokens " + std::to_string(tokens) + " channels " + std::to_string(channels) + " first " +
                   std::to_string(first_index));
      const Shape shape{tokens, channels};
      std::vector<float> x = RandomFloats(tokens * channels, 8), gx = RandomFloats(tokens * channels, 9, 3.0f);
      // Gates far into sigmoid's tails, where e^-z would overflow unclamped.
      std::vector<float> ga = RandomFloats(tokens * channels, 10, 3.0f);
      ga[0] = 120.0f;
      ga[1] = -120.0f;
      gx[2] = -150.0f;
      // Parameters from a near 1 (sqrt(1 - a²) needs care) to past softplus's threshold.
      std::vector<float> param = RandomFloats(channels, 11, 4.0f);
      param[0] = -12.0f;
      param[1] = 25.0f;
      param[2] = 20.0f;
      std::vector<float> h = RandomFloats(channels, 12), expected_h = h;
      const auto expected = reference::RgLru(View(x, shape), View(gx, shape), View(ga, shape),
                                             View(param, Shape{channels}), first_index, expected_h);
      std::vector<float> out = x;  // out aliases x, as the model calls it
      backend.RgLru(View(out, shape), View(gx, shape), View(ga, shape), View(param, Shape{channels}), first_index,
                    View(h, Shape{channels}), View(out, shape));
      ExpectClose(out, expected, 2e-6);
      ExpectClose(h, expected_h, 2e-6);
    }
  });
}

TEST_P(GriffinKernelsTest, GeluAndMulMatchScalarFormulas) {
  ForEachTarget([&](Backend& backend) {
    // 70000: enough elements to be split over the threads, with a tail.
    for (int n : {1, 17, 2560, 70001}) {
      std::vector<float> x = RandomFloats(n, 13, 3.0f), y = RandomFloats(n, 14), out(n);
      std::vector<float> gelu = x;
      backend.Gelu(View(gelu, Shape{n}));
      backend.Mul(View(x, Shape{n}), View(y, Shape{n}), View(out, Shape{n}));
      for (int i = 0; i < n; ++i) {
        const double a = x[i];
        const double expected = 0.5 * a * (1.0 + std::tanh(0.7978845608028654 * (a + 0.044715 * a * a * a)));
        ASSERT_NEAR(gelu[i], expected, 1e-6 * (1.0 + std::fabs(expected))) << n << " at " << i;
        ASSERT_EQ(out[i], x[i] * y[i]) << n << " at " << i;
      }
    }
  });
}

INSTANTIATE_TEST_SUITE_P(Threads, GriffinKernelsTest, ::testing::Values(1, 3));

}  // namespace
}  // namespace gemmarun
