// Backends by name, so that the runtime asks for "cpu" or "cuda:1" and never
// names (or includes) a backend's implementation. Builds without CUDA still
// know the name and say why they cannot make one.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "gemmarun/status.h"
#include "ops/backend.h"

namespace gemmarun {

struct BackendOptions {
  int num_threads = 0;  // CPU: 0 picks one per physical core
  MatMulPrecision precision = MatMulPrecision::kF32;
};

// "cpu", "cuda" (device 0) or "cuda:N". InvalidArgument for any other name;
// Unsupported when CUDA was not compiled in or the device does not exist.
Result<std::unique_ptr<Backend>> CreateBackend(std::string_view device, const BackendOptions& options);
// The same checks without creating the backend (no GPU context is made).
Status CheckBackendName(std::string_view device);

// What the backend runs on, for the model info line: "NVIDIA H200" for a GPU,
// empty for the CPU (whose line the runtime writes from the SIMD target).
std::string BackendDeviceName(Backend& backend);

// Whether this build has the CUDA backend.
bool HasCudaBackend();

}  // namespace gemmarun
