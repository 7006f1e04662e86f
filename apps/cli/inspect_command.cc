// `gemmarun inspect`: the module tree (as transformers' print(model)), parameter
// counts, weight memory per dtype and KV-cache size, from config.json alone.
#include <cstdio>
#include <string>

#include "commands.h"
#include "common.h"
#include "gemmarun/inspect.h"

namespace gemmarun::cli {
namespace {

struct InspectFlags {
  std::string model;
  std::string config;
  int64_t context = 0;
  bool context_given = false;
  bool json = false;
};

int Run(const InspectFlags& flags) {
  if (flags.model.empty() == flags.config.empty()) return Fail("give exactly one of -m/--model and --config");
  if (flags.context_given && flags.context <= 0) {
    return Fail("--context: expected a positive number of tokens, got " + std::to_string(flags.context));
  }
  auto report = flags.model.empty() ? InspectConfig(flags.config, flags.context)
                                    : InspectModel(flags.model, flags.context);
  if (!report.ok()) return Fail(report.status());
  const std::string text = flags.json ? ModelReportToJson(*report) + "\n" : ModelReportToText(*report);
  std::fwrite(text.data(), 1, text.size(), stdout);
  return 0;
}

}  // namespace

void AddInspectCommand(CLI::App& root, int* exit_code) {
  auto flags = std::make_shared<InspectFlags>();
  CLI::App* app = root.add_subcommand(
      "inspect", "Show a model's modules, parameter counts, weight memory and KV-cache size (no weights loaded)");
  // -m/--config exclusion and --context's range are checked in Run, so that a
  // mistake reads as one "error: ..." line like every other failure.
  app->add_option("-m,--model", flags->model,
                  "HF checkpoint folder or GGUF file (reads config.json + safetensors headers, or the GGUF metadata)");
  app->add_option("--config", flags->config, "a config.json, or a folder holding one; nothing else is read");
  CLI::Option* context =
      app->add_option("-c,--context", flags->context, "also give the KV-cache bytes at this many tokens")
          ->check(IntIn(1, kMaxContextFlag));
  app->add_flag("--json", flags->json,
                "print one JSON object: modules, params, params_without_embedding, params_by_kind, "
                "bytes_by_dtype, kv_cache");
  app->footer(
      "The ring-buffer KV figure assumes token-by-token prefill (chunk 1): a sliding-window layer then keeps\n"
      "exactly its window. RecurrentGemma adds its fixed recurrent state to both figures.\n"
      "\n"
      "Examples:\n"
      "  gemmarun inspect --config ./gemma-2-2b/config.json\n"
      "  gemmarun inspect -m ./gemma-3-1b --context 32768\n"
      "  gemmarun inspect -m gemma-3-270m-q4_k_m.gguf\n"
      "  gemmarun inspect --config ./recurrentgemma-2b --context 8192 --json");
  app->callback([flags, exit_code, context] {
    flags->context_given = context->count() > 0;
    *exit_code = Run(*flags);
  });
}

}  // namespace gemmarun::cli
