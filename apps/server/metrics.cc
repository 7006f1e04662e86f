#include "metrics.h"

#include <cstdio>

namespace gemmarun::server {
namespace {

std::string Number(double value) {
  char text[64];
  std::snprintf(text, sizeof(text), "%.17g", value);
  return text;
}

void Gauge(const std::string& name, const std::string& type, const std::string& help, double value,
           std::string* out) {
  *out += "# HELP " + name + " " + help + "\n# TYPE " + name + " " + type + "\n" + name + " " + Number(value) + "\n";
}

// Known paths by name; anything else is one label value, so a scanner cannot grow the label set.
std::string PathLabel(const std::string& path) {
  static const char* known[] = {"/v1/chat/completions", "/v1/completions", "/v1/models", "/health", "/metrics",
                                "/tokenize", "/detokenize", "/"};
  for (const char* k : known) {
    if (path == k) return k;
  }
  return "other";
}

}  // namespace

Histogram::Histogram(std::vector<double> bounds) : bounds_(std::move(bounds)), counts_(bounds_.size() + 1, 0) {}

void Histogram::Observe(double value) {
  std::lock_guard<std::mutex> lock(mutex_);
  size_t bucket = 0;
  while (bucket < bounds_.size() && value > bounds_[bucket]) ++bucket;
  ++counts_[bucket];
  sum_ += value;
  ++count_;
}

void Histogram::Render(const std::string& name, const std::string& help, std::string* out) const {
  std::lock_guard<std::mutex> lock(mutex_);
  *out += "# HELP " + name + " " + help + "\n# TYPE " + name + " histogram\n";
  uint64_t cumulative = 0;
  for (size_t i = 0; i < counts_.size(); ++i) {
    cumulative += counts_[i];
    const std::string le = i < bounds_.size() ? Number(bounds_[i]) : "+Inf";
    *out += name + "_bucket{le=\"" + le + "\"} " + std::to_string(cumulative) + "\n";
  }
  *out += name + "_sum " + Number(sum_) + "\n" + name + "_count " + std::to_string(count_) + "\n";
}

Metrics::Metrics()
    : ttft_({0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}),
      itl_({0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5}) {}

void Metrics::CountResponse(const std::string& path, int status) {
  std::lock_guard<std::mutex> lock(mutex_);
  ++responses_[{PathLabel(path), status}];
}

std::string Metrics::Render(const SchedulerStats& stats, bool ready) const {
  std::string out;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    out += "# HELP gemmarun_requests_total HTTP responses by path and status code\n"
           "# TYPE gemmarun_requests_total counter\n";
    for (const auto& [key, count] : responses_) {
      out += "gemmarun_requests_total{path=\"" + key.first + "\",status=\"" + std::to_string(key.second) + "\"} " +
             std::to_string(count) + "\n";
    }
    Gauge("gemmarun_prompt_tokens_total", "counter", "prompt tokens of accepted generation requests",
          static_cast<double>(prompt_tokens_), &out);
    Gauge("gemmarun_generated_tokens_total", "counter", "tokens sent to clients",
          static_cast<double>(generated_tokens_), &out);
    Gauge("gemmarun_cancelled_requests_total", "counter", "sequences cancelled because their client went away",
          static_cast<double>(cancelled_), &out);
    Gauge("gemmarun_requests_in_flight", "gauge", "generation requests being answered",
          static_cast<double>(in_flight_), &out);
  }
  Gauge("gemmarun_ready", "gauge", "1 once the model is loaded", ready ? 1 : 0, &out);
  Gauge("gemmarun_queue_length", "gauge", "sequences waiting to be admitted", stats.waiting, &out);
  Gauge("gemmarun_running_sequences", "gauge", "sequences holding cache blocks", stats.running, &out);
  Gauge("gemmarun_kv_blocks_total", "gauge", "blocks in the KV cache pool", static_cast<double>(stats.kv_blocks_total),
        &out);
  Gauge("gemmarun_kv_blocks_used", "gauge", "KV blocks referenced by running sequences",
        static_cast<double>(stats.kv_blocks_used), &out);
  Gauge("gemmarun_kv_blocks_cached", "gauge", "unreferenced KV blocks kept for prefix reuse",
        static_cast<double>(stats.kv_blocks_cached), &out);
  Gauge("gemmarun_kv_blocks_free", "gauge", "KV blocks neither used nor cached",
        static_cast<double>(stats.kv_blocks_total - stats.kv_blocks_used - stats.kv_blocks_cached), &out);
  Gauge("gemmarun_kv_block_size", "gauge", "positions per KV block", static_cast<double>(stats.block_size), &out);
  Gauge("gemmarun_scheduler_prompt_tokens_total", "counter", "prompt tokens the scheduler admitted",
        static_cast<double>(stats.prompt_tokens), &out);
  Gauge("gemmarun_prefix_cache_hit_tokens_total", "counter", "prompt tokens taken from the prefix cache",
        static_cast<double>(stats.cached_prompt_tokens), &out);
  Gauge("gemmarun_scheduler_generated_tokens_total", "counter", "tokens the scheduler generated",
        static_cast<double>(stats.generated_tokens), &out);
  Gauge("gemmarun_preemptions_total", "counter", "sequences preempted for lack of cache blocks",
        static_cast<double>(stats.preemptions), &out);
  Gauge("gemmarun_steps_total", "counter", "batched forward passes", static_cast<double>(stats.steps), &out);
  ttft_.Render("gemmarun_time_to_first_token_seconds", "from submission to the first generated token", &out);
  itl_.Render("gemmarun_inter_token_latency_seconds", "between consecutive tokens of a sequence", &out);
  return out;
}

}  // namespace gemmarun::server
