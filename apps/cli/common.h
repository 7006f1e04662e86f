// Helpers every subcommand shares: error printing, progress bars, model loading.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "gemmarun/engine.h"

namespace gemmarun::cli {

// Prints "error: <message>" on one line to stderr and returns exit code 1.
int Fail(const Status& status);
int Fail(const std::string& message);

bool StderrIsTerminal();
bool StdinIsTerminal();

// Flag validators whose messages fit on the one "error:" line CLI11 errors are
// printed as ("--temp: expected a number from 0 to 100, got 'inf'"). They run on
// the text before CLI11 converts it, so an out-of-range 99999999999 is caught
// here rather than overflowing an int.
CLI::Validator IntIn(int64_t min, int64_t max);
CLI::Validator RealIn(double min, double max, bool min_excluded = false);
CLI::Validator OneOf(std::vector<std::string> values);

// A text file's contents; a folder, a FIFO or a device is refused (a FIFO
// would block, a folder would read as empty). `flag` names the flag in errors.
Result<std::string> ReadTextFile(const std::string& path, std::string_view flag);
// All of stdin, byte for byte.
Result<std::string> ReadAllStdin();
// llama.cpp's -e/--escape: \n, \t, \r, \\, \", \' become the characters;
// any other backslash sequence is kept as written.
std::string ProcessEscapes(std::string_view text);

// -t above the CPUs of this machine only slows every pass down (threads wait
// on each other): it is capped, with a warning on stderr. 0 stays 0 (default).
int CapThreads(int requested);

// -ngl/--n-gpu-layers, llama.cpp's flag: 0 is always accepted; more needs a GPU
// backend and puts every layer on the GPU (returns the device to use: `device`,
// or "cuda" when -ngl > 0 and --device was left at cpu).
Result<std::string> DeviceForGpuLayers(int gpu_layers, const std::string& device);

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
// `device` is --device (cpu, cuda, cuda:N); -ngl > 0 with the default cpu means cuda.
Result<std::unique_ptr<Engine>> LoadEngine(const std::string& path, int threads, int64_t context,
                                           const std::string& weight_dtype = "",
                                           const std::string& matmul_precision = "", int gpu_layers = 0,
                                           const std::string& cache_type = "", const std::string& device = "cpu");

// The figures every generating command reports with --json: token counts,
// prefill/decode seconds and tokens/s, and the stop reason.
nlohmann::json GenerationJson(const GenerateResult& result, int64_t prompt_tokens, double prefill_seconds);

// Adds --temp, --top-k, --top-p, --min-p, --repeat-penalty, --repeat-last-n
// (--seed is GenerationFlags').
void AddSamplingFlags(CLI::App* app, SamplingOptions* sampling);

// The flags of every generating command (generate, chat, complete): -n, the
// sampling flags, --seed, --stop, --ignore-eos, --logprobs, --verbose.
struct GenerationFlags {
  int64_t max_tokens = 128;  // -1: until EOS or the context is full
  SamplingOptions sampling;
  int64_t seed = -1;         // -1: a random seed, reported by --json and --verbose
  std::vector<std::string> stop;
  bool ignore_eos = false;
  int logprobs = -1;         // -1: none
  bool verbose = false;
  void Add(CLI::App* app, int64_t default_max_tokens, const char* max_tokens_help);
  // Checks what CLI11 cannot (empty --stop, --logprobs without --json) and
  // chooses the seed once: every call after the first returns the same one.
  Status Check(bool json);
  GenerateOptions Options() const;  // after Check
  uint64_t seed_used() const { return seed_used_; }

 private:
  uint64_t seed_used_ = 0;
  bool checked_ = false;
};

// Per-token logprobs for --json (GenerateResult::details), with each token's text.
nlohmann::json LogprobsJson(const Engine& engine, const GenerateResult& result);

// Adds --matmul-precision bf16|f32 (EngineOptions::matmul_precision). Checked
// by LoadEngine rather than by CLI11, so a bad value is one "error:" line.
CLI::Option* AddMatMulPrecisionFlag(CLI::App* app, std::string* matmul_precision);

// "bf16" or "f32": what --json reports for --matmul-precision (empty = bf16).
std::string MatMulPrecisionName(const std::string& matmul_precision);

// Adds -m/--model, -t/--threads, -c/--ctx-size, --dtype, --matmul-precision, -ngl/--n-gpu-layers,
// --cache-type, --device.
struct ModelFlags {
  std::string model;
  int threads = 0;
  int64_t context = 0;
  std::string dtype;             // --dtype: convert matrices at load
  std::string matmul_precision;  // --matmul-precision: bf16 (default) or f32 (exact)
  std::string cache_type;        // --cache-type: f16 (default), f32, bf16, q8_0
  int gpu_layers = 0;            // -ngl: llama.cpp's flag; > 0 needs a GPU backend
  std::string device = "cpu";    // --device: cpu, cuda, cuda:N
  Result<std::unique_ptr<Engine>> Load() const;
  void Add(CLI::App* app, bool model_required = true);
};

// -t/--threads and -ngl/--n-gpu-layers alone, for commands with their own -c.
void AddThreadsFlag(CLI::App* app, int* threads);
void AddGpuLayersFlag(CLI::App* app, int* gpu_layers);
// --device cpu|cuda|cuda:N (EngineOptions::device); checked when the engine loads,
// so a device this build or machine lacks is one "error:" line.
void AddDeviceFlag(CLI::App* app, std::string* device);

// The limits of the flags shared by several commands.
constexpr int64_t kMaxThreadsFlag = 4096;
constexpr int64_t kMaxContextFlag = int64_t{1} << 24;
constexpr int64_t kMaxTokensFlag = int64_t{1} << 24;

}  // namespace gemmarun::cli
