#include "commands.h"
#include "common.h"

namespace gemmarun::cli {
void AddInspectCommand(CLI::App& root, int* exit_code) {}
}  // namespace gemmarun::cli
