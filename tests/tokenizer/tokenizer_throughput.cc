// Measures tokenizer load time and encode throughput on a text file; the HF
// side of the comparison is tools/tokenizer/bench_encode.py.
//
//   tokenizer_throughput TOKENIZER TEXT_FILE [REPEATS]
//
// TOKENIZER is a model folder, tokenizer.json or tokenizer.model. The text is
// encoded line by line in chunks of ~64 KB (as a server would see prompts),
// best of REPEATS runs, in CPU time.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace {

// CPU time of this (single-threaded) process: on a shared machine it is
// steadier than wall time, which also counts time spent descheduled.
double CpuSeconds() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s TOKENIZER TEXT_FILE [REPEATS]\n", argv[0]);
    return 2;
  }
  const int repeats = argc > 3 ? std::max(1, std::atoi(argv[3])) : 3;
  std::ifstream in(argv[2], std::ios::binary);
  if (!in) {
    std::fprintf(stderr, "error: cannot read %s\n", argv[2]);
    return 1;
  }
  std::stringstream buffer;
  buffer << in.rdbuf();
  const std::string text = buffer.str();

  // Chunks end at a newline so no character is split.
  std::vector<std::string_view> chunks;
  for (size_t start = 0; start < text.size();) {
    size_t end = std::min(text.size(), start + (64 << 10));
    if (end < text.size()) {
      const size_t newline = text.find('\n', end);
      end = newline == std::string::npos ? text.size() : newline + 1;
    }
    chunks.push_back(std::string_view(text).substr(start, end - start));
    start = end;
  }

  const double load_start = CpuSeconds();
  auto tokenizer = gemmarun::Tokenizer::LoadForModel(argv[1]);
  const double load_seconds = CpuSeconds() - load_start;
  if (!tokenizer.ok()) {
    std::fprintf(stderr, "error: %s\n", tokenizer.status().message().c_str());
    return 1;
  }

  double best = 1e30;
  size_t tokens = 0;
  for (int r = 0; r < repeats; ++r) {
    const double start = CpuSeconds();
    tokens = 0;
    for (const std::string_view chunk : chunks) {
      auto ids = (*tokenizer)->Encode(chunk, /*add_bos=*/false);
      if (!ids.ok()) {
        std::fprintf(stderr, "error: %s\n", ids.status().message().c_str());
        return 1;
      }
      tokens += ids->size();
    }
    best = std::min(best, CpuSeconds() - start);
  }
  const double mb = static_cast<double>(text.size()) / 1e6;
  std::printf(
      "load %.3f s, %zu bytes -> %zu tokens, encode %.3f s = %.2f MB/s "
      "(CPU time)\n",
              load_seconds, text.size(), tokens, best, mb / best);
  return 0;
}
