#include "model/layer_stack.h"

#include <algorithm>
#include <string>

namespace gemmarun {

LayerStackModel::LayerStackModel(ModelConfig config, ModelWeights weights, Backend* backend)
    : config_(std::move(config)), weights_(std::move(weights)) {
  ctx_.backend = backend;
}

Status LayerStackModel::CheckContextLength(int64_t max_tokens) const {
  if (max_tokens <= 0 || max_tokens > config_.max_seq_len) {
    return OutOfRange("context of " + std::to_string(max_tokens) + " tokens is outside 1.." +
                      std::to_string(config_.max_seq_len) + " (max_position_embeddings)");
  }
  return Status::Ok();
}

int64_t LayerStackModel::ChunkLength(int64_t max_chunk) {
  return max_chunk > 0 ? std::min(max_chunk, kMaxChunk) : kMaxChunk;
}

TensorView LayerStackModel::ForwardInChunks(const ForwardInput& input, SequenceState& state, int64_t chunk) {
  const int64_t num_tokens = static_cast<int64_t>(input.tokens.size());
  const TensorView logits = LogitRows(input.all_logits ? num_tokens : 1);
  for (int64_t begin = 0; begin < num_tokens; begin += chunk) {
    const int64_t end = std::min(num_tokens, begin + chunk);
    if (input.all_logits) {
      const TensorView chunk_logits{logits.row(begin), DType::kF32, Shape{end - begin, config_.vocab_size}};
      ForwardChunk(input, begin, end, state, &chunk_logits);
    } else {
      ForwardChunk(input, begin, end, state, end == num_tokens ? &logits : nullptr);
    }
  }
  return logits;
}

TensorView LayerStackModel::LogitRows(int64_t rows) { return Rows(act_.logits, rows, config_.vocab_size); }

TensorView LayerStackModel::EmbedChunk(std::span<const int32_t> tokens, int64_t first_position) {
  const int64_t num_tokens = static_cast<int64_t>(tokens.size());
  const TensorView x = Rows(act_.x, num_tokens, config_.model_dim);
  ops::Embed(ctx_, weights_.embedding.view(), tokens, config_.embed_scale, x);
  act_.positions.resize(num_tokens);
  for (int64_t t = 0; t < num_tokens; ++t) act_.positions[t] = static_cast<float>(first_position + t);
  return x;
}

void LayerStackModel::FinishChunk(const TensorView& x, SequenceState& state, const TensorView* logits) {
  const int64_t num_tokens = x.shape.rows();
  state.length_ += num_tokens;
  if (logits != nullptr) {
    const int64_t rows = logits->shape.rows();
    const TensorView last{x.row(num_tokens - rows), DType::kF32, Shape{rows, config_.model_dim}};
    LmHead(ctx_, config_, weights_, last, act_.normed, *logits);
  }
}

}  // namespace gemmarun
