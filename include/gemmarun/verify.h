// Golden check of a model against a reference fixture folder (config.json,
// model.safetensors, reference.safetensors, reference.json; image.png for
// PaliGemma): whole-prompt prefill logits, the same prompt fed one token at a time
// through the cache, and greedy decoding.
#pragma once

#include <string>
#include <vector>

#include "gemmarun/status.h"

namespace gemmarun {

struct VerifyOptions {
  double tolerance = 1e-3;  // max |diff| allowed is tolerance * max(1, max |reference logit|)
  int num_threads = 0;
  // EngineOptions::matmul_precision, but "" here means "f32": verify checks
  // against float64 references, so it is exact unless asked otherwise ("bf16"
  // needs a looser tolerance, ~1e-2).
  std::string matmul_precision;
  std::string device;  // EngineOptions::device: "cpu" (default), "cuda", "cuda:N"
};

struct PromptCheck {
  int index = 0;
  int length = 0;
  double max_abs_logit = 0.0;
  double allowed = 0.0;            // the max |diff| this prompt may show
  double prefill_max_diff = 0.0;   // (a) whole prompt in one pass
  double stepwise_max_diff = -1.0; // (b) one token at a time; -1 when not applicable (PaliGemma)
  bool greedy_match = false;       // (c)
  std::vector<int> greedy_expected;
  std::vector<int> greedy_actual;
  bool passed = false;
};

struct VerifyReport {
  std::string fixture;
  std::string family;
  std::string backend;  // ModelInfo::backend: where it ran
  std::vector<PromptCheck> prompts;
  bool passed = false;
};

Result<VerifyReport> VerifyFixture(const std::string& dir, const VerifyOptions& options = {});
std::string VerifyReportToJson(const VerifyReport& report);

}  // namespace gemmarun
