#include "io/gguf.h"

#include <algorithm>
#include <bit>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <utility>

#include "base/check.h"

namespace gemmarun {

// Every multi-byte field is little-endian; we read it with memcpy.
static_assert(std::endian::native == std::endian::little, "GGUF reading assumes a little-endian host");

namespace {

constexpr char kMagic[4] = {'G', 'G', 'U', 'F'};
constexpr uint32_t kWriteVersion = 3;
constexpr size_t kDefaultAlignment = 32;  // ref: ggml/include/gguf.h GGUF_DEFAULT_ALIGNMENT
constexpr int kMaxDims = 4;               // ref: ggml/include/ggml.h GGML_MAX_DIMS
// Real files never nest arrays; the bound keeps a crafted file from recursing
// us out of stack (each level costs it only 12 bytes).
constexpr int kMaxArrayDepth = 16;
// Smallest encodings, used to bound counts by the bytes left before trusting them:
// a key/value is a key length (8) + type (4) + a 1-byte value; a tensor info is a
// name length (8) + n_dims (4) + one dim (8) + type (4) + offset (8).
constexpr size_t kMinKeyValueBytes = 8 + 4 + 1;
constexpr size_t kMinTensorInfoBytes = 8 + 4 + 8 + 4 + 8;
constexpr size_t kArrayHeaderBytes = 4 + 8;
// How much of a value DescribeValue shows.
constexpr size_t kDescribeElements = 6;
constexpr size_t kDescribeStringChars = 48;

bool IsValidType(uint32_t type) { return type <= static_cast<uint32_t>(GgufType::kFloat64); }

// Bytes of a fixed-size value; 0 for string and array.
size_t FixedSize(GgufType type) {
  switch (type) {
    case GgufType::kUInt8:
    case GgufType::kInt8:
    case GgufType::kBool:
      return 1;
    case GgufType::kUInt16:
    case GgufType::kInt16:
      return 2;
    case GgufType::kUInt32:
    case GgufType::kInt32:
    case GgufType::kFloat32:
      return 4;
    case GgufType::kUInt64:
    case GgufType::kInt64:
    case GgufType::kFloat64:
      return 8;
    case GgufType::kString:
    case GgufType::kArray:
      return 0;
  }
  return 0;
}

bool IsInteger(GgufType type) {
  switch (type) {
    case GgufType::kUInt8:
    case GgufType::kInt8:
    case GgufType::kUInt16:
    case GgufType::kInt16:
    case GgufType::kUInt32:
    case GgufType::kInt32:
    case GgufType::kUInt64:
    case GgufType::kInt64:
      return true;
    default:
      return false;
  }
}

template <class T>
T Load(const uint8_t* p) {
  T value;
  std::memcpy(&value, p, sizeof(T));
  return value;
}

// An integer of any GGUF integer type, without losing u64 values above INT64_MAX.
struct Integer {
  bool negative = false;
  uint64_t magnitude = 0;  // |value|
  bool FitsInt64() const {
    return negative ? magnitude <= uint64_t{1} << 63
                    : magnitude <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
  }
  int64_t AsInt64() const {  // requires FitsInt64()
    return negative ? static_cast<int64_t>(0 - magnitude) : static_cast<int64_t>(magnitude);
  }
  double AsDouble() const {
    const double m = static_cast<double>(magnitude);
    return negative ? -m : m;
  }
};

Integer LoadInteger(GgufType type, const uint8_t* p) {
  auto from_signed = [](int64_t v) {
    Integer i;
    i.negative = v < 0;
    i.magnitude = v < 0 ? 0 - static_cast<uint64_t>(v) : static_cast<uint64_t>(v);
    return i;
  };
  auto from_unsigned = [](uint64_t v) {
    Integer i;
    i.magnitude = v;
    return i;
  };
  switch (type) {
    case GgufType::kUInt8: return from_unsigned(Load<uint8_t>(p));
    case GgufType::kInt8: return from_signed(Load<int8_t>(p));
    case GgufType::kUInt16: return from_unsigned(Load<uint16_t>(p));
    case GgufType::kInt16: return from_signed(Load<int16_t>(p));
    case GgufType::kUInt32: return from_unsigned(Load<uint32_t>(p));
    case GgufType::kInt32: return from_signed(Load<int32_t>(p));
    case GgufType::kUInt64: return from_unsigned(Load<uint64_t>(p));
    case GgufType::kInt64: return from_signed(Load<int64_t>(p));
    default: GR_CHECK(false) << "not an integer type: " << GgufTypeName(type);
  }
  return {};
}

double LoadNumber(GgufType type, const uint8_t* p) {
  if (type == GgufType::kFloat32) return Load<float>(p);
  if (type == GgufType::kFloat64) return Load<double>(p);
  return LoadInteger(type, p).AsDouble();
}

std::string_view LoadString(const uint8_t* p) {
  const uint64_t length = Load<uint64_t>(p);
  return std::string_view(reinterpret_cast<const char*>(p + 8), static_cast<size_t>(length));
}

// Encoded size of the already validated value at `p`.
size_t ValueSize(GgufType type, const uint8_t* p) {
  if (type == GgufType::kString) return 8 + static_cast<size_t>(Load<uint64_t>(p));
  if (type != GgufType::kArray) return FixedSize(type);
  const auto element_type = static_cast<GgufType>(Load<uint32_t>(p));
  const uint64_t length = Load<uint64_t>(p + 4);
  size_t bytes = kArrayHeaderBytes;
  if (FixedSize(element_type) != 0) return bytes + static_cast<size_t>(length) * FixedSize(element_type);
  for (uint64_t i = 0; i < length; ++i) bytes += ValueSize(element_type, p + bytes);
  return bytes;
}

std::string FormatFloat(double value, bool single) {
  char buffer[64];
  const auto result = single ? std::to_chars(buffer, buffer + sizeof(buffer), static_cast<float>(value))
                             : std::to_chars(buffer, buffer + sizeof(buffer), value);
  return std::string(buffer, result.ptr);
}

std::string Quote(std::string_view text) {
  std::string out = "\"";
  const size_t shown = std::min(text.size(), kDescribeStringChars);
  for (size_t i = 0; i < shown; ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20 || c == 0x7f) {
      char escaped[8];
      std::snprintf(escaped, sizeof(escaped), "\\x%02x", c);
      out += escaped;
    } else {
      out += static_cast<char>(c);
    }
  }
  out += '"';
  if (shown < text.size()) out += "... (" + std::to_string(text.size()) + " bytes)";
  return out;
}

// Appends the value at `p` without its type name (arrays do include their
// element type, so nested arrays read unambiguously).
void DescribeAt(GgufType type, const uint8_t* p, std::string* out) {
  switch (type) {
    case GgufType::kFloat32: *out += FormatFloat(Load<float>(p), true); return;
    case GgufType::kFloat64: *out += FormatFloat(Load<double>(p), false); return;
    case GgufType::kBool: *out += Load<uint8_t>(p) ? "true" : "false"; return;
    case GgufType::kString: *out += Quote(LoadString(p)); return;
    case GgufType::kArray: {
      const auto element_type = static_cast<GgufType>(Load<uint32_t>(p));
      const uint64_t length = Load<uint64_t>(p + 4);
      *out += std::string("[") + GgufTypeName(element_type) + " x " + std::to_string(length) + "] {";
      const uint8_t* element = p + kArrayHeaderBytes;
      for (uint64_t i = 0; i < length && i < kDescribeElements; ++i) {
        if (i > 0) *out += ", ";
        DescribeAt(element_type, element, out);
        element += ValueSize(element_type, element);
      }
      if (length > kDescribeElements) *out += ", ...";
      *out += "}";
      return;
    }
    default: {
      const Integer value = LoadInteger(type, p);
      *out += (value.negative ? "-" : "") + std::to_string(value.magnitude);
      return;
    }
  }
}

template <class T>
void Append(std::vector<uint8_t>* out, T value) {
  const size_t at = out->size();
  out->resize(at + sizeof(T));
  std::memcpy(out->data() + at, &value, sizeof(T));
}

void AppendString(std::vector<uint8_t>* out, std::string_view text) {
  Append<uint64_t>(out, text.size());
  out->insert(out->end(), text.begin(), text.end());
}

template <class T>
std::vector<uint8_t> EncodeArray(GgufType element_type, std::span<const T> values) {
  std::vector<uint8_t> bytes;
  bytes.reserve(kArrayHeaderBytes + values.size() * sizeof(T));
  Append<uint32_t>(&bytes, static_cast<uint32_t>(element_type));
  Append<uint64_t>(&bytes, values.size());
  for (const T& v : values) Append<T>(&bytes, v);
  return bytes;
}

template <class T>
std::vector<uint8_t> EncodeScalar(T value) {
  std::vector<uint8_t> bytes;
  Append<T>(&bytes, value);
  return bytes;
}

// Rounds `offset` up to a multiple of the power of two `alignment`; false on overflow.
bool AlignUp(size_t offset, size_t alignment, size_t* out) {
  if (offset > std::numeric_limits<size_t>::max() - (alignment - 1)) return false;
  *out = (offset + alignment - 1) & ~(alignment - 1);
  return true;
}

std::string SupportedGgmlTypes() {
  std::string names;
  for (DType type : {DType::kF32, DType::kF16, DType::kBF16, DType::kI32, DType::kQ4_0,
                     DType::kQ5_0, DType::kQ8_0, DType::kQ4_K, DType::kQ6_K}) {
    names += (names.empty() ? "" : ", ");
    names += GgmlTypeName(GgmlTypeId(type));
  }
  return names;
}

}  // namespace

const char* GgufTypeName(GgufType type) {
  switch (type) {
    case GgufType::kUInt8: return "u8";
    case GgufType::kInt8: return "i8";
    case GgufType::kUInt16: return "u16";
    case GgufType::kInt16: return "i16";
    case GgufType::kUInt32: return "u32";
    case GgufType::kInt32: return "i32";
    case GgufType::kFloat32: return "f32";
    case GgufType::kBool: return "bool";
    case GgufType::kString: return "string";
    case GgufType::kArray: return "array";
    case GgufType::kUInt64: return "u64";
    case GgufType::kInt64: return "i64";
    case GgufType::kFloat64: return "f64";
  }
  return "invalid";
}

uint32_t GgmlTypeId(DType type) {
  switch (type) {
    case DType::kF32: return 0;
    case DType::kF16: return 1;
    case DType::kQ4_0: return 2;
    case DType::kQ5_0: return 6;
    case DType::kQ8_0: return 8;
    case DType::kQ4_K: return 12;
    case DType::kQ6_K: return 14;
    case DType::kI32: return 26;
    case DType::kBF16: return 30;
  }
  GR_CHECK(false) << "no ggml type for dtype " << static_cast<int>(type);
  return 0;
}

bool DTypeFromGgmlType(uint32_t ggml_type, DType* out) {
  switch (ggml_type) {
    case 0: *out = DType::kF32; return true;
    case 1: *out = DType::kF16; return true;
    case 2: *out = DType::kQ4_0; return true;
    case 6: *out = DType::kQ5_0; return true;
    case 8: *out = DType::kQ8_0; return true;
    case 12: *out = DType::kQ4_K; return true;
    case 14: *out = DType::kQ6_K; return true;
    case 26: *out = DType::kI32; return true;
    case 30: *out = DType::kBF16; return true;
    default: return false;
  }
}

const char* GgmlTypeName(uint32_t ggml_type) {
  // ref: ggml/include/ggml.h enum ggml_type (4, 5 and 31-33, 36-38 were removed).
  static const char* const kNames[] = {
      "F32",    "F16",    "Q4_0",    "Q4_1",   "unknown", "unknown", "Q5_0",  "Q5_1",
      "Q8_0",   "Q8_1",   "Q2_K",    "Q3_K",   "Q4_K",    "Q5_K",    "Q6_K",  "Q8_K",
      "IQ2_XXS", "IQ2_XS", "IQ3_XXS", "IQ1_S", "IQ4_NL",  "IQ3_S",   "IQ2_S", "IQ4_XS",
      "I8",     "I16",    "I32",     "I64",    "F64",     "IQ1_M",   "BF16",  "unknown",
      "unknown", "unknown", "TQ1_0",  "TQ2_0",  "unknown", "unknown", "unknown", "MXFP4",
  };
  return ggml_type < sizeof(kNames) / sizeof(kNames[0]) ? kNames[ggml_type] : "unknown";
}

// Walks a mapped file once, validating each field before it is used, and fills
// a GgufFile. Every error names the file, the item and what was expected.
class GgufParser {
 public:
  explicit GgufParser(GgufFile* file)
      : file_(*file), path_(file->path()), data_(file->file_.data()), size_(file->file_.size()) {}

  Status Parse() {
    GR_RETURN_IF_ERROR(ParseHeader());
    for (uint64_t i = 0; i < kv_count_; ++i) GR_RETURN_IF_ERROR(ParseKeyValue(i));
    GR_RETURN_IF_ERROR(ParseAlignment());
    // Bounded again now that the metadata has taken its share of the file.
    if (tensor_count_ > Remaining() / kMinTensorInfoBytes) {
      return Corrupt(path_ + ": header claims " + std::to_string(tensor_count_) +
                     " tensors, but the " + std::to_string(Remaining()) +
                     " bytes after the metadata hold at most " +
                     std::to_string(Remaining() / kMinTensorInfoBytes) + " (file truncated?)");
    }
    file_.tensors_.reserve(static_cast<size_t>(tensor_count_));
    std::vector<uint64_t> offsets;
    offsets.reserve(static_cast<size_t>(tensor_count_));
    for (uint64_t i = 0; i < tensor_count_; ++i) {
      uint64_t offset = 0;
      GR_RETURN_IF_ERROR(ParseTensorInfo(i, &offset));
      offsets.push_back(offset);
    }
    return PlaceTensors(offsets);
  }

 private:
  size_t Remaining() const { return size_ - pos_; }

  Status Truncated(const std::string& what, uint64_t needed) const {
    return Corrupt(path_ + ": file ends inside " + what + ": needs " + std::to_string(needed) +
                   " bytes at offset " + std::to_string(pos_) + ", only " +
                   std::to_string(Remaining()) + " left (file is " + std::to_string(size_) +
                   " bytes)");
  }

  template <class T>
  Status Read(T* out, const std::string& what) {
    if (Remaining() < sizeof(T)) return Truncated(what, sizeof(T));
    *out = Load<T>(data_ + pos_);
    pos_ += sizeof(T);
    return Status::Ok();
  }

  Status ReadString(std::string_view* out, const std::string& what) {
    uint64_t length = 0;
    GR_RETURN_IF_ERROR(Read(&length, what + " (length)"));
    if (length > Remaining()) {
      return Corrupt(path_ + ": " + what + " has length " + std::to_string(length) +
                     " at offset " + std::to_string(pos_ - 8) + ", past the end of the file (" +
                     std::to_string(Remaining()) + " bytes left)");
    }
    *out = std::string_view(reinterpret_cast<const char*>(data_ + pos_), static_cast<size_t>(length));
    pos_ += static_cast<size_t>(length);
    return Status::Ok();
  }

  Status ReadType(GgufType* out, const std::string& what) {
    uint32_t raw = 0;
    GR_RETURN_IF_ERROR(Read(&raw, what));
    if (!IsValidType(raw)) {
      return Corrupt(path_ + ": " + what + " is " + std::to_string(raw) +
                     ", expected a GGUF value type 0..12");
    }
    *out = static_cast<GgufType>(raw);
    return Status::Ok();
  }

  Status ParseHeader() {
    if (size_ < 4 || std::memcmp(data_, kMagic, 4) != 0) {
      std::string found;
      for (size_t i = 0; i < std::min<size_t>(size_, 4); ++i) {
        char hex[4];
        std::snprintf(hex, sizeof(hex), "%02x", data_[i]);
        found += (i ? " " : "") + std::string(hex);
      }
      return Corrupt(path_ + ": not a GGUF file: starts with [" + found +
                     "], expected the magic \"GGUF\" (47 47 55 46)");
    }
    pos_ = 4;
    GR_RETURN_IF_ERROR(Read(&file_.version_, "the header (version)"));
    const uint32_t version = file_.version_;
    if (version != 2 && version != 3) {
      // A big-endian file (GGUF v3 allows them) shows its version byte-swapped.
      if (version != 0 && (version & 0xffff) == 0) {
        return Unsupported(path_ + ": GGUF version field is " + std::to_string(version) +
                           ", which looks like a big-endian file; only little-endian GGUF is "
                           "supported");
      }
      return Unsupported(path_ + ": GGUF version " + std::to_string(version) +
                         " is not supported (expected 2 or 3)");
    }
    GR_RETURN_IF_ERROR(Read(&tensor_count_, "the header (tensor_count)"));
    GR_RETURN_IF_ERROR(Read(&kv_count_, "the header (metadata_kv_count)"));
    if (kv_count_ > Remaining() / kMinKeyValueBytes) {
      return Corrupt(path_ + ": header claims " + std::to_string(kv_count_) +
                     " metadata keys, but the " + std::to_string(Remaining()) +
                     " bytes after the header hold at most " +
                     std::to_string(Remaining() / kMinKeyValueBytes) + " (file truncated?)");
    }
    if (tensor_count_ > Remaining() / kMinTensorInfoBytes) {
      return Corrupt(path_ + ": header claims " + std::to_string(tensor_count_) +
                     " tensors, but the " + std::to_string(Remaining()) +
                     " bytes after the header hold at most " +
                     std::to_string(Remaining() / kMinTensorInfoBytes) + " (file truncated?)");
    }
    file_.entries_.reserve(static_cast<size_t>(kv_count_));
    return Status::Ok();
  }

  Status ParseKeyValue(uint64_t index) {
    const std::string what = "metadata key #" + std::to_string(index);
    std::string_view key;
    GR_RETURN_IF_ERROR(ReadString(&key, what));
    const std::string where = what + " '" + std::string(key) + "'";
    if (file_.entry_index_.count(key) != 0) {
      return Corrupt(path_ + ": metadata key '" + std::string(key) + "' appears twice");
    }
    GgufFile::Entry entry{std::string(key), GgufType::kUInt8, GgufType::kUInt8, 0, 0, 0};
    GR_RETURN_IF_ERROR(ReadType(&entry.type, where + " value type"));
    entry.value_offset = pos_;
    if (entry.type == GgufType::kArray) {
      GR_RETURN_IF_ERROR(SkipArray(where, 1, &entry.element_type, &entry.length));
    } else {
      GR_RETURN_IF_ERROR(SkipValue(entry.type, where));
    }
    entry.value_bytes = pos_ - entry.value_offset;
    file_.entry_index_.emplace(entry.key, file_.entries_.size());
    file_.entries_.push_back(std::move(entry));
    return Status::Ok();
  }

  // Validates a non-array value at pos_ and moves past it.
  Status SkipValue(GgufType type, const std::string& what) {
    if (type == GgufType::kString) {
      std::string_view unused;
      return ReadString(&unused, what);
    }
    const size_t bytes = FixedSize(type);
    if (Remaining() < bytes) return Truncated(what + " (" + GgufTypeName(type) + ")", bytes);
    if (type == GgufType::kBool && data_[pos_] > 1) {
      return Corrupt(path_ + ": " + what + " is a bool stored as " + std::to_string(data_[pos_]) +
                     ", expected 0 or 1");
    }
    pos_ += bytes;
    return Status::Ok();
  }

  // Validates an array (element type, length, elements) at pos_ and moves past it.
  Status SkipArray(const std::string& what, int depth, GgufType* element_type, uint64_t* length) {
    if (depth > kMaxArrayDepth) {
      return Corrupt(path_ + ": " + what + " nests arrays deeper than " +
                     std::to_string(kMaxArrayDepth) + " levels");
    }
    GR_RETURN_IF_ERROR(ReadType(element_type, what + " array element type"));
    GR_RETURN_IF_ERROR(Read(length, what + " array length"));
    const size_t fixed = FixedSize(*element_type);
    const size_t min_element = fixed != 0 ? fixed
                               : *element_type == GgufType::kString ? 8
                                                                    : kArrayHeaderBytes;
    if (*length > Remaining() / min_element) {
      return Corrupt(path_ + ": " + what + " is an array of " + std::to_string(*length) + " " +
                     GgufTypeName(*element_type) + " values at offset " + std::to_string(pos_) +
                     ", but only " + std::to_string(Remaining()) + " bytes are left");
    }
    if (fixed != 0) {
      for (uint64_t i = 0; *element_type == GgufType::kBool && i < *length; ++i) {
        if (data_[pos_ + i] > 1) {
          return Corrupt(path_ + ": " + what + "[" + std::to_string(i) + "]" +
                         " is a bool stored as " + std::to_string(data_[pos_ + i]) +
                         ", expected 0 or 1");
        }
      }
      pos_ += static_cast<size_t>(*length) * fixed;
      return Status::Ok();
    }
    for (uint64_t i = 0; i < *length; ++i) {
      if (*element_type == GgufType::kArray) {  // the other types returned above
        GgufType nested_type;
        uint64_t nested_length;
        GR_RETURN_IF_ERROR(SkipArray(what + "[" + std::to_string(i) + "]", depth + 1,
                                     &nested_type, &nested_length));
      } else {
        // Strings, inlined (no per-element message): vocabularies hold 256K strings.
        if (Remaining() < 8) return Truncated(what + "[" + std::to_string(i) + "]", 8);
        const uint64_t bytes = Load<uint64_t>(data_ + pos_);
        if (bytes > Remaining() - 8) {
          return Corrupt(path_ + ": " + what + "[" + std::to_string(i) + "]" +
                         " is a string of length " + std::to_string(bytes) + " at offset " +
                         std::to_string(pos_) + ", past the end of the file");
        }
        pos_ += 8 + static_cast<size_t>(bytes);
      }
    }
    return Status::Ok();
  }

  Status ParseAlignment() {
    const GgufFile::Entry* entry = file_.FindEntry("general.alignment");
    if (entry == nullptr) return Status::Ok();
    if (!IsInteger(entry->type)) {
      return Corrupt(path_ + ": general.alignment is " + GgufTypeName(entry->type) +
                     ", expected u32");
    }
    const Integer value = LoadInteger(entry->type, file_.ValueData(*entry));
    if (value.negative || value.magnitude == 0 || !std::has_single_bit(value.magnitude) ||
        value.magnitude > (uint64_t{1} << 30)) {
      return Corrupt(path_ + ": general.alignment is " + (value.negative ? "-" : "") +
                     std::to_string(value.magnitude) + ", expected a power of two up to 2^30");
    }
    file_.alignment_ = static_cast<size_t>(value.magnitude);
    return Status::Ok();
  }

  Status ParseTensorInfo(uint64_t index, uint64_t* offset) {
    std::string_view name_view;
    GR_RETURN_IF_ERROR(ReadString(&name_view, "tensor info #" + std::to_string(index) + " (name)"));
    const std::string name(name_view);
    const std::string where = "tensor '" + name + "' (#" + std::to_string(index) + ")";
    if (file_.tensor_index_.count(name) != 0) {
      return Corrupt(path_ + ": tensor name '" + name + "' appears twice");
    }
    uint32_t n_dims = 0;
    GR_RETURN_IF_ERROR(Read(&n_dims, where + " n_dims"));
    if (n_dims < 1 || n_dims > kMaxDims) {
      return Corrupt(path_ + ": " + where + " has n_dims " + std::to_string(n_dims) +
                     ", expected 1 to " + std::to_string(kMaxDims));
    }
    uint64_t ne[kMaxDims] = {};
    uint64_t elements = 1;
    for (uint32_t d = 0; d < n_dims; ++d) {
      GR_RETURN_IF_ERROR(Read(&ne[d], where + " dims"));
      if (ne[d] == 0 || ne[d] > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) / elements) {
        return Corrupt(path_ + ": " + where + " has dim " + std::to_string(d) + " = " +
                       std::to_string(ne[d]) +
                       (ne[d] == 0 ? ", expected > 0" : ", the element count overflows int64"));
      }
      elements *= ne[d];
    }
    uint32_t ggml_type = 0;
    GR_RETURN_IF_ERROR(Read(&ggml_type, where + " type"));
    GR_RETURN_IF_ERROR(Read(offset, where + " offset"));
    TensorSource source;
    if (!DTypeFromGgmlType(ggml_type, &source.dtype)) {
      return Unsupported(path_ + ": " + where + " has ggml type " + std::to_string(ggml_type) +
                         " (" + GgmlTypeName(ggml_type) + "), which gemmarun does not read " +
                         "(supported: " + SupportedGgmlTypes() + ")");
    }
    const DTypeInfo& info = Info(source.dtype);
    if (ne[0] % info.block_elements != 0) {
      return Corrupt(path_ + ": " + where + " has rows of " + std::to_string(ne[0]) + " " +
                     info.name + " values, not a multiple of the block size " +
                     std::to_string(info.block_elements));
    }
    const uint64_t blocks = elements / info.block_elements;
    if (blocks > std::numeric_limits<uint64_t>::max() / info.block_bytes) {
      return Corrupt(path_ + ": " + where + " byte size overflows");
    }
    source.name = name;
    source.bytes = static_cast<size_t>(blocks * info.block_bytes);
    source.shape = Shape::FromRange(std::make_reverse_iterator(ne + n_dims),
                                    std::make_reverse_iterator(ne));
    source.file = path_;
    file_.tensor_index_.emplace(name, file_.tensors_.size());
    file_.tensors_.push_back(std::move(source));
    return Status::Ok();
  }

  // Checks each tensor's byte range against the data section and the others,
  // then points it into the mapping.
  Status PlaceTensors(const std::vector<uint64_t>& offsets) {
    const size_t alignment = file_.alignment_;
    if (!AlignUp(pos_, alignment, &file_.data_offset_)) return Corrupt(path_ + ": data offset overflows");
    auto& tensors = file_.tensors_;
    if (tensors.empty()) return Status::Ok();
    if (file_.data_offset_ > size_) {
      return Corrupt(path_ + ": the tensor data section would start at offset " +
                     std::to_string(file_.data_offset_) + ", past the end of the file (" +
                     std::to_string(size_) + " bytes)");
    }
    const uint64_t data_bytes = size_ - file_.data_offset_;
    for (size_t i = 0; i < tensors.size(); ++i) {
      const std::string where = "tensor '" + tensors[i].name + "'";
      if (offsets[i] % alignment != 0) {
        return Corrupt(path_ + ": " + where + " has offset " + std::to_string(offsets[i]) +
                       ", not a multiple of the alignment " + std::to_string(alignment));
      }
      if (offsets[i] > data_bytes || tensors[i].bytes > data_bytes - offsets[i]) {
        return Corrupt(path_ + ": " + where + " spans bytes [" + std::to_string(offsets[i]) + ", " +
                       std::to_string(offsets[i]) + " + " + std::to_string(tensors[i].bytes) +
                       ") of the data section, which has only " + std::to_string(data_bytes) +
                       " bytes (file truncated?)");
      }
      tensors[i].data = data_ + file_.data_offset_ + offsets[i];
    }
    std::vector<size_t> order(tensors.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return offsets[a] < offsets[b]; });
    for (size_t k = 1; k < order.size(); ++k) {
      const size_t prev = order[k - 1], cur = order[k];
      if (offsets[prev] + tensors[prev].bytes > offsets[cur]) {
        return Corrupt(path_ + ": tensors '" + tensors[prev].name + "' (offset " +
                       std::to_string(offsets[prev]) + ", " + std::to_string(tensors[prev].bytes) +
                       " bytes) and '" + tensors[cur].name + "' (offset " +
                       std::to_string(offsets[cur]) + ") overlap");
      }
    }
    return Status::Ok();
  }

  GgufFile& file_;
  const std::string& path_;
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
  uint64_t tensor_count_ = 0;
  uint64_t kv_count_ = 0;
};

Result<GgufFile> GgufFile::Open(const std::string& path) {
  GgufFile file;
  GR_ASSIGN_OR_RETURN(file.file_, MappedFile::Open(path));
  GR_RETURN_IF_ERROR(GgufParser(&file).Parse());
  return file;
}

const GgufFile::Entry* GgufFile::FindEntry(std::string_view key) const {
  const auto it = entry_index_.find(key);
  return it == entry_index_.end() ? nullptr : &entries_[it->second];
}

Result<const GgufFile::Entry*> GgufFile::Lookup(std::string_view key) const {
  const Entry* entry = FindEntry(key);
  if (entry == nullptr) return NotFound(path() + ": metadata key '" + std::string(key) + "' not found");
  return entry;
}

Status GgufFile::TypeMismatch(const Entry& entry, const char* expected) const {
  std::string found = GgufTypeName(entry.type);
  if (entry.type == GgufType::kArray) found = std::string("array of ") + GgufTypeName(entry.element_type);
  return Corrupt(path() + ": metadata key '" + entry.key + "' is " + found + ", expected " + expected);
}

Result<const GgufFile::Entry*> GgufFile::LookupArray(std::string_view key, const char* expected) const {
  GR_ASSIGN_OR_RETURN(const Entry* entry, Lookup(key));
  if (entry->type != GgufType::kArray) return TypeMismatch(*entry, expected);
  return entry;
}

bool GgufFile::Has(std::string_view key) const { return FindEntry(key) != nullptr; }

Result<uint64_t> GgufFile::GetUInt(std::string_view key) const {
  GR_ASSIGN_OR_RETURN(const Entry* entry, Lookup(key));
  if (!IsInteger(entry->type)) return TypeMismatch(*entry, "an unsigned integer");
  const Integer value = LoadInteger(entry->type, ValueData(*entry));
  if (value.negative) {
    return Corrupt(path() + ": metadata key '" + entry->key + "' is -" +
                   std::to_string(value.magnitude) + ", expected an unsigned integer");
  }
  return value.magnitude;
}

Result<int64_t> GgufFile::GetInt(std::string_view key) const {
  GR_ASSIGN_OR_RETURN(const Entry* entry, Lookup(key));
  if (!IsInteger(entry->type)) return TypeMismatch(*entry, "an integer");
  const Integer value = LoadInteger(entry->type, ValueData(*entry));
  if (!value.FitsInt64()) {
    return Corrupt(path() + ": metadata key '" + entry->key + "' is " +
                   std::to_string(value.magnitude) + ", which does not fit in int64");
  }
  return value.AsInt64();
}

Result<double> GgufFile::GetFloat(std::string_view key) const {
  GR_ASSIGN_OR_RETURN(const Entry* entry, Lookup(key));
  if (entry->type != GgufType::kFloat32 && entry->type != GgufType::kFloat64 && !IsInteger(entry->type)) {
    return TypeMismatch(*entry, "a number");
  }
  return LoadNumber(entry->type, ValueData(*entry));
}

Result<bool> GgufFile::GetBool(std::string_view key) const {
  GR_ASSIGN_OR_RETURN(const Entry* entry, Lookup(key));
  if (entry->type != GgufType::kBool) return TypeMismatch(*entry, "bool");
  return Load<uint8_t>(ValueData(*entry)) != 0;
}

Result<std::string> GgufFile::GetString(std::string_view key) const {
  GR_ASSIGN_OR_RETURN(const Entry* entry, Lookup(key));
  if (entry->type != GgufType::kString) return TypeMismatch(*entry, "string");
  return std::string(LoadString(ValueData(*entry)));
}

Result<std::vector<std::string>> GgufFile::GetStringArray(std::string_view key) const {
  GR_ASSIGN_OR_RETURN(const Entry* entry, LookupArray(key, "array of string"));
  if (entry->element_type != GgufType::kString) return TypeMismatch(*entry, "array of string");
  std::vector<std::string> values;
  values.reserve(static_cast<size_t>(entry->length));
  const uint8_t* p = ElementData(*entry);
  for (uint64_t i = 0; i < entry->length; ++i) {
    const std::string_view text = LoadString(p);
    values.emplace_back(text);
    p += 8 + text.size();
  }
  return values;
}

Result<std::vector<float>> GgufFile::GetFloatArray(std::string_view key) const {
  GR_ASSIGN_OR_RETURN(const Entry* entry, LookupArray(key, "array of numbers"));
  const GgufType type = entry->element_type;
  if (type != GgufType::kFloat32 && type != GgufType::kFloat64 && !IsInteger(type)) {
    return TypeMismatch(*entry, "array of numbers");
  }
  std::vector<float> values(static_cast<size_t>(entry->length));
  const uint8_t* p = ElementData(*entry);
  const size_t stride = FixedSize(type);
  for (size_t i = 0; i < values.size(); ++i) {
    // f64 values beyond the float range become +-inf, not an out-of-range cast.
    const double v = LoadNumber(type, p + i * stride);
    values[i] = std::fabs(v) <= std::numeric_limits<float>::max() || !std::isfinite(v)
                    ? static_cast<float>(v)
                    : std::copysign(std::numeric_limits<float>::infinity(), static_cast<float>(v > 0 ? 1 : -1));
  }
  return values;
}

Result<std::vector<int64_t>> GgufFile::GetIntArray(std::string_view key) const {
  GR_ASSIGN_OR_RETURN(const Entry* entry, LookupArray(key, "array of integers"));
  const GgufType type = entry->element_type;
  if (!IsInteger(type)) return TypeMismatch(*entry, "array of integers");
  std::vector<int64_t> values(static_cast<size_t>(entry->length));
  const uint8_t* p = ElementData(*entry);
  const size_t stride = FixedSize(type);
  for (size_t i = 0; i < values.size(); ++i) {
    const Integer value = LoadInteger(type, p + i * stride);
    if (!value.FitsInt64()) {
      return Corrupt(path() + ": metadata key '" + entry->key + "' element " + std::to_string(i) +
                     " is " + std::to_string(value.magnitude) + ", which does not fit in int64");
    }
    values[i] = value.AsInt64();
  }
  return values;
}

Result<GgufType> GgufFile::GetType(std::string_view key) const {
  GR_ASSIGN_OR_RETURN(const Entry* entry, Lookup(key));
  return entry->type;
}

Result<GgufType> GgufFile::GetArrayType(std::string_view key) const {
  GR_ASSIGN_OR_RETURN(const Entry* entry, LookupArray(key, "an array"));
  return entry->element_type;
}

Result<uint64_t> GgufFile::GetArrayLength(std::string_view key) const {
  GR_ASSIGN_OR_RETURN(const Entry* entry, LookupArray(key, "an array"));
  return entry->length;
}

std::vector<std::string> GgufFile::Keys() const {
  std::vector<std::string> keys;
  keys.reserve(entries_.size());
  for (const Entry& entry : entries_) keys.push_back(entry.key);
  return keys;
}

std::string GgufFile::DescribeValue(std::string_view key) const {
  const Entry* entry = FindEntry(key);
  if (entry == nullptr) return "";
  std::string out;
  if (entry->type != GgufType::kArray) out = std::string(GgufTypeName(entry->type)) + " ";
  DescribeAt(entry->type, ValueData(*entry), &out);
  return out;
}

Result<GgufFile::RawValue> GgufFile::GetRaw(std::string_view key) const {
  GR_ASSIGN_OR_RETURN(const Entry* entry, Lookup(key));
  return RawValue{entry->type, std::span<const uint8_t>(ValueData(*entry), entry->value_bytes)};
}

const TensorSource* GgufFile::Find(std::string_view name) const {
  const auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

// ---------------------------------------------------------------------------
// GgufWriter

void GgufWriter::Set(std::string_view key, GgufType type, std::vector<uint8_t> bytes) {
  for (Value& value : values_) {
    if (value.key == key) {
      value.type = type;
      value.bytes = std::move(bytes);
      return;
    }
  }
  values_.push_back(Value{std::string(key), type, std::move(bytes)});
}

void GgufWriter::AddUInt8(std::string_view key, uint8_t v) { Set(key, GgufType::kUInt8, EncodeScalar(v)); }
void GgufWriter::AddInt8(std::string_view key, int8_t v) { Set(key, GgufType::kInt8, EncodeScalar(v)); }
void GgufWriter::AddUInt16(std::string_view key, uint16_t v) { Set(key, GgufType::kUInt16, EncodeScalar(v)); }
void GgufWriter::AddInt16(std::string_view key, int16_t v) { Set(key, GgufType::kInt16, EncodeScalar(v)); }
void GgufWriter::AddUInt32(std::string_view key, uint32_t v) { Set(key, GgufType::kUInt32, EncodeScalar(v)); }
void GgufWriter::AddInt32(std::string_view key, int32_t v) { Set(key, GgufType::kInt32, EncodeScalar(v)); }
void GgufWriter::AddUInt64(std::string_view key, uint64_t v) { Set(key, GgufType::kUInt64, EncodeScalar(v)); }
void GgufWriter::AddInt64(std::string_view key, int64_t v) { Set(key, GgufType::kInt64, EncodeScalar(v)); }
void GgufWriter::AddFloat32(std::string_view key, float v) { Set(key, GgufType::kFloat32, EncodeScalar(v)); }
void GgufWriter::AddFloat64(std::string_view key, double v) { Set(key, GgufType::kFloat64, EncodeScalar(v)); }
void GgufWriter::AddBool(std::string_view key, bool v) {
  Set(key, GgufType::kBool, EncodeScalar<uint8_t>(v ? 1 : 0));
}

void GgufWriter::AddString(std::string_view key, std::string_view value) {
  std::vector<uint8_t> bytes;
  AppendString(&bytes, value);
  Set(key, GgufType::kString, std::move(bytes));
}

void GgufWriter::AddStringArray(std::string_view key, const std::vector<std::string>& values) {
  std::vector<uint8_t> bytes;
  Append<uint32_t>(&bytes, static_cast<uint32_t>(GgufType::kString));
  Append<uint64_t>(&bytes, values.size());
  for (const std::string& v : values) AppendString(&bytes, v);
  Set(key, GgufType::kArray, std::move(bytes));
}

void GgufWriter::AddFloatArray(std::string_view key, std::span<const float> values) {
  Set(key, GgufType::kArray, EncodeArray(GgufType::kFloat32, values));
}
void GgufWriter::AddInt32Array(std::string_view key, std::span<const int32_t> values) {
  Set(key, GgufType::kArray, EncodeArray(GgufType::kInt32, values));
}
void GgufWriter::AddUInt32Array(std::string_view key, std::span<const uint32_t> values) {
  Set(key, GgufType::kArray, EncodeArray(GgufType::kUInt32, values));
}
void GgufWriter::AddInt64Array(std::string_view key, std::span<const int64_t> values) {
  Set(key, GgufType::kArray, EncodeArray(GgufType::kInt64, values));
}

void GgufWriter::AddRaw(std::string_view key, GgufType type, std::span<const uint8_t> bytes) {
  Set(key, type, std::vector<uint8_t>(bytes.begin(), bytes.end()));
}

Status GgufWriter::CopyValue(const GgufFile& file, std::string_view key) {
  GR_ASSIGN_OR_RETURN(GgufFile::RawValue raw, file.GetRaw(key));
  AddRaw(key, raw.type, raw.bytes);
  return Status::Ok();
}

Status GgufWriter::CheckTensor(std::string_view name, DType dtype, const Shape& shape, size_t bytes) const {
  const std::string where = "GgufWriter: tensor '" + std::string(name) + "'";
  if (name.empty()) return InvalidArgument("GgufWriter: empty tensor name");
  for (const PendingTensor& t : tensors_) {
    if (t.name == name) return InvalidArgument(where + " added twice");
  }
  if (shape.rank() < 1) return InvalidArgument(where + ": shape must have rank 1 to 4");
  uint64_t elements = 1;
  for (int d = 0; d < shape.rank(); ++d) {
    if (shape[d] <= 0 ||
        static_cast<uint64_t>(shape[d]) > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) / elements) {
      return InvalidArgument(where + ": invalid shape " + shape.ToString());
    }
    elements *= static_cast<uint64_t>(shape[d]);
  }
  const DTypeInfo& info = Info(dtype);
  if (shape.cols() % static_cast<int64_t>(info.block_elements) != 0) {
    return InvalidArgument(where + ": rows of " + std::to_string(shape.cols()) + " " + info.name +
                           " values are not whole blocks of " + std::to_string(info.block_elements));
  }
  const uint64_t expected = elements / info.block_elements * info.block_bytes;
  if (bytes != expected) {
    return InvalidArgument(where + ": " + std::to_string(bytes) + " bytes given, " + info.name +
                           " " + shape.ToString() + " needs " + std::to_string(expected));
  }
  return Status::Ok();
}

Status GgufWriter::AddTensor(std::string_view name, DType dtype, const Shape& shape,
                             std::span<const uint8_t> bytes) {
  GR_RETURN_IF_ERROR(CheckTensor(name, dtype, shape, bytes.size()));
  PendingTensor tensor{std::string(name), dtype, shape, std::vector<uint8_t>(bytes.begin(), bytes.end()), {}};
  tensor.bytes = tensor.owned;
  tensors_.push_back(std::move(tensor));  // moving a vector keeps its buffer: `bytes` stays valid
  return Status::Ok();
}

Status GgufWriter::AddTensorRef(std::string_view name, DType dtype, const Shape& shape,
                                std::span<const uint8_t> bytes) {
  GR_RETURN_IF_ERROR(CheckTensor(name, dtype, shape, bytes.size()));
  tensors_.push_back(PendingTensor{std::string(name), dtype, shape, {}, bytes});
  return Status::Ok();
}

Status GgufWriter::Write(const std::string& path) const {
  size_t alignment = kDefaultAlignment;
  for (const Value& value : values_) {
    if (value.key != "general.alignment") continue;
    const uint32_t a = value.type == GgufType::kUInt32 ? Load<uint32_t>(value.bytes.data()) : 0;
    if (a == 0 || !std::has_single_bit(a)) {
      return InvalidArgument("GgufWriter: general.alignment must be a u32 power of two");
    }
    alignment = a;
  }

  std::vector<uint8_t> head;
  head.insert(head.end(), kMagic, kMagic + 4);
  Append<uint32_t>(&head, kWriteVersion);
  Append<uint64_t>(&head, tensors_.size());
  Append<uint64_t>(&head, values_.size());
  for (const Value& value : values_) {
    AppendString(&head, value.key);
    Append<uint32_t>(&head, static_cast<uint32_t>(value.type));
    head.insert(head.end(), value.bytes.begin(), value.bytes.end());
  }
  size_t offset = 0;
  std::vector<size_t> offsets;
  for (const PendingTensor& t : tensors_) {
    AppendString(&head, t.name);
    Append<uint32_t>(&head, static_cast<uint32_t>(t.shape.rank()));
    for (int d = t.shape.rank() - 1; d >= 0; --d) Append<uint64_t>(&head, t.shape[d]);  // ne0 first
    Append<uint32_t>(&head, GgmlTypeId(t.dtype));
    Append<uint64_t>(&head, offset);
    offsets.push_back(offset);
    GR_CHECK(AlignUp(offset + t.bytes.size(), alignment, &offset));
  }
  size_t data_start = 0;
  GR_CHECK(AlignUp(head.size(), alignment, &data_start));
  head.resize(data_start, 0);

  const std::string temp = path + ".tmp";
  std::FILE* out = std::fopen(temp.c_str(), "wb");
  if (out == nullptr) return NotFound(temp + ": cannot create: " + std::strerror(errno));
  bool ok = std::fwrite(head.data(), 1, head.size(), out) == head.size();
  static const uint8_t kZeros[64] = {};
  size_t written = 0;
  for (size_t i = 0; ok && i < tensors_.size(); ++i) {
    const auto& bytes = tensors_[i].bytes;
    ok = std::fwrite(bytes.data(), 1, bytes.size(), out) == bytes.size();
    written = offsets[i] + bytes.size();
    size_t end = 0;
    GR_CHECK(AlignUp(written, alignment, &end));
    for (size_t pad = end - written; ok && pad > 0;) {
      const size_t n = std::min(pad, sizeof(kZeros));
      ok = std::fwrite(kZeros, 1, n, out) == n;
      pad -= n;
    }
  }
  const int write_errno = errno;
  if (std::fclose(out) != 0) ok = false;
  if (!ok) {
    std::remove(temp.c_str());
    return Internal(temp + ": write failed: " + std::strerror(write_errno));
  }
  if (std::rename(temp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    std::remove(temp.c_str());
    return Internal(path + ": cannot rename from " + temp + ": " + std::strerror(err));
  }
  return Status::Ok();
}

}  // namespace gemmarun
