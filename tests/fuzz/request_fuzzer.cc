// The request validation of `gemmarun serve` (apps/server/api.h): any JSON body
// sent to /v1/chat/completions or /v1/completions is either a plan the
// scheduler can run (1..8 choices, prompt ids inside the vocabulary, prompt and
// max_new_tokens inside the context) or a 4xx error with a message, whose
// OpenAI error body serializes. The model is a tiny random Gemma with the real
// Gemma tokenizer, written once at start-up.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "gemmarun/engine.h"
#include "server/api.h"
#include "testing/random_model.h"

namespace {

constexpr int64_t kContext = 256;
const char* kConfig = R"({"model_type": "gemma", "vocab_size": 256000, "hidden_size": 32,
  "intermediate_size": 64, "num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 16,
  "num_hidden_layers": 1, "max_position_embeddings": 512})";

std::unique_ptr<gemmarun::Engine> engine;

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / ("gr_request_fuzz_" + std::to_string(::getpid()));
  if (!gemmarun::testing::WriteRandomModel(kConfig, dir.string()).ok()) std::abort();
  fs::copy_file(GR_FUZZ_TOKENIZER, dir / "tokenizer.json", fs::copy_options::overwrite_existing);
  auto loaded = gemmarun::Engine::Load(dir.string());
  fs::remove_all(dir);
  if (!loaded.ok()) {
    std::fprintf(stderr, "request fuzzer: %s\n", loaded.status().message().c_str());
    std::abort();
  }
  engine = std::move(loaded).value();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace gemmarun::server;
  const json body = json::parse(data, data + size, nullptr, /*allow_exceptions=*/false);
  if (body.is_discarded()) return 0;
  const ApiContext context{engine.get(), kContext};
  const int64_t vocab = engine->info().vocab_size;
  for (const Endpoint endpoint : {Endpoint::kChat, Endpoint::kCompletion}) {
    GenerationPlan plan;
    ApiError error;
    if (ParseGeneration(context, endpoint, body, &plan, &error)) {
      const int64_t prompt = static_cast<int64_t>(plan.prompt.size());
      if (plan.n < 1 || plan.n > 8 || prompt >= kContext || plan.options.max_new_tokens < 0 ||
          prompt + plan.options.max_new_tokens > kContext) {
        std::abort();
      }
      for (const int32_t id : plan.prompt) {
        if (id < 0 || id >= vocab) std::abort();
      }
    } else {
      if (error.http_status < 400 || error.http_status > 499 || error.message.empty()) std::abort();
      (void)Dump(ErrorBody(error));
    }
  }
  return 0;
}
