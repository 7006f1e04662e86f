// Per-layer K/V storage. Global layers keep every position; sliding-window
// layers keep a ring of window + chunk - 1 slots: a chunk of new keys is written
// before its queries attend, so the ring must still hold the window of the
// chunk's first query after the whole chunk is written.
#pragma once

#include <cstdint>
#include <vector>

#include "model/config.h"
#include "tensor/tensor.h"

namespace gemmarun {

struct LayerKvCache {
  Tensor k;  // [capacity, num_kv_heads, head_dim] f32
  Tensor v;  // [capacity, num_kv_heads, head_dim] f32
  int64_t capacity = 0;  // sequence index i lives in slot i % capacity
};

// Slots a layer needs for sequences of max_tokens processed in chunks of at most max_chunk.
int64_t KvCapacity(const LayerConfig& layer, int64_t max_tokens, int64_t max_chunk);

// Bytes of K/V for `config` at `max_tokens` (f32 entries), with and without ring buffers.
size_t KvCacheBytes(const ModelConfig& config, int64_t max_tokens, int64_t max_chunk, bool ring_buffers);

}  // namespace gemmarun
