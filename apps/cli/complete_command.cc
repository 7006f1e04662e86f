// `gemmarun complete`: CodeGemma fill-in-the-middle. The prompt is
//   [other files, each + <|file_separator|>] <|fim_prefix|>PREFIX<|fim_suffix|>SUFFIX<|fim_middle|>
// and the model writes the middle. ref: ai.google.dev CodeGemma prompt structure.
#include <cstdio>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "common.h"

namespace gemmarun::cli {
namespace {

struct CompleteFlags {
  ModelFlags model;
  GenerationFlags generation;
  std::string prefix, prefix_file, suffix, suffix_file;
  std::vector<std::string> context_files;
  bool escape = false;
  bool print_prompt = false;
  bool json = false;
};

// Text from --X or --X-file (exactly one of them); -e applies to --X only.
Result<std::string> TextOrFile(const std::string& text, const std::string& file, const char* flag, bool escape) {
  if (!file.empty()) return ReadTextFile(file, flag);
  return escape ? ProcessEscapes(text) : text;
}

int Run(CompleteFlags& flags) {
  if (flags.prefix.empty() == flags.prefix_file.empty() && !(flags.prefix.empty() && flags.prefix_file.empty())) {
    return Fail("give one of --prefix and --prefix-file");
  }
  if (!flags.suffix.empty() && !flags.suffix_file.empty()) return Fail("give one of --suffix and --suffix-file");
  if (Status s = flags.generation.Check(flags.json); !s.ok()) return Fail(s);
  auto prefix = TextOrFile(flags.prefix, flags.prefix_file, "--prefix-file", flags.escape);
  if (!prefix.ok()) return Fail(prefix.status());
  auto suffix = TextOrFile(flags.suffix, flags.suffix_file, "--suffix-file", flags.escape);
  if (!suffix.ok()) return Fail(suffix.status());
  std::vector<std::string> context_texts;
  for (const std::string& path : flags.context_files) {
    auto text = ReadTextFile(path, "--file-context");
    if (!text.ok()) return Fail(text.status());
    context_texts.push_back(std::move(text).value());
  }
  auto engine = flags.model.Load();
  if (!engine.ok()) return Fail(engine.status());
  Engine& e = **engine;

  // The FIM tokens come from the tokenizer: a vocabulary without them is not a CodeGemma one.
  int32_t fim[4];
  const char* names[4] = {"<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>", "<|file_separator|>"};
  for (int i = 0; i < 4; ++i) {
    auto id = e.SpecialTokenId(names[i]);
    if (!id.ok()) return Fail(std::string("fill-in-the-middle needs a CodeGemma tokenizer: ") + id.status().message());
    fim[i] = *id;
  }
  auto encode = [&](const std::string& text, std::vector<int32_t>* out) -> Status {
    if (text.empty()) return Status::Ok();
    GR_ASSIGN_OR_RETURN(std::vector<int32_t> ids, e.Tokenize(text, false));
    out->insert(out->end(), ids.begin(), ids.end());
    return Status::Ok();
  };
  std::vector<int32_t> prompt = {};
  auto bos = e.SpecialTokenId("<bos>");
  if (bos.ok()) prompt.push_back(*bos);
  for (const std::string& text : context_texts) {
    if (Status s = encode(text, &prompt); !s.ok()) return Fail(s);
    prompt.push_back(fim[3]);
  }
  prompt.push_back(fim[0]);
  if (Status s = encode(*prefix, &prompt); !s.ok()) return Fail(s);
  prompt.push_back(fim[1]);
  if (Status s = encode(*suffix, &prompt); !s.ok()) return Fail(s);
  prompt.push_back(fim[2]);

  if (flags.print_prompt) {
    for (size_t i = 0; i < prompt.size(); ++i) std::printf("%s%d", i ? "," : "", prompt[i]);
    std::printf("\n");
    return 0;
  }
  auto session = e.NewSession();
  if (!session.ok()) return Fail(session.status());
  if (static_cast<int64_t>(prompt.size()) >= (*session)->context_length()) {
    return Fail("the prompt has " + std::to_string(prompt.size()) + " tokens but the context holds " +
                std::to_string((*session)->context_length()) + " (raise -c/--ctx-size)");
  }
  GenerateOptions options = flags.generation.Options();
  options.stop_ids.assign(fim, fim + 4);
  options.on_token = [&](int32_t, const std::string& text) {
    if (!flags.json) {
      std::fwrite(text.data(), 1, text.size(), stdout);
      std::fflush(stdout);
    }
    return true;
  };
  auto result = (*session)->Generate(prompt, options);
  if (!result.ok()) return Fail(result.status());
  if (flags.json) {
    nlohmann::json out = GenerationJson(*result, result->prompt_tokens, result->prefill_seconds);
    out["middle"] = result->text;
    out["seed"] = flags.generation.seed_used();
    if (result->stop_reason == StopReason::kStopString) out["stop_string"] = result->stop_string;
    if (options.logprobs >= 0) out["logprobs"] = LogprobsJson(e, *result);
    std::printf("%s\n", out.dump(2, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
  } else {
    std::printf("\n");
  }
  return 0;
}

}  // namespace

void AddCompleteCommand(CLI::App& root, int* exit_code) {
  auto flags = std::make_shared<CompleteFlags>();
  CLI::App* app = root.add_subcommand("complete", "CodeGemma fill-in-the-middle: write the code between a prefix and a suffix");
  flags->model.Add(app);
  flags->generation.Add(app, 256, "most tokens to write");
  app->add_option("--prefix", flags->prefix, "code before the gap");
  app->add_option("--prefix-file", flags->prefix_file, "file with the code before the gap");
  app->add_option("--suffix", flags->suffix, "code after the gap");
  app->add_option("--suffix-file", flags->suffix_file, "file with the code after the gap");
  app->add_option("--file-context", flags->context_files, "other files of the project, put first")->expected(1, -1);
  app->add_flag("-e,--escape", flags->escape, "turn \\n, \\t, \\r, \\\\, \\\" and \\' in --prefix/--suffix into the characters");
  app->add_flag("--print-prompt", flags->print_prompt, "print the prompt's token ids and exit");
  app->add_flag("--json", flags->json, "print one JSON object: middle, token counts, speeds, stop reason");
  app->footer(
      "Generation stops at <|file_separator|>, <|fim_prefix|>, <|fim_suffix|>, <|fim_middle|> or EOS.\n"
      "Examples:\n"
      "  gemmarun complete -m ./codegemma-2b -e --prefix 'def add(a, b):\\n    ' --suffix '\\n'\n"
      "  gemmarun complete -m ./codegemma-7b --prefix-file head.py --suffix-file tail.py --file-context util.py");
  app->callback([flags, exit_code] { *exit_code = Run(*flags); });
}

}  // namespace gemmarun::cli
