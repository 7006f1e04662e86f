// Dtype conversions and ggml's block formats: hand-made blocks checked against
// the layout written out element by element (not the loop structure of
// quant.cc), and byte-exactness against gguf-py's quantizers and dequantizers
// through the files of tools/gguf/make_test_ggufs.py.
#include "tensor/quant.h"

#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "io/gguf.h"
#include "tensor/dtype.h"

namespace gemmarun {
namespace {

std::string DataPath(const std::string& name) { return std::string(GR_GGUF_TEST_DIR) + "/" + name; }

// Bitwise equality, so NaN == NaN and -0 != +0.
void ExpectSameBits(const std::vector<float>& actual, const float* expected, const std::string& what) {
  for (size_t i = 0; i < actual.size(); ++i) {
    ASSERT_EQ(std::bit_cast<uint32_t>(actual[i]), std::bit_cast<uint32_t>(expected[i]))
        << what << " element " << i << ": " << actual[i] << " vs " << expected[i];
  }
}

uint16_t Half(float value) { return F32ToF16(value); }

// ---------------------------------------------------------------- f16 / bf16

TEST(HalfTest, DecodesSpecialPatterns) {
  EXPECT_EQ(F16ToF32(0x0000), 0.0f);
  EXPECT_TRUE(std::signbit(F16ToF32(0x8000)));
  EXPECT_EQ(F16ToF32(0x0001), std::ldexp(1.0f, -24));          // smallest subnormal
  EXPECT_EQ(F16ToF32(0x03ff), std::ldexp(1023.0f, -24));       // largest subnormal
  EXPECT_EQ(F16ToF32(0x0400), std::ldexp(1.0f, -14));          // smallest normal
  EXPECT_EQ(F16ToF32(0x3c00), 1.0f);
  EXPECT_EQ(F16ToF32(0xc100), -2.5f);
  EXPECT_EQ(F16ToF32(0x7bff), 65504.0f);
  EXPECT_EQ(F16ToF32(0x7c00), std::numeric_limits<float>::infinity());
  EXPECT_EQ(F16ToF32(0xfc00), -std::numeric_limits<float>::infinity());
  EXPECT_TRUE(std::isnan(F16ToF32(0x7e00)));
  EXPECT_TRUE(std::isnan(F16ToF32(0x7c01)));
}

TEST(HalfTest, RoundsToNearestEven) {
  EXPECT_EQ(F32ToF16(1.0f + std::ldexp(1.0f, -11)), 0x3c00);      // tie, even is down
  EXPECT_EQ(F32ToF16(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3c02);  // tie, even is up
  EXPECT_EQ(F32ToF16(std::ldexp(1.0f, -25)), 0x0000);             // half the smallest subnormal
  EXPECT_EQ(F32ToF16(3 * std::ldexp(1.0f, -25)), 0x0002);         // 1.5 ulp -> 2
  EXPECT_EQ(F32ToF16(std::ldexp(1.0f, -14) - std::ldexp(1.0f, -25)), 0x0400);  // up into normals
  EXPECT_EQ(F32ToF16(65519.0f), 0x7bff);
  EXPECT_EQ(F32ToF16(65520.0f), 0x7c00);  // first value that rounds to inf
  EXPECT_EQ(F32ToF16(-1e6f), 0xfc00);
  EXPECT_EQ(F32ToF16(1e-30f), 0x0000);
  EXPECT_EQ(F32ToF16(-0.0f), 0x8000);
  const uint16_t nan = F32ToF16(std::numeric_limits<float>::quiet_NaN());
  EXPECT_EQ(nan & 0x7c00, 0x7c00);
  EXPECT_NE(nan & 0x03ff, 0);
}

TEST(HalfTest, EveryHalfRoundTrips) {
  for (uint32_t bits = 0; bits < 0x10000; ++bits) {
    const auto h = static_cast<uint16_t>(bits);
    const float f = F16ToF32(h);
    if (std::isnan(f)) continue;
    ASSERT_EQ(F32ToF16(f), h) << std::hex << bits;
  }
}

TEST(BFloat16Test, RoundsToNearestEvenAndKeepsNaN) {
  EXPECT_EQ(F32ToBF16(1.0f), 0x3f80);
  EXPECT_EQ(F32ToBF16(1.0f + std::ldexp(1.0f, -8)), 0x3f80);      // tie, even is down
  EXPECT_EQ(F32ToBF16(1.0f + 3 * std::ldexp(1.0f, -8)), 0x3f82);  // tie, even is up
  EXPECT_EQ(F32ToBF16(std::numeric_limits<float>::max()), 0x7f80);  // rounds to inf
  EXPECT_EQ(F32ToBF16(std::numeric_limits<float>::denorm_min()), 0x0000);
  EXPECT_EQ(F32ToBF16(1e-40f), 0x0001);  // subnormals are kept, not flushed
  // A NaN whose payload lives only in the low bits must stay NaN (quiet bit set).
  const uint16_t nan = F32ToBF16(std::bit_cast<float>(0x7f800001u));
  EXPECT_TRUE(std::isnan(BF16ToF32(nan)));
  EXPECT_EQ(BF16ToF32(0xc020), -2.5f);
  for (uint32_t bits = 0; bits < 0x10000; ++bits) {
    const float f = BF16ToF32(static_cast<uint16_t>(bits));
    if (std::isnan(f)) continue;
    ASSERT_EQ(F32ToBF16(f), bits) << std::hex << bits;
  }
}

// ---------------------------------------------------------------- hand-made blocks

template <class Block>
std::vector<float> Dequantize(DType type, const Block& block) {
  std::vector<float> out(Info(type).block_elements);
  DequantizeRow(type, &block, out.data(), out.size());
  return out;
}

TEST(DequantizeTest, Q8_0) {
  BlockQ8_0 block;
  block.d = Half(0.5f);
  for (int j = 0; j < 32; ++j) block.qs[j] = static_cast<int8_t>(j * 8 - 128);
  const auto y = Dequantize(DType::kQ8_0, block);
  for (int j = 0; j < 32; ++j) EXPECT_EQ(y[j], (j * 8 - 128) * 0.5f) << j;
}

TEST(DequantizeTest, Q4_0) {
  BlockQ4_0 block;
  block.d = Half(2.0f);
  for (int j = 0; j < 16; ++j) block.qs[j] = static_cast<uint8_t>(j | ((15 - j) << 4));
  const auto y = Dequantize(DType::kQ4_0, block);
  for (int j = 0; j < 16; ++j) {
    EXPECT_EQ(y[j], (j - 8) * 2.0f) << j;             // low nibbles: first half
    EXPECT_EQ(y[j + 16], (15 - j - 8) * 2.0f) << j;   // high nibbles: second half
  }
}

TEST(DequantizeTest, Q5_0) {
  BlockQ5_0 block;
  block.d = Half(-0.25f);
  const uint32_t qh = 0xA5C3'0F96u;
  std::memcpy(block.qh, &qh, 4);
  for (int j = 0; j < 16; ++j) block.qs[j] = static_cast<uint8_t>((j * 7) & 0xFF);
  const auto y = Dequantize(DType::kQ5_0, block);
  for (int k = 0; k < 32; ++k) {
    const int low = k < 16 ? block.qs[k] & 0xF : block.qs[k - 16] >> 4;
    const int high = (qh >> k) & 1;  // bit k of qh is the 5th bit of weight k
    EXPECT_EQ(y[k], ((low | (high << 4)) - 16) * -0.25f) << k;
  }
}

// Packs 8 six-bit (scale, min) pairs the way ggml's Q4_K quantizer does.
void PackQ4KScales(const uint8_t sc[8], const uint8_t m[8], uint8_t out[12]) {
  for (int j = 0; j < 4; ++j) {
    out[j] = static_cast<uint8_t>(sc[j] | ((sc[j + 4] >> 4) << 6));
    out[j + 4] = static_cast<uint8_t>(m[j] | ((m[j + 4] >> 4) << 6));
    out[j + 8] = static_cast<uint8_t>((sc[j + 4] & 0xF) | ((m[j + 4] & 0xF) << 4));
  }
}

TEST(DequantizeTest, Q4_K) {
  const uint8_t sc[8] = {1, 63, 17, 32, 48, 5, 63, 0};
  const uint8_t m[8] = {0, 7, 63, 33, 16, 62, 1, 47};
  BlockQ4_K block;
  block.d = Half(0.5f);
  block.dmin = Half(0.125f);
  PackQ4KScales(sc, m, block.scales);
  for (int j = 0; j < 8; ++j) {
    uint8_t s, n;
    Q4KScaleMin(j, block.scales, &s, &n);
    EXPECT_EQ(s, sc[j]) << j;
    EXPECT_EQ(n, m[j]) << j;
  }
  for (int i = 0; i < 128; ++i) block.qs[i] = static_cast<uint8_t>(i * 37 + 11);
  const auto y = Dequantize(DType::kQ4_K, block);
  for (int k = 0; k < 256; ++k) {
    const int sub = k / 32;  // sub-block; pairs of them share 32 bytes of qs
    const uint8_t byte = block.qs[(sub / 2) * 32 + k % 32];
    const int q = sub % 2 == 0 ? byte & 0xF : byte >> 4;
    EXPECT_EQ(y[k], 0.5f * sc[sub] * q - 0.125f * m[sub]) << k;
  }
}

TEST(DequantizeTest, Q6_K) {
  BlockQ6_K block;
  block.d = Half(0.25f);
  for (int i = 0; i < 128; ++i) block.ql[i] = static_cast<uint8_t>(i * 29 + 3);
  for (int i = 0; i < 64; ++i) block.qh[i] = static_cast<uint8_t>(i * 53 + 7);
  for (int i = 0; i < 16; ++i) block.scales[i] = static_cast<int8_t>(i * 17 - 128);
  const auto y = Dequantize(DType::kQ6_K, block);
  for (int k = 0; k < 256; ++k) {
    const int half = k / 128, r = k % 128, quarter = r / 32, l = r % 32;
    const uint8_t low_byte = block.ql[half * 64 + (quarter & 1) * 32 + l];
    const int low = quarter < 2 ? low_byte & 0xF : low_byte >> 4;
    const int high = (block.qh[half * 32 + l] >> (2 * quarter)) & 3;
    const int q = (low | (high << 4)) - 32;
    const int scale = block.scales[half * 8 + l / 16 + 2 * quarter];
    EXPECT_EQ(y[k], 0.25f * scale * q) << k;
  }
}

TEST(DequantizeTest, AnyAlignment) {
  std::mt19937 rng(5);
  for (DType type : {DType::kF16, DType::kBF16, DType::kQ8_0, DType::kQ4_0, DType::kQ5_0,
                     DType::kQ4_K, DType::kQ6_K}) {
    const size_t count = 512;
    const size_t bytes = RowBytes(type, count);
    std::vector<uint8_t> storage(bytes + 8);
    for (auto& b : storage) b = static_cast<uint8_t>(rng());
    // Random scales may decode to NaN: the bitwise comparison still holds.
    std::vector<float> aligned(count), shifted(count);
    std::vector<uint8_t> copy(storage.begin() + 1, storage.begin() + 1 + bytes);
    DequantizeRow(type, copy.data(), aligned.data(), count);
    DequantizeRow(type, storage.data() + 1, shifted.data(), count);
    ExpectSameBits(shifted, aligned.data(), Name(type));
  }
}

// ---------------------------------------------------------------- quantizers

float BlockMax(const float* x) {
  float amax = 0;
  for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[j]));
  return amax;
}

TEST(QuantizeTest, RoundTripErrorIsBoundedByTheScale) {
  std::mt19937 rng(11);
  std::normal_distribution<float> normal;
  const size_t count = 32 * 64;
  std::vector<float> x(count);
  for (size_t i = 0; i < count; ++i) x[i] = normal(rng) * std::ldexp(1.0f, static_cast<int>(i / 32) % 12 - 6);
  // Largest error in units of the block's max |x|: half a step, plus f16 scale
  // rounding; Q4_0/Q5_0 lose one extra step at the end opposite the max.
  struct Case {
    DType type;
    float steps;
  };
  for (const Case c : {Case{DType::kQ8_0, 0.5f / 127}, Case{DType::kQ4_0, 1.0f / 8},
                       Case{DType::kQ5_0, 1.0f / 16}}) {
    std::vector<uint8_t> q(RowBytes(c.type, count));
    ASSERT_TRUE(QuantizeRow(c.type, x.data(), q.data(), count));
    std::vector<float> y(count);
    DequantizeRow(c.type, q.data(), y.data(), count);
    for (size_t b = 0; b < count / 32; ++b) {
      // |code| * |d - f16(d)| <= max|x| * 2^-11 for all three formats.
      const float bound = BlockMax(&x[b * 32]) * (c.steps + 1.0f / 2048) * 1.001f;
      for (size_t j = b * 32; j < b * 32 + 32; ++j) {
        ASSERT_LE(std::fabs(x[j] - y[j]), bound) << Name(c.type) << " element " << j;
      }
    }
  }
}

TEST(QuantizeTest, ExtremesAndZeros) {
  std::vector<float> x(32, 0.0f);
  std::vector<uint8_t> q(34);
  ASSERT_TRUE(QuantizeRow(DType::kQ8_0, x.data(), q.data(), 32));
  EXPECT_EQ(std::vector<uint8_t>(34, 0), q);  // d = 0, all codes 0
  // The largest magnitude is reproduced exactly (up to the f16 scale).
  for (int j = 0; j < 32; ++j) x[j] = j - 10.0f;
  x[3] = -64.0f;
  std::vector<float> y(32);
  for (DType type : {DType::kQ8_0, DType::kQ4_0, DType::kQ5_0}) {
    q.assign(RowBytes(type, 32), 0);
    ASSERT_TRUE(QuantizeRow(type, x.data(), q.data(), 32));
    DequantizeRow(type, q.data(), y.data(), 32);
    // Exact for Q4_0/Q5_0 (d = 8, 4); Q8_0's d = 64/127 is rounded to f16.
    EXPECT_NEAR(y[3], -64.0f, type == DType::kQ8_0 ? 64.0f / 2048 : 0.0f) << Name(type);
  }
  // Non-finite input must not be UB (UBSan checks the casts) and must still fill the block.
  x[5] = std::numeric_limits<float>::quiet_NaN();
  x[6] = std::numeric_limits<float>::infinity();
  for (DType type : {DType::kQ8_0, DType::kQ4_0, DType::kQ5_0}) {
    q.assign(RowBytes(type, 32), 0);
    EXPECT_TRUE(QuantizeRow(type, x.data(), q.data(), 32));
  }
  EXPECT_FALSE(QuantizeRow(DType::kQ4_K, x.data(), q.data(), 32 * 8));
}

// ---------------------------------------------------------------- against gguf-py

struct TypeFile {
  const char* file;
  DType type;
  bool has_source;  // gguf-py could quantize it, so our quantizer must match its bytes
};
const TypeFile kTypeFiles[] = {
    {"types_f32.gguf", DType::kF32, true},   {"types_f16.gguf", DType::kF16, true},
    {"types_bf16.gguf", DType::kBF16, true}, {"types_q8_0.gguf", DType::kQ8_0, true},
    {"types_q4_0.gguf", DType::kQ4_0, true}, {"types_q5_0.gguf", DType::kQ5_0, true},
    {"types_q4_k.gguf", DType::kQ4_K, false}, {"types_q6_k.gguf", DType::kQ6_K, false},
};

void PrintTo(const TypeFile& param, std::ostream* os) { *os << param.file; }

class GgufPyTest : public ::testing::TestWithParam<TypeFile> {};

TEST_P(GgufPyTest, DequantizeMatchesGgufPy) {
  const TypeFile& param = GetParam();
  auto file = GgufFile::Open(DataPath(param.file));
  ASSERT_TRUE(file.ok()) << file.status().message();
  const TensorSource* weight = file->Find("weight");
  const TensorSource* expected = file->Find("expected");
  ASSERT_NE(weight, nullptr);
  ASSERT_NE(expected, nullptr);
  ASSERT_EQ(weight->dtype, param.type);
  ASSERT_EQ(weight->shape, expected->shape);
  const size_t count = static_cast<size_t>(weight->shape.elements());
  std::vector<float> y(count);
  DequantizeRow(param.type, weight->data, y.data(), count);
  std::vector<float> want(count);
  std::memcpy(want.data(), expected->data, count * sizeof(float));
  ExpectSameBits(y, want.data(), param.file);

  // DotRow: same values, double accumulation, per row.
  const size_t cols = static_cast<size_t>(weight->shape.cols());
  std::vector<float> x(cols);
  for (size_t i = 0; i < cols; ++i) x[i] = std::sin(0.37f * static_cast<float>(i));
  for (int64_t r = 0; r < weight->shape.rows(); ++r) {
    double ref = 0;
    bool finite = true;
    for (size_t i = 0; i < cols; ++i) {
      finite = finite && std::isfinite(want[r * cols + i]);
      ref += static_cast<double>(want[r * cols + i]) * x[i];
    }
    if (!finite) continue;  // the f16/bf16 files hold inf and NaN on purpose
    const float dot = DotRow(param.type, weight->data + r * RowBytes(param.type, cols), x.data(), cols);
    EXPECT_EQ(dot, static_cast<float>(ref)) << param.file << " row " << r;
  }
}

TEST(QuantizeTest, MatchesGgufPyBytes) {
  for (const TypeFile& param : kTypeFiles) {
    if (!param.has_source) continue;  // gguf-py has no K-quant quantizer to compare with
    SCOPED_TRACE(param.file);
    auto file = GgufFile::Open(DataPath(param.file));
    ASSERT_TRUE(file.ok()) << file.status().message();
    const TensorSource* weight = file->Find("weight");
    const TensorSource* source = file->Find("source");
    ASSERT_NE(weight, nullptr);
    ASSERT_NE(source, nullptr);
    const size_t count = static_cast<size_t>(source->shape.elements());
    std::vector<float> x(count);
    std::memcpy(x.data(), source->data, count * sizeof(float));
    std::vector<uint8_t> q(weight->bytes);
    ASSERT_TRUE(QuantizeRow(param.type, x.data(), q.data(), count));
    for (size_t i = 0; i < q.size(); ++i) {
      ASSERT_EQ(q[i], weight->data[i]) << "byte " << i << " (block "
                                       << i / Info(param.type).block_bytes << ")";
    }
  }
}

INSTANTIATE_TEST_SUITE_P(AllTypes, GgufPyTest, ::testing::ValuesIn(kTypeFiles),
                         [](const auto& info) { return std::string(Name(info.param.type)); });

}  // namespace
}  // namespace gemmarun
