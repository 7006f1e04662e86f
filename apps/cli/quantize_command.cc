// `gemmarun quantize`: write a model as a GGUF file (llama.cpp reads it too)
// with its weight matrices in one type. The work is QuantizeModel's
// (include/gemmarun/quantize.h); this file parses flags and reports.
#include <cstdio>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "common.h"
#include "gemmarun/quantize.h"

namespace gemmarun::cli {
namespace {

struct QuantizeFlags {
  std::string model;
  std::string type;
  std::string output;
  std::string name;
  bool json = false;
};

int Run(const QuantizeFlags& flags) {
  QuantizeOptions options;
  options.type = flags.type;
  options.name = flags.name;
  ProgressBar convert_bar("converting " + flags.model);
  options.progress = [&](const char* stage, size_t done, size_t total) {
    if (std::string_view(stage) == "converting weights") convert_bar.Update(done, total);
    else convert_bar.Finish();
  };
  auto report = QuantizeModel(flags.model, flags.output, options);
  convert_bar.Finish();
  if (!report.ok()) return Fail(report.status());
  if (flags.json) {
    nlohmann::json out;
    out["output"] = flags.output;
    out["architecture"] = report->architecture;
    out["type"] = report->type;
    out["tensors"] = report->tensors;
    out["matrices_converted"] = report->matrices_converted;
    out["matrices_kept"] = report->matrices_kept;
    out["input_bytes"] = report->input_bytes;
    out["output_bytes"] = report->output_bytes;
    out["has_tokenizer"] = report->has_tokenizer;
    out["vocab_trimmed_from"] = report->vocab_trimmed_from;
    std::printf("%s\n", out.dump(2).c_str());
    return 0;
  }
  std::printf("wrote %s: %s, %s, %zu tensors (%zu matrices in %s", flags.output.c_str(),
              report->architecture.c_str(), report->type.c_str(), report->tensors, report->matrices_converted,
              report->type.c_str());
  if (report->matrices_kept > 0) std::printf(", %zu kept as f16/f32: rows not whole blocks", report->matrices_kept);
  std::printf("), %.1f MiB from %.1f MiB of weights\n", report->output_bytes / 1048576.0,
              report->input_bytes / 1048576.0);
  if (report->vocab_trimmed_from > 0) {
    std::printf("note: token_embd keeps the tokenizer's rows (the checkpoint had %d)\n", report->vocab_trimmed_from);
  }
  if (!report->has_tokenizer) {
    std::fprintf(stderr,
                 "warning: the model ships no tokenizer, so the file has no vocabulary: gemmarun runs it "
                 "(--ids), llama.cpp cannot load it\n");
  }
  return 0;
}

}  // namespace

void AddQuantizeCommand(CLI::App& root, int* exit_code) {
  auto flags = std::make_shared<QuantizeFlags>();
  CLI::App* app = root.add_subcommand("quantize", "Write a model as a GGUF file (llama.cpp-compatible) of one type");
  app->add_option("-m,--model", flags->model, "HF checkpoint folder or .gguf file (Gemma 1/2/3 text models)")
      ->required();
  app->add_option("--type", flags->type, std::string("weight matrix type: ") + QuantizeTypes())->required();
  app->add_option("-o,--output", flags->output, "the .gguf file to write")->required();
  app->add_option("--name", flags->name, "general.name (default: the input's name)");
  app->add_flag("--json", flags->json, "print a JSON report");
  app->footer(
      "Norms are stored as f32 (1 + w), as llama.cpp's converter does; a matrix whose rows are not\n"
      "whole 32-value blocks stays f16 (or f32). Every matrix, token_embd included, gets --type\n"
      "(llama-quantize --pure; llama-quantize's default would keep token_embd in q6_K).\n"
      "The vocabulary (tokens, scores, token types, special ids, chat template) comes from the\n"
      "folder's tokenizer.model / tokenizer.json or the GGUF input; a model without a tokenizer\n"
      "gets a file without one, which gemmarun runs (--ids) but llama.cpp cannot load.\n"
      "RecurrentGemma and PaliGemma have no llama.cpp GGUF layout and are refused.\n"
      "Examples:\n"
      "  gemmarun quantize -m ./gemma-2b --type q8_0 -o gemma-2b-q8_0.gguf\n"
      "  gemmarun quantize -m gemma-3-270m-q4_k_m.gguf --type q8_0 -o gemma-3-270m-q8_0.gguf");
  app->callback([flags, exit_code] { *exit_code = Run(*flags); });
}

}  // namespace gemmarun::cli
