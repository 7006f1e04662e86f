// Building blocks shared by the model families: the attention block (Gemma 1/2/3,
// Griffin's local attention, PaliGemma's decoder), the gated MLP, embeddings and
// the LM head. Each is a few op calls that read like the paper.
#pragma once

#include <span>

#include "model/config.h"
#include "model/kv_cache.h"
#include "model/weights.h"
#include "ops/ops.h"

namespace gemmarun {

// A [rows, cols] f32 view of t, growing t first if it is too small (never in the
// steady decode loop, whose sizes were all seen at the first step).
TensorView Rows(Tensor& t, int64_t rows, int64_t cols);

struct AttentionScratch {
  Tensor q;    // [num_tokens, num_heads * head_dim]
  Tensor k;    // [num_tokens, num_kv_heads * head_dim]
  Tensor v;    // [num_tokens, num_kv_heads * head_dim]
  Tensor out;  // [num_tokens, num_heads * head_dim]
};

// Self-attention of `normed` [num_tokens, model_dim] whose first row is sequence
// index first_index; writes the o_proj output to `out` [num_tokens, model_dim].
// The new keys and values are stored in `cache` before the queries attend.
void AttentionBlock(const ops::OpContext& ctx, const ModelConfig& config, const LayerConfig& layer,
                    const AttentionWeights& w, const TensorView& normed, std::span<const float> positions,
                    int64_t first_index, int64_t prefix_end, LayerKvCache& cache, AttentionScratch& scratch,
                    const TensorView& out);

struct MlpScratch {
  Tensor gate;  // [num_tokens, ff_hidden_dim]
  Tensor up;    // [num_tokens, ff_hidden_dim]
};

// out = down(gelu_tanh(gate(x)) * up(x)) (+ biases where the weights have them).
void GatedMlp(const ops::OpContext& ctx, const MlpWeights& w, const TensorView& x, MlpScratch& scratch,
              const TensorView& out);

// logits [rows, vocab] = final_norm(x [rows, model_dim]) @ embedding^T, soft-capped if configured.
void LmHead(const ops::OpContext& ctx, const ModelConfig& config, const ModelWeights& weights,
            const TensorView& x, Tensor& normed_buffer, const TensorView& logits);

}  // namespace gemmarun
