// `gemmarun inspect`: what a model is made of, without loading its weights:
// the module tree as transformers' print(model) shows it, parameter counts per
// module kind, weight memory per dtype, and the KV-cache / recurrent-state bytes
// at a context length.
//
//   auto report = gemmarun::InspectConfig("./gemma-2-2b/config.json", /*context=*/8192);
//   std::cout << gemmarun::ModelReportToText(*report);
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "gemmarun/status.h"

namespace gemmarun {

struct KvCacheReport {
  int64_t tokens = 0;
  // Prefill chunk the ring figure assumes: a sliding-window layer keeps
  // window + max_chunk - 1 slots, so 1 (token-by-token) is the smallest ring.
  int64_t max_chunk = 1;
  uint64_t full_bytes = 0;             // every attention layer keeps all `tokens` positions
  uint64_t ring_bytes = 0;             // sliding-window layers as ring buffers
  uint64_t recurrent_state_bytes = 0;  // RecurrentGemma; included in both figures above
  int64_t max_seq_len = 0;             // the model's own limit, for comparison
  // K and V of one position in every attention layer, per cache type
  // (--cache-type; q8_0 only where head_dim is a multiple of 32).
  std::vector<std::pair<std::string, uint64_t>> bytes_per_token;
};

struct ModelReport {
  std::string source;      // the file or folder read
  std::string family;      // gemma, gemma2, gemma3, recurrent_gemma, paligemma
  std::string model_type;  // as config.json names it
  std::string class_name;  // the transformers class, e.g. Gemma2ForCausalLM
  std::string layout;      // "26 layers: 13 sliding-window (4096), 13 global"
  std::string modules;     // transformers' print(model), byte for byte
  int64_t params = 0;      // tied embeddings counted once
  int64_t params_without_embedding = 0;
  std::vector<std::pair<std::string, int64_t>> params_by_kind;  // embedding, attention, recurrent, mlp, ...
  // Weight memory with every matrix in the dtype ("f32", "bf16", "f16", "q8_0",
  // "q4_0"); norms, biases and other vectors count as f32, as the engine holds them.
  std::vector<std::pair<std::string, uint64_t>> bytes_by_dtype;
  // Only when weight files were read: their tensors' bytes per stored dtype.
  std::vector<std::pair<std::string, uint64_t>> stored_bytes_by_dtype;
  uint64_t stored_bytes = 0;
  std::optional<KvCacheReport> kv_cache;  // when a context was given
  std::vector<std::string> notes;
};

// From a config.json, or a folder holding one; reads nothing else. context > 0
// adds the KV-cache figures at that many tokens.
Result<ModelReport> InspectConfig(const std::string& config_path, int64_t context = 0);
// From a model folder: its config.json plus, when present, the safetensors
// headers (stored dtypes and bytes); no tensor data is read.
Result<ModelReport> InspectModel(const std::string& model_path, int64_t context = 0);

std::string ModelReportToJson(const ModelReport& report);
std::string ModelReportToText(const ModelReport& report);

}  // namespace gemmarun
