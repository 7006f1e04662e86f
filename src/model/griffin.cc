// RecurrentGemma's forward pass. A chunk of tokens goes through every layer at
// once (batched projections); only the RG-LRU is a scan over time, inside its op.
// Chunked prefill and token-by-token decoding carry the same state (Conv1D history,
// h, K/V ring), so any split of a sequence gives the same logits.
#include "model/griffin.h"

#include <algorithm>
#include <cstring>

#include "model/families.h"

namespace gemmarun {

size_t GriffinState::bytes() const {
  size_t total = 0;
  for (const Layer& layer : layers) {
    total += layer.conv.bytes() + layer.h.bytes() + layer.cache.k.bytes() + layer.cache.v.bytes();
  }
  return total;
}

void GriffinState::Reset() {
  SequenceState::Reset();
  for (Layer& layer : layers) {
    if (!layer.conv.empty()) std::memset(layer.conv.data(), 0, layer.conv.bytes());
    if (!layer.h.empty()) std::memset(layer.h.data(), 0, layer.h.bytes());
  }
}

Result<std::unique_ptr<SequenceState>> GriffinModel::NewState(int64_t max_tokens, int64_t max_chunk) const {
  GR_RETURN_IF_ERROR(CheckContextLength(max_tokens));
  auto state = std::make_unique<GriffinState>();
  SetMaxTokens(*state, max_tokens);
  state->max_chunk = ChunkLength(max_chunk);
  state->layers.resize(config_.layers.size());
  const auto out_of_memory = [&] { return OutOfRange("not enough memory for a RecurrentGemma sequence state"); };
  for (size_t i = 0; i < config_.layers.size(); ++i) {
    const LayerConfig& lc = config_.layers[i];
    GriffinState::Layer& layer = state->layers[i];
    if (lc.kind == BlockKind::kRecurrent) {
      const int64_t history = config_.conv1d_width - 1;
      if ((history > 0 && !Tensor::TryCreate(DType::kF32, Shape{history, config_.lru_width}, &layer.conv)) ||
          !Tensor::TryCreate(DType::kF32, Shape{config_.lru_width}, &layer.h)) {
        return out_of_memory();
      }
      continue;
    }
    // Every Griffin attention layer is local, so the ring is bounded by the window
    // (plus one chunk), never by max_tokens.
    GR_CHECK(lc.attention_window > 0) << "RecurrentGemma attention layer " << i << " has no window";
    LayerKvCache& cache = layer.cache;
    cache.capacity = KvCapacity(lc, max_tokens, state->max_chunk);
    const Shape shape{cache.capacity, config_.num_kv_heads, config_.head_dim};
    if (!Tensor::TryCreate(DType::kF32, shape, &cache.k) || !Tensor::TryCreate(DType::kF32, shape, &cache.v)) {
      return out_of_memory();
    }
  }
  return std::unique_ptr<SequenceState>(std::move(state));
}

Result<TensorView> GriffinModel::Forward(const ForwardInput& input, SequenceState& base_state) {
  auto& state = static_cast<GriffinState&>(base_state);
  GR_RETURN_IF_ERROR(CheckForwardInput(config_, input, state));
  if (input.bidirectional || input.image_features != nullptr) {
    return InvalidArgument("recurrent_gemma is causal and text-only: no bidirectional prefix or image");
  }
  return ForwardInChunks(input, state, state.max_chunk);
}

void GriffinModel::ForwardChunk(const ForwardInput& input, int64_t begin, int64_t end, SequenceState& base_state,
                                const TensorView* logits) {
  auto& state = static_cast<GriffinState&>(base_state);
  const int64_t first_index = state.length();
  // ref: HF RecurrentGemmaModel: embeddings * bf16(sqrt(hidden)) (config.embed_scale).
  // HF's position_ids are the absolute cache positions: RoPE angles and the RG-LRU
  // reset (index 0) both use the sequence index.
  const TensorView x = EmbedChunk(input.tokens.subspan(begin, end - begin), first_index);
  for (int layer = 0; layer < config_.num_layers(); ++layer) ResidualBlock(layer, x, first_index, state);
  FinishChunk(x, state, logits);  // final_norm, tied embedding, soft-cap 30
}

// ref: HF RecurrentGemmaDecoderLayer: res = temporal(temporal_pre_norm(x)) + x;
// x = mlp(channel_pre_norm(res)) + res.
void GriffinModel::ResidualBlock(int layer, const TensorView& x, int64_t first_index, GriffinState& state) {
  ResidualLayer(layer, x, [&](const TensorView& normed, const TensorView& out) {
    if (config_.layers[layer].kind == BlockKind::kRecurrent) {
      RecurrentBlock(layer, normed, first_index, state.layers[layer], out);
    } else {
      // Local MQA: partial RoPE (config.rotary_dim), o_proj bias, window of W+1 keys.
      AttentionBlock(ctx_, config_, config_.layers[layer], weights_.layers[layer].attn, normed, act_.positions,
                     first_index, /*prefix_end=*/0, state.layers[layer].cache, act_.attention, out);
    }
  });
}

// ref: HF modeling_recurrent_gemma RecurrentGemmaRecurrentBlock:
// out = linear_out(rg_lru(conv_1d(linear_x(x))) * gelu_tanh(linear_y(x))).
void GriffinModel::RecurrentBlock(int layer, const TensorView& normed, int64_t first_index,
                                  GriffinState::Layer& state, const TensorView& out) {
  const RecurrentWeights& w = weights_.layers[layer].recurrent;
  const int64_t num_tokens = normed.shape.rows();
  const int64_t lru = config_.lru_width;
  const TensorView y = Rows(recurrent_act_.y, num_tokens, lru);
  const TensorView u = Rows(recurrent_act_.u, num_tokens, lru);
  const TensorView conv = Rows(recurrent_act_.conv, num_tokens, lru);
  const TensorView gate_x = Rows(recurrent_act_.gate_x, num_tokens, lru);
  const TensorView gate_a = Rows(recurrent_act_.gate_a, num_tokens, lru);
  const TensorView conv_state{state.conv.empty() ? nullptr : state.conv.data(), DType::kF32,
                              Shape{config_.conv1d_width - 1, lru}};

  ops::MatMul(ctx_, normed, w.linear_y.view(), w.linear_y_bias.view(), y);
  ops::Gelu(ctx_, y);
  ops::MatMul(ctx_, normed, w.linear_x.view(), w.linear_x_bias.view(), u);
  ops::CausalConv1D(ctx_, u, w.conv_weight.view(), w.conv_bias.view(), conv_state, conv);
  // ref: RecurrentGemmaRglru: gates are per-head x_h @ W_h + b_h (W stored [in, out]).
  ops::BlockDiagonalMatMul(ctx_, conv, w.input_gate_weight.view(), w.input_gate_bias.view(), gate_x);
  ops::BlockDiagonalMatMul(ctx_, conv, w.recurrent_gate_weight.view(), w.recurrent_gate_bias.view(), gate_a);
  ops::RgLru(ctx_, conv, gate_x, gate_a, w.recurrent_param.view(), first_index, state.h.view(), conv);
  ops::Mul(ctx_, conv, y, conv);
  ops::MatMul(ctx_, conv, w.linear_out.view(), w.linear_out_bias.view(), out);
}

Result<std::unique_ptr<Model>> CreateGriffinModel(ModelConfig config, ModelWeights weights, Backend* backend) {
  if (config.family != ModelFamily::kRecurrentGemma) {
    return InvalidArgument(std::string("CreateGriffinModel got a ") + FamilyName(config.family) + " config");
  }
  return std::unique_ptr<Model>(std::make_unique<GriffinModel>(std::move(config), std::move(weights), backend));
}

}  // namespace gemmarun
