// A read-only memory mapping of a whole file, used only while loading: the
// bytes are validated and copied into anonymous memory, never computed from.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "gemmarun/status.h"

namespace gemmarun {

class MappedFile {
 public:
  MappedFile() = default;
  ~MappedFile();
  MappedFile(MappedFile&& other) noexcept;
  MappedFile& operator=(MappedFile&& other) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  static Result<MappedFile> Open(const std::string& path);

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  void Release();
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  std::string path_;
};

// Opens a path for reading, refusing folders, FIFOs and devices without blocking on
// them; the caller closes *fd.
Status OpenRegularFile(const std::string& path, int* fd);

// Reads a whole (small) file into a string: configs, tokenizer files. Anything but a
// regular file is an error.
Result<std::string> ReadTextFile(const std::string& path);

}  // namespace gemmarun
