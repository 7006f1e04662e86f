// The gemmarun binary as a user meets it: generate and verify on fixture models,
// and every error a user can cause gives one clear line and exit status 1.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "cli/cli_test.h"
#include "testing/temp_dir.h"

namespace gemmarun {
namespace {

using testing::DataDir;
using testing::RunGemmarun;
namespace fs = std::filesystem;

int CountLines(const std::string& s) {
  int lines = 0;
  for (char c : s) lines += c == '\n';
  return lines;
}

void ExpectOneLineError(const testing::CommandResult& r, const std::string& fragment) {
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_EQ(CountLines(r.err), 1) << r.err;
  EXPECT_EQ(r.err.rfind("error: ", 0), 0u) << r.err;
  EXPECT_NE(r.err.find(fragment), std::string::npos) << r.err;
}

using testing::TempDir;

TEST(CliTest, VerifyPassesOnAFixture) {
  auto r = RunGemmarun("verify " + DataDir() + "/gemma1_mqa");
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("PASS"), std::string::npos) << r.out;
}

TEST(CliTest, VerifyJsonReportsEveryPrompt) {
  auto r = RunGemmarun("verify --json " + DataDir() + "/gemma3");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("\"prefill_max_diff\""), std::string::npos);
  EXPECT_NE(r.out.find("\"passed\": true"), std::string::npos);
}

TEST(CliTest, VerifyFailsOnWrongReference) {
  TempDir dir;
  fs::copy(DataDir() + "/gemma1_mqa", dir.path(), fs::copy_options::recursive);
  // The weights of another case with the same shapes give different logits.
  fs::copy_file(DataDir() + "/gemma1_mqa_bf16/model.safetensors", dir.path() / "model.safetensors",
                fs::copy_options::overwrite_existing);
  fs::copy_file(DataDir() + "/gemma1_mqa_bf16/config.json", dir.path() / "config.json",
                fs::copy_options::overwrite_existing);
  auto r = RunGemmarun("verify " + dir.path().string());
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.out.find("FAIL"), std::string::npos) << r.out << r.err;
}

TEST(CliTest, UnknownDeviceIsOneErrorLine) {
  for (const char* command : {"generate --ids 2,369", "bench", "serve --port 0"}) {
    ExpectOneLineError(RunGemmarun(std::string(command) + " -m " + DataDir() + "/gemma1_mqa --device tpu"),
                       "device 'tpu' is not one of cpu, cuda, cuda:N");
  }
  ExpectOneLineError(RunGemmarun("verify --device cuda:one " + DataDir() + "/gemma1_mqa"), "cuda:one");
}

// --device cuda where it cannot run (no CUDA compiled in, or no GPU: this
// machine) is one error line saying which; with a GPU the command runs and
// the test has nothing to check (the cuda label covers that machine).
TEST(CliTest, CudaDeviceWithoutAGpuIsOneErrorLine) {
  const std::string command = "generate -m " + DataDir() + "/gemma1_mqa --ids 2,369,137,41,124,111,365 -n 4";
  auto r = RunGemmarun(command + " --device cuda");
  if (r.exit_code == 0) GTEST_SKIP() << "a GPU is present: " << r.out;
  const bool built_with_cuda = RunGemmarun("--version").out.find("cuda") != std::string::npos;
  ExpectOneLineError(r, built_with_cuda ? "device cuda: no CUDA GPU found" : "this build has no CUDA backend");
  ExpectOneLineError(RunGemmarun(command + " --device cuda:3"), "cuda:3");
}

TEST(CliTest, GenerateFromIdsWithoutTokenizer) {
  auto r = RunGemmarun("generate -m " + DataDir() + "/gemma1_mqa --ids 2,369,137,41,124,111,365 -n 4");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  // The reference greedy continuation of this prompt starts 365 365 457 457.
  EXPECT_NE(r.out.find("365 365 457 457"), std::string::npos) << r.out;
}

TEST(CliTest, GenerateJsonHasCountsTimingsAndStopReason) {
  auto r = RunGemmarun("generate --json -m " + DataDir() + "/gemma2 --ids 2,5,9 -n 3 --temp 0.7 --seed 4");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (const char* key : {"\"prompt_tokens\": 3", "\"generated_tokens\": 3", "\"decode_tokens_per_second\"",
                          "\"stop_reason\": \"max_tokens\""}) {
    EXPECT_NE(r.out.find(key), std::string::npos) << key << "\n" << r.out;
  }
  auto again = RunGemmarun("generate --json -m " + DataDir() + "/gemma2 --ids 2,5,9 -n 3 --temp 0.7 --seed 4");
  const auto tokens = [](const std::string& s) { return s.substr(s.find("\"tokens\"")); };
  EXPECT_EQ(tokens(r.out).substr(0, 40), tokens(again.out).substr(0, 40)) << "same seed, same tokens";
}

TEST(CliTest, PaliGemmaImagePlusIdsReproducesTheReferenceGreedyTokens) {
  // The fixture's text part after <bos> is 487 167 430 26 81 and the newline (id 5 in its vocabulary).
  auto r = RunGemmarun("generate -m " + DataDir() + "/paligemma --image " + DataDir() +
                       "/paligemma/image.png --ids 487,167,430,26,81,5 -n 10");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "5 5 5 5 5 5 5 5 5 5 \n");
}

TEST(CliTest, DtypeConvertsAtLoadAndKeepsGreedyTokens) {
  // The first reference greedy tokens survive bf16 and q8_0 re-encoding of this fixture.
  for (const char* dtype : {"bf16", "q8_0"}) {
    auto r = RunGemmarun("generate -m " + DataDir() + "/gemma1_mqa --ids 2,369,137,41,124,111,365 -n 4 --dtype " + dtype);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out, "365 365 457 457 \n") << dtype;
  }
  EXPECT_EQ(RunGemmarun("generate -m " + DataDir() + "/gemma1_mqa --ids 2 --dtype q3").exit_code, 1);
}

TEST(CliTest, MatMulPrecisionBf16KeepsTheReferenceGreedyTokens) {
  // gemma1_mqa_bf16 stores bf16 matrices, so --matmul-precision bf16 changes its
  // products; the reference greedy continuation of this prompt is 314 x 12, with
  // a margin (0.31) far above the ~1e-2 that bf16 activations move the logits.
  const std::string command =
      "generate -m " + DataDir() + "/gemma1_mqa_bf16 --ids 2,227,333,62,38,34,59,285,269,92,94,492,452,163,336 -n 4";
  for (const char* precision : {"", " --matmul-precision f32", " --matmul-precision bf16"}) {
    auto r = RunGemmarun(command + precision);
    ASSERT_EQ(r.exit_code, 0) << precision << ": " << r.err;
    EXPECT_EQ(r.out, "314 314 314 314 \n") << precision;
  }
  // A model without bf16 matrices takes the flag too (and is unaffected by it).
  auto r = RunGemmarun("generate -m " + DataDir() + "/gemma1_mqa --ids 2,369,137,41,124,111,365 -n 4 "
                       "--matmul-precision bf16");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "365 365 457 457 \n");
}

TEST(CliTest, BadMatMulPrecisionNamesTheFlagAndTheValues) {
  const std::string model = " -m " + DataDir() + "/gemma1_mqa_bf16";
  for (const std::string& args : {"generate --ids 2 --matmul-precision fp8" + model,
                                  "chat --matmul-precision fp8" + model,
                                  "complete --prefix a --suffix b --matmul-precision fp8" + model,
                                  "bench -p 4 -n 2 --matmul-precision fp8" + model}) {
    SCOPED_TRACE(args);
    ExpectOneLineError(RunGemmarun(args), "--matmul-precision 'fp8' is not one of f32, bf16");
  }
  // Case matters, as for --dtype.
  ExpectOneLineError(RunGemmarun("generate --ids 2 --matmul-precision BF16" + model),
                     "--matmul-precision 'BF16' is not one of f32, bf16");
}

TEST(CliTest, EveryModelCommandTakesMatMulPrecision) {
  for (const char* command : {"generate", "chat", "complete", "perplexity", "bench"}) {
    auto r = RunGemmarun(std::string(command) + " --help");
    EXPECT_EQ(r.exit_code, 0) << command;
    EXPECT_NE(r.out.find("--matmul-precision"), std::string::npos) << command << "\n" << r.out;
  }
  TempDir dir;
  std::ofstream(dir.path() / "ids.txt") << "227 333 62 38 34 59 285 269 92 94 492 452 163 336\n";
  auto r = RunGemmarun("perplexity --json -m " + DataDir() + "/gemma1_mqa_bf16 --ids " +
                       (dir.path() / "ids.txt").string() + " -c 8 --matmul-precision bf16");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("\"perplexity\""), std::string::npos) << r.out;
  ExpectOneLineError(RunGemmarun("perplexity -m " + DataDir() + "/gemma1_mqa_bf16 --ids " +
                                 (dir.path() / "ids.txt").string() + " -c 8 --matmul-precision x"),
                     "--matmul-precision 'x' is not one of f32, bf16");
}

TEST(CliTest, ImageErrorsAreOneLine) {
  ExpectOneLineError(RunGemmarun("generate -m " + DataDir() + "/paligemma --image /nonexistent.png --ids 5"),
                     "/nonexistent.png");
  ExpectOneLineError(RunGemmarun("generate -m " + DataDir() + "/gemma1_mqa --image " + DataDir() +
                                 "/paligemma/image.png --ids 5"),
                     "take no image");
}

TEST(CliTest, TokenizeReadsStdinVerbatimAndDetokenizeInverts) {
  const std::string tokenizer = " --tokenizer " + DataDir() + "/tokenizer/gemma/tokenizer.json";
  // Ids from HF tokenizers; stdin keeps its trailing newline (id 108).
  auto r = RunGemmarun("tokenize --json" + tokenizer, "Hello, world!\n");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("\"ids\": [4521, 235269, 2134, 235341, 108]"), std::string::npos) << r.out;
  auto with_bos = RunGemmarun("tokenize --json --bos" + tokenizer + " 'Hello, world!'");
  EXPECT_NE(with_bos.out.find("[2, 4521, 235269, 2134, 235341]"), std::string::npos) << with_bos.out;
  auto text = RunGemmarun("detokenize" + tokenizer + " 4521,235269,2134,235341");
  ASSERT_EQ(text.exit_code, 0) << text.err;
  EXPECT_EQ(text.out.substr(0, 13), "Hello, world!");
  ExpectOneLineError(RunGemmarun("tokenize --tokenizer /nonexistent.json hi"), "/nonexistent.json");
}

TEST(CliTest, MissingModelIsOneLine) {
  ExpectOneLineError(RunGemmarun("generate -m /nonexistent/model --ids 2"), "no such file or folder");
}

TEST(CliTest, FolderWithoutConfigIsOneLine) {
  TempDir dir;
  ExpectOneLineError(RunGemmarun("generate -m " + dir.path().string() + " --ids 2"), "no config.json");
}

TEST(CliTest, UnknownModelTypeIsOneLine) {
  TempDir dir;
  std::ofstream(dir.path() / "config.json") << R"({"model_type": "llama", "vocab_size": 10})";
  ExpectOneLineError(RunGemmarun("generate -m " + dir.path().string() + " --ids 2"), "model_type 'llama'");
}

TEST(CliTest, CorruptWeightsAreOneLine) {
  TempDir dir;
  fs::copy(DataDir() + "/gemma1_mqa", dir.path(), fs::copy_options::recursive);
  const fs::path weights = dir.path() / "model.safetensors";
  fs::resize_file(weights, fs::file_size(weights) / 2);
  ExpectOneLineError(RunGemmarun("generate -m " + dir.path().string() + " --ids 2"), "model.safetensors");
  std::ofstream(weights, std::ios::binary | std::ios::trunc) << "garbage";
  ExpectOneLineError(RunGemmarun("generate -m " + dir.path().string() + " --ids 2"), "too short");
}

TEST(CliTest, TensorShapeMismatchNamesTheTensor) {
  TempDir dir;
  fs::copy(DataDir() + "/gemma1_mqa", dir.path(), fs::copy_options::recursive);
  // A config whose FFN width disagrees with the weights.
  std::ifstream in(DataDir() + "/gemma1_mqa/config.json");
  std::string config((std::istreambuf_iterator<char>(in)), {});
  config.replace(config.find("\"intermediate_size\": 160"), 24, "\"intermediate_size\": 128");
  std::ofstream(dir.path() / "config.json", std::ios::trunc) << config;
  ExpectOneLineError(RunGemmarun("generate -m " + dir.path().string() + " --ids 2"), "mlp.gate_proj.weight' has shape [160, 64], expected [128, 64]");
}

TEST(CliTest, BadFlagValuesAreRejected) {
  const std::string model = " -m " + DataDir() + "/gemma1_mqa --ids 2 ";
  EXPECT_EQ(RunGemmarun("generate" + model + "--temp -1").exit_code, 1);
  EXPECT_EQ(RunGemmarun("generate" + model + "--top-p 2").exit_code, 1);
  EXPECT_EQ(RunGemmarun("generate" + model + "--min-p -0.5").exit_code, 1);
  EXPECT_EQ(RunGemmarun("generate" + model + "--repeat-penalty 0").exit_code, 1);
  EXPECT_EQ(RunGemmarun("generate" + model + "--presence-penalty 2.5").exit_code, 1);
  EXPECT_EQ(RunGemmarun("generate" + model + "--frequency-penalty -3").exit_code, 1);
  EXPECT_EQ(RunGemmarun("generate" + model + "--presence-penalty 1.5 --frequency-penalty -0.5 --temp 0.7").exit_code, 0);
  ExpectOneLineError(RunGemmarun("generate -m " + DataDir() + "/gemma1_mqa --ids 2,x,3"), "is not a token id");
  ExpectOneLineError(RunGemmarun("generate -m " + DataDir() + "/gemma1_mqa --ids 2,99999"), "outside the vocabulary");
}

TEST(CliTest, PromptLongerThanContextIsOneLine) {
  ExpectOneLineError(RunGemmarun("generate -m " + DataDir() + "/gemma1_mqa -c 4 --ids 2,3,4,5,6,7"),
                     "the context holds 4");
  ExpectOneLineError(RunGemmarun("generate -m " + DataDir() + "/gemma1_mqa -c 100000 --ids 2"),
                     "max_position_embeddings");
}

TEST(CliTest, EverySubcommandHasHelpWithExamples) {
  for (const char* command : {"generate", "verify", "chat", "complete", "inspect", "tokenize", "detokenize",
                              "perplexity"}) {
    auto r = RunGemmarun(std::string(command) + " --help");
    EXPECT_EQ(r.exit_code, 0) << command;
    EXPECT_NE(r.out.find("Example"), std::string::npos) << command << "\n" << r.out;
  }
}

// bench -d: one entry per depth with both speeds; a depth beyond the model's
// positions, or a negative one, is one error line.
TEST(CliTest, BenchAtDepthReportsEveryDepth) {
  const std::string model = " -m " + DataDir() + "/gemma2";
  auto r = RunGemmarun("bench" + model + " -d 0,40,100 -p 8 -n 4 -r 2 --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (const char* depth : {"\"depth\": 0", "\"depth\": 40", "\"depth\": 100"}) {
    EXPECT_NE(r.out.find(depth), std::string::npos) << depth << "\n" << r.out;
  }
  EXPECT_NE(r.out.find("\"depths\""), std::string::npos) << r.out;
  ExpectOneLineError(RunGemmarun("bench" + model + " -d 0,300 -p 8 -n 4"), "the model holds 256 positions; -d 300");
  ExpectOneLineError(RunGemmarun("bench" + model + " -d -5"), "--depth: expected an integer from 0");
}

}  // namespace
}  // namespace gemmarun
