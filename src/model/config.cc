#include "model/config.h"

#include <cmath>
#include <filesystem>
#include <sstream>

#include <nlohmann/json.hpp>

#include "io/json_util.h"
#include "io/mapped_file.h"

namespace gemmarun {
namespace {

using nlohmann::json;

// Large enough for a 4480-pixel image in 14-pixel patches; the product fits an int.
constexpr int64_t kMaxImagePatches = int64_t{1} << 20;

// Typed field access that reports the file and field on a type mismatch, so a
// hand-edited config gives an error instead of an exception.
class Fields {
 public:
  Fields(const json& object, std::string where) : object_(object), where_(std::move(where)) {}

  bool Has(const char* key) const { return object_.contains(key) && !object_[key].is_null(); }

  Status Int(const char* key, int* out, bool required) const {
    if (!Has(key)) return required ? Missing(key) : Status::Ok();
    if (!object_[key].is_number_integer()) return Mistyped(key, "an integer");
    const int64_t value = object_[key].get<int64_t>();
    if (value < INT32_MIN || value > INT32_MAX) return Mistyped(key, "a 32-bit integer");
    *out = static_cast<int>(value);
    return Status::Ok();
  }
  Status Float(const char* key, float* out, bool required) const {
    if (!Has(key)) return required ? Missing(key) : Status::Ok();
    if (!object_[key].is_number()) return Mistyped(key, "a number");
    const double value = object_[key].get<double>();
    // A double beyond float's range would become inf and pass every later check.
    if (!std::isfinite(value) || std::fabs(value) > 3.0e38) return Mistyped(key, "a finite 32-bit float");
    *out = static_cast<float>(value);
    return Status::Ok();
  }
  Status String(const char* key, std::string* out, bool required) const {
    if (!Has(key)) return required ? Missing(key) : Status::Ok();
    if (!object_[key].is_string()) return Mistyped(key, "a string");
    *out = object_[key].get<std::string>();
    return Status::Ok();
  }
  Status StringList(const char* key, std::vector<std::string>* out) const {
    if (!Has(key)) return Status::Ok();
    if (!object_[key].is_array()) return Mistyped(key, "a list of strings");
    out->clear();
    for (const auto& item : object_[key]) {
      if (!item.is_string()) return Mistyped(key, "a list of strings");
      out->push_back(item.get<std::string>());
    }
    return Status::Ok();
  }
  // A single id or a list of ids (eos_token_id is either on the hub).
  Status IdList(const char* key, std::vector<int>* out) const {
    if (!Has(key)) return Status::Ok();
    const json& value = object_[key];
    std::vector<int> ids;
    auto in_range = [](const json& item) {
      if (!item.is_number_integer()) return false;
      const int64_t id = item.get<int64_t>();
      return id >= INT32_MIN && id <= INT32_MAX;
    };
    if (in_range(value)) {
      ids.push_back(value.get<int>());
    } else if (value.is_array()) {
      for (const auto& item : value) {
        if (!in_range(item)) return Mistyped(key, "an id or a list of 32-bit ids");
        ids.push_back(item.get<int>());
      }
    } else {
      return Mistyped(key, "an id or a list of ids");
    }
    *out = std::move(ids);
    return Status::Ok();
  }
  const json& Object(const char* key) const { return object_[key]; }
  const std::string& where() const { return where_; }

 private:
  Status Missing(const char* key) const {
    return InvalidArgument(where_ + ": required field '" + key + "' is missing");
  }
  Status Mistyped(const char* key, const char* expected) const {
    return InvalidArgument(where_ + ": field '" + key + "' is " + object_[key].dump() + ", expected " + expected);
  }
  const json& object_;
  std::string where_;
};

struct RopeSettings {
  float theta = 10000.0f;
  float linear_factor = 1.0f;
};

// Classic fields (rope_theta + rope_scaling) or transformers-5's rope_parameters,
// which is either one dict or one dict per layer type.
Status ParseRope(const Fields& fields, const char* layer_type, RopeSettings* rope) {
  if (fields.Has("rope_parameters")) {
    const json* params = &fields.Object("rope_parameters");
    if (params->is_object() && params->contains(layer_type) && (*params)[layer_type].is_object()) {
      params = &(*params)[layer_type];
    }
    if (!params->is_object()) {
      return InvalidArgument(fields.where() + ": rope_parameters must be an object");
    }
    Fields p(*params, fields.where() + " rope_parameters");
    GR_RETURN_IF_ERROR(p.Float("rope_theta", &rope->theta, false));
    std::string type = "default";
    GR_RETURN_IF_ERROR(p.String("rope_type", &type, false));
    if (type == "linear") GR_RETURN_IF_ERROR(p.Float("factor", &rope->linear_factor, true));
    else if (type != "default") return Unsupported(fields.where() + ": rope_type '" + type + "' is not supported");
    return Status::Ok();
  }
  GR_RETURN_IF_ERROR(fields.Float("rope_theta", &rope->theta, false));
  return Status::Ok();
}

Status ParseRopeScaling(const Fields& fields, float* factor) {
  if (!fields.Has("rope_scaling")) return Status::Ok();
  const json& scaling = fields.Object("rope_scaling");
  if (!scaling.is_object()) return InvalidArgument(fields.where() + ": rope_scaling must be an object");
  Fields s(scaling, fields.where() + " rope_scaling");
  std::string type;
  if (s.Has("rope_type")) GR_RETURN_IF_ERROR(s.String("rope_type", &type, false));
  else GR_RETURN_IF_ERROR(s.String("type", &type, false));
  if (type != "linear") return Unsupported(fields.where() + ": rope_scaling type '" + type + "' is not supported (linear is)");
  return s.Float("factor", factor, true);
}

Status ParseDtype(const Fields& fields, DType* out) {
  std::string name;
  if (fields.Has("torch_dtype")) GR_RETURN_IF_ERROR(fields.String("torch_dtype", &name, false));
  if (fields.Has("dtype")) GR_RETURN_IF_ERROR(fields.String("dtype", &name, false));
  if (name == "bfloat16") *out = DType::kBF16;
  else if (name == "float16") *out = DType::kF16;
  else *out = DType::kF32;
  return Status::Ok();
}

// Gemma 1 / 2 / 3 text decoders; `family` is already known from model_type.
// Fields every family shares: sizes, heads, layer count, norm epsilon, special
// ids, dtype. `intermediate` is config.json's intermediate_size as written.
Status ParseCommonFields(const Fields& f, ModelConfig* c, int* intermediate, int* num_layers) {
  GR_RETURN_IF_ERROR(f.Int("vocab_size", &c->vocab_size, true));
  GR_RETURN_IF_ERROR(f.Int("hidden_size", &c->model_dim, true));
  GR_RETURN_IF_ERROR(f.Int("intermediate_size", intermediate, true));
  GR_RETURN_IF_ERROR(f.Int("num_attention_heads", &c->num_heads, true));
  GR_RETURN_IF_ERROR(f.Int("num_hidden_layers", num_layers, true));
  c->num_kv_heads = c->num_heads;
  GR_RETURN_IF_ERROR(f.Int("num_key_value_heads", &c->num_kv_heads, false));
  c->head_dim = c->num_heads > 0 ? c->model_dim / c->num_heads : 0;
  GR_RETURN_IF_ERROR(f.Int("head_dim", &c->head_dim, false));
  GR_RETURN_IF_ERROR(f.Float("rms_norm_eps", &c->rms_norm_eps, false));
  GR_RETURN_IF_ERROR(f.Int("bos_token_id", &c->bos_id, false));
  GR_RETURN_IF_ERROR(f.Int("pad_token_id", &c->pad_id, false));
  GR_RETURN_IF_ERROR(f.IdList("eos_token_id", &c->eos_ids));
  GR_RETURN_IF_ERROR(ParseDtype(f, &c->weight_dtype));
  if (*num_layers <= 0 || *num_layers > 4096) {
    return InvalidArgument(f.where() + ": num_hidden_layers " + std::to_string(*num_layers) + " is out of range");
  }
  return Status::Ok();
}

Status ParseGemmaText(const Fields& f, ModelFamily family, ModelConfig* c) {
  int num_layers = 0;
  GR_RETURN_IF_ERROR(ParseCommonFields(f, c, &c->ff_hidden_dim, &num_layers));
  c->rotary_dim = c->head_dim;
  c->max_seq_len = 8192;
  GR_RETURN_IF_ERROR(f.Int("max_position_embeddings", &c->max_seq_len, false));

  // ref: HF modeling_gemma2/3: scaling = query_pre_attn_scalar ** -0.5 (Gemma 1: head_dim ** -0.5).
  float query_pre_attn_scalar = static_cast<float>(c->head_dim);
  if (family != ModelFamily::kGemma) GR_RETURN_IF_ERROR(f.Float("query_pre_attn_scalar", &query_pre_attn_scalar, false));
  if (query_pre_attn_scalar <= 0) return InvalidArgument(f.where() + ": query_pre_attn_scalar must be positive");
  c->query_scale = 1.0f / std::sqrt(query_pre_attn_scalar);

  float attn_softcap = 0.0f;
  int sliding_window = 0;
  if (family != ModelFamily::kGemma) {
    GR_RETURN_IF_ERROR(f.Float("attn_logit_softcapping", &attn_softcap, false));
    GR_RETURN_IF_ERROR(f.Float("final_logit_softcapping", &c->final_softcap, false));
    GR_RETURN_IF_ERROR(f.Int("sliding_window", &sliding_window, family == ModelFamily::kGemma2));
    if (sliding_window <= 0 && f.Has("sliding_window")) {
      return InvalidArgument(f.where() + ": sliding_window must be positive");
    }
  }

  std::vector<std::string> layer_types;
  GR_RETURN_IF_ERROR(f.StringList("layer_types", &layer_types));
  if (!layer_types.empty() && static_cast<int>(layer_types.size()) != num_layers) {
    return InvalidArgument(f.where() + ": layer_types has " + std::to_string(layer_types.size()) +
                           " entries for " + std::to_string(num_layers) + " layers");
  }
  int sliding_pattern = 6;  // ref: HF configuration_gemma3 default sliding_window_pattern
  GR_RETURN_IF_ERROR(f.Int("sliding_window_pattern", &sliding_pattern, false));
  if (sliding_pattern <= 0) return InvalidArgument(f.where() + ": sliding_window_pattern must be positive");

  RopeSettings global_rope, local_rope;
  GR_RETURN_IF_ERROR(ParseRope(f, "full_attention", &global_rope));
  GR_RETURN_IF_ERROR(ParseRopeScaling(f, &global_rope.linear_factor));
  local_rope.theta = global_rope.theta;
  if (family == ModelFamily::kGemma3) {
    local_rope.theta = 10000.0f;  // ref: HF Gemma3 rope_local_base_freq default
    if (f.Has("rope_parameters")) {
      GR_RETURN_IF_ERROR(ParseRope(f, "sliding_attention", &local_rope));
      local_rope.linear_factor = 1.0f;
    }
    GR_RETURN_IF_ERROR(f.Float("rope_local_base_freq", &local_rope.theta, false));
  }

  c->layers.assign(num_layers, LayerConfig{});
  for (int i = 0; i < num_layers; ++i) {
    LayerConfig& layer = c->layers[i];
    bool sliding = false;
    if (!layer_types.empty()) {
      if (layer_types[i] == "sliding_attention") sliding = true;
      else if (layer_types[i] != "full_attention") {
        return InvalidArgument(f.where() + ": layer_types[" + std::to_string(i) + "] is '" + layer_types[i] +
                               "', expected sliding_attention or full_attention");
      }
    } else if (family == ModelFamily::kGemma2) {
      sliding = i % 2 == 0;  // ref: HF Gemma2 is_sliding = not bool(layer_idx % 2)
    } else if (family == ModelFamily::kGemma3) {
      sliding = (i + 1) % sliding_pattern != 0;  // ref: HF Gemma3 (layer_idx + 1) % pattern
    }
    if (sliding && sliding_window <= 0) {
      return InvalidArgument(f.where() + ": layer " + std::to_string(i) + " is sliding but sliding_window is not set");
    }
    layer.attention_window = sliding ? sliding_window : 0;
    const RopeSettings& rope = sliding ? local_rope : global_rope;
    layer.rope_theta = rope.theta;
    layer.rope_position_scale = rope.linear_factor;
    layer.qk_norm = family == ModelFamily::kGemma3;
    layer.post_norms = family != ModelFamily::kGemma;
    layer.attn_softcap = attn_softcap;
  }
  return Status::Ok();
}

Status ParseRecurrentGemma(const Fields& f, ModelConfig* c) {
  int intermediate = 0, num_layers = 0;
  GR_RETURN_IF_ERROR(ParseCommonFields(f, c, &intermediate, &num_layers));
  c->ff_hidden_dim = intermediate / 2;  // ref: HF RecurrentGemmaMlp uses intermediate_size // 2
  float partial_rotary = 0.5f;
  GR_RETURN_IF_ERROR(f.Float("partial_rotary_factor", &partial_rotary, false));
  // Checked before the float -> int conversion below, which is undefined out of range.
  if (!(partial_rotary > 0.0f && partial_rotary <= 1.0f)) {
    return InvalidArgument(f.where() + ": partial_rotary_factor " + std::to_string(partial_rotary) +
                           " is not in (0, 1]");
  }
  c->rotary_dim = static_cast<int>(c->head_dim * partial_rotary);
  c->lru_width = c->model_dim;
  GR_RETURN_IF_ERROR(f.Int("lru_width", &c->lru_width, false));
  c->conv1d_width = 4;
  GR_RETURN_IF_ERROR(f.Int("conv1d_width", &c->conv1d_width, false));
  int window = 2048;
  GR_RETURN_IF_ERROR(f.Int("attention_window_size", &window, false));
  c->final_softcap = 30.0f;
  GR_RETURN_IF_ERROR(f.Float("logits_soft_cap", &c->final_softcap, false));
  RopeSettings rope;
  GR_RETURN_IF_ERROR(ParseRope(f, "full_attention", &rope));
  c->query_scale = 1.0f / std::sqrt(static_cast<float>(c->head_dim));
  c->mlp_bias = true;
  // Recurrent state does not grow; the attention layers are windowed.
  c->max_seq_len = 1 << 30;
  if (window <= 0) return InvalidArgument(f.where() + ": attention_window_size must be positive");
  std::vector<std::string> block_types = {"recurrent", "recurrent", "attention"};
  // Hub configs spell it "_block_types"; transformers writes "block_types".
  GR_RETURN_IF_ERROR(f.StringList("_block_types", &block_types));
  GR_RETURN_IF_ERROR(f.StringList("block_types", &block_types));
  if (block_types.empty()) return InvalidArgument(f.where() + ": block_types is empty");
  c->layers.assign(num_layers, LayerConfig{});
  for (int i = 0; i < num_layers; ++i) {
    const std::string& type = block_types[i % block_types.size()];
    LayerConfig& layer = c->layers[i];
    if (type == "recurrent") {
      layer.kind = BlockKind::kRecurrent;
    } else if (type == "attention") {
      layer.kind = BlockKind::kAttention;
      // ref: google-deepmind/recurrentgemma LocalAttentionBlock: keys q-W .. q (W+1 of them).
      layer.attention_window = window + 1;
      layer.rope_theta = rope.theta;
    } else {
      return InvalidArgument(f.where() + ": block type '" + type + "', expected recurrent or attention");
    }
  }
  return Status::Ok();
}

Status ParsePaliGemma(const Fields& f, ModelConfig* c) {
  if (!f.Has("text_config") || !f.Object("text_config").is_object()) {
    return InvalidArgument(f.where() + ": paligemma config needs a text_config object");
  }
  if (!f.Has("vision_config") || !f.Object("vision_config").is_object()) {
    return InvalidArgument(f.where() + ": paligemma config needs a vision_config object");
  }
  Fields text(f.Object("text_config"), f.where() + " text_config");
  std::string text_type = "gemma";
  GR_RETURN_IF_ERROR(text.String("model_type", &text_type, false));
  ModelFamily text_family;
  if (text_type == "gemma") text_family = ModelFamily::kGemma;
  else if (text_type == "gemma2") text_family = ModelFamily::kGemma2;
  else return Unsupported(text.where() + ": model_type '" + text_type + "' (expected gemma or gemma2)");
  GR_RETURN_IF_ERROR(ParseGemmaText(text, text_family, c));
  if (!f.Has("dtype") && !f.Has("torch_dtype")) {
    GR_RETURN_IF_ERROR(ParseDtype(text, &c->weight_dtype));
  } else {
    GR_RETURN_IF_ERROR(ParseDtype(f, &c->weight_dtype));
  }

  Fields vision(f.Object("vision_config"), f.where() + " vision_config");
  VisionConfig& v = c->vision;
  // Defaults of the released PaliGemma towers (SigLIP So400m/14), ref: convert_paligemma_weights_to_hf.py.
  v.model_dim = 1152;
  v.ff_hidden_dim = 4304;
  v.num_layers = 27;
  v.num_heads = 16;
  v.image_size = 224;
  v.patch_size = 14;
  GR_RETURN_IF_ERROR(vision.Int("hidden_size", &v.model_dim, false));
  GR_RETURN_IF_ERROR(vision.Int("intermediate_size", &v.ff_hidden_dim, false));
  GR_RETURN_IF_ERROR(vision.Int("num_hidden_layers", &v.num_layers, false));
  GR_RETURN_IF_ERROR(vision.Int("num_attention_heads", &v.num_heads, false));
  GR_RETURN_IF_ERROR(vision.Int("image_size", &v.image_size, false));
  GR_RETURN_IF_ERROR(vision.Int("patch_size", &v.patch_size, false));
  GR_RETURN_IF_ERROR(vision.Int("num_channels", &v.num_channels, false));
  GR_RETURN_IF_ERROR(vision.Float("layer_norm_eps", &v.layer_norm_eps, false));
  if (v.model_dim <= 0 || v.num_heads <= 0 || v.model_dim % v.num_heads != 0 || v.patch_size <= 0 ||
      v.image_size <= 0 || v.image_size % v.patch_size != 0 || v.num_layers < 0 || v.ff_hidden_dim <= 0 ||
      v.num_channels <= 0) {
    return InvalidArgument(vision.where() + ": inconsistent vision tower dimensions");
  }
  if (v.num_patches() > kMaxImagePatches) {
    return InvalidArgument(vision.where() + ": image_size " + std::to_string(v.image_size) + " / patch_size " +
                           std::to_string(v.patch_size) + " gives " + std::to_string(v.num_patches()) +
                           " patches, more than " + std::to_string(kMaxImagePatches));
  }
  c->image_token_id = 257152;  // ref: convert_paligemma_weights_to_hf.py for released checkpoints
  GR_RETURN_IF_ERROR(f.Int("image_token_index", &c->image_token_id, false));
  c->num_image_tokens = static_cast<int>(v.num_patches());
  GR_RETURN_IF_ERROR(text.Int("num_image_tokens", &c->num_image_tokens, false));
  if (c->num_image_tokens != v.num_patches()) {
    return InvalidArgument(f.where() + ": num_image_tokens " + std::to_string(c->num_image_tokens) +
                           " does not match (image_size/patch_size)^2 = " + std::to_string(v.num_patches()));
  }
  c->position_offset = 1;  // ref: HF PaliGemma "position_ids = cache_position + 1"
  return Status::Ok();
}

}  // namespace

const char* FamilyName(ModelFamily family) {
  switch (family) {
    case ModelFamily::kGemma: return "gemma";
    case ModelFamily::kGemma2: return "gemma2";
    case ModelFamily::kGemma3: return "gemma3";
    case ModelFamily::kRecurrentGemma: return "recurrent_gemma";
    case ModelFamily::kPaliGemma: return "paligemma";
  }
  return "unknown";
}

std::string SupportedModelTypes() { return "gemma, gemma2, gemma3, gemma3_text, recurrent_gemma, paligemma"; }

Result<ModelConfig> ParseHfConfig(const std::string& json_text, const std::string& where) {
  GR_ASSIGN_OR_RETURN(json root, ParseJson(json_text, where));
  if (!root.is_object()) return InvalidArgument(where + ": expected a JSON object");
  Fields fields(root, where);
  ModelConfig config;
  GR_RETURN_IF_ERROR(fields.String("model_type", &config.model_type, true));
  const std::string& type = config.model_type;
  if (type == "gemma") {
    config.family = ModelFamily::kGemma;
    GR_RETURN_IF_ERROR(ParseGemmaText(fields, config.family, &config));
  } else if (type == "gemma2") {
    config.family = ModelFamily::kGemma2;
    GR_RETURN_IF_ERROR(ParseGemmaText(fields, config.family, &config));
  } else if (type == "gemma3_text") {
    config.family = ModelFamily::kGemma3;
    GR_RETURN_IF_ERROR(ParseGemmaText(fields, config.family, &config));
  } else if (type == "gemma3") {
    // Multimodal Gemma 3 wraps the text model; we run its text part.
    config.family = ModelFamily::kGemma3;
    if (fields.Has("text_config") && fields.Object("text_config").is_object()) {
      Fields text(fields.Object("text_config"), where + " text_config");
      GR_RETURN_IF_ERROR(ParseGemmaText(text, config.family, &config));
    } else {
      GR_RETURN_IF_ERROR(ParseGemmaText(fields, config.family, &config));
    }
  } else if (type == "recurrent_gemma") {
    config.family = ModelFamily::kRecurrentGemma;
    GR_RETURN_IF_ERROR(ParseRecurrentGemma(fields, &config));
  } else if (type == "paligemma") {
    config.family = ModelFamily::kPaliGemma;
    GR_RETURN_IF_ERROR(ParsePaliGemma(fields, &config));
  } else {
    return Unsupported(where + ": model_type '" + type + "' is not supported (supported: " +
                       SupportedModelTypes() + ")");
  }
  GR_RETURN_IF_ERROR(config.Validate().WithContext(where));
  return config;
}

Result<ModelConfig> LoadHfConfig(const std::string& path) {
  std::string file = path;
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) {
    file = (std::filesystem::path(path) / "config.json").string();
    if (!std::filesystem::exists(file, ec)) return NotFound(path + ": folder has no config.json");
  }
  GR_ASSIGN_OR_RETURN(std::string text, ReadTextFile(file));
  return ParseHfConfig(text, file);
}

namespace {

// The range every size, id and scalar of a config may take, whichever file it came
// from (config.json or GGUF metadata). The bounds are far beyond any released Gemma
// (vocab 262144, width 5376, 62 layers) yet keep every product of them (parameter
// counts, tensor bytes, KV-cache bytes at 2^30 tokens) inside 64 bits.
struct FieldRange {
  const char* name;
  double value;
  double min;
  double max;
};

// Whole numbers print exactly (16777217, not 1.67772e+07); the rest in %g.
std::string RangeNumber(double value) {
  if (value == std::floor(value) && std::fabs(value) < 1e18) return std::to_string(static_cast<int64_t>(value));
  std::ostringstream text;
  text << value;
  return text.str();
}

Status CheckRanges(const char* what, std::initializer_list<FieldRange> ranges) {
  for (const FieldRange& r : ranges) {
    if (!(r.value >= r.min && r.value <= r.max)) {  // NaN fails too
      return InvalidArgument(std::string(what) + r.name + " is " + RangeNumber(r.value) + ", expected " +
                             RangeNumber(r.min) + " .. " + RangeNumber(r.max));
    }
  }
  return Status::Ok();
}

constexpr double kMaxVocab = 1 << 24;
constexpr double kMaxWidth = 1 << 16;
constexpr double kMaxFfWidth = 1 << 20;
constexpr double kMaxHeads = 1 << 10;
constexpr double kMaxHeadDim = 1 << 12;
constexpr double kMaxTokens = 1 << 30;
constexpr double kMaxLayers = 4096;

}  // namespace

Status ModelConfig::Validate() const {
  const double last_id = vocab_size - 1;
  GR_RETURN_IF_ERROR(CheckRanges("", {
      {"vocab_size", double(vocab_size), 1, kMaxVocab},
      {"hidden_size", double(model_dim), 1, kMaxWidth},
      {"intermediate_size", double(ff_hidden_dim), 1, kMaxFfWidth},
      {"num_attention_heads", double(num_heads), 1, kMaxHeads},
      {"num_key_value_heads", double(num_kv_heads), 1, kMaxHeads},
      {"head_dim", double(head_dim), 1, kMaxHeadDim},
      {"max_position_embeddings", double(max_seq_len), 1, kMaxTokens},
      {"num_hidden_layers", double(layers.size()), 1, kMaxLayers},
      {"rms_norm_eps", double(rms_norm_eps), 1e-30, 1.0},
      {"query scale", double(query_scale), 1e-6, 1e6},
      {"final_logit_softcapping", double(final_softcap), 0, 1e6},
      {"embedding scale", double(embed_scale), 1e-6, 1e6},
      {"bos_token_id", double(bos_id), 0, last_id},
      {"pad_token_id", double(pad_id), -1, last_id},
  }));
  for (int eos : eos_ids) GR_RETURN_IF_ERROR(CheckRanges("", {{"eos_token_id", double(eos), 0, last_id}}));
  for (size_t i = 0; i < layers.size(); ++i) {
    const LayerConfig& layer = layers[i];
    const std::string where = "layer " + std::to_string(i) + ": ";
    GR_RETURN_IF_ERROR(CheckRanges(where.c_str(), {
        {"attention window", double(layer.attention_window), 0, kMaxTokens + 1},
        {"rope_theta", double(layer.rope_theta), 1e-6, 1e12},
        {"rope scaling factor", double(layer.rope_position_scale), 1e-6, 1e6},
        {"attn_logit_softcapping", double(layer.attn_softcap), 0, 1e6},
    }));
  }
  if (family == ModelFamily::kRecurrentGemma) {
    GR_RETURN_IF_ERROR(CheckRanges("", {
        {"lru_width", double(lru_width), 1, kMaxFfWidth},
        {"conv1d_width", double(conv1d_width), 1, 1024},
    }));
  }
  if (family == ModelFamily::kPaliGemma) {
    GR_RETURN_IF_ERROR(CheckRanges("vision_config ", {
        {"hidden_size", double(vision.model_dim), 1, kMaxWidth},
        {"intermediate_size", double(vision.ff_hidden_dim), 1, kMaxFfWidth},
        {"num_hidden_layers", double(vision.num_layers), 0, kMaxLayers},
        {"num_attention_heads", double(vision.num_heads), 1, kMaxHeads},
        {"image_size", double(vision.image_size), 1, 1 << 16},
        {"patch_size", double(vision.patch_size), 1, 1 << 16},
        {"num_channels", double(vision.num_channels), 1, 64},
        {"patches", double(vision.num_patches()), 1, double(kMaxImagePatches)},
        {"layer_norm_eps", double(vision.layer_norm_eps), 1e-30, 1.0},
    }));
    GR_RETURN_IF_ERROR(CheckRanges("", {
        {"image_token_index", double(image_token_id), 0, last_id},
        {"position offset", double(position_offset), 0, 1 << 16},
    }));
  }
  if (layers.empty()) return InvalidArgument("the model has no layers");
  if (num_heads % num_kv_heads != 0) {
    return InvalidArgument("num_attention_heads " + std::to_string(num_heads) +
                           " is not a multiple of num_key_value_heads " + std::to_string(num_kv_heads));
  }
  if (rotary_dim <= 0 || rotary_dim % 2 != 0 || rotary_dim > head_dim) {
    return InvalidArgument("rotary dimension " + std::to_string(rotary_dim) + " must be even and at most head_dim " +
                           std::to_string(head_dim));
  }
  if (family == ModelFamily::kRecurrentGemma) {
    if (lru_width % num_heads != 0) return InvalidArgument("lru_width must be a multiple of num_attention_heads");
  }
  return Status::Ok();
}

}  // namespace gemmarun
