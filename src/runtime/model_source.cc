#include "runtime/model_source.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "io/gguf.h"
#include "io/safetensors.h"
#include "model/gguf_model.h"
#include "model/kv_cache.h"
#include "model/loader.h"

namespace gemmarun {
namespace {

// The least the KV cache can take at the context the model is loaded for (f32
// entries, windowed layers bounded by their window, one-token chunks); 0
// context means the engine's default, min(maximum, 8192).
void SetKvCacheReserve(const ModelConfig& config, int64_t context, WeightLoadOptions* options) {
  const int64_t tokens = context > 0 ? std::min<int64_t>(context, config.max_seq_len)
                                     : std::min<int64_t>(config.max_seq_len, 8192);
  options->extra_bytes = KvCacheBytes(config, tokens, /*max_chunk=*/1, /*ring_buffers=*/true);
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

Result<ModelPathKind> DetectModelPath(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::file_status status = fs::status(path, ec);
  if (!fs::exists(status)) return NotFound(path + ": no such file or folder");
  if (fs::is_directory(status)) return ModelPathKind::kFolder;
  if (!fs::is_regular_file(status)) {
    return InvalidArgument(path + ": not a regular file (a FIFO, socket or device); expected a model folder, a GGUF "
                                  "file or a safetensors file");
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) return NotFound(path + ": cannot open");
  unsigned char head[9] = {};
  in.read(reinterpret_cast<char*>(head), sizeof(head));
  const std::streamsize got = in.gcount();
  if (got >= 4 && std::memcmp(head, "GGUF", 4) == 0) return ModelPathKind::kGguf;
  if (got == 9 && head[8] == '{') {
    uint64_t header_length = 0;
    for (int i = 7; i >= 0; --i) header_length = header_length << 8 | head[i];
    if (header_length >= 2 && header_length < (uint64_t{1} << 32)) return ModelPathKind::kSafetensors;
  }
  return InvalidArgument(path + ": neither a GGUF file (no 'GGUF' magic) nor a safetensors file; expected a HF "
                                "checkpoint folder (config.json + *.safetensors) or a GGUF file");
}

Result<LoadedModel> LoadModel(const std::string& path, Backend* backend, const ProgressFn& progress,
                              std::optional<DType> weight_dtype, int64_t context_length) {
  namespace fs = std::filesystem;
  std::error_code ec;
  GR_ASSIGN_OR_RETURN(const ModelPathKind kind, DetectModelPath(path));
  if (kind == ModelPathKind::kGguf) return LoadGguf(path, backend, progress, weight_dtype, context_length);
  // A safetensors file stands for the checkpoint folder holding it: the config is next to it.
  const std::string dir = kind == ModelPathKind::kFolder ? path : fs::path(path).parent_path().string();
  const std::string shown = dir.empty() ? "." : dir;
  if (!fs::exists(fs::path(shown) / "config.json", ec)) {
    if (kind == ModelPathKind::kSafetensors) {
      return NotFound(path + ": a safetensors file without a config.json next to it (give the checkpoint folder)");
    }
    return NotFound(path + ": folder has no config.json (expected a HF checkpoint folder or a GGUF file)");
  }
  return LoadHfFolder(shown, backend, progress, weight_dtype, context_length);
}

Result<ModelConfig> LoadModelConfig(const std::string& path) { return LoadHfConfig(path); }

Result<std::unique_ptr<Tokenizer>> LoadTokenizer(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::file_status status = fs::status(path, ec);
  if (fs::exists(status) && !fs::is_directory(status) && !fs::is_regular_file(status)) {
    return InvalidArgument(path + ": not a regular file (a FIFO, socket or device); expected a model folder, a GGUF "
                                  "file, a tokenizer.json or a tokenizer.model");
  }
  // By content, as for models: a GGUF file whatever its name, else a tokenizer file or folder.
  Result<ModelPathKind> kind = DetectModelPath(path);
  if (!kind.ok() || *kind != ModelPathKind::kGguf) {
    Result<std::unique_ptr<Tokenizer>> tokenizer = Tokenizer::LoadForModel(path);
    if (tokenizer.ok() || !fs::exists(status)) return tokenizer;
    return Status(tokenizer.status().code(), tokenizer.status().message() +
                                                 " (expected a model folder or GGUF file, or a tokenizer.json or "
                                                 "tokenizer.model)");
  }
  GR_ASSIGN_OR_RETURN(GgufFile file, GgufFile::Open(path));
  if (!file.Has("tokenizer.ggml.tokens")) return NotFound(path + ": the GGUF file has no vocabulary");
  return TokenizerFromGguf(file);
}

}  // namespace gemmarun
