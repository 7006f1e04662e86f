// What a loaded engine shares with the sessions and schedulers it creates.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "gemmarun/scheduler.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"

namespace gemmarun {

struct EngineCore {
  const Model* model = nullptr;
  Backend* backend = nullptr;            // the model's: KV pools and workspaces live on its device
  const Tokenizer* tokenizer = nullptr;  // null for a model folder without one
  std::vector<int32_t> stop_ids;         // EOS and end-of-turn
  DType cache_type = DType::kF16;
  int64_t default_context = 0;
};

// Positions per KV block: prefix reuse works in whole blocks, attention reads
// them as contiguous runs.
inline constexpr int64_t kKvBlockSize = 16;

Result<std::unique_ptr<Scheduler>> CreateScheduler(const EngineCore& core, const SchedulerOptions& options);

// Whether sequences of this model may share cached prompt blocks: RecurrentGemma's
// state at a position cannot be recovered from blocks.
bool SupportsPrefixCache(const ModelConfig& config);

// The PaliGemma image + prompt prefix (bidirectional) of a prompt: all of it.
int64_t BidirectionalPrefix(const ModelConfig& config, int64_t prompt_tokens);

}  // namespace gemmarun
