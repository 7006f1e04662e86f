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

// A zero-filled f32 [rows, cols] buffer on the backend's device (nothing when
// rows or cols is 0); ok stays false once an allocation failed, so a workspace
// can make all its buffers and check once.
void MakeActivation(Backend& backend, Tensor& t, int64_t rows, int64_t cols, bool& ok);
// A [rows, cols] f32 view of a buffer already large enough (a workspace's).
TensorView Fit(const Tensor& t, int64_t rows, int64_t cols);

struct AttentionScratch {
  Tensor q;    // [num_tokens, num_heads * head_dim]
  Tensor k;    // [num_tokens, num_kv_heads * head_dim]
  Tensor v;    // [num_tokens, num_kv_heads * head_dim]
  Tensor out;  // [num_tokens, num_heads * head_dim]
};

// Where a batch's rows go in one KV group: row t's keys to slots[t], and each
// sequence's queries against its own blocks.
struct KvBatch {
  KvCacheView cache;
  std::span<const int64_t> slots;
  std::span<const AttentionSequence> sequences;
};

// Self-attention of `normed` [num_tokens, model_dim] (rows of many sequences);
// writes the o_proj output to `out` [num_tokens, model_dim]. The new keys and
// values are stored in the cache before the queries attend.
void AttentionBlock(const ops::OpContext& ctx, const ModelConfig& config, const LayerConfig& layer,
                    const AttentionWeights& w, const TensorView& normed, std::span<const float> positions,
                    const KvBatch& kv, const AttentionScratch& scratch, const TensorView& out);

struct MlpScratch {
  Tensor gate;  // [num_tokens, ff_hidden_dim]
  Tensor up;    // [num_tokens, ff_hidden_dim]
};

// out = down(gelu_tanh(gate(x)) * up(x)) (+ biases where the weights have them).
void GatedMlp(const ops::OpContext& ctx, const MlpWeights& w, const TensorView& x, const MlpScratch& scratch,
              const TensorView& out);

// logits [rows, vocab] = final_norm(x [rows, model_dim]) @ embedding^T, soft-capped if configured.
void LmHead(const ops::OpContext& ctx, const ModelConfig& config, const ModelWeights& weights,
            const TensorView& x, const Tensor& normed_buffer, const TensorView& logits);

}  // namespace gemmarun
