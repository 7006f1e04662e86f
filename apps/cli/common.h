// Helpers every subcommand shares: error printing, progress bars, model loading.
#pragma once

#include <memory>
#include <string>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "gemmarun/engine.h"

namespace gemmarun::cli {

// Prints "error: <message>" on one line to stderr and returns exit code 1.
int Fail(const Status& status);
int Fail(const std::string& message);

bool StderrIsTerminal();

// A one-line progress bar on stderr, drawn only when stderr is a terminal.
class ProgressBar {
 public:
  explicit ProgressBar(std::string label);
  ~ProgressBar();
  void Update(size_t done, size_t total);
  void Finish();

 private:
  std::string label_;
  bool active_;
  int last_percent_ = -1;
};

// Loads a model with a progress bar; -t/--threads, -c/--ctx-size, --dtype and
// --matmul-precision apply. A --matmul-precision other than "", f32 or bf16 is
// an InvalidArgument naming the flag.
Result<std::unique_ptr<Engine>> LoadEngine(const std::string& path, int threads, int64_t context,
                                           const std::string& weight_dtype = "",
                                           const std::string& matmul_precision = "",
                                           const std::string& cache_type = "");

// The figures every generating command reports with --json: token counts,
// prefill/decode seconds and tokens/s, and the stop reason.
nlohmann::json GenerationJson(const GenerateResult& result, int64_t prompt_tokens, double prefill_seconds);

// Adds --temp, --top-k, --top-p, --min-p, --repeat-penalty, --repeat-last-n, --seed.
void AddSamplingFlags(CLI::App* app, SamplingOptions* sampling);

// Adds --matmul-precision bf16|f32 (EngineOptions::matmul_precision). Checked
// by LoadEngine rather than by CLI11, so a bad value is one "error:" line.
CLI::Option* AddMatMulPrecisionFlag(CLI::App* app, std::string* matmul_precision);

// "bf16" or "f32": what --json reports for --matmul-precision (empty = bf16).
std::string MatMulPrecisionName(const std::string& matmul_precision);

// Adds -m/--model, -t/--threads, -c/--ctx-size, --dtype, --matmul-precision.
struct ModelFlags {
  std::string model;
  int threads = 0;
  int64_t context = 0;
  std::string dtype;             // --dtype: convert matrices at load
  std::string matmul_precision;  // --matmul-precision: bf16 (default) or f32 (exact)
  std::string cache_type;        // --cache-type: f16 (default), f32, bf16, q8_0
  Result<std::unique_ptr<Engine>> Load() const;
  void Add(CLI::App* app, bool model_required = true);
};

}  // namespace gemmarun::cli
