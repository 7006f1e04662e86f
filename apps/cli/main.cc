// gemmarun: run Gemma-family models. A thin client of the library: it parses
// flags, calls include/gemmarun, prints, and chooses the exit code.
#include <CLI/CLI.hpp>

#include "commands.h"

int main(int argc, char** argv) {
  CLI::App app{"gemmarun: a fast, exact inference engine for the Gemma model family"};
  app.require_subcommand(1);
  app.footer("Run `gemmarun <command> --help` for the flags of each command.");
  int exit_code = 0;
  gemmarun::cli::AddGenerateCommand(app, &exit_code);
  gemmarun::cli::AddVerifyCommand(app, &exit_code);
  gemmarun::cli::AddInspectCommand(app, &exit_code);
  gemmarun::cli::AddChatCommand(app, &exit_code);
  gemmarun::cli::AddCompleteCommand(app, &exit_code);
  gemmarun::cli::AddTokenizeCommands(app, &exit_code);
  gemmarun::cli::AddPerplexityCommand(app, &exit_code);
  gemmarun::cli::AddBenchCommand(app, &exit_code);
  gemmarun::cli::AddQuantizeCommand(app, &exit_code);
  gemmarun::cli::AddServeCommand(app, &exit_code);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 1;
  }
  return exit_code;
}
