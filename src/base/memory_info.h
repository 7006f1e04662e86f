// What the machine can still give this process, for refusing a load up front
// instead of being killed half-way through it.
#pragma once

#include <cstddef>
#include <string>

namespace gemmarun {

// MemAvailable of /proc/meminfo (free memory plus the reclaimable page cache), or
// 0 where unknown. GEMMARUN_MEM_AVAILABLE_MIB overrides it, so that tests can
// play a small machine.
size_t AvailableMemoryBytes();

// "1.23 GB", "456 MB": for messages that compare sizes.
std::string HumanBytes(double bytes);

}  // namespace gemmarun
