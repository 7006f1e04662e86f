// What the Gemma decoder (Gemma 1/2/3, PaliGemma's text model) and RecurrentGemma
// share around their layers: config, weights and backend, the split of a long
// input into chunks, the embedding at a chunk's start, the LM head at its end,
// and the residual-stream activations. The layers are each model's own.
#pragma once

#include <span>
#include <vector>

#include "model/blocks.h"
#include "model/model.h"

namespace gemmarun {

class LayerStackModel : public Model {
 public:
  LayerStackModel(ModelConfig config, ModelWeights weights, Backend* backend);

  const ModelConfig& config() const override { return config_; }
  const ModelWeights& weights() const override { return weights_; }

  // Tokens per forward pass over which a long input is split (bounds activation memory).
  static constexpr int64_t kMaxChunk = 256;

 protected:
  // For NewState: OutOfRange unless 1 <= max_tokens <= max_seq_len.
  Status CheckContextLength(int64_t max_tokens) const;
  static void SetMaxTokens(SequenceState& state, int64_t max_tokens) { state.max_tokens_ = max_tokens; }
  // The chunk a state is sized for: max_chunk capped at kMaxChunk (0: kMaxChunk).
  static int64_t ChunkLength(int64_t max_chunk);

  // Feeds input to ForwardChunk `chunk` tokens at a time; returns the logits of
  // its last token, or of every token with input.all_logits.
  TensorView ForwardInChunks(const ForwardInput& input, SequenceState& state, int64_t chunk);
  // Tokens [begin, end) of input; logits (if given) for the chunk's last rows.
  virtual void ForwardChunk(const ForwardInput& input, int64_t begin, int64_t end, SequenceState& state,
                            const TensorView* logits) = 0;
  // [rows, vocab_size] of the logits buffer.
  TensorView LogitRows(int64_t rows);
  // The residual stream of a chunk: the tokens' scaled embeddings; positions
  // first_position, first_position + 1, ... for RoPE.
  TensorView EmbedChunk(std::span<const int32_t> tokens, int64_t first_position);
  // One residual layer as Gemma 1/2/3 and Griffin share it:
  //   x += post_attn_norm(mix(pre_attn_norm(x)));  x += post_ffw_norm(mlp(pre_ffw_norm(x))),
  // the post-norms only where lc.post_norms (Gemma 2/3). mix(normed, out) is
  // the layer's temporal mixing: attention, or Griffin's recurrent block.
  template <class Mix>
  void ResidualLayer(int layer, const TensorView& x, Mix&& mix) {
    const LayerConfig& lc = config_.layers[layer];
    const LayerWeights& w = weights_.layers[layer];
    const int64_t num_tokens = x.shape.rows();
    const TensorView normed = Rows(act_.normed, num_tokens, config_.model_dim);
    const TensorView branch = Rows(act_.branch, num_tokens, config_.model_dim);

    ops::RmsNorm(ctx_, x, w.pre_attn_norm.view(), config_.rms_norm_eps, normed);
    mix(normed, branch);
    if (lc.post_norms) ops::RmsNorm(ctx_, branch, w.post_attn_norm.view(), config_.rms_norm_eps, branch);
    ops::Add(ctx_, x, branch, x);

    ops::RmsNorm(ctx_, x, w.pre_ffw_norm.view(), config_.rms_norm_eps, normed);
    GatedMlp(ctx_, w.mlp, normed, act_.mlp, branch);  // Griffin's has biases
    if (lc.post_norms) ops::RmsNorm(ctx_, branch, w.post_ffw_norm.view(), config_.rms_norm_eps, branch);
    ops::Add(ctx_, x, branch, x);
  }
  // After the layers: the chunk joins the sequence, and logits (if given) get
  // the LM head of x's last logits->rows() rows.
  void FinishChunk(const TensorView& x, SequenceState& state, const TensorView* logits);

  ModelConfig config_;
  ModelWeights weights_;
  ops::OpContext ctx_;

  struct Activations {
    Tensor x;       // [num_tokens, model_dim] residual stream
    Tensor normed;  // [num_tokens, model_dim]
    Tensor branch;  // [num_tokens, model_dim] attention / recurrent / MLP output
    Tensor logits;  // [rows, vocab_size]
    std::vector<float> positions;  // [num_tokens] RoPE positions
    AttentionScratch attention;
    MlpScratch mlp;
  } act_;
};

}  // namespace gemmarun
