// The server's own counters and latency histograms, rendered with the
// scheduler's stats as Prometheus text for GET /metrics. Thread-safe.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "gemmarun/scheduler.h"

namespace gemmarun::server {

class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds);
  void Observe(double value);
  // Appends the _bucket/_sum/_count lines of a histogram named `name`.
  void Render(const std::string& name, const std::string& help, std::string* out) const;

 private:
  mutable std::mutex mutex_;
  std::vector<double> bounds_;
  std::vector<uint64_t> counts_;  // per bucket, not cumulative; the last is +Inf
  double sum_ = 0.0;
  uint64_t count_ = 0;
};

class Metrics {
 public:
  Metrics();
  void CountResponse(const std::string& path, int status);
  void AddPromptTokens(int64_t n) { Add(&prompt_tokens_, n); }
  void AddGeneratedTokens(int64_t n) { Add(&generated_tokens_, n); }
  void AddCancelled() { Add(&cancelled_, 1); }
  void AddInFlight(int delta) { Add(&in_flight_, delta); }
  Histogram& time_to_first_token() { return ttft_; }
  Histogram& inter_token_latency() { return itl_; }

  std::string Render(const SchedulerStats& stats, bool ready) const;

 private:
  void Add(int64_t* counter, int64_t n) {
    std::lock_guard<std::mutex> lock(mutex_);
    *counter += n;
  }

  mutable std::mutex mutex_;
  std::map<std::pair<std::string, int>, uint64_t> responses_;  // (path, status) -> count
  int64_t prompt_tokens_ = 0;
  int64_t generated_tokens_ = 0;
  int64_t cancelled_ = 0;
  int64_t in_flight_ = 0;
  Histogram ttft_;
  Histogram itl_;
};

}  // namespace gemmarun::server
