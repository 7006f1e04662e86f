#include "runtime/generation.h"

#include <algorithm>

#include "gemmarun/tokenizer.h"
#include "runtime/logprobs.h"

namespace gemmarun {

Status ValidateGenerateOptions(const GenerateOptions& options) {
  GR_RETURN_IF_ERROR(ValidateSampling(options.sampling));
  if (options.max_new_tokens < -1) return InvalidArgument("max_new_tokens must be >= 0, or -1 for no limit");
  if (options.logprobs > kMaxTopLogprobs) {
    return InvalidArgument("logprobs must be at most " + std::to_string(kMaxTopLogprobs));
  }
  return Status::Ok();
}

Generation::Generation(const GenerateOptions& options, const Tokenizer* tokenizer,
                       std::span<const int32_t> model_stop_ids)
    : options_(options),
      sampler_(options.sampling),
      model_stop_ids_(model_stop_ids.begin(), model_stop_ids.end()),
      stop_strings_(options.stop_strings) {
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
  if (options_.logprobs >= 0) {  // of the raw logits, before penalties and truncation
    TokenLogprobs logprobs = ComputeLogprobs(raw_logits_, token.id, options_.logprobs);
    token.logprob = logprobs.chosen;
    token.top = std::move(logprobs.top);
  }
  token.text = stream_ ? stream_->Push(token.id) : std::string();
  if (!stop_strings_.empty()) token.text = stop_strings_.Push(token.text);
  result_.stop_reason = StopReason::kMaxTokens;
  if (!Emit(std::move(token))) {
    Stop(StopReason::kCallback);
  } else if (stop_strings_.matched()) {
    Stop(StopReason::kStopString);
    result_.stop_string = stop_strings_.matched_string();
  } else if (options_.max_new_tokens >= 0 &&
             static_cast<int64_t>(result_.tokens.size()) >= options_.max_new_tokens) {
    Stop(StopReason::kMaxTokens);
  }
  return result_.tokens.back();
}

bool Generation::Emit(GeneratedToken token) {
  result_.text += token.text;
  bool go_on = true;
  if (options_.on_generated) {
    go_on = options_.on_generated(token);
  } else if (options_.on_token) {
    go_on = options_.on_token(token.id, token.text);
  }
  if (options_.logprobs >= 0 && token.id >= 0) result_.details.push_back(std::move(token));
  return go_on;
}

void Generation::Stop(StopReason reason) {
  if (finished_) return;
  finished_ = true;
  result_.stop_reason = reason;
}

GenerateResult& Generation::Finish() {
  finished_ = true;
  if (!flushed_ && stream_ && !stop_strings_.matched()) {
    flushed_ = true;
    GeneratedToken rest;
    rest.id = -1;
    rest.text = stream_->Flush();
    if (!stop_strings_.empty()) {
      rest.text = stop_strings_.Push(rest.text);
      if (stop_strings_.matched()) {
        result_.stop_reason = StopReason::kStopString;
        result_.stop_string = stop_strings_.matched_string();
      } else {
        rest.text += stop_strings_.Flush();
      }
    }
    if (!rest.text.empty()) Emit(std::move(rest));
  }
  return result_;
}

}  // namespace gemmarun
