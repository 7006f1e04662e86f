// The interface every model family implements (Gemma 1/2/3 decoder, Griffin,
// PaliGemma). The runtime drives any of them through it: create a sequence state,
// feed tokens, read logits.
#pragma once

#include <cstdint>
#include <memory>
#include <span>

#include "gemmarun/status.h"
#include "model/config.h"
#include "model/weights.h"
#include "ops/ops.h"

namespace gemmarun {

// Per-sequence memory: KV caches, recurrent and convolution states.
class SequenceState {
 public:
  virtual ~SequenceState() = default;
  int64_t length() const { return length_; }      // tokens consumed so far
  int64_t max_tokens() const { return max_tokens_; }
  virtual size_t bytes() const = 0;               // memory held for this sequence
  virtual void Reset() { length_ = 0; }

 protected:
  int64_t length_ = 0;
  int64_t max_tokens_ = 0;
  friend class LayerStackModel;  // SetMaxTokens, FinishChunk
};

struct ForwardInput {
  std::span<const int32_t> tokens;
  // [num_image_tokens, model_dim] rows that replace, in order, the embeddings of
  // tokens equal to config.image_token_id (PaliGemma).
  const TensorView* image_features = nullptr;
  // The whole input attends bidirectionally within itself (a prefix-LM prefix).
  bool bidirectional = false;
  // Logits for every input token; otherwise only for the last.
  bool all_logits = false;
};

class Model {
 public:
  virtual ~Model() = default;
  virtual const ModelConfig& config() const = 0;
  virtual const ModelWeights& weights() const = 0;
  // A state for sequences of up to max_tokens tokens (<= config().max_seq_len),
  // fed in forward passes of at most max_chunk tokens (0: the family's default).
  // Sliding-window layers keep window + max_chunk - 1 positions.
  virtual Result<std::unique_ptr<SequenceState>> NewState(int64_t max_tokens, int64_t max_chunk = 0) const = 0;
  // Appends input to the sequence and returns logits [rows, vocab_size] (a view of
  // internal memory, valid until the next call).
  virtual Result<TensorView> Forward(const ForwardInput& input, SequenceState& state) = 0;
  // PaliGemma: runs the vision tower and projector on pixels [channels, size, size]
  // normalised to [-1, 1]; returns [num_image_tokens, model_dim].
  virtual Result<Tensor> EncodeImage(const TensorView& pixels) {
    return Unsupported(std::string(FamilyName(config().family)) + " models take no image");
  }
};

Result<std::unique_ptr<Model>> CreateModel(ModelConfig config, ModelWeights weights, Backend* backend);

// Checks that token ids are in the vocabulary and the sequence fits in the state.
Status CheckForwardInput(const ModelConfig& config, const ForwardInput& input, const SequenceState& state);

}  // namespace gemmarun
