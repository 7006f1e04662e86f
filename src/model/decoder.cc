#include "model/decoder.h"

#include <algorithm>
#include <cstring>

namespace gemmarun {

size_t DecoderState::bytes() const {
  size_t total = 0;
  for (const auto& cache : caches) total += cache.k.bytes() + cache.v.bytes();
  return total;
}

Decoder::Decoder(ModelConfig config, ModelWeights weights, Backend* backend)
    : config_(std::move(config)), weights_(std::move(weights)) {
  ctx_.backend = backend;
}

Result<std::unique_ptr<SequenceState>> Decoder::NewState(int64_t max_tokens, int64_t max_chunk) const {
  if (max_tokens <= 0 || max_tokens > config_.max_seq_len) {
    return OutOfRange("context of " + std::to_string(max_tokens) + " tokens is outside 1.." +
                      std::to_string(config_.max_seq_len) + " (max_position_embeddings)");
  }
  auto state = std::make_unique<DecoderState>();
  state->max_tokens_ = max_tokens;
  state->max_chunk = max_chunk > 0 ? std::min(max_chunk, kMaxChunk) : kMaxChunk;
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
  const int64_t num_tokens = static_cast<int64_t>(input.tokens.size());
  const int64_t rows = input.all_logits ? num_tokens : 1;
  const TensorView logits = Rows(act_.logits, rows, config_.vocab_size);
  if (input.bidirectional) {
    // Every prefix query must see every prefix key: one chunk, keys written first.
    if (state.length_ != 0) return InvalidArgument("a bidirectional prefix must start the sequence");
    for (size_t i = 0; i < state.caches.size(); ++i) {
      if (num_tokens > state.caches[i].capacity) {
        return OutOfRange("a bidirectional prefix of " + std::to_string(num_tokens) + " tokens does not fit the " +
                          std::to_string(state.caches[i].capacity) + " cache slots of layer " + std::to_string(i));
      }
    }
    state.prefix_end = num_tokens;
    ForwardChunk(input, 0, num_tokens, state, &logits);
    return logits;
  }
  for (int64_t begin = 0; begin < num_tokens; begin += state.max_chunk) {
    const int64_t end = std::min(num_tokens, begin + state.max_chunk);
    if (input.all_logits) {
      const TensorView chunk_logits{logits.row(begin), DType::kF32, Shape{end - begin, config_.vocab_size}};
      ForwardChunk(input, begin, end, state, &chunk_logits);
    } else {
      ForwardChunk(input, begin, end, state, end == num_tokens ? &logits : nullptr);
    }
  }
  return logits;
}

void Decoder::ForwardChunk(const ForwardInput& input, int64_t begin, int64_t end, DecoderState& state,
                           const TensorView* logits) {
  const int64_t num_tokens = end - begin;
  const int64_t first_index = state.length_;
  const std::span<const int32_t> tokens = input.tokens.subspan(begin, num_tokens);
  const TensorView x = Rows(act_.x, num_tokens, config_.model_dim);
  ops::Embed(ctx_, weights_.embedding.view(), tokens, config_.embed_scale, x);
  if (input.image_features != nullptr) {
    // Image rows enter unscaled: ref HF PaliGemma (features / sqrt(d), then * sqrt(d)).
    int64_t image_row = 0;
    for (int32_t t = 0; t < num_tokens; ++t) {
      if (tokens[t] != config_.image_token_id) continue;
      const TensorView& features = *input.image_features;
      std::memcpy(x.row(t), features.row(image_row++), features.row_bytes());
    }
  }
  act_.positions.resize(num_tokens);
  for (int64_t t = 0; t < num_tokens; ++t) {
    act_.positions[t] = static_cast<float>(first_index + t + config_.position_offset);
  }
  for (int layer = 0; layer < config_.num_layers(); ++layer) TransformerLayer(layer, x, first_index, state);
  state.length_ += num_tokens;
  if (logits != nullptr) {
    const int64_t rows = logits->shape.rows();
    const TensorView last{x.row(num_tokens - rows), DType::kF32, Shape{rows, config_.model_dim}};
    LmHead(ctx_, config_, weights_, last, act_.normed, *logits);
  }
}

void Decoder::TransformerLayer(int layer, const TensorView& x, int64_t first_index, DecoderState& state) {
  const LayerConfig& lc = config_.layers[layer];
  const LayerWeights& w = weights_.layers[layer];
  const int64_t num_tokens = x.shape.rows();
  const TensorView normed = Rows(act_.normed, num_tokens, config_.model_dim);
  const TensorView branch = Rows(act_.branch, num_tokens, config_.model_dim);

  ops::RmsNorm(ctx_, x, w.pre_attn_norm.view(), config_.rms_norm_eps, normed);
  AttentionBlock(ctx_, config_, lc, w.attn, normed, act_.positions, first_index, state.prefix_end,
                 state.caches[layer], act_.attention, branch);
  if (lc.post_norms) ops::RmsNorm(ctx_, branch, w.post_attn_norm.view(), config_.rms_norm_eps, branch);
  ops::Add(ctx_, x, branch, x);

  ops::RmsNorm(ctx_, x, w.pre_ffw_norm.view(), config_.rms_norm_eps, normed);
  GatedMlp(ctx_, w.mlp, normed, act_.mlp, branch);
  if (lc.post_norms) ops::RmsNorm(ctx_, branch, w.post_ffw_norm.view(), config_.rms_norm_eps, branch);
  ops::Add(ctx_, x, branch, x);
}

}  // namespace gemmarun
