// Shared helpers of the tokenizer tests: test data paths and tokenizers that
// are loaded once per process (the big tokenizer.json files take ~0.2 s).
#pragma once

#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "testing/codegemma_tokenizer.h"
#include "tokenizer/tokenizer.h"

namespace gemmarun::testing {

inline std::string TokenizerDataPath(const std::string& name) {
  return std::string(GR_TOKENIZER_TEST_DATA_DIR) + "/" + name;
}

inline nlohmann::json ReadJson(const std::string& name) {
  std::ifstream in(TokenizerDataPath(name), std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return nlohmann::json::parse(buffer.str());
}

// "gemma", "gemma3": tests/data/tokenizer/<name>/tokenizer.json; "codegemma": derived from gemma's.
inline const Tokenizer& HfTokenizer(const std::string& name) {
  static std::map<std::string, std::unique_ptr<Tokenizer>> cache;
  auto& slot = cache[name];
  if (slot == nullptr) {
    const std::string path = name == "codegemma" ? CodeGemmaTokenizerJson()
                                                 : TokenizerDataPath(name + "/tokenizer.json");
    auto loaded = Tokenizer::FromTokenizerJson(path);
    if (!loaded.ok()) {
      ADD_FAILURE() << loaded.status().message();
      std::abort();
    }
    slot = std::move(loaded).value();
  }
  return *slot;
}

}  // namespace gemmarun::testing
