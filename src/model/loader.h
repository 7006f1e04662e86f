// Fills ModelWeights from a weight file: walks ForEachWeight, finds each tensor,
// checks its shape, and copies it into anonymous memory in the compute layout
// (matrices keep their stored dtype, norms become f32 with (1+w) folded).
#pragma once

#include <functional>
#include <optional>
#include <string>

#include "io/tensor_source.h"
#include "model/config.h"
#include "model/weights.h"

namespace gemmarun {

struct WeightLoadOptions {
  // GGUF files from llama.cpp's converter already store Gemma norms as 1 + w.
  bool norms_include_one = false;
  // Convert matrices to this type at load (--dtype); unset keeps the stored type.
  // Matrices whose rows are not whole blocks of a quantized type stay as stored.
  std::optional<DType> matrix_dtype;
  // Names the checkpoint in errors that no tensor's file names (a missing tensor).
  std::string where;
  // Memory the model will need beyond its weights (the KV cache at the context it
  // is loaded for); with the weights, checked against the memory available before
  // anything is copied. `extra_what` says what it is, for the error.
  size_t extra_bytes = 0;
  std::string extra_what = "the KV cache";
  // Called with (bytes done, bytes total) while copying.
  std::function<void(size_t, size_t)> progress;
};

// Finds a tensor by its HF name (a GGUF source maps it to its own name).
using TensorLookup = std::function<const TensorSource*(const std::string& hf_name)>;

Status LoadWeights(const ModelConfig& config, const TensorLookup& lookup,
                   const WeightLoadOptions& options, ModelWeights* weights);

// HF names under which a tensor may be stored: transformers versions and
// multimodal wrappers move the same tensor under different prefixes.
std::vector<std::string> CandidateNames(const std::string& name);

}  // namespace gemmarun
