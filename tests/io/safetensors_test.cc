// safetensors reader on synthetic files written here: good ones (single and
// sharded), and corrupt ones that must give a clear error, never a crash.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "io/safetensors.h"

namespace gemmarun {
namespace {

namespace fs = std::filesystem;

class SafetensorsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("gr_st_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  // Writes header JSON + data bytes in the safetensors layout; header_length
  // overrides the length field when non-negative.
  std::string Write(const std::string& name, const std::string& header, const std::string& data,
                    int64_t header_length = -1) {
    const std::string path = (dir_ / name).string();
    std::ofstream out(path, std::ios::binary);
    const uint64_t length = header_length >= 0 ? static_cast<uint64_t>(header_length) : header.size();
    out.write(reinterpret_cast<const char*>(&length), 8);
    out << header << data;
    return path;
  }

  static std::string Floats(std::initializer_list<float> values) {
    std::string bytes(values.size() * 4, '\0');
    std::memcpy(bytes.data(), values.begin(), bytes.size());
    return bytes;
  }

  fs::path dir_;
};

TEST_F(SafetensorsTest, ReadsTensorsOfEveryDtype) {
  const std::string header =
      R"({"__metadata__":{"format":"pt"},"a":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},)"
      R"("b":{"dtype":"BF16","shape":[2],"data_offsets":[16,20]},"c":{"dtype":"F16","shape":[1,2],"data_offsets":[20,24]}})";
  const std::string path = Write("ok.safetensors", header, Floats({1, 2, 3, 4}) + std::string(8, '\x01'));
  auto file = SafetensorsFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status().message();
  ASSERT_EQ(file->tensors().size(), 3u);
  const TensorSource* a = nullptr;
  for (const auto& t : file->tensors()) if (t.name == "a") a = &t;
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->shape, (Shape{2, 2}));
  EXPECT_EQ(a->dtype, DType::kF32);
  float values[4];
  std::memcpy(values, a->data, 16);
  EXPECT_EQ(values[3], 4.0f);
}

TEST_F(SafetensorsTest, ReadsShardedCheckpoints) {
  Write("model-00001-of-00002.safetensors", R"({"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", Floats({7}));
  Write("model-00002-of-00002.safetensors", R"({"y":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", Floats({8}));
  std::ofstream(dir_ / "model.safetensors.index.json")
      << R"({"weight_map":{"x":"model-00001-of-00002.safetensors","y":"model-00002-of-00002.safetensors"}})";
  auto checkpoint = SafetensorsCheckpoint::Open(dir_.string());
  ASSERT_TRUE(checkpoint.ok()) << checkpoint.status().message();
  ASSERT_NE(checkpoint->Find("y"), nullptr);
  float y;
  std::memcpy(&y, checkpoint->Find("y")->data, 4);
  EXPECT_EQ(y, 8.0f);
  EXPECT_EQ(checkpoint->Find("z"), nullptr);
}

struct CorruptCase {
  const char* name;
  std::string header;
  std::string data;
  int64_t header_length;
  const char* expected_message;
};

TEST_F(SafetensorsTest, CorruptFilesGiveClearErrors) {
  const std::string good = R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  const CorruptCase cases[] = {
      {"header_too_long", good, Floats({1, 2}), 1 << 20, "exceeds the file size"},
      {"truncated_data", good, Floats({1}), -1, "outside the"},
      {"bad_json", R"({"w":{"dtype":"F32",)", "", -1, "not well-formed JSON"},
      {"not_object", R"([1,2])", "", -1, "not a JSON object"},
      {"unknown_dtype", R"({"w":{"dtype":"F8_E4M3","shape":[2],"data_offsets":[0,2]}})", "xx", -1, "not supported"},
      {"shape_mismatch", R"({"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", Floats({1, 2}), -1, "needs 12 bytes"},
      {"overlap",
       R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
       Floats({1, 2, 3}), -1, "overlap"},
      {"reversed_offsets", R"({"w":{"dtype":"F32","shape":[0],"data_offsets":[8,0]}})", Floats({1, 2}), -1, "outside"},
      {"missing_fields", R"({"w":{"dtype":"F32"}})", "", -1, "expected an object with dtype"},
      {"negative_dim", R"({"w":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", Floats({1, 2}), -1, "not a list of sizes"},
      {"huge_shape", R"({"w":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}})", Floats({1, 2}), -1,
       "absurdly large"},
  };
  for (const CorruptCase& c : cases) {
    SCOPED_TRACE(c.name);
    const std::string path = Write(std::string(c.name) + ".safetensors", c.header, c.data, c.header_length);
    auto file = SafetensorsFile::Open(path);
    ASSERT_FALSE(file.ok());
    EXPECT_NE(file.status().message().find(c.expected_message), std::string::npos) << file.status().message();
    EXPECT_NE(file.status().message().find(path), std::string::npos) << "the error must name the file";
  }
}

TEST_F(SafetensorsTest, TinyAndMissingFiles) {
  std::ofstream(dir_ / "tiny.safetensors") << "abc";
  auto tiny = SafetensorsFile::Open((dir_ / "tiny.safetensors").string());
  ASSERT_FALSE(tiny.ok());
  EXPECT_NE(tiny.status().message().find("too short"), std::string::npos);
  auto missing = SafetensorsFile::Open((dir_ / "nope.safetensors").string());
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  auto empty_dir = SafetensorsCheckpoint::Open(dir_.string());
  ASSERT_FALSE(empty_dir.ok());
  EXPECT_NE(empty_dir.status().message().find("no model.safetensors"), std::string::npos);
}

}  // namespace
}  // namespace gemmarun
