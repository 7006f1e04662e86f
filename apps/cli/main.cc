// gemmarun: run Gemma-family models. A thin client of the library: it parses
// flags, calls include/gemmarun, prints, and chooses the exit code.
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "commands.h"
#include "gemmarun/version.h"

namespace {

void PrintVersion() {
  const gemmarun::BuildInfo build = gemmarun::GetBuildInfo();
  std::string backends;
  for (const std::string& b : build.backends) backends += (backends.empty() ? "" : ", ") + b;
  std::printf("gemmarun %s\ngit revision: %s\nbackends: %s\ncpu target: %s\n", build.version.c_str(),
              build.git_revision.c_str(), backends.c_str(), build.cpu_target.c_str());
}

// llama.cpp habits CLI11 cannot spell: a one-dash word is read as bundled
// one-letter flags ("-ngl 99" as -n -g -l), so it becomes its long name first.
std::vector<std::string> RewriteArguments(int argc, char** argv) {
  std::vector<std::string> args(argv, argv + argc);
  for (std::string& arg : args) {
    if (arg == "-ngl") arg = "--n-gpu-layers";
    else if (arg.rfind("-ngl=", 0) == 0) arg = "--n-gpu-layers=" + arg.substr(5);
  }
  return args;
}

// CLI11's messages are one line plus a "Run with --help" line; ours are one line.
int ReportParseError(const CLI::App& app, const CLI::ParseError& e, const std::vector<std::string>& args) {
  std::string message = e.what();
  for (char& c : message) {
    if (c == '\n') c = ' ';
  }
  const bool has_command = args.size() > 1 && !args[1].empty() && args[1][0] != '-';
  if (has_command && app.get_subcommands([&](const CLI::App* sub) { return sub->get_name() == args[1]; }).empty()) {
    std::string names;
    for (const CLI::App* sub : app.get_subcommands([](const CLI::App*) { return true; })) {
      names += (names.empty() ? "" : ", ") + sub->get_name();
    }
    message = "unknown command '" + args[1] + "' (commands: " + names + ")";
  } else if (!has_command && e.get_name() == "RequiredError") {
    message = "give a command, e.g. `gemmarun generate -m MODEL -p TEXT` (`gemmarun --help` lists them)";
  }
  std::fprintf(stderr, "error: %s\n", message.c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"gemmarun: a fast, exact inference engine for the Gemma model family"};
  app.require_subcommand(1);
  app.footer("Run `gemmarun <command> --help` for the flags of each command.");
  bool version = false;
  app.add_flag("--version", version, "print the version, git revision, compiled backends and CPU target");
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
  // --version alone needs no command.
  if (argc == 2 && std::strcmp(argv[1], "--version") == 0) {
    PrintVersion();
    return 0;
  }
  std::vector<std::string> args = RewriteArguments(argc, argv);
  std::vector<char*> pointers;
  for (std::string& arg : args) pointers.push_back(arg.data());
  try {
    app.parse(static_cast<int>(pointers.size()), pointers.data());
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    return ReportParseError(app, e, args);
  }
  return exit_code;
}
