#include "common.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <random>
#include <sstream>
#include <thread>

#include "gemmarun/version.h"

namespace gemmarun::cli {

int Fail(const Status& status) { return Fail(status.message()); }

int Fail(const std::string& message) {
  std::fprintf(stderr, "error: %s\n", message.c_str());
  return 1;
}

bool StderrIsTerminal() { return isatty(STDERR_FILENO) == 1; }
bool StdinIsTerminal() { return isatty(STDIN_FILENO) == 1; }

namespace {

std::string FormatNumber(double value) {
  char text[32];
  std::snprintf(text, sizeof(text), "%g", value);
  return text;
}

}  // namespace

CLI::Validator IntIn(int64_t min, int64_t max) {
  const std::string range = std::to_string(min) + " to " + std::to_string(max);
  return CLI::Validator(
      [min, max, range](std::string& text) -> std::string {
        int64_t value = 0;
        const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
        const bool is_integer = !text.empty() && end == text.data() + text.size();
        if (is_integer && error == std::errc() && value >= min && value <= max) return "";
        return "expected an integer from " + range + ", got '" + text + "'";
      },
      range, "IntIn");
}

CLI::Validator RealIn(double min, double max, bool min_excluded) {
  const std::string range = (min_excluded ? "above " + FormatNumber(min) + " and at most "
                                          : "from " + FormatNumber(min) + " to ") +
                            FormatNumber(max);
  return CLI::Validator(
      [=](std::string& text) -> std::string {
        char* end = nullptr;
        const double value = text.empty() ? 0.0 : std::strtod(text.c_str(), &end);
        const bool is_number = !text.empty() && end == text.c_str() + text.size() && std::isfinite(value);
        if (is_number && (min_excluded ? value > min : value >= min) && value <= max) return "";
        return "expected a number " + range + ", got '" + text + "'";
      },
      range, "RealIn");
}

CLI::Validator OneOf(std::vector<std::string> values) {
  std::string list;
  for (const std::string& v : values) list += (list.empty() ? "" : ", ") + v;
  return CLI::Validator(
      [values, list](std::string& text) -> std::string {
        if (std::find(values.begin(), values.end(), text) != values.end()) return "";
        return "expected one of " + list + ", got '" + text + "'";
      },
      "", "OneOf");
}

Result<std::string> ReadTextFile(const std::string& path, std::string_view flag) {
  const std::string where = std::string(flag) + " " + path;
  struct stat info;
  if (::stat(path.c_str(), &info) != 0) return NotFound(where + ": no such file");
  if (S_ISDIR(info.st_mode)) return InvalidArgument(where + ": is a folder, expected a text file");
  if (!S_ISREG(info.st_mode)) {
    return InvalidArgument(where + ": not a regular file (a FIFO, socket or device), expected a text file");
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) return NotFound(where + ": cannot open");
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) return InvalidArgument(where + ": cannot read");
  return text.str();
}

Result<std::string> ReadAllStdin() {
  std::string data;
  char buffer[1 << 16];
  size_t n;
  while ((n = std::fread(buffer, 1, sizeof(buffer), stdin)) > 0) data.append(buffer, n);
  if (std::ferror(stdin)) return InvalidArgument("cannot read stdin");
  return data;
}

std::string ProcessEscapes(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '\\' || i + 1 == text.size()) {
      out.push_back(text[i]);
      continue;
    }
    switch (text[i + 1]) {
      case 'n': out.push_back('\n'); break;
      case 't': out.push_back('\t'); break;
      case 'r': out.push_back('\r'); break;
      case '\\': out.push_back('\\'); break;
      case '"': out.push_back('"'); break;
      case '\'': out.push_back('\''); break;
      default:
        out.push_back('\\');
        out.push_back(text[i + 1]);
    }
    ++i;
  }
  return out;
}

int CapThreads(int requested) {
  const int cpus = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  if (requested <= cpus) return requested;
  static bool warned = false;
  if (!warned) {
    std::fprintf(stderr, "warning: -t %d is more than the %d CPUs of this machine; using %d threads\n", requested,
                 cpus, cpus);
    warned = true;
  }
  return cpus;
}

Result<std::string> DeviceForGpuLayers(int gpu_layers, const std::string& device) {
  if (gpu_layers == 0) return device;
  const BuildInfo build = GetBuildInfo();
  std::string backends;
  for (const std::string& b : build.backends) backends += (backends.empty() ? "" : ", ") + b;
  const std::string flag = "-ngl/--n-gpu-layers " + std::to_string(gpu_layers);
  if (std::find(build.backends.begin(), build.backends.end(), "cuda") == build.backends.end()) {
    return InvalidArgument(flag + ": this gemmarun was built without a GPU backend (compiled backends: " + backends +
                           "), so every layer runs on the CPU; leave the flag out or give 0");
  }
  // All or nothing: any N > 0 puts every layer on the GPU.
  return device == "cpu" || device.empty() ? std::string("cuda") : device;
}

ProgressBar::ProgressBar(std::string label) : label_(std::move(label)), active_(StderrIsTerminal()) {}

ProgressBar::~ProgressBar() { Finish(); }

void ProgressBar::Update(size_t done, size_t total) {
  if (!active_ || total == 0) return;
  const int percent = static_cast<int>(done * 100 / total);
  if (percent == last_percent_) return;
  last_percent_ = percent;
  constexpr int kWidth = 30;
  const int filled = percent * kWidth / 100;
  std::fprintf(stderr, "\r%s [%.*s%*s] %3d%%", label_.c_str(), filled, "==============================",
               kWidth - filled, "", percent);
  std::fflush(stderr);
}

void ProgressBar::Finish() {
  if (active_ && last_percent_ >= 0) {
    std::fprintf(stderr, "\r\033[K");
    std::fflush(stderr);
  }
  active_ = false;
}

Result<std::unique_ptr<Engine>> LoadEngine(const std::string& path, int threads, int64_t context,
                                           const std::string& weight_dtype, const std::string& matmul_precision,
                                           int gpu_layers, const std::string& cache_type,
                                           const std::string& device) {
  if (!matmul_precision.empty() && matmul_precision != "f32" && matmul_precision != "bf16") {
    return InvalidArgument("--matmul-precision '" + matmul_precision + "' is not one of f32, bf16");
  }
  GR_ASSIGN_OR_RETURN(const std::string chosen_device, DeviceForGpuLayers(gpu_layers, device));
  threads = CapThreads(threads);
  ProgressBar bar("loading " + path);
  EngineOptions options;
  options.num_threads = threads;
  options.context_length = context;
  options.weight_dtype = weight_dtype;
  options.matmul_precision = matmul_precision;
  options.cache_type = cache_type;
  options.device = chosen_device;
  options.progress = [&](const char*, size_t done, size_t total) { bar.Update(done, total); };
  auto engine = Engine::Load(path, options);
  bar.Finish();
  return engine;
}

nlohmann::json GenerationJson(const GenerateResult& result, int64_t prompt_tokens, double prefill_seconds) {
  nlohmann::json out;
  out["prompt_tokens"] = prompt_tokens;
  out["generated_tokens"] = result.tokens.size();
  out["prefill_seconds"] = prefill_seconds;
  out["decode_seconds"] = result.decode_seconds;
  out["prefill_tokens_per_second"] = prefill_seconds > 0 ? prompt_tokens / prefill_seconds : 0.0;
  out["decode_tokens_per_second"] = result.decode_seconds > 0 ? result.tokens.size() / result.decode_seconds : 0.0;
  out["stop_reason"] = StopReasonName(result.stop_reason);
  return out;
}

void AddSamplingFlags(CLI::App* app, SamplingOptions* sampling) {
  app->add_option("--temp", sampling->temperature, "temperature; 0 = greedy")
      ->check(RealIn(0, 100))->capture_default_str();
  app->add_option("--top-k", sampling->top_k, "keep the k most likely tokens (0 = all)")
      ->check(IntIn(0, 1 << 20));
  app->add_option("--top-p", sampling->top_p, "nucleus sampling mass in (0, 1]")
      ->check(RealIn(0, 1, /*min_excluded=*/true))->capture_default_str();
  app->add_option("--min-p", sampling->min_p, "drop tokens below min-p x p(top), in [0, 1]")
      ->check(RealIn(0, 1));
  app->add_option("--repeat-penalty", sampling->repeat_penalty, "penalty for recent tokens (1 = off)")
      ->check(RealIn(0, 100, /*min_excluded=*/true));
  app->add_option("--repeat-last-n", sampling->repeat_last_n, "tokens the penalty looks back over")
      ->check(IntIn(0, kMaxContextFlag));
  app->add_option("--presence-penalty", sampling->presence_penalty,
                  "subtract this from the logit of every token generated so far, in [-2, 2]")
      ->check(RealIn(-2, 2));
  app->add_option("--frequency-penalty", sampling->frequency_penalty,
                  "subtract this times its count from the logit of every token generated so far, in [-2, 2]")
      ->check(RealIn(-2, 2));
}

void GenerationFlags::Add(CLI::App* app, int64_t default_max_tokens, const char* max_tokens_help) {
  max_tokens = default_max_tokens;
  app->add_option("-n,--n-predict", max_tokens, std::string(max_tokens_help) + "; -1: until EOS or a full context")
      ->check(IntIn(-1, kMaxTokensFlag))->capture_default_str();
  AddSamplingFlags(app, &sampling);
  app->add_option("--seed", seed, "random seed (same seed, same text); -1 (default): a new one each run, which "
                                  "--json and --verbose report")
      ->check(IntIn(-1, std::numeric_limits<int64_t>::max()));
  app->add_option("--stop", stop, "stop when the text contains this string (not printed; \\n, \\t, \\\\ are escapes); repeatable")
      ->allow_extra_args(false);
  app->add_flag("--ignore-eos", ignore_eos, "keep generating past the end-of-sequence / end-of-turn tokens");
  app->add_option("--logprobs", logprobs, "with --json: each token's log-probability and its N most likely "
                                          "alternatives")
      ->check(IntIn(0, 20));
  app->add_flag("-v,--verbose", verbose, "print the seed and the backend on stderr");
}

Status GenerationFlags::Check(bool json) {
  if (!checked_) {
    for (std::string& s : stop) s = ProcessEscapes(s);  // --stop '\n\n': typing a real newline is awkward
  }
  for (const std::string& s : stop) {
    if (s.empty()) return InvalidArgument("--stop: an empty string would stop before any text");
  }
  if (logprobs >= 0 && !json) return InvalidArgument("--logprobs needs --json (the log-probabilities are part of it)");
  if (!checked_) {
    if (seed >= 0) {
      seed_used_ = static_cast<uint64_t>(seed);
    } else {
      // Within int64 so that the reported seed can be given back as --seed.
      std::random_device device;
      seed_used_ = ((uint64_t{device()} << 32) | device()) & static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
    }
    checked_ = true;
  }
  return Status::Ok();
}

GenerateOptions GenerationFlags::Options() const {
  GenerateOptions options;
  options.max_new_tokens = static_cast<int>(max_tokens);
  options.sampling = sampling;
  options.sampling.seed = seed_used_;
  options.stop_at_eos = !ignore_eos;
  options.stop_strings = stop;
  options.logprobs = logprobs;
  return options;
}

nlohmann::json LogprobsJson(const Engine& engine, const GenerateResult& result) {
  // A token's own text, leading space included: the decoder may drop the space
  // of a first token, so decode it after a reference token and cut that off.
  int32_t reference = -1;
  std::string reference_text;
  if (auto ids = engine.Tokenize("a", false); ids.ok() && ids->size() == 1) {
    if (auto text = engine.Detokenize(*ids); text.ok()) {
      reference = (*ids)[0];
      reference_text = *text;
    }
  }
  auto token_text = [&](int32_t id) -> std::string {
    if (!engine.has_tokenizer()) return "";
    if (reference >= 0) {
      const int32_t pair[2] = {reference, id};
      auto text = engine.Detokenize(pair);
      if (text.ok() && text->rfind(reference_text, 0) == 0) return text->substr(reference_text.size());
    }
    auto text = engine.Detokenize(std::span<const int32_t>(&id, 1));
    return text.ok() ? *text : "";
  };
  nlohmann::json out = nlohmann::json::array();
  for (const GeneratedToken& t : result.details) {
    nlohmann::json top = nlohmann::json::array();
    for (const TokenLogprob& alt : t.top) {
      top.push_back({{"id", alt.id}, {"token", token_text(alt.id)}, {"logprob", alt.logprob}});
    }
    out.push_back({{"id", t.id}, {"token", token_text(t.id)}, {"logprob", t.logprob}, {"top", top}});
  }
  return out;
}

CLI::Option* AddMatMulPrecisionFlag(CLI::App* app, std::string* matmul_precision) {
  return app->add_option("--matmul-precision", *matmul_precision,
                  "bf16 or f32: products of bf16-weight matrices. bf16 (default) rounds the activations to "
                  "bf16 first, as llama.cpp and bf16 PyTorch do: about 1.5-2x faster prefill on CPUs with "
                  "AVX512_BF16, logits ~1e-3 (relative) off exact. f32 is exact: the stored weights times f32 "
                  "activations. No effect on other weight types")
      ->type_name("bf16|f32");
}

std::string MatMulPrecisionName(const std::string& matmul_precision) {
  return matmul_precision.empty() ? "bf16" : matmul_precision;
}

void AddThreadsFlag(CLI::App* app, int* threads) {
  app->add_option("-t,--threads", *threads, "threads (default: physical cores; capped at the CPU count)")
      ->check(IntIn(0, kMaxThreadsFlag));
}

void AddGpuLayersFlag(CLI::App* app, int* gpu_layers) {
  // "-ngl" (llama.cpp's spelling) is rewritten to --n-gpu-layers in main.cc:
  // CLI11 reads a one-dash word as bundled one-letter flags.
  app->add_option("--n-gpu-layers", *gpu_layers,
                  "llama.cpp's -ngl: layers on the GPU. 0 (default) runs on the CPU; any N > 0 puts every layer "
                  "on the GPU and needs a GPU backend")
      ->check(IntIn(0, 100000));
}

void AddDeviceFlag(CLI::App* app, std::string* device) {
  app->add_option("--device", *device,
                  "where the model runs: cpu (default), cuda (GPU 0) or cuda:N; a GPU holds the weights, KV cache "
                  "and activations")
      ->type_name("cpu|cuda[:N]");
}

void ModelFlags::Add(CLI::App* app, bool model_required) {
  auto* option = app->add_option("-m,--model", model, "HF checkpoint folder, GGUF file or safetensors file");
  if (model_required) option->required();
  AddThreadsFlag(app, &threads);
  app->add_option("-c,--ctx-size", context, "context length in tokens (default: min(model, 8192))")
      ->check(IntIn(0, kMaxContextFlag));
  app->add_option("--dtype", dtype, "convert weight matrices at load: f32, bf16, f16, q8_0, q4_0")
      ->check(OneOf({"f32", "bf16", "f16", "q8_0", "q4_0"}));
  AddMatMulPrecisionFlag(app, &matmul_precision);
  AddGpuLayersFlag(app, &gpu_layers);
  app->add_option("--cache-type", cache_type,
                  "KV cache entries: f16 (default; half the memory and attention reads of f32), f32, bf16, q8_0")
      ->check(CLI::IsMember({"f32", "f16", "bf16", "q8_0"}));
  AddDeviceFlag(app, &device);
}

Result<std::unique_ptr<Engine>> ModelFlags::Load() const {
  return LoadEngine(model, threads, context, dtype, matmul_precision, gpu_layers, cache_type, device);
}

}  // namespace gemmarun::cli
