// temporary: replaced by the batch scheduler. One request runs at a time; each
// Step() either prefills the next waiting request or generates one token of the
// running one, so cancellation lands within one step as the contract says.
#include "runtime/serial_scheduler.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <optional>
#include <set>
#include <string>

#include "runtime/sampler.h"

namespace gemmarun {
namespace {

using Clock = std::chrono::steady_clock;

double SecondsBetween(Clock::time_point from, Clock::time_point to) {
  return std::chrono::duration<double>(to - from).count();
}

// Length of the longest suffix of `text` that is a proper prefix of some stop string.
size_t HeldBackLength(const std::string& text, const std::vector<std::string>& stops) {
  size_t held = 0;
  for (const std::string& stop : stops) {
    for (size_t n = std::min(text.size(), stop.size() - 1); n > held; --n) {
      if (text.compare(text.size() - n, n, stop, 0, n) == 0) {
        held = n;
        break;
      }
    }
  }
  return held;
}

class SerialScheduler final : public Scheduler {
 public:
  SerialScheduler(Engine& engine, const Tokenizer* tokenizer, std::function<bool(int32_t)> is_stop,
                  const SchedulerOptions& options)
      : engine_(engine), tokenizer_(tokenizer), is_stop_(std::move(is_stop)), options_(options) {}

  Result<RequestId> Submit(Request request) override {
    if (request.prompt.empty()) return InvalidArgument("the prompt is empty");
    GR_RETURN_IF_ERROR(ValidateSampling(request.options.sampling));
    const int64_t context = options_.context_length;
    if (context > 0 && static_cast<int64_t>(request.prompt.size()) >= context) {
      return OutOfRange("the prompt has " + std::to_string(request.prompt.size()) + " tokens; the context holds " +
                        std::to_string(context));
    }
    std::lock_guard<std::mutex> lock(mutex_);
    if (options_.max_queue > 0 && static_cast<int>(waiting_.size()) >= options_.max_queue) {
      return ResourceExhausted("the queue is full (" + std::to_string(options_.max_queue) + " waiting)");
    }
    const RequestId id = next_id_++;
    waiting_.push_back({id, std::move(request)});
    stats_.waiting = static_cast<int>(waiting_.size());
    work_.notify_all();
    return id;
  }

  void Cancel(RequestId id) override {
    std::lock_guard<std::mutex> lock(mutex_);
    cancelled_.insert(id);
    work_.notify_all();
  }

  Result<bool> Step() override;

  bool WaitForWork(std::chrono::milliseconds timeout) override {
    std::unique_lock<std::mutex> lock(mutex_);
    work_.wait_for(lock, timeout, [&] { return HasWorkLocked() || shutdown_; });
    return HasWorkLocked();
  }

  void Shutdown() override {
    std::lock_guard<std::mutex> lock(mutex_);
    shutdown_ = true;
    work_.notify_all();
  }

  SchedulerStats stats() const override {
    std::lock_guard<std::mutex> lock(mutex_);
    return stats_;
  }

 private:
  struct Waiting {
    RequestId id;
    Request request;
  };
  struct Running {
    RequestId id;
    Request request;
    std::unique_ptr<Session> session;
    std::unique_ptr<Sampler> sampler;
    std::unique_ptr<StreamingDecoder> decoder;
    std::vector<float> logits;
    std::string held;  // decoded text not released yet: it could still start a stop string
    GenerateResult result;
    Clock::time_point submitted;
    Clock::time_point decode_start;
  };

  bool HasWorkLocked() const { return running_ != nullptr || !waiting_.empty(); }
  void Start(Waiting waiting);
  void DecodeOne();
  void Finish(StopReason reason);
  void Fail(const Status& status);
  bool Emit(int32_t id, float logprob, std::vector<TokenLogprob> top);

  Engine& engine_;
  const Tokenizer* tokenizer_;
  std::function<bool(int32_t)> is_stop_;
  SchedulerOptions options_;

  mutable std::mutex mutex_;
  std::condition_variable work_;
  std::deque<Waiting> waiting_;
  std::set<RequestId> cancelled_;
  bool shutdown_ = false;
  RequestId next_id_ = 1;
  SchedulerStats stats_;

  std::unique_ptr<Running> running_;  // touched only by the stepping thread
};

Result<bool> SerialScheduler::Step() {
  std::vector<Waiting> dropped;
  std::optional<Waiting> next;
  bool cancel_running = false;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (shutdown_) {
      while (!waiting_.empty()) {
        dropped.push_back(std::move(waiting_.front()));
        waiting_.pop_front();
      }
      cancel_running = running_ != nullptr;
    } else {
      for (auto it = waiting_.begin(); it != waiting_.end();) {
        if (cancelled_.count(it->id) != 0) {
          cancelled_.erase(it->id);
          dropped.push_back(std::move(*it));
          it = waiting_.erase(it);
        } else {
          ++it;
        }
      }
      if (running_ != nullptr && cancelled_.erase(running_->id) != 0) cancel_running = true;
      if (running_ == nullptr && !waiting_.empty()) {
        next = std::move(waiting_.front());
        waiting_.pop_front();
      }
    }
    stats_.waiting = static_cast<int>(waiting_.size());
    ++stats_.steps;
  }
  for (Waiting& w : dropped) {
    GenerateResult result;
    result.stop_reason = StopReason::kCancelled;
    if (w.request.on_finish) w.request.on_finish(w.id, result);
  }
  if (cancel_running) Finish(StopReason::kCancelled);
  if (next) {
    Start(std::move(*next));
  } else if (running_ != nullptr) {
    DecodeOne();
  }
  std::lock_guard<std::mutex> lock(mutex_);
  stats_.running = running_ != nullptr ? 1 : 0;
  if (cancelled_.size() > 1024) cancelled_.clear();  // ids of requests that had already ended
  return HasWorkLocked();
}

void SerialScheduler::Start(Waiting waiting) {
  auto run = std::make_unique<Running>();
  run->id = waiting.id;
  run->request = std::move(waiting.request);
  run->submitted = Clock::now();
  running_ = std::move(run);
  Running& r = *running_;
  auto session = engine_.NewSession(options_.context_length);
  if (!session.ok()) return Fail(session.status());
  r.session = std::move(session).value();
  r.sampler = std::make_unique<Sampler>(r.request.options.sampling);
  if (tokenizer_ != nullptr) r.decoder = std::make_unique<StreamingDecoder>(*tokenizer_);
  PrefillOptions prefill;
  prefill.image = r.request.image.get();
  auto logits = r.session->Prefill(r.request.prompt, prefill);
  if (!logits.ok()) return Fail(logits.status());
  r.logits.assign(logits->values.end() - logits->vocab_size, logits->values.end());
  r.result.prompt_tokens = static_cast<int64_t>(r.request.prompt.size());
  r.decode_start = Clock::now();
  r.result.prefill_seconds = SecondsBetween(r.submitted, r.decode_start);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stats_.prompt_tokens += r.result.prompt_tokens;
  }
  if (r.request.options.max_new_tokens == 0) Finish(StopReason::kMaxTokens);
}

void SerialScheduler::DecodeOne() {
  Running& r = *running_;
  std::vector<float> scratch = r.logits;  // the sampler applies penalties in place
  const int32_t id = r.sampler->Sample(scratch, r.session->tokens());
  float logprob = 0.0f;
  std::vector<TokenLogprob> top;
  if (r.request.options.logprobs >= 0) {
    const float max = *std::max_element(r.logits.begin(), r.logits.end());
    double sum = 0.0;
    for (float v : r.logits) sum += std::exp(static_cast<double>(v - max));
    const float log_sum = static_cast<float>(std::log(sum)) + max;
    logprob = r.logits[id] - log_sum;
    std::vector<int32_t> order(r.logits.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int32_t>(i);
    const size_t k = std::min<size_t>(r.request.options.logprobs, order.size());
    std::partial_sort(order.begin(), order.begin() + k, order.end(),
                      [&](int32_t a, int32_t b) { return r.logits[a] > r.logits[b]; });
    for (size_t i = 0; i < k; ++i) top.push_back({order[i], r.logits[order[i]] - log_sum});
  }
  Emit(id, logprob, std::move(top));
}

// Handles the sampled token: stop checks, stop strings, the callback, then feeds it.
bool SerialScheduler::Emit(int32_t id, float logprob, std::vector<TokenLogprob> top) {
  Running& r = *running_;
  const GenerateOptions& options = r.request.options;
  if (options.stop_at_eos && is_stop_(id)) {
    Finish(StopReason::kEndOfSequence);
    return false;
  }
  if (std::find(options.stop_ids.begin(), options.stop_ids.end(), id) != options.stop_ids.end()) {
    Finish(StopReason::kStopToken);
    return false;
  }
  if (r.result.tokens.empty()) r.result.time_to_first_token_seconds = SecondsBetween(r.submitted, Clock::now());
  r.result.tokens.push_back(id);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    ++stats_.generated_tokens;
  }
  r.held += r.decoder ? r.decoder->Push(id) : std::string();
  std::string released;
  bool stopped = false;
  for (const std::string& stop : options.stop_strings) {
    const size_t at = stop.empty() ? std::string::npos : r.held.find(stop);
    if (at != std::string::npos) {
      released = r.held.substr(0, at);
      r.result.stop_string = stop;
      stopped = true;
      break;
    }
  }
  if (!stopped) {
    const size_t keep = HeldBackLength(r.held, options.stop_strings);
    released = r.held.substr(0, r.held.size() - keep);
    r.held.erase(0, r.held.size() - keep);
  } else {
    r.held.clear();
  }
  r.result.text += released;
  GeneratedToken token;
  token.id = id;
  token.text = released;
  token.logprob = logprob;
  token.top = std::move(top);
  if (options.logprobs >= 0) r.result.details.push_back(token);
  bool keep_going = true;
  if (options.on_generated) keep_going = options.on_generated(token);
  else if (options.on_token) keep_going = options.on_token(id, released);
  if (stopped) {
    Finish(StopReason::kStopString);
    return false;
  }
  if (!keep_going) {
    Finish(StopReason::kCancelled);
    return false;
  }
  if (options.max_new_tokens >= 0 && static_cast<int>(r.result.tokens.size()) >= options.max_new_tokens) {
    Finish(StopReason::kMaxTokens);
    return false;
  }
  if (r.session->length() + 1 >= r.session->context_length()) {
    Finish(StopReason::kContextFull);
    return false;
  }
  const int32_t fed[1] = {id};
  auto logits = r.session->Prefill(fed);
  if (!logits.ok()) {
    Fail(logits.status());
    return false;
  }
  r.logits.assign(logits->values.end() - logits->vocab_size, logits->values.end());
  return true;
}

void SerialScheduler::Finish(StopReason reason) {
  std::unique_ptr<Running> run = std::move(running_);
  Running& r = *run;
  r.result.stop_reason = reason;
  if (reason != StopReason::kStopString && reason != StopReason::kCancelled) {
    std::string rest = r.held + (r.decoder ? r.decoder->Flush() : std::string());
    if (!rest.empty()) {
      r.result.text += rest;
      GeneratedToken token;
      token.id = -1;
      token.text = rest;
      if (r.request.options.on_generated) r.request.options.on_generated(token);
      else if (r.request.options.on_token) r.request.options.on_token(-1, rest);
    }
  }
  r.result.decode_seconds = SecondsBetween(r.decode_start, Clock::now());
  if (r.request.on_finish) r.request.on_finish(r.id, r.result);
}

void SerialScheduler::Fail(const Status& status) {
  std::unique_ptr<Running> run = std::move(running_);
  if (run->request.on_finish) run->request.on_finish(run->id, status);
}

}  // namespace

std::unique_ptr<Scheduler> NewSerialScheduler(Engine& engine, const Tokenizer* tokenizer,
                                              std::function<bool(int32_t)> is_stop, const SchedulerOptions& options) {
  return std::make_unique<SerialScheduler>(engine, tokenizer, std::move(is_stop), options);
}

}  // namespace gemmarun
