// One sequence's generation as Session::Generate and the Scheduler share it:
// the sampler with its own generator, the stop conditions (EOS, stop ids, stop
// strings, the token limit), the streamed text and its callbacks, and the
// result. The caller owns the model and feeds it the chosen tokens.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "gemmarun/engine.h"
#include "runtime/sampler.h"
#include "runtime/stop_strings.h"

namespace gemmarun {

class Tokenizer;
class StreamingDecoder;

// Checks what Generation relies on beyond ValidateSampling (logprobs bounds).
Status ValidateGenerateOptions(const GenerateOptions& options);

class Generation {
 public:
  // model_stop_ids: the engine's EOS / end-of-turn ids (used when stop_at_eos).
  Generation(const GenerateOptions& options, const Tokenizer* tokenizer, std::span<const int32_t> model_stop_ids);
  ~Generation();

  // Picks the next token from a row of logits (modified in place by the
  // penalties) given the sequence so far. Returns the token to feed, or -1 when
  // the sequence ends here (stop_reason() says why).
  int32_t Next(std::span<float> logits, std::span<const int32_t> history);
  // Ends it from outside: context full, cancelled.
  void Stop(StopReason reason);
  bool finished() const { return finished_; }
  // Releases held-back text and returns the result (call once, at the end).
  GenerateResult& Finish();
  GenerateResult& result() { return result_; }
  int max_new_tokens() const { return options_.max_new_tokens; }

 private:
  // Emits text through the callbacks (and into details for a real token);
  // false when the caller asked to stop.
  bool Emit(GeneratedToken token);

  GenerateOptions options_;
  Sampler sampler_;
  std::vector<int32_t> model_stop_ids_;
  std::unique_ptr<StreamingDecoder> stream_;
  StopStringMatcher stop_strings_;
  std::vector<float> raw_logits_;  // a copy for logprobs, only when asked for
  GenerateResult result_;
  bool finished_ = false;
  bool flushed_ = false;
};

}  // namespace gemmarun
