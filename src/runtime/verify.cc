#include "gemmarun/verify.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "gemmarun/engine.h"
#include "io/json_util.h"
#include "io/safetensors.h"

namespace gemmarun {
namespace {

Result<std::vector<int32_t>> ReadIds(const SafetensorsFile& file, const std::string& name) {
  for (const TensorSource& t : file.tensors()) {
    if (t.name != name) continue;
    if (t.dtype != DType::kI32 || t.shape.rank() != 1) return Corrupt(file.path() + ": '" + name + "' must be I32 [n]");
    std::vector<int32_t> ids(t.shape[0]);
    std::memcpy(ids.data(), t.data, t.bytes);
    return ids;
  }
  return NotFound(file.path() + ": no tensor '" + name + "'");
}

Result<TensorSource> FindF32(const SafetensorsFile& file, const std::string& name) {
  for (const TensorSource& t : file.tensors()) {
    if (t.name != name) continue;
    if (t.dtype != DType::kF32) return Corrupt(file.path() + ": '" + name + "' must be F32");
    return t;
  }
  return NotFound(file.path() + ": no tensor '" + name + "'");
}

double MaxDiff(std::span<const float> a, const float* b) {
  double worst = 0.0;
  for (size_t i = 0; i < a.size(); ++i) worst = std::max(worst, std::fabs(static_cast<double>(a[i]) - b[i]));
  return worst;
}

// PaliGemma fixtures carry pixel_values [1, C, H, W] already normalised.
Result<Image> ReferencePixels(const SafetensorsFile& reference) {
  GR_ASSIGN_OR_RETURN(TensorSource pixels, FindF32(reference, "pixel_values"));
  if (pixels.shape.rank() != 4 || pixels.shape[0] != 1) return Corrupt("pixel_values must be [1, C, H, W]");
  Image image;
  image.channels = static_cast<int>(pixels.shape[1]);
  image.height = static_cast<int>(pixels.shape[2]);
  image.width = static_cast<int>(pixels.shape[3]);
  image.pixels.resize(pixels.shape.elements());
  std::memcpy(image.pixels.data(), pixels.data, pixels.bytes);
  return image;
}

}  // namespace

Result<VerifyReport> VerifyFixture(const std::string& dir, const VerifyOptions& options) {
  namespace fs = std::filesystem;
  EngineOptions engine_options;
  engine_options.num_threads = options.num_threads;
  engine_options.device = options.device;
  engine_options.matmul_precision = options.matmul_precision.empty() ? "f32" : options.matmul_precision;
  engine_options.cache_type = "f32";  // the float64 references leave no room for a rounded cache
  GR_ASSIGN_OR_RETURN(std::unique_ptr<Engine> engine, Engine::Load(dir, engine_options));
  GR_ASSIGN_OR_RETURN(SafetensorsFile reference, SafetensorsFile::Open((fs::path(dir) / "reference.safetensors").string()));
  GR_ASSIGN_OR_RETURN(nlohmann::json meta, ParseJsonFile((fs::path(dir) / "reference.json").string()));
  if (!meta.contains("prompts") || !meta["prompts"].is_array()) {
    return Corrupt(dir + "/reference.json: expected a 'prompts' list");
  }
  // A reference that checks nothing must not pass: every prompt the tensors hold
  // must be listed in reference.json and the other way round.
  const size_t listed = meta["prompts"].size();
  size_t stored = 0;
  for (const TensorSource& t : reference.tensors()) {
    const std::string& name = t.name;
    if (name.rfind("prompt", 0) == 0 && name.size() > 16 && name.compare(name.size() - 10, 10, ".input_ids") == 0) {
      ++stored;
    }
  }
  if (listed == 0) return Corrupt(dir + "/reference.json: the 'prompts' list is empty, so nothing would be checked");
  if (stored != listed) {
    return Corrupt(dir + ": reference.json lists " + std::to_string(listed) + " prompts but reference.safetensors holds " +
                   std::to_string(stored));
  }
  VerifyReport report;
  report.fixture = dir;
  report.family = engine->info().family;
  report.backend = engine->info().backend;
  const bool takes_image = engine->info().takes_image;
  Image image;
  if (takes_image) {
    // Prefer the PNG (exercises the image path); fall back to the stored pixels.
    const std::string png = (fs::path(dir) / "image.png").string();
    Result<Image> loaded = fs::exists(png) ? engine->LoadImage(png) : Result<Image>(NotFound(png));
    if (loaded.ok()) {
      image = std::move(loaded).value();
    } else {
      GR_ASSIGN_OR_RETURN(image, ReferencePixels(reference));
    }
  }
  const int64_t vocab = engine->info().vocab_size;
  report.passed = true;
  for (size_t p = 0; p < meta["prompts"].size(); ++p) {
    const std::string prefix = "prompt" + std::to_string(p) + ".";
    GR_ASSIGN_OR_RETURN(std::vector<int32_t> ids, ReadIds(reference, prefix + "input_ids"));
    GR_ASSIGN_OR_RETURN(std::vector<int32_t> greedy, ReadIds(reference, prefix + "greedy"));
    GR_ASSIGN_OR_RETURN(TensorSource logits, FindF32(reference, prefix + "logits"));
    if (ids.empty()) return Corrupt(dir + ": " + prefix + "input_ids is empty");
    if (logits.shape != Shape{static_cast<int64_t>(ids.size()), vocab}) {
      return Corrupt(dir + ": " + prefix + "logits has shape " + logits.shape.ToString() + ", expected [" +
                     std::to_string(ids.size()) + ", " + std::to_string(vocab) + "]");
    }
    const float* expected = reinterpret_cast<const float*>(logits.data);
    PromptCheck check;
    check.index = static_cast<int>(p);
    check.length = static_cast<int>(ids.size());
    for (int64_t i = 0; i < logits.shape.elements(); ++i) {
      check.max_abs_logit = std::max(check.max_abs_logit, std::fabs(static_cast<double>(expected[i])));
    }
    check.allowed = options.tolerance * std::max(1.0, check.max_abs_logit);
    const int64_t context = static_cast<int64_t>(ids.size() + greedy.size() + 1);

    // (a) the whole prompt in one pass
    GR_ASSIGN_OR_RETURN(std::unique_ptr<Session> session, engine->NewSession(context));
    PrefillOptions prefill;
    prefill.all_logits = true;
    prefill.image = takes_image ? &image : nullptr;
    GR_ASSIGN_OR_RETURN(Logits all, session->Prefill(ids, prefill));
    check.prefill_max_diff = MaxDiff(all.values, expected);

    // (b) one token at a time through the cache; chunks of one token make every
    // sliding-window layer a ring of exactly `window` slots, which prompts longer
    // than the window wrap around.
    if (!takes_image) {
      GR_ASSIGN_OR_RETURN(std::unique_ptr<Session> stepwise, engine->NewSession(context, /*prefill_chunk=*/1));
      check.stepwise_max_diff = 0.0;
      for (size_t t = 0; t < ids.size(); ++t) {
        GR_ASSIGN_OR_RETURN(Logits one, stepwise->Prefill(std::span<const int32_t>(&ids[t], 1)));
        check.stepwise_max_diff = std::max(check.stepwise_max_diff, MaxDiff(one.values, expected + t * vocab));
      }
    }

    // (c) greedy continuation from the prefilled session
    GenerateOptions generate;
    generate.max_new_tokens = static_cast<int>(greedy.size());
    generate.stop_at_eos = false;
    GR_ASSIGN_OR_RETURN(GenerateResult result, session->Generate({}, generate));
    check.greedy_expected.assign(greedy.begin(), greedy.end());
    check.greedy_actual.assign(result.tokens.begin(), result.tokens.end());
    check.greedy_match = check.greedy_expected == check.greedy_actual;
    check.passed = check.prefill_max_diff <= check.allowed &&
                   (check.stepwise_max_diff < 0 || check.stepwise_max_diff <= check.allowed) && check.greedy_match;
    report.passed = report.passed && check.passed;
    report.prompts.push_back(std::move(check));
  }
  return report;
}

std::string VerifyReportToJson(const VerifyReport& report) {
  nlohmann::json json;
  json["fixture"] = report.fixture;
  json["family"] = report.family;
  json["backend"] = report.backend;
  json["passed"] = report.passed;
  json["prompts"] = nlohmann::json::array();
  for (const PromptCheck& c : report.prompts) {
    nlohmann::json p;
    p["index"] = c.index;
    p["length"] = c.length;
    p["max_abs_logit"] = c.max_abs_logit;
    p["allowed_diff"] = c.allowed;
    p["prefill_max_diff"] = c.prefill_max_diff;
    p["stepwise_max_diff"] = c.stepwise_max_diff < 0 ? nlohmann::json(nullptr) : nlohmann::json(c.stepwise_max_diff);
    p["greedy_match"] = c.greedy_match;
    p["greedy_expected"] = c.greedy_expected;
    p["greedy_actual"] = c.greedy_actual;
    p["passed"] = c.passed;
    json["prompts"].push_back(p);
  }
  return json.dump(2);
}

}  // namespace gemmarun
