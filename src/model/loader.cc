#include "model/loader.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "base/memory_info.h"
#include "tensor/finite.h"
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

// Tensors are copied in slices of about this size; each slice's file pages are
// dropped once copied, so the load holds the weights plus one slice of the file
// (not a 170 MB embedding twice, as a whole-tensor copy does).
constexpr size_t kSliceBytes = size_t{16} << 20;

// File pages of [begin, begin + bytes) are dead weight once copied: dropping them
// keeps the load's peak memory near the weights' size. Only whole pages inside the
// range are dropped (a page shared with the neighbour may still be needed).
void ReleasePages(const uint8_t* data, size_t bytes) {
  static const uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  const uintptr_t begin = (reinterpret_cast<uintptr_t>(data) + page - 1) / page * page;
  const uintptr_t end = (reinterpret_cast<uintptr_t>(data) + bytes) / page * page;
  if (end > begin) madvise(reinterpret_cast<void*>(begin), end - begin, MADV_DONTNEED);
}

// A NaN/inf weight turns every logit into NaN, and greedy decoding then prints
// token 0 forever; checked slice by slice as the bytes are copied (one extra pass
// over data already in cache). `begin` lies inside source.data at a block boundary.
Status CheckFinite(const TensorSource& source, const uint8_t* begin, size_t bytes) {
  const auto at = FindNonFinite(source.dtype, begin, bytes);
  if (!at) return Status::Ok();
  const DTypeInfo& info = Info(source.dtype);
  const size_t element = static_cast<size_t>(begin - source.data) / info.block_bytes * info.block_elements + *at;
  return Corrupt(source.file + ": tensor '" + source.name + "' holds a NaN or infinite value (element " +
                 std::to_string(element) + ")");
}

// Re-encodes a matrix row by row (stored type → f32 → target), so that a
// conversion never holds more than one f32 row.
Status ConvertMatrix(const WeightSpec& spec, const TensorSource& source, const Shape& shape, DType target) {
  if (!Tensor::TryCreate(target, shape, spec.tensor)) return ResourceExhausted(spec.name + ": out of memory");
  const int64_t cols = shape.cols();
  const size_t source_row_bytes = RowBytes(source.dtype, cols);
  std::vector<float> row(cols);
  size_t released = 0;  // bytes of the source whose pages are dropped
  for (int64_t r = 0; r < shape.rows(); ++r) {
    const uint8_t* source_row = source.data + r * source_row_bytes;
    GR_RETURN_IF_ERROR(CheckFinite(source, source_row, source_row_bytes));
    DequantizeRow(source.dtype, source_row, row.data(), cols);
    if (!QuantizeRow(target, row.data(), spec.tensor->view().row(r), cols)) {
      return Unsupported(spec.name + ": cannot convert weights to " + Name(target));
    }
    const size_t done = (r + 1) * source_row_bytes;
    if (done - released >= kSliceBytes) {
      ReleasePages(source.data + released, done - released);
      released = done;
    }
  }
  return Status::Ok();
}

// Bytes a tensor takes once loaded: matrices in their stored or --dtype type,
// everything else f32 (as CopyInto creates them).
size_t HeldBytes(const WeightSpec& spec, const TensorSource& source, const WeightLoadOptions& options) {
  const Shape shape = spec.compute_shape.rank() > 0 ? spec.compute_shape : spec.shape;
  if (spec.kind != WeightKind::kMatrix) return static_cast<size_t>(shape.elements()) * sizeof(float);
  if (options.matrix_dtype && *options.matrix_dtype != source.dtype &&
      shape.cols() % static_cast<int64_t>(Info(*options.matrix_dtype).block_elements) == 0) {
    return static_cast<size_t>(shape.rows()) * RowBytes(*options.matrix_dtype, static_cast<size_t>(shape.cols()));
  }
  return source.bytes;
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
      return ResourceExhausted(spec.name + ": out of memory for " + std::to_string(source.bytes) + " bytes");
    }
    const size_t block_bytes = Info(source.dtype).block_bytes;
    const size_t slice = std::max<size_t>(1, kSliceBytes / block_bytes) * block_bytes;
    auto* destination = static_cast<uint8_t*>(spec.tensor->data());
    for (size_t done = 0; done < source.bytes; done += slice) {
      const size_t n = std::min(slice, source.bytes - done);
      GR_RETURN_IF_ERROR(CheckFinite(source, source.data + done, n));
      std::memcpy(destination + done, source.data + done, n);
      ReleasePages(source.data + done, n);
    }
    return Status::Ok();
  }
  // Norms, biases and small parameters are computed in f32.
  if (!Tensor::TryCreate(DType::kF32, shape, spec.tensor)) return ResourceExhausted(spec.name + ": out of memory");
  const int64_t n = shape.elements();
  if (IsQuantized(source.dtype) && n % static_cast<int64_t>(Info(source.dtype).block_elements) != 0) {
    return Unsupported(spec.name + ": quantized " + Name(source.dtype) + " vector of " + std::to_string(n) + " values");
  }
  GR_RETURN_IF_ERROR(CheckFinite(source, source.data, source.bytes));
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
  size_t total_bytes = 0, held_bytes = 0;
  ForEachWeight(config, *weights, [&](const WeightSpec& spec) {
    if (!status.ok()) return;
    const TensorSource* source = nullptr;
    for (const std::string& name : CandidateNames(spec.name)) {
      if ((source = lookup(name)) != nullptr) break;
    }
    if (source == nullptr) {
      if (spec.required) {
        status = NotFound(options.where + (options.where.empty() ? "" : ": ") + "tensor '" + spec.name +
                          "' is missing (expected shape " + spec.shape.ToString() + ")");
      }
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
    held_bytes += HeldBytes(spec, *source, options);
    plan.emplace_back(spec, source);
  });
  GR_RETURN_IF_ERROR(status);
  // Refused up front: a model that cannot fit would otherwise be killed half-way
  // through the copy, or swap the machine to a halt.
  const size_t available = AvailableMemoryBytes();
  if (available > 0 && held_bytes + options.extra_bytes > available) {
    return ResourceExhausted(options.where + (options.where.empty() ? "" : ": ") + "the weights need " +
                             HumanBytes(double(held_bytes)) + " and " + options.extra_what + " " +
                             HumanBytes(double(options.extra_bytes)) + ", but only " + HumanBytes(double(available)) +
                             " of memory is available (MemAvailable)");
  }
  size_t done_bytes = 0;
  for (const auto& [spec, source] : plan) {
    GR_RETURN_IF_ERROR(CopyInto(spec, *source, options).WithContext(source->file));
    ReleasePages(source->data, source->bytes);
    done_bytes += source->bytes;
    if (options.progress) options.progress(done_bytes, total_bytes);
  }
  return Status::Ok();
}

}  // namespace gemmarun
