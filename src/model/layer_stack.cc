#include "model/layer_stack.h"

#include <algorithm>
#include <cstring>
#include <string>

namespace gemmarun {

LayerStackModel::LayerStackModel(ModelConfig config, ModelWeights weights, Backend* backend)
    : config_(std::move(config)), weights_(std::move(weights)) {
  ctx_.backend = backend;
}

Result<std::unique_ptr<Workspace>> LayerStackModel::NewWorkspace(int64_t max_tokens, int64_t max_logit_rows) const {
  if (max_tokens <= 0 || max_logit_rows <= 0 || max_tokens > (int64_t{1} << 20) ||
      max_logit_rows > max_tokens) {
    return InvalidArgument("a workspace of " + std::to_string(max_tokens) + " tokens and " +
                           std::to_string(max_logit_rows) + " logit rows is outside 1..2^20");
  }
  auto ws = std::make_unique<StackWorkspace>();
  ws->max_tokens_ = max_tokens;
  ws->max_logit_rows_ = max_logit_rows;
  const ModelConfig& c = config_;
  const int64_t q_dim = int64_t{c.num_heads} * c.head_dim;
  const int64_t kv_dim = int64_t{c.num_kv_heads} * c.head_dim;
  // Every buffer is allocated once on the backend's device: the steady decode
  // loop allocates nothing and the addresses stay put.
  bool ok = true;
  Backend& backend = *ctx_.backend;
  const auto make = [&](Tensor& t, int64_t rows, int64_t cols) { MakeActivation(backend, t, rows, cols, ok); };
  make(ws->x, max_tokens, c.model_dim);
  make(ws->normed, max_tokens, c.model_dim);
  make(ws->branch, max_tokens, c.model_dim);
  make(ws->lm_rows, max_logit_rows, c.model_dim);
  make(ws->logits, max_logit_rows, c.vocab_size);
  if (ok && !backend.device().is_host()) {
    ok = Tensor::TryCreate(DType::kF32, Shape{max_logit_rows, c.vocab_size}, &ws->host_logits);
  }
  make(ws->attention.q, max_tokens, q_dim);
  make(ws->attention.k, max_tokens, kv_dim);
  make(ws->attention.v, max_tokens, kv_dim);
  make(ws->attention.out, max_tokens, q_dim);
  make(ws->mlp.gate, max_tokens, c.ff_hidden_dim);
  make(ws->mlp.up, max_tokens, c.ff_hidden_dim);
  for (Tensor* t : {&ws->recurrent.y, &ws->recurrent.u, &ws->recurrent.conv, &ws->recurrent.gate_x,
                    &ws->recurrent.gate_a}) {
    make(*t, max_tokens, c.lru_width);
  }
  if (!ok) {
    return ResourceExhausted("not enough memory on " + backend.device().ToString() + " for the activations of " +
                             std::to_string(max_tokens) + "-token batches");
  }
  ws->ids.reserve(max_tokens);
  ws->positions.reserve(max_tokens);
  ws->chunk_rows.reserve(max_tokens);
  const size_t groups = KvGroups(c).size();
  ws->slots.resize(groups);
  ws->sequences.resize(groups);
  for (size_t g = 0; g < groups; ++g) {
    ws->slots[g].reserve(max_tokens);
    ws->sequences[g].reserve(max_tokens);
  }
  return std::unique_ptr<Workspace>(std::move(ws));
}

void LayerStackModel::PlanBatch(std::span<const SequenceChunk> chunks, const KvPool& pool,
                                StackWorkspace& ws) const {
  const int64_t block_size = pool.shape().block_size;
  ws.ids.clear();
  ws.positions.clear();
  ws.chunk_rows.clear();
  for (auto& slots : ws.slots) slots.clear();
  for (auto& sequences : ws.sequences) sequences.clear();
  for (const SequenceChunk& chunk : chunks) {
    const int64_t row = static_cast<int64_t>(ws.ids.size());
    const int64_t n = static_cast<int64_t>(chunk.tokens.size());
    ws.chunk_rows.push_back(row);
    ws.ids.insert(ws.ids.end(), chunk.tokens.begin(), chunk.tokens.end());
    for (int64_t t = 0; t < n; ++t) {
      ws.positions.push_back(static_cast<float>(chunk.first_index + t + config_.position_offset));
    }
    for (size_t g = 0; g < ws.slots.size(); ++g) {
      const std::span<const int32_t> table = chunk.block_tables[g];
      for (int64_t t = 0; t < n; ++t) {
        const int64_t index = chunk.first_index + t;
        ws.slots[g].push_back(int64_t{table[index / block_size]} * block_size + index % block_size);
      }
      ws.sequences[g].push_back(AttentionSequence{row, n, chunk.first_index, chunk.prefix_end, table});
    }
  }
}

KvBatch LayerStackModel::KvFor(int layer, const StackBatch& batch) const {
  const int group = batch.pool->group_of_layer(layer);
  GR_CHECK(group >= 0) << "layer " << layer << " has no KV cache";
  return KvBatch{batch.pool->layer_view(layer), batch.ws->slots[group], batch.ws->sequences[group]};
}

Result<TensorView> LayerStackModel::Forward(std::span<const SequenceChunk> chunks, KvPool& pool,
                                            Workspace& workspace) const {
  GR_RETURN_IF_ERROR(CheckBatch(config_, chunks, pool, workspace));
  GR_RETURN_IF_ERROR(CheckFamilyBatch(chunks));
  auto& ws = static_cast<StackWorkspace&>(workspace);
  PlanBatch(chunks, pool, ws);
  const int64_t num_tokens = static_cast<int64_t>(ws.ids.size());
  const TensorView x = Fit(ws.x, num_tokens, config_.model_dim);
  ops::Embed(ctx_, weights_.embedding.view(), ws.ids, config_.embed_scale, x);
  DeviceMemory& memory = ctx_.backend->memory();
  for (size_t c = 0; c < chunks.size(); ++c) {
    if (chunks[c].image_features == nullptr) continue;
    // Image rows enter unscaled: ref HF PaliGemma (features / sqrt(d), then * sqrt(d)).
    // They are host memory (the caller keeps them for prefix hashing), uploaded
    // row by row over the image tokens' embeddings.
    const TensorView& features = *chunks[c].image_features;
    GR_CHECK(features.device.is_host()) << "image features must be host memory";
    int64_t image_row = 0;
    for (size_t t = 0; t < chunks[c].tokens.size(); ++t) {
      if (chunks[c].tokens[t] != config_.image_token_id) continue;
      const int64_t row = ws.chunk_rows[c] + static_cast<int64_t>(t);
      GR_RETURN_IF_ERROR(memory.Upload(x.row(row), features.row(image_row++), x.row_bytes()));
    }
  }
  const StackBatch batch{chunks, ws.chunk_rows, num_tokens, &pool, &ws};
  for (int layer = 0; layer < config_.num_layers(); ++layer) Layer(layer, x, batch);
  const TensorView logits = Logits(chunks, x, ws);
  // A device runs the ops asynchronously: its first error, if any, surfaces here,
  // once per pass. The host reads the logits (checks, sampling) from a copy.
  GR_RETURN_IF_ERROR(ctx_.backend->Synchronize());
  if (logits.device.is_host()) return logits;
  const TensorView host{ws.host_logits.data(), DType::kF32, logits.shape};
  GR_RETURN_IF_ERROR(memory.Download(host.data, logits.data, logits.bytes()));
  return host;
}

TensorView LayerStackModel::Logits(std::span<const SequenceChunk> chunks, const TensorView& x,
                                   StackWorkspace& ws) const {
  // Gather the rows that want logits (runs of consecutive rows copied at once),
  // so the LM head, the largest matrix, multiplies only those.
  const auto rows_of = [](const SequenceChunk& chunk, int64_t* first) -> int64_t {
    const int64_t n = static_cast<int64_t>(chunk.tokens.size());
    *first = chunk.logits == SequenceChunk::Logits::kLast ? n - 1 : 0;
    switch (chunk.logits) {
      case SequenceChunk::Logits::kNone: return 0;
      case SequenceChunk::Logits::kLast: return 1;
      case SequenceChunk::Logits::kAll: return n;
    }
    return 0;
  };
  int64_t rows = 0;
  bool all_rows = true;
  for (const SequenceChunk& chunk : chunks) {
    int64_t first;
    const int64_t count = rows_of(chunk, &first);
    rows += count;
    all_rows = all_rows && count == static_cast<int64_t>(chunk.tokens.size());
  }
  if (!all_rows && rows > 0) {
    const TensorView gathered = Fit(ws.lm_rows, rows, config_.model_dim);
    int64_t row = 0;
    for (size_t c = 0; c < chunks.size(); ++c) {
      int64_t first;
      const int64_t count = rows_of(chunks[c], &first);
      if (count == 0) continue;
      ops::CopyRows(ctx_, RowRange(x, ws.chunk_rows[c] + first, count), RowRange(gathered, row, count));
      row += count;
    }
  }
  const TensorView logits = Fit(ws.logits, rows, config_.vocab_size);
  if (rows == 0) return logits;
  const TensorView head_input = all_rows ? x : Fit(ws.lm_rows, rows, config_.model_dim);
  LmHead(ctx_, config_, weights_, head_input, ws.normed, logits);
  return logits;
}

}  // namespace gemmarun
