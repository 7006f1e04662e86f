// `inspect` against transformers: for every model in architectures.json (built by
// transformers 5.17 from each config), the module print and parameter counts must
// match exactly; plus KV-cache figures and error paths.
#include "gemmarun/inspect.h"

#include <filesystem>
#include <fstream>
#include <string>

#include <unistd.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace gemmarun {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

const json& Architectures() {
  static const json* architectures = [] {
    std::ifstream in(std::string(GR_TEST_DATA_DIR) + "/architectures.json");
    return new json(json::parse(in));
  }();
  return *architectures;
}

// A temp folder holding `text` as config.json; removed with the object.
class TempConfig {
 public:
  explicit TempConfig(const std::string& name, const std::string& text) {
    dir_ = fs::temp_directory_path() / ("gemmarun_inspect_test_" + name + "_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
    std::ofstream(dir_ / "config.json") << text;
  }
  ~TempConfig() { fs::remove_all(dir_); }
  std::string path() const { return (dir_ / "config.json").string(); }
  std::string dir() const { return dir_.string(); }

 private:
  fs::path dir_;
};

ModelReport InspectFixture(const std::string& name, int64_t context = 0) {
  const json& model = Architectures().at(name);
  TempConfig config(name, model.at("config").dump());
  auto report = InspectConfig(config.path(), context);
  EXPECT_TRUE(report.ok()) << name << ": " << report.status().message();
  return report.ok() ? *report : ModelReport{};
}

constexpr const char* kModels[] = {
    "gemma-2b",          "gemma-7b",          "gemma-2-2b",   "gemma-2-9b", "gemma-2-27b",
    "recurrentgemma-2b", "recurrentgemma-9b", "gemma-3-270m", "gemma-3-1b", "paligemma-3b-pt-224",
};

class ArchitectureTest : public ::testing::TestWithParam<const char*> {};

TEST_P(ArchitectureTest, MatchesTransformers) {
  const std::string name = GetParam();
  const json& expected = Architectures().at(name);
  const ModelReport report = InspectFixture(name);
  EXPECT_EQ(report.params, expected.at("params").get<int64_t>());
  if (expected.contains("params_without_embedding")) {
    EXPECT_EQ(report.params_without_embedding, expected.at("params_without_embedding").get<int64_t>());
  }
  EXPECT_EQ(report.modules, expected.at("print").get<std::string>());

  int64_t by_kind = 0;
  for (const auto& [kind, n] : report.params_by_kind) {
    EXPECT_NE(kind, "other") << name;
    by_kind += n;
  }
  EXPECT_EQ(by_kind, report.params);
  ASSERT_EQ(report.bytes_by_dtype.size(), 5u);
  EXPECT_EQ(report.bytes_by_dtype[0].first, "f32");
  EXPECT_EQ(report.bytes_by_dtype[0].second, static_cast<uint64_t>(report.params) * 4);
  // f32 > bf16 = f16 > q8_0 > q4_0
  const auto& bytes = report.bytes_by_dtype;
  EXPECT_LT(bytes[1].second, bytes[0].second);
  EXPECT_EQ(bytes[2].second, bytes[1].second);
  EXPECT_LT(bytes[3].second, bytes[2].second);
  EXPECT_LT(bytes[4].second, bytes[3].second);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, ArchitectureTest, ::testing::ValuesIn(kModels),
                         [](const ::testing::TestParamInfo<const char*>& info) {
                           std::string name = info.param;
                           for (char& c : name) c = std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
                           return name;
                         });

TEST(InspectTest, PaliGemmaEmbeddingIsTheTokenTable) {
  // architectures.md §7: embedding 526,778,368 = 257216 x 2048.
  const ModelReport report = InspectFixture("paligemma-3b-pt-224");
  EXPECT_EQ(report.params - report.params_without_embedding, int64_t{257216} * 2048);
}

TEST(InspectTest, KvCacheGemma2) {
  // 26 layers, even ones sliding (window 4096); 4 KV heads x 256, K and V in f32.
  constexpr uint64_t kSlotBytes = 2 * 4 * 256 * 4;
  const ModelReport at_8k = InspectFixture("gemma-2-2b", 8192);
  const ModelReport at_32k = InspectFixture("gemma-2-2b", 32768);
  ASSERT_TRUE(at_8k.kv_cache && at_32k.kv_cache);
  EXPECT_EQ(at_32k.kv_cache->full_bytes, 26 * 32768 * kSlotBytes);
  EXPECT_EQ(at_32k.kv_cache->ring_bytes, (13 * 32768 + 13 * 4096) * kSlotBytes);
  EXPECT_EQ(at_8k.kv_cache->full_bytes, 26 * 8192 * kSlotBytes);
  EXPECT_EQ(at_8k.kv_cache->ring_bytes, (13 * 8192 + 13 * 4096) * kSlotBytes);
  EXPECT_LT(at_8k.kv_cache->ring_bytes, at_8k.kv_cache->full_bytes);
  EXPECT_LT(at_32k.kv_cache->ring_bytes, at_32k.kv_cache->full_bytes);
  EXPECT_EQ(at_8k.kv_cache->recurrent_state_bytes, 0u);
  EXPECT_EQ(at_8k.kv_cache->max_chunk, 1);
  // Per token, every layer: f32 4 bytes a value, f16/bf16 2, q8_0 34 per 32 values.
  const std::vector<std::pair<std::string, uint64_t>> per_token = {
      {"f32", 26 * kSlotBytes}, {"f16", 26 * kSlotBytes / 2}, {"bf16", 26 * kSlotBytes / 2},
      {"q8_0", 26 * 2 * 4 * (256 / 32) * 34}};
  EXPECT_EQ(at_8k.kv_cache->bytes_per_token, per_token);
}

TEST(InspectTest, KvCacheGemma3) {
  // 26 layers, every sixth global (5, 11, 17, 23), the rest window 512; 1 KV head x 256.
  constexpr uint64_t kSlotBytes = 2 * 1 * 256 * 4;
  for (const int64_t tokens : {8192, 32768}) {
    const ModelReport report = InspectFixture("gemma-3-1b", tokens);
    ASSERT_TRUE(report.kv_cache);
    EXPECT_EQ(report.kv_cache->full_bytes, 26 * tokens * kSlotBytes);
    EXPECT_EQ(report.kv_cache->ring_bytes, (4 * tokens + 22 * 512) * kSlotBytes);
    EXPECT_LT(report.kv_cache->ring_bytes, report.kv_cache->full_bytes);
  }
}

TEST(InspectTest, RecurrentGemmaStateStopsGrowingPastTheWindow) {
  const ModelReport at_8k = InspectFixture("recurrentgemma-2b", 8192);
  const ModelReport at_32k = InspectFixture("recurrentgemma-2b", 32768);
  ASSERT_TRUE(at_8k.kv_cache && at_32k.kv_cache);
  // 18 recurrent layers: h [2560] + conv state [2560, 3], f32.
  EXPECT_EQ(at_8k.kv_cache->recurrent_state_bytes, 18u * 2560 * 4 * 4);
  // 8 local-attention layers, one KV head x 256, ring of window + 1 keys.
  EXPECT_EQ(at_8k.kv_cache->ring_bytes, 8u * 2049 * 2 * 256 * 4 + 18u * 2560 * 4 * 4);
  EXPECT_EQ(at_8k.kv_cache->ring_bytes, at_32k.kv_cache->ring_bytes);
  EXPECT_LT(at_8k.kv_cache->full_bytes, at_32k.kv_cache->full_bytes);
}

TEST(InspectTest, NoContextNoKvCache) { EXPECT_FALSE(InspectFixture("gemma-3-270m").kv_cache); }

TEST(InspectTest, JsonHasTheDocumentedKeys) {
  const ModelReport report = InspectFixture("gemma-3-1b", 8192);
  const json parsed = json::parse(ModelReportToJson(report));
  EXPECT_EQ(parsed.at("modules").get<std::string>(), Architectures().at("gemma-3-1b").at("print").get<std::string>());
  EXPECT_EQ(parsed.at("params").get<int64_t>(), 999885952);
  EXPECT_EQ(parsed.at("params_without_embedding").get<int64_t>(), 697896064);
  EXPECT_EQ(parsed.at("params_by_kind").at("embedding").get<int64_t>(), 301989888);
  EXPECT_EQ(parsed.at("bytes_by_dtype").at("q8_0").get<uint64_t>(), report.bytes_by_dtype[3].second);
  EXPECT_EQ(parsed.at("kv_cache").at("tokens").get<int64_t>(), 8192);
  EXPECT_EQ(parsed.at("kv_cache").at("ring_bytes").get<uint64_t>(), report.kv_cache->ring_bytes);
  EXPECT_FALSE(parsed.contains("stored_bytes_by_dtype"));
  const std::string text = ModelReportToText(report);
  EXPECT_EQ(text.rfind(report.modules, 0), 0u);
  EXPECT_NE(text.find("999,885,952"), std::string::npos);
}

TEST(InspectTest, ModelFolderReadsStoredDtypes) {
  auto report = InspectModel(std::string(GR_TEST_DATA_DIR) + "/gemma2");
  ASSERT_TRUE(report.ok()) << report.status().message();
  EXPECT_FALSE(report->stored_bytes_by_dtype.empty());
  uint64_t sum = 0;
  for (const auto& [dtype, bytes] : report->stored_bytes_by_dtype) sum += bytes;
  EXPECT_EQ(sum, report->stored_bytes);
  EXPECT_GE(report->stored_bytes, static_cast<uint64_t>(report->params));
}

TEST(InspectTest, Errors) {
  auto missing = InspectConfig("/nonexistent/config.json");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);

  TempConfig bad_json("bad_json", "{\"model_type\": \"gemma\",");
  auto bad = InspectConfig(bad_json.path());
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find(bad_json.path()), std::string::npos);

  TempConfig unknown("unknown", "{\"model_type\": \"llama\"}");
  auto unsupported = InspectConfig(unknown.dir());
  ASSERT_FALSE(unsupported.ok());
  EXPECT_EQ(unsupported.status().code(), StatusCode::kUnsupported);
  EXPECT_NE(unsupported.status().message().find("llama"), std::string::npos);

  auto negative = InspectConfig(unknown.path(), -1);
  EXPECT_FALSE(negative.ok());
}

}  // namespace
}  // namespace gemmarun
