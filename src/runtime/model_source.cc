#include "runtime/model_source.h"

#include <algorithm>
#include <filesystem>

#include "io/gguf.h"
#include "io/safetensors.h"
#include "model/gguf_model.h"
#include "model/kv_cache.h"
#include "model/loader.h"

namespace gemmarun {
namespace {

bool EndsWith(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// The least the KV cache can take at the context the model is loaded for (ring
// buffers, one-token chunks), in double so that a 2^30-token context saturates
// instead of wrapping; 0 context means the engine's default, min(maximum, 8192).
void SetKvCacheReserve(const ModelConfig& config, int64_t context, WeightLoadOptions* options) {
  const int64_t tokens = context > 0 ? context : std::min<int64_t>(config.max_seq_len, 8192);
  double bytes = 0;
  for (const LayerConfig& layer : config.layers) {
    if (layer.kind != BlockKind::kAttention) continue;
    bytes += 2.0 * double(KvCapacity(layer, tokens, 1)) * config.num_kv_heads * config.head_dim * sizeof(float);
  }
  options->extra_bytes = bytes < 0x1p62 ? static_cast<size_t>(bytes) : size_t{1} << 62;
  options->extra_what = "the KV cache at " + std::to_string(tokens) + " tokens";
}

size_t TotalBytes(const ModelWeights& weights, const ModelConfig& config) {
  size_t total = 0;
  ForEachWeight(config, weights, [&](const WeightSpec& spec) { total += spec.tensor->bytes(); });
  return total;
}

Result<LoadedModel> LoadHfFolder(const std::string& dir, Backend* backend, const ProgressFn& progress,
                                 std::optional<DType> weight_dtype, int64_t context_length) {
  GR_ASSIGN_OR_RETURN(ModelConfig config, LoadHfConfig(dir));
  GR_ASSIGN_OR_RETURN(SafetensorsCheckpoint checkpoint, SafetensorsCheckpoint::Open(dir));
  ModelWeights weights;
  WeightLoadOptions options;
  options.matrix_dtype = weight_dtype;
  if (progress) options.progress = [&](size_t done, size_t total) { progress("loading weights", done, total); };
  options.where = dir;  // errors about a tensor name its file themselves
  SetKvCacheReserve(config, context_length, &options);
  GR_RETURN_IF_ERROR(LoadWeights(config, [&](const std::string& name) { return checkpoint.Find(name); }, options,
                                 &weights));
  LoadedModel loaded;
  loaded.weight_bytes = TotalBytes(weights, config);
  GR_ASSIGN_OR_RETURN(loaded.model, CreateModel(std::move(config), std::move(weights), backend));
  namespace fs = std::filesystem;
  std::error_code ec;
  if (fs::exists(fs::path(dir) / "tokenizer.json", ec) || fs::exists(fs::path(dir) / "tokenizer.model", ec)) {
    GR_ASSIGN_OR_RETURN(loaded.tokenizer, Tokenizer::LoadForModel(dir));
  }
  return loaded;
}

Result<std::unique_ptr<Tokenizer>> TokenizerFromGguf(const GgufFile& file) {
  GR_ASSIGN_OR_RETURN(std::string kind, file.GetString("tokenizer.ggml.model"));
  if (kind != "llama") {
    return Unsupported(file.path() + ": tokenizer.ggml.model '" + kind + "' (Gemma uses SentencePiece, 'llama')");
  }
  GR_ASSIGN_OR_RETURN(std::vector<std::string> pieces, file.GetStringArray("tokenizer.ggml.tokens"));
  GR_ASSIGN_OR_RETURN(std::vector<float> scores, file.GetFloatArray("tokenizer.ggml.scores"));
  GR_ASSIGN_OR_RETURN(std::vector<int64_t> types64, file.GetIntArray("tokenizer.ggml.token_type"));
  std::vector<int32_t> types(types64.begin(), types64.end());
  SpecialIds ids;
  auto read_id = [&](const char* key, int32_t* out) -> Status {
    if (!file.Has(key)) return Status::Ok();
    GR_ASSIGN_OR_RETURN(int64_t id, file.GetInt(key));
    if (id < -1 || id > INT32_MAX) {
      return Corrupt(file.path() + ": metadata '" + key + "' = " + std::to_string(id) + " is not a token id");
    }
    *out = static_cast<int32_t>(id);
    return Status::Ok();
  };
  GR_RETURN_IF_ERROR(read_id("tokenizer.ggml.bos_token_id", &ids.bos));
  GR_RETURN_IF_ERROR(read_id("tokenizer.ggml.eos_token_id", &ids.eos));
  GR_RETURN_IF_ERROR(read_id("tokenizer.ggml.padding_token_id", &ids.pad));
  GR_RETURN_IF_ERROR(read_id("tokenizer.ggml.unknown_token_id", &ids.unk));
  bool add_space_prefix = false;
  if (file.Has("tokenizer.ggml.add_space_prefix")) {
    GR_ASSIGN_OR_RETURN(add_space_prefix, file.GetBool("tokenizer.ggml.add_space_prefix"));
  }
  return Tokenizer::FromVocabulary(std::move(pieces), std::move(scores), std::move(types), ids, add_space_prefix);
}

Result<LoadedModel> LoadGguf(const std::string& path, Backend* backend, const ProgressFn& progress,
                             std::optional<DType> weight_dtype, int64_t context_length) {
  GR_ASSIGN_OR_RETURN(GgufFile file, GgufFile::Open(path));
  GR_ASSIGN_OR_RETURN(ModelConfig config, ConfigFromGguf(file));
  ModelWeights weights;
  WeightLoadOptions options;
  options.matrix_dtype = weight_dtype;
  options.norms_include_one = true;  // ref: convert_hf_to_gguf.py adds 1 to every Gemma norm weight
  if (progress) options.progress = [&](size_t done, size_t total) { progress("loading weights", done, total); };
  auto lookup = [&](const std::string& hf_name) -> const TensorSource* {
    const std::string name = GgufTensorName(config, hf_name);
    return name.empty() ? nullptr : file.Find(name);
  };
  options.where = path;
  SetKvCacheReserve(config, context_length, &options);
  GR_RETURN_IF_ERROR(LoadWeights(config, lookup, options, &weights));
  LoadedModel loaded;
  loaded.weight_bytes = TotalBytes(weights, config);
  if (file.Has("tokenizer.chat_template")) {
    GR_ASSIGN_OR_RETURN(loaded.chat_template, file.GetString("tokenizer.chat_template"));
  }
  if (file.Has("tokenizer.ggml.tokens")) {
    GR_ASSIGN_OR_RETURN(loaded.tokenizer, TokenizerFromGguf(file));
  }
  GR_ASSIGN_OR_RETURN(loaded.model, CreateModel(std::move(config), std::move(weights), backend));
  return loaded;
}

}  // namespace

Result<LoadedModel> LoadModel(const std::string& path, Backend* backend, const ProgressFn& progress,
                              std::optional<DType> weight_dtype, int64_t context_length) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::exists(path, ec)) return NotFound(path + ": no such file or folder");
  if (fs::is_directory(path, ec)) {
    if (!fs::exists(fs::path(path) / "config.json", ec)) {
      return NotFound(path + ": folder has no config.json (expected a HF checkpoint folder or a .gguf file)");
    }
    return LoadHfFolder(path, backend, progress, weight_dtype, context_length);
  }
  if (EndsWith(path, ".gguf")) return LoadGguf(path, backend, progress, weight_dtype, context_length);
  return InvalidArgument(path + ": expected a HF checkpoint folder (config.json + *.safetensors) or a .gguf file");
}

Result<ModelConfig> LoadModelConfig(const std::string& path) { return LoadHfConfig(path); }

Result<std::unique_ptr<Tokenizer>> LoadTokenizer(const std::string& path) {
  if (!EndsWith(path, ".gguf")) return Tokenizer::LoadForModel(path);
  GR_ASSIGN_OR_RETURN(GgufFile file, GgufFile::Open(path));
  if (!file.Has("tokenizer.ggml.tokens")) return NotFound(path + ": the GGUF file has no vocabulary");
  return TokenizerFromGguf(file);
}

}  // namespace gemmarun
