#include "model/blocks.h"

#include <algorithm>
#include <vector>

namespace gemmarun {

TensorView Rows(Tensor& t, int64_t rows, int64_t cols) {
  if (t.empty() || t.shape().elements() < rows * cols) t = Tensor(DType::kF32, Shape{rows, cols});
  return TensorView{t.data(), DType::kF32, Shape{rows, cols}};
}

void AttentionBlock(const ops::OpContext& ctx, const ModelConfig& c, const LayerConfig& layer,
                    const AttentionWeights& w, const TensorView& normed, std::span<const float> positions,
                    int64_t first_index, int64_t prefix_end, LayerKvCache& cache, AttentionScratch& s,
                    const TensorView& out) {
  const int64_t num_tokens = normed.shape.rows();
  const int64_t q_dim = int64_t{c.num_heads} * c.head_dim;
  const int64_t kv_dim = int64_t{c.num_kv_heads} * c.head_dim;
  const TensorView q = Rows(s.q, num_tokens, q_dim);
  const TensorView k = Rows(s.k, num_tokens, kv_dim);
  const TensorView v = Rows(s.v, num_tokens, kv_dim);
  ops::MatMul(ctx, normed, w.q_proj.view(), q);
  ops::MatMul(ctx, normed, w.k_proj.view(), k);
  ops::MatMul(ctx, normed, w.v_proj.view(), v);
  const TensorView q_heads{q.data, DType::kF32, Shape{num_tokens, c.num_heads, c.head_dim}};
  const TensorView k_heads{k.data, DType::kF32, Shape{num_tokens, c.num_kv_heads, c.head_dim}};
  if (layer.qk_norm) {  // Gemma 3: per-head RMSNorm before RoPE
    const TensorView q_rows{q.data, DType::kF32, Shape{num_tokens * c.num_heads, c.head_dim}};
    const TensorView k_rows{k.data, DType::kF32, Shape{num_tokens * c.num_kv_heads, c.head_dim}};
    ops::RmsNorm(ctx, q_rows, w.q_norm.view(), c.rms_norm_eps, q_rows);
    ops::RmsNorm(ctx, k_rows, w.k_norm.view(), c.rms_norm_eps, k_rows);
  }
  ops::Rope(ctx, q_heads, positions, c.rotary_dim, layer.rope_theta, layer.rope_position_scale);
  ops::Rope(ctx, k_heads, positions, c.rotary_dim, layer.rope_theta, layer.rope_position_scale);
  // TEMPORARY shim until the lead's paged cache lands: the ring of `capacity`
  // slots is one physical block that every logical block maps to.
  const Shape cache_shape{cache.capacity, c.num_kv_heads, c.head_dim};
  const KvCacheView view{TensorView{cache.k.data(), DType::kF32, cache_shape},
                         TensorView{cache.v.data(), DType::kF32, cache_shape}, cache.capacity};
  std::vector<int64_t> slots(num_tokens);
  for (int64_t t = 0; t < num_tokens; ++t) slots[t] = (first_index + t) % cache.capacity;
  ops::WriteKv(ctx, k, v, slots, view);
  const int64_t last_index = std::max(first_index + num_tokens - 1, prefix_end - 1);
  const std::vector<int32_t> table(last_index / cache.capacity + 1, 0);
  AttentionSequence sequence;
  sequence.num_rows = num_tokens;
  sequence.first_index = first_index;
  sequence.prefix_end = prefix_end;
  sequence.block_table = table;
  const TensorView attn_out = Rows(s.out, num_tokens, q_dim);
  AttentionArgs args;
  args.q = q_heads;
  args.out = TensorView{attn_out.data, DType::kF32, q_heads.shape};
  args.cache = view;
  args.sequences = std::span<const AttentionSequence>(&sequence, 1);
  args.window = layer.attention_window;
  args.scale = c.query_scale;
  args.softcap = layer.attn_softcap;
  ops::Attention(ctx, args);
  ops::MatMul(ctx, attn_out, w.o_proj.view(), w.o_proj_bias.view(), out);
}

void GatedMlp(const ops::OpContext& ctx, const MlpWeights& w, const TensorView& x, MlpScratch& s,
              const TensorView& out) {
  const int64_t num_tokens = x.shape.rows();
  const int64_t hidden = w.gate_proj.shape()[0];
  const TensorView gate = Rows(s.gate, num_tokens, hidden);
  const TensorView up = Rows(s.up, num_tokens, hidden);
  ops::MatMul(ctx, x, w.gate_proj.view(), w.gate_bias.view(), gate);
  ops::MatMul(ctx, x, w.up_proj.view(), w.up_bias.view(), up);
  ops::GeluMul(ctx, gate, up, gate);
  ops::MatMul(ctx, gate, w.down_proj.view(), w.down_bias.view(), out);
}

void LmHead(const ops::OpContext& ctx, const ModelConfig& c, const ModelWeights& weights, const TensorView& x,
            Tensor& normed_buffer, const TensorView& logits) {
  const TensorView normed = Rows(normed_buffer, x.shape.rows(), c.model_dim);
  ops::RmsNorm(ctx, x, weights.final_norm.view(), c.rms_norm_eps, normed);
  ops::MatMul(ctx, normed, weights.embedding.view(), logits);
  if (c.final_softcap > 0.0f) ops::SoftCap(ctx, logits, c.final_softcap);
}

}  // namespace gemmarun
