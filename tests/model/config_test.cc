// config.json parsing: both field forms, per-layer attributes, defaults of old
// hub configs, and clear errors for what we cannot run.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>

#include "model/config.h"

namespace gemmarun {
namespace {

Result<ModelConfig> Parse(const std::string& json) { return ParseHfConfig(json, "config.json"); }

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

const char* kGemma2NoLayerTypes = R"({"model_type": "gemma2", "vocab_size": 512, "hidden_size": 64,
  "intermediate_size": 128, "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16,
  "num_hidden_layers": 4, "sliding_window": 8, "query_pre_attn_scalar": 24,
  "attn_logit_softcapping": 50.0, "final_logit_softcapping": 30.0, "rope_theta": 10000.0})";

TEST(ConfigTest, Gemma2DefaultsToEvenLayersSliding) {
  auto config = Parse(kGemma2NoLayerTypes);
  ASSERT_TRUE(config.ok()) << config.status().message();
  ASSERT_EQ(config->num_layers(), 4);
  EXPECT_EQ(config->layers[0].attention_window, 8);
  EXPECT_EQ(config->layers[1].attention_window, 0);
  EXPECT_EQ(config->layers[2].attention_window, 8);
  EXPECT_TRUE(config->layers[1].post_norms);
  EXPECT_FLOAT_EQ(config->layers[3].attn_softcap, 50.0f);
  EXPECT_FLOAT_EQ(config->final_softcap, 30.0f);
  EXPECT_FLOAT_EQ(config->query_scale, 1.0f / std::sqrt(24.0f));
}

TEST(ConfigTest, Gemma3PatternRopeBasesAndScaling) {
  auto config = Parse(R"({"model_type": "gemma3_text", "vocab_size": 512, "hidden_size": 64,
    "intermediate_size": 128, "num_attention_heads": 4, "num_key_value_heads": 1, "head_dim": 16,
    "num_hidden_layers": 12, "sliding_window": 512, "rope_theta": 1000000.0, "rope_local_base_freq": 10000.0,
    "rope_scaling": {"rope_type": "linear", "factor": 8.0}})");
  ASSERT_TRUE(config.ok()) << config.status().message();
  for (int i = 0; i < 12; ++i) {
    const bool global = (i + 1) % 6 == 0;
    EXPECT_EQ(config->layers[i].attention_window, global ? 0 : 512) << i;
    EXPECT_FLOAT_EQ(config->layers[i].rope_theta, global ? 1e6f : 1e4f) << i;
    EXPECT_FLOAT_EQ(config->layers[i].rope_position_scale, global ? 8.0f : 1.0f) << i;
    EXPECT_TRUE(config->layers[i].qk_norm);
  }
  EXPECT_EQ(config->final_softcap, 0.0f);
}

TEST(ConfigTest, TransformersFiveRopeParametersMatchClassicFields) {
  auto v5 = ParseHfConfig(ReadFile(std::string(GR_TEST_DATA_DIR) + "/gemma2_v5config/config.json"), "v5");
  ASSERT_TRUE(v5.ok()) << v5.status().message();
  EXPECT_FLOAT_EQ(v5->layers[0].rope_theta, 10000.0f);
  auto per_type = Parse(R"({"model_type": "gemma3_text", "vocab_size": 512, "hidden_size": 64,
    "intermediate_size": 128, "num_attention_heads": 4, "num_key_value_heads": 1, "head_dim": 16,
    "num_hidden_layers": 6, "sliding_window": 8,
    "rope_parameters": {"full_attention": {"rope_type": "linear", "factor": 8.0, "rope_theta": 1000000.0},
                        "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0}}})");
  ASSERT_TRUE(per_type.ok()) << per_type.status().message();
  EXPECT_FLOAT_EQ(per_type->layers[5].rope_theta, 1e6f);
  EXPECT_FLOAT_EQ(per_type->layers[5].rope_position_scale, 8.0f);
  EXPECT_FLOAT_EQ(per_type->layers[0].rope_theta, 1e4f);
  EXPECT_FLOAT_EQ(per_type->layers[0].rope_position_scale, 1.0f);
}

TEST(ConfigTest, RecurrentGemmaBlocksAndWindow) {
  auto config = ParseHfConfig(ReadFile(std::string(GR_TEST_DATA_DIR) + "/recurrentgemma/config.json"), "rg");
  ASSERT_TRUE(config.ok()) << config.status().message();
  EXPECT_EQ(config->layers[0].kind, BlockKind::kRecurrent);
  EXPECT_EQ(config->layers[2].kind, BlockKind::kAttention);
  EXPECT_EQ(config->layers[2].attention_window, 9);  // W + 1 keys, Google's Griffin semantics
  EXPECT_EQ(config->rotary_dim, 8);
  EXPECT_EQ(config->ff_hidden_dim, 96);
}

TEST(ConfigTest, ErrorsNameTheProblem) {
  struct Case {
    std::string json;
    const char* message;
  };
  const Case cases[] = {
      {R"({"model_type": "llama"})", "model_type 'llama' is not supported (supported: gemma"},
      {R"({"vocab_size": 3})", "required field 'model_type' is missing"},
      {R"({"model_type": "gemma", "vocab_size": 512})", "required field 'hidden_size' is missing"},
      {R"({"model_type": "gemma", "vocab_size": "many", "hidden_size": 8})", "field 'vocab_size' is \"many\""},
      {R"({"model_type": "gemma", "vocab_size": 8, "hidden_size": 8, "intermediate_size": 8,
           "num_attention_heads": 3, "num_key_value_heads": 2, "num_hidden_layers": 1, "head_dim": 4})",
       "not a multiple of num_key_value_heads"},
      {R"({"model_type": "gemma2", "vocab_size": 8, "hidden_size": 8, "intermediate_size": 8,
           "num_attention_heads": 2, "num_hidden_layers": 2, "sliding_window": 4, "layer_types": ["full_attention"]})",
       "layer_types has 1 entries for 2 layers"},
      {R"({"model_type": "gemma", "vocab_size": 8, "hidden_size": 8, "intermediate_size": 8,
           "num_attention_heads": 2, "num_hidden_layers": 0})", "num_hidden_layers 0 is out of range"},
      {"{not json", "not well-formed JSON"},
  };
  for (const Case& c : cases) {
    auto config = Parse(c.json);
    ASSERT_FALSE(config.ok()) << c.json;
    EXPECT_NE(config.status().message().find(c.message), std::string::npos) << config.status().message();
    EXPECT_NE(config.status().message().find("config.json"), std::string::npos) << config.status().message();
  }
}

}  // namespace
}  // namespace gemmarun
