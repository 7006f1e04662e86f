// GPU time per op, for finding where a forward pass spends it
// (GEMMARUN_CUDA_PROFILE=1). Launch gaps are kept out: at the start of each pass
// a spin kernel holds the stream for a while, so the host has enqueued the
// whole pass before the GPU starts on it, and the time between the events
// recorded after each op is that op's execution alone. Wall times are therefore
// meaningless while profiling; the table printed at exit is what it is for.
#pragma once

#include <cuda_runtime_api.h>

#include <chrono>
#include <map>
#include <string>
#include <vector>

namespace gemmarun::cuda {

class OpProfile {
 public:
  // Enabled when GEMMARUN_CUDA_PROFILE is set to a non-empty value other than 0.
  static bool Requested();
  explicit OpProfile(cudaStream_t stream);
  ~OpProfile();  // prints the table to stderr

  // After an op's launches: the GPU time since the previous mark is `label`'s.
  void Mark(const std::string& label);
  // After the stream has drained: collects the pass's times and starts the next pass.
  void EndPass();

 private:
  struct Stat {
    double ms = 0;
    long calls = 0;
  };
  cudaEvent_t NextEvent();
  void StartPass();

  cudaStream_t stream_;
  std::vector<cudaEvent_t> events_;  // [0] opens the pass; [i] closes labels_[i - 1]
  std::vector<std::string> labels_;
  size_t used_ = 0;
  std::map<std::string, Stat> stats_;
  long passes_ = 0;
  double gpu_ms_ = 0, host_ms_ = 0;
  std::chrono::steady_clock::time_point pass_start_;
};

}  // namespace gemmarun::cuda
