// CodeGemma's tokenizer is Gemma's with <unused60>..<unused63> (ids 67-70)
// renamed to the fill-in-the-middle tokens. Tests derive it from the committed
// Gemma tokenizer.json at run time instead of keeping a second 17 MB copy
// (tools/tokenizer/make_codegemma_tokenizer.py does the same with json).
#pragma once

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "testing/temp_dir.h"

namespace gemmarun::testing {

// Path of a derived CodeGemma tokenizer.json (made once per process).
inline std::string CodeGemmaTokenizerJson() {
  static const std::string path = [] {
    static const TempDir dir("gr_codegemma_tokenizer");
    std::ifstream in(std::string(GR_TEST_DATA_DIR) + "/tokenizer/gemma/tokenizer.json", std::ios::binary);
    std::stringstream buffer;
    buffer << in.rdbuf();
    std::string json = buffer.str();
    const std::pair<const char*, const char*> renames[] = {{"\"<unused60>\"", "\"<|fim_prefix|>\""},
                                                           {"\"<unused61>\"", "\"<|fim_middle|>\""},
                                                           {"\"<unused62>\"", "\"<|fim_suffix|>\""},
                                                           {"\"<unused63>\"", "\"<|file_separator|>\""}};
    // Each name appears twice: in model.vocab and in added_tokens.
    for (const auto& [from, to] : renames) {
      for (size_t at = json.find(from); at != std::string::npos; at = json.find(from, at)) {
        json.replace(at, std::string(from).size(), to);
      }
    }
    const std::string file = dir.file("tokenizer.json");
    std::ofstream(file, std::ios::binary) << json;
    return file;
  }();
  return path;
}

}  // namespace gemmarun::testing
