// The CPU implementation of Backend: Highway kernels (kernels.cc) spread over a
// persistent thread pool.
#pragma once

#include <memory>

#include "ops/backend.h"

namespace gemmarun {

// num_threads <= 0 picks the number of physical cores. Applies
// GEMMARUN_CPU_TARGET (cpu_target.h) if it names a target this CPU runs.
std::unique_ptr<Backend> CreateCpuBackend(int num_threads, MatMulPrecision precision = MatMulPrecision::kF32);

}  // namespace gemmarun
