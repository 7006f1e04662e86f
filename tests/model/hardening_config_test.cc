// Config fields are range-checked in one table (ModelConfig::Validate), so that
// every size derived from them (parameter counts, tensor bytes, KV-cache bytes)
// fits in 64 bits: the largest configs the table admits are computed exactly,
// and values just outside it are errors that name the field.
#include <gtest/gtest.h>

#include <string>

#include <nlohmann/json.hpp>

#include "model/config.h"
#include "model/inspect.h"

namespace gemmarun {
namespace {

using nlohmann::json;

json TinyGemma() {
  return json{{"model_type", "gemma"},   {"vocab_size", 16},         {"hidden_size", 8},
              {"intermediate_size", 16}, {"num_attention_heads", 2}, {"num_key_value_heads", 1},
              {"head_dim", 4},           {"num_hidden_layers", 1}};
}

std::string ErrorOf(const json& config) {
  auto parsed = ParseHfConfig(config.dump(), "config.json");
  return parsed.ok() ? "" : parsed.status().message();
}

TEST(HardeningConfigTest, ValuesOutsideTheTableNameTheFieldAndTheRange) {
  struct Case {
    const char* field;
    json value;
    const char* message;
  };
  const Case cases[] = {
      {"bos_token_id", int64_t{1} << 40, "field 'bos_token_id' is 1099511627776, expected a 32-bit integer"},
      {"bos_token_id", 16, "bos_token_id is 16, expected 0 .. 15"},
      {"eos_token_id", json::array({1, (int64_t{1} << 40) + 2}), "expected an id or a list of 32-bit ids"},
      {"pad_token_id", -2, "pad_token_id is -2, expected -1 .. 15"},
      {"rms_norm_eps", 1e300, "field 'rms_norm_eps' is 1e+300, expected a finite 32-bit float"},
      {"rms_norm_eps", 2.0, "rms_norm_eps is 2, expected 1e-30 .. 1"},
      {"vocab_size", (1 << 24) + 1, "vocab_size is 16777217, expected 1 .. 16777216"},
      {"hidden_size", 1 << 17, "hidden_size is 131072, expected 1 .. 65536"},
      {"head_dim", 8192, "head_dim is 8192, expected 1 .. 4096"},
      {"num_key_value_heads", 0, "num_key_value_heads is 0"},
      {"max_position_embeddings", (1 << 30) + 1, "max_position_embeddings is 1073741825, expected 1 .. 1073741824"},
      {"rope_theta", 1e13, "layer 0: rope_theta is 9999999827968, expected 1e-06 .. 1000000000000"},  // 1e13 as a float
  };
  for (const Case& c : cases) {
    json config = TinyGemma();
    config[c.field] = c.value;
    const std::string error = ErrorOf(config);
    EXPECT_NE(error.find(c.message), std::string::npos) << c.field << " = " << c.value.dump() << ": " << error;
    EXPECT_NE(error.find("config.json"), std::string::npos) << error;
  }
  EXPECT_EQ(ErrorOf(TinyGemma()), "");
}

TEST(HardeningConfigTest, PaliGemmaPatchCountIsSixtyFourBit) {
  VisionConfig vision;
  vision.image_size = 1 << 30;
  vision.patch_size = 2;
  // (2^29)^2 = 2^58: an int product wrapped to a negative number before.
  EXPECT_EQ(vision.num_patches(), int64_t{1} << 58);
  vision.patch_size = 0;
  EXPECT_EQ(vision.num_patches(), 0);
}

TEST(HardeningConfigTest, HugePaliGemmaImageIsRefusedWithThePatchCount) {
  const json config = {{"model_type", "paligemma"},
                       {"text_config", TinyGemma()},
                       {"vision_config",
                        {{"hidden_size", 8}, {"intermediate_size", 8}, {"num_hidden_layers", 1},
                         {"num_attention_heads", 2}, {"image_size", 1 << 30}, {"patch_size", 2}}}};
  const std::string error = ErrorOf(config);
  EXPECT_NE(error.find("gives 288230376151711744 patches, more than 1048576"), std::string::npos) << error;
}

// The largest sizes the table admits, on a shallow model: every count is exact.
TEST(HardeningConfigTest, LargestAdmittedSizesGiveExactCounts) {
  json config = TinyGemma();
  config["vocab_size"] = 1 << 24;
  config["hidden_size"] = 1 << 16;
  config["intermediate_size"] = 1 << 20;
  config["num_attention_heads"] = 16;
  config["num_key_value_heads"] = 16;
  config["head_dim"] = 4096;
  config["num_hidden_layers"] = 2;
  config["max_position_embeddings"] = 1 << 30;
  auto parsed = ParseHfConfig(config.dump(), "config.json");
  ASSERT_TRUE(parsed.ok()) << parsed.status().message();
  const int64_t tokens = int64_t{1} << 30;
  const ModelInspection inspection = InspectModelConfig(*parsed, nullptr, {tokens});
  const int64_t vocab = 1 << 24, hidden = 1 << 16, ff = 1 << 20, qkv = 16 * 4096, layers = 2;
  // Per layer: q, k, v, o, gate, up, down and the two norms; then the embedding and final norm.
  const int64_t per_layer = 4 * hidden * qkv + 3 * hidden * ff + 2 * hidden;
  EXPECT_EQ(inspection.params, vocab * hidden + layers * per_layer + hidden);
  ASSERT_EQ(inspection.kv_cache.size(), 1u);
  // K and V, f32, every layer global: 2 x 2^30 tokens x 65536 values x 4 bytes x 2 layers = 2^50.
  EXPECT_EQ(inspection.kv_cache[0].full_bytes, size_t{1} << 50);
}

}  // namespace
}  // namespace gemmarun
