// RecurrentGemma's forward pass. A chunk of tokens goes through every layer at
// once (batched projections); only the RG-LRU is a scan over time, inside its op.
// Chunked prefill and token-by-token decoding carry the same state (Conv1D history,
// h, K/V ring), so any split of a sequence gives the same logits.
#include "model/griffin.h"

#include <algorithm>
#include <cstring>

#include "model/families.h"

namespace gemmarun {

Status GriffinModel::CheckFamilyBatch(std::span<const SequenceChunk> chunks) const {
  for (const SequenceChunk& chunk : chunks) {
    if (chunk.prefix_end > 0 || chunk.image_features != nullptr) {
      return InvalidArgument("recurrent_gemma is causal and text-only: no bidirectional prefix or image");
    }
  }
  return Status::Ok();
}

// ref: HF RecurrentGemmaDecoderLayer: res = temporal(temporal_pre_norm(x)) + x;
// x = mlp(channel_pre_norm(res)) + res. HF's position_ids are the absolute cache
// positions: RoPE angles and the RG-LRU reset (index 0) both use the sequence index.
void GriffinModel::Layer(int layer, const TensorView& x, const StackBatch& batch) const {
  ResidualLayer(layer, x, *batch.ws, [&](const TensorView& normed, const TensorView& out) {
    if (config_.layers[layer].kind == BlockKind::kRecurrent) {
      RecurrentBlock(layer, normed, batch, out);
    } else {
      // Local MQA: partial RoPE (config.rotary_dim), o_proj bias, window of W+1 keys.
      AttentionBlock(ctx_, config_, config_.layers[layer], weights_.layers[layer].attn, normed,
                     batch.ws->positions, KvFor(layer, batch), batch.ws->attention, out);
    }
  });
}

// ref: HF modeling_recurrent_gemma RecurrentGemmaRecurrentBlock:
// out = linear_out(rg_lru(conv_1d(linear_x(x))) * gelu_tanh(linear_y(x))).
// The projections and gates see every row of the batch; the Conv1D and the
// RG-LRU scan run per sequence, each against its own state slot.
void GriffinModel::RecurrentBlock(int layer, const TensorView& normed, const StackBatch& batch,
                                  const TensorView& out) const {
  const RecurrentWeights& w = weights_.layers[layer].recurrent;
  const StackWorkspace::Recurrent& act = batch.ws->recurrent;
  const int64_t num_tokens = normed.shape.rows();
  const int64_t lru = config_.lru_width;
  const TensorView y = Fit(act.y, num_tokens, lru);
  const TensorView u = Fit(act.u, num_tokens, lru);
  const TensorView conv = Fit(act.conv, num_tokens, lru);
  const TensorView gate_x = Fit(act.gate_x, num_tokens, lru);
  const TensorView gate_a = Fit(act.gate_a, num_tokens, lru);

  ops::MatMul(ctx_, normed, w.linear_y.view(), w.linear_y_bias.view(), y);
  ops::Gelu(ctx_, y);
  ops::MatMul(ctx_, normed, w.linear_x.view(), w.linear_x_bias.view(), u);
  for (size_t c = 0; c < batch.chunks.size(); ++c) {
    const int64_t n = static_cast<int64_t>(batch.chunks[c].tokens.size());
    ops::CausalConv1D(ctx_, RowRange(u, batch.chunk_rows[c], n), w.conv_weight.view(), w.conv_bias.view(),
                      batch.pool->conv_state(layer, batch.chunks[c].recurrent_slot),
                      RowRange(conv, batch.chunk_rows[c], n));
  }
  // ref: RecurrentGemmaRglru: gates are per-head x_h @ W_h + b_h (W stored [in, out]).
  ops::BlockDiagonalMatMul(ctx_, conv, w.input_gate_weight.view(), w.input_gate_bias.view(), gate_x);
  ops::BlockDiagonalMatMul(ctx_, conv, w.recurrent_gate_weight.view(), w.recurrent_gate_bias.view(), gate_a);
  for (size_t c = 0; c < batch.chunks.size(); ++c) {
    const SequenceChunk& chunk = batch.chunks[c];
    const int64_t row = batch.chunk_rows[c];
    const int64_t n = static_cast<int64_t>(chunk.tokens.size());
    const TensorView rows = RowRange(conv, row, n);
    ops::RgLru(ctx_, rows, RowRange(gate_x, row, n), RowRange(gate_a, row, n), w.recurrent_param.view(),
               chunk.first_index, batch.pool->lru_state(layer, chunk.recurrent_slot), rows);
  }
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
