#include "model/inspect.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <iterator>
#include <map>

#include "model/kv_cache.h"
#include "model/weights.h"

namespace gemmarun {
namespace {

// ---------------------------------------------------------------------------
// A module tree printed the way torch.nn.Module.__repr__ prints it.

struct NamedModule;

struct Module {
  std::string type;   // class name
  std::string extra;  // extra_repr()
  // Not vector<pair<string, Module>>: pair needs a complete Module, which clang's
  // libstdc++ instantiation rejects here; a vector of an incomplete type is fine.
  std::vector<NamedModule> children;
  bool is_list = false;  // nn.ModuleList: runs of identical children print once

  Module& Add(std::string key, Module child);
};

struct NamedModule {
  std::string key;
  Module module;
};

Module& Module::Add(std::string key, Module child) {
  children.push_back(NamedModule{std::move(key), std::move(child)});
  return children.back().module;
}

Module Leaf(std::string type, std::string extra = "") { return Module{std::move(type), std::move(extra), {}, false}; }

// ref: torch/nn/modules/module.py _addindent: every line but the first is indented.
std::string AddIndent(const std::string& text, int spaces) {
  std::string out;
  out.reserve(text.size());
  for (char ch : text) {
    out.push_back(ch);
    if (ch == '\n') out.append(spaces, ' ');
  }
  return out;
}

std::string Repr(const Module& module);

// ref: torch/nn/modules/container.py ModuleList.__repr__: consecutive children with
// the same repr collapse into "(a-b): n x <repr>".
std::string ListRepr(const Module& list) {
  if (list.children.empty()) return list.type + "()";
  std::vector<std::string> reprs;
  for (const auto& [key, child] : list.children) reprs.push_back(Repr(child));
  std::string out = list.type + "(";
  size_t start = 0;
  while (start < reprs.size()) {
    size_t end = start;
    while (end + 1 < reprs.size() && reprs[end + 1] == reprs[start]) ++end;
    // Appends rather than "(" + ..., which trips GCC 12's -Wrestrict false positive.
    std::string line = "(";
    line += std::to_string(start);
    if (end != start) {
      line.append("-").append(std::to_string(end)).append("): ");
      line.append(std::to_string(end - start + 1)).append(" x ");
    } else {
      line += "): ";
    }
    line += reprs[start];
    out.append("\n  ").append(AddIndent(line, 2));
    start = end + 1;
  }
  return out + "\n)";
}

// ref: torch/nn/modules/module.py Module.__repr__.
std::string Repr(const Module& module) {
  if (module.is_list) return ListRepr(module);
  std::vector<std::string> lines;
  size_t start = 0;
  while (!module.extra.empty() && start <= module.extra.size()) {
    const size_t end = std::min(module.extra.find('\n', start), module.extra.size());
    lines.push_back(module.extra.substr(start, end - start));
    start = end + 1;
  }
  const size_t extra_lines = lines.size();
  for (const auto& [key, child] : module.children) lines.push_back("(" + key + "): " + AddIndent(Repr(child), 2));
  std::string out = module.type + "(";
  if (extra_lines == 1 && module.children.empty()) {
    out += lines[0];
  } else if (!lines.empty()) {
    for (const std::string& line : lines) out += "\n  " + line;
    out += "\n";
  }
  return out + ")";
}

// Python's repr() of a float: shortest round-trip digits, exponent form when the
// decimal point falls outside [-4, 16) (ref: CPython format_float_short, mode 'r').
// The config holds floats, so the shortest float digits stand in for the double
// transformers printed; for values written as short literals (1e-06) they agree.
std::string PyFloat(float value) {
  if (value == 0.0f) return std::signbit(value) ? "-0.0" : "0.0";
  char buf[64];
  const auto result = std::to_chars(buf, buf + sizeof(buf), value, std::chars_format::scientific);
  std::string text(buf, result.ptr);
  std::string sign;
  if (text[0] == '-') {
    sign = "-";
    text.erase(0, 1);
  }
  const size_t e = text.find('e');
  std::string digits = text.substr(0, e);
  digits.erase(std::remove(digits.begin(), digits.end(), '.'), digits.end());
  const int exponent = std::atoi(text.c_str() + e + 1);
  const int point = exponent + 1;  // value = 0.<digits> * 10^point
  if (point <= -4 || point > 16) {
    std::string mantissa = digits.substr(0, 1);
    if (digits.size() > 1) mantissa.append(".").append(digits, 1);
    const int magnitude = std::abs(exponent);
    return sign + mantissa + "e" + (exponent < 0 ? "-" : "+") + (magnitude < 10 ? "0" : "") +
           std::to_string(magnitude);
  }
  if (point <= 0) return sign + "0." + std::string(-point, '0') + digits;
  if (point >= static_cast<int>(digits.size())) return sign + digits + std::string(point - digits.size(), '0') + ".0";
  return sign + digits.substr(0, point) + "." + digits.substr(point);
}

const char* PyBool(bool value) { return value ? "True" : "False"; }

Module Linear(int64_t in, int64_t out, bool bias) {
  return Leaf("Linear", "in_features=" + std::to_string(in) + ", out_features=" + std::to_string(out) +
                            ", bias=" + PyBool(bias));
}

Module Embedding(std::string type, int64_t rows, int64_t dim, int padding_idx) {
  std::string extra = std::to_string(rows) + ", " + std::to_string(dim);
  if (padding_idx >= 0) extra += ", padding_idx=" + std::to_string(padding_idx);
  return Leaf(std::move(type), extra);
}

Module RmsNorm(const std::string& type, int64_t dim, float eps) {
  return Leaf(type, "(" + std::to_string(dim) + ",), eps=" + PyFloat(eps));
}

Module LayerNorm(int64_t dim, float eps) {
  return Leaf("LayerNorm", "(" + std::to_string(dim) + ",), eps=" + PyFloat(eps) + ", elementwise_affine=True");
}

Module Gelu() { return Leaf("GELUTanh"); }

Module List(const std::vector<Module>& items) {
  Module list = Leaf("ModuleList");
  list.is_list = true;
  for (size_t i = 0; i < items.size(); ++i) list.Add(std::to_string(i), items[i]);
  return list;
}

// ---------------------------------------------------------------------------
// The model families, as transformers 5 builds them. Each layer is built from its
// LayerConfig with the same conditions as ForEachWeight, so tree and weights agree.

// Class-name prefix of a Gemma text decoder: PaliGemma wraps Gemma 1 or Gemma 2,
// told apart by the Gemma 2 post-norms.
std::string GemmaPrefix(const ModelConfig& c) {
  switch (c.family) {
    case ModelFamily::kGemma2: return "Gemma2";
    case ModelFamily::kGemma3: return "Gemma3";
    case ModelFamily::kPaliGemma:
      if (!c.layers.empty() && c.layers[0].qk_norm) return "Gemma3";
      return !c.layers.empty() && c.layers[0].post_norms ? "Gemma2" : "Gemma";
    default: return "Gemma";
  }
}

Module GemmaDecoderLayer(const ModelConfig& c, const LayerConfig& lc, const std::string& p) {
  const int64_t q_dim = int64_t{c.num_heads} * c.head_dim;
  const int64_t kv_dim = int64_t{c.num_kv_heads} * c.head_dim;
  const std::string norm = p + "RMSNorm";
  Module layer = Leaf(p + "DecoderLayer");
  Module& attn = layer.Add("self_attn", Leaf(p + "Attention"));
  attn.Add("q_proj", Linear(c.model_dim, q_dim, false));
  attn.Add("k_proj", Linear(c.model_dim, kv_dim, false));
  attn.Add("v_proj", Linear(c.model_dim, kv_dim, false));
  attn.Add("o_proj", Linear(q_dim, c.model_dim, false));
  if (lc.qk_norm) {
    attn.Add("q_norm", RmsNorm(norm, c.head_dim, c.rms_norm_eps));
    attn.Add("k_norm", RmsNorm(norm, c.head_dim, c.rms_norm_eps));
  }
  Module& mlp = layer.Add("mlp", Leaf(p + "MLP"));
  mlp.Add("gate_proj", Linear(c.model_dim, c.ff_hidden_dim, false));
  mlp.Add("up_proj", Linear(c.model_dim, c.ff_hidden_dim, false));
  mlp.Add("down_proj", Linear(c.ff_hidden_dim, c.model_dim, false));
  mlp.Add("act_fn", Gelu());
  layer.Add("input_layernorm", RmsNorm(norm, c.model_dim, c.rms_norm_eps));
  layer.Add("post_attention_layernorm", RmsNorm(norm, c.model_dim, c.rms_norm_eps));
  if (lc.post_norms) {
    layer.Add("pre_feedforward_layernorm", RmsNorm(norm, c.model_dim, c.rms_norm_eps));
    layer.Add("post_feedforward_layernorm", RmsNorm(norm, c.model_dim, c.rms_norm_eps));
  }
  return layer;
}

Module GemmaModel(const ModelConfig& c) {
  const std::string p = GemmaPrefix(c);
  // Gemma 3's text-only decoder is "Gemma3TextModel"; the others are "<P>Model".
  Module model = Leaf(p == "Gemma3" ? "Gemma3TextModel" : p + "Model");
  model.Add("embed_tokens", Embedding(p + "TextScaledWordEmbedding", c.vocab_size, c.model_dim, c.pad_id));
  std::vector<Module> layers;
  for (const LayerConfig& lc : c.layers) layers.push_back(GemmaDecoderLayer(c, lc, p));
  model.Add("layers", List(layers));
  model.Add("norm", RmsNorm(p + "RMSNorm", c.model_dim, c.rms_norm_eps));
  model.Add("rotary_emb", Leaf(p + "RotaryEmbedding"));
  return model;
}

Module GriffinLayer(const ModelConfig& c, const LayerConfig& lc) {
  const std::string norm = "RecurrentGemmaRMSNorm";
  Module layer = Leaf("RecurrentGemmaDecoderLayer");
  layer.Add("temporal_pre_norm", RmsNorm(norm, c.model_dim, c.rms_norm_eps));
  if (lc.kind == BlockKind::kAttention) {
    const int64_t q_dim = int64_t{c.num_heads} * c.head_dim;
    const int64_t kv_dim = int64_t{c.num_kv_heads} * c.head_dim;
    Module& attn = layer.Add("temporal_block", Leaf("RecurrentGemmaAttention"));
    attn.Add("q_proj", Linear(c.model_dim, q_dim, false));
    attn.Add("k_proj", Linear(c.model_dim, kv_dim, false));
    attn.Add("v_proj", Linear(c.model_dim, kv_dim, false));
    attn.Add("o_proj", Linear(q_dim, c.model_dim, true));
    attn.Add("rotary_emb", Leaf("RecurrentGemmaRotaryEmbedding"));
  } else {
    const std::string lru = std::to_string(c.lru_width);
    Module& block = layer.Add("temporal_block", Leaf("RecurrentGemmaRecurrentBlock"));
    block.Add("linear_y", Linear(c.model_dim, c.lru_width, true));
    block.Add("linear_x", Linear(c.model_dim, c.lru_width, true));
    block.Add("linear_out", Linear(c.lru_width, c.model_dim, true));
    // Depthwise causal conv: padding width - 1, output cut back to T (HF-RG).
    block.Add("conv_1d", Leaf("Conv1d", lru + ", " + lru + ", kernel_size=(" + std::to_string(c.conv1d_width) +
                                            ",), stride=(1,), padding=(" + std::to_string(c.conv1d_width - 1) +
                                            ",), groups=" + lru));
    block.Add("rg_lru", Leaf("RecurrentGemmaRglru"));
    block.Add("act_fn", Gelu());
  }
  layer.Add("channel_pre_norm", RmsNorm(norm, c.model_dim, c.rms_norm_eps));
  Module& mlp = layer.Add("mlp_block", Leaf("RecurrentGemmaMlp"));
  mlp.Add("gate_proj", Linear(c.model_dim, c.ff_hidden_dim, true));
  mlp.Add("up_proj", Linear(c.model_dim, c.ff_hidden_dim, true));
  mlp.Add("down_proj", Linear(c.ff_hidden_dim, c.model_dim, true));
  mlp.Add("act_fn", Gelu());
  return layer;
}

Module GriffinCausalLm(const ModelConfig& c) {
  Module top = Leaf("RecurrentGemmaForCausalLM");
  Module& model = top.Add("model", Leaf("RecurrentGemmaModel"));
  model.Add("embed_tokens", Embedding("Embedding", c.vocab_size, c.model_dim, c.pad_id));
  std::vector<Module> layers;
  for (const LayerConfig& lc : c.layers) layers.push_back(GriffinLayer(c, lc));
  model.Add("layers", List(layers));
  model.Add("final_norm", RmsNorm("RecurrentGemmaRMSNorm", c.model_dim, c.rms_norm_eps));
  top.Add("lm_head", Linear(c.model_dim, c.vocab_size, false));
  return top;
}

Module SiglipVisionModel(const VisionConfig& v) {
  const std::string d = std::to_string(v.model_dim);
  const std::string patch = std::to_string(v.patch_size);
  Module tower = Leaf("SiglipVisionModel");
  Module& embeddings = tower.Add("embeddings", Leaf("SiglipVisionEmbeddings"));
  embeddings.Add("patch_embedding", Leaf("Conv2d", std::to_string(v.num_channels) + ", " + d + ", kernel_size=(" +
                                                       patch + ", " + patch + "), stride=(" + patch + ", " + patch +
                                                       "), padding=valid"));
  embeddings.Add("position_embedding", Embedding("Embedding", v.num_patches(), v.model_dim, -1));
  Module layer = Leaf("SiglipEncoderLayer");
  layer.Add("layer_norm1", LayerNorm(v.model_dim, v.layer_norm_eps));
  Module& attn = layer.Add("self_attn", Leaf("SiglipAttention"));
  // SiglipAttention declares k, v, q, then out (HF-SIG __init__ order).
  attn.Add("k_proj", Linear(v.model_dim, v.model_dim, true));
  attn.Add("v_proj", Linear(v.model_dim, v.model_dim, true));
  attn.Add("q_proj", Linear(v.model_dim, v.model_dim, true));
  attn.Add("out_proj", Linear(v.model_dim, v.model_dim, true));
  layer.Add("layer_norm2", LayerNorm(v.model_dim, v.layer_norm_eps));
  Module& mlp = layer.Add("mlp", Leaf("SiglipMLP"));
  mlp.Add("activation_fn", Gelu());
  mlp.Add("fc1", Linear(v.model_dim, v.ff_hidden_dim, true));
  mlp.Add("fc2", Linear(v.ff_hidden_dim, v.model_dim, true));
  Module& encoder = tower.Add("encoder", Leaf("SiglipEncoder"));
  encoder.Add("layers", List(std::vector<Module>(v.num_layers, layer)));
  tower.Add("post_layernorm", LayerNorm(v.model_dim, v.layer_norm_eps));
  return tower;
}

Module PaliGemma(const ModelConfig& c) {
  Module top = Leaf("PaliGemmaForConditionalGeneration");
  Module& model = top.Add("model", Leaf("PaliGemmaModel"));
  model.Add("vision_tower", SiglipVisionModel(c.vision));
  Module& projector = model.Add("multi_modal_projector", Leaf("PaliGemmaMultiModalProjector"));
  projector.Add("linear", Linear(c.vision.model_dim, c.model_dim, true));
  model.Add("language_model", GemmaModel(c));
  top.Add("lm_head", Linear(c.model_dim, c.vocab_size, false));
  return top;
}

Module BuildTree(const ModelConfig& c) {
  if (c.family == ModelFamily::kRecurrentGemma) return GriffinCausalLm(c);
  if (c.family == ModelFamily::kPaliGemma) return PaliGemma(c);
  Module top = Leaf(GemmaPrefix(c) + "ForCausalLM");
  top.Add("model", GemmaModel(c));
  top.Add("lm_head", Linear(c.model_dim, c.vocab_size, false));
  return top;
}

// ---------------------------------------------------------------------------
// Parameters and memory, from ForEachWeight.

// Kinds in the order they are reported.
constexpr const char* kKinds[] = {"embedding", "attention", "recurrent", "mlp", "norm", "vision", "projector"};

// The layer index in "…layers.<i>.…", or -1.
int LayerIndex(const std::string& name) {
  const size_t at = name.find("layers.");
  if (at == std::string::npos) return -1;
  int index = -1;
  const char* begin = name.data() + at + 7;
  std::from_chars(begin, name.data() + name.size(), index);
  return index;
}

const char* KindOf(const ModelConfig& c, const ModelWeights& w, const WeightSpec& spec) {
  const std::string& name = spec.name;
  if (spec.tensor == &w.embedding) return "embedding";
  if (name.rfind("vision_tower.", 0) == 0) return "vision";
  if (name.rfind("multi_modal_projector.", 0) == 0) return "projector";
  if (spec.kind == WeightKind::kNorm) return "norm";  // every text RMSNorm, q/k norms included
  if (name.find(".mlp.") != std::string::npos || name.find(".mlp_block.") != std::string::npos) return "mlp";
  if (name.find(".self_attn.") != std::string::npos) return "attention";
  if (name.find(".temporal_block.") != std::string::npos) {
    const int layer = LayerIndex(name);
    const bool attention = layer >= 0 && layer < c.num_layers() && c.layers[layer].kind == BlockKind::kAttention;
    return attention ? "attention" : "recurrent";
  }
  return "other";
}

// Bytes of one tensor held as the loader holds it when matrices come in `dtype`:
// matrices in that dtype (f16 where a row is not whole blocks, as llama.cpp's
// quantizer falls back), everything else f32.
size_t HeldBytes(const WeightSpec& spec, DType dtype) {
  const int64_t elements = spec.shape.elements();
  if (spec.kind != WeightKind::kMatrix) return static_cast<size_t>(elements) * sizeof(float);
  const Shape& shape = spec.compute_shape.rank() > 0 ? spec.compute_shape : spec.shape;
  const size_t block = Info(dtype).block_elements;
  if (shape.cols() % static_cast<int64_t>(block) != 0) return static_cast<size_t>(elements) * 2;
  return static_cast<size_t>(shape.rows()) * RowBytes(dtype, static_cast<size_t>(shape.cols()));
}

std::string LayerLayout(const ModelConfig& c) {
  std::string out = std::to_string(c.num_layers()) + " layers";
  if (c.family == ModelFamily::kRecurrentGemma) {
    int recurrent = 0;
    std::map<int, int> windows;
    for (const LayerConfig& layer : c.layers) {
      if (layer.kind == BlockKind::kRecurrent) ++recurrent;
      else ++windows[layer.attention_window - 1];  // stored as keys seen: window + the query itself
    }
    out += ": " + std::to_string(recurrent) + " recurrent";
    for (const auto& [window, count] : windows) {
      out += ", " + std::to_string(count) + " local attention (window " + std::to_string(window) + ")";
    }
    return out;
  }
  int global = 0;
  std::map<int, int> windows;
  for (const LayerConfig& layer : c.layers) {
    if (layer.attention_window > 0) ++windows[layer.attention_window];
    else ++global;
  }
  if (windows.empty()) return out + ", all global attention";
  out += ":";
  for (const auto& [window, count] : windows) {
    out += " " + std::to_string(count) + " sliding-window (" + std::to_string(window) + "),";
  }
  return out + " " + std::to_string(global) + " global";
}

constexpr DType kEstimateDtypes[] = {DType::kF32, DType::kBF16, DType::kF16, DType::kQ8_0, DType::kQ4_0};

}  // namespace

std::string ModuleTree(const ModelConfig& config) { return Repr(BuildTree(config)); }

KvCacheEstimate EstimateKvCache(const ModelConfig& config, int64_t tokens, int64_t max_chunk) {
  KvCacheEstimate kv;
  kv.tokens = tokens;
  kv.max_chunk = max_chunk;
  // RG-LRU state h [lru] plus the Conv1D state, the last conv1d_width - 1 inputs
  // [lru, conv1d_width - 1], both f32 per recurrent layer; they do not grow with tokens.
  for (const LayerConfig& layer : config.layers) {
    if (layer.kind != BlockKind::kRecurrent) continue;
    kv.recurrent_bytes += static_cast<size_t>(config.lru_width) * config.conv1d_width * sizeof(float);
  }
  kv.full_bytes = KvCacheBytes(config, tokens, max_chunk, /*ring_buffers=*/false) + kv.recurrent_bytes;
  kv.ring_bytes = KvCacheBytes(config, tokens, max_chunk, /*ring_buffers=*/true) + kv.recurrent_bytes;
  kv.beyond_max_seq_len = tokens > config.max_seq_len;
  return kv;
}

ModelInspection InspectModelConfig(const ModelConfig& config, const std::vector<StoredTensor>* stored,
                                   const std::vector<int64_t>& contexts) {
  ModelInspection report;
  const Module tree = BuildTree(config);
  report.class_name = tree.type;
  report.modules = Repr(tree);
  report.layout = LayerLayout(config);

  ModelWeights weights;
  ResizeWeights(config, weights);
  std::map<std::string, int64_t> by_kind;
  std::vector<size_t> held(std::size(kEstimateDtypes), 0);
  ForEachWeight(config, weights, [&](const WeightSpec& spec) {
    const int64_t n = spec.shape.elements();
    report.params += n;
    if (spec.tensor == &weights.embedding) report.embedding_params += n;
    by_kind[KindOf(config, weights, spec)] += n;
    for (size_t i = 0; i < std::size(kEstimateDtypes); ++i) held[i] += HeldBytes(spec, kEstimateDtypes[i]);
  });
  for (const char* kind : kKinds) {
    if (by_kind.count(kind)) report.params_by_kind.emplace_back(kind, by_kind[kind]);
  }
  if (by_kind.count("other")) report.params_by_kind.emplace_back("other", by_kind["other"]);
  for (size_t i = 0; i < std::size(kEstimateDtypes); ++i) report.bytes_by_dtype.emplace_back(kEstimateDtypes[i], held[i]);

  if (stored != nullptr) {
    std::map<DType, size_t> by_dtype;
    for (const StoredTensor& t : *stored) {
      by_dtype[t.dtype] += t.bytes;
      report.stored_bytes += t.bytes;
    }
    report.stored_bytes_by_dtype.assign(by_dtype.begin(), by_dtype.end());
  }
  for (int64_t tokens : contexts) report.kv_cache.push_back(EstimateKvCache(config, tokens, /*max_chunk=*/1));

  if (config.model_type == "gemma3") {
    report.notes.push_back("model_type gemma3 (multimodal): only the text decoder is described; "
                           "its vision tower and projector are not counted");
  }
  if (config.family == ModelFamily::kPaliGemma) {
    report.notes.push_back("params_without_embedding excludes the token embedding only; the vision tower's " +
                           std::to_string(int64_t{config.vision.num_patches()} * config.vision.model_dim) +
                           " position-embedding parameters stay counted under vision");
  }
  return report;
}

}  // namespace gemmarun
