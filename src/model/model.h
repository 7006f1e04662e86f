// The interface every model family implements (Gemma 1/2/3 decoder, Griffin,
// PaliGemma). One Forward call runs a batch of sequence chunks — any mix of
// prefill chunks and single decode tokens, each sequence at its own position —
// through the layer stack once: every matrix product sees the rows of all
// sequences, attention and the recurrence run per sequence against its own
// cache. The model is const while it runs: activations live in a Workspace
// sized once, sequence memory in a KvPool, so one loaded model serves many
// callers (each with its own workspace).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "gemmarun/status.h"
#include "model/config.h"
#include "model/kv_cache.h"
#include "model/weights.h"
#include "ops/ops.h"

namespace gemmarun {

// One sequence's tokens in a forward pass.
struct SequenceChunk {
  std::span<const int32_t> tokens;
  int64_t first_index = 0;  // sequence index of tokens[0]
  // Per KvGroup: logical block -> physical block of the pool, covering at least
  // every index up to first_index + tokens.size() (sliding groups may hold -1
  // for blocks behind their window).
  std::vector<std::span<const int32_t>> block_tables;
  int recurrent_slot = -1;  // RecurrentGemma: the sequence's state slot
  // Indices < prefix_end attend bidirectionally (PaliGemma's image + prompt
  // prefix); a chunk holding prefix tokens must reach its end, and the
  // positions before the chunk must hold the same prefix's keys.
  int64_t prefix_end = 0;
  // [image tokens, model_dim] rows that replace, in order, the embeddings of this
  // chunk's tokens equal to config.image_token_id (PaliGemma).
  const TensorView* image_features = nullptr;
  enum class Logits { kNone, kLast, kAll } logits = Logits::kNone;
};

// Activations of one caller's forward passes: allocated once for the largest
// batch it will run, so the steady decode loop allocates nothing and pointers
// stay put (a GPU can capture the pass as a graph).
class Workspace {
 public:
  virtual ~Workspace() = default;
  int64_t max_tokens() const { return max_tokens_; }
  int64_t max_logit_rows() const { return max_logit_rows_; }

 protected:
  int64_t max_tokens_ = 0;
  int64_t max_logit_rows_ = 0;
};

class Model {
 public:
  virtual ~Model() = default;
  virtual const ModelConfig& config() const = 0;
  virtual const ModelWeights& weights() const = 0;

  // Activations for batches of up to max_tokens tokens and max_logit_rows rows of logits.
  virtual Result<std::unique_ptr<Workspace>> NewWorkspace(int64_t max_tokens, int64_t max_logit_rows) const = 0;
  // Runs the chunks (their K/V written into `pool` at their block tables, their
  // recurrent state updated in place) and returns the logits [rows, vocab_size]
  // they asked for, chunk by chunk in order (a view of the workspace, valid
  // until its next use). The caller checked ids, lengths and tables (CheckBatch).
  virtual Result<TensorView> Forward(std::span<const SequenceChunk> chunks, KvPool& pool,
                                     Workspace& workspace) const = 0;
  // PaliGemma: runs the vision tower and projector on pixels [channels, size, size]
  // normalised to [-1, 1]; returns [num_image_tokens, model_dim].
  virtual Result<Tensor> EncodeImage(const TensorView& pixels) const {
    return Unsupported(std::string(FamilyName(config().family)) + " models take no image");
  }
};

Result<std::unique_ptr<Model>> CreateModel(ModelConfig config, ModelWeights weights, Backend* backend);

// Checks what Forward relies on: ids in the vocabulary, the batch within the
// workspace, block tables long enough, a bidirectional prefix whole in its chunk.
Status CheckBatch(const ModelConfig& config, std::span<const SequenceChunk> chunks, const KvPool& pool,
                  const Workspace& workspace);

}  // namespace gemmarun
