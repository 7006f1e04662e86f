#include "model/model.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "model/decoder.h"
#include "model/families.h"

namespace gemmarun {
namespace {

// ref: architectures.md §1.2. HF casts sqrt(hidden) to the weights' dtype (Gemma 1/2/3);
// RecurrentGemma always rounds it to bfloat16 ("to match training"). Quantized GGUF
// embeddings follow llama.cpp, which scales by the exact f32 value.
float EmbeddingScale(const ModelConfig& config, DType embedding_dtype) {
  const float scale = std::sqrt(static_cast<float>(config.model_dim));
  if (config.family == ModelFamily::kRecurrentGemma) return RoundTo(DType::kBF16, scale);
  return RoundTo(embedding_dtype, scale);
}

// The loader fills host tensors; a device backend gets each one uploaded, one at
// a time so that the host copy of a tensor is freed as soon as it is placed.
Status PlaceWeights(const ModelConfig& config, ModelWeights& weights, DeviceMemory& memory) {
  if (memory.device().is_host()) return Status::Ok();
  Status status;
  ForEachWeight(config, weights, [&](const WeightSpec& spec) {
    if (!status.ok() || spec.tensor->empty() || !spec.tensor->on_host()) return;
    auto placed = ToDevice(memory, std::move(*spec.tensor));
    if (!placed.ok()) {
      status = placed.status().WithContext(spec.name);
      return;
    }
    *spec.tensor = std::move(*placed);
  });
  GR_RETURN_IF_ERROR(status);
  return memory.Synchronize();
}

}  // namespace

Status CheckBatch(const ModelConfig& config, std::span<const SequenceChunk> chunks, const KvPool& pool,
                  const Workspace& workspace) {
  if (chunks.empty()) return InvalidArgument("no sequences to process");
  int64_t total = 0, logit_rows = 0;
  const std::vector<KvGroup>& groups = pool.groups();
  const int64_t block_size = pool.shape().block_size;
  for (size_t c = 0; c < chunks.size(); ++c) {
    const SequenceChunk& chunk = chunks[c];
    const int64_t n = static_cast<int64_t>(chunk.tokens.size());
    if (n == 0) return InvalidArgument("sequence chunk " + std::to_string(c) + " has no tokens");
    total += n;
    logit_rows += chunk.logits == SequenceChunk::Logits::kAll ? n : chunk.logits == SequenceChunk::Logits::kLast;
    const int64_t end = chunk.first_index + n;
    if (chunk.first_index < 0 || end > config.max_seq_len) {
      return OutOfRange("sequence positions " + std::to_string(chunk.first_index) + ".." + std::to_string(end) +
                        " are outside the model's " + std::to_string(config.max_seq_len));
    }
    int64_t image_tokens = 0;
    for (int64_t i = 0; i < n; ++i) {
      const int32_t id = chunk.tokens[i];
      if (id < 0 || id >= config.vocab_size) {
        return InvalidArgument("token id " + std::to_string(id) + " at position " +
                               std::to_string(chunk.first_index + i) + " is outside the vocabulary of " +
                               std::to_string(config.vocab_size));
      }
      if (id == config.image_token_id) ++image_tokens;
    }
    if (chunk.image_features != nullptr) {
      if (chunk.image_features->shape.rows() != image_tokens ||
          chunk.image_features->shape.cols() != config.model_dim) {
        return InvalidArgument("the input has " + std::to_string(image_tokens) +
                               " image tokens but the image gives " + chunk.image_features->shape.ToString() +
                               " features");
      }
    } else if (image_tokens > 0 && config.family == ModelFamily::kPaliGemma) {
      return InvalidArgument("the input has image tokens but no image");
    }
    // Prefix queries see every prefix key, so a chunk may not end inside the
    // prefix. It may start inside: the keys before it are then cached blocks of
    // the same whole prefix (prefix reuse).
    if (chunk.prefix_end > chunk.first_index && end < chunk.prefix_end) {
      return InvalidArgument("a bidirectional prefix of " + std::to_string(chunk.prefix_end) +
                             " tokens must be fed in one pass, up to its end");
    }
    if (chunk.block_tables.size() != groups.size()) {
      return Internal("a sequence chunk has " + std::to_string(chunk.block_tables.size()) + " block tables for " +
                      std::to_string(groups.size()) + " KV groups");
    }
    for (size_t g = 0; g < groups.size(); ++g) {
      const std::span<const int32_t> table = chunk.block_tables[g];
      if (static_cast<int64_t>(table.size()) * block_size < end) {
        return Internal("a block table covers " + std::to_string(table.size() * block_size) + " positions, the chunk needs " +
                        std::to_string(end));
      }
      // Every block a query of this chunk can see, or its keys are written to.
      const int64_t window = groups[g].window;
      const int64_t first_seen = window > 0 ? std::max<int64_t>(0, chunk.first_index - window + 1) : 0;
      for (int64_t b = first_seen / block_size; b * block_size < std::max(end, chunk.prefix_end); ++b) {
        if (table[b] < 0 || table[b] >= pool.shape().blocks_per_group[g]) {
          return Internal("block table entry " + std::to_string(b) + " is " + std::to_string(table[b]));
        }
      }
    }
    if (config.family == ModelFamily::kRecurrentGemma &&
        (chunk.recurrent_slot < 0 || chunk.recurrent_slot >= pool.shape().recurrent_slots)) {
      return Internal("recurrent state slot " + std::to_string(chunk.recurrent_slot) + " is outside the pool");
    }
  }
  if (total > workspace.max_tokens() || logit_rows > workspace.max_logit_rows()) {
    return OutOfRange("a batch of " + std::to_string(total) + " tokens and " + std::to_string(logit_rows) +
                      " logit rows exceeds the workspace's " + std::to_string(workspace.max_tokens()) + " and " +
                      std::to_string(workspace.max_logit_rows()));
  }
  return Status::Ok();
}

Result<std::unique_ptr<Model>> CreateModel(ModelConfig config, ModelWeights weights, Backend* backend) {
  GR_RETURN_IF_ERROR(config.Validate());
  config.embed_scale = EmbeddingScale(config, weights.embedding.dtype());
  GR_RETURN_IF_ERROR(PlaceWeights(config, weights, backend->memory()));
  switch (config.family) {
    case ModelFamily::kGemma:
    case ModelFamily::kGemma2:
    case ModelFamily::kGemma3:
      return std::unique_ptr<Model>(std::make_unique<Decoder>(std::move(config), std::move(weights), backend));
    case ModelFamily::kRecurrentGemma:
      return CreateGriffinModel(std::move(config), std::move(weights), backend);
    case ModelFamily::kPaliGemma:
      return CreatePaliGemmaModel(std::move(config), std::move(weights), backend);
  }
  return Unsupported("unknown model family");
}

}  // namespace gemmarun
