#include "base/buffer.h"

#include <sys/mman.h>

#include <cstdlib>
#include <cstring>

#include "base/check.h"

namespace gemmarun {
namespace {
// Below this, malloc is cheaper than a mapping and huge pages do not apply.
constexpr size_t kMapThreshold = size_t{1} << 20;
constexpr size_t kAlignment = 64;
}  // namespace

Buffer::Buffer(size_t bytes) { GR_CHECK(TryAllocate(bytes, this)) << "out of memory: " << bytes << " bytes"; }

Buffer::~Buffer() { Release(); }

Buffer& Buffer::operator=(Buffer&& other) noexcept {
  if (this != &other) {
    Release();
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
    mapped_ = std::exchange(other.mapped_, false);
  }
  return *this;
}

bool Buffer::TryAllocate(size_t bytes, Buffer* out) {
  out->Release();
  if (bytes == 0) return true;
  if (bytes >= kMapThreshold) {
    void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return false;
#ifdef MADV_HUGEPAGE
    madvise(p, bytes, MADV_HUGEPAGE);  // advisory: failure only costs speed
#endif
    out->data_ = static_cast<uint8_t*>(p);
    out->mapped_ = true;
  } else {
    const size_t rounded = (bytes + kAlignment - 1) / kAlignment * kAlignment;
    void* p = std::aligned_alloc(kAlignment, rounded);
    if (p == nullptr) return false;
    std::memset(p, 0, rounded);
    out->data_ = static_cast<uint8_t*>(p);
    out->mapped_ = false;
  }
  out->size_ = bytes;
  return true;
}

void Buffer::Release() {
  if (data_ == nullptr) return;
  if (mapped_) {
    munmap(data_, size_);
  } else {
    std::free(data_);
  }
  data_ = nullptr;
  size_ = 0;
  mapped_ = false;
}

}  // namespace gemmarun
