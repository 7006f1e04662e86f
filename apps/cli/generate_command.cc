// `gemmarun generate`: stream a continuation of a prompt (text, token ids, or an
// image + text for PaliGemma).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "common.h"

namespace gemmarun::cli {
namespace {

struct GenerateFlags {
  ModelFlags model;
  GenerationFlags generation;
  std::string prompt;
  bool prompt_given = false;
  std::string prompt_file;
  bool escape = false;
  std::string ids;
  std::string image;
  bool json = false;
  bool no_bos = false;
};

// The prompt text from -p, -f or (neither given, stdin not a terminal) stdin.
Result<std::string> PromptText(const GenerateFlags& flags) {
  if (flags.prompt_given && !flags.prompt_file.empty()) return InvalidArgument("give one of -p/--prompt and -f/--file");
  std::string text;
  if (flags.prompt_given) {
    text = flags.prompt;
  } else if (!flags.prompt_file.empty()) {
    GR_ASSIGN_OR_RETURN(text, ReadTextFile(flags.prompt_file, "-f/--file"));
  } else if (!StdinIsTerminal()) {
    GR_ASSIGN_OR_RETURN(text, ReadAllStdin());
  } else {
    return InvalidArgument("no prompt: give -p TEXT, -f FILE, --ids, or pipe the prompt on stdin");
  }
  if (flags.escape) text = ProcessEscapes(text);
  if (text.empty()) return InvalidArgument("the prompt is empty");
  return text;
}

Result<std::vector<int32_t>> ParseIds(const std::string& text) {
  std::vector<int32_t> ids;
  std::string item;
  std::istringstream in(text);
  while (std::getline(in, item, ',')) {
    size_t used = 0;
    long value = -1;
    bool ok = !item.empty();
    if (ok) {
      try {
        value = std::stol(item, &used);
      } catch (...) {
        ok = false;
      }
    }
    if (!ok || used != item.size() || value < 0 || value > INT32_MAX) {
      return InvalidArgument("--ids: '" + item + "' is not a token id (expected e.g. 2,651,6037)");
    }
    ids.push_back(static_cast<int32_t>(value));
  }
  if (ids.empty()) return InvalidArgument("--ids: no token ids given");
  return ids;
}

int Run(GenerateFlags& flags) {
  if (!flags.ids.empty() && (flags.prompt_given || !flags.prompt_file.empty())) {
    return Fail("give one of -p/--prompt, -f/--file and --ids");
  }
  if (Status s = flags.generation.Check(flags.json); !s.ok()) return Fail(s);
  std::string prompt_text;
  if (flags.ids.empty()) {
    auto text = PromptText(flags);
    if (!text.ok()) return Fail(text.status());
    prompt_text = std::move(text).value();
  }
  auto engine = flags.model.Load();
  if (!engine.ok()) return Fail(engine.status());
  Engine& e = **engine;
  if (flags.generation.verbose) {
    std::fprintf(stderr, "%s (%s), %s; seed %llu\n", e.info().source.c_str(), e.info().family.c_str(),
                 e.info().backend.c_str(), static_cast<unsigned long long>(flags.generation.seed_used()));
  }

  std::vector<int32_t> prompt;
  Image image;
  PrefillOptions prefill;
  if (!flags.image.empty()) {
    auto loaded = e.LoadImage(flags.image);
    if (!loaded.ok()) return Fail(loaded.status());
    image = std::move(loaded).value();
    Result<std::vector<int32_t>> ids = InvalidArgument("");
    if (!flags.ids.empty()) {
      // --ids is the text part (its newline id included); image tokens and BOS are added.
      auto text = ParseIds(flags.ids);
      if (!text.ok()) return Fail(text.status());
      ids = e.ImagePromptFromIds(*text);
    } else {
      ids = e.ImagePrompt(prompt_text);
    }
    if (!ids.ok()) return Fail(ids.status());
    prompt = std::move(ids).value();
    prefill.image = &image;
  } else if (!flags.ids.empty()) {
    auto ids = ParseIds(flags.ids);
    if (!ids.ok()) return Fail(ids.status());
    prompt = std::move(ids).value();
  } else {
    auto ids = e.Tokenize(prompt_text, !flags.no_bos);
    if (!ids.ok()) return Fail(ids.status());
    prompt = std::move(ids).value();
  }

  auto session = e.NewSession();
  if (!session.ok()) return Fail(session.status());
  if (static_cast<int64_t>(prompt.size()) > (*session)->context_length()) {
    return Fail("the prompt has " + std::to_string(prompt.size()) + " tokens but the context holds " +
                std::to_string((*session)->context_length()) + " (raise -c/--ctx-size)");
  }
  // Prefilled here (not inside Generate) when the prompt is an image prefix, which is
  // one bidirectional pass, or long enough on a terminal to deserve a progress bar.
  constexpr size_t kProgressChunk = 256;
  const bool show_progress = prefill.image == nullptr && prompt.size() > 2 * kProgressChunk && StderrIsTerminal();
  const bool prefill_here = prefill.image != nullptr || show_progress;
  double image_prefill_seconds = 0.0;
  if (prefill_here) {
    const auto start = std::chrono::steady_clock::now();
    ProgressBar bar("prefill");
    const size_t chunk = prefill.image != nullptr ? prompt.size() : kProgressChunk;
    for (size_t begin = 0; begin < prompt.size(); begin += chunk) {
      const size_t count = std::min(chunk, prompt.size() - begin);
      auto logits = (*session)->Prefill(std::span<const int32_t>(prompt).subspan(begin, count), prefill);
      if (!logits.ok()) return Fail(logits.status());
      bar.Update(begin + count, prompt.size());
    }
    bar.Finish();
    image_prefill_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }
  GenerateOptions options = flags.generation.Options();
  const bool has_tokenizer = e.has_tokenizer();
  options.on_token = [&](int32_t id, const std::string& text) {
    if (flags.json) return true;
    if (has_tokenizer) std::fwrite(text.data(), 1, text.size(), stdout);
    else if (id >= 0) std::printf("%d ", id);
    std::fflush(stdout);
    return true;
  };
  auto result = (*session)->Generate(prefill_here ? std::span<const int32_t>() : prompt, options);
  if (!result.ok()) return Fail(result.status());
  const int64_t prompt_tokens = prefill_here ? static_cast<int64_t>(prompt.size()) : result->prompt_tokens;
  const double prefill_seconds = result->prefill_seconds + image_prefill_seconds;
  if (flags.json) {
    nlohmann::json out = GenerationJson(*result, prompt_tokens, prefill_seconds);
    out["text"] = result->text;
    out["tokens"] = result->tokens;
    out["seed"] = flags.generation.seed_used();
    if (result->stop_reason == StopReason::kStopString) out["stop_string"] = result->stop_string;
    if (options.logprobs >= 0) out["logprobs"] = LogprobsJson(e, *result);
    std::printf("%s\n", out.dump(2, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
  } else {
    std::printf("\n");
    std::fflush(stdout);  // the newline before the stats, also when both streams go to one pipe
    std::fprintf(stderr, "[%lld prompt tokens, %.1f tokens/s prefill; %zu generated, %.1f tokens/s; stop: %s]\n",
                 static_cast<long long>(prompt_tokens), prefill_seconds > 0 ? prompt_tokens / prefill_seconds : 0.0,
                 result->tokens.size(),
                 result->decode_seconds > 0 ? result->tokens.size() / result->decode_seconds : 0.0,
                 StopReasonName(result->stop_reason));
  }
  return 0;
}

}  // namespace

void AddGenerateCommand(CLI::App& root, int* exit_code) {
  auto flags = std::make_shared<GenerateFlags>();
  CLI::App* app = root.add_subcommand("generate", "Generate text that continues a prompt");
  flags->model.Add(app);
  CLI::Option* prompt = app->add_option("-p,--prompt", flags->prompt, "prompt text (BOS is added)");
  app->add_option("-f,--file", flags->prompt_file, "read the prompt from this file");
  app->add_flag("-e,--escape", flags->escape, "turn \\n, \\t, \\r, \\\\, \\\" and \\' in the prompt into the characters");
  app->add_option("--ids", flags->ids, "prompt as token ids, e.g. 2,651,6037 (no tokenizer needed)");
  app->add_option("--image", flags->image, "PNG or JPEG image (PaliGemma); with --ids, the ids are the text part");
  flags->generation.Add(app, 128, "tokens to generate");
  app->add_flag("--no-bos", flags->no_bos, "do not add BOS before the prompt");
  app->add_flag("--json", flags->json,
                "print one JSON object: text, tokens, timings, stop reason, seed (and --logprobs)");
  app->footer(
      "Without -p, -f or --ids the prompt is read from stdin (when it is not a terminal).\n"
      "Examples:\n"
      "  gemmarun generate -m ./gemma-2b -p \"The capital of France is\" -n 32\n"
      "  gemmarun generate -m model.gguf -f prompt.txt -n -1 --stop \"\\n\\n\"\n"
      "  echo \"Once upon a time\" | gemmarun generate -m model.gguf --json --logprobs 3 -n 8\n"
      "  gemmarun generate -m model.gguf -p \"Once upon a time\" --temp 0.8 --top-p 0.95 --seed 1\n"
      "  gemmarun generate -m tests/data/gemma1_mqa --ids 2,369,137 -n 8\n"
      "  gemmarun generate -m ./paligemma-3b-pt-224 --image cat.jpg -p \"caption en\"\n"
      "  gemmarun generate -m ./gemma-2b -p \"Hello\" --dtype q8_0   # quantize at load");
  app->callback([flags, exit_code, prompt] {
    flags->prompt_given = prompt->count() > 0;
    *exit_code = Run(*flags);
  });
}

}  // namespace gemmarun::cli
