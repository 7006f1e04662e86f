#include "model/decoder.h"

namespace gemmarun {

void Decoder::Layer(int layer, const TensorView& x, const StackBatch& batch) const {
  ResidualLayer(layer, x, *batch.ws, [&](const TensorView& normed, const TensorView& out) {
    AttentionBlock(ctx_, config_, config_.layers[layer], weights_.layers[layer].attn, normed, batch.ws->positions,
                   KvFor(layer, batch), batch.ws->attention, out);
  });
}

}  // namespace gemmarun
