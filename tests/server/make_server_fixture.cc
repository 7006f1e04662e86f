// Writes a random-weight checkpoint for the server tests: the config given (the
// real Gemma vocabulary, so a real tokenizer fits) with bf16 weights. The test
// script copies a tokenizer next to it.
#include <cstdio>
#include <fstream>
#include <sstream>

#include "testing/random_model.h"

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: make_server_fixture CONFIG_JSON OUT_DIR\n");
    return 1;
  }
  std::ifstream in(argv[1]);
  std::stringstream config;
  config << in.rdbuf();
  if (!in) {
    std::fprintf(stderr, "error: cannot read %s\n", argv[1]);
    return 1;
  }
  const gemmarun::Status status = gemmarun::testing::WriteRandomModel(config.str(), argv[2]);
  if (!status.ok()) {
    std::fprintf(stderr, "error: %s\n", status.message().c_str());
    return 1;
  }
  return 0;
}
