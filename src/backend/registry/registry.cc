#include "backend/registry/registry.h"

#include <charconv>

#include "backend/cpu/cpu_backend.h"
#ifdef GEMMARUN_HAS_CUDA
#include "backend/cuda/cuda_backend.h"
#endif

namespace gemmarun {

bool HasCudaBackend() {
#ifdef GEMMARUN_HAS_CUDA
  return true;
#else
  return false;
#endif
}

namespace {

// The GPU number of a "cuda" or "cuda:N" name, checked against this build and machine.
Result<int> CudaIndex(std::string_view device) {
  if (device != "cuda" && !device.starts_with("cuda:")) {
    return InvalidArgument("device '" + std::string(device) + "' is not one of cpu, cuda, cuda:N");
  }
  int index = 0;
  if (device.size() > 5) {
    const std::string_view digits = device.substr(5);
    const auto [end, error] = std::from_chars(digits.data(), digits.data() + digits.size(), index);
    if (error != std::errc() || end != digits.data() + digits.size() || index < 0) {
      return InvalidArgument("device '" + std::string(device) + "': N in cuda:N must be a GPU number (0, 1, ...)");
    }
  }
#ifdef GEMMARUN_HAS_CUDA
  const int count = CudaDeviceCount();
  if (count == 0) return Unsupported("device " + std::string(device) + ": no CUDA GPU found (no driver or no device)");
  if (index >= count) {
    return Unsupported("device " + std::string(device) + ": there are only " + std::to_string(count) +
                       " CUDA GPUs (cuda:0..cuda:" + std::to_string(count - 1) + ")");
  }
  return index;
#else
  return Unsupported("device " + std::string(device) +
                     ": this build has no CUDA backend (rebuild with the CUDA toolkit's nvcc on the PATH)");
#endif
}

}  // namespace

Status CheckBackendName(std::string_view device) {
  if (device.empty() || device == "cpu") return Status::Ok();
  return CudaIndex(device).status();
}

Result<std::unique_ptr<Backend>> CreateBackend(std::string_view device, const BackendOptions& options) {
  if (device.empty() || device == "cpu") return CreateCpuBackend(options.num_threads, options.precision);
  GR_ASSIGN_OR_RETURN(const int index, CudaIndex(device));
#ifdef GEMMARUN_HAS_CUDA
  GR_ASSIGN_OR_RETURN(std::unique_ptr<CudaBackend> backend, CudaBackend::Create(index, options.precision));
  return std::unique_ptr<Backend>(std::move(backend));
#else
  (void)index;
  return Internal("unreachable: CudaIndex fails without CUDA");
#endif
}

std::string BackendDeviceName(Backend& backend) {
#ifdef GEMMARUN_HAS_CUDA
  if (auto* cuda = dynamic_cast<CudaBackend*>(&backend)) return cuda->device_name();
#endif
  return "";
}

}  // namespace gemmarun
