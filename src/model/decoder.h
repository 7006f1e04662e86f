// The one decoder of Gemma 1, CodeGemma, Gemma 2, Gemma 3 and PaliGemma's text
// model. Differences between generations are LayerConfig fields (window, RoPE,
// q/k norm, post-norms, soft-caps), never separate code paths per model.
#pragma once

#include "model/layer_stack.h"

namespace gemmarun {

class Decoder : public LayerStackModel {
 public:
  using LayerStackModel::LayerStackModel;

 protected:
  void Layer(int layer, const TensorView& x, const StackBatch& batch) const override;
};

}  // namespace gemmarun
