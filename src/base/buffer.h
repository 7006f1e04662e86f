// Owning, 64-byte aligned memory for weights and activations. Large buffers are
// anonymous mappings advised as huge pages: weights touched once per token must
// not live in the page cache, where reclaim evicts them (see design.md).
#pragma once

#include <cstddef>
#include <cstdint>
#include <utility>

namespace gemmarun {

class Buffer {
 public:
  Buffer() = default;
  // Zero-filled. Aborts on allocation failure; use TryAllocate for user-sized data.
  explicit Buffer(size_t bytes);
  ~Buffer();
  Buffer(Buffer&& other) noexcept { *this = std::move(other); }
  Buffer& operator=(Buffer&& other) noexcept;
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;

  // Returns false (and leaves *out empty) when the memory cannot be had.
  static bool TryAllocate(size_t bytes, Buffer* out);

  uint8_t* data() { return data_; }
  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }

 private:
  void Release();
  uint8_t* data_ = nullptr;
  size_t size_ = 0;
  bool mapped_ = false;
};

}  // namespace gemmarun
