// Per-token log-probabilities for GenerateOptions::logprobs: the log-softmax of
// the raw logits (before repetition penalty, temperature or truncation, as
// OpenAI's and llama.cpp's APIs report them).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "gemmarun/engine.h"

namespace gemmarun {

// More alternatives than this are refused: each one costs a pass over a heap
// per vocabulary entry, and OpenAI caps top_logprobs at 20 too.
constexpr int kMaxTopLogprobs = 20;

struct TokenLogprobs {
  float chosen = 0.0f;             // logprob of the chosen token
  std::vector<TokenLogprob> top;   // the top_n most likely tokens, best first (ties: lower id first)
};

// `top_n` is clamped to [0, kMaxTopLogprobs] and to the vocabulary size.
// NaN logits are never among the top; the chosen id must be inside `logits`.
TokenLogprobs ComputeLogprobs(std::span<const float> logits, int32_t chosen, int top_n);

}  // namespace gemmarun
