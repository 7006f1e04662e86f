#include "model/gguf_model.h"

#include <cmath>
#include <cstdint>
#include <regex>

namespace gemmarun {
namespace {

// HF name (after "model.layers.N.") → GGUF name (after "blk.N.").
// ref: llama.cpp gguf-py/gguf/tensor_mapping.py and constants.py (MODEL_TENSORS).
struct NamePair {
  const char* hf;
  const char* gguf;
};
constexpr NamePair kLayerNames[] = {
    {"input_layernorm.weight", "attn_norm.weight"},
    {"self_attn.q_proj.weight", "attn_q.weight"},
    {"self_attn.k_proj.weight", "attn_k.weight"},
    {"self_attn.v_proj.weight", "attn_v.weight"},
    {"self_attn.o_proj.weight", "attn_output.weight"},
    {"self_attn.q_norm.weight", "attn_q_norm.weight"},
    {"self_attn.k_norm.weight", "attn_k_norm.weight"},
    {"pre_feedforward_layernorm.weight", "ffn_norm.weight"},
    {"post_feedforward_layernorm.weight", "post_ffw_norm.weight"},
    {"mlp.gate_proj.weight", "ffn_gate.weight"},
    {"mlp.up_proj.weight", "ffn_up.weight"},
    {"mlp.down_proj.weight", "ffn_down.weight"},
};

// Not stored in GGUF: llama.cpp hard-codes these per architecture
// (ref: llama.cpp src/llama-model.cpp load_hparams for LLM_ARCH_GEMMA2/GEMMA3).
constexpr int kGemma2DefaultWindow = 4096;
constexpr int kGemma3SlidingPattern = 6;
constexpr float kGemma3LocalRopeTheta = 10000.0f;

// The 27B models scale queries by hidden/heads instead of head_dim; GGUF keeps no
// query_pre_attn_scalar, so these two shapes are matched against the presets.
float QueryPreAttnScalar(ModelFamily family, const ModelConfig& c) {
  const bool gemma2_27b = family == ModelFamily::kGemma2 && c.model_dim == 4608 && c.num_heads == 32;
  const bool gemma3_27b = family == ModelFamily::kGemma3 && c.model_dim == 5376 && c.num_heads == 32;
  if (gemma2_27b || gemma3_27b) return static_cast<float>(c.model_dim / c.num_heads);
  return static_cast<float>(c.head_dim);
}

Status ReadInt(const GgufFile& f, const std::string& key, int* out, bool required) {
  if (!f.Has(key)) return required ? NotFound(f.path() + ": metadata key '" + key + "' is missing") : Status::Ok();
  GR_ASSIGN_OR_RETURN(int64_t value, f.GetInt(key));
  if (value <= 0 || value > (int64_t{1} << 30)) {
    return Corrupt(f.path() + ": metadata '" + key + "' = " + std::to_string(value) + " is out of range");
  }
  *out = static_cast<int>(value);
  return Status::Ok();
}

Status ReadFloat(const GgufFile& f, const std::string& key, float* out) {
  if (!f.Has(key)) return Status::Ok();
  GR_ASSIGN_OR_RETURN(double value, f.GetFloat(key));
  // A double beyond float's range would become inf (1e300 eps: every norm divides by inf).
  if (!std::isfinite(value) || std::fabs(value) > 3.0e38) {
    return Corrupt(f.path() + ": metadata '" + key + "' = " + std::to_string(value) + " is not a finite float");
  }
  *out = static_cast<float>(value);
  return Status::Ok();
}

// Token ids are read whole and range-checked here, so 2^40 + 2 is an error rather
// than id 2; ModelConfig::Validate then checks them against the vocabulary.
Status ReadTokenId(const GgufFile& f, const std::string& key, int* out) {
  if (!f.Has(key)) return Status::Ok();
  GR_ASSIGN_OR_RETURN(int64_t value, f.GetInt(key));
  if (value < 0 || value > INT32_MAX) {
    return Corrupt(f.path() + ": metadata '" + key + "' = " + std::to_string(value) + " is not a token id");
  }
  *out = static_cast<int>(value);
  return Status::Ok();
}

}  // namespace

Result<ModelConfig> ConfigFromGguf(const GgufFile& f) {
  GR_ASSIGN_OR_RETURN(std::string arch, f.GetString("general.architecture"));
  ModelConfig c;
  // A gemma3 GGUF holds the text decoder only (llama.cpp writes the vision tower
  // to a separate mmproj file): HF calls that model gemma3_text.
  c.model_type = arch == "gemma3" ? "gemma3_text" : arch;
  if (arch == "gemma") c.family = ModelFamily::kGemma;
  else if (arch == "gemma2") c.family = ModelFamily::kGemma2;
  else if (arch == "gemma3") c.family = ModelFamily::kGemma3;
  else return Unsupported(f.path() + ": GGUF architecture '" + arch + "' is not supported (gemma, gemma2, gemma3 are)");

  int num_layers = 0;
  GR_RETURN_IF_ERROR(ReadInt(f, arch + ".block_count", &num_layers, true));
  GR_RETURN_IF_ERROR(ReadInt(f, arch + ".embedding_length", &c.model_dim, true));
  GR_RETURN_IF_ERROR(ReadInt(f, arch + ".feed_forward_length", &c.ff_hidden_dim, true));
  GR_RETURN_IF_ERROR(ReadInt(f, arch + ".attention.head_count", &c.num_heads, true));
  c.num_kv_heads = c.num_heads;
  GR_RETURN_IF_ERROR(ReadInt(f, arch + ".attention.head_count_kv", &c.num_kv_heads, false));
  c.head_dim = c.model_dim / c.num_heads;
  GR_RETURN_IF_ERROR(ReadInt(f, arch + ".attention.key_length", &c.head_dim, false));
  c.rotary_dim = c.head_dim;
  c.max_seq_len = 8192;
  GR_RETURN_IF_ERROR(ReadInt(f, arch + ".context_length", &c.max_seq_len, false));
  GR_RETURN_IF_ERROR(ReadFloat(f, arch + ".attention.layer_norm_rms_epsilon", &c.rms_norm_eps));
  if (num_layers > 4096) return Corrupt(f.path() + ": block_count " + std::to_string(num_layers) + " is absurd");

  const TensorSource* embedding = f.Find("token_embd.weight");
  if (embedding == nullptr) return NotFound(f.path() + ": tensor 'token_embd.weight' is missing");
  if (embedding->shape.rank() != 2) return Corrupt(f.path() + ": token_embd.weight must be 2-D");
  if (embedding->shape[0] > INT32_MAX) {
    return Corrupt(f.path() + ": token_embd.weight has " + std::to_string(embedding->shape[0]) + " rows");
  }
  c.vocab_size = static_cast<int>(embedding->shape[0]);
  c.weight_dtype = embedding->dtype;
  GR_RETURN_IF_ERROR(ReadTokenId(f, "tokenizer.ggml.bos_token_id", &c.bos_id));
  int eos = c.eos_ids.front();
  GR_RETURN_IF_ERROR(ReadTokenId(f, "tokenizer.ggml.eos_token_id", &eos));
  c.eos_ids = {eos};

  float rope_theta = 10000.0f;
  GR_RETURN_IF_ERROR(ReadFloat(f, arch + ".rope.freq_base", &rope_theta));
  float rope_factor = 1.0f;
  if (f.Has(arch + ".rope.scaling.type")) {
    GR_ASSIGN_OR_RETURN(std::string type, f.GetString(arch + ".rope.scaling.type"));
    if (type == "linear") GR_RETURN_IF_ERROR(ReadFloat(f, arch + ".rope.scaling.factor", &rope_factor));
    else if (type != "none") return Unsupported(f.path() + ": rope scaling '" + type + "' is not supported");
  }
  float attn_softcap = 0.0f;
  int window = c.family == ModelFamily::kGemma2 ? kGemma2DefaultWindow : 0;
  if (c.family != ModelFamily::kGemma) {
    GR_RETURN_IF_ERROR(ReadFloat(f, arch + ".attn_logit_softcapping", &attn_softcap));
    GR_RETURN_IF_ERROR(ReadFloat(f, arch + ".final_logit_softcapping", &c.final_softcap));
    GR_RETURN_IF_ERROR(ReadInt(f, arch + ".attention.sliding_window", &window, c.family == ModelFamily::kGemma3));
  }
  c.query_scale = 1.0f / std::sqrt(QueryPreAttnScalar(c.family, c));

  c.layers.assign(num_layers, LayerConfig{});
  for (int i = 0; i < num_layers; ++i) {
    LayerConfig& layer = c.layers[i];
    bool sliding = false;
    if (c.family == ModelFamily::kGemma2) sliding = i % 2 == 0;
    if (c.family == ModelFamily::kGemma3) sliding = (i + 1) % kGemma3SlidingPattern != 0;
    layer.attention_window = sliding ? window : 0;
    layer.rope_theta = sliding && c.family == ModelFamily::kGemma3 ? kGemma3LocalRopeTheta : rope_theta;
    layer.rope_position_scale = sliding ? 1.0f : rope_factor;
    layer.qk_norm = c.family == ModelFamily::kGemma3;
    layer.post_norms = c.family != ModelFamily::kGemma;
    layer.attn_softcap = attn_softcap;
  }
  GR_RETURN_IF_ERROR(c.Validate().WithContext(f.path()));
  return c;
}

std::string GgufTensorName(const ModelConfig& config, const std::string& hf_name) {
  if (hf_name == "model.embed_tokens.weight") return "token_embd.weight";
  if (hf_name == "model.norm.weight") return "output_norm.weight";
  static const std::regex kLayer(R"(model\.layers\.(\d+)\.(.+))");
  std::smatch match;
  if (!std::regex_match(hf_name, match, kLayer)) return "";
  const std::string block = "blk." + match[1].str() + ".";
  const std::string rest = match[2].str();
  if (rest == "post_attention_layernorm.weight") {
    // Gemma 1's post_attention_layernorm is its pre-FFW norm.
    return block + (config.family == ModelFamily::kGemma ? "ffn_norm.weight" : "post_attention_norm.weight");
  }
  for (const NamePair& pair : kLayerNames) {
    if (rest == pair.hf) return block + pair.gguf;
  }
  return "";
}

}  // namespace gemmarun
