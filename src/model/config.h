// ModelConfig with one LayerConfig per layer: every difference between Gemma 1,
// 2, 3, RecurrentGemma and PaliGemma's text model is a field here, read from the
// checkpoint's config (config.json or GGUF metadata), never guessed from layer
// counts or from which tensors exist.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "gemmarun/status.h"
#include "tensor/dtype.h"

namespace gemmarun {

enum class ModelFamily { kGemma, kGemma2, kGemma3, kRecurrentGemma, kPaliGemma };
const char* FamilyName(ModelFamily family);

enum class BlockKind { kAttention, kRecurrent };

struct LayerConfig {
  BlockKind kind = BlockKind::kAttention;
  // Keys a query sees, itself included; 0 means every earlier key (a global layer).
  // Gemma 2/3 sliding layers: sliding_window. RecurrentGemma: attention_window_size + 1
  // (Google's Griffin code lets a query see q-W .. q).
  int attention_window = 0;
  float rope_theta = 10000.0f;
  float rope_position_scale = 1.0f;  // linear RoPE scaling divides positions by this
  bool qk_norm = false;              // Gemma 3: RMSNorm on q and k per head, before RoPE
  bool post_norms = false;           // Gemma 2/3: RMSNorm on the attention and MLP outputs
  float attn_softcap = 0.0f;         // Gemma 2: cap * tanh(score / cap); 0 = off
};

struct VisionConfig {  // SigLIP tower of PaliGemma
  int model_dim = 0;
  int ff_hidden_dim = 0;
  int num_layers = 0;
  int num_heads = 0;
  int image_size = 0;
  int patch_size = 0;
  int num_channels = 3;
  float layer_norm_eps = 1e-6f;
  // 64-bit: a file's image_size / patch_size squared overflows an int before Validate sees it.
  int64_t num_patches() const {
    if (patch_size <= 0 || image_size <= 0) return 0;
    const int64_t side = image_size / patch_size;
    return side * side;
  }
};

struct ModelConfig {
  ModelFamily family = ModelFamily::kGemma;
  std::string model_type;  // as written in config.json
  int vocab_size = 0;
  int model_dim = 0;
  int ff_hidden_dim = 0;  // the real MLP width (RecurrentGemma's config stores twice this)
  int num_heads = 0;
  int num_kv_heads = 0;
  int head_dim = 0;
  int rotary_dim = 0;  // dims of each head that RoPE rotates (RecurrentGemma: half)
  int max_seq_len = 0;
  float rms_norm_eps = 1e-6f;
  float query_scale = 1.0f;    // multiplies q·k: 1/sqrt(query_pre_attn_scalar or head_dim)
  float final_softcap = 0.0f;  // cap on the logits; 0 = off
  // sqrt(model_dim) rounded as the reference does (to the embedding dtype for Gemma,
  // always to bf16 for RecurrentGemma).
  float embed_scale = 1.0f;
  bool mlp_bias = false;  // RecurrentGemma's MLP has biases
  DType weight_dtype = DType::kF32;  // "torch_dtype"/"dtype" of the checkpoint, for inspect

  int bos_id = 2;
  int pad_id = 0;
  std::vector<int> eos_ids = {1};

  // RecurrentGemma
  int lru_width = 0;
  int conv1d_width = 0;

  // PaliGemma
  VisionConfig vision;
  int image_token_id = -1;
  int num_image_tokens = 0;
  int position_offset = 0;  // PaliGemma's RoPE positions start at 1

  std::vector<LayerConfig> layers;

  int num_layers() const { return static_cast<int>(layers.size()); }
  Status Validate() const;
};

// Parses a HF config.json (classic hub fields or the transformers-5 form).
Result<ModelConfig> ParseHfConfig(const std::string& json_text, const std::string& where);
Result<ModelConfig> LoadHfConfig(const std::string& path);  // a config.json or a folder holding one

// "gemma, gemma2, gemma3, gemma3_text, recurrent_gemma, paligemma"
std::string SupportedModelTypes();

}  // namespace gemmarun
