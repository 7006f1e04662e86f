// `gemmarun verify DIR`: golden check against a reference fixture folder.
#include <cstdio>

#include "commands.h"
#include "common.h"
#include "gemmarun/verify.h"

namespace gemmarun::cli {
namespace {

// Exit codes: 0 pass, 1 a prompt is off (FAIL), 2 the check could not run (a
// missing, corrupt, empty or inconsistent fixture), so scripts tell a regression
// from a broken setup.
constexpr int kVerifyCouldNotRun = 2;

struct VerifyFlags {
  std::string dir;
  bool json = false;
  double tolerance = 1e-3;
  int threads = 0;
  std::string matmul_precision;
  std::string device = "cpu";
};

int Run(const VerifyFlags& flags) {
  // A device this machine lacks is a bad flag (exit 1), not a fixture that could not be checked (2).
  if (Status device = CheckDevice(flags.device); !device.ok()) return Fail(device);
  VerifyOptions options;
  options.tolerance = flags.tolerance;
  options.num_threads = CapThreads(flags.threads);
  options.matmul_precision = flags.matmul_precision;
  options.device = flags.device;
  auto report = VerifyFixture(flags.dir, options);
  if (!report.ok()) {
    Fail(report.status());
    return kVerifyCouldNotRun;
  }
  if (flags.json) {
    std::printf("%s\n", VerifyReportToJson(*report).c_str());
  } else {
    std::printf("%s (%s, %s)\n", report->fixture.c_str(), report->family.c_str(), report->backend.c_str());
    for (const PromptCheck& c : report->prompts) {
      std::printf("  prompt %d (%d tokens): prefill max|diff| %.3g, ", c.index, c.length, c.prefill_max_diff);
      if (c.stepwise_max_diff >= 0) std::printf("token-by-token max|diff| %.3g, ", c.stepwise_max_diff);
      else std::printf("token-by-token n/a (prefix-LM), ");
      std::printf("greedy %s  [allowed %.3g] %s\n", c.greedy_match ? "matches" : "DIFFERS", c.allowed,
                  c.passed ? "ok" : "FAIL");
    }
    std::printf("%s\n", report->passed ? "PASS" : "FAIL");
  }
  return report->passed ? 0 : 1;
}

}  // namespace

void AddVerifyCommand(CLI::App& root, int* exit_code) {
  auto flags = std::make_shared<VerifyFlags>();
  CLI::App* app = root.add_subcommand("verify", "Check the engine against a reference fixture folder");
  app->add_option("dir", flags->dir, "fixture folder: config.json, model.safetensors, reference.*")->required();
  app->add_option("--tol", flags->tolerance, "allowed max|diff| as a fraction of max(1, max|logit|)")
      ->check(RealIn(0, 1e6, /*min_excluded=*/true))->capture_default_str();
  AddThreadsFlag(app, &flags->threads);
  AddMatMulPrecisionFlag(app, &flags->matmul_precision)
      ->description("f32 or bf16: products of bf16-weight matrices. Unlike the other commands, verify defaults to "
                    "f32 (exact), since it compares with float64 references; bf16 needs --tol 1e-2")
      ->type_name("f32|bf16");
  AddDeviceFlag(app, &flags->device);
  app->add_flag("--json", flags->json, "print a JSON report");
  app->footer("Examples:\n  gemmarun verify tests/data/gemma2 --json\n  gemmarun verify tests/data/gemma2 --device cuda");
  app->callback([flags, exit_code] { *exit_code = Run(*flags); });
}

}  // namespace gemmarun::cli
