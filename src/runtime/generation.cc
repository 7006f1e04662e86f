#include "runtime/generation.h"

#include <algorithm>

#include "gemmarun/tokenizer.h"

namespace gemmarun {

Generation::Generation(const GenerateOptions& options, const Tokenizer* tokenizer,
                       std::span<const int32_t> model_stop_ids)
    : options_(options), sampler_(options.sampling), model_stop_ids_(model_stop_ids.begin(), model_stop_ids.end()) {
  if (tokenizer != nullptr) stream_ = std::make_unique<StreamingDecoder>(*tokenizer);
  if (options_.max_new_tokens == 0) Stop(StopReason::kMaxTokens);
}

Generation::~Generation() = default;

int32_t Generation::Next(std::span<float> logits, std::span<const int32_t> history) {
  if (finished_) return -1;
  GeneratedToken token;
  if (options_.logprobs >= 0) raw_logits_.assign(logits.begin(), logits.end());
  token.id = sampler_.Sample(logits, history);
  const auto contains = [](const std::vector<int32_t>& ids, int32_t id) {
    return std::find(ids.begin(), ids.end(), id) != ids.end();
  };
  if (options_.stop_at_eos && contains(model_stop_ids_, token.id)) {
    Stop(StopReason::kEndOfSequence);
    return -1;
  }
  if (contains(options_.stop_ids, token.id)) {
    Stop(StopReason::kStopToken);
    return -1;
  }
  result_.tokens.push_back(token.id);
  token.text = stream_ ? stream_->Push(token.id) : std::string();
  result_.stop_reason = StopReason::kMaxTokens;
  if (!Emit(std::move(token))) {
    Stop(StopReason::kCallback);
    return result_.tokens.back();
  }
  if (options_.max_new_tokens >= 0 && static_cast<int64_t>(result_.tokens.size()) >= options_.max_new_tokens) {
    Stop(StopReason::kMaxTokens);
  }
  return result_.tokens.back();
}

bool Generation::Emit(GeneratedToken token) {
  result_.text += token.text;
  if (options_.on_generated) return options_.on_generated(token);
  if (options_.on_token) return options_.on_token(token.id, token.text);
  return true;
}

void Generation::Stop(StopReason reason) {
  if (finished_) return;
  finished_ = true;
  result_.stop_reason = reason;
}

GenerateResult& Generation::Finish() {
  finished_ = true;
  if (!flushed_ && stream_) {
    flushed_ = true;
    GeneratedToken rest;
    rest.id = -1;
    rest.text = stream_->Flush();
    if (!rest.text.empty()) Emit(std::move(rest));
  }
  return result_;
}

}  // namespace gemmarun
