// Checks on what the model computes, kept apart from the engine so that every
// path that produces logits calls the same one line.
#pragma once

#include <cstdint>

#include "gemmarun/status.h"
#include "tensor/tensor.h"

namespace gemmarun {

// An error naming the first row and token id whose logit is NaN or infinite.
// Weights are checked at load, so this catches activations that overflowed;
// sampling from such a row would silently print token 0 forever.
Status CheckLogitsFinite(const TensorView& logits);

// ResourceExhausted when `rows` logit rows of `vocab` floats (held twice: the
// model's output and the caller's copy) exceed the memory available, so that
// `perplexity -c 4096` on a 262144-token vocabulary (8 GB) is an error, not an abort.
Status CheckLogitsFit(int64_t rows, int64_t vocab);

}  // namespace gemmarun
