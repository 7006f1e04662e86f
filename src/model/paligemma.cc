#include "model/families.h"

namespace gemmarun {

Result<std::unique_ptr<Model>> CreatePaliGemmaModel(ModelConfig config, ModelWeights weights, Backend* backend) {
  return Unsupported("paligemma is not implemented yet");
}

}  // namespace gemmarun
