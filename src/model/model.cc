#include "model/model.h"

#include <cmath>

#include "model/decoder.h"
#include "model/families.h"

namespace gemmarun {
namespace {

// ref: architectures.md §1.2. HF casts sqrt(hidden) to the weights' dtype (Gemma 1/2/3);
// RecurrentGemma always rounds it to bfloat16 ("to match training"). Quantized GGUF
// embeddings follow llama.cpp, which scales by the exact f32 value.
float EmbeddingScale(const ModelConfig& config, DType embedding_dtype) {
  const float scale = std::sqrt(static_cast<float>(config.model_dim));
  if (config.family == ModelFamily::kRecurrentGemma) return RoundTo(DType::kBF16, scale);
  return RoundTo(embedding_dtype, scale);
}

}  // namespace

Status CheckForwardInput(const ModelConfig& config, const ForwardInput& input, const SequenceState& state) {
  if (input.tokens.empty()) return InvalidArgument("no tokens to process");
  const int64_t needed = state.length() + static_cast<int64_t>(input.tokens.size());
  if (needed > state.max_tokens()) {
    return OutOfRange("the sequence needs " + std::to_string(needed) + " tokens but the context holds " +
                      std::to_string(state.max_tokens()));
  }
  int64_t image_tokens = 0;
  for (size_t i = 0; i < input.tokens.size(); ++i) {
    const int32_t id = input.tokens[i];
    if (id < 0 || id >= config.vocab_size) {
      return InvalidArgument("token id " + std::to_string(id) + " at position " + std::to_string(i) +
                             " is outside the vocabulary of " + std::to_string(config.vocab_size));
    }
    if (id == config.image_token_id) ++image_tokens;
  }
  if (input.image_features != nullptr) {
    if (input.image_features->shape.rows() != image_tokens ||
        input.image_features->shape.cols() != config.model_dim) {
      return InvalidArgument("the input has " + std::to_string(image_tokens) + " image tokens but the image gives " +
                             input.image_features->shape.ToString() + " features");
    }
  } else if (image_tokens > 0 && config.family == ModelFamily::kPaliGemma) {
    return InvalidArgument("the input has image tokens but no image");
  }
  return Status::Ok();
}

Result<std::unique_ptr<Model>> CreateModel(ModelConfig config, ModelWeights weights, Backend* backend) {
  GR_RETURN_IF_ERROR(config.Validate());
  config.embed_scale = EmbeddingScale(config, weights.embedding.dtype());
  switch (config.family) {
    case ModelFamily::kGemma:
    case ModelFamily::kGemma2:
    case ModelFamily::kGemma3:
      return std::unique_ptr<Model>(std::make_unique<Decoder>(std::move(config), std::move(weights), backend));
    case ModelFamily::kRecurrentGemma:
      return CreateGriffinModel(std::move(config), std::move(weights), backend);
    case ModelFamily::kPaliGemma:
      return CreatePaliGemmaModel(std::move(config), std::move(weights), backend);
  }
  return Unsupported("unknown model family");
}

}  // namespace gemmarun
