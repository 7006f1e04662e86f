// A tiny random-weight Gemma 2 model with the real 256000-token Gemma
// tokenizer, written once per test suite, for CLI tests whose prompts are text.
#pragma once

#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "cli/cli_test.h"
#include "testing/random_model.h"
#include "testing/temp_dir.h"

namespace gemmarun::testing {

inline constexpr const char* kTextModelConfig = R"({"model_type": "gemma2", "vocab_size": 256000, "hidden_size": 32,
  "intermediate_size": 64, "num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 16,
  "num_hidden_layers": 2, "sliding_window": 16, "query_pre_attn_scalar": 16,
  "attn_logit_softcapping": 50.0, "final_logit_softcapping": 30.0, "max_position_embeddings": 512})";

// Test suites derive from it; the model lives as long as the suite.
class TextModelSuite : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir("gr_text_model");
    ASSERT_TRUE(WriteRandomModel(kTextModelConfig, dir_->path().string()).ok());
    std::filesystem::copy_file(DataDir() + "/tokenizer/gemma/tokenizer.json", dir_->path() / "tokenizer.json");
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }
  static std::string Model() { return " -m " + dir_->path().string() + " "; }
  static inline TempDir* dir_ = nullptr;
};

}  // namespace gemmarun::testing
