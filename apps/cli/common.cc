#include "common.h"

#include <unistd.h>

#include <cstdio>

namespace gemmarun::cli {

int Fail(const Status& status) { return Fail(status.message()); }

int Fail(const std::string& message) {
  std::fprintf(stderr, "error: %s\n", message.c_str());
  return 1;
}

bool StderrIsTerminal() { return isatty(STDERR_FILENO) == 1; }

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
                                           const std::string& cache_type) {
  if (!matmul_precision.empty() && matmul_precision != "f32" && matmul_precision != "bf16") {
    return InvalidArgument("--matmul-precision '" + matmul_precision + "' is not one of f32, bf16");
  }
  ProgressBar bar("loading " + path);
  EngineOptions options;
  options.num_threads = threads;
  options.context_length = context;
  options.weight_dtype = weight_dtype;
  options.matmul_precision = matmul_precision;
  options.cache_type = cache_type;
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
      ->check(CLI::NonNegativeNumber)->capture_default_str();
  app->add_option("--top-k", sampling->top_k, "keep the k most likely tokens (0 = all)")
      ->check(CLI::NonNegativeNumber);
  app->add_option("--top-p", sampling->top_p, "nucleus sampling mass in (0, 1]")
      ->check(CLI::Range(0.0, 1.0))->capture_default_str();
  app->add_option("--min-p", sampling->min_p, "drop tokens below min-p x p(top), in [0, 1]")
      ->check(CLI::Range(0.0, 1.0));
  app->add_option("--repeat-penalty", sampling->repeat_penalty, "penalty for recent tokens (1 = off)")
      ->check(CLI::PositiveNumber);
  app->add_option("--repeat-last-n", sampling->repeat_last_n, "tokens the penalty looks back over")
      ->check(CLI::NonNegativeNumber);
  app->add_option("--presence-penalty", sampling->presence_penalty,
                  "subtract this from the logit of every token generated so far, in [-2, 2]")
      ->check(CLI::Range(-2.0, 2.0));
  app->add_option("--frequency-penalty", sampling->frequency_penalty,
                  "subtract this times its count from the logit of every token generated so far, in [-2, 2]")
      ->check(CLI::Range(-2.0, 2.0));
  app->add_option("--seed", sampling->seed, "random seed (same seed, same text)");
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

void ModelFlags::Add(CLI::App* app, bool model_required) {
  auto* option = app->add_option("-m,--model", model, "HF checkpoint folder or .gguf file");
  if (model_required) option->required();
  app->add_option("-t,--threads", threads, "threads (default: physical cores)")->check(CLI::NonNegativeNumber);
  app->add_option("-c,--ctx-size", context, "context length in tokens (default: min(model, 8192))")
      ->check(CLI::NonNegativeNumber);
  app->add_option("--dtype", dtype, "convert weight matrices at load: f32, bf16, f16, q8_0, q4_0")
      ->check(CLI::IsMember({"f32", "bf16", "f16", "q8_0", "q4_0"}));
  AddMatMulPrecisionFlag(app, &matmul_precision);
  app->add_option("--cache-type", cache_type,
                  "KV cache entries: f16 (default; half the memory and attention reads of f32), f32, bf16, q8_0")
      ->check(CLI::IsMember({"f32", "f16", "bf16", "q8_0"}));
}

Result<std::unique_ptr<Engine>> ModelFlags::Load() const {
  return LoadEngine(model, threads, context, dtype, matmul_precision, cache_type);
}

}  // namespace gemmarun::cli
