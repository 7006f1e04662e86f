#include "backend/cuda/op_profile.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "backend/cuda/kernels.h"

namespace gemmarun::cuda {
namespace {
// Long enough for the host to enqueue a decode pass of a few hundred ops.
constexpr double kHoldMilliseconds = 20.0;
}  // namespace

bool OpProfile::Requested() {
  const char* value = std::getenv("GEMMARUN_CUDA_PROFILE");
  return value != nullptr && *value != '\0' && std::strcmp(value, "0") != 0;
}

OpProfile::OpProfile(cudaStream_t stream) : stream_(stream) { StartPass(); }

OpProfile::~OpProfile() {
  cudaStreamSynchronize(stream_);
  EndPass();
  std::vector<std::pair<std::string, Stat>> rows(stats_.begin(), stats_.end());
  std::sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) { return a.second.ms > b.second.ms; });
  std::fprintf(stderr, "cuda op profile: %ld passes, GPU %.1f us per pass, host enqueue %.1f us per pass\n", passes_,
               passes_ ? 1000 * gpu_ms_ / passes_ : 0.0, passes_ ? 1000 * host_ms_ / passes_ : 0.0);
  std::fprintf(stderr, "  %8s %10s %10s %6s  %s\n", "calls", "total ms", "us/call", "share", "op");
  for (const auto& [label, stat] : rows) {
    std::fprintf(stderr, "  %8ld %10.3f %10.2f %5.1f%%  %s\n", stat.calls, stat.ms, 1000 * stat.ms / stat.calls,
                 gpu_ms_ > 0 ? 100 * stat.ms / gpu_ms_ : 0.0, label.c_str());
  }
  for (cudaEvent_t e : events_) cudaEventDestroy(e);
}

cudaEvent_t OpProfile::NextEvent() {
  if (used_ == events_.size()) {
    cudaEvent_t e = nullptr;
    cudaEventCreate(&e);
    events_.push_back(e);
  }
  return events_[used_++];
}

void OpProfile::StartPass() {
  LaunchHold(kHoldMilliseconds, stream_);
  used_ = 0;
  labels_.clear();
  cudaEventRecord(NextEvent(), stream_);
  pass_start_ = std::chrono::steady_clock::now();
}

void OpProfile::Mark(const std::string& label) {
  cudaEventRecord(NextEvent(), stream_);
  labels_.push_back(label);
}

void OpProfile::EndPass() {
  if (!labels_.empty()) {
    host_ms_ += std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - pass_start_).count();
    ++passes_;
    for (size_t i = 0; i < labels_.size(); ++i) {
      float ms = 0;
      if (cudaEventElapsedTime(&ms, events_[i], events_[i + 1]) != cudaSuccess) {
        cudaGetLastError();
        continue;
      }
      Stat& stat = stats_[labels_[i]];
      stat.ms += ms;
      ++stat.calls;
      gpu_ms_ += ms;
    }
  }
  StartPass();
}

}  // namespace gemmarun::cuda
