#include "model/families.h"

namespace gemmarun {

Result<std::unique_ptr<Model>> CreateGriffinModel(ModelConfig config, ModelWeights weights, Backend* backend) {
  return Unsupported("recurrent_gemma is not implemented yet");
}

}  // namespace gemmarun
