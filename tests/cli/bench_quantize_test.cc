// `gemmarun bench` and `gemmarun quantize` on fixture models: bench reports every
// figure (no timing is asserted: these machines are shared); quantize writes GGUF
// files that our engine reloads to the same logits (f32), to the same weights as
// --dtype at load (q8_0), with llama.cpp's metadata and a vocabulary that
// tokenizes like the source tokenizer.json.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "cli/cli_test.h"
#include "testing/temp_dir.h"
#include "gemmarun/engine.h"
#include "gemmarun/quantize.h"
#include "gemmarun/tokenizer.h"
#include "io/gguf.h"
#include "io/safetensors.h"
#include "testing/random_model.h"

namespace gemmarun {
namespace {

using testing::DataDir;
using testing::RunGemmarun;
namespace fs = std::filesystem;

int CountLines(const std::string& s) { return static_cast<int>(std::count(s.begin(), s.end(), '\n')); }

void ExpectOneLineError(const testing::CommandResult& r, const std::string& fragment) {
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  EXPECT_EQ(CountLines(r.err), 1) << r.err;
  EXPECT_EQ(r.err.rfind("error: ", 0), 0u) << r.err;
  EXPECT_NE(r.err.find(fragment), std::string::npos) << r.err;
}

using testing::TempDir;

// Prompt of the fixtures' reference runs.
const std::vector<int32_t> kIds = {2, 369, 137, 41, 124, 111, 365, 7, 300, 12};

Logits AllLogits(const std::string& model, const std::string& dtype = "") {
  EngineOptions options;
  options.num_threads = 1;
  options.weight_dtype = dtype;
  auto engine = Engine::Load(model, options);
  EXPECT_TRUE(engine.ok()) << model << ": " << engine.status().message();
  if (!engine.ok()) return {};
  auto session = (*engine)->NewSession(64);
  EXPECT_TRUE(session.ok()) << session.status().message();
  PrefillOptions prefill;
  prefill.all_logits = true;
  auto logits = (*session)->Prefill(kIds, prefill);
  EXPECT_TRUE(logits.ok()) << logits.status().message();
  return logits.ok() ? *logits : Logits{};
}

struct Diff {
  double max_abs = 0.0;
  double max_ref = 0.0;  // max |reference logit|
};

Diff Compare(const Logits& ref, const Logits& got) {
  Diff d;
  EXPECT_EQ(ref.values.size(), got.values.size());
  if (ref.values.size() != got.values.size() || ref.values.empty()) return {1e30, 0};
  for (size_t i = 0; i < ref.values.size(); ++i) {
    d.max_abs = std::max(d.max_abs, std::fabs(double(ref.values[i]) - got.values[i]));
    d.max_ref = std::max(d.max_ref, std::fabs(double(ref.values[i])));
  }
  return d;
}

testing::CommandResult Quantize(const std::string& model, const std::string& type, const std::string& out) {
  return RunGemmarun("quantize -m " + model + " --type " + type + " -o " + out);
}

// ---------------------------------------------------------------- bench

TEST(BenchTest, JsonReportsEveryFigure) {
  auto r = RunGemmarun("bench --json -m " + DataDir() + "/gemma1_mqa -p 16 -n 8 --reps 2 -t 1 --bandwidth-mib 64");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["prompt_tokens"], 16);
  EXPECT_EQ(j["gen_tokens"], 8);
  EXPECT_EQ(j["reps"], 2);
  EXPECT_EQ(j["threads"], 1);
  EXPECT_EQ(j["family"], "gemma");
  EXPECT_EQ(j["matmul_precision"], "bf16");  // the default, which a q8_0 model ignores:
  EXPECT_EQ(j["backend"].get<std::string>().find("bf16"), std::string::npos) << j["backend"];
  EXPECT_GT(j["weight_bytes"].get<double>(), 0);
  EXPECT_GT(j["rss_bytes"].get<double>(), 0);
  EXPECT_GE(j["peak_rss_bytes"].get<double>(), j["rss_bytes"].get<double>());
  for (const char* key : {"prefill_tokens_per_second", "decode_tokens_per_second", "decode_gb_per_second"}) {
    ASSERT_TRUE(j[key].is_object()) << key;
    EXPECT_EQ(j[key]["values"].size(), 2u) << key;
    EXPECT_GT(j[key]["mean"].get<double>(), 0) << key;
    EXPECT_GE(j[key]["sd"].get<double>(), 0) << key;
  }
  // GB/s is weight bytes x tokens/s.
  EXPECT_NEAR(j["decode_gb_per_second"]["mean"].get<double>(),
              j["decode_tokens_per_second"]["mean"].get<double>() * j["weight_bytes"].get<double>() / 1e9,
              1e-9 + 1e-9 * j["decode_gb_per_second"]["mean"].get<double>());
  EXPECT_GT(j["memory_bandwidth_gb_per_second"].get<double>(), 0);
  EXPECT_GT(j["decode_bandwidth_ratio"].get<double>(), 0);
  // Each decode run is divided by the mean of the bandwidth measured right before and right after it.
  const auto& before = j["memory_bandwidth"]["values"];
  const auto& after = j["memory_bandwidth_after"]["values"];
  const auto& gbps = j["decode_gb_per_second"]["values"];
  const auto& ratios = j["decode_bandwidth_ratios"]["values"];
  ASSERT_EQ(before.size(), 2u);
  ASSERT_EQ(after.size(), 2u);
  ASSERT_EQ(ratios.size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_GT(after[i].get<double>(), 0);
    const double mean = 0.5 * (before[i].get<double>() + after[i].get<double>());
    EXPECT_NEAR(ratios[i].get<double>(), gbps[i].get<double>() / mean, 1e-9 * ratios[i].get<double>()) << i;
  }
}

TEST(BenchTest, TextTableAndSkippedParts) {
  auto r = RunGemmarun("bench -m " + DataDir() + "/gemma3 -p 8 -n 4 --reps 1 -t 1 --bandwidth-mib 0");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("| pp8 "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("| tg4 "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("RSS"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("bandwidth"), std::string::npos) << r.out;
  // Decode only, with load-time conversion; a model without a tokenizer is fine.
  r = RunGemmarun("bench --json -m " + DataDir() + "/gemma2 -p 0 -n 4 --reps 1 -t 1 --bandwidth-mib 0 --dtype q8_0");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_TRUE(j["prefill_tokens_per_second"].is_null());
  EXPECT_EQ(j["dtype"], "q8_0");
  EXPECT_TRUE(j["memory_bandwidth_gb_per_second"].is_null());
}

TEST(BenchTest, JsonReportsMatMulPrecision) {
  auto r = RunGemmarun("bench --json -m " + DataDir() +
                       "/gemma1_mqa_bf16 -p 8 -n 2 --reps 1 -t 1 --bandwidth-mib 0 --matmul-precision bf16");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["matmul_precision"], "bf16");
  EXPECT_NE(j["backend"].get<std::string>().find("bf16 products"), std::string::npos) << j["backend"];
  EXPECT_EQ(j["threads"], 1);  // still parsed from the backend description
  r = RunGemmarun("bench --json -m " + DataDir() +
                  "/gemma1_mqa_bf16 -p 8 -n 2 --reps 1 -t 1 --bandwidth-mib 0 --matmul-precision f32");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["matmul_precision"], "f32");
  EXPECT_EQ(j["backend"].get<std::string>().find("bf16"), std::string::npos) << j["backend"];
}

TEST(BenchTest, PaliGemmaTextDecoderWithoutAnImage) {
  // Random prompts leave out the image placeholder token, which needs an image.
  auto r = RunGemmarun("bench --json -m " + DataDir() + "/paligemma -p 64 -n 8 --reps 1 -t 1 --bandwidth-mib 0");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(nlohmann::json::parse(r.out)["family"], "paligemma");
}

TEST(BenchTest, BandwidthOnlyNeedsNoModel) {
  auto r = RunGemmarun("bench --bandwidth-only --json -t 2 --reps 2 --bandwidth-mib 64");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["threads"], 2);
  EXPECT_EQ(j["bandwidth_mib"], 64);
  ASSERT_EQ(j["memory_bandwidth"]["values"].size(), 2u);
  for (const auto& v : j["memory_bandwidth"]["values"]) EXPECT_GT(v.get<double>(), 0);
  EXPECT_DOUBLE_EQ(j["memory_bandwidth_gb_per_second"].get<double>(), j["memory_bandwidth"]["mean"].get<double>());
  r = RunGemmarun("bench --bandwidth-only -t 1 --reps 1 --bandwidth-mib 16");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("memory read bandwidth"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("1 threads"), std::string::npos) << r.out;
}

TEST(BenchTest, BadRequestsGiveOneLineErrors) {
  ExpectOneLineError(RunGemmarun("bench -p 16"), "needs -m MODEL");
  ExpectOneLineError(RunGemmarun("bench --bandwidth-only -m " + DataDir() + "/gemma1_mqa"), "drop -m");
  ExpectOneLineError(RunGemmarun("bench --bandwidth-only --bandwidth-mib 0"), "--bandwidth-mib > 0");
  ExpectOneLineError(RunGemmarun("bench --bandwidth-only --reps 0"), "--reps");
  ExpectOneLineError(RunGemmarun("bench -m " + DataDir() + "/gemma1_mqa -p 1000 -n 4"), "positions");
  ExpectOneLineError(RunGemmarun("bench -m " + DataDir() + "/gemma1_mqa --reps 0"), "--reps");
  ExpectOneLineError(RunGemmarun("bench -m " + DataDir() + "/gemma1_mqa -p 0 -n 0"), "nothing to measure");
  ExpectOneLineError(RunGemmarun("bench -m /nonexistent/model"), "no such file or folder");
}

// ---------------------------------------------------------------- quantize

TEST(QuantizeTest, F32GgufGivesTheFolderLogits) {
  for (const char* fixture : {"gemma1_mqa", "gemma3"}) {
    TempDir dir;
    const std::string out = dir.file("model-f32.gguf");
    auto r = Quantize(DataDir() + "/" + fixture, "f32", out);
    ASSERT_EQ(r.exit_code, 0) << fixture << ": " << r.err;
    EXPECT_NE(r.out.find("wrote " + out), std::string::npos) << r.out;
    // No tokenizer in the fixture: said once, on stderr.
    EXPECT_NE(r.err.find("no tokenizer"), std::string::npos) << r.err;
    const Diff d = Compare(AllLogits(DataDir() + "/" + fixture), AllLogits(out));
    EXPECT_LE(d.max_abs, 1e-6) << fixture;
  }
}

TEST(QuantizeTest, Q8GgufHoldsTheWeightsOfLoadTimeConversion) {
  for (const char* fixture : {"gemma1_mqa", "gemma3"}) {
    TempDir dir;
    const std::string out = dir.file("model-q8_0.gguf");
    auto r = Quantize(DataDir() + "/" + fixture, "q8_0", out);
    ASSERT_EQ(r.exit_code, 0) << fixture << ": " << r.err;
    const Logits reference = AllLogits(DataDir() + "/" + fixture);
    const Logits file = AllLogits(out);
    // The same quantizer on the same rows: the very weights of --dtype q8_0.
    EXPECT_LE(Compare(AllLogits(DataDir() + "/" + fixture, "q8_0"), file).max_abs, 1e-6) << fixture;
    // And close to the f32 model (these tiny random models amplify weight error:
    // 1.1% of max |logit| for gemma1_mqa, 3.5% for gemma3).
    const Diff d = Compare(reference, file);
    EXPECT_LE(d.max_abs, 0.06 * std::max(1.0, d.max_ref)) << fixture << " max |logit| " << d.max_ref;
  }
}

TEST(QuantizeTest, EveryTypeLoadsAndStaysClose) {
  const std::string fixture = DataDir() + "/gemma1_mqa";
  const Logits reference = AllLogits(fixture);
  // Bounds relative to max |logit|, about twice what each type shows here
  // (f16 0.04%, bf16 0.3%, q5_0 10%, q4_0 18%).
  for (const auto& [type, bound] : std::vector<std::pair<std::string, double>>{
           {"f16", 0.002}, {"bf16", 0.01}, {"q5_0", 0.2}, {"q4_0", 0.35}}) {
    TempDir dir;
    const std::string out = dir.file("model.gguf");
    auto r = Quantize(fixture, type, out);
    ASSERT_EQ(r.exit_code, 0) << type << ": " << r.err;
    const Logits file = AllLogits(out);
    const Diff d = Compare(reference, file);
    EXPECT_LE(d.max_abs, bound * std::max(1.0, d.max_ref)) << type;
    // --dtype converts at load with the same code: the same weights.
    if (type != "q5_0") {
      EXPECT_LE(Compare(AllLogits(fixture, type), file).max_abs, 1e-6) << type;
    }
  }
}

TEST(QuantizeTest, MetadataAndTensorsAreWhatLlamaCppWrites) {
  TempDir dir;
  const std::string out = dir.file("gemma3-q8_0.gguf");
  auto r = RunGemmarun("quantize --json -m " + DataDir() + "/gemma3 --type q8_0 -o " + out + " --name tiny");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto report = nlohmann::json::parse(r.out);
  EXPECT_EQ(report["architecture"], "gemma3");
  EXPECT_EQ(report["matrices_kept"], 0);
  EXPECT_EQ(report["has_tokenizer"], false);
  EXPECT_EQ(report["output_bytes"].get<uint64_t>(), fs::file_size(out));

  auto file = GgufFile::Open(out);
  ASSERT_TRUE(file.ok()) << file.status().message();
  EXPECT_EQ(*file->GetString("general.architecture"), "gemma3");
  EXPECT_EQ(*file->GetString("general.name"), "tiny");
  EXPECT_EQ(*file->GetUInt("general.file_type"), 7u);  // LLAMA_FTYPE_MOSTLY_Q8_0
  EXPECT_EQ(*file->GetUInt("general.quantization_version"), 2u);
  EXPECT_EQ(*file->GetUInt("gemma3.context_length"), 512u);
  EXPECT_EQ(*file->GetUInt("gemma3.embedding_length"), 64u);
  EXPECT_EQ(*file->GetUInt("gemma3.block_count"), 6u);
  EXPECT_EQ(*file->GetUInt("gemma3.feed_forward_length"), 128u);
  EXPECT_EQ(*file->GetUInt("gemma3.attention.head_count"), 4u);
  EXPECT_EQ(*file->GetUInt("gemma3.attention.head_count_kv"), 1u);
  EXPECT_EQ(*file->GetUInt("gemma3.attention.key_length"), 16u);
  EXPECT_EQ(*file->GetUInt("gemma3.attention.value_length"), 16u);
  EXPECT_EQ(*file->GetUInt("gemma3.attention.sliding_window"), 8u);
  EXPECT_FLOAT_EQ(*file->GetFloat("gemma3.attention.layer_norm_rms_epsilon"), 1e-6f);
  EXPECT_FLOAT_EQ(*file->GetFloat("gemma3.rope.freq_base"), 1e6f);
  EXPECT_EQ(*file->GetString("gemma3.rope.scaling.type"), "linear");
  EXPECT_FLOAT_EQ(*file->GetFloat("gemma3.rope.scaling.factor"), 8.0f);
  EXPECT_EQ(*file->GetUInt("tokenizer.ggml.bos_token_id"), 2u);
  EXPECT_EQ(*file->GetUInt("tokenizer.ggml.eos_token_id"), 1u);
  EXPECT_FALSE(file->Has("tokenizer.ggml.tokens"));

  // Matrices in q8_0 under llama.cpp's names; norms f32 holding 1 + w.
  auto source = SafetensorsFile::Open(DataDir() + "/gemma3/model.safetensors");
  ASSERT_TRUE(source.ok());
  auto find_source = [&](const std::string& name) -> const TensorSource* {
    for (const TensorSource& t : source->tensors()) {
      if (t.name == name) return &t;
    }
    return nullptr;
  };
  EXPECT_EQ(file->tensors().size(), source->tensors().size());
  for (const char* name : {"token_embd.weight", "blk.0.attn_q.weight", "blk.5.ffn_down.weight"}) {
    ASSERT_NE(file->Find(name), nullptr) << name;
    EXPECT_EQ(file->Find(name)->dtype, DType::kQ8_0) << name;
  }
  EXPECT_EQ(file->Find("blk.0.attn_q.weight")->shape, (Shape{64, 64}));
  const std::pair<const char*, const char*> norms[] = {
      {"blk.0.attn_norm.weight", "model.layers.0.input_layernorm.weight"},
      {"blk.0.attn_q_norm.weight", "model.layers.0.self_attn.q_norm.weight"},
      {"blk.2.post_attention_norm.weight", "model.layers.2.post_attention_layernorm.weight"},
      {"blk.3.ffn_norm.weight", "model.layers.3.pre_feedforward_layernorm.weight"},
      {"blk.4.post_ffw_norm.weight", "model.layers.4.post_feedforward_layernorm.weight"},
      {"output_norm.weight", "model.norm.weight"}};
  for (const auto& [gguf_name, hf_name] : norms) {
    const TensorSource* written = file->Find(gguf_name);
    const TensorSource* original = find_source(hf_name);
    ASSERT_NE(written, nullptr) << gguf_name;
    ASSERT_NE(original, nullptr) << hf_name;
    ASSERT_EQ(written->dtype, DType::kF32);
    ASSERT_EQ(original->dtype, DType::kF32);
    ASSERT_EQ(written->bytes, original->bytes);
    const auto* w = reinterpret_cast<const float*>(written->data);
    const auto* o = reinterpret_cast<const float*>(original->data);
    for (size_t i = 0; i < written->bytes / 4; ++i) ASSERT_EQ(w[i], 1.0f + o[i]) << gguf_name << "[" << i << "]";
  }
}

TEST(QuantizeTest, GgufInputConvertsLikeTheFolder) {
  TempDir dir;
  const std::string f32 = dir.file("f32.gguf"), from_gguf = dir.file("a.gguf"), from_folder = dir.file("b.gguf");
  ASSERT_EQ(Quantize(DataDir() + "/gemma1_mqa", "f32", f32).exit_code, 0);
  auto r = Quantize(f32, "q8_0", from_gguf);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ASSERT_EQ(Quantize(DataDir() + "/gemma1_mqa", "q8_0", from_folder).exit_code, 0);
  EXPECT_EQ(testing::ReadAll(from_gguf).size(), testing::ReadAll(from_folder).size());
  auto a = GgufFile::Open(from_gguf), b = GgufFile::Open(from_folder);
  ASSERT_TRUE(a.ok() && b.ok());
  // general.name differs (file stem vs folder name); every tensor is byte-identical.
  ASSERT_EQ(a->tensors().size(), b->tensors().size());
  for (const TensorSource& t : a->tensors()) {
    const TensorSource* u = b->Find(t.name);
    ASSERT_NE(u, nullptr) << t.name;
    ASSERT_EQ(t.bytes, u->bytes) << t.name;
    EXPECT_EQ(std::memcmp(t.data, u->data, t.bytes), 0) << t.name;
  }
}

TEST(QuantizeTest, VocabularyFromTokenizerJsonTokenizesTheSame) {
  TempDir dir;
  const std::string folder = dir.file("model");
  // Gemma 1 shapes, tiny, with the real 256000-piece vocabulary.
  const char* config = R"({"model_type": "gemma", "vocab_size": 256000, "hidden_size": 32,
    "intermediate_size": 64, "num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 16,
    "num_hidden_layers": 1, "max_position_embeddings": 512})";
  ASSERT_TRUE(testing::WriteRandomModel(config, folder).ok());
  fs::copy_file(DataDir() + "/tokenizer/gemma/tokenizer.json", fs::path(folder) / "tokenizer.json");
  fs::copy_file(DataDir() + "/tokenizer/gemma/tokenizer_config.json", fs::path(folder) / "tokenizer_config.json");
  const std::string out = dir.file("vocab.gguf");
  QuantizeOptions options;
  options.type = "q8_0";
  auto report = QuantizeModel(folder, out, options);
  ASSERT_TRUE(report.ok()) << report.status().message();
  EXPECT_TRUE(report->has_tokenizer);

  auto file = GgufFile::Open(out);
  ASSERT_TRUE(file.ok());
  EXPECT_EQ(*file->GetString("tokenizer.ggml.model"), "llama");
  EXPECT_EQ(*file->GetArrayLength("tokenizer.ggml.tokens"), 256000u);
  EXPECT_EQ(*file->GetArrayLength("tokenizer.ggml.scores"), 256000u);
  EXPECT_EQ(*file->GetArrayLength("tokenizer.ggml.token_type"), 256000u);
  EXPECT_EQ(*file->GetBool("tokenizer.ggml.add_bos_token"), true);
  EXPECT_EQ(*file->GetBool("tokenizer.ggml.add_space_prefix"), false);
  EXPECT_EQ(*file->GetUInt("tokenizer.ggml.bos_token_id"), 2u);
  EXPECT_EQ(*file->GetUInt("tokenizer.ggml.eos_token_id"), 1u);
  EXPECT_EQ(*file->GetUInt("tokenizer.ggml.padding_token_id"), 0u);
  EXPECT_EQ(*file->GetUInt("tokenizer.ggml.unknown_token_id"), 3u);
  const auto types = *file->GetIntArray("tokenizer.ggml.token_type");
  EXPECT_EQ(types[3], 2);    // <unk>: UNKNOWN
  EXPECT_EQ(types[2], 3);    // <bos>: CONTROL
  EXPECT_EQ(types[217], 6);   // <0x00>: BYTE
  EXPECT_EQ(types[1000], 1);  // "ew": NORMAL
  EXPECT_TRUE(file->Has("tokenizer.chat_template"));

  auto from_json = LoadTokenizer(folder);
  auto from_gguf = LoadTokenizer(out);
  ASSERT_TRUE(from_json.ok() && from_gguf.ok()) << from_gguf.status().message();
  for (const char* text :
       {"The capital of France is Paris.", "  leading spaces and\ttabs\n\nnew lines", "naïve café — ünïcödé 日本語 🙂",
        "<start_of_turn>user\nHi<end_of_turn>", "def fibonacci(n):\n    return n if n < 2 else fibonacci(n - 1)",
        "ThisIsAnUnusualIdentifierWithoutSpaces_and_snake_case 1234567890"}) {
    auto a = (*from_json)->Encode(text, true);
    auto b = (*from_gguf)->Encode(text, true);
    ASSERT_TRUE(a.ok() && b.ok());
    EXPECT_EQ(*a, *b) << text;
  }
  // And the engine runs it.
  auto engine = Engine::Load(out);
  ASSERT_TRUE(engine.ok()) << engine.status().message();
  EXPECT_TRUE((*engine)->has_tokenizer());
}

TEST(QuantizeTest, RefusesWhatGgufCannotHold) {
  TempDir dir;
  // Gemma 2 fixture: query_pre_attn_scalar 24 with head_dim 16; GGUF would scale by 1/sqrt(16).
  auto r = Quantize(DataDir() + "/gemma2", "q8_0", dir.file("g2.gguf"));
  ExpectOneLineError(r, "query");
  EXPECT_FALSE(fs::exists(dir.file("g2.gguf")));
  EXPECT_FALSE(fs::exists(dir.file("g2.gguf.probe")));
  ExpectOneLineError(Quantize(DataDir() + "/recurrentgemma", "q8_0", dir.file("rg.gguf")), "recurrent_gemma");
  ExpectOneLineError(Quantize(DataDir() + "/paligemma", "q8_0", dir.file("pg.gguf")), "paligemma");
  ExpectOneLineError(Quantize(DataDir() + "/gemma1_mqa", "q3", dir.file("x.gguf")), "'q3' is not one of");
  ExpectOneLineError(Quantize(DataDir() + "/gemma1_mqa", "q4_k", dir.file("x.gguf")), "is not one of");
  ExpectOneLineError(Quantize("/nonexistent/model", "q8_0", dir.file("x.gguf")), "no such file or folder");
  ExpectOneLineError(Quantize(DataDir() + "/gemma1_mqa", "q8_0", "/nonexistent/dir/x.gguf"), "/nonexistent/dir");
  EXPECT_FALSE(fs::exists(dir.file("x.gguf")));
}

}  // namespace
}  // namespace gemmarun
