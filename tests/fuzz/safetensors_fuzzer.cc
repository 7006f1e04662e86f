// safetensors: the header length, the JSON header and the tensor table checked
// against the file; every tensor's first and last byte are read.
#include <cstdint>

#include "fuzz/fuzz_file.h"
#include "io/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace gemmarun;
  const std::string path = fuzz::WriteInput(data, size, ".safetensors");
  auto file = SafetensorsFile::Open(path);
  if (!file.ok()) return 0;
  volatile uint8_t sink = 0;
  for (const TensorSource& t : file->tensors()) {
    if (t.bytes > 0) sink = sink + t.data[0] + t.data[t.bytes - 1];
    if (t.shape.elements() < 0) __builtin_trap();
  }
  return 0;
}
