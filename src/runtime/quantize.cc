// `gemmarun quantize`: HF folder or GGUF in, llama.cpp-compatible GGUF out.
//
// The weights go through the same loader as inference (LoadWeights with
// matrix_dtype = the target type), so matrices are converted row by row with
// the ggml reference quantizers and norms come out as f32 with (1 + w) folded,
// exactly what llama.cpp's converter stores. Metadata follows
// convert_hf_to_gguf.py's GemmaModel / Gemma2Model / Gemma3Model
// (ref: llama.cpp convert_hf_to_gguf.py set_gguf_parameters, set_vocab).
//
// GGUF keeps less of the config than config.json (no query_pre_attn_scalar, no
// Gemma 3 local RoPE base, a fixed sliding pattern). Before the weights are
// touched, the metadata is written to a small probe file, read back with
// ConfigFromGguf (the reader our engine uses, which encodes llama.cpp's
// hard-coded Gemma values) and compared with the source config, so a file that
// would compute a different model is never written.
#include "gemmarun/quantize.h"

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <optional>
#include <vector>

#include "io/gguf.h"
#include "io/json_util.h"
#include "io/safetensors.h"
#include "model/gguf_model.h"
#include "model/loader.h"
#include "model/weights.h"
#include "tensor/quant.h"
#include "tokenizer/model.h"
#include "tokenizer/tokenizer.h"

namespace gemmarun {
namespace {

namespace fs = std::filesystem;

constexpr uint32_t kQuantizationVersion = 2;  // ref: ggml GGML_QNT_VERSION

// general.file_type. ref: llama.cpp include/llama.h enum llama_ftype
uint32_t FileType(DType type) {
  switch (type) {
    case DType::kF32: return 0;   // LLAMA_FTYPE_ALL_F32
    case DType::kF16: return 1;   // LLAMA_FTYPE_MOSTLY_F16
    case DType::kQ4_0: return 2;  // LLAMA_FTYPE_MOSTLY_Q4_0
    case DType::kQ8_0: return 7;  // LLAMA_FTYPE_MOSTLY_Q8_0
    case DType::kQ5_0: return 8;  // LLAMA_FTYPE_MOSTLY_Q5_0
    case DType::kBF16: return 32; // LLAMA_FTYPE_MOSTLY_BF16
    default: return 0;
  }
}

const char* ArchName(ModelFamily family) {
  switch (family) {
    case ModelFamily::kGemma: return "gemma";
    case ModelFamily::kGemma2: return "gemma2";
    case ModelFamily::kGemma3: return "gemma3";
    default: return "";
  }
}

// A SentencePiece vocabulary as GGUF stores it.
struct Vocabulary {
  std::vector<std::string> pieces;
  std::vector<float> scores;
  std::vector<int32_t> types;
  SpecialIds ids;
  std::map<std::string, int32_t> extra_ids;  // tokenizer.ggml.<name>_token_id
  std::optional<bool> add_bos;
  std::optional<bool> add_eos;
  std::string chat_template;
};

// SentencePiece-style scores for a HF BPE tokenizer.json: HF's Gemma merges
// were generated from tokenizer.model ordered by the merged piece's score
// (ref: transformers convert_slow_tokenizer SentencePieceExtractor), so
// -rank of the first merge producing a piece orders merges the same way. Normal
// pieces no merge produces get a lower score than any merge; control,
// user-defined and byte pieces get 0, as in Gemma's tokenizer.model.
Result<std::vector<float>> ScoresFromMerges(const std::string& path, const Tokenizer& tokenizer,
                                            const std::vector<int32_t>& types) {
  GR_ASSIGN_OR_RETURN(nlohmann::json root, ParseJsonFile(path));
  const auto model = root.find("model");
  if (model == root.end() || !model->is_object() || !model->contains("merges") || !(*model)["merges"].is_array()) {
    return Unsupported(path + ": no model.merges array to derive SentencePiece scores from");
  }
  const nlohmann::json& merges = (*model)["merges"];
  const size_t n = types.size();
  std::vector<float> scores(n, 0.0f);
  std::vector<uint8_t> scored(n, 0);
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    const nlohmann::json& m = merges[rank];
    std::string merged;
    if (m.is_string()) {
      const std::string& s = m.get_ref<const std::string&>();
      const size_t space = s.find(' ');
      if (space == std::string::npos) return Corrupt(path + ": merge '" + s + "' has no space");
      merged = s.substr(0, space) + s.substr(space + 1);
    } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
      merged = m[0].get<std::string>() + m[1].get<std::string>();
    } else {
      return Corrupt(path + ": merge " + std::to_string(rank) + " is neither \"a b\" nor [\"a\", \"b\"]");
    }
    const std::optional<int32_t> id = tokenizer.TokenId(merged);
    if (!id || *id < 0 || static_cast<size_t>(*id) >= n || scored[*id]) continue;
    scores[*id] = -static_cast<float>(rank);
    scored[*id] = 1;
  }
  const float floor = -static_cast<float>(merges.size());
  for (size_t id = 0; id < n; ++id) {
    if (!scored[id] && types[id] == static_cast<int32_t>(TokenType::kNormal)) scores[id] = floor - static_cast<float>(id);
  }
  return scores;
}

// tokenizer_config.json: add_bos_token, add_eos_token, chat_template (a string,
// or a list of {name, template} of which "default" is taken).
Status ReadTokenizerConfig(const fs::path& path, Vocabulary* vocab) {
  std::error_code ec;
  if (!fs::exists(path, ec)) return Status::Ok();
  GR_ASSIGN_OR_RETURN(nlohmann::json config, ParseJsonFile(path.string()));
  if (!config.is_object()) return Status::Ok();
  if (auto it = config.find("add_bos_token"); it != config.end() && it->is_boolean()) vocab->add_bos = it->get<bool>();
  if (auto it = config.find("add_eos_token"); it != config.end() && it->is_boolean()) vocab->add_eos = it->get<bool>();
  if (auto it = config.find("chat_template"); it != config.end()) {
    if (it->is_string()) {
      vocab->chat_template = it->get<std::string>();
    } else if (it->is_array()) {
      for (const auto& entry : *it) {
        if (entry.is_object() && entry.value("name", "") == "default" && entry.contains("template") &&
            entry["template"].is_string()) {
          vocab->chat_template = entry["template"].get<std::string>();
        }
      }
    }
  }
  return Status::Ok();
}

// The folder's vocabulary, as llama.cpp's _set_vocab_sentencepiece would write
// it. Prefers tokenizer.model's own scores; a folder with only tokenizer.json
// gets scores derived from its merges.
Result<std::optional<Vocabulary>> ReadFolderVocabulary(const std::string& dir, ModelFamily family) {
  std::error_code ec;
  const fs::path folder(dir);
  const bool has_json = fs::exists(folder / "tokenizer.json", ec);
  const bool has_spm = fs::exists(folder / "tokenizer.model", ec);
  if (!has_json && !has_spm) return std::optional<Vocabulary>();
  GR_ASSIGN_OR_RETURN(std::unique_ptr<Tokenizer> tokenizer, Tokenizer::LoadForModel(dir));
  const tokenizer_internal::Model& model = tokenizer->model();
  Vocabulary vocab;
  vocab.pieces = model.pieces;
  vocab.types.reserve(model.types.size());
  for (TokenType t : model.types) vocab.types.push_back(static_cast<int32_t>(t));
  vocab.ids = model.ids;
  if (vocab.ids.unk >= 0 && vocab.ids.unk < static_cast<int32_t>(vocab.types.size())) {
    vocab.types[vocab.ids.unk] = static_cast<int32_t>(TokenType::kUnknown);
  }
  if (model.algorithm == tokenizer_internal::Model::Algorithm::kScores && model.scores.size() == model.pieces.size()) {
    vocab.scores = model.scores;
  } else if (has_spm) {
    GR_ASSIGN_OR_RETURN(std::unique_ptr<Tokenizer> spm,
                        Tokenizer::FromSentencePieceModel((folder / "tokenizer.model").string()));
    if (spm->model().scores.size() != vocab.pieces.size()) {
      return Corrupt(dir + ": tokenizer.model has " + std::to_string(spm->model().scores.size()) +
                     " pieces but tokenizer.json " + std::to_string(vocab.pieces.size()));
    }
    vocab.scores = spm->model().scores;
  } else {
    GR_ASSIGN_OR_RETURN(vocab.scores, ScoresFromMerges((folder / "tokenizer.json").string(), *tokenizer, vocab.types));
  }
  GR_RETURN_IF_ERROR(ReadTokenizerConfig(folder / "tokenizer_config.json", &vocab));
  if (family == ModelFamily::kGemma) {
    // ref: convert_hf_to_gguf.py GemmaModel.set_vocab (CodeGemma's FIM tokens).
    const std::pair<const char*, const char*> fim[] = {{"prefix", "<|fim_prefix|>"},
                                                       {"suffix", "<|fim_suffix|>"},
                                                       {"middle", "<|fim_middle|>"},
                                                       {"fsep", "<|file_separator|>"},
                                                       {"eot", "<end_of_turn>"}};
    for (const auto& [key, piece] : fim) {
      if (auto id = tokenizer->TokenId(piece)) vocab.extra_ids[key] = *id;
    }
  }
  return std::optional<Vocabulary>(std::move(vocab));
}

void AddVocabulary(const Vocabulary& v, GgufWriter* w) {
  w->AddString("tokenizer.ggml.model", "llama");
  w->AddStringArray("tokenizer.ggml.tokens", v.pieces);
  w->AddFloatArray("tokenizer.ggml.scores", v.scores);
  w->AddInt32Array("tokenizer.ggml.token_type", v.types);
  for (const auto& [name, id] : v.extra_ids) w->AddUInt32("tokenizer.ggml." + name + "_token_id", id);
  w->AddBool("tokenizer.ggml.add_bos_token", v.add_bos.value_or(true));
  w->AddBool("tokenizer.ggml.add_eos_token", v.add_eos.value_or(false));
  w->AddBool("tokenizer.ggml.add_space_prefix", false);
  if (!v.chat_template.empty()) w->AddString("tokenizer.chat_template", v.chat_template);
}

// Special ids: from the vocabulary when there is one, else from config.json.
void AddSpecialIds(const ModelConfig& c, const Vocabulary* v, GgufWriter* w) {
  const int32_t bos = v && v->ids.bos >= 0 ? v->ids.bos : c.bos_id;
  const int32_t eos = v && v->ids.eos >= 0 ? v->ids.eos : (c.eos_ids.empty() ? -1 : c.eos_ids.front());
  const int32_t pad = v && v->ids.pad >= 0 ? v->ids.pad : c.pad_id;
  const int32_t unk = v ? v->ids.unk : -1;
  if (bos >= 0) w->AddUInt32("tokenizer.ggml.bos_token_id", bos);
  if (eos >= 0) w->AddUInt32("tokenizer.ggml.eos_token_id", eos);
  if (unk >= 0) w->AddUInt32("tokenizer.ggml.unknown_token_id", unk);
  if (pad >= 0) w->AddUInt32("tokenizer.ggml.padding_token_id", pad);
}

// general.* and {arch}.* keys. ref: convert_hf_to_gguf.py Gemma*Model.set_gguf_parameters
Status AddModelMetadata(const ModelConfig& c, const std::string& name, DType type, GgufWriter* w) {
  const std::string arch = ArchName(c.family);
  const LayerConfig* global = nullptr;
  const LayerConfig* sliding = nullptr;
  for (const LayerConfig& layer : c.layers) {
    if (layer.attention_window == 0 && global == nullptr) global = &layer;
    if (layer.attention_window > 0 && sliding == nullptr) sliding = &layer;
  }
  const LayerConfig& first = c.layers.front();
  w->AddString("general.architecture", arch);
  w->AddString("general.name", name);
  w->AddUInt32("general.file_type", FileType(type));
  w->AddUInt32("general.quantization_version", kQuantizationVersion);
  w->AddUInt32(arch + ".context_length", c.max_seq_len);
  w->AddUInt32(arch + ".embedding_length", c.model_dim);
  w->AddUInt32(arch + ".block_count", c.num_layers());
  w->AddUInt32(arch + ".feed_forward_length", c.ff_hidden_dim);
  w->AddUInt32(arch + ".attention.head_count", c.num_heads);
  w->AddUInt32(arch + ".attention.head_count_kv", c.num_kv_heads);
  w->AddUInt32(arch + ".attention.key_length", c.head_dim);
  w->AddUInt32(arch + ".attention.value_length", c.head_dim);
  w->AddFloat32(arch + ".attention.layer_norm_rms_epsilon", c.rms_norm_eps);
  // Gemma 3's local layers use a fixed base (10000) that GGUF does not store:
  // freq_base is the global layers'.
  w->AddFloat32(arch + ".rope.freq_base", (global ? global : &first)->rope_theta);
  if (c.family == ModelFamily::kGemma2) {
    w->AddFloat32(arch + ".attn_logit_softcapping", first.attn_softcap);
    w->AddFloat32(arch + ".final_logit_softcapping", c.final_softcap);
  }
  if (c.family == ModelFamily::kGemma3) {
    if (first.attn_softcap > 0.0f || c.final_softcap > 0.0f) {
      return Unsupported("gemma3 with logit soft-capping: llama.cpp's gemma3 graph has none");
    }
    if (global != nullptr && global->rope_position_scale != 1.0f) {
      w->AddString(arch + ".rope.scaling.type", "linear");
      w->AddFloat32(arch + ".rope.scaling.factor", global->rope_position_scale);
    }
  }
  if (c.family != ModelFamily::kGemma && sliding != nullptr) {
    w->AddUInt32(arch + ".attention.sliding_window", sliding->attention_window);
  }
  return Status::Ok();
}

bool Close(float a, float b) { return std::fabs(a - b) <= 1e-6f * std::max(1.0f, std::max(std::fabs(a), std::fabs(b))); }

// What a GGUF reader makes of the metadata must be the model we convert.
Status CompareConfigs(const ModelConfig& want, const ModelConfig& got) {
  auto differ = [](const std::string& what, const std::string& want, const std::string& got) {
    return Unsupported("GGUF cannot express this model's " + what + " (" + want + "; a GGUF reader, llama.cpp's or " +
                       "ours, would use " + got + ")");
  };
  auto str = [](auto v) { return std::to_string(v); };
  if (want.family != got.family) return differ("family", FamilyName(want.family), FamilyName(got.family));
  const std::pair<const char*, std::pair<int, int>> ints[] = {
      {"hidden_size", {want.model_dim, got.model_dim}},
      {"intermediate_size", {want.ff_hidden_dim, got.ff_hidden_dim}},
      {"num_attention_heads", {want.num_heads, got.num_heads}},
      {"num_key_value_heads", {want.num_kv_heads, got.num_kv_heads}},
      {"head_dim", {want.head_dim, got.head_dim}},
      {"rotary dimension", {want.rotary_dim, got.rotary_dim}},
      {"max_position_embeddings", {want.max_seq_len, got.max_seq_len}},
      {"layer count", {want.num_layers(), got.num_layers()}},
  };
  for (const auto& [what, values] : ints) {
    if (values.first != values.second) return differ(what, str(values.first), str(values.second));
  }
  if (!Close(want.rms_norm_eps, got.rms_norm_eps)) return differ("rms_norm_eps", str(want.rms_norm_eps), str(got.rms_norm_eps));
  if (!Close(want.query_scale, got.query_scale)) {
    auto scalar = [](float scale) {  // query_pre_attn_scalar = 1 / scale^2
      char text[32];
      std::snprintf(text, sizeof(text), "1/sqrt(%.6g)", 1.0 / (double(scale) * scale));
      return std::string(text);
    };
    return differ("query scale (query_pre_attn_scalar)", scalar(want.query_scale), scalar(got.query_scale));
  }
  if (!Close(want.final_softcap, got.final_softcap)) {
    return differ("final_logit_softcapping", str(want.final_softcap), str(got.final_softcap));
  }
  for (int i = 0; i < want.num_layers(); ++i) {
    const LayerConfig& a = want.layers[i];
    const LayerConfig& b = got.layers[i];
    const std::string layer = "layer " + str(i) + " ";
    if (a.attention_window != b.attention_window) {
      return differ(layer + "attention window", str(a.attention_window), str(b.attention_window));
    }
    if (!Close(a.rope_theta, b.rope_theta)) return differ(layer + "RoPE base", str(a.rope_theta), str(b.rope_theta));
    if (!Close(a.rope_position_scale, b.rope_position_scale)) {
      return differ(layer + "RoPE scaling", str(a.rope_position_scale), str(b.rope_position_scale));
    }
    if (!Close(a.attn_softcap, b.attn_softcap)) {
      return differ(layer + "attn_logit_softcapping", str(a.attn_softcap), str(b.attn_softcap));
    }
    if (a.qk_norm != b.qk_norm || a.post_norms != b.post_norms || a.kind != b.kind) {
      return differ(layer + "block layout", "the source's", "another");
    }
  }
  return Status::Ok();
}

// Writes the metadata with a [vocab_rows, 1] stand-in embedding (ConfigFromGguf
// reads the vocabulary size from token_embd), reads it back and compares.
Status CheckRoundTrip(const ModelConfig& config, const std::string& name, DType type, const Vocabulary* vocab,
                      int64_t vocab_rows, const std::string& output) {
  GgufWriter probe;
  GR_RETURN_IF_ERROR(AddModelMetadata(config, name, type, &probe));
  AddSpecialIds(config, vocab, &probe);
  std::vector<float> stand_in(vocab_rows, 0.0f);
  GR_RETURN_IF_ERROR(probe.AddTensorRef(
      "token_embd.weight", DType::kF32, Shape{vocab_rows, 1},
      {reinterpret_cast<const uint8_t*>(stand_in.data()), stand_in.size() * sizeof(float)}));
  const std::string path = output + ".probe";
  GR_RETURN_IF_ERROR(probe.Write(path));
  Result<GgufFile> file = GgufFile::Open(path);
  Result<ModelConfig> read = file.ok() ? ConfigFromGguf(*file) : Result<ModelConfig>(file.status());
  std::error_code ec;
  fs::remove(path, ec);
  GR_RETURN_IF_ERROR(read.status());
  return CompareConfigs(config, *read);
}

// A matrix the loader could not convert (rows not whole blocks) is stored as
// f16, or f32 when it already is: llama.cpp's converter falls back the same way.
Status KeepAsFloat(const WeightSpec& spec) {
  Tensor& t = *spec.tensor;
  if (t.dtype() == DType::kF32 || t.dtype() == DType::kF16) return Status::Ok();
  Tensor f16;
  if (!Tensor::TryCreate(DType::kF16, t.shape(), &f16)) return Internal(spec.name + ": out of memory");
  const int64_t cols = t.shape().cols();
  std::vector<float> row(cols);
  for (int64_t r = 0; r < t.shape().rows(); ++r) {
    DequantizeRow(t.dtype(), t.view().row(r), row.data(), cols);
    QuantizeRow(DType::kF16, row.data(), f16.view().row(r), cols);
  }
  t = std::move(f16);
  return Status::Ok();
}

// general.* keys that AddModelMetadata writes for the new file (or that the
// writer derives), so they are not copied from a GGUF input.
bool DescribesTheFile(const std::string& key) {
  return key == "general.architecture" || key == "general.name" || key == "general.file_type" ||
         key == "general.quantization_version" || key == "general.alignment";
}

std::string DefaultName(const std::string& input, const GgufFile* gguf) {
  if (gguf != nullptr && gguf->Has("general.name")) {
    if (auto name = gguf->GetString("general.name"); name.ok() && !name->empty()) return *name;
  }
  fs::path path = fs::path(input);
  if (!path.has_filename()) path = path.parent_path();  // "./gemma-2b/"
  return gguf != nullptr ? path.stem().string() : path.filename().string();
}

}  // namespace

const char* QuantizeTypes() { return "f32, f16, bf16, q8_0, q4_0, q5_0"; }

Result<QuantizeReport> QuantizeModel(const std::string& input, const std::string& output,
                                     const QuantizeOptions& options) {
  DType type;
  if (!ParseDType(options.type, &type) || !(type == DType::kF32 || type == DType::kF16 || type == DType::kBF16 ||
                                            type == DType::kQ8_0 || type == DType::kQ4_0 || type == DType::kQ5_0)) {
    return InvalidArgument("type '" + options.type + "' is not one of " + QuantizeTypes());
  }
  if (output.empty()) return InvalidArgument("no output file given");
  std::error_code ec;
  if (!fs::exists(input, ec)) return NotFound(input + ": no such file or folder");
  if (fs::equivalent(input, output, ec)) return InvalidArgument(output + ": the output would overwrite the input");
  // Checked before any temporary file next to the output is written, so the error names the folder.
  const fs::path output_dir = fs::path(output).parent_path();
  if (!output_dir.empty() && !fs::is_directory(output_dir, ec)) {
    return NotFound(output + ": the folder " + output_dir.string() + " does not exist");
  }
  if (fs::is_directory(output, ec)) return InvalidArgument(output + ": is a folder; give the .gguf file to write");

  // The source: its config, a tensor lookup by HF name, and its vocabulary.
  const bool is_folder = fs::is_directory(input, ec);
  std::optional<GgufFile> gguf;
  std::optional<SafetensorsCheckpoint> safetensors;
  ModelConfig config;
  if (is_folder) {
    GR_ASSIGN_OR_RETURN(config, LoadHfConfig(input));
  } else {
    GR_ASSIGN_OR_RETURN(GgufFile file, GgufFile::Open(input));
    gguf.emplace(std::move(file));
    GR_ASSIGN_OR_RETURN(config, ConfigFromGguf(*gguf));
  }
  if (config.family != ModelFamily::kGemma && config.family != ModelFamily::kGemma2 &&
      config.family != ModelFamily::kGemma3) {
    return Unsupported(input + ": " + FamilyName(config.family) +
                       " models cannot be written as GGUF (llama.cpp has no such architecture); "
                       "quantize takes Gemma 1, 2 and 3 text models");
  }
  std::optional<Vocabulary> vocab;
  if (is_folder) {
    GR_ASSIGN_OR_RETURN(vocab, ReadFolderVocabulary(input, config.family));
  }
  const bool has_tokenizer = vocab.has_value() || (gguf && gguf->Has("tokenizer.ggml.tokens"));
  const std::string name = options.name.empty() ? DefaultName(input, gguf ? &*gguf : nullptr) : options.name;

  // Gemma 3 checkpoints carry more embedding rows than tokens; llama.cpp needs
  // them equal and drops the rest (ref: Gemma3Model.modify_tensors, "remove OOV rows").
  int64_t vocab_rows = config.vocab_size;
  if (vocab) {
    const int64_t tokens = static_cast<int64_t>(vocab->pieces.size());
    if (tokens > config.vocab_size) {
      return Unsupported(input + ": the tokenizer has " + std::to_string(tokens) + " tokens but the embedding only " +
                         std::to_string(config.vocab_size) + " rows");
    }
    vocab_rows = tokens;
  }
  ModelConfig written = config;
  written.vocab_size = static_cast<int>(vocab_rows);
  GR_RETURN_IF_ERROR(CheckRoundTrip(written, name, type, vocab ? &*vocab : nullptr, vocab_rows, output)
                         .WithContext(input));

  // Weights, converted as --dtype converts them at load.
  TensorLookup lookup;
  WeightLoadOptions load;
  load.matrix_dtype = type;
  if (gguf) {
    load.norms_include_one = true;  // ref: convert_hf_to_gguf.py adds 1 to every Gemma norm weight
    lookup = [&](const std::string& hf_name) -> const TensorSource* {
      const std::string gguf_name = GgufTensorName(config, hf_name);
      return gguf_name.empty() ? nullptr : gguf->Find(gguf_name);
    };
  } else {
    GR_ASSIGN_OR_RETURN(SafetensorsCheckpoint checkpoint, SafetensorsCheckpoint::Open(input));
    safetensors.emplace(std::move(checkpoint));
    lookup = [&](const std::string& hf_name) { return safetensors->Find(hf_name); };
  }
  QuantizeReport report;
  load.progress = [&](size_t done, size_t total) {
    report.input_bytes = total;
    if (options.progress) options.progress("converting weights", done, total);
  };
  ModelWeights weights;
  GR_RETURN_IF_ERROR(LoadWeights(config, lookup, load, &weights).WithContext(input));

  GgufWriter writer;
  GR_RETURN_IF_ERROR(AddModelMetadata(written, name, type, &writer));
  AddSpecialIds(written, vocab ? &*vocab : nullptr, &writer);
  if (vocab) {
    AddVocabulary(*vocab, &writer);
  } else if (gguf) {
    for (const std::string& key : gguf->Keys()) {
      if (key.rfind("tokenizer.", 0) == 0) GR_RETURN_IF_ERROR(writer.CopyValue(*gguf, key));
    }
  }
  if (gguf) {
    // Descriptive keys (general.license, .basename, .tags, ...) carry over.
    for (const std::string& key : gguf->Keys()) {
      if (key.rfind("general.", 0) == 0 && !DescribesTheFile(key)) GR_RETURN_IF_ERROR(writer.CopyValue(*gguf, key));
    }
  }
  Status status;
  ForEachWeight(config, weights, [&](const WeightSpec& spec) {
    if (!status.ok()) return;
    if (spec.tensor->empty()) {
      if (spec.required) status = Internal(spec.name + ": not loaded");
      return;
    }
    const std::string gguf_name = GgufTensorName(config, spec.name);
    if (gguf_name.empty()) {
      status = Internal(spec.name + ": no GGUF name");
      return;
    }
    if (spec.kind == WeightKind::kMatrix) {
      if (spec.tensor->dtype() == type) {
        ++report.matrices_converted;
      } else {
        ++report.matrices_kept;
        status = KeepAsFloat(spec);
        if (!status.ok()) return;
      }
    }
    Shape shape = spec.tensor->shape();
    size_t bytes = spec.tensor->bytes();
    if (gguf_name == "token_embd.weight" && shape[0] > vocab_rows) {
      report.vocab_trimmed_from = static_cast<int>(shape[0]);
      shape = Shape{vocab_rows, shape[1]};
      bytes = RowBytes(spec.tensor->dtype(), shape[1]) * vocab_rows;
    }
    status = writer.AddTensorRef(gguf_name, spec.tensor->dtype(), shape, {spec.tensor->data(), bytes});
    ++report.tensors;
  });
  GR_RETURN_IF_ERROR(status);
  if (options.progress) options.progress("writing", 0, 1);
  GR_RETURN_IF_ERROR(writer.Write(output));
  if (options.progress) options.progress("writing", 1, 1);
  report.architecture = ArchName(config.family);
  report.type = Name(type);
  report.has_tokenizer = has_tokenizer;
  report.output_bytes = fs::file_size(output, ec);
  return report;
}

}  // namespace gemmarun
