// The one decoder of Gemma 1, CodeGemma, Gemma 2, Gemma 3 and PaliGemma's text
// model. Differences between generations are LayerConfig fields (window, RoPE,
// q/k norm, post-norms, soft-caps), never separate code paths per model.
#pragma once

#include <vector>

#include "model/blocks.h"
#include "model/model.h"

namespace gemmarun {

class DecoderState : public SequenceState {
 public:
  std::vector<LayerKvCache> caches;  // one per layer
  int64_t max_chunk = 0;             // tokens per forward chunk the rings were sized for
  int64_t prefix_end = 0;            // end of a bidirectional prefix, if any
  size_t bytes() const override;
};

class Decoder : public Model {
 public:
  Decoder(ModelConfig config, ModelWeights weights, Backend* backend);

  const ModelConfig& config() const override { return config_; }
  const ModelWeights& weights() const override { return weights_; }
  Result<std::unique_ptr<SequenceState>> NewState(int64_t max_tokens, int64_t max_chunk) const override;
  Result<TensorView> Forward(const ForwardInput& input, SequenceState& state) override;

  // Tokens per forward pass over which a long input is split (bounds activation memory).
  static constexpr int64_t kMaxChunk = 256;

 protected:
  // One chunk: rows of `input.tokens` [begin, end), logits into `logits` rows if given.
  void ForwardChunk(const ForwardInput& input, int64_t begin, int64_t end, DecoderState& state,
                    const TensorView* logits);
  void TransformerLayer(int layer, const TensorView& x, int64_t first_index, DecoderState& state);

  ModelConfig config_;
  ModelWeights weights_;
  ops::OpContext ctx_;

  struct Activations {
    Tensor x;       // [num_tokens, model_dim] residual stream
    Tensor normed;  // [num_tokens, model_dim]
    Tensor branch;  // [num_tokens, model_dim] attention / MLP output
    Tensor logits;  // [rows, vocab_size]
    std::vector<float> positions;  // [num_tokens] RoPE positions
    AttentionScratch attention;
    MlpScratch mlp;
  } act_;
};

}  // namespace gemmarun
