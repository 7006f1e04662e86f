// Gemma models stored as llama.cpp GGUF files: ModelConfig from the metadata and
// the mapping from our (HF) tensor names to GGUF's. llama.cpp's converter
// stores Gemma norms as 1 + w, which the loader is told once, here.
#pragma once

#include <string>

#include "io/gguf.h"
#include "model/config.h"

namespace gemmarun {

// general.architecture gemma / gemma2 / gemma3 → ModelConfig.
Result<ModelConfig> ConfigFromGguf(const GgufFile& file);

// The GGUF name of a tensor listed by ForEachWeight under its HF name, or "" if
// GGUF has no such tensor.
std::string GgufTensorName(const ModelConfig& config, const std::string& hf_name);

}  // namespace gemmarun
