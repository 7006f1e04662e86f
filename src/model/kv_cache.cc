#include "model/kv_cache.h"

#include <algorithm>

namespace gemmarun {

int64_t KvCapacity(const LayerConfig& layer, int64_t max_tokens, int64_t max_chunk) {
  if (layer.attention_window <= 0) return max_tokens;
  return std::min<int64_t>(max_tokens, layer.attention_window + max_chunk - 1);
}

size_t KvCacheBytes(const ModelConfig& config, int64_t max_tokens, int64_t max_chunk, bool ring_buffers) {
  size_t total = 0;
  for (const LayerConfig& layer : config.layers) {
    if (layer.kind != BlockKind::kAttention) continue;
    const int64_t slots = ring_buffers ? KvCapacity(layer, max_tokens, max_chunk) : max_tokens;
    total += 2 * static_cast<size_t>(slots) * config.num_kv_heads * config.head_dim * sizeof(float);
  }
  return total;
}

}  // namespace gemmarun
