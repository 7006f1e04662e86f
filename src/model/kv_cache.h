// The KV cache as a pool of fixed-size blocks shared by many sequences, and
// RecurrentGemma's per-sequence state slots.
//
// Attention layers are grouped by their window: all global layers form one
// group, the sliding layers of one window another. A sequence has one block
// table per group (the same logical block -> physical block map serves every
// layer of the group), so a sliding group can hand back the blocks that left
// its window while the global group keeps them all. Each attention layer owns
// its K and V slabs of [num_blocks * block_size, num_kv_heads, head_dim] in the
// cache dtype; slot s of a layer in group g belongs to block s / block_size of
// g's pool. Which sequence owns which block is the runtime's business.
#pragma once

#include <cstdint>
#include <vector>

#include "gemmarun/status.h"
#include "model/config.h"
#include "ops/backend.h"
#include "tensor/tensor.h"

namespace gemmarun {

struct KvGroup {
  int window = 0;           // 0: global layers
  std::vector<int> layers;  // model layer indices
};

// The attention layers of `config` grouped by window, global group first.
std::vector<KvGroup> KvGroups(const ModelConfig& config);

// Whether `dtype` can hold K/V rows of this model (q8_0 needs head_dim % 32 == 0).
Status CheckKvCacheType(const ModelConfig& config, DType dtype);

// Bytes of K and V for one position in every layer of a group.
size_t KvBytesPerPosition(const ModelConfig& config, const KvGroup& group, DType dtype);

// Bytes of K/V for `config` at `max_tokens` positions (f32 entries), with and
// without windowed layers bounded by their window plus a chunk of max_chunk.
size_t KvCacheBytes(const ModelConfig& config, int64_t max_tokens, int64_t max_chunk, bool ring_buffers);
size_t KvCacheBytes(const ModelConfig& config, int64_t max_tokens, int64_t max_chunk, bool ring_buffers,
                    DType dtype);

struct KvPoolShape {
  DType dtype = DType::kF16;
  int64_t block_size = 16;
  std::vector<int64_t> blocks_per_group;  // one per KvGroups() entry
  int recurrent_slots = 0;                // RecurrentGemma: sequences with state
};

// The memory of every sequence's cache: K/V slabs per attention layer and, for
// RecurrentGemma, Conv1D history + RG-LRU state per slot and recurrent layer.
class KvPool {
 public:
  // The slabs are allocated once on `memory`'s device (the backend's), so their
  // addresses stay put for the pool's life.
  static Result<KvPool> Create(const ModelConfig& config, const KvPoolShape& shape,
                               DeviceMemory& memory = HostMemory());

  const KvPoolShape& shape() const { return shape_; }
  const std::vector<KvGroup>& groups() const { return groups_; }
  int group_of_layer(int layer) const { return group_of_layer_[layer]; }
  KvCacheView layer_view(int layer) const;
  size_t bytes() const;

  // [conv1d_width - 1, lru_width] and [lru_width] f32 of one slot.
  TensorView conv_state(int layer, int slot) const;
  TensorView lru_state(int layer, int slot) const;
  // Zeroes a slot's recurrent state: a new sequence starts from HF's zero padding.
  // On a device the fill is ordered before the next forward pass.
  void ResetSlot(int slot);

 private:
  struct LayerSlabs {
    Tensor k, v;      // attention layers
    Tensor conv, h;   // recurrent layers: [slots, width - 1, lru], [slots, lru]
  };
  KvPoolShape shape_;
  DeviceMemory* memory_ = nullptr;
  std::vector<KvGroup> groups_;
  std::vector<int> group_of_layer_;  // -1 for recurrent layers
  std::vector<LayerSlabs> layers_;
  int64_t conv_rows_ = 0;
  int64_t lru_width_ = 0;
};

}  // namespace gemmarun
