#include "io/safetensors.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <limits>

#include <nlohmann/json.hpp>

#include "io/json_util.h"

namespace gemmarun {
namespace {

// Headers of real checkpoints are a few hundred KB; anything far larger is corrupt.
constexpr uint64_t kMaxHeaderBytes = uint64_t{100} << 20;

bool ParseSafetensorsDType(const std::string& name, DType* out) {
  if (name == "F32") *out = DType::kF32;
  else if (name == "F16") *out = DType::kF16;
  else if (name == "BF16") *out = DType::kBF16;
  else if (name == "I32") *out = DType::kI32;
  else return false;
  return true;
}

}  // namespace

Result<SafetensorsFile> SafetensorsFile::Open(const std::string& path) {
  SafetensorsFile result;
  GR_ASSIGN_OR_RETURN(result.file_, MappedFile::Open(path));
  const uint8_t* base = result.file_.data();
  const size_t file_size = result.file_.size();
  if (file_size < 8) {
    return Corrupt(path + ": file is " + std::to_string(file_size) +
                   " bytes, too short for a safetensors header");
  }
  uint64_t header_bytes = 0;
  std::memcpy(&header_bytes, base, 8);  // little-endian on every platform we build for
  if (header_bytes > file_size - 8 || header_bytes > kMaxHeaderBytes) {
    return Corrupt(path + ": header length " + std::to_string(header_bytes) +
                   " exceeds the file size " + std::to_string(file_size));
  }
  GR_ASSIGN_OR_RETURN(nlohmann::json header,
                      ParseJson(std::string_view(reinterpret_cast<const char*>(base + 8), header_bytes),
                                path + " header"));
  if (!header.is_object()) return Corrupt(path + ": header is not a JSON object");

  const size_t data_begin = 8 + header_bytes;
  const size_t data_bytes = file_size - data_begin;
  for (const auto& [name, entry] : header.items()) {
    if (name == "__metadata__") continue;
    const std::string where = path + ": tensor '" + name + "'";
    if (!entry.is_object() || !entry.contains("dtype") || !entry.contains("shape") ||
        !entry.contains("data_offsets")) {
      return Corrupt(where + ": expected an object with dtype, shape and data_offsets");
    }
    TensorSource source;
    source.name = name;
    source.file = path;
    if (!entry["dtype"].is_string() ||
        !ParseSafetensorsDType(entry["dtype"].get<std::string>(), &source.dtype)) {
      return Unsupported(where + ": dtype " + entry["dtype"].dump() +
                         " is not supported (expected F32, BF16, F16 or I32)");
    }
    const auto& shape = entry["shape"];
    if (!shape.is_array() || shape.size() > Shape::kMaxRank) {
      return Corrupt(where + ": shape must be an array of at most 4 dimensions");
    }
    uint64_t elements = 1;
    std::vector<int64_t> dims;
    for (const auto& dim : shape) {
      if (!dim.is_number_unsigned()) return Corrupt(where + ": shape " + shape.dump() + " is not a list of sizes");
      const uint64_t d = dim.get<uint64_t>();
      if (d != 0 && elements > std::numeric_limits<uint32_t>::max() * uint64_t{16} / d) {
        return Corrupt(where + ": shape " + shape.dump() + " is absurdly large");
      }
      elements *= d;
      dims.push_back(static_cast<int64_t>(d));
    }
    source.shape = Shape::FromRange(dims.begin(), dims.end());
    const auto& offsets = entry["data_offsets"];
    if (!offsets.is_array() || offsets.size() != 2 || !offsets[0].is_number_unsigned() ||
        !offsets[1].is_number_unsigned()) {
      return Corrupt(where + ": data_offsets must be [begin, end]");
    }
    const uint64_t begin = offsets[0].get<uint64_t>();
    const uint64_t end = offsets[1].get<uint64_t>();
    if (begin > end || end > data_bytes) {
      return Corrupt(where + ": data_offsets [" + std::to_string(begin) + ", " + std::to_string(end) +
                     "] outside the " + std::to_string(data_bytes) + " data bytes of the file");
    }
    const uint64_t expected = elements * Info(source.dtype).block_bytes;
    if (end - begin != expected) {
      return Corrupt(where + ": shape " + source.shape.ToString() + " x " + Name(source.dtype) + " needs " +
                     std::to_string(expected) + " bytes, data_offsets give " + std::to_string(end - begin));
    }
    source.data = base + data_begin + begin;
    source.bytes = end - begin;
    result.tensors_.push_back(std::move(source));
  }
  // Overlapping byte ranges mean two tensors would alias: reject the file.
  std::vector<const TensorSource*> sorted;
  for (const auto& t : result.tensors_) sorted.push_back(&t);
  std::sort(sorted.begin(), sorted.end(),
            [](const TensorSource* a, const TensorSource* b) { return a->data < b->data; });
  for (size_t i = 1; i < sorted.size(); ++i) {
    if (sorted[i - 1]->bytes > 0 && sorted[i - 1]->data + sorted[i - 1]->bytes > sorted[i]->data) {
      return Corrupt(path + ": tensors '" + sorted[i - 1]->name + "' and '" + sorted[i]->name +
                     "' overlap in the file");
    }
  }
  return result;
}

Result<SafetensorsCheckpoint> SafetensorsCheckpoint::Open(const std::string& path) {
  namespace fs = std::filesystem;
  SafetensorsCheckpoint checkpoint;
  std::vector<std::string> files;
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    const fs::path dir(path);
    const fs::path index = dir / "model.safetensors.index.json";
    if (fs::exists(dir / "model.safetensors")) {
      files.push_back((dir / "model.safetensors").string());
    } else if (fs::exists(index)) {
      GR_ASSIGN_OR_RETURN(nlohmann::json json, ParseJsonFile(index.string()));
      if (!json.contains("weight_map") || !json["weight_map"].is_object()) {
        return Corrupt(index.string() + ": expected an object 'weight_map'");
      }
      for (const auto& [name, file] : json["weight_map"].items()) {
        if (!file.is_string()) return Corrupt(index.string() + ": weight_map['" + name + "'] is not a file name");
        const std::string shard = (dir / file.get<std::string>()).string();
        if (std::find(files.begin(), files.end(), shard) == files.end()) files.push_back(shard);
      }
    } else {
      return NotFound(path + ": no model.safetensors or model.safetensors.index.json");
    }
  } else {
    files.push_back(path);
  }
  for (const auto& file : files) {
    GR_ASSIGN_OR_RETURN(SafetensorsFile opened, SafetensorsFile::Open(file));
    checkpoint.files_.push_back(std::make_unique<SafetensorsFile>(std::move(opened)));
    for (const auto& tensor : checkpoint.files_.back()->tensors()) {
      if (!checkpoint.by_name_.emplace(tensor.name, &tensor).second) {
        return Corrupt(file + ": tensor '" + tensor.name + "' appears in more than one shard");
      }
    }
  }
  return checkpoint;
}

const TensorSource* SafetensorsCheckpoint::Find(const std::string& name) const {
  const auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : it->second;
}

std::vector<const TensorSource*> SafetensorsCheckpoint::tensors() const {
  std::vector<const TensorSource*> all;
  for (const auto& [name, tensor] : by_name_) all.push_back(tensor);
  return all;
}

size_t SafetensorsCheckpoint::total_bytes() const {
  size_t total = 0;
  for (const auto& [name, tensor] : by_name_) total += tensor->bytes;
  return total;
}

}  // namespace gemmarun
