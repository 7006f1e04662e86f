// What a user coming from llama.cpp or ollama types: prompt files and stdin,
// -e, -n -1, --stop, --ignore-eos, --logprobs, random seeds, --version, -ngl,
// models recognised by content, and bad flag values as one error line.
#include <sys/stat.h>

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "cli/cli_test.h"
#include "cli/text_model.h"
#include "testing/random_model.h"
#include "testing/temp_dir.h"

namespace gemmarun {
namespace {

using testing::DataDir;
using testing::ExpectErrorLine;
using testing::RunGemmarun;
using testing::TempDir;
namespace fs = std::filesystem;

// Gemma 2 layout with the real 256000-token vocabulary, so prompts are text.
class TextModelTest : public testing::TextModelSuite {};

nlohmann::json Json(const testing::CommandResult& r) {
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return nlohmann::json::parse(r.out, nullptr, /*allow_exceptions=*/false);
}

int TokenCount(const std::string& model, const std::string& text) {
  auto r = RunGemmarun("tokenize --json --bos" + model, text);
  return static_cast<int>(Json(r)["ids"].size());
}

TEST_F(TextModelTest, PromptFromFlagFileOrStdinAndEscapes) {
  TempDir dir;
  std::ofstream(dir.file("prompt.txt"), std::ios::binary) << "one\ntwo";
  const int want = TokenCount(Model(), "one\ntwo");
  const int literal = TokenCount(Model(), "one\\ntwo");
  ASSERT_NE(want, literal);
  EXPECT_EQ(Json(RunGemmarun("generate --json -n 0" + Model() + "-f " + dir.file("prompt.txt")))["prompt_tokens"], want);
  EXPECT_EQ(Json(RunGemmarun("generate --json -n 0" + Model(), "one\ntwo"))["prompt_tokens"], want);
  EXPECT_EQ(Json(RunGemmarun("generate --json -n 0 -e -p 'one\\ntwo'" + Model()))["prompt_tokens"], want);
  EXPECT_EQ(Json(RunGemmarun("generate --json -n 0 -p 'one\\ntwo'" + Model()))["prompt_tokens"], literal);
  ExpectErrorLine(RunGemmarun("generate -p a -f " + dir.file("prompt.txt") + Model()), "give one of");
}

TEST_F(TextModelTest, StopStringCutsTheTextWhereItFirstAppears) {
  auto full = Json(RunGemmarun("generate --json --logprobs 0 -n 24 --ignore-eos -p 'The weather today'" + Model()));
  const std::string text = full["text"];
  // A stop string made of the last two letters of one token and the first two
  // of the next, so it only matches across the boundary (letters only: the
  // shell passes them as they are).
  auto letters = [](const std::string& s) {
    for (unsigned char c : s) {
      if (!std::isalpha(c)) return false;
    }
    return true;
  };
  std::string stop;
  const auto& tokens = full["logprobs"];
  for (size_t i = 1; i + 1 < tokens.size() && stop.empty(); ++i) {
    const std::string a = tokens[i]["token"], b = tokens[i + 1]["token"];
    if (a.size() >= 2 && b.size() >= 2 && letters(a.substr(a.size() - 2)) && letters(b.substr(0, 2))) {
      stop = a.substr(a.size() - 2) + b.substr(0, 2);
    }
  }
  ASSERT_FALSE(stop.empty()) << "no two letter tokens in a row: " << full.dump();
  auto cut = Json(RunGemmarun("generate --json -n 24 --ignore-eos -p 'The weather today' --stop zzzq --stop " + stop +
                              Model()));
  EXPECT_EQ(cut["text"], text.substr(0, text.find(stop))) << stop;
  EXPECT_EQ(cut["stop_reason"], "stop_string");
  EXPECT_EQ(cut["stop_string"], stop);
  // Streaming prints the same text (plus the closing newline), never the stop string.
  auto streamed = RunGemmarun("generate -n 24 --ignore-eos -p 'The weather today' --stop " + stop + Model());
  EXPECT_EQ(streamed.out, text.substr(0, text.find(stop)) + "\n");
  ExpectErrorLine(RunGemmarun("generate --stop '' -p a" + Model()), "--stop");
}

TEST(HabitsTest, MinusOneGeneratesUntilTheContextIsFull) {
  auto r = Json(RunGemmarun("generate --json -m " + DataDir() + "/gemma1_mqa --ids 2,369 -n -1 -c 10 --ignore-eos"));
  EXPECT_EQ(r["generated_tokens"], 8);
  EXPECT_EQ(r["stop_reason"], "context_full");
}

TEST(HabitsTest, IgnoreEosGoesPastTheEndOfSequence) {
  // The fixture's greedy next token after 2,1 is its EOS (id 1).
  const std::string command = "generate --json -m " + DataDir() + "/gemma1_mqa --ids 2,1 -n 3";
  auto stops = Json(RunGemmarun(command));
  EXPECT_EQ(stops["generated_tokens"], 0);
  EXPECT_EQ(stops["stop_reason"], "eos");
  auto goes_on = Json(RunGemmarun(command + " --ignore-eos"));
  EXPECT_EQ(goes_on["generated_tokens"], 3);
  EXPECT_EQ(goes_on["tokens"][0], 1);
}

TEST(HabitsTest, LogprobsAreTheLogSoftmaxOfTheReferenceLogits) {
  const std::string model = " -m " + DataDir() + "/gemma1_mqa";
  auto r = Json(RunGemmarun("generate --json --logprobs 3 --ids 2,369,137,41 -n 4" + model));
  ASSERT_EQ(r["logprobs"].size(), 4u) << r.dump();
  // The same sequence scored in one pass by perplexity, whose raw logits we keep.
  TempDir dir;
  std::ofstream ids(dir.file("ids.txt"));
  ids << "369 137 41";
  for (const auto& t : r["tokens"]) ids << " " << t.get<int>();
  ids.close();
  auto p = RunGemmarun("perplexity -c 8 --ids " + dir.file("ids.txt") + " --save-logits " + dir.file("logits.f32") +
                       model);
  ASSERT_EQ(p.exit_code, 0) << p.err;
  const std::string raw = testing::ReadAll(dir.file("logits.f32"));
  const size_t vocab = 512;
  ASSERT_EQ(raw.size(), 8 * vocab * sizeof(float));
  const float* logits = reinterpret_cast<const float*>(raw.data());
  for (int step = 0; step < 4; ++step) {
    const float* row = logits + (3 + step) * vocab;  // the row after the prompt's last token, then each generated one
    double sum = 0.0, max = row[0];
    for (size_t i = 0; i < vocab; ++i) max = std::max(max, static_cast<double>(row[i]));
    for (size_t i = 0; i < vocab; ++i) sum += std::exp(row[i] - max);
    auto logprob = [&](int id) { return row[id] - max - std::log(sum); };
    const auto& entry = r["logprobs"][step];
    const int id = entry["id"];
    EXPECT_EQ(id, r["tokens"][step]);
    EXPECT_NEAR(entry["logprob"].get<double>(), logprob(id), 1e-3) << step;
    ASSERT_EQ(entry["top"].size(), 3u);
    EXPECT_EQ(entry["top"][0]["id"], id) << "greedy picks the most likely token";
    for (int k = 0; k < 3; ++k) {
      EXPECT_NEAR(entry["top"][k]["logprob"].get<double>(), logprob(entry["top"][k]["id"]), 1e-3);
      if (k > 0) {
        EXPECT_GE(entry["top"][k - 1]["logprob"].get<double>(), entry["top"][k]["logprob"].get<double>());
      }
    }
  }
  ExpectErrorLine(RunGemmarun("generate --logprobs 3 --ids 2" + model), "--logprobs needs --json");
  ExpectErrorLine(RunGemmarun("generate --json --logprobs 21 --ids 2" + model), "--logprobs");
}

TEST(HabitsTest, TheRandomSeedIsReportedAndRepeatsTheRun) {
  const std::string command = "generate --json -m " + DataDir() + "/gemma2 --ids 2,5,9 -n 12 --temp 1.5";
  auto first = Json(RunGemmarun(command));
  auto second = Json(RunGemmarun(command));
  ASSERT_TRUE(first["seed"].is_number_unsigned());
  EXPECT_NE(first["seed"], second["seed"]) << "a new seed each run";
  auto repeated = Json(RunGemmarun(command + " --seed " + std::to_string(first["seed"].get<uint64_t>())));
  EXPECT_EQ(repeated["tokens"], first["tokens"]);
  EXPECT_EQ(repeated["seed"], first["seed"]);
  auto verbose = RunGemmarun(command + " --seed 77 -v");
  EXPECT_NE(verbose.err.find("seed 77"), std::string::npos) << verbose.err;
}

TEST(HabitsTest, VersionNamesRevisionBackendsAndCpuTarget) {
  auto r = RunGemmarun("--version");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out.rfind("gemmarun 0.", 0), 0u) << r.out;
  for (const char* line : {"\ngit revision: ", "\nbackends: cpu", "\ncpu target: "}) {
    EXPECT_NE(r.out.find(line), std::string::npos) << line << "\n" << r.out;
  }
  EXPECT_EQ(testing::CountNewlines(r.out), 4);
}

TEST(HabitsTest, GpuLayersAreAcceptedOnlyWhereTheyCanBeHonoured) {
  const std::string command = "generate -m " + DataDir() + "/gemma1_mqa --ids 2,369,137,41,124,111,365 -n 4";
  for (const char* zero : {" -ngl 0", " --n-gpu-layers 0", " -ngl=0"}) {
    auto r = RunGemmarun(command + zero);
    EXPECT_EQ(r.exit_code, 0) << zero << r.err;
    EXPECT_EQ(r.out, "365 365 457 457 \n") << zero;
  }
  const bool built_with_cuda = RunGemmarun("--version").out.find("cuda") != std::string::npos;
  if (!built_with_cuda) {
    ExpectErrorLine(RunGemmarun(command + " -ngl 99"), "without a GPU backend");
    ExpectErrorLine(RunGemmarun("perplexity -ngl 99 -f x -m " + DataDir() + "/gemma1_mqa"), "without a GPU backend");
    return;
  }
  // With CUDA compiled in, -ngl > 0 means the GPU: the same tokens where there
  // is one, else the one-line error of --device cuda.
  auto r = RunGemmarun(command + " -ngl 99");
  if (r.exit_code == 0) {
    EXPECT_EQ(r.out, "365 365 457 457 \n");
  } else {
    ExpectErrorLine(r, "no CUDA GPU found");
  }
}

TEST(HabitsTest, ThreadsAboveTheCpuCountAreCappedWithAWarning) {
  auto r = RunGemmarun("generate -t 4096 -m " + DataDir() + "/gemma1_mqa --ids 2,369,137,41,124,111,365 -n 4");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "365 365 457 457 \n");
  EXPECT_EQ(r.err.rfind("warning: -t 4096 is more than the ", 0), 0u) << r.err;
}

TEST(HabitsTest, BadFlagValuesAreOneErrorLineWithAReadableBound) {
  const std::string model = " -m " + DataDir() + "/gemma1_mqa --ids 2 ";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"generate -t -1" + model, "--threads: expected an integer from 0 to 4096, got '-1'"},
      {"generate -c -5" + model, "--ctx-size: expected an integer from 0 to"},
      {"generate --temp -1" + model, "--temp: expected a number from 0 to 100, got '-1'"},
      {"generate --temp inf" + model, "got 'inf'"},
      {"generate --temp nan" + model, "got 'nan'"},
      {"generate --top-p 2" + model, "--top-p: expected a number above 0 and at most 1"},
      {"generate --min-p 1.5" + model, "--min-p"},
      {"generate --top-k -1" + model, "--top-k"},
      {"generate --repeat-penalty 0" + model, "--repeat-penalty: expected a number above 0"},
      {"generate --repeat-last-n -2" + model, "--repeat-last-n"},
      {"generate --dtype q9" + model, "--dtype: expected one of f32, bf16, f16, q8_0, q4_0, got 'q9'"},
      {"generate -n 99999999999" + model, "--n-predict: expected an integer from -1 to"},
      {"generate -n -2" + model, "--n-predict"},
      {"generate --seed -5" + model, "--seed"},
      {"generate -n abc" + model, "got 'abc'"},
      {"generate --bogus" + model, "--bogus"},
      {"frobnicate", "unknown command 'frobnicate'"},
      {"", "give a command"},
      {"perplexity -t -3 -f x" + model, "--threads"},
      {"perplexity --max-windows -1 -f x" + model, "--max-windows"},
      {"perplexity -c 1 -f x" + model, "--ctx-size"},
      {"chat -n -7" + model, "--n-predict"},
      {"chat --chat-template llama3" + model, "--chat-template: expected one of gemma, gemma3, none"},
      {"complete --top-k x --prefix a" + model, "--top-k"},
      {"bench -r 0" + model, "--reps"},
      {"bench --bandwidth-only --bandwidth-mib 100000000", "--bandwidth-mib"},
      {"inspect --context 4611686018427387904 --config " + DataDir() + "/gemma2", "--context"},
      {"verify --tol -1 " + DataDir() + "/gemma2", "--tol"},
  };
  for (const auto& [args, fragment] : cases) {
    SCOPED_TRACE(args);
    auto r = RunGemmarun(args);
    ExpectErrorLine(r, fragment);
    EXPECT_LT(r.err.size(), 300u) << "no 309-digit bounds";
  }
}

TEST(HabitsTest, FoldersAndFifosAreRefusedAsTextFiles) {
  TempDir dir;
  const std::string fifo = dir.file("fifo");
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  const std::string model = " -m " + DataDir() + "/gemma1_mqa";
  const std::string folder = dir.path().string();
  ExpectErrorLine(RunGemmarun("generate -f " + folder + model), "is a folder, expected a text file");
  ExpectErrorLine(RunGemmarun("generate -f " + fifo + model), "not a regular file");
  ExpectErrorLine(RunGemmarun("complete --prefix-file " + folder + " --suffix b" + model),
                  "--prefix-file " + folder + ": is a folder");
  ExpectErrorLine(RunGemmarun("complete --prefix a --suffix-file " + fifo + model), "--suffix-file " + fifo);
  ExpectErrorLine(RunGemmarun("perplexity -f " + folder + model), "is a folder");
  ExpectErrorLine(RunGemmarun("generate --ids 2 -m " + fifo), "not a regular file");
  ExpectErrorLine(RunGemmarun("tokenize --tokenizer " + fifo + " hi"), "not a regular file");
}

TEST(HabitsTest, ModelsAreRecognisedByContentNotByName) {
  TempDir dir;
  const std::string gguf = dir.file("model.gguf");
  auto q = RunGemmarun("quantize -m " + DataDir() + "/gemma1_mqa --type f32 -o " + gguf);
  ASSERT_EQ(q.exit_code, 0) << q.err;
  // An ollama blob: the same bytes under a name without an extension.
  const std::string blob = dir.file("sha256-0123abcd");
  fs::copy_file(gguf, blob);
  const std::string ids = " --ids 2,369,137,41,124,111,365 -n 4";
  for (const std::string& path : {gguf, blob, DataDir() + "/gemma1_mqa/model.safetensors"}) {
    auto r = RunGemmarun("generate -m " + path + ids);
    EXPECT_EQ(r.exit_code, 0) << path << r.err;
    EXPECT_EQ(r.out, "365 365 457 457 \n") << path;
  }
  auto inspect = RunGemmarun("inspect --json -m " + blob);
  EXPECT_EQ(inspect.exit_code, 0) << inspect.err;
  // A checkpoint's safetensors file is inspected as its folder.
  auto from_file = RunGemmarun("inspect --json -m " + DataDir() + "/gemma1_mqa/model.safetensors");
  auto from_folder = RunGemmarun("inspect --json -m " + DataDir() + "/gemma1_mqa");
  EXPECT_EQ(from_file.exit_code, 0) << from_file.err;
  EXPECT_EQ(from_file.out.substr(from_file.out.find("\"params\"")),
            from_folder.out.substr(from_folder.out.find("\"params\"")));
  std::ofstream(dir.file("notes.gguf")) << "just some text\n";
  ExpectErrorLine(RunGemmarun("generate -m " + dir.file("notes.gguf") + ids), "neither a GGUF file");
}

TEST(HabitsTest, QuantizeIntoAMissingFolderNamesTheFolder) {
  TempDir dir;
  const std::string output = dir.file("no/such/folder/out.gguf");
  auto r = RunGemmarun("quantize -m " + DataDir() + "/gemma1_mqa --type q8_0 -o " + output);
  ExpectErrorLine(r, "the folder " + dir.file("no/such/folder") + " does not exist");
  EXPECT_EQ(r.err.find("probe"), std::string::npos) << r.err;
}

TEST(HabitsTest, OutputPolish) {
  const std::string tokenizer = " --tokenizer " + DataDir() + "/tokenizer/gemma/tokenizer.json";
  auto text = RunGemmarun("detokenize" + tokenizer + " 4521,235269,2134,235341");
  ASSERT_EQ(text.exit_code, 0) << text.err;
  EXPECT_EQ(text.out, "Hello, world!\n");
  TempDir dir;
  std::ofstream(dir.file("ids.txt")) << "227 333 62 38 34 59 285\n";
  auto p = RunGemmarun("perplexity -m " + DataDir() + "/gemma1_mqa --ids " + dir.file("ids.txt") + " -c 8");
  ASSERT_EQ(p.exit_code, 0) << p.err;
  EXPECT_NE(p.out.find("(1 window of 8;"), std::string::npos) << p.out;
  for (const char* command : {"inspect", "tokenize", "detokenize"}) {
    auto help = RunGemmarun(std::string(command) + " --help");
    EXPECT_NE(help.out.find("GGUF file"), std::string::npos) << command << "\n" << help.out;
  }
}

}  // namespace
}  // namespace gemmarun
