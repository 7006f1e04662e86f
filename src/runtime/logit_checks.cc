#include "runtime/logit_checks.h"

#include <cmath>
#include <string>

#include "base/memory_info.h"
#include "tensor/finite.h"

namespace gemmarun {

Status CheckLogitsFinite(const TensorView& logits) {
  const int64_t rows = logits.shape.rows(), cols = logits.shape.cols();
  for (int64_t r = 0; r < rows; ++r) {
    const auto at = FindNonFinite(DType::kF32, logits.row(r), static_cast<size_t>(cols) * sizeof(float));
    if (!at) continue;
    const float value = reinterpret_cast<const float*>(logits.row(r))[*at];
    return Internal(std::string("the model computed a") + (std::isnan(value) ? " NaN" : "n infinite") +
                    " logit (position " + std::to_string(r) + " of this step, token id " + std::to_string(*at) +
                    "): its activations overflowed float32");
  }
  return Status::Ok();
}

Status CheckLogitsFit(int64_t rows, int64_t vocab) {
  const double bytes = 2.0 * double(rows) * double(vocab) * sizeof(float);
  const size_t available = AvailableMemoryBytes();
  if (available == 0 || bytes <= double(available)) return Status::Ok();
  return ResourceExhausted("the logits of all " + std::to_string(rows) + " tokens need " + HumanBytes(bytes) +
                           ", but only " + HumanBytes(double(available)) +
                           " of memory is available; use a smaller context");
}

}  // namespace gemmarun
