// Checks on what the model computes, kept apart from the engine so that every
// path that produces logits calls the same one line.
#pragma once

#include "gemmarun/status.h"
#include "tensor/tensor.h"

namespace gemmarun {

// An error naming the first row and token id whose logit is NaN or infinite.
// Weights are checked at load, so this catches activations that overflowed;
// sampling from such a row would silently print token 0 forever.
Status CheckLogitsFinite(const TensorView& logits);

}  // namespace gemmarun
