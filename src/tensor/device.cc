#include "tensor/device.h"

#include <cstdlib>
#include <cstring>

namespace gemmarun {

std::string Device::ToString() const {
  switch (kind) {
    case Kind::kHost: return "cpu";
    case Kind::kCuda: return "cuda:" + std::to_string(index);
  }
  return "unknown";
}

namespace {

class HostDeviceMemory final : public DeviceMemory {
 public:
  Device device() const override { return Device{}; }
  Result<void*> Allocate(size_t bytes) override {
    void* ptr = std::aligned_alloc(64, (bytes + 63) / 64 * 64 + 64);
    if (ptr == nullptr) return ResourceExhausted("out of host memory for " + std::to_string(bytes) + " bytes");
    return ptr;
  }
  void Free(void* ptr) override { std::free(ptr); }
  Status Upload(void* dst, const void* host_src, size_t bytes) override {
    if (bytes > 0) std::memcpy(dst, host_src, bytes);
    return Status::Ok();
  }
  Status Download(void* host_dst, const void* src, size_t bytes) override {
    if (bytes > 0) std::memcpy(host_dst, src, bytes);
    return Status::Ok();
  }
  void Copy(void* dst, const void* src, size_t bytes) override {
    if (bytes > 0) std::memmove(dst, src, bytes);
  }
  void Zero(void* dst, size_t bytes) override {
    if (bytes > 0) std::memset(dst, 0, bytes);
  }
  Status Synchronize() override { return Status::Ok(); }
};

}  // namespace

DeviceMemory& HostMemory() {
  static HostDeviceMemory memory;
  return memory;
}

}  // namespace gemmarun
