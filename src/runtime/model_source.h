// Opens whatever a user points -m at: a HF checkpoint folder (config.json +
// safetensors) or a GGUF file, and builds the model and tokenizer from it.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "model/model.h"
#include "tokenizer/tokenizer.h"

namespace gemmarun {

struct LoadedModel {
  std::unique_ptr<Model> model;
  std::unique_ptr<Tokenizer> tokenizer;  // null when the checkpoint ships none
  size_t weight_bytes = 0;
  std::string chat_template;  // as the checkpoint ships it, if any
};

using ProgressFn = std::function<void(const char* stage, size_t done, size_t total)>;

// weight_dtype converts matrices at load (--dtype); unset keeps the stored type.
// A model whose weights plus KV cache at context_length tokens (0: the engine's
// default) exceed the memory available is refused before anything is copied.
Result<LoadedModel> LoadModel(const std::string& path, Backend* backend, const ProgressFn& progress,
                              std::optional<DType> weight_dtype = std::nullopt, int64_t context_length = 0);

// What a path holds, judged by its content (an ollama blob has no extension).
enum class ModelPathKind { kFolder, kGguf, kSafetensors };

// A folder, a file starting with the GGUF magic, or a file starting with a
// safetensors header (8-byte little-endian length, then '{'). Anything else,
// and anything that is not a regular file (a FIFO would block the reader), is
// an error naming the path.
Result<ModelPathKind> DetectModelPath(const std::string& path);

// Only config.json: for `inspect --config` without weights.
Result<ModelConfig> LoadModelConfig(const std::string& path);

}  // namespace gemmarun
