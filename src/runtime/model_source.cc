#include "runtime/model_source.h"

#include <filesystem>

#include "io/safetensors.h"
#include "model/loader.h"

namespace gemmarun {
namespace {

bool EndsWith(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

size_t TotalBytes(const ModelWeights& weights, const ModelConfig& config) {
  size_t total = 0;
  ModelWeights& mutable_weights = const_cast<ModelWeights&>(weights);
  ForEachWeight(config, mutable_weights, [&](const WeightSpec& spec) { total += spec.tensor->bytes(); });
  return total;
}

Result<LoadedModel> LoadHfFolder(const std::string& dir, Backend* backend, const ProgressFn& progress) {
  GR_ASSIGN_OR_RETURN(ModelConfig config, LoadHfConfig(dir));
  GR_ASSIGN_OR_RETURN(SafetensorsCheckpoint checkpoint, SafetensorsCheckpoint::Open(dir));
  ModelWeights weights;
  WeightLoadOptions options;
  if (progress) options.progress = [&](size_t done, size_t total) { progress("loading weights", done, total); };
  GR_RETURN_IF_ERROR(LoadWeights(config, [&](const std::string& name) { return checkpoint.Find(name); }, options,
                                 &weights)
                         .WithContext(dir));
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

}  // namespace

Result<LoadedModel> LoadModel(const std::string& path, Backend* backend, const ProgressFn& progress) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::exists(path, ec)) return NotFound(path + ": no such file or folder");
  if (fs::is_directory(path, ec)) {
    if (!fs::exists(fs::path(path) / "config.json", ec)) {
      return NotFound(path + ": folder has no config.json (expected a HF checkpoint folder or a .gguf file)");
    }
    return LoadHfFolder(path, backend, progress);
  }
  if (EndsWith(path, ".gguf")) return Unsupported(path + ": GGUF files are not supported yet");
  return InvalidArgument(path + ": expected a HF checkpoint folder (config.json + *.safetensors) or a .gguf file");
}

Result<ModelConfig> LoadModelConfig(const std::string& path) { return LoadHfConfig(path); }

}  // namespace gemmarun
