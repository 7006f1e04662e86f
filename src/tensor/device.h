// Where a tensor's bytes live, and the memory interface of a device: a backend
// hands one out (Backend::memory()) so that the model, the KV pool and the
// workspaces allocate once on the backend's device and move bytes to and from
// the host only where the host must read them (logits, image features).
#pragma once

#include <cstddef>
#include <string>

#include "gemmarun/status.h"

namespace gemmarun {

struct Device {
  enum class Kind : unsigned char { kHost, kCuda };
  Kind kind = Kind::kHost;
  int index = 0;

  bool is_host() const { return kind == Kind::kHost; }
  bool operator==(const Device& other) const { return kind == other.kind && index == other.index; }
  bool operator!=(const Device& other) const { return !(*this == other); }
  std::string ToString() const;  // "cpu", "cuda:0"
};

// Memory of one device. Copies and fills are ordered with the ops of the device's
// backend: a device may run them asynchronously, but Upload returns once
// host_src may be reused and Download once host_dst holds the bytes.
class DeviceMemory {
 public:
  virtual ~DeviceMemory() = default;
  virtual Device device() const = 0;
  // Uninitialised bytes; ResourceExhausted when the device is full.
  virtual Result<void*> Allocate(size_t bytes) = 0;
  virtual void Free(void* ptr) = 0;
  virtual Status Upload(void* dst, const void* host_src, size_t bytes) = 0;
  virtual Status Download(void* host_dst, const void* src, size_t bytes) = 0;
  // Device-to-device copy and zero fill, enqueued like an op: an error is kept
  // and returned by the next Synchronize.
  virtual void Copy(void* dst, const void* src, size_t bytes) = 0;
  virtual void Zero(void* dst, size_t bytes) = 0;
  // Waits for everything enqueued; returns the first error since the last call
  // (a device's ops are asynchronous and report their failures here).
  virtual Status Synchronize() = 0;
};

// The host's memory (what the CPU backend computes on): synchronous memcpy/memset.
// Tensors allocated through it are ordinary huge-page Buffers (see Tensor::Allocate).
DeviceMemory& HostMemory();

}  // namespace gemmarun
