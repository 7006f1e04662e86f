// Factories of the model families other than the shared decoder.
#pragma once

#include <memory>

#include "model/model.h"

namespace gemmarun {

Result<std::unique_ptr<Model>> CreateGriffinModel(ModelConfig config, ModelWeights weights, Backend* backend);
Result<std::unique_ptr<Model>> CreatePaliGemmaModel(ModelConfig config, ModelWeights weights, Backend* backend);

}  // namespace gemmarun
