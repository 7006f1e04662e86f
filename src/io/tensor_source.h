// What a weight file (safetensors or GGUF) offers the loader: named tensors with
// a dtype, a row-major shape ([out, in] for a linear layer, whichever format) and
// their bytes inside the file's mapping. No Gemma knowledge lives here.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "tensor/dtype.h"
#include "tensor/tensor.h"

namespace gemmarun {

struct TensorSource {
  std::string name;
  DType dtype = DType::kF32;
  Shape shape;
  const uint8_t* data = nullptr;  // inside the file's mapping
  size_t bytes = 0;
  std::string file;  // for error messages
};

}  // namespace gemmarun
