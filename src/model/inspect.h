// What `gemmarun inspect` reports about a model, computed from its ModelConfig
// alone: the module tree as transformers prints it (print(model)), parameter
// counts from ForEachWeight's shapes, weight memory per dtype, and the KV-cache /
// recurrent-state size at a given context. Stored tensors (read from safetensors
// headers, or later a GGUF file) add the bytes the checkpoint actually holds.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "model/config.h"
#include "tensor/dtype.h"

namespace gemmarun {

// One tensor as a weight file stores it; the name is the file's own.
struct StoredTensor {
  std::string name;
  DType dtype = DType::kF32;
  size_t bytes = 0;
};

struct KvCacheEstimate {
  int64_t tokens = 0;
  int64_t max_chunk = 1;         // prefill chunk the ring figure assumes
  size_t full_bytes = 0;         // K/V of every attention layer for all `tokens` positions
  size_t ring_bytes = 0;         // sliding-window layers as rings of window + max_chunk - 1 slots
  size_t recurrent_bytes = 0;    // RecurrentGemma: RG-LRU + Conv1D state, independent of `tokens`
  bool beyond_max_seq_len = false;
};

struct ModelInspection {
  std::string class_name;  // "Gemma2ForCausalLM"
  std::string modules;     // print(model) of transformers, byte for byte
  std::string layout;      // "26 layers: 13 sliding-window (4096), 13 global"
  int64_t params = 0;      // tied embeddings counted once
  int64_t embedding_params = 0;
  std::vector<std::pair<std::string, int64_t>> params_by_kind;  // in a fixed order, nonzero kinds only
  // Weight memory if every matrix were held in the dtype (norms, biases and
  // other vectors in f32, as the loader keeps them).
  std::vector<std::pair<DType, size_t>> bytes_by_dtype;
  // Only with stored tensors: their bytes grouped by stored dtype.
  std::vector<std::pair<DType, size_t>> stored_bytes_by_dtype;
  size_t stored_bytes = 0;
  std::vector<KvCacheEstimate> kv_cache;  // one per requested context
  std::vector<std::string> notes;         // caveats worth printing
};

// transformers' print(model) for `config`.
std::string ModuleTree(const ModelConfig& config);

// Bytes of the per-sequence state at `tokens` positions, K/V entries in f32 as
// the engine keeps them; the ring figure assumes prefill chunks of max_chunk.
KvCacheEstimate EstimateKvCache(const ModelConfig& config, int64_t tokens, int64_t max_chunk = 1);

// Everything above; `stored` may be null when no weights are at hand, and
// `contexts` may be empty.
ModelInspection InspectModelConfig(const ModelConfig& config, const std::vector<StoredTensor>* stored,
                                   const std::vector<int64_t>& contexts);

}  // namespace gemmarun
