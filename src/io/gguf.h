// GGUF reader and writer (ref: ggml/docs/gguf.md, ggml/src/gguf.cpp).
//
// A GGUF file is: header (magic "GGUF", version, tensor_count, kv_count), typed
// metadata key/values, tensor infos (name, ggml dims, ggml type, offset), padding
// to `general.alignment` (default 32), then the tensor data. GgufFile::Open walks
// and validates all of it (every length against the bytes that remain, offsets,
// alignment, overlaps) before returning, so getters can decode without checks.
// Metadata values stay in the mapping and are decoded on request: a tokenizer's
// 262144 strings are only copied when someone asks for them.
//
// Tensor shapes are row-major (ggml's ne order reversed): a linear weight stored
// with ne = {in, out} becomes [out, in]. No Gemma knowledge lives here.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "gemmarun/status.h"
#include "io/mapped_file.h"
#include "io/tensor_source.h"
#include "tensor/dtype.h"
#include "tensor/tensor.h"

namespace gemmarun {

// Metadata value types. ref: ggml/include/gguf.h enum gguf_type
enum class GgufType : uint32_t {
  kUInt8 = 0,
  kInt8 = 1,
  kUInt16 = 2,
  kInt16 = 3,
  kUInt32 = 4,
  kInt32 = 5,
  kFloat32 = 6,
  kBool = 7,
  kString = 8,
  kArray = 9,
  kUInt64 = 10,
  kInt64 = 11,
  kFloat64 = 12,
};
const char* GgufTypeName(GgufType type);  // "u32", "string", ...

// ggml tensor type ids (ref: ggml/include/ggml.h enum ggml_type).
uint32_t GgmlTypeId(DType type);
// False for ids we do not read (or that do not exist).
bool DTypeFromGgmlType(uint32_t ggml_type, DType* out);
// "Q2_K", "IQ4_NL", ... or "unknown" for an id ggml does not define.
const char* GgmlTypeName(uint32_t ggml_type);

class GgufFile {
 public:
  static Result<GgufFile> Open(const std::string& path);

  uint32_t version() const { return version_; }
  size_t alignment() const { return alignment_; }
  size_t data_offset() const { return data_offset_; }  // start of the tensor data section
  const std::string& path() const { return file_.path(); }

  // Metadata. Every getter fails with NotFound for a missing key and Corrupt for
  // a value of another type, naming the file and the key.
  bool Has(std::string_view key) const;
  Result<uint64_t> GetUInt(std::string_view key) const;  // any integer type, if >= 0
  Result<int64_t> GetInt(std::string_view key) const;    // any integer type that fits
  Result<double> GetFloat(std::string_view key) const;   // f32, f64 or any integer
  Result<bool> GetBool(std::string_view key) const;
  Result<std::string> GetString(std::string_view key) const;
  Result<std::vector<std::string>> GetStringArray(std::string_view key) const;
  Result<std::vector<float>> GetFloatArray(std::string_view key) const;  // f32/f64/integers
  Result<std::vector<int64_t>> GetIntArray(std::string_view key) const;  // integers that fit
  // The value's type, and for arrays the element type and length.
  Result<GgufType> GetType(std::string_view key) const;
  Result<GgufType> GetArrayType(std::string_view key) const;
  Result<uint64_t> GetArrayLength(std::string_view key) const;
  std::vector<std::string> Keys() const;  // in file order
  // Short human-readable form ("u32 32768", "[string x 262144] \"<pad>\", ..."),
  // for `gemmarun inspect`. Empty for a missing key.
  std::string DescribeValue(std::string_view key) const;

  // The encoded value (everything after its type tag), for copying a key into
  // a GgufWriter without decoding it.
  struct RawValue {
    GgufType type;
    std::span<const uint8_t> bytes;
  };
  Result<RawValue> GetRaw(std::string_view key) const;

  const std::vector<TensorSource>& tensors() const { return tensors_; }
  const TensorSource* Find(std::string_view name) const;

 private:
  struct Entry {
    std::string key;
    GgufType type;
    GgufType element_type;  // arrays only
    uint64_t length;        // arrays only
    size_t value_offset;    // file offset of the value (for arrays: of its type tag)
    size_t value_bytes;
  };

  const Entry* FindEntry(std::string_view key) const;
  Result<const Entry*> Lookup(std::string_view key) const;
  Result<const Entry*> LookupArray(std::string_view key, const char* expected) const;
  Status TypeMismatch(const Entry& entry, const char* expected) const;
  const uint8_t* ValueData(const Entry& entry) const { return file_.data() + entry.value_offset; }
  // For arrays: the first element, after the element type and length.
  const uint8_t* ElementData(const Entry& entry) const { return ValueData(entry) + 12; }

  friend class GgufParser;  // fills the fields above, in gguf.cc

  MappedFile file_;
  uint32_t version_ = 0;
  size_t alignment_ = 32;
  size_t data_offset_ = 0;
  std::vector<Entry> entries_;
  std::map<std::string, size_t, std::less<>> entry_index_;
  std::vector<TensorSource> tensors_;
  std::map<std::string, size_t, std::less<>> tensor_index_;
};

// Writes GGUF v3 files: used by tests, and by `gemmarun quantize` to write a
// converted model. Setting a key that exists replaces its value in place (the
// key keeps its position). Tensors are stored in the order they are added, each
// at an offset aligned to `general.alignment` (32 unless that key is set).
class GgufWriter {
 public:
  GgufWriter() = default;
  // Move-only: AddTensor's spans point into buffers the writer owns.
  GgufWriter(GgufWriter&&) = default;
  GgufWriter& operator=(GgufWriter&&) = default;
  GgufWriter(const GgufWriter&) = delete;
  GgufWriter& operator=(const GgufWriter&) = delete;

  void AddUInt8(std::string_view key, uint8_t value);
  void AddInt8(std::string_view key, int8_t value);
  void AddUInt16(std::string_view key, uint16_t value);
  void AddInt16(std::string_view key, int16_t value);
  void AddUInt32(std::string_view key, uint32_t value);
  void AddInt32(std::string_view key, int32_t value);
  void AddUInt64(std::string_view key, uint64_t value);
  void AddInt64(std::string_view key, int64_t value);
  void AddFloat32(std::string_view key, float value);
  void AddFloat64(std::string_view key, double value);
  void AddBool(std::string_view key, bool value);
  void AddString(std::string_view key, std::string_view value);
  void AddStringArray(std::string_view key, const std::vector<std::string>& values);
  void AddFloatArray(std::string_view key, std::span<const float> values);
  void AddInt32Array(std::string_view key, std::span<const int32_t> values);
  void AddUInt32Array(std::string_view key, std::span<const uint32_t> values);
  void AddInt64Array(std::string_view key, std::span<const int64_t> values);
  // Any value, already encoded as in a file (see GgufFile::GetRaw).
  void AddRaw(std::string_view key, GgufType type, std::span<const uint8_t> bytes);
  // Copies `key` with its type from `file` (tokenizer vocabularies, nested arrays...).
  Status CopyValue(const GgufFile& file, std::string_view key);

  // `bytes` is the tensor in its stored format, rows of `shape`'s last dim
  // (ggml's ne0). AddTensor copies them; AddTensorRef keeps a pointer, so they
  // must outlive Write (for multi-GB models).
  Status AddTensor(std::string_view name, DType dtype, const Shape& shape,
                   std::span<const uint8_t> bytes);
  Status AddTensorRef(std::string_view name, DType dtype, const Shape& shape,
                      std::span<const uint8_t> bytes);

  // Writes `path` + ".tmp" and renames it, so a failed write leaves no partial file.
  Status Write(const std::string& path) const;

 private:
  struct Value {
    std::string key;
    GgufType type;
    std::vector<uint8_t> bytes;  // encoded, after the type tag
  };
  struct PendingTensor {
    std::string name;
    DType dtype;
    Shape shape;
    std::vector<uint8_t> owned;
    std::span<const uint8_t> bytes;
  };
  void Set(std::string_view key, GgufType type, std::vector<uint8_t> bytes);
  Status CheckTensor(std::string_view name, DType dtype, const Shape& shape, size_t bytes) const;

  std::vector<Value> values_;
  std::vector<PendingTensor> tensors_;
};

}  // namespace gemmarun
