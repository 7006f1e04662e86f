// The loaders under test read paths (they mmap files), so each input is written
// to one scratch file per process, under TMPDIR, with the suffix the loader
// expects; tmpfs keeps that at a few microseconds per input.
#pragma once

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace gemmarun::fuzz {

inline std::string WriteInput(const uint8_t* data, size_t size, const char* suffix) {
  const char* dir = std::getenv("TMPDIR");
  const std::string path = std::string(dir != nullptr ? dir : "/tmp") + "/gemmarun_fuzz_" +
                           std::to_string(::getpid()) + suffix;
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) std::abort();
  if (size > 0 && std::fwrite(data, 1, size, f) != size) std::abort();
  std::fclose(f);
  return path;
}

}  // namespace gemmarun::fuzz
