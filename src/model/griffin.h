// RecurrentGemma (Griffin): residual blocks whose temporal mixing is either a
// recurrent block (linear_x -> causal Conv1D -> RG-LRU, gated by gelu(linear_y)) or
// local multi-query attention over a window, each followed by a gated MLP with
// biases. The per-sequence state has a fixed size whatever the sequence length:
// Conv1D history and RG-LRU h for recurrent layers, a window-sized K/V ring for
// attention layers. ref: architectures.md §5, HF modeling_recurrent_gemma.
#pragma once

#include <vector>

#include "model/layer_stack.h"

namespace gemmarun {

class GriffinState : public SequenceState {
 public:
  struct Layer {
    // Recurrent layers.
    Tensor conv;  // [conv1d_width - 1, lru_width] f32: the last pre-conv inputs, oldest first
    Tensor h;     // [lru_width] f32: RG-LRU hidden state (HF keeps it in f32 too)
    // Attention layers: a ring of window + max_chunk - 1 slots.
    LayerKvCache cache;
  };
  std::vector<Layer> layers;  // one per model layer
  int64_t max_chunk = 0;      // tokens per forward chunk the rings were sized for

  size_t bytes() const override;
  // Zeroes the recurrent state: HF pads the Conv1D history with zeros at the start
  // of a sequence, and a stale (even non-finite) h must not leak into a new one.
  void Reset() override;
};

class GriffinModel : public LayerStackModel {
 public:
  using LayerStackModel::LayerStackModel;

  // Allocates nothing proportional to max_tokens: any length up to max_seq_len (2^30) is cheap.
  Result<std::unique_ptr<SequenceState>> NewState(int64_t max_tokens, int64_t max_chunk) const override;
  Result<TensorView> Forward(const ForwardInput& input, SequenceState& state) override;

 private:
  void ForwardChunk(const ForwardInput& input, int64_t begin, int64_t end, SequenceState& state,
                    const TensorView* logits) override;
  void ResidualBlock(int layer, const TensorView& x, int64_t first_index, GriffinState& state);
  void RecurrentBlock(int layer, const TensorView& normed, int64_t first_index, GriffinState::Layer& state,
                      const TensorView& out);

  struct RecurrentActivations {  // each [num_tokens, lru_width]
    Tensor y;       // gelu(linear_y(x))
    Tensor u;       // linear_x(x), the Conv1D input
    Tensor conv;    // Conv1D output, then the RG-LRU output, then that times y
    Tensor gate_x;  // input gate pre-activation
    Tensor gate_a;  // recurrent gate pre-activation
  } recurrent_act_;
};

}  // namespace gemmarun
