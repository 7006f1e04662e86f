// Weight structs of every family and the one list (ForEachWeight) that names each
// tensor with its checkpoint name, expected shape and how it is stored. Loading,
// shape checks, parameter counts and memory accounting all walk that list.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "model/config.h"
#include "tensor/tensor.h"

namespace gemmarun {

enum class WeightKind {
  kMatrix,  // [out, in] linear weight, kept in its stored dtype (f32/bf16/f16/quantized)
  kNorm,    // Gemma RMSNorm scale: f32 with (1 + w) folded in at load
  kVector,  // bias or other parameter: f32 as stored
};

struct WeightSpec {
  Tensor* tensor = nullptr;
  std::string name;  // HF checkpoint name
  Shape shape;       // shape in the checkpoint
  Shape compute_shape;  // shape we compute with (same bytes), when it differs
  WeightKind kind = WeightKind::kMatrix;
  bool required = true;
};

struct AttentionWeights {
  Tensor q_proj;       // [num_heads * head_dim, model_dim]
  Tensor k_proj;       // [num_kv_heads * head_dim, model_dim]
  Tensor v_proj;       // [num_kv_heads * head_dim, model_dim]
  Tensor o_proj;       // [model_dim, num_heads * head_dim]
  Tensor o_proj_bias;  // [model_dim] f32, RecurrentGemma only
  Tensor q_norm;       // [head_dim] f32, (1+w) folded, Gemma 3 only
  Tensor k_norm;       // [head_dim] f32, (1+w) folded, Gemma 3 only
};

struct MlpWeights {
  Tensor gate_proj;  // [ff_hidden_dim, model_dim]
  Tensor up_proj;    // [ff_hidden_dim, model_dim]
  Tensor down_proj;  // [model_dim, ff_hidden_dim]
  Tensor gate_bias;  // [ff_hidden_dim] f32, RecurrentGemma only
  Tensor up_bias;    // [ff_hidden_dim] f32
  Tensor down_bias;  // [model_dim] f32
};

// RecurrentGemma's temporal block (linear_y/linear_x branches, Conv1D, RG-LRU).
struct RecurrentWeights {
  Tensor linear_x, linear_x_bias;      // [lru_width, model_dim], [lru_width]
  Tensor linear_y, linear_y_bias;      // [lru_width, model_dim], [lru_width]
  Tensor linear_out, linear_out_bias;  // [model_dim, lru_width], [model_dim]
  Tensor conv_weight;                  // [lru_width, conv1d_width] f32 (file: [lru, 1, width])
  Tensor conv_bias;                    // [lru_width] f32
  Tensor recurrent_param;              // [lru_width] f32
  Tensor input_gate_weight;            // [num_heads, lru/num_heads, lru/num_heads] f32, [in, out] per head
  Tensor input_gate_bias;              // [num_heads, lru/num_heads] f32
  Tensor recurrent_gate_weight;        // [num_heads, lru/num_heads, lru/num_heads] f32
  Tensor recurrent_gate_bias;          // [num_heads, lru/num_heads] f32
};

struct LayerWeights {
  Tensor pre_attn_norm;   // [model_dim] f32 (1+w); RecurrentGemma: temporal_pre_norm
  Tensor post_attn_norm;  // [model_dim] Gemma 2/3
  Tensor pre_ffw_norm;    // [model_dim]; Gemma 1's "post_attention_layernorm", RG's channel_pre_norm
  Tensor post_ffw_norm;   // [model_dim] Gemma 2/3
  AttentionWeights attn;
  RecurrentWeights recurrent;
  MlpWeights mlp;
};

struct VisionLayerWeights {
  Tensor norm1_weight, norm1_bias;  // [vision_dim] LayerNorm
  Tensor q_proj, q_bias, k_proj, k_bias, v_proj, v_bias, o_proj, o_bias;  // [vision_dim, vision_dim]
  Tensor norm2_weight, norm2_bias;
  Tensor fc1, fc1_bias;  // [vision_ff, vision_dim]
  Tensor fc2, fc2_bias;  // [vision_dim, vision_ff]
};

struct VisionWeights {
  Tensor patch_embedding;       // [vision_dim, channels * patch * patch] (file: [D, C, P, P])
  Tensor patch_bias;            // [vision_dim]
  Tensor position_embedding;    // [num_patches, vision_dim] f32
  std::vector<VisionLayerWeights> layers;
  Tensor post_norm_weight, post_norm_bias;
  Tensor projector, projector_bias;  // [model_dim, vision_dim], [model_dim]
};

struct ModelWeights {
  Tensor embedding;   // [vocab_size, model_dim], stored dtype; also the tied LM head
  Tensor final_norm;  // [model_dim] f32 (1+w)
  std::vector<LayerWeights> layers;
  VisionWeights vision;  // PaliGemma only
};

// Calls `visit` for every tensor of `config`'s model in a fixed order. Names are
// the HF checkpoint names; ModelWeights must have been sized with ResizeWeights.
void ForEachWeight(const ModelConfig& config, ModelWeights& weights,
                   const std::function<void(const WeightSpec&)>& visit);
// The same walk for readers (sizes, dtypes): `visit` must not write through spec.tensor.
void ForEachWeight(const ModelConfig& config, const ModelWeights& weights,
                   const std::function<void(const WeightSpec&)>& visit);
void ResizeWeights(const ModelConfig& config, ModelWeights& weights);

}  // namespace gemmarun
