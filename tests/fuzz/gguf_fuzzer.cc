// GGUF reader: header, metadata of every type, tensor table; then every getter on
// every key, and the model config built from the metadata, as `inspect` and the
// loader do.
#include <cstdint>

#include "fuzz/fuzz_file.h"
#include "io/gguf.h"
#include "model/gguf_model.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace gemmarun;
  const std::string path = fuzz::WriteInput(data, size, ".gguf");
  auto file = GgufFile::Open(path);
  if (!file.ok()) return 0;
  for (const std::string& key : file->Keys()) {
    (void)file->GetUInt(key);
    (void)file->GetInt(key);
    (void)file->GetFloat(key);
    (void)file->GetBool(key);
    (void)file->GetString(key);
    (void)file->GetStringArray(key);
    (void)file->GetFloatArray(key);
    (void)file->GetIntArray(key);
    (void)file->GetArrayLength(key);
    (void)file->DescribeValue(key);
  }
  volatile uint8_t sink = 0;
  for (const TensorSource& t : file->tensors()) {
    if (t.bytes > 0) sink = sink + t.data[0] + t.data[t.bytes - 1];  // the table's bounds are honest
  }
  (void)ConfigFromGguf(*file);
  return 0;
}
