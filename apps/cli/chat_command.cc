// `gemmarun chat`: an interactive conversation. On a terminal it reads a line per
// message with a prompt; otherwise one message per input line and one answer
// per message, so it can be scripted. Ctrl-C stops the current answer only.
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstdio>
#include <iostream>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "common.h"
#include "gemmarun/chat.h"

namespace gemmarun::cli {
namespace {

std::atomic<bool> g_interrupted{false};
std::atomic<bool> g_generating{false};

void OnInterrupt(int) {
  if (!g_generating.load()) {
    // Outside an answer, Ctrl-C leaves as a shell user expects.
    std::signal(SIGINT, SIG_DFL);
    std::raise(SIGINT);
  }
  g_interrupted = true;
}

struct ChatFlags {
  ModelFlags model;
  SamplingOptions sampling;
  std::string system;
  int max_tokens = 512;
  bool json = false;
};

int Run(const ChatFlags& flags) {
  auto engine = flags.model.Load();
  if (!engine.ok()) return Fail(engine.status());
  auto chat = Chat::Create(**engine, flags.system, flags.model.context);
  if (!chat.ok()) return Fail(chat.status());
  const bool interactive = isatty(STDIN_FILENO) == 1;
  std::signal(SIGINT, OnInterrupt);
  if (interactive) {
    std::fprintf(stderr, "chatting with %s (%s). /reset starts over, /exit leaves, Ctrl-C stops an answer.\n",
                 (*engine)->info().source.c_str(), (*engine)->info().family.c_str());
  }
  std::string line;
  while (true) {
    if (interactive) std::fprintf(stderr, "> ");
    if (!std::getline(std::cin, line)) break;
    if (line == "/exit" || line == "/quit") break;
    if (line == "/reset") {
      (*chat)->Reset();
      if (interactive) std::fprintf(stderr, "(conversation reset)\n");
      continue;
    }
    if (line.empty()) continue;
    GenerateOptions options;
    options.max_new_tokens = flags.max_tokens;
    options.sampling = flags.sampling;
    options.on_token = [&](int32_t, const std::string& text) {
      if (!flags.json) {
        std::fwrite(text.data(), 1, text.size(), stdout);
        std::fflush(stdout);
      }
      return !g_interrupted.load();
    };
    g_interrupted = false;
    g_generating = true;
    auto turn = (*chat)->Send(line, options);
    g_generating = false;
    if (!turn.ok()) {
      std::fprintf(stderr, "error: %s\n", turn.status().message().c_str());
      if (turn.status().code() == StatusCode::kOutOfRange) continue;  // policy: stop the turn, keep the chat
      return 1;
    }
    const GenerateResult& g = turn->generation;
    if (flags.json) {
      nlohmann::json out = GenerationJson(g, turn->prefilled_tokens, g.prefill_seconds);
      out["text"] = g.text;
      out["prefilled_tokens"] = turn->prefilled_tokens;
      out["context_tokens"] = (*chat)->session().length();
      std::printf("%s\n", out.dump().c_str());
    } else {
      std::printf("\n");
      if (g.stop_reason == StopReason::kCallback) std::fprintf(stderr, "(stopped)\n");
      if (g.stop_reason == StopReason::kContextFull) std::fprintf(stderr, "(context full: /reset to start over)\n");
    }
    std::fflush(stdout);
  }
  return 0;
}

}  // namespace

void AddChatCommand(CLI::App& root, int* exit_code) {
  auto flags = std::make_shared<ChatFlags>();
  CLI::App* app = root.add_subcommand("chat", "Talk with an instruction-tuned model, turn by turn");
  flags->model.Add(app);
  AddSamplingFlags(app, &flags->sampling);
  app->add_option("-s,--system", flags->system, "system prompt (Gemma 3 folds it into the first user turn)");
  app->add_option("-n,--n-predict", flags->max_tokens, "most tokens per answer")->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  app->add_flag("--json", flags->json, "one JSON object per answer: text, token counts, speeds, stop reason");
  app->footer(
      "The conversation's cache is kept between turns: each turn prefills only its own tokens.\n"
      "When the context is full, the turn is refused with a message and /reset starts over.\n"
      "Examples:\n"
      "  gemmarun chat -m ./gemma-2-2b-it\n"
      "  printf 'Hi!\\nWhat is 2+2?\\n' | gemmarun chat -m model.gguf --json");
  app->callback([flags, exit_code] { *exit_code = Run(*flags); });
}

}  // namespace gemmarun::cli
