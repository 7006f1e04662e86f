// EngineOptions::matmul_precision = "bf16" (MatMulPrecision::kBF16): matrices
// with bf16 weights multiply bf16-rounded activations (round to nearest even),
// sums in f32, as llama.cpp and bf16 PyTorch do. These tests pin what that may
// and may not change:
//   * on the bf16 fixture the logits stay within bf16 rounding of HF's float64
//     reference, whole-prompt and token by token, and greedy tokens are the same;
//   * they really differ from the exact default (so the option cannot silently
//     do nothing), by as much as, and close to, an emulation: the exact kernels
//     fed activations rounded to bf16 here, in the test;
//   * models without bf16 matrices give bit-identical logits in both modes.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "gemmarun/engine.h"
#include "io/safetensors.h"
#include "model/model.h"
#include "ops/backend.h"
#include "runtime/model_source.h"
#include "tensor/dtype.h"
#include "tensor/tensor.h"
#include "testing/batch_runner.h"
#include "testing/forwarding_backend.h"

namespace gemmarun {
namespace {

const std::string kBf16Fixture = std::string(GR_TEST_DATA_DIR) + "/gemma1_mqa_bf16";

// One prompt of a fixture's reference.safetensors (HF transformers, float64).
struct ReferencePrompt {
  std::vector<int32_t> ids;
  std::vector<int32_t> greedy;
  std::vector<float> logits;  // [ids.size(), vocab_size]
  double max_abs_logit = 0.0;
};

std::vector<ReferencePrompt> ReadReference(const std::string& dir) {
  auto file = SafetensorsFile::Open(dir + "/reference.safetensors");
  EXPECT_TRUE(file.ok()) << file.status().message();
  if (!file.ok()) return {};
  auto find = [&](const std::string& name) -> const TensorSource* {
    for (const TensorSource& t : file->tensors()) {
      if (t.name == name) return &t;
    }
    return nullptr;
  };
  std::vector<ReferencePrompt> prompts;
  for (int p = 0;; ++p) {
    const std::string prefix = "prompt" + std::to_string(p) + ".";
    const TensorSource* ids = find(prefix + "input_ids");
    const TensorSource* greedy = find(prefix + "greedy");
    const TensorSource* logits = find(prefix + "logits");
    if (ids == nullptr || greedy == nullptr || logits == nullptr) break;
    EXPECT_EQ(ids->dtype, DType::kI32);
    EXPECT_EQ(greedy->dtype, DType::kI32);
    EXPECT_EQ(logits->dtype, DType::kF32);
    ReferencePrompt prompt;
    const auto* id_data = reinterpret_cast<const int32_t*>(ids->data);
    const auto* greedy_data = reinterpret_cast<const int32_t*>(greedy->data);
    const auto* logit_data = reinterpret_cast<const float*>(logits->data);
    prompt.ids.assign(id_data, id_data + ids->bytes / sizeof(int32_t));
    prompt.greedy.assign(greedy_data, greedy_data + greedy->bytes / sizeof(int32_t));
    prompt.logits.assign(logit_data, logit_data + logits->bytes / sizeof(float));
    for (float v : prompt.logits) prompt.max_abs_logit = std::max(prompt.max_abs_logit, std::fabs(double(v)));
    prompts.push_back(std::move(prompt));
  }
  EXPECT_FALSE(prompts.empty()) << dir;
  return prompts;
}

// What the engine gives for one prompt: (a) all logits of one whole-prompt
// pass, (b) the same prompt fed one token at a time, (c) greedy continuation.
struct EngineRun {
  std::vector<float> prefill;
  std::vector<float> stepwise;
  std::vector<int32_t> greedy;
  std::string backend;
};

EngineRun RunEngine(const std::string& dir, const std::string& matmul_precision, std::span<const int32_t> ids,
                    int greedy_tokens, const std::string& weight_dtype = "") {
  EngineRun run;
  EngineOptions options;
  options.matmul_precision = matmul_precision;
  options.weight_dtype = weight_dtype;
  options.cache_type = "f32";  // the comparisons are at f32 precision; an f16 cache would move them by ~1e-3
  auto engine = Engine::Load(dir, options);
  EXPECT_TRUE(engine.ok()) << dir << ": " << engine.status().message();
  if (!engine.ok()) return run;
  run.backend = (*engine)->info().backend;
  const int64_t context = static_cast<int64_t>(ids.size()) + greedy_tokens + 1;
  auto session = (*engine)->NewSession(context);
  EXPECT_TRUE(session.ok()) << session.status().message();
  if (!session.ok()) return run;
  PrefillOptions all;
  all.all_logits = true;
  auto logits = (*session)->Prefill(ids, all);
  EXPECT_TRUE(logits.ok()) << logits.status().message();
  if (!logits.ok()) return run;
  run.prefill = logits->values;

  auto stepwise = (*engine)->NewSession(context, /*prefill_chunk=*/1);
  EXPECT_TRUE(stepwise.ok()) << stepwise.status().message();
  if (!stepwise.ok()) return run;
  for (const int32_t& id : ids) {
    auto one = (*stepwise)->Prefill(std::span<const int32_t>(&id, 1));
    EXPECT_TRUE(one.ok()) << one.status().message();
    if (!one.ok()) return run;
    run.stepwise.insert(run.stepwise.end(), one->values.begin(), one->values.end());
  }

  if (greedy_tokens > 0) {
    GenerateOptions generate;
    generate.max_new_tokens = greedy_tokens;
    generate.stop_at_eos = false;
    auto result = (*session)->Generate({}, generate);
    EXPECT_TRUE(result.ok()) << result.status().message();
    if (result.ok()) run.greedy = result->tokens;
  }
  return run;
}

double MaxDiff(const std::vector<float>& a, const std::vector<float>& b) {
  EXPECT_EQ(a.size(), b.size());
  if (a.size() != b.size() || a.empty()) return 1e30;
  double worst = 0.0;
  for (size_t i = 0; i < a.size(); ++i) worst = std::max(worst, std::fabs(double(a[i]) - double(b[i])));
  return worst;
}

// sqrt(mean((a - b)^2)): the typical difference, where MaxDiff is the worst.
double RmsDiff(const std::vector<float>& a, const std::vector<float>& b) {
  EXPECT_EQ(a.size(), b.size());
  if (a.size() != b.size() || a.empty()) return 1e30;
  double sum = 0.0;
  for (size_t i = 0; i < a.size(); ++i) sum += (double(a[i]) - b[i]) * (double(a[i]) - b[i]);
  return std::sqrt(sum / a.size());
}

// ------------------------------------------------------------------ emulation

// The CPU backend with exact (kF32) products, except that MatMul rounds the
// activations of bf16-weight matrices to bf16 before handing them on: kBF16's
// arithmetic built from parts the golden tests already pin, whatever kernel
// implements the real thing.
class RoundingBackend final : public testing::ForwardingBackend {
 public:
  explicit RoundingBackend(std::unique_ptr<Backend> inner) : ForwardingBackend(std::move(inner)) {}

  void MatMul(const TensorView& x, const TensorView& w, const TensorView& bias, const TensorView& out) override {
    if (w.dtype != DType::kBF16) return inner().MatMul(x, w, bias, out);
    const size_t count = static_cast<size_t>(x.shape.elements());
    rounded_.resize(count);
    for (size_t i = 0; i < count; ++i) rounded_[i] = BF16ToF32(F32ToBF16(x.f32()[i]));
    inner().MatMul(TensorView{rounded_.data(), DType::kF32, x.shape}, w, bias, out);
  }

 private:
  std::vector<float> rounded_;
};

// All logits of one whole-prompt pass through the emulation.
std::vector<float> EmulatedPrefill(const std::string& dir, std::span<const int32_t> ids) {
  RoundingBackend backend(CreateCpuBackend(0, MatMulPrecision::kF32));
  auto loaded = LoadModel(dir, &backend, /*progress=*/{});
  EXPECT_TRUE(loaded.ok()) << loaded.status().message();
  if (!loaded.ok()) return {};
  testing::BatchRunner runner(*loaded->model, 1, static_cast<int64_t>(ids.size()), DType::kF32);
  return runner.Feed(0, std::vector<int32_t>(ids.begin(), ids.end()), ids.size());
}

// ------------------------------------------------------------------ tests

// Tolerance against the float64 reference, as a fraction of max(1, max|logit|).
// Rounding an activation to bf16 moves it by at most 2^-9 (2e-3) of itself (8
// significant bits, round to nearest even). Each product's error is w*x*d with
// |d| <= 2^-9 and independent signs, so a dot product moves by about
// 2^-9 * sqrt(sum (w*x)^2 / 3), and the three layers and the tied lm_head each
// add such a step. Measured on this fixture (max |logit| 4.96), with the
// kernel and with the emulation alike: max|diff| 2.05e-2 (4.1e-3 of the max
// logit; rms 4.2e-3), against 1.2e-6 for the exact mode. 1e-2 * 4.96 = 5e-2
// leaves 2.4x room for other summation orders and dot instructions, and is
// still 6x below the smallest greedy margin (0.31): greedy tokens cannot change.
constexpr double kBf16Tolerance = 1e-2;

TEST(MatMulPrecisionTest, Bf16ProductsStayWithinBf16RoundingOfTheReference) {
  for (const ReferencePrompt& prompt : ReadReference(kBf16Fixture)) {
    const double allowed = kBf16Tolerance * std::max(1.0, prompt.max_abs_logit);
    const EngineRun run = RunEngine(kBf16Fixture, "bf16", prompt.ids, static_cast<int>(prompt.greedy.size()));
    const double prefill_diff = MaxDiff(run.prefill, prompt.logits);
    const double stepwise_diff = MaxDiff(run.stepwise, prompt.logits);
    std::printf("bf16 products vs float64 reference: max|diff| %.3g whole prompt, %.3g token by token (allowed %.3g)\n",
                prefill_diff, stepwise_diff, allowed);
    EXPECT_LE(prefill_diff, allowed) << "whole-prompt prefill";
    EXPECT_LE(stepwise_diff, allowed) << "token by token";
    EXPECT_EQ(run.greedy, prompt.greedy);
  }
}

// Needs the kBF16 kernel: where "bf16" computes the exact products, the
// "changed nothing" expectations fail. The reference prompt (15 tokens) runs the
// row-by-row kernels; a 100-token prompt runs the panel kernels (16 tokens and
// up, matmul.cc's kPanelMinTokens; vdpbf16ps on CPUs with AVX512_BF16): it has
// no float64 reference, so the exact mode (1e-6 from it on the short prompt)
// stands in.
//
// Why rms and not max against the emulation: the bf16 rounding is chaotic in
// the last f32 bit. Summing in another order moves some activation across a
// bf16 rounding midpoint, it jumps by 2^-8 of itself, the next layer's inputs
// move, more of them cross midpoints... so two correct implementations differ
// by a good part of the whole bf16 shift at the worst logit (measured, 100
// tokens: max 1.3e-2 of a 2.2e-2 shift) but much less on average (rms 1.2e-3
// of 4.0e-3). A kernel that truncates instead of rounding shifts the logits
// twice as much (rms 9e-3) and lies 1e-2 (rms) from the emulation; one that
// does not round shifts them by ~1e-6.
TEST(MatMulPrecisionTest, Bf16ProductsDifferFromExactAndMatchTheEmulation) {
  const ReferencePrompt reference = ReadReference(kBf16Fixture).at(0);
  std::vector<int32_t> long_ids = {2};
  std::mt19937 rng(7);
  std::uniform_int_distribution<int32_t> id(3, 511);  // the fixture's vocabulary, no special tokens
  while (long_ids.size() < 100) long_ids.push_back(id(rng));
  const std::vector<int32_t>& short_ids = reference.ids;
  const std::vector<int32_t>* prompts[] = {&short_ids, &long_ids};
  for (const std::vector<int32_t>* ids : prompts) {
    SCOPED_TRACE(std::to_string(ids->size()) + " tokens");
    const EngineRun exact = RunEngine(kBf16Fixture, "f32", *ids, 0);
    const EngineRun bf16 = RunEngine(kBf16Fixture, "bf16", *ids, 0);
    const std::vector<float> emulated = EmulatedPrefill(kBf16Fixture, *ids);
    ASSERT_FALSE(exact.prefill.empty());
    double max_abs_logit = 0.0;
    for (float v : exact.prefill) max_abs_logit = std::max(max_abs_logit, std::fabs(double(v)));
    const double emulated_shift = RmsDiff(emulated, exact.prefill);
    const double shift = RmsDiff(bf16.prefill, exact.prefill);
    const double stepwise_shift = RmsDiff(bf16.stepwise, exact.prefill);
    const double off_emulation = RmsDiff(bf16.prefill, emulated);
    const double stepwise_off_emulation = RmsDiff(bf16.stepwise, emulated);
    std::printf("%zu tokens: rms diff emulation-exact %.3g, bf16-exact %.3g (token by token %.3g), "
                "bf16-emulation %.3g (token by token %.3g); max diff bf16-exact %.3g\n",
                ids->size(), emulated_shift, shift, stepwise_shift, off_emulation, stepwise_off_emulation,
                MaxDiff(bf16.prefill, exact.prefill));
    if (ids == &short_ids) {
      // Far more than exact mode's own error (measured: max 2e-2 against 1.2e-6).
      const double exact_error = MaxDiff(exact.prefill, reference.logits);
      EXPECT_GT(MaxDiff(bf16.prefill, exact.prefill), 100 * exact_error) << "--matmul-precision bf16 changed nothing?";
    }
    // As much change as rounding the activations makes (measured ratio 0.995-1.0).
    EXPECT_GT(shift, 0.5 * emulated_shift) << "--matmul-precision bf16 changed (almost) nothing?";
    EXPECT_LT(shift, 1.5 * emulated_shift);
    EXPECT_GT(stepwise_shift, 0.5 * emulated_shift) << "token by token";
    EXPECT_LT(stepwise_shift, 1.5 * emulated_shift) << "token by token";
    // The same change (measured: 0 on the short prompt, 0.30 x the shift on the long one).
    EXPECT_LE(off_emulation, 0.6 * emulated_shift) << "whole-prompt prefill";
    EXPECT_LE(stepwise_off_emulation, 0.6 * emulated_shift) << "token by token";
    // And, at the worst logit, within the tolerance the reference test allows.
    const double allowed = kBf16Tolerance * std::max(1.0, max_abs_logit);
    EXPECT_LE(MaxDiff(bf16.prefill, exact.prefill), allowed) << "whole-prompt prefill";
    EXPECT_LE(MaxDiff(bf16.stepwise, exact.prefill), allowed) << "token by token";
  }
}

TEST(MatMulPrecisionTest, OtherWeightTypesGiveBitIdenticalLogits) {
  // 40 tokens: the panel kernels for the whole prompt, the row-by-row ones token by token.
  std::vector<int32_t> ids = {2};
  std::mt19937 rng(11);
  std::uniform_int_distribution<int32_t> id(3, 511);  // these fixtures' vocabulary, no special tokens
  while (ids.size() < 40) ids.push_back(id(rng));
  struct Case {
    const char* fixture;
    const char* weight_dtype;
  };
  // f32 as stored (Gemma 2 and 3), and load-time conversions to f16 and q8_0.
  for (const Case& c : {Case{"gemma2", ""}, Case{"gemma3", ""}, Case{"gemma1_mqa", "f16"},
                        Case{"gemma1_mqa", "q8_0"}}) {
    SCOPED_TRACE(std::string(c.fixture) + " " + c.weight_dtype);
    const std::string dir = std::string(GR_TEST_DATA_DIR) + "/" + c.fixture;
    const EngineRun exact = RunEngine(dir, "f32", ids, 0, c.weight_dtype);
    const EngineRun bf16 = RunEngine(dir, "bf16", ids, 0, c.weight_dtype);
    ASSERT_FALSE(exact.prefill.empty());
    EXPECT_EQ(exact.prefill, bf16.prefill);  // float ==: bit-identical (no NaNs here)
    EXPECT_EQ(exact.stepwise, bf16.stepwise);
  }
}

TEST(MatMulPrecisionTest, Bf16ProductsAreTheDefault) {
  const ReferencePrompt prompt = ReadReference(kBf16Fixture).at(0);
  const EngineRun unset = RunEngine(kBf16Fixture, "", prompt.ids, 0);
  const EngineRun bf16 = RunEngine(kBf16Fixture, "bf16", prompt.ids, 0);
  const EngineRun f32 = RunEngine(kBf16Fixture, "f32", prompt.ids, 0);
  EXPECT_EQ(unset.prefill, bf16.prefill);
  EXPECT_NE(unset.prefill, f32.prefill);
  EXPECT_NE(unset.backend.find("bf16 products"), std::string::npos) << unset.backend;
  EXPECT_EQ(f32.backend.find("bf16"), std::string::npos) << f32.backend;
}

TEST(MatMulPrecisionTest, BackendDescriptionOnlyClaimsBf16ProductsForBf16Matrices) {
  // gemma1_mqa stores f32 matrices: the default precision changes nothing there,
  // and the backend line must not say otherwise; converted to bf16 at load, it does.
  for (const char* dtype : {"", "q8_0", "bf16"}) {
    EngineOptions options;
    options.weight_dtype = dtype;
    auto engine = Engine::Load(std::string(GR_TEST_DATA_DIR) + "/gemma1_mqa", options);
    ASSERT_TRUE(engine.ok()) << engine.status().message();
    const bool claims = (*engine)->info().backend.find("bf16 products") != std::string::npos;
    EXPECT_EQ(claims, std::string(dtype) == "bf16") << dtype << ": " << (*engine)->info().backend;
  }
}

TEST(MatMulPrecisionTest, BackendDescriptionSaysBf16Products) {
  EngineOptions options;
  options.matmul_precision = "bf16";
  auto engine = Engine::Load(kBf16Fixture, options);
  ASSERT_TRUE(engine.ok()) << engine.status().message();
  const std::string& backend = (*engine)->info().backend;
  EXPECT_NE(backend.find("bf16 products"), std::string::npos) << backend;
  EXPECT_NE(backend.find(" threads"), std::string::npos) << backend;  // bench parses the thread count
}

TEST(MatMulPrecisionTest, UnknownPrecisionIsAnErrorNamingTheField) {
  for (const char* bad : {"fp32", "BF16", "f16", "q8_0"}) {
    EngineOptions options;
    options.matmul_precision = bad;
    auto engine = Engine::Load(kBf16Fixture, options);
    ASSERT_FALSE(engine.ok()) << bad;
    EXPECT_EQ(engine.status().code(), StatusCode::kInvalidArgument) << bad;
    const std::string& message = engine.status().message();
    EXPECT_NE(message.find("matmul_precision"), std::string::npos) << message;
    EXPECT_NE(message.find(bad), std::string::npos) << message;
    EXPECT_NE(message.find("f32, bf16"), std::string::npos) << message;
  }
}

}  // namespace
}  // namespace gemmarun
