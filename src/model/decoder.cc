#include "model/decoder.h"

#include <algorithm>
#include <cstring>

namespace gemmarun {

size_t DecoderState::bytes() const {
  size_t total = 0;
  for (const auto& cache : caches) total += cache.k.bytes() + cache.v.bytes();
  return total;
}

Result<std::unique_ptr<SequenceState>> Decoder::NewState(int64_t max_tokens, int64_t max_chunk) const {
  GR_RETURN_IF_ERROR(CheckContextLength(max_tokens));
  auto state = std::make_unique<DecoderState>();
  SetMaxTokens(*state, max_tokens);
  state->max_chunk = ChunkLength(max_chunk);
  state->caches.resize(config_.layers.size());
  const Shape row{config_.num_kv_heads, config_.head_dim};
  for (size_t i = 0; i < config_.layers.size(); ++i) {
    LayerKvCache& cache = state->caches[i];
    cache.capacity = KvCapacity(config_.layers[i], max_tokens, state->max_chunk);
    const Shape shape{cache.capacity, row[0], row[1]};
    if (!Tensor::TryCreate(DType::kF32, shape, &cache.k) || !Tensor::TryCreate(DType::kF32, shape, &cache.v)) {
      return OutOfRange("not enough memory for a KV cache of " + std::to_string(max_tokens) + " tokens");
    }
  }
  return std::unique_ptr<SequenceState>(std::move(state));
}

Result<TensorView> Decoder::Forward(const ForwardInput& input, SequenceState& base_state) {
  auto& state = static_cast<DecoderState&>(base_state);
  GR_RETURN_IF_ERROR(CheckForwardInput(config_, input, state));
  if (!input.bidirectional) return ForwardInChunks(input, state, state.max_chunk);
  // Every prefix query must see every prefix key: one chunk, keys written first.
  const int64_t num_tokens = static_cast<int64_t>(input.tokens.size());
  if (state.length() != 0) return InvalidArgument("a bidirectional prefix must start the sequence");
  for (size_t i = 0; i < state.caches.size(); ++i) {
    if (num_tokens > state.caches[i].capacity) {
      return OutOfRange("a bidirectional prefix of " + std::to_string(num_tokens) + " tokens does not fit the " +
                        std::to_string(state.caches[i].capacity) + " cache slots of layer " + std::to_string(i));
    }
  }
  state.prefix_end = num_tokens;
  const TensorView logits = LogitRows(input.all_logits ? num_tokens : 1);
  ForwardChunk(input, 0, num_tokens, state, &logits);
  return logits;
}

void Decoder::ForwardChunk(const ForwardInput& input, int64_t begin, int64_t end, SequenceState& base_state,
                           const TensorView* logits) {
  auto& state = static_cast<DecoderState&>(base_state);
  const int64_t first_index = state.length();
  const std::span<const int32_t> tokens = input.tokens.subspan(begin, end - begin);
  const TensorView x = EmbedChunk(tokens, first_index + config_.position_offset);
  if (input.image_features != nullptr) {
    // Image rows enter unscaled: ref HF PaliGemma (features / sqrt(d), then * sqrt(d)).
    int64_t image_row = 0;
    for (size_t t = 0; t < tokens.size(); ++t) {
      if (tokens[t] != config_.image_token_id) continue;
      const TensorView& features = *input.image_features;
      std::memcpy(x.row(static_cast<int64_t>(t)), features.row(image_row++), features.row_bytes());
    }
  }
  for (int layer = 0; layer < config_.num_layers(); ++layer) TransformerLayer(layer, x, first_index, state);
  FinishChunk(x, state, logits);
}

void Decoder::TransformerLayer(int layer, const TensorView& x, int64_t first_index, DecoderState& state) {
  ResidualLayer(layer, x, [&](const TensorView& normed, const TensorView& out) {
    AttentionBlock(ctx_, config_, config_.layers[layer], weights_.layers[layer].attn, normed, act_.positions,
                   first_index, state.prefix_end, state.caches[layer], act_.attention, out);
  });
}

}  // namespace gemmarun
