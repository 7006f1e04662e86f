// The one decoder of Gemma 1, CodeGemma, Gemma 2, Gemma 3 and PaliGemma's text
// model. Differences between generations are LayerConfig fields (window, RoPE,
// q/k norm, post-norms, soft-caps), never separate code paths per model.
#pragma once

#include <vector>

#include "model/layer_stack.h"

namespace gemmarun {

class DecoderState : public SequenceState {
 public:
  std::vector<LayerKvCache> caches;  // one per layer
  int64_t max_chunk = 0;             // tokens per forward chunk the rings were sized for
  int64_t prefix_end = 0;            // end of a bidirectional prefix, if any
  size_t bytes() const override;
};

class Decoder : public LayerStackModel {
 public:
  using LayerStackModel::LayerStackModel;

  Result<std::unique_ptr<SequenceState>> NewState(int64_t max_tokens, int64_t max_chunk) const override;
  Result<TensorView> Forward(const ForwardInput& input, SequenceState& state) override;

 protected:
  void ForwardChunk(const ForwardInput& input, int64_t begin, int64_t end, SequenceState& state,
                    const TensorView* logits) override;
  void TransformerLayer(int layer, const TensorView& x, int64_t first_index, DecoderState& state);
};

}  // namespace gemmarun
