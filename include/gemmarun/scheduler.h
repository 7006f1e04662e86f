// Many sequences in one forward pass: requests are submitted from any thread,
// and each Step() runs one batched forward pass over every running sequence (one
// decode token each, plus prefill chunks of waiting ones up to a token budget),
// samples each with its own options and retires finished ones. The KV cache is
// a pool of fixed-size blocks shared by all sequences, with prefix reuse: a
// prompt that starts with blocks another sequence already computed (a system
// prompt, the earlier turns of a chat) prefills only the rest.
//
//   auto scheduler = (*engine)->NewScheduler({.max_sequences = 8});
//   gemmarun::Request request;
//   request.prompt = *(*engine)->Tokenize("The capital of France is", true);
//   request.options.on_token = [](int32_t, const std::string& text) { std::cout << text; return true; };
//   request.on_finish = [](gemmarun::RequestId, const gemmarun::Result<gemmarun::GenerateResult>&) {};
//   (*scheduler)->Submit(std::move(request));
//   while (*(*scheduler)->Step()) {}
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "gemmarun/engine.h"

namespace gemmarun {

struct SchedulerOptions {
  int max_sequences = 8;          // sequences running at once (decoding or prefilling)
  int64_t token_budget = 512;     // tokens per forward pass; decodes first, then prefill chunks
  int64_t context_length = 0;     // per sequence; 0: the engine's default context
  // KV block pool size; 0: room for max_sequences sequences of context_length.
  // Fewer: sequences wait (or are preempted and recomputed) when it runs short.
  int64_t kv_memory_bytes = 0;
  int max_queue = 0;              // waiting requests beyond which Submit fails; 0: unbounded
  bool prefix_cache = true;       // reuse cached blocks of earlier prompts
};

using RequestId = uint64_t;

struct Request {
  std::vector<int32_t> prompt;          // token ids, BOS included by the caller
  std::shared_ptr<const Image> image;   // PaliGemma: prompt from ImagePrompt()
  // on_token / on_generated run on the thread that calls Step(); returning false cancels.
  GenerateOptions options;
  // Called once on the Step() thread when the request ends: its result, or the
  // error that ended it. A cancelled request ends with StopReason::kCancelled.
  std::function<void(RequestId id, const Result<GenerateResult>& result)> on_finish;
};

struct SchedulerStats {
  int running = 0;                 // sequences holding cache blocks
  int waiting = 0;                 // submitted, not yet admitted (or preempted)
  int64_t kv_blocks_total = 0;
  int64_t kv_blocks_used = 0;      // referenced by a running sequence
  int64_t kv_blocks_cached = 0;    // unreferenced but kept for prefix reuse (evicted LRU)
  int64_t kv_bytes = 0;            // memory of the block pool
  int64_t block_size = 0;          // positions per block
  int64_t prompt_tokens = 0;       // totals since creation
  int64_t cached_prompt_tokens = 0;
  int64_t generated_tokens = 0;
  int64_t preemptions = 0;
  int64_t steps = 0;
};

class Scheduler {
 public:
  virtual ~Scheduler() = default;
  // Thread-safe. Errors: InvalidArgument (bad prompt or options), OutOfRange (the
  // request can never fit the context or the pool), ResourceExhausted (queue full).
  virtual Result<RequestId> Submit(Request request) = 0;
  // Thread-safe; the request ends (on_finish with kCancelled) at the next Step().
  // Unknown or finished ids are ignored.
  virtual void Cancel(RequestId id) = 0;
  // One batched forward pass. Returns false when no request is running or waiting.
  // Not reentrant: one thread steps.
  virtual Result<bool> Step() = 0;
  // Blocks until there is work or the timeout passes; true when there is work.
  virtual bool WaitForWork(std::chrono::milliseconds timeout) = 0;
  // The next Step() ends every request (kCancelled); Submit fails from now on,
  // and WaitForWork returns. Destroying a scheduler drops its requests without
  // calling their on_finish.
  virtual void Shutdown() = 0;
  virtual SchedulerStats stats() const = 0;  // thread-safe
};

}  // namespace gemmarun
