#include "api.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>

#include "gemmarun/tokenizer.h"

namespace gemmarun::server {
namespace {

constexpr int kMaxChoices = 8;
constexpr int kMaxStopStrings = 16;
constexpr int kMaxTopLogprobs = 20;

bool Fail(ApiError* error, std::string param, std::string message, int status = 400) {
  error->http_status = status;
  error->param = std::move(param);
  error->message = std::move(message);
  return false;
}

// A field that is absent or null counts as not given.
const json* Field(const json& body, const char* name) {
  auto it = body.find(name);
  if (it == body.end() || it->is_null()) return nullptr;
  return &*it;
}

std::string Describe(const json& value) {
  std::string text = Dump(value);
  if (text.size() > 40) text = text.substr(0, 37) + "...";
  return text;
}

bool ReadInt(const json& body, const char* name, int64_t min, int64_t max, int64_t* out, ApiError* error) {
  const json* value = Field(body, name);
  if (value == nullptr) return true;
  const std::string range = "[" + std::to_string(min) + ", " + std::to_string(max) + "]";
  if (!value->is_number_integer()) {
    return Fail(error, name, std::string(name) + " must be an integer in " + range + ", got " + Describe(*value));
  }
  if (value->is_number_unsigned() && value->get<uint64_t>() > static_cast<uint64_t>(max)) {
    return Fail(error, name, std::string(name) + " must be in " + range + ", got " + Describe(*value));
  }
  const int64_t v = value->get<int64_t>();
  if (v < min || v > max) return Fail(error, name, std::string(name) + " must be in " + range + ", got " + Describe(*value));
  *out = v;
  return true;
}

bool ReadFloat(const json& body, const char* name, double min, double max, bool min_open, float* out,
               ApiError* error) {
  const json* value = Field(body, name);
  if (value == nullptr) return true;
  char range[96];
  std::snprintf(range, sizeof(range), "%s%g, %g]", min_open ? "(" : "[", min, max);
  if (!value->is_number()) {
    return Fail(error, name, std::string(name) + " must be a number in " + range + ", got " + Describe(*value));
  }
  const double v = value->get<double>();
  if (!std::isfinite(v) || v < min || (min_open && v == min) || v > max) {
    return Fail(error, name, std::string(name) + " must be in " + range + ", got " + Describe(*value));
  }
  *out = static_cast<float>(v);
  return true;
}

bool ReadBool(const json& body, const char* name, bool* out, ApiError* error) {
  const json* value = Field(body, name);
  if (value == nullptr) return true;
  if (!value->is_boolean()) return Fail(error, name, std::string(name) + " must be true or false, got " + Describe(*value));
  *out = value->get<bool>();
  return true;
}

bool ParseStop(const json& body, std::vector<std::string>* stops, ApiError* error) {
  const json* value = Field(body, "stop");
  if (value == nullptr) return true;
  std::vector<json> items;
  if (value->is_string()) items.push_back(*value);
  else if (value->is_array()) items.assign(value->begin(), value->end());
  else return Fail(error, "stop", "stop must be a string or a list of strings, got " + Describe(*value));
  if (static_cast<int>(items.size()) > kMaxStopStrings) {
    return Fail(error, "stop", "stop takes at most " + std::to_string(kMaxStopStrings) + " strings");
  }
  for (const json& item : items) {
    if (!item.is_string() || item.get<std::string>().empty()) {
      return Fail(error, "stop", "stop must hold non-empty strings, got " + Describe(item));
    }
    stops->push_back(item.get<std::string>());
  }
  return true;
}

bool ParseSampling(const json& body, Endpoint endpoint, GenerationPlan* plan, ApiError* error) {
  SamplingOptions& s = plan->options.sampling;
  s.temperature = 1.0f;  // OpenAI's default; 0 is greedy
  int64_t top_k = 0;
  if (!ReadFloat(body, "temperature", 0.0, 2.0, false, &s.temperature, error) ||
      !ReadFloat(body, "top_p", 0.0, 1.0, true, &s.top_p, error) ||
      !ReadInt(body, "top_k", 0, std::numeric_limits<int32_t>::max(), &top_k, error) ||
      !ReadFloat(body, "min_p", 0.0, 1.0, false, &s.min_p, error) ||
      !ReadFloat(body, "repetition_penalty", 0.0, 100.0, true, &s.repeat_penalty, error) ||
      !ReadFloat(body, "presence_penalty", -2.0, 2.0, false, &s.presence_penalty, error) ||
      !ReadFloat(body, "frequency_penalty", -2.0, 2.0, false, &s.frequency_penalty, error)) {
    return false;
  }
  s.top_k = static_cast<int>(top_k);
  if (const json* seed = Field(body, "seed")) {
    if (!seed->is_number_integer()) return Fail(error, "seed", "seed must be an integer, got " + Describe(*seed));
    s.seed = seed->is_number_unsigned() ? seed->get<uint64_t>() : static_cast<uint64_t>(seed->get<int64_t>());
    plan->seed_given = true;
  }
  int64_t n = 1;
  if (!ReadInt(body, "n", 1, kMaxChoices, &n, error)) return false;
  plan->n = static_cast<int>(n);
  if (!ReadBool(body, "stream", &plan->stream, error)) return false;
  if (const json* options = Field(body, "stream_options")) {
    if (!options->is_object()) return Fail(error, "stream_options", "stream_options must be an object");
    if (!ReadBool(*options, "include_usage", &plan->include_usage, error)) {
      error->param = "stream_options.include_usage";
      return false;
    }
  }
  if (const json* format = Field(body, "response_format")) {
    const json* type = format->is_object() ? Field(*format, "type") : nullptr;
    if (type == nullptr || !type->is_string()) {
      return Fail(error, "response_format", "response_format must be an object with a \"type\"");
    }
    if (type->get<std::string>() != "text") {
      return Fail(error, "response_format",
                  "response_format \"" + type->get<std::string>() + "\" is not supported (only \"text\")");
    }
  }
  if (!ParseStop(body, &plan->options.stop_strings, error)) return false;
  // Chat: logprobs is a boolean and top_logprobs the alternatives; completions: logprobs is the count.
  if (endpoint == Endpoint::kChat) {
    int64_t top = 0;
    if (!ReadBool(body, "logprobs", &plan->logprobs, error) ||
        !ReadInt(body, "top_logprobs", 0, kMaxTopLogprobs, &top, error)) {
      return false;
    }
    if (Field(body, "top_logprobs") != nullptr && !plan->logprobs) {
      return Fail(error, "top_logprobs", "top_logprobs needs logprobs: true");
    }
    plan->options.logprobs = plan->logprobs ? static_cast<int>(top) : -1;
  } else {
    int64_t count = -1;
    if (!ReadInt(body, "logprobs", 0, 5, &count, error)) return false;
    plan->logprobs = count >= 0;
    plan->options.logprobs = static_cast<int>(count);
  }
  return true;
}

bool ReadImage(const ApiContext& context, const std::string& url, const std::string& param, GenerationPlan* plan,
               ApiError* error) {
  if (!context.engine->info().takes_image) {
    return Fail(error, param, context.engine->info().family + " models take no image");
  }
  if (plan->image != nullptr) return Fail(error, param, "one image per request");
  const std::string prefix = "data:";
  const size_t comma = url.find(',');
  if (url.rfind(prefix, 0) != 0 || comma == std::string::npos ||
      url.substr(0, comma).find(";base64") == std::string::npos) {
    return Fail(error, param, "images must be base64 data: URLs (data:image/png;base64,...); other URLs are not fetched");
  }
  std::string bytes;
  if (!DecodeBase64(std::string_view(url).substr(comma + 1), &bytes)) {
    return Fail(error, param, "the image's data: URL is not valid base64");
  }
  const bool png = bytes.rfind("\x89PNG", 0) == 0;
  const bool jpeg = bytes.size() > 2 && static_cast<unsigned char>(bytes[0]) == 0xFF &&
                    static_cast<unsigned char>(bytes[1]) == 0xD8;
  if (!png && !jpeg) return Fail(error, param, "the image is neither PNG nor JPEG");
  // Engine::LoadImage reads files: hand it a private temporary one.
  std::string path = (std::filesystem::temp_directory_path() / "gemmarun_image_XXXXXX").string();
  const int fd = mkstemp(path.data());
  if (fd < 0) return Fail(error, param, "cannot store the image for decoding", 500);
  const bool written = write(fd, bytes.data(), bytes.size()) == static_cast<ssize_t>(bytes.size());
  close(fd);
  Result<Image> image = written ? context.engine->LoadImage(path) : Internal("cannot write the image");
  std::filesystem::remove(path);
  if (!image.ok()) {
    std::string message = image.status().message();
    if (const size_t at = message.find(path); at != std::string::npos) message.replace(at, path.size(), "the image");
    return Fail(error, param, message);
  }
  plan->image = std::make_shared<const Image>(std::move(image).value());
  return true;
}

bool ParseMessages(const ApiContext& context, const json& body, GenerationPlan* plan, ApiError* error) {
  const json* messages = Field(body, "messages");
  if (messages == nullptr || !messages->is_array() || messages->empty()) {
    return Fail(error, "messages", "messages must be a non-empty list of {role, content} objects");
  }
  std::vector<ChatMessage> turns;
  std::string last_user_text;
  for (size_t i = 0; i < messages->size(); ++i) {
    const json& message = (*messages)[i];
    const std::string param = "messages[" + std::to_string(i) + "]";
    if (!message.is_object()) return Fail(error, param, param + " must be an object with role and content");
    const json* role = Field(message, "role");
    if (role == nullptr || !role->is_string()) return Fail(error, param + ".role", param + ".role must be a string");
    std::string name = role->get<std::string>();
    if (name == "developer") name = "system";
    if (name != "system" && name != "user" && name != "assistant") {
      return Fail(error, param + ".role", "role '" + name + "' is not one of system, user, assistant");
    }
    std::string text;
    const json* content = Field(message, "content");
    if (content == nullptr) {
      if (name != "assistant") return Fail(error, param + ".content", param + ".content is missing");
    } else if (content->is_string()) {
      text = content->get<std::string>();
    } else if (content->is_array()) {
      for (size_t j = 0; j < content->size(); ++j) {
        const json& part = (*content)[j];
        const std::string part_param = param + ".content[" + std::to_string(j) + "]";
        const json* type = part.is_object() ? Field(part, "type") : nullptr;
        if (type == nullptr || !type->is_string()) {
          return Fail(error, part_param, part_param + " must be an object with a \"type\"");
        }
        if (type->get<std::string>() == "text") {
          const json* part_text = Field(part, "text");
          if (part_text == nullptr || !part_text->is_string()) {
            return Fail(error, part_param + ".text", part_param + ".text must be a string");
          }
          text += part_text->get<std::string>();
        } else if (type->get<std::string>() == "image_url") {
          const json* image_url = Field(part, "image_url");
          const json* url = image_url == nullptr ? nullptr : image_url->is_string() ? image_url : Field(*image_url, "url");
          if (url == nullptr || !url->is_string()) {
            return Fail(error, part_param + ".image_url", part_param + ".image_url must hold a \"url\" string");
          }
          if (!ReadImage(context, url->get<std::string>(), part_param + ".image_url", plan, error)) return false;
        } else {
          return Fail(error, part_param + ".type", "content part type '" + type->get<std::string>() +
                                                       "' is not one of text, image_url");
        }
      }
    } else {
      return Fail(error, param + ".content", param + ".content must be a string or a list of parts");
    }
    if (name == "user") last_user_text = text;
    turns.push_back({name, std::move(text)});
  }
  const Engine& engine = *context.engine;
  Result<std::vector<int32_t>> ids = InvalidArgument("");
  if (engine.info().takes_image) {
    // PaliGemma has no chat template: its prompt is the image and the last user message.
    if (plan->image == nullptr) return Fail(error, "messages", "this model needs an image_url part with the image");
    ids = engine.ImagePrompt(last_user_text);
  } else {
    if (!engine.SpecialTokenId("<start_of_turn>").ok()) {
      return Fail(error, "messages", "the model's tokenizer has no chat template tokens; use /v1/completions");
    }
    const ChatTemplateKind kind = engine.info().family == "gemma3" ? ChatTemplateKind::kGemma3 : ChatTemplateKind::kGemma;
    Result<std::string> text = ApplyChatTemplate(kind, turns, /*add_generation_prompt=*/true);
    if (!text.ok()) return Fail(error, "messages", text.status().message());
    ids = engine.Tokenize(*text, /*add_bos=*/false);
  }
  if (!ids.ok()) return Fail(error, "messages", ids.status().message());
  plan->prompt = std::move(ids).value();
  return true;
}

bool ParsePrompt(const ApiContext& context, const json& body, GenerationPlan* plan, ApiError* error) {
  const Engine& engine = *context.engine;
  const json* prompt = Field(body, "prompt");
  if (prompt == nullptr) return Fail(error, "prompt", "prompt is missing (a string or a list of token ids)");
  const json* prompt_text = nullptr;
  if (prompt->is_string()) {
    prompt_text = prompt;
  } else if (prompt->is_array() && prompt->size() == 1 && (*prompt)[0].is_string()) {
    prompt_text = &(*prompt)[0];
  } else if (prompt->is_array() && !prompt->empty()) {
    for (const json& id : *prompt) {
      if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() >= engine.info().vocab_size) {
        return Fail(error, "prompt", "prompt must be a string or a list of token ids in [0, " +
                                         std::to_string(engine.info().vocab_size) + "), got " + Describe(id));
      }
      plan->prompt.push_back(static_cast<int32_t>(id.get<int64_t>()));
    }
  } else {
    return Fail(error, "prompt", "prompt must be a string or a non-empty list of token ids (one prompt per request)");
  }
  const json* suffix = Field(body, "suffix");
  if (suffix != nullptr && !suffix->is_string()) return Fail(error, "suffix", "suffix must be a string");
  if (suffix != nullptr) {
    if (prompt_text == nullptr) return Fail(error, "prompt", "with suffix, prompt must be a string");
    // CodeGemma fill-in-the-middle: <bos><|fim_prefix|>PREFIX<|fim_suffix|>SUFFIX<|fim_middle|>.
    const char* names[4] = {"<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>", "<|file_separator|>"};
    int32_t fim[4];
    for (int i = 0; i < 4; ++i) {
      Result<int32_t> id = engine.SpecialTokenId(names[i]);
      if (!id.ok()) return Fail(error, "suffix", "suffix needs a CodeGemma tokenizer: " + id.status().message());
      fim[i] = *id;
    }
    Result<std::vector<int32_t>> prefix_ids = engine.Tokenize(prompt_text->get<std::string>(), false);
    Result<std::vector<int32_t>> suffix_ids = engine.Tokenize(suffix->get<std::string>(), false);
    if (!prefix_ids.ok()) return Fail(error, "prompt", prefix_ids.status().message());
    if (!suffix_ids.ok()) return Fail(error, "suffix", suffix_ids.status().message());
    Result<std::vector<int32_t>> bos = engine.Tokenize("", true);
    if (!bos.ok()) return Fail(error, "prompt", bos.status().message());
    plan->prompt = *bos;
    plan->prompt.push_back(fim[0]);
    plan->prompt.insert(plan->prompt.end(), prefix_ids->begin(), prefix_ids->end());
    plan->prompt.push_back(fim[1]);
    plan->prompt.insert(plan->prompt.end(), suffix_ids->begin(), suffix_ids->end());
    plan->prompt.push_back(fim[2]);
    plan->options.stop_ids.assign(fim, fim + 4);
    return true;
  }
  if (prompt_text != nullptr) {
    Result<std::vector<int32_t>> ids = engine.Tokenize(prompt_text->get<std::string>(), /*add_bos=*/true);
    if (!ids.ok()) return Fail(error, "prompt", ids.status().message());
    plan->prompt = std::move(ids).value();
  }
  return true;
}

}  // namespace

std::string ErrorType(int http_status) {
  switch (http_status) {
    case 401: return "authentication_error";
    case 404: return "not_found_error";
    case 413: return "request_too_large";
    case 429: return "rate_limit_error";
    case 503: return "unavailable_error";
    default: return http_status >= 500 ? "server_error" : "invalid_request_error";
  }
}

json ErrorBody(const ApiError& error) {
  json body;
  body["error"] = {{"message", error.message},
                   {"type", ErrorType(error.http_status)},
                   {"param", error.param.empty() ? json(nullptr) : json(error.param)},
                   {"code", error.code.empty() ? json(nullptr) : json(error.code)}};
  return body;
}

std::string Dump(const json& value) { return value.dump(-1, ' ', false, json::error_handler_t::replace); }

bool ParseGeneration(const ApiContext& context, Endpoint endpoint, const json& body, GenerationPlan* plan,
                     ApiError* error) {
  if (!body.is_object()) return Fail(error, "", "the request body must be a JSON object");
  plan->endpoint = endpoint;
  if (!ParseSampling(body, endpoint, plan, error)) return false;
  int64_t max_tokens = -1;
  const char* max_name = Field(body, "max_completion_tokens") != nullptr ? "max_completion_tokens" : "max_tokens";
  if (!ReadInt(body, max_name, 0, std::numeric_limits<int64_t>::max(), &max_tokens, error)) return false;
  if (endpoint == Endpoint::kChat ? !ParseMessages(context, body, plan, error)
                                  : !ParsePrompt(context, body, plan, error)) {
    return false;
  }
  const int64_t prompt_tokens = static_cast<int64_t>(plan->prompt.size());
  const int64_t room = context.context_length - prompt_tokens;
  if (room <= 0) {
    return Fail(error, endpoint == Endpoint::kChat ? "messages" : "prompt",
                "the prompt has " + std::to_string(prompt_tokens) + " tokens but the context holds " +
                    std::to_string(context.context_length),
                400);
  }
  plan->options.max_new_tokens = static_cast<int>(max_tokens < 0 ? room : std::min(max_tokens, room));
  return true;
}

const char* FinishReason(StopReason reason) {
  switch (reason) {
    case StopReason::kMaxTokens:
    case StopReason::kContextFull:
      return "length";
    default:
      return "stop";
  }
}

bool DecodeBase64(std::string_view text, std::string* bytes) {
  bytes->clear();
  uint32_t buffer = 0;
  int bits = 0;
  size_t padding = 0;
  for (char c : text) {
    int value;
    if (c >= 'A' && c <= 'Z') value = c - 'A';
    else if (c >= 'a' && c <= 'z') value = c - 'a' + 26;
    else if (c >= '0' && c <= '9') value = c - '0' + 52;
    else if (c == '+') value = 62;
    else if (c == '/') value = 63;
    else if (c == '=') {
      ++padding;
      continue;
    } else {
      return false;
    }
    if (padding > 0) return false;  // data after padding
    buffer = (buffer << 6) | static_cast<uint32_t>(value);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      bytes->push_back(static_cast<char>((buffer >> bits) & 0xFF));
    }
  }
  return padding <= 2 && !bytes->empty();
}

std::string TakeCompleteUtf8(std::string* pending) {
  const std::string& s = *pending;
  size_t end = s.size();
  // Step back over at most three continuation bytes to the last lead byte.
  size_t i = end;
  int continuation = 0;
  while (i > 0 && continuation < 4 && (static_cast<unsigned char>(s[i - 1]) & 0xC0) == 0x80) {
    --i;
    ++continuation;
  }
  if (i > 0) {
    const unsigned char lead = static_cast<unsigned char>(s[i - 1]);
    const int length = lead < 0x80 ? 1 : (lead >> 5) == 0x6 ? 2 : (lead >> 4) == 0xE ? 3 : (lead >> 3) == 0x1E ? 4 : 1;
    if (length > continuation + 1) end = i - 1;  // the last character is incomplete
  }
  std::string complete = s.substr(0, end);
  pending->erase(0, end);
  return complete;
}

}  // namespace gemmarun::server
