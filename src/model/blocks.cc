#include "model/blocks.h"

namespace gemmarun {

void MakeActivation(Backend& backend, Tensor& t, int64_t rows, int64_t cols, bool& ok) {
  if (!ok || rows <= 0 || cols <= 0) return;
  auto made = Tensor::Allocate(backend.memory(), DType::kF32, Shape{rows, cols});
  if (!made.ok()) {
    ok = false;
    return;
  }
  t = std::move(*made);
}

TensorView Fit(const Tensor& t, int64_t rows, int64_t cols) {
  GR_CHECK(t.shape().elements() >= rows * cols) << "workspace buffer " << t.shape().ToString() << " holds no ["
                                                << rows << ", " << cols << "]";
  return TensorView{const_cast<uint8_t*>(t.data()), DType::kF32, Shape{rows, cols}, t.device()};
}

void AttentionBlock(const ops::OpContext& ctx, const ModelConfig& c, const LayerConfig& layer,
                    const AttentionWeights& w, const TensorView& normed, std::span<const float> positions,
                    const KvBatch& kv, const AttentionScratch& s, const TensorView& out) {
  const int64_t num_tokens = normed.shape.rows();
  const int64_t q_dim = int64_t{c.num_heads} * c.head_dim;
  const int64_t kv_dim = int64_t{c.num_kv_heads} * c.head_dim;
  const TensorView q = Fit(s.q, num_tokens, q_dim);
  const TensorView k = Fit(s.k, num_tokens, kv_dim);
  const TensorView v = Fit(s.v, num_tokens, kv_dim);
  ops::MatMul(ctx, normed, w.q_proj.view(), q);
  ops::MatMul(ctx, normed, w.k_proj.view(), k);
  ops::MatMul(ctx, normed, w.v_proj.view(), v);
  const TensorView q_heads = q.Reshaped(Shape{num_tokens, c.num_heads, c.head_dim});
  const TensorView k_heads = k.Reshaped(Shape{num_tokens, c.num_kv_heads, c.head_dim});
  if (layer.qk_norm) {  // Gemma 3: per-head RMSNorm before RoPE
    const TensorView q_rows = q.Reshaped(Shape{num_tokens * c.num_heads, c.head_dim});
    const TensorView k_rows = k.Reshaped(Shape{num_tokens * c.num_kv_heads, c.head_dim});
    ops::RmsNorm(ctx, q_rows, w.q_norm.view(), c.rms_norm_eps, q_rows);
    ops::RmsNorm(ctx, k_rows, w.k_norm.view(), c.rms_norm_eps, k_rows);
  }
  ops::Rope(ctx, q_heads, positions, c.rotary_dim, layer.rope_theta, layer.rope_position_scale);
  ops::Rope(ctx, k_heads, positions, c.rotary_dim, layer.rope_theta, layer.rope_position_scale);
  ops::WriteKv(ctx, k, v, kv.slots, kv.cache);
  const TensorView attn_out = Fit(s.out, num_tokens, q_dim);
  AttentionArgs args;
  args.q = q_heads;
  args.out = attn_out.Reshaped(q_heads.shape);
  args.cache = kv.cache;
  args.sequences = kv.sequences;
  args.window = layer.attention_window;
  args.scale = c.query_scale;
  args.softcap = layer.attn_softcap;
  ops::Attention(ctx, args);
  ops::MatMul(ctx, attn_out, w.o_proj.view(), w.o_proj_bias.view(), out);
}

void GatedMlp(const ops::OpContext& ctx, const MlpWeights& w, const TensorView& x, const MlpScratch& s,
              const TensorView& out) {
  const int64_t num_tokens = x.shape.rows();
  const int64_t hidden = w.gate_proj.shape()[0];
  const TensorView gate = Fit(s.gate, num_tokens, hidden);
  const TensorView up = Fit(s.up, num_tokens, hidden);
  ops::MatMul(ctx, x, w.gate_proj.view(), w.gate_bias.view(), gate);
  ops::MatMul(ctx, x, w.up_proj.view(), w.up_bias.view(), up);
  ops::GeluMul(ctx, gate, up, gate);
  ops::MatMul(ctx, gate, w.down_proj.view(), w.down_bias.view(), out);
}

void LmHead(const ops::OpContext& ctx, const ModelConfig& c, const ModelWeights& weights, const TensorView& x,
            const Tensor& normed_buffer, const TensorView& logits) {
  const TensorView normed = Fit(normed_buffer, x.shape.rows(), c.model_dim);
  ops::RmsNorm(ctx, x, weights.final_norm.view(), c.rms_norm_eps, normed);
  ops::MatMul(ctx, normed, weights.embedding.view(), logits);
  if (c.final_softcap > 0.0f) ops::SoftCap(ctx, logits, c.final_softcap);
}

}  // namespace gemmarun
