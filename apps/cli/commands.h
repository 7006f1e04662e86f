// Subcommands of the gemmarun binary. Each Add*Command registers one (or a
// family of) CLI11 subcommands; the chosen one's callback stores its exit code.
#pragma once

#include <CLI/CLI.hpp>

namespace gemmarun::cli {

void AddGenerateCommand(CLI::App& root, int* exit_code);
void AddVerifyCommand(CLI::App& root, int* exit_code);
void AddInspectCommand(CLI::App& root, int* exit_code);
void AddTokenizeCommands(CLI::App& root, int* exit_code);
void AddChatCommand(CLI::App& root, int* exit_code);
void AddPerplexityCommand(CLI::App& root, int* exit_code);
void AddCompleteCommand(CLI::App& root, int* exit_code);
void AddBenchCommand(CLI::App& root, int* exit_code);
void AddQuantizeCommand(CLI::App& root, int* exit_code);
void AddServeCommand(CLI::App& root, int* exit_code);

}  // namespace gemmarun::cli
