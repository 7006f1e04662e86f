#include "base/memory_info.h"

#include <cstdio>
#include <cstdlib>

namespace gemmarun {

size_t AvailableMemoryBytes() {
  if (const char* override_mib = std::getenv("GEMMARUN_MEM_AVAILABLE_MIB")) {
    return static_cast<size_t>(std::strtoull(override_mib, nullptr, 10)) << 20;
  }
  std::FILE* f = std::fopen("/proc/meminfo", "r");
  if (f == nullptr) return 0;
  char line[256];
  unsigned long long kib = 0;
  while (std::fgets(line, sizeof(line), f) != nullptr) {
    if (std::sscanf(line, "MemAvailable: %llu kB", &kib) == 1) break;
  }
  std::fclose(f);
  return static_cast<size_t>(kib) * 1024;
}

std::string HumanBytes(double bytes) {
  char text[32];
  if (bytes >= 1e9) std::snprintf(text, sizeof(text), "%.2f GB", bytes / 1e9);
  else std::snprintf(text, sizeof(text), "%.0f MB", bytes / 1e6);
  return text;
}

}  // namespace gemmarun
