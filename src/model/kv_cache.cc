#include "model/kv_cache.h"

#include <algorithm>
#include <cstring>
#include <string>

namespace gemmarun {

std::vector<KvGroup> KvGroups(const ModelConfig& config) {
  std::vector<KvGroup> groups;
  for (int i = 0; i < config.num_layers(); ++i) {
    const LayerConfig& layer = config.layers[i];
    if (layer.kind != BlockKind::kAttention) continue;
    auto it = std::find_if(groups.begin(), groups.end(),
                           [&](const KvGroup& g) { return g.window == layer.attention_window; });
    if (it == groups.end()) {
      groups.push_back(KvGroup{layer.attention_window, {}});
      it = groups.end() - 1;
    }
    it->layers.push_back(i);
  }
  std::stable_sort(groups.begin(), groups.end(), [](const KvGroup& a, const KvGroup& b) {
    return (a.window == 0) > (b.window == 0);
  });
  return groups;
}

Status CheckKvCacheType(const ModelConfig& config, DType dtype) {
  if (!(dtype == DType::kF32 || dtype == DType::kF16 || dtype == DType::kBF16 || dtype == DType::kQ8_0)) {
    return InvalidArgument(std::string("cache type ") + Name(dtype) + " is not one of f32, f16, bf16, q8_0");
  }
  const int64_t block = Info(dtype).block_elements;
  if (config.head_dim % block != 0) {
    return InvalidArgument(std::string("cache type ") + Name(dtype) + " needs head_dim to be a multiple of " +
                           std::to_string(block) + "; this model's is " + std::to_string(config.head_dim));
  }
  return Status::Ok();
}

size_t KvBytesPerPosition(const ModelConfig& config, const KvGroup& group, DType dtype) {
  return 2 * group.layers.size() * config.num_kv_heads * RowBytes(dtype, config.head_dim);
}

size_t KvCacheBytes(const ModelConfig& config, int64_t max_tokens, int64_t max_chunk, bool ring_buffers,
                    DType dtype) {
  size_t total = 0;
  for (const KvGroup& group : KvGroups(config)) {
    int64_t slots = max_tokens;
    if (ring_buffers && group.window > 0) slots = std::min<int64_t>(max_tokens, group.window + max_chunk - 1);
    total += static_cast<size_t>(slots) * KvBytesPerPosition(config, group, dtype);
  }
  return total;
}

size_t KvCacheBytes(const ModelConfig& config, int64_t max_tokens, int64_t max_chunk, bool ring_buffers) {
  return KvCacheBytes(config, max_tokens, max_chunk, ring_buffers, DType::kF32);
}

Result<KvPool> KvPool::Create(const ModelConfig& config, const KvPoolShape& shape, DeviceMemory& memory) {
  GR_RETURN_IF_ERROR(CheckKvCacheType(config, shape.dtype));
  KvPool pool;
  pool.shape_ = shape;
  pool.memory_ = &memory;
  pool.groups_ = KvGroups(config);
  if (shape.blocks_per_group.size() != pool.groups_.size() || shape.block_size <= 0) {
    return InvalidArgument("KV pool: " + std::to_string(shape.blocks_per_group.size()) + " group sizes for " +
                           std::to_string(pool.groups_.size()) + " attention groups");
  }
  pool.group_of_layer_.assign(config.num_layers(), -1);
  for (size_t g = 0; g < pool.groups_.size(); ++g) {
    for (int layer : pool.groups_[g].layers) pool.group_of_layer_[layer] = static_cast<int>(g);
  }
  pool.layers_.resize(config.num_layers());
  pool.conv_rows_ = std::max(0, config.conv1d_width - 1);
  pool.lru_width_ = config.lru_width;
  const auto make = [&](DType dtype, Shape tensor_shape, Tensor* out, const char* what) -> Status {
    auto made = Tensor::Allocate(memory, dtype, tensor_shape);
    if (!made.ok()) {
      return ResourceExhausted(std::string("not enough memory for the ") + what + " on " +
                               memory.device().ToString() + " (" + std::to_string(pool.bytes()) +
                               " bytes allocated so far)");
    }
    *out = std::move(*made);
    return Status::Ok();
  };
  for (int i = 0; i < config.num_layers(); ++i) {
    LayerSlabs& slabs = pool.layers_[i];
    const int g = pool.group_of_layer_[i];
    if (g >= 0) {
      const Shape kv{shape.blocks_per_group[g] * shape.block_size, config.num_kv_heads, config.head_dim};
      GR_RETURN_IF_ERROR(make(shape.dtype, kv, &slabs.k, "KV cache"));
      GR_RETURN_IF_ERROR(make(shape.dtype, kv, &slabs.v, "KV cache"));
    } else if (shape.recurrent_slots > 0) {
      if (pool.conv_rows_ > 0) {
        GR_RETURN_IF_ERROR(make(DType::kF32, Shape{shape.recurrent_slots, pool.conv_rows_, pool.lru_width_},
                                &slabs.conv, "recurrent state"));
      }
      GR_RETURN_IF_ERROR(
          make(DType::kF32, Shape{shape.recurrent_slots, pool.lru_width_}, &slabs.h, "recurrent state"));
    }
  }
  return pool;
}

KvCacheView KvPool::layer_view(int layer) const {
  const LayerSlabs& slabs = layers_[layer];
  return KvCacheView{slabs.k.view(), slabs.v.view(), shape_.block_size};
}

size_t KvPool::bytes() const {
  size_t total = 0;
  for (const LayerSlabs& s : layers_) total += s.k.bytes() + s.v.bytes() + s.conv.bytes() + s.h.bytes();
  return total;
}

TensorView KvPool::conv_state(int layer, int slot) const {
  const Tensor& conv = layers_[layer].conv;
  if (conv.empty()) return TensorView{nullptr, DType::kF32, Shape{0, lru_width_}, conv.device()};
  return TensorView{const_cast<uint8_t*>(conv.data()) + slot * conv_rows_ * lru_width_ * sizeof(float),
                    DType::kF32, Shape{conv_rows_, lru_width_}, conv.device()};
}

TensorView KvPool::lru_state(int layer, int slot) const {
  const Tensor& h = layers_[layer].h;
  return TensorView{const_cast<uint8_t*>(h.data()) + slot * lru_width_ * sizeof(float), DType::kF32,
                    Shape{lru_width_}, h.device()};
}

void KvPool::ResetSlot(int slot) {
  for (size_t i = 0; i < layers_.size(); ++i) {
    if (layers_[i].h.empty()) continue;
    const TensorView conv = conv_state(static_cast<int>(i), slot);
    if (!conv.empty()) memory_->Zero(conv.data, conv.bytes());
    const TensorView h = lru_state(static_cast<int>(i), slot);
    memory_->Zero(h.data, h.bytes());
  }
}

}  // namespace gemmarun
