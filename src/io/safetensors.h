// safetensors reader: an 8-byte little-endian header length, a JSON header
// {name: {dtype, shape, data_offsets}}, then the tensor bytes. Every header field
// is validated against the file before any tensor byte is trusted.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "gemmarun/status.h"
#include "io/mapped_file.h"
#include "io/tensor_source.h"

namespace gemmarun {

class SafetensorsFile {
 public:
  static Result<SafetensorsFile> Open(const std::string& path);

  const std::vector<TensorSource>& tensors() const { return tensors_; }
  const std::string& path() const { return file_.path(); }

 private:
  MappedFile file_;
  std::vector<TensorSource> tensors_;
};

// All weights of a checkpoint folder: model.safetensors, or the shards listed in
// model.safetensors.index.json. Also accepts the path of a single .safetensors file.
class SafetensorsCheckpoint {
 public:
  static Result<SafetensorsCheckpoint> Open(const std::string& path);

  const TensorSource* Find(const std::string& name) const;
  std::vector<const TensorSource*> tensors() const;
  size_t total_bytes() const;

 private:
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::map<std::string, const TensorSource*> by_name_;
};

}  // namespace gemmarun
