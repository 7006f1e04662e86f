// temporary: replaced by the batch scheduler. A Scheduler that runs one request
// at a time through its own Session, so the server can be built and tested
// against the Scheduler contract before the batched one exists.
#pragma once

#include <functional>
#include <memory>

#include "gemmarun/engine.h"
#include "gemmarun/scheduler.h"
#include "gemmarun/tokenizer.h"

namespace gemmarun {

std::unique_ptr<Scheduler> NewSerialScheduler(Engine& engine, const Tokenizer* tokenizer,
                                              std::function<bool(int32_t)> is_stop, const SchedulerOptions& options);

}  // namespace gemmarun
