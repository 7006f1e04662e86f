#include "model/loader.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cstring>
#include <vector>

#include "tensor/quant.h"

namespace gemmarun {
namespace {

const std::pair<const char*, const char*> kPrefixAliases[] = {
    {"vision_tower.vision_model.", "vision_tower."},             // PaliGemma: transformers 5 drops vision_model
    {"language_model.model.", "model.language_model."},          // transformers 5 multimodal layout
    {"multi_modal_projector.", "model.multi_modal_projector."},
    {"vision_tower.vision_model.", "model.vision_tower.vision_model."},
    {"model.", "language_model.model."},                         // Gemma 3 text inside a multimodal checkpoint
};

// Re-encodes a matrix row by row (stored type → f32 → target), so that a
// conversion never holds more than one f32 row.
Status ConvertMatrix(const WeightSpec& spec, const TensorSource& source, const Shape& shape, DType target) {
  if (!Tensor::TryCreate(target, shape, spec.tensor)) return Internal(spec.name + ": out of memory");
  const int64_t cols = shape.cols();
  const size_t source_row_bytes = RowBytes(source.dtype, cols);
  std::vector<float> row(cols);
  for (int64_t r = 0; r < shape.rows(); ++r) {
    DequantizeRow(source.dtype, source.data + r * source_row_bytes, row.data(), cols);
    if (!QuantizeRow(target, row.data(), spec.tensor->view().row(r), cols)) {
      return Unsupported(spec.name + ": cannot convert weights to " + Name(target));
    }
  }
  return Status::Ok();
}

// Once a tensor is copied, its file pages are dead weight: dropping them keeps the
// load's peak memory near the weights' size instead of twice it. Only whole pages
// inside the tensor's bytes are dropped (neighbours may still be needed).
void ReleaseSourcePages(const TensorSource& source) {
  static const uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  const uintptr_t begin = (reinterpret_cast<uintptr_t>(source.data) + page - 1) / page * page;
  const uintptr_t end = (reinterpret_cast<uintptr_t>(source.data) + source.bytes) / page * page;
  if (end > begin) madvise(reinterpret_cast<void*>(begin), end - begin, MADV_DONTNEED);
}

Status CopyInto(const WeightSpec& spec, const TensorSource& source, const WeightLoadOptions& options) {
  const bool norms_include_one = options.norms_include_one;
  const Shape shape = spec.compute_shape.rank() > 0 ? spec.compute_shape : spec.shape;
  if (spec.kind == WeightKind::kMatrix && options.matrix_dtype && *options.matrix_dtype != source.dtype &&
      shape.cols() % static_cast<int64_t>(Info(*options.matrix_dtype).block_elements) == 0) {
    return ConvertMatrix(spec, source, shape, *options.matrix_dtype);
  }
  if (spec.kind == WeightKind::kMatrix) {
    if (!Tensor::TryCreate(source.dtype, shape, spec.tensor)) {
      return Internal(spec.name + ": out of memory for " + std::to_string(source.bytes) + " bytes");
    }
    std::memcpy(spec.tensor->data(), source.data, source.bytes);
    return Status::Ok();
  }
  // Norms, biases and small parameters are computed in f32.
  if (!Tensor::TryCreate(DType::kF32, shape, spec.tensor)) return Internal(spec.name + ": out of memory");
  const int64_t n = shape.elements();
  if (IsQuantized(source.dtype) && n % static_cast<int64_t>(Info(source.dtype).block_elements) != 0) {
    return Unsupported(spec.name + ": quantized " + Name(source.dtype) + " vector of " + std::to_string(n) + " values");
  }
  DequantizeRow(source.dtype, source.data, spec.tensor->f32(), n);
  if (spec.kind == WeightKind::kNorm && !norms_include_one) {
    for (int64_t i = 0; i < n; ++i) spec.tensor->f32()[i] += 1.0f;  // ref: GemmaRMSNorm scales by (1 + w)
  }
  return Status::Ok();
}

}  // namespace

std::vector<std::string> CandidateNames(const std::string& name) {
  std::vector<std::string> names = {name};
  for (const auto& [from, to] : kPrefixAliases) {
    if (name.rfind(from, 0) == 0) names.push_back(to + name.substr(std::strlen(from)));
  }
  return names;
}

Status LoadWeights(const ModelConfig& config, const TensorLookup& lookup, const WeightLoadOptions& options,
                   ModelWeights* weights) {
  ResizeWeights(config, *weights);
  // First pass: find and check everything, so a bad file fails before any copying.
  std::vector<std::pair<WeightSpec, const TensorSource*>> plan;
  Status status;
  size_t total_bytes = 0;
  ForEachWeight(config, *weights, [&](const WeightSpec& spec) {
    if (!status.ok()) return;
    const TensorSource* source = nullptr;
    for (const std::string& name : CandidateNames(spec.name)) {
      if ((source = lookup(name)) != nullptr) break;
    }
    if (source == nullptr) {
      if (spec.required) status = NotFound("tensor '" + spec.name + "' is missing (expected shape " + spec.shape.ToString() + ")");
      return;
    }
    if (source->shape != spec.shape) {
      status = InvalidArgument(source->file + ": tensor '" + source->name + "' has shape " + source->shape.ToString() +
                               ", expected " + spec.shape.ToString());
      return;
    }
    if (source->dtype == DType::kI32) {
      status = Unsupported(source->file + ": tensor '" + source->name + "' is i32, expected a floating-point type");
      return;
    }
    const int64_t cols = spec.compute_shape.rank() > 0 ? spec.compute_shape.cols() : spec.shape.cols();
    if (IsQuantized(source->dtype) && cols % static_cast<int64_t>(Info(source->dtype).block_elements) != 0) {
      status = Corrupt(source->file + ": tensor '" + source->name + "' rows are not whole " + Name(source->dtype) + " blocks");
      return;
    }
    total_bytes += source->bytes;
    plan.emplace_back(spec, source);
  });
  GR_RETURN_IF_ERROR(status);
  size_t done_bytes = 0;
  for (const auto& [spec, source] : plan) {
    GR_RETURN_IF_ERROR(CopyInto(spec, *source, options));
    ReleaseSourcePages(*source);
    done_bytes += source->bytes;
    if (options.progress) options.progress(done_bytes, total_bytes);
  }
  return Status::Ok();
}

}  // namespace gemmarun
