// gemmarun's public API: load a Gemma-family model (HF checkpoint folder or GGUF
// file), tokenize, and run sequences. The CLI and the server use nothing else.
//
//   auto engine = gemmarun::Engine::Load("./gemma-2b");
//   auto session = (*engine)->NewSession();
//   auto ids = (*engine)->Tokenize("The capital of France is", /*add_bos=*/true);
//   gemmarun::GenerateOptions options;
//   options.on_token = [](int32_t, const std::string& text) { std::cout << text; return true; };
//   auto result = (*session)->Generate(*ids, options);
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "gemmarun/sampling.h"
#include "gemmarun/status.h"

namespace gemmarun {

struct EngineOptions {
  // Where the model computes: "cpu" (or empty), "cuda" (GPU 0) or "cuda:N". A
  // GPU holds the weights, KV cache and activations; the host reads back only
  // the logits it samples from.
  std::string device;
  int num_threads = 0;          // 0: one per physical core (CPU)
  int64_t context_length = 0;   // default context of new sessions; 0: min(model maximum, 8192)
  // Convert matrix weights at load: "bf16", "f16", "q8_0", "q4_0"; empty keeps the stored type.
  std::string weight_dtype;
  // Products of matrices with bf16 weights. "" or "bf16" (the default) rounds
  // the activations to bf16 first (round-to-nearest-even; sums stay f32): the
  // checkpoint's own precision, and llama.cpp's, gemma.cpp's and bf16
  // PyTorch's arithmetic; CPUs with AVX512_BF16 run it natively, about 1.5-2x
  // faster prefill than f32, and the logits move by ~1e-3 of their size. "f32"
  // multiplies the stored weights with f32 activations exactly (what the
  // golden tests and `verify` pin). Other weight types ignore it.
  std::string matmul_precision;
  // Type of the KV cache entries: "f32", "f16", "bf16", "q8_0"; "" is f16 (half
  // the memory and attention bandwidth of f32). verify uses f32.
  std::string cache_type;
  // Long work (loading) reports progress: stage name, units done, units total.
  std::function<void(const char* stage, size_t done, size_t total)> progress;
};

// Whether EngineOptions::device names a device this build and machine can run
// ("cpu", or "cuda"/"cuda:N" with CUDA compiled in and that GPU present), so a
// command can refuse a bad --device before loading anything.
Status CheckDevice(std::string_view device);

struct ModelInfo {
  std::string family;      // gemma, gemma2, gemma3, recurrent_gemma, paligemma
  std::string model_type;  // as the checkpoint names it
  std::string source;      // path it was loaded from
  int vocab_size = 0;
  int model_dim = 0;
  int num_layers = 0;
  int64_t max_seq_len = 0;
  size_t weight_bytes = 0;
  std::string backend;     // "cpu (AVX3, 2 threads)"; "..., bf16 products)" for bf16 matrices in bf16 precision
  bool takes_image = false;
  int image_size = 0;       // PaliGemma input resolution
  int num_image_tokens = 0;
};

// An image ready for the vision tower: [channels, height, width], normalised.
struct Image {
  int channels = 0;
  int height = 0;
  int width = 0;
  std::vector<float> pixels;
};

struct Logits {
  int64_t rows = 0;
  int64_t vocab_size = 0;
  std::vector<float> values;  // [rows, vocab_size]
  std::span<const float> row(int64_t r) const {
    return {values.data() + r * vocab_size, static_cast<size_t>(vocab_size)};
  }
};

enum class StopReason { kMaxTokens, kEndOfSequence, kStopToken, kStopString, kCallback, kContextFull, kCancelled };
const char* StopReasonName(StopReason reason);

struct TokenLogprob {
  int32_t id = 0;
  float logprob = 0.0f;  // natural log of the model's probability (log-softmax of the raw logits)
};

// One generated token, as the per-token callback and GenerateResult::details see it.
struct GeneratedToken {
  int32_t id = 0;
  std::string text;                // text released with this token (see on_token)
  float logprob = 0.0f;            // when GenerateOptions::logprobs >= 0
  std::vector<TokenLogprob> top;   // the GenerateOptions::logprobs most likely tokens, best first
};

struct GenerateOptions {
  int max_new_tokens = 128;        // -1: until EOS or the context is full
  SamplingOptions sampling;
  bool stop_at_eos = true;         // stop at the model's EOS / end-of-turn tokens
  std::vector<int32_t> stop_ids;   // more tokens that end generation (not emitted)
  // Texts that end generation, matched on the decoded text even across token
  // boundaries; the match and anything after it is not emitted. Text that could
  // still become a match is held back until it cannot.
  std::vector<std::string> stop_strings;
  int logprobs = -1;               // >= 0: report each token's logprob and this many top alternatives
  // Called for each generated token with the text it completes (empty while a
  // multi-byte character is still incomplete). Return false to stop.
  std::function<bool(int32_t id, const std::string& text)> on_token;
  // The same event with logprobs (called instead of on_token when set).
  std::function<bool(const GeneratedToken& token)> on_generated;
};

struct GenerateResult {
  std::vector<int32_t> tokens;  // generated ids, stop token excluded
  std::string text;             // their text, when the model has a tokenizer
  StopReason stop_reason = StopReason::kMaxTokens;
  std::string stop_string;      // the stop string that matched (kStopString)
  std::vector<GeneratedToken> details;  // per token, when logprobs >= 0
  int64_t prompt_tokens = 0;    // prompt tokens of this call
  int64_t cached_tokens = 0;    // of those, taken from the prefix cache instead of prefilled
  double time_to_first_token_seconds = 0.0;
  double prefill_seconds = 0.0;
  double decode_seconds = 0.0;
};

struct PrefillOptions {
  bool all_logits = false;       // logits for every fed token, not only the last
  const Image* image = nullptr;  // PaliGemma: the tokens are the image + prompt prefix
};

struct SchedulerOptions;
class Scheduler;

class Session {
 public:
  virtual ~Session() = default;
  virtual int64_t length() const = 0;
  virtual int64_t context_length() const = 0;
  virtual const std::vector<int32_t>& tokens() const = 0;  // every token fed so far
  // Appends tokens to the sequence (one batched forward pass).
  virtual Result<Logits> Prefill(std::span<const int32_t> tokens, const PrefillOptions& options = {}) = 0;
  // Appends `prompt` (may be empty when already prefilled), then generates.
  virtual Result<GenerateResult> Generate(std::span<const int32_t> prompt, const GenerateOptions& options) = 0;
  virtual void Reset() = 0;
  virtual size_t state_bytes() const = 0;  // KV cache / recurrent state held
};

class Engine {
 public:
  static Result<std::unique_ptr<Engine>> Load(const std::string& model_path, const EngineOptions& options = {});
  virtual ~Engine() = default;

  virtual const ModelInfo& info() const = 0;
  virtual bool has_tokenizer() const = 0;
  virtual Result<std::vector<int32_t>> Tokenize(std::string_view text, bool add_bos) const = 0;
  virtual Result<std::string> Detokenize(std::span<const int32_t> ids) const = 0;
  // The id of a special token such as "<end_of_turn>" or "<|fim_prefix|>", or an error.
  virtual Result<int32_t> SpecialTokenId(std::string_view piece) const = 0;
  // prefill_chunk: tokens per forward pass (0: default). Sliding-window layers keep
  // window + prefill_chunk - 1 positions, so a small chunk means a small cache.
  virtual Result<std::unique_ptr<Session>> NewSession(int64_t context_length = 0, int64_t prefill_chunk = 0) = 0;

  // Many sequences sharing every forward pass (continuous batching); see scheduler.h.
  virtual Result<std::unique_ptr<Scheduler>> NewScheduler(const SchedulerOptions& options) = 0;

  // PaliGemma: reads a PNG/JPEG and prepares it as the model's vision tower expects.
  virtual Result<Image> LoadImage(const std::string& path) const = 0;
  // PaliGemma: [image]*N + <bos> + prompt + "\n".
  virtual Result<std::vector<int32_t>> ImagePrompt(std::string_view prompt) const = 0;
  // The same layout from token ids: [image]*N + <bos> + text_ids (the caller
  // includes the newline's id), so a model without a tokenizer takes an image too.
  virtual Result<std::vector<int32_t>> ImagePromptFromIds(std::span<const int32_t> text_ids) const = 0;
};

}  // namespace gemmarun
