#include "model/weights.h"

namespace gemmarun {
namespace {

using Visit = std::function<void(const WeightSpec&)>;

void Matrix(const Visit& visit, Tensor& t, std::string name, int64_t out, int64_t in) {
  visit(WeightSpec{&t, std::move(name), Shape{out, in}, Shape{}, WeightKind::kMatrix, true});
}
void Norm(const Visit& visit, Tensor& t, std::string name, int64_t dim) {
  visit(WeightSpec{&t, std::move(name), Shape{dim}, Shape{}, WeightKind::kNorm, true});
}
void Vector(const Visit& visit, Tensor& t, std::string name, Shape shape) {
  visit(WeightSpec{&t, std::move(name), shape, Shape{}, WeightKind::kVector, true});
}

void GemmaLayer(const ModelConfig& c, const LayerConfig& lc, LayerWeights& w, const std::string& p,
                const Visit& visit) {
  const int64_t q_dim = int64_t{c.num_heads} * c.head_dim;
  const int64_t kv_dim = int64_t{c.num_kv_heads} * c.head_dim;
  Norm(visit, w.pre_attn_norm, p + "input_layernorm.weight", c.model_dim);
  Matrix(visit, w.attn.q_proj, p + "self_attn.q_proj.weight", q_dim, c.model_dim);
  Matrix(visit, w.attn.k_proj, p + "self_attn.k_proj.weight", kv_dim, c.model_dim);
  Matrix(visit, w.attn.v_proj, p + "self_attn.v_proj.weight", kv_dim, c.model_dim);
  Matrix(visit, w.attn.o_proj, p + "self_attn.o_proj.weight", c.model_dim, q_dim);
  if (lc.qk_norm) {
    Norm(visit, w.attn.q_norm, p + "self_attn.q_norm.weight", c.head_dim);
    Norm(visit, w.attn.k_norm, p + "self_attn.k_norm.weight", c.head_dim);
  }
  if (lc.post_norms) {
    Norm(visit, w.post_attn_norm, p + "post_attention_layernorm.weight", c.model_dim);
    Norm(visit, w.pre_ffw_norm, p + "pre_feedforward_layernorm.weight", c.model_dim);
    Norm(visit, w.post_ffw_norm, p + "post_feedforward_layernorm.weight", c.model_dim);
  } else {
    // Gemma 1 names its pre-FFW norm "post_attention_layernorm".
    Norm(visit, w.pre_ffw_norm, p + "post_attention_layernorm.weight", c.model_dim);
  }
  Matrix(visit, w.mlp.gate_proj, p + "mlp.gate_proj.weight", c.ff_hidden_dim, c.model_dim);
  Matrix(visit, w.mlp.up_proj, p + "mlp.up_proj.weight", c.ff_hidden_dim, c.model_dim);
  Matrix(visit, w.mlp.down_proj, p + "mlp.down_proj.weight", c.model_dim, c.ff_hidden_dim);
}

void GriffinLayer(const ModelConfig& c, const LayerConfig& lc, LayerWeights& w, const std::string& p,
                  const Visit& visit) {
  const std::string t = p + "temporal_block.";
  Norm(visit, w.pre_attn_norm, p + "temporal_pre_norm.weight", c.model_dim);
  if (lc.kind == BlockKind::kAttention) {
    const int64_t q_dim = int64_t{c.num_heads} * c.head_dim;
    const int64_t kv_dim = int64_t{c.num_kv_heads} * c.head_dim;
    Matrix(visit, w.attn.q_proj, t + "q_proj.weight", q_dim, c.model_dim);
    Matrix(visit, w.attn.k_proj, t + "k_proj.weight", kv_dim, c.model_dim);
    Matrix(visit, w.attn.v_proj, t + "v_proj.weight", kv_dim, c.model_dim);
    Matrix(visit, w.attn.o_proj, t + "o_proj.weight", c.model_dim, q_dim);
    Vector(visit, w.attn.o_proj_bias, t + "o_proj.bias", Shape{c.model_dim});
  } else {
    RecurrentWeights& r = w.recurrent;
    const int64_t lru = c.lru_width;
    const int64_t block = lru / c.num_heads;
    Matrix(visit, r.linear_y, t + "linear_y.weight", lru, c.model_dim);
    Vector(visit, r.linear_y_bias, t + "linear_y.bias", Shape{lru});
    Matrix(visit, r.linear_x, t + "linear_x.weight", lru, c.model_dim);
    Vector(visit, r.linear_x_bias, t + "linear_x.bias", Shape{lru});
    Matrix(visit, r.linear_out, t + "linear_out.weight", c.model_dim, lru);
    Vector(visit, r.linear_out_bias, t + "linear_out.bias", Shape{c.model_dim});
    visit(WeightSpec{&r.conv_weight, t + "conv_1d.weight", Shape{lru, 1, c.conv1d_width},
                     Shape{lru, c.conv1d_width}, WeightKind::kVector, true});
    Vector(visit, r.conv_bias, t + "conv_1d.bias", Shape{lru});
    Vector(visit, r.recurrent_param, t + "rg_lru.recurrent_param", Shape{lru});
    Vector(visit, r.input_gate_weight, t + "rg_lru.input_gate_weight", Shape{c.num_heads, block, block});
    Vector(visit, r.input_gate_bias, t + "rg_lru.input_gate_bias", Shape{c.num_heads, block});
    Vector(visit, r.recurrent_gate_weight, t + "rg_lru.recurrent_gate_weight", Shape{c.num_heads, block, block});
    Vector(visit, r.recurrent_gate_bias, t + "rg_lru.recurrent_gate_bias", Shape{c.num_heads, block});
  }
  Norm(visit, w.pre_ffw_norm, p + "channel_pre_norm.weight", c.model_dim);
  Matrix(visit, w.mlp.gate_proj, p + "mlp_block.gate_proj.weight", c.ff_hidden_dim, c.model_dim);
  Vector(visit, w.mlp.gate_bias, p + "mlp_block.gate_proj.bias", Shape{c.ff_hidden_dim});
  Matrix(visit, w.mlp.up_proj, p + "mlp_block.up_proj.weight", c.ff_hidden_dim, c.model_dim);
  Vector(visit, w.mlp.up_bias, p + "mlp_block.up_proj.bias", Shape{c.ff_hidden_dim});
  Matrix(visit, w.mlp.down_proj, p + "mlp_block.down_proj.weight", c.model_dim, c.ff_hidden_dim);
  Vector(visit, w.mlp.down_bias, p + "mlp_block.down_proj.bias", Shape{c.model_dim});
}

void Vision(const ModelConfig& c, VisionWeights& w, const Visit& visit) {
  const VisionConfig& v = c.vision;
  const std::string p = "vision_tower.vision_model.";
  const int64_t d = v.model_dim;
  visit(WeightSpec{&w.patch_embedding, p + "embeddings.patch_embedding.weight",
                   Shape{d, v.num_channels, v.patch_size, v.patch_size},
                   Shape{d, int64_t{v.num_channels} * v.patch_size * v.patch_size}, WeightKind::kMatrix, true});
  Vector(visit, w.patch_bias, p + "embeddings.patch_embedding.bias", Shape{d});
  Vector(visit, w.position_embedding, p + "embeddings.position_embedding.weight", Shape{v.num_patches(), d});
  for (int i = 0; i < v.num_layers; ++i) {
    VisionLayerWeights& l = w.layers[i];
    const std::string lp = p + "encoder.layers." + std::to_string(i) + ".";
    Vector(visit, l.norm1_weight, lp + "layer_norm1.weight", Shape{d});
    Vector(visit, l.norm1_bias, lp + "layer_norm1.bias", Shape{d});
    Matrix(visit, l.q_proj, lp + "self_attn.q_proj.weight", d, d);
    Vector(visit, l.q_bias, lp + "self_attn.q_proj.bias", Shape{d});
    Matrix(visit, l.k_proj, lp + "self_attn.k_proj.weight", d, d);
    Vector(visit, l.k_bias, lp + "self_attn.k_proj.bias", Shape{d});
    Matrix(visit, l.v_proj, lp + "self_attn.v_proj.weight", d, d);
    Vector(visit, l.v_bias, lp + "self_attn.v_proj.bias", Shape{d});
    Matrix(visit, l.o_proj, lp + "self_attn.out_proj.weight", d, d);
    Vector(visit, l.o_bias, lp + "self_attn.out_proj.bias", Shape{d});
    Vector(visit, l.norm2_weight, lp + "layer_norm2.weight", Shape{d});
    Vector(visit, l.norm2_bias, lp + "layer_norm2.bias", Shape{d});
    Matrix(visit, l.fc1, lp + "mlp.fc1.weight", v.ff_hidden_dim, d);
    Vector(visit, l.fc1_bias, lp + "mlp.fc1.bias", Shape{v.ff_hidden_dim});
    Matrix(visit, l.fc2, lp + "mlp.fc2.weight", d, v.ff_hidden_dim);
    Vector(visit, l.fc2_bias, lp + "mlp.fc2.bias", Shape{d});
  }
  Vector(visit, w.post_norm_weight, p + "post_layernorm.weight", Shape{d});
  Vector(visit, w.post_norm_bias, p + "post_layernorm.bias", Shape{d});
  Matrix(visit, w.projector, "multi_modal_projector.linear.weight", c.model_dim, d);
  Vector(visit, w.projector_bias, "multi_modal_projector.linear.bias", Shape{c.model_dim});
}

}  // namespace

void ResizeWeights(const ModelConfig& config, ModelWeights& weights) {
  weights.layers.resize(config.layers.size());
  if (config.family == ModelFamily::kPaliGemma) weights.vision.layers.resize(config.vision.num_layers);
}

void ForEachWeight(const ModelConfig& c, ModelWeights& w, const Visit& visit) {
  // PaliGemma's text model is a Gemma decoder under "language_model.".
  const std::string root = c.family == ModelFamily::kPaliGemma ? "language_model.model." : "model.";
  if (c.family == ModelFamily::kPaliGemma) Vision(c, w.vision, visit);
  Matrix(visit, w.embedding, root + "embed_tokens.weight", c.vocab_size, c.model_dim);
  for (int i = 0; i < c.num_layers(); ++i) {
    const std::string prefix = root + "layers." + std::to_string(i) + ".";
    if (c.family == ModelFamily::kRecurrentGemma) {
      GriffinLayer(c, c.layers[i], w.layers[i], prefix, visit);
    } else {
      GemmaLayer(c, c.layers[i], w.layers[i], prefix, visit);
    }
  }
  Norm(visit, w.final_norm, root + (c.family == ModelFamily::kRecurrentGemma ? "final_norm.weight" : "norm.weight"),
       c.model_dim);
}

void ForEachWeight(const ModelConfig& c, const ModelWeights& w, const Visit& visit) {
  ForEachWeight(c, const_cast<ModelWeights&>(w), visit);  // one walk; WeightSpec carries a mutable pointer
}

}  // namespace gemmarun
