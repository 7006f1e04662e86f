// Every CUDA op but attention against the scalar double-precision references in
// ops/reference, over odd sizes, tails and every weight dtype. Each test skips
// when no GPU is present.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <tuple>
#include <vector>

#include "cuda/cuda_test_util.h"
#include "ops/reference/reference_ops.h"
#include "tensor/quant.h"

namespace gemmarun {
namespace {

using testing::DeviceBuffer;
using testing::ExpectNear;
using testing::HostView;
using testing::RandomFloats;

// A weight matrix [n, k] of `dtype` on the host: quantized from random floats
// where QuantizeRow can, else (Q4_K, Q6_K) random block bytes with sane f16 scales.
Tensor RandomWeights(DType dtype, int64_t n, int64_t k, uint32_t seed) {
  Tensor w(dtype, Shape{n, k});
  if (dtype == DType::kQ4_K || dtype == DType::kQ6_K) {
    std::mt19937 rng(seed);
    for (size_t i = 0; i < w.bytes(); ++i) w.data()[i] = static_cast<uint8_t>(rng());
    const size_t block_bytes = Info(dtype).block_bytes;
    std::uniform_real_distribution<float> scale(0.001f, 0.02f);
    for (size_t b = 0; b < w.bytes() / block_bytes; ++b) {
      uint8_t* block = w.data() + b * block_bytes;
      const uint16_t d = F32ToF16(scale(rng)), dmin = F32ToF16(scale(rng));
      if (dtype == DType::kQ4_K) {
        std::memcpy(block, &d, 2);
        std::memcpy(block + 2, &dmin, 2);
      } else {
        std::memcpy(block + 208, &d, 2);
      }
    }
    return w;
  }
  std::vector<float> values = RandomFloats(n * k, seed);
  for (int64_t r = 0; r < n; ++r) EXPECT_TRUE(QuantizeRow(dtype, values.data() + r * k, w.view().row(r), k));
  return w;
}

class CudaOpsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    GR_SKIP_WITHOUT_GPU();
    backend_ = testing::SharedCudaBackend();
    ASSERT_NE(backend_, nullptr);
  }
  void ExpectSynchronized() { ASSERT_TRUE(backend_->Synchronize().ok()); }
  CudaBackend* backend_ = nullptr;
};

// Runs MatMul on the device and compares with reference::MatMul. x may start
// `x_offset` floats into its buffer (misaligned for the 16-byte loads).
void CheckMatMul(CudaBackend* backend, DType dtype, int64_t tokens, int64_t k, int64_t n, double relative_tolerance,
                 int x_offset = 0, bool with_bias = true) {
  SCOPED_TRACE(::testing::Message() << Name(dtype) << " tokens=" << tokens << " k=" << k << " n=" << n
                                    << " x_offset=" << x_offset);
  Tensor w = RandomWeights(dtype, n, k, static_cast<uint32_t>(k * 31 + n));
  std::vector<float> x = RandomFloats(tokens * k + x_offset, 7), bias = RandomFloats(n, 8);
  std::vector<float> x_only(x.begin() + x_offset, x.end());
  const auto expected =
      reference::MatMul(HostView(x_only, Shape{tokens, k}), w.view(),
                        with_bias ? HostView(bias, Shape{n}) : TensorView{});
  DeviceBuffer dx(backend, x), dw(backend, w.data(), w.bytes()), db(backend, bias),
      dout(backend, nullptr, tokens * n * sizeof(float));
  backend->MatMul(dx.view(DType::kF32, Shape{tokens, k}, x_offset * sizeof(float)), dw.view(dtype, Shape{n, k}),
                  with_bias ? db.f32(Shape{n}) : TensorView{}, dout.f32(Shape{tokens, n}));
  ASSERT_TRUE(backend->Synchronize().ok());
  // Products of N(0,1) activations with weights of magnitude ~|w|: the error of
  // an f32 sum grows like sqrt(k); the bound scales with the output's magnitude.
  double magnitude = 1.0;
  for (float e : expected) magnitude = std::max(magnitude, static_cast<double>(std::fabs(e)));
  ExpectNear(dout.Download(), expected, relative_tolerance * magnitude);
}

const DType kWeightTypes[] = {DType::kF32, DType::kBF16, DType::kF16, DType::kQ8_0,
                              DType::kQ4_0, DType::kQ5_0, DType::kQ4_K, DType::kQ6_K};

int64_t BlockElements(DType dtype) { return static_cast<int64_t>(Info(dtype).block_elements); }

TEST_F(CudaOpsTest, MatVecMatchesReferenceForEveryDtypeBatchAndTail) {
  for (DType dtype : kWeightTypes) {
    const int64_t b = BlockElements(dtype);
    // k: one block, an odd number of blocks, a window and a tail, enough to split K.
    std::vector<int64_t> ks = {b, 3 * b, 9 * b, 8192};
    if (b == 1) ks = {1, 3, 17, 100, 257, 1024, 8192};
    for (int64_t k : ks) {
      for (int64_t n : {1, 7, 33, 300}) {
        for (int64_t tokens : {1, 2, 3, 5, 8}) CheckMatMul(backend_, dtype, tokens, k, n, 2e-5);
      }
    }
  }
}

TEST_F(CudaOpsTest, MatVecHandlesMisalignedActivationsAndNoBias) {
  for (DType dtype : kWeightTypes) {
    const int64_t k = std::max<int64_t>(256, BlockElements(dtype)) * 2;
    CheckMatMul(backend_, dtype, 3, k, 45, 2e-5, /*x_offset=*/1, /*with_bias=*/false);
  }
}

TEST_F(CudaOpsTest, GemmMatchesReferenceInF32ForEveryDtype) {
  // More rows than the matvec takes: cuBLASLt in true f32 (TF32 off), quantized
  // weights dequantized tile by tile.
  for (DType dtype : kWeightTypes) {
    const int64_t k = std::max<int64_t>(256, BlockElements(dtype)) * 3;
    for (int64_t tokens : {9, 40}) CheckMatMul(backend_, dtype, tokens, k, 129, 2e-5);
  }
  // f32 weights with odd sizes (cuBLASLt takes any k).
  CheckMatMul(backend_, DType::kF32, 17, 101, 37, 2e-5);
  CheckMatMul(backend_, DType::kBF16, 13, 99, 31, 2e-5);
}

TEST_F(CudaOpsTest, GemmInBF16PrecisionIsClose) {
  CudaBackend* bf16 = testing::SharedCudaBackend(MatMulPrecision::kBF16);
  ASSERT_NE(bf16, nullptr);
  for (DType dtype : {DType::kBF16, DType::kF16, DType::kQ8_0, DType::kQ4_K}) {
    CheckMatMul(bf16, dtype, 33, 512, 70, 2e-2);
  }
}

TEST_F(CudaOpsTest, EmbedDequantizesRowsForEveryDtype) {
  for (DType dtype : kWeightTypes) {
    SCOPED_TRACE(Name(dtype));
    const int64_t cols = BlockElements(dtype) == 1 ? 37 : 2 * BlockElements(dtype), rows = 11;
    Tensor table = RandomWeights(dtype, rows, cols, 3);
    const std::vector<int32_t> ids = {4, 0, 10, 4, 7};
    std::vector<float> expected(ids.size() * cols);
    for (size_t i = 0; i < ids.size(); ++i) {
      DequantizeRow(dtype, table.view().row(ids[i]), expected.data() + i * cols, cols);
      for (int64_t c = 0; c < cols; ++c) expected[i * cols + c] *= 1.5f;
    }
    DeviceBuffer dtable(backend_, table.data(), table.bytes()),
        dout(backend_, nullptr, expected.size() * sizeof(float));
    backend_->Embed(dtable.view(dtype, Shape{rows, cols}), ids, 1.5f,
                    dout.f32(Shape{static_cast<int64_t>(ids.size()), cols}));
    ExpectSynchronized();
    ExpectNear(dout.Download(), expected, 0.0);
  }
}

const int kSizes[] = {1, 3, 7, 8, 9, 31, 33, 100, 255, 257, 2304};

TEST_F(CudaOpsTest, RmsNormAndLayerNormMatchReference) {
  for (int dim : kSizes) {
    SCOPED_TRACE(dim);
    std::vector<float> x = RandomFloats(3 * dim, 4, 3.0f), w = RandomFloats(dim, 5), bias = RandomFloats(dim, 6);
    DeviceBuffer dx(backend_, x), dw(backend_, w), db(backend_, bias), dout(backend_, nullptr, x.size() * 4);
    backend_->RmsNorm(dx.f32(Shape{3, dim}), dw.f32(Shape{dim}), 1e-6f, dout.f32(Shape{3, dim}));
    ExpectSynchronized();
    ExpectNear(dout.Download(), reference::RmsNorm(HostView(x, Shape{3, dim}), HostView(w, Shape{dim}), 1e-6f), 2e-5);
    backend_->LayerNorm(dx.f32(Shape{3, dim}), dw.f32(Shape{dim}), db.f32(Shape{dim}), 1e-6f, dout.f32(Shape{3, dim}));
    ExpectSynchronized();
    ExpectNear(dout.Download(),
               reference::LayerNorm(HostView(x, Shape{3, dim}), HostView(w, Shape{dim}), HostView(bias, Shape{dim}),
                                    1e-6f),
               2e-5);
  }
}

TEST_F(CudaOpsTest, RopeMatchesReferenceIncludingPartialAndScaled) {
  for (auto [head_dim, rotary_dim, scale] : {std::tuple{8, 8, 1.0f}, {64, 32, 1.0f}, {256, 256, 8.0f}}) {
    SCOPED_TRACE(::testing::Message() << head_dim << " " << rotary_dim << " " << scale);
    const int64_t tokens = 5, heads = 3;
    std::vector<float> x = RandomFloats(tokens * heads * head_dim, 9);
    const std::vector<float> positions = {0, 1, 17, 4095, 131071};
    const auto expected = reference::Rope(HostView(x, Shape{tokens, heads, head_dim}), positions, rotary_dim,
                                          10000.0f, scale);
    DeviceBuffer dx(backend_, x);
    backend_->Rope(dx.f32(Shape{tokens, heads, head_dim}), positions, rotary_dim, 10000.0f, scale);
    ExpectSynchronized();
    ExpectNear(dx.Download(), expected, 1e-5);
  }
}

TEST_F(CudaOpsTest, ElementwiseOpsMatchReference) {
  for (int n : kSizes) {
    SCOPED_TRACE(n);
    std::vector<float> a = RandomFloats(n, 10, 3.0f), b = RandomFloats(n, 11, 3.0f);
    DeviceBuffer da(backend_, a), db(backend_, b), dout(backend_, nullptr, n * 4);
    backend_->GeluMul(da.f32(Shape{n}), db.f32(Shape{n}), dout.f32(Shape{n}));
    ExpectSynchronized();
    ExpectNear(dout.Download(), reference::GeluMul(a, b), 1e-5 * 10);
    backend_->Add(da.f32(Shape{n}), db.f32(Shape{n}), dout.f32(Shape{n}));
    backend_->Mul(dout.f32(Shape{n}), db.f32(Shape{n}), dout.f32(Shape{n}));  // (a + b) * b, aliased
    ExpectSynchronized();
    std::vector<float> expected(n);
    for (int i = 0; i < n; ++i) expected[i] = (a[i] + b[i]) * b[i];
    ExpectNear(dout.Download(), expected, 1e-5);
    backend_->SoftCap(da.f32(Shape{n}), 2.5f);
    ExpectSynchronized();
    ExpectNear(da.Download(), reference::SoftCap(a, 2.5f), 1e-5);
    // Gelu alone = GeluMul with up = 1.
    std::vector<float> ones(n, 1.0f);
    backend_->Gelu(db.f32(Shape{n}));
    ExpectSynchronized();
    ExpectNear(db.Download(), reference::GeluMul(b, ones), 1e-5 * 10);
  }
}

TEST_F(CudaOpsTest, CopyRowsCopies) {
  std::vector<float> src = RandomFloats(3 * 19, 12);
  DeviceBuffer dsrc(backend_, src), ddst(backend_, nullptr, src.size() * 4);
  backend_->CopyRows(dsrc.f32(Shape{3, 19}), ddst.f32(Shape{3, 19}));
  ExpectSynchronized();
  ExpectNear(ddst.Download(), src, 0.0);
}

TEST_F(CudaOpsTest, CausalConv1DMatchesReferenceAndCarriesStateAcrossChunks) {
  const int64_t channels = 300, width = 4, tokens = 9;
  std::vector<float> x = RandomFloats(tokens * channels, 13), weight = RandomFloats(channels * width, 14),
                     bias = RandomFloats(channels, 15), state = RandomFloats((width - 1) * channels, 16);
  std::vector<float> ref_state = state;
  const auto expected =
      reference::CausalConv1D(HostView(x, Shape{tokens, channels}), HostView(weight, Shape{channels, width}),
                              HostView(bias, Shape{channels}), ref_state);
  DeviceBuffer dx(backend_, x), dw(backend_, weight), db(backend_, bias), dstate(backend_, state),
      dout(backend_, nullptr, x.size() * 4);
  // Two chunks (5 rows, then 4): the state must carry the history between them.
  for (auto [first, rows] : {std::pair<int64_t, int64_t>{0, 5}, {5, 4}}) {
    backend_->CausalConv1D(dx.view(DType::kF32, Shape{rows, channels}, first * channels * 4),
                           dw.f32(Shape{channels, width}), db.f32(Shape{channels}),
                           dstate.f32(Shape{width - 1, channels}),
                           dout.view(DType::kF32, Shape{rows, channels}, first * channels * 4));
  }
  ExpectSynchronized();
  ExpectNear(dout.Download(), expected, 1e-5);
  ExpectNear(dstate.Download(), ref_state, 0.0);
}

TEST_F(CudaOpsTest, BlockDiagonalMatMulMatchesReference) {
  const int64_t heads = 3, block = 17, tokens = 4;
  std::vector<float> x = RandomFloats(tokens * heads * block, 17), w = RandomFloats(heads * block * block, 18),
                     bias = RandomFloats(heads * block, 19);
  const auto expected = reference::BlockDiagonalMatMul(HostView(x, Shape{tokens, heads * block}),
                                                       HostView(w, Shape{heads, block, block}),
                                                       HostView(bias, Shape{heads, block}));
  DeviceBuffer dx(backend_, x), dw(backend_, w), db(backend_, bias), dout(backend_, nullptr, x.size() * 4);
  backend_->BlockDiagonalMatMul(dx.f32(Shape{tokens, heads * block}), dw.f32(Shape{heads, block, block}),
                                db.f32(Shape{heads, block}), dout.f32(Shape{tokens, heads * block}));
  ExpectSynchronized();
  ExpectNear(dout.Download(), expected, 1e-4);
}

TEST_F(CudaOpsTest, RgLruMatchesReferenceWithResetAndChunks) {
  const int64_t channels = 257, tokens = 7;
  std::vector<float> x = RandomFloats(tokens * channels, 20), gate_x = RandomFloats(tokens * channels, 21),
                     gate_a = RandomFloats(tokens * channels, 22), param = RandomFloats(channels, 23),
                     state = RandomFloats(channels, 24);
  for (int64_t first_index : {0, 12}) {
    SCOPED_TRACE(first_index);
    std::vector<float> ref_state = state;
    const Shape shape{tokens, channels};
    const auto expected = reference::RgLru(HostView(x, shape), HostView(gate_x, shape), HostView(gate_a, shape),
                                           HostView(param, Shape{channels}), first_index, ref_state);
    DeviceBuffer dx(backend_, x), dgx(backend_, gate_x), dga(backend_, gate_a), dp(backend_, param),
        dstate(backend_, state), dout(backend_, nullptr, x.size() * 4);
    for (auto [first, rows] : {std::pair<int64_t, int64_t>{0, 3}, {3, 4}}) {
      const size_t offset = first * channels * 4;
      const Shape part{rows, channels};
      backend_->RgLru(dx.view(DType::kF32, part, offset), dgx.view(DType::kF32, part, offset),
                      dga.view(DType::kF32, part, offset), dp.f32(Shape{channels}), first_index + first,
                      dstate.f32(Shape{channels}), dout.view(DType::kF32, part, offset));
    }
    ExpectSynchronized();
    ExpectNear(dout.Download(), expected, 2e-5);
    ExpectNear(dstate.Download(), ref_state, 2e-5);
  }
}

TEST_F(CudaOpsTest, ArgMaxPicksTheLowestIndexOfTheMaximum) {
  const int64_t rows = 3, vocab = 262144 + 17;
  std::vector<float> logits = RandomFloats(rows * vocab, 25);
  logits[0 * vocab + 5] = 100.0f;
  logits[1 * vocab + vocab - 1] = 50.0f;
  logits[2 * vocab + 70000] = 9.0f;  // a tie: the lower index wins
  logits[2 * vocab + 200000] = 9.0f;
  DeviceBuffer dlogits(backend_, logits), dids(backend_, nullptr, rows * sizeof(int32_t));
  backend_->ArgMax(dlogits.f32(Shape{rows, vocab}), static_cast<int32_t*>(dids.data()));
  ExpectSynchronized();
  EXPECT_EQ(dids.Download<int32_t>(), (std::vector<int32_t>{5, static_cast<int32_t>(vocab - 1), 70000}));
}

TEST_F(CudaOpsTest, UnsupportedInputsReportAStatusInsteadOfCrashing) {
  std::vector<float> x(64, 1.0f);
  DeviceBuffer dx(backend_, x);
  // An i32 "weight" has no matmul.
  backend_->MatMul(dx.f32(Shape{1, 16}), dx.view(DType::kI32, Shape{4, 16}), TensorView{}, dx.f32(Shape{1, 4}));
  const Status status = backend_->Synchronize();
  EXPECT_FALSE(status.ok());
  EXPECT_NE(status.message().find("i32"), std::string::npos) << status.message();
  EXPECT_TRUE(backend_->Synchronize().ok());  // the error was reported once
}

}  // namespace
}  // namespace gemmarun
