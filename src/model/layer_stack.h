// What the Gemma decoder (Gemma 1/2/3, PaliGemma's text model) and RecurrentGemma
// share around their layers: config, weights and backend, the batched forward
// pass (embedding of every chunk's tokens, the per-group slot and attention
// lists, the LM head over the rows that want logits) and the workspace of
// residual-stream activations. The layers are each model's own.
#pragma once

#include <span>
#include <vector>

#include "model/blocks.h"
#include "model/model.h"

namespace gemmarun {

class StackWorkspace final : public Workspace {
 public:
  Tensor x;        // [max_tokens, model_dim] residual stream
  Tensor normed;   // [max_tokens, model_dim]
  Tensor branch;   // [max_tokens, model_dim] attention / recurrent / MLP output
  Tensor lm_rows;  // [max_logit_rows, model_dim] rows gathered for the LM head
  Tensor logits;   // [max_logit_rows, vocab_size] on the backend's device
  // The host copy Forward returns when the backend computes on a device: only
  // the rows asked for are downloaded (sampling on the device is a later step).
  Tensor host_logits;
  AttentionScratch attention;
  MlpScratch mlp;
  struct Recurrent {  // RecurrentGemma, each [max_tokens, lru_width]
    Tensor y;       // gelu(linear_y(x))
    Tensor u;       // linear_x(x), the Conv1D input
    Tensor conv;    // Conv1D output, then the RG-LRU output, then that times y
    Tensor gate_x;  // input gate pre-activation
    Tensor gate_a;  // recurrent gate pre-activation
  } recurrent;
  std::vector<int32_t> ids;        // every chunk's tokens, in order
  std::vector<float> positions;    // their RoPE positions
  std::vector<int64_t> chunk_rows; // first row of each chunk
  std::vector<std::vector<int64_t>> slots;                // per KV group: row -> cache slot
  std::vector<std::vector<AttentionSequence>> sequences;  // per KV group: one per chunk

 private:
  friend class LayerStackModel;
};

// One forward pass as the layers see it.
struct StackBatch {
  std::span<const SequenceChunk> chunks;
  std::span<const int64_t> chunk_rows;  // first row of each chunk in x
  int64_t num_tokens = 0;
  KvPool* pool = nullptr;
  StackWorkspace* ws = nullptr;
};

class LayerStackModel : public Model {
 public:
  LayerStackModel(ModelConfig config, ModelWeights weights, Backend* backend);

  const ModelConfig& config() const override { return config_; }
  const ModelWeights& weights() const override { return weights_; }
  Result<std::unique_ptr<Workspace>> NewWorkspace(int64_t max_tokens, int64_t max_logit_rows) const override;
  Result<TensorView> Forward(std::span<const SequenceChunk> chunks, KvPool& pool,
                             Workspace& workspace) const override;

 protected:
  virtual Status CheckFamilyBatch(std::span<const SequenceChunk> chunks) const { return Status::Ok(); }
  // One layer over every row of the batch; x [num_tokens, model_dim] in place.
  virtual void Layer(int layer, const TensorView& x, const StackBatch& batch) const = 0;

  // The cache of `layer` and where this batch's rows go in it.
  KvBatch KvFor(int layer, const StackBatch& batch) const;

  // One residual layer as Gemma 1/2/3 and Griffin share it:
  //   x += post_attn_norm(mix(pre_attn_norm(x)));  x += post_ffw_norm(mlp(pre_ffw_norm(x))),
  // the post-norms only where lc.post_norms (Gemma 2/3). mix(normed, out) is
  // the layer's temporal mixing: attention, or Griffin's recurrent block.
  template <class Mix>
  void ResidualLayer(int layer, const TensorView& x, const StackWorkspace& ws, Mix&& mix) const {
    const LayerConfig& lc = config_.layers[layer];
    const LayerWeights& w = weights_.layers[layer];
    const int64_t num_tokens = x.shape.rows();
    const TensorView normed = Fit(ws.normed, num_tokens, config_.model_dim);
    const TensorView branch = Fit(ws.branch, num_tokens, config_.model_dim);

    ops::RmsNorm(ctx_, x, w.pre_attn_norm.view(), config_.rms_norm_eps, normed);
    mix(normed, branch);
    if (lc.post_norms) ops::RmsNorm(ctx_, branch, w.post_attn_norm.view(), config_.rms_norm_eps, branch);
    ops::Add(ctx_, x, branch, x);

    ops::RmsNorm(ctx_, x, w.pre_ffw_norm.view(), config_.rms_norm_eps, normed);
    GatedMlp(ctx_, w.mlp, normed, ws.mlp, branch);  // Griffin's has biases
    if (lc.post_norms) ops::RmsNorm(ctx_, branch, w.post_ffw_norm.view(), config_.rms_norm_eps, branch);
    ops::Add(ctx_, x, branch, x);
  }

  ModelConfig config_;
  ModelWeights weights_;
  ops::OpContext ctx_;

 private:
  // Fills the workspace's ids, positions, chunk rows, slots and sequence lists.
  void PlanBatch(std::span<const SequenceChunk> chunks, const KvPool& pool, StackWorkspace& ws) const;
  // The LM head over the rows the chunks asked logits for.
  TensorView Logits(std::span<const SequenceChunk> chunks, const TensorView& x, StackWorkspace& ws) const;
};

}  // namespace gemmarun
