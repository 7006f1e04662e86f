// RecurrentGemma (Griffin): residual blocks whose temporal mixing is either a
// recurrent block (linear_x -> causal Conv1D -> RG-LRU, gated by gelu(linear_y)) or
// local multi-query attention over a window, each followed by a gated MLP with
// biases. The per-sequence state has a fixed size whatever the sequence length:
// Conv1D history and RG-LRU h for recurrent layers, a window-sized K/V ring for
// attention layers. ref: architectures.md §5, HF modeling_recurrent_gemma.
#pragma once

#include "model/layer_stack.h"

namespace gemmarun {

class GriffinModel : public LayerStackModel {
 public:
  using LayerStackModel::LayerStackModel;

 private:
  Status CheckFamilyBatch(std::span<const SequenceChunk> chunks) const override;
  void Layer(int layer, const TensorView& x, const StackBatch& batch) const override;
  void RecurrentBlock(int layer, const TensorView& normed, const StackBatch& batch, const TensorView& out) const;
};

}  // namespace gemmarun
