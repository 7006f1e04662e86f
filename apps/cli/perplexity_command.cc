// `gemmarun perplexity`: how well a model predicts a text, to check that a
// quantization or a kernel change does not hurt quality. The text is split into
// windows of -c tokens (each starting with BOS); every token after the first of
// a window is scored, as llama.cpp's perplexity tool does with its first half
// included. --ids feeds token ids instead of text, so that another engine can be
// given exactly the same input (tools/compare_llamacpp.py).
#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "common.h"

namespace gemmarun::cli {
namespace {

struct PerplexityFlags {
  ModelFlags model;
  std::string file;
  std::string ids_file;
  int64_t window = 512;
  int64_t max_windows = 0;
  std::string save_logits;
  std::string save_ids;
  bool json = false;
};

// Token ids separated by whitespace and/or commas, e.g. "651 6037,563\n".
Result<std::vector<int32_t>> ParseIds(const std::string& path, const std::string& text, int vocab_size) {
  std::vector<int32_t> ids;
  size_t i = 0;
  while (i < text.size()) {
    const unsigned char c = text[i];
    if (c == ',' || std::isspace(c)) {
      ++i;
      continue;
    }
    size_t end = i;
    while (end < text.size() && text[end] != ',' && !std::isspace(static_cast<unsigned char>(text[end]))) ++end;
    const std::string item = text.substr(i, end - i);
    size_t used = 0;
    long long value = -1;
    try {
      value = std::stoll(item, &used);
    } catch (...) {
      used = 0;
    }
    if (used != item.size() || value < 0 || (vocab_size > 0 && value >= vocab_size)) {
      return InvalidArgument(path + ": '" + item + "' is not a token id of this model (0.." +
                             std::to_string(vocab_size - 1) + ")");
    }
    ids.push_back(static_cast<int32_t>(value));
    i = end;
  }
  return ids;
}

int Run(const PerplexityFlags& flags) {
  if (flags.file.empty() == flags.ids_file.empty()) return Fail("give exactly one of -f/--file and --ids");
  if (auto device = DeviceForGpuLayers(flags.model.gpu_layers, flags.model.device); !device.ok()) {
    return Fail(device.status());
  }
  const std::string& source = flags.ids_file.empty() ? flags.file : flags.ids_file;
  auto input = ReadTextFile(source, flags.ids_file.empty() ? "-f/--file" : "--ids");
  if (!input.ok()) return Fail(input.status());
  if (flags.window < 2) return Fail("-c/--ctx-size must be at least 2 for perplexity");
  auto engine = LoadEngine(flags.model.model, flags.model.threads, flags.window, /*weight_dtype=*/"",
                           flags.model.matmul_precision, flags.model.gpu_layers, flags.model.cache_type,
                           flags.model.device);
  if (!engine.ok()) return Fail(engine.status());
  auto ids = flags.ids_file.empty() ? (*engine)->Tokenize(*input, /*add_bos=*/false)
                                    : ParseIds(source, *input, (*engine)->info().vocab_size);
  if (!ids.ok()) return Fail(ids.status());
  if (!flags.save_ids.empty()) {
    std::ofstream ids_out(flags.save_ids);
    for (size_t i = 0; i < ids->size(); ++i) ids_out << (*ids)[i] << (i + 1 < ids->size() ? ' ' : '\n');
    if (!ids_out) return Fail(flags.save_ids + ": cannot write");
  }
  const int64_t per_window = flags.window - 1;  // BOS + per_window text tokens
  int64_t windows = static_cast<int64_t>(ids->size()) / per_window;
  if (flags.max_windows > 0) windows = std::min(windows, flags.max_windows);
  if (windows == 0) {
    return Fail(source + ": " + std::to_string(ids->size()) + " tokens, fewer than the " +
                std::to_string(per_window) + " a window of " + std::to_string(flags.window) + " needs after BOS");
  }
  const int32_t bos = (*engine)->SpecialTokenId("<bos>").ok() ? *(*engine)->SpecialTokenId("<bos>") : 2;
  std::ofstream logits_out;
  if (!flags.save_logits.empty()) {
    logits_out.open(flags.save_logits, std::ios::binary);
    if (!logits_out) return Fail(flags.save_logits + ": cannot write");
  }
  ProgressBar bar("perplexity");
  double total_nll = 0.0;
  int64_t scored = 0;
  const auto start = std::chrono::steady_clock::now();
  for (int64_t w = 0; w < windows; ++w) {
    std::vector<int32_t> tokens = {bos};
    tokens.insert(tokens.end(), ids->begin() + w * per_window, ids->begin() + (w + 1) * per_window);
    auto session = (*engine)->NewSession(flags.window);
    if (!session.ok()) return Fail(session.status());
    PrefillOptions options;
    options.all_logits = true;
    auto logits = (*session)->Prefill(tokens, options);
    if (!logits.ok()) return Fail(logits.status());
    if (logits_out) {
      logits_out.write(reinterpret_cast<const char*>(logits->values.data()), logits->values.size() * sizeof(float));
    }
    for (size_t t = 1; t < tokens.size(); ++t) {
      const auto row = logits->row(t - 1);
      double max_logit = row[0];
      for (float v : row) max_logit = std::max(max_logit, static_cast<double>(v));
      double sum = 0.0;
      for (float v : row) sum += std::exp(v - max_logit);
      total_nll += (max_logit + std::log(sum)) - row[tokens[t]];
      ++scored;
    }
    bar.Update(w + 1, windows);
  }
  bar.Finish();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const double ppl = std::exp(total_nll / scored);
  if (flags.json) {
    nlohmann::json out;
    out["perplexity"] = ppl;
    out["mean_nll"] = total_nll / scored;
    out["scored_tokens"] = scored;
    out["windows"] = windows;
    out["window_tokens"] = flags.window;
    out["tokens_per_second"] = windows * flags.window / seconds;
    std::printf("%s\n", out.dump(2).c_str());
  } else {
    std::printf("perplexity %.4f over %lld tokens (%lld window%s of %lld; %.1f tokens/s)\n", ppl,
                static_cast<long long>(scored), static_cast<long long>(windows), windows == 1 ? "" : "s",
                static_cast<long long>(flags.window), windows * flags.window / seconds);
  }
  return 0;
}

}  // namespace

void AddPerplexityCommand(CLI::App& root, int* exit_code) {
  auto flags = std::make_shared<PerplexityFlags>();
  CLI::App* app = root.add_subcommand("perplexity", "Measure a model's perplexity on a text file");
  app->add_option("-m,--model", flags->model.model, "HF checkpoint folder or GGUF file")->required();
  AddThreadsFlag(app, &flags->model.threads);
  AddMatMulPrecisionFlag(app, &flags->model.matmul_precision);
  AddGpuLayersFlag(app, &flags->model.gpu_layers);
  AddDeviceFlag(app, &flags->model.device);
  app->add_option("--cache-type", flags->model.cache_type, "KV cache entries: f16 (default), f32, bf16, q8_0")
      ->check(CLI::IsMember({"f32", "f16", "bf16", "q8_0"}));
  app->add_option("-f,--file", flags->file, "text file");
  app->add_option("--ids", flags->ids_file,
                  "file of the text's token ids (whitespace or comma separated, no BOS) to use instead of -f");
  app->add_option("-c,--ctx-size", flags->window, "tokens per window, BOS included")
      ->check(IntIn(2, kMaxContextFlag))->capture_default_str();
  app->add_option("--max-windows", flags->max_windows, "score at most this many windows (0 = all)")
      ->check(IntIn(0, int64_t{1} << 31));
  app->add_option("--save-logits", flags->save_logits,
                  "write every window's logits as raw float32 [tokens, vocab] to this file");
  app->add_option("--save-ids", flags->save_ids, "write the text's token ids (no BOS), space separated, to this file");
  app->add_flag("--json", flags->json, "print a JSON object");
  app->footer(
      "Each window is BOS + (-c - 1) tokens of the text.\n"
      "Examples:\n"
      "  gemmarun perplexity -m model.gguf -f wiki.txt -c 512 --max-windows 8\n"
      "  gemmarun perplexity -m model.gguf --ids text_ids.txt -c 512 --max-windows 1 --save-logits logits.f32");
  app->callback([flags, exit_code] { *exit_code = Run(*flags); });
}

}  // namespace gemmarun::cli
