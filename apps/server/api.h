// The OpenAI request bodies turned into what the scheduler runs, and the
// responses and errors in OpenAI's JSON shapes. No HTTP here, so every rule
// about fields (types, ranges, templates, images, FIM) lives in one place.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "gemmarun/engine.h"

namespace gemmarun::server {

using nlohmann::json;

// An error as OpenAI reports it: {"error": {"message", "type", "param", "code"}}.
struct ApiError {
  int http_status = 400;
  std::string message;
  std::string param;  // the offending field, empty when none
  std::string code;   // e.g. "invalid_api_key"; empty when none
};

json ErrorBody(const ApiError& error);
std::string ErrorType(int http_status);

// json::dump that never throws: invalid UTF-8 (which a model may produce mid
// way through a character) becomes U+FFFD.
std::string Dump(const json& value);

enum class Endpoint { kChat, kCompletion };

// A validated request: the prompt and the options of each of its `n` sequences.
struct GenerationPlan {
  Endpoint endpoint = Endpoint::kChat;
  std::vector<int32_t> prompt;
  std::shared_ptr<const Image> image;
  GenerateOptions options;  // callbacks unset; options.logprobs = top_logprobs when logprobs are asked for
  bool logprobs = false;
  int n = 1;
  bool seed_given = false;  // without a seed every sequence draws its own
  bool stream = false;
  bool include_usage = false;
};

struct ApiContext {
  const Engine* engine = nullptr;
  int64_t context_length = 0;  // per sequence, as the scheduler was created with
};

// Parses a /v1/chat/completions or /v1/completions body. False with `error`
// filled for anything the client must fix.
bool ParseGeneration(const ApiContext& context, Endpoint endpoint, const json& body, GenerationPlan* plan,
                     ApiError* error);

// OpenAI's finish_reason for a stop reason: "stop" or "length".
const char* FinishReason(StopReason reason);

// Base64 (standard alphabet, padding optional) to bytes; false on any other character.
bool DecodeBase64(std::string_view text, std::string* bytes);

// The longest prefix of `pending` made of whole UTF-8 characters (the rest stays in `pending`).
std::string TakeCompleteUtf8(std::string* pending);

}  // namespace gemmarun::server
