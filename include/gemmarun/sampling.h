// How the next token is chosen from the logits. Defaults are greedy decoding.
#pragma once

#include <cstdint>

namespace gemmarun {

struct SamplingOptions {
  float temperature = 0.0f;     // <= 0: greedy (argmax)
  int top_k = 0;                // keep the k most likely tokens; 0 = all
  float top_p = 1.0f;           // keep the smallest set with this much probability mass
  float min_p = 0.0f;           // drop tokens below min_p * p(most likely)
  float repeat_penalty = 1.0f;  // llama.cpp-style: divide positive / multiply negative logits
  int repeat_last_n = 64;       // tokens the penalty looks back over
  // OpenAI/vLLM-style, in [-2, 2], after the repeat penalty: logit[id] -= presence_penalty *
  // (count > 0) + frequency_penalty * count, with count = how often id was generated so far in
  // this request (the prompt does not count). Negative values encourage repeats.
  float presence_penalty = 0.0f;
  float frequency_penalty = 0.0f;
  uint64_t seed = 0;            // same seed, same prompt, same options: same text
};

}  // namespace gemmarun
