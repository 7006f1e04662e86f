// Engine and Session: the public API over a loaded Model, its tokenizer and a
// backend. The generation loop lives here: prefill the prompt in one batched
// pass, then sample and feed one token at a time through the same state.
#include "gemmarun/engine.h"
#include "gemmarun/scheduler.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/cpu_target.h"
#include "backend/cpu/kernels.h"
#include "io/image.h"
#include "runtime/model_source.h"
#include "runtime/sampler.h"

namespace gemmarun {
namespace {

using Clock = std::chrono::steady_clock;

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

class EngineImpl;

class SessionImpl final : public Session {
 public:
  SessionImpl(EngineImpl* engine, std::unique_ptr<SequenceState> state) : engine_(engine), state_(std::move(state)) {}

  int64_t length() const override { return static_cast<int64_t>(tokens_.size()); }
  int64_t context_length() const override { return state_->max_tokens(); }
  const std::vector<int32_t>& tokens() const override { return tokens_; }
  size_t state_bytes() const override { return state_->bytes(); }
  void Reset() override {
    state_->Reset();
    tokens_.clear();
    pending_.clear();
    last_logits_.clear();
  }

  Result<Logits> Prefill(std::span<const int32_t> tokens, const PrefillOptions& options) override;
  Result<GenerateResult> Generate(std::span<const int32_t> prompt, const GenerateOptions& options) override;

 private:
  // Runs the model over `tokens` (after any pending token) and keeps the last logits row.
  Result<TensorView> Feed(std::span<const int32_t> tokens, const PrefillOptions& options);

  EngineImpl* engine_;
  std::unique_ptr<SequenceState> state_;
  std::vector<int32_t> tokens_;    // every token of the sequence, pending ones included
  std::vector<int32_t> pending_;   // sampled and emitted but not yet fed to the model
  std::vector<float> last_logits_;  // logits after the last fed token
};

// Whether the precision choice changes anything for this model (only bf16
// matrices look at it), so the backend line does not claim bf16 products for
// a quantized or f32 model.
bool HasBF16Matrices(const Model& model) {
  bool found = false;
  ForEachWeight(model.config(), model.weights(), [&](const WeightSpec& spec) {
    if (spec.kind == WeightKind::kMatrix && spec.tensor->dtype() == DType::kBF16) found = true;
  });
  return found;
}

class EngineImpl final : public Engine {
 public:
  Status Init(const std::string& path, const EngineOptions& options) {
    MatMulPrecision precision = MatMulPrecision::kBF16;
    if (options.matmul_precision == "f32") {
      precision = MatMulPrecision::kF32;
    } else if (!options.matmul_precision.empty() && options.matmul_precision != "bf16") {
      return InvalidArgument("matmul_precision '" + options.matmul_precision + "' is not one of f32, bf16");
    }
    if (Status pinned = cpu::PinTargetFromEnvironment(); !pinned.ok()) return pinned;
    backend_ = CreateCpuBackend(options.num_threads, precision);
    std::optional<DType> weight_dtype;
    if (!options.weight_dtype.empty()) {
      DType parsed;
      if (!ParseDType(options.weight_dtype, &parsed) ||
          !(parsed == DType::kBF16 || parsed == DType::kF16 || parsed == DType::kQ8_0 || parsed == DType::kQ4_0 ||
            parsed == DType::kF32)) {
        return InvalidArgument("weight dtype '" + options.weight_dtype + "' is not one of f32, bf16, f16, q8_0, q4_0");
      }
      weight_dtype = parsed;
    }
    GR_ASSIGN_OR_RETURN(loaded_, LoadModel(path, backend_.get(), options.progress, weight_dtype));
    const ModelConfig& config = loaded_.model->config();
    default_context_ = options.context_length > 0 ? options.context_length
                                                   : std::min<int64_t>(config.max_seq_len, 8192);
    info_.family = FamilyName(config.family);
    info_.model_type = config.model_type;
    info_.source = path;
    info_.vocab_size = config.vocab_size;
    info_.model_dim = config.model_dim;
    info_.num_layers = config.num_layers();
    info_.max_seq_len = config.max_seq_len;
    info_.weight_bytes = loaded_.weight_bytes;
    info_.backend = std::string(backend_->name()) + " (" + cpu::SelectedTarget() + ", " +
                    std::to_string(backend_->num_threads()) + " threads" +
                    (precision == MatMulPrecision::kBF16 && HasBF16Matrices(*loaded_.model) ? ", bf16 products)"
                                                                                            : ")");
    info_.takes_image = config.family == ModelFamily::kPaliGemma;
    info_.image_size = config.vision.image_size;
    info_.num_image_tokens = config.num_image_tokens;
    stop_ids_.assign(config.eos_ids.begin(), config.eos_ids.end());
    if (loaded_.tokenizer) {
      stop_ids_.push_back(loaded_.tokenizer->eos_id());
      if (auto end_of_turn = loaded_.tokenizer->TokenId("<end_of_turn>")) stop_ids_.push_back(*end_of_turn);
    }
    return Status::Ok();
  }

  const ModelInfo& info() const override { return info_; }
  bool has_tokenizer() const override { return loaded_.tokenizer != nullptr; }

  Result<std::vector<int32_t>> Tokenize(std::string_view text, bool add_bos) const override {
    if (!loaded_.tokenizer) return NotFound(info_.source + ": the model has no tokenizer.json or tokenizer.model");
    return loaded_.tokenizer->Encode(text, add_bos);
  }
  Result<std::string> Detokenize(std::span<const int32_t> ids) const override {
    if (!loaded_.tokenizer) return NotFound(info_.source + ": the model has no tokenizer.json or tokenizer.model");
    return loaded_.tokenizer->Decode(ids);
  }
  Result<int32_t> SpecialTokenId(std::string_view piece) const override {
    if (!loaded_.tokenizer) return NotFound(info_.source + ": the model has no tokenizer");
    if (auto id = loaded_.tokenizer->TokenId(piece)) return *id;
    return NotFound("the tokenizer has no token '" + std::string(piece) + "'");
  }

  Result<std::unique_ptr<Session>> NewSession(int64_t context_length, int64_t prefill_chunk) override {
    GR_ASSIGN_OR_RETURN(std::unique_ptr<SequenceState> state,
                        loaded_.model->NewState(context_length > 0 ? context_length : default_context_, prefill_chunk));
    return std::unique_ptr<Session>(std::make_unique<SessionImpl>(this, std::move(state)));
  }

  Result<std::unique_ptr<Scheduler>> NewScheduler(const SchedulerOptions&) override {
    return Unsupported("the batch scheduler is not built yet");
  }

  Result<Image> LoadImage(const std::string& path) const override;
  Result<std::vector<int32_t>> ImagePrompt(std::string_view prompt) const override;
  Result<std::vector<int32_t>> ImagePromptFromIds(std::span<const int32_t> text_ids) const override;

  Model& model() { return *loaded_.model; }
  const Tokenizer* tokenizer() const { return loaded_.tokenizer.get(); }
  bool IsStop(int32_t id) const { return std::find(stop_ids_.begin(), stop_ids_.end(), id) != stop_ids_.end(); }

 private:
  std::unique_ptr<Backend> backend_;
  LoadedModel loaded_;
  ModelInfo info_;
  int64_t default_context_ = 0;
  std::vector<int32_t> stop_ids_;
};

Result<TensorView> SessionImpl::Feed(std::span<const int32_t> tokens, const PrefillOptions& options) {
  std::vector<int32_t> joined;
  if (!pending_.empty()) {
    joined = pending_;
    joined.insert(joined.end(), tokens.begin(), tokens.end());
    tokens = joined;
  }
  ForwardInput input;
  input.tokens = tokens;
  input.all_logits = options.all_logits;
  Tensor features;
  TensorView features_view;
  if (options.image != nullptr) {
    const Image& image = *options.image;
    const TensorView pixels{const_cast<float*>(image.pixels.data()), DType::kF32,
                            Shape{image.channels, image.height, image.width}};
    GR_ASSIGN_OR_RETURN(features, engine_->model().EncodeImage(pixels));
    features_view = features.view();
    input.image_features = &features_view;
    input.bidirectional = true;
  } else if (engine_->model().config().family == ModelFamily::kPaliGemma && state_->length() == 0) {
    // HF treats a multi-token PaliGemma prompt as a bidirectional prefix even without an image.
    input.bidirectional = true;
  }
  GR_ASSIGN_OR_RETURN(TensorView logits, engine_->model().Forward(input, *state_));
  if (pending_.empty()) tokens_.insert(tokens_.end(), tokens.begin(), tokens.end());
  else tokens_.insert(tokens_.end(), tokens.begin() + pending_.size(), tokens.end());
  pending_.clear();
  const float* last = reinterpret_cast<const float*>(logits.row(logits.shape.rows() - 1));
  last_logits_.assign(last, last + logits.shape.cols());
  return logits;
}

Result<Logits> SessionImpl::Prefill(std::span<const int32_t> tokens, const PrefillOptions& options) {
  const size_t skipped = pending_.size();
  GR_ASSIGN_OR_RETURN(TensorView logits, Feed(tokens, options));
  Logits result;
  result.vocab_size = logits.shape.cols();
  // With a pending token in front, its row is not part of what the caller asked for.
  const int64_t first = options.all_logits ? static_cast<int64_t>(skipped) : 0;
  result.rows = logits.shape.rows() - first;
  const float* begin = reinterpret_cast<const float*>(logits.row(first));
  result.values.assign(begin, begin + result.rows * result.vocab_size);
  return result;
}

Result<GenerateResult> SessionImpl::Generate(std::span<const int32_t> prompt, const GenerateOptions& options) {
  GR_RETURN_IF_ERROR(ValidateSampling(options.sampling));
  if (options.max_new_tokens < 0) return InvalidArgument("max_new_tokens must be >= 0");
  GenerateResult result;
  const auto prefill_start = Clock::now();
  if (!prompt.empty()) {
    GR_RETURN_IF_ERROR(Feed(prompt, PrefillOptions{}).status());
    result.prompt_tokens = static_cast<int64_t>(prompt.size());
  } else if (last_logits_.empty()) {
    return InvalidArgument("nothing to generate from: the prompt is empty");
  }
  result.prefill_seconds = SecondsSince(prefill_start);

  Sampler sampler(options.sampling);
  const Tokenizer* tokenizer = engine_->tokenizer();
  std::unique_ptr<StreamingDecoder> stream;
  if (tokenizer != nullptr) stream = std::make_unique<StreamingDecoder>(*tokenizer);
  const auto decode_start = Clock::now();
  std::vector<float> logits = last_logits_;
  for (int step = 0; step < options.max_new_tokens; ++step) {
    if (!pending_.empty()) {
      if (length() >= context_length()) {
        result.stop_reason = StopReason::kContextFull;
        break;
      }
      GR_RETURN_IF_ERROR(Feed({}, PrefillOptions{}).status());
      logits = last_logits_;
    }
    const int32_t id = sampler.Sample(logits, tokens_);
    if (options.stop_at_eos && engine_->IsStop(id)) {
      result.stop_reason = StopReason::kEndOfSequence;
      break;
    }
    if (std::find(options.stop_ids.begin(), options.stop_ids.end(), id) != options.stop_ids.end()) {
      result.stop_reason = StopReason::kStopToken;
      break;
    }
    result.tokens.push_back(id);
    pending_.push_back(id);
    tokens_.push_back(id);
    std::string text = stream ? stream->Push(id) : std::string();
    result.text += text;
    if (options.on_token && !options.on_token(id, text)) {
      result.stop_reason = StopReason::kCallback;
      break;
    }
    result.stop_reason = StopReason::kMaxTokens;
  }
  if (stream) {
    const std::string rest = stream->Flush();
    result.text += rest;
    if (!rest.empty() && options.on_token) options.on_token(-1, rest);
  }
  result.decode_seconds = SecondsSince(decode_start);
  return result;
}

Result<Image> EngineImpl::LoadImage(const std::string& path) const {
  const ModelConfig& config = loaded_.model->config();
  if (config.family != ModelFamily::kPaliGemma) return Unsupported(info_.family + " models take no image");
  const VisionConfig& vision = config.vision;
  if (vision.num_channels != 3) {
    return Unsupported("the vision tower takes " + std::to_string(vision.num_channels) + " channels; images give 3");
  }
  // The checkpoint's preprocessor_config.json, when it ships one, says how its
  // images were prepared; PaliGemma's defaults are bicubic, 1/255, mean = std = 0.5.
  ImagePreprocess preprocess;
  preprocess.width = preprocess.height = vision.image_size;
  std::error_code ec;
  const std::filesystem::path preprocessor = std::filesystem::path(info_.source) / "preprocessor_config.json";
  if (std::filesystem::is_directory(info_.source, ec) && std::filesystem::exists(preprocessor, ec)) {
    GR_RETURN_IF_ERROR(ReadPreprocessorConfig(preprocessor.string(), &preprocess));
    if (preprocess.width != vision.image_size || preprocess.height != vision.image_size) {
      return InvalidArgument(preprocessor.string() + ": size " + std::to_string(preprocess.width) + "x" +
                             std::to_string(preprocess.height) + " does not match the vision tower's image_size " +
                             std::to_string(vision.image_size));
    }
  }
  GR_ASSIGN_OR_RETURN(RgbImage rgb, ReadImageFile(path));
  if (!preprocess.do_resize && (rgb.width != vision.image_size || rgb.height != vision.image_size)) {
    return InvalidArgument(path + ": the image is " + std::to_string(rgb.width) + "x" + std::to_string(rgb.height) +
                           " but the model takes " + std::to_string(vision.image_size) + "x" +
                           std::to_string(vision.image_size) + " and its preprocessor does not resize");
  }
  Image image;
  image.channels = 3;
  image.height = image.width = vision.image_size;
  image.pixels = PreprocessImage(rgb, preprocess);
  return image;
}

Result<std::vector<int32_t>> EngineImpl::ImagePrompt(std::string_view prompt) const {
  GR_ASSIGN_OR_RETURN(std::vector<int32_t> text, Tokenize(std::string(prompt) + "\n", /*add_bos=*/false));
  return ImagePromptFromIds(text);
}

Result<std::vector<int32_t>> EngineImpl::ImagePromptFromIds(std::span<const int32_t> text_ids) const {
  const ModelConfig& config = loaded_.model->config();
  if (config.family != ModelFamily::kPaliGemma) return Unsupported(info_.family + " models take no image");
  // ref: HF PaliGemmaProcessor build_string_from_input: image tokens, bos, prompt, "\n".
  std::vector<int32_t> ids(config.num_image_tokens, config.image_token_id);
  ids.push_back(config.bos_id);
  ids.insert(ids.end(), text_ids.begin(), text_ids.end());
  return ids;
}

}  // namespace

const char* StopReasonName(StopReason reason) {
  switch (reason) {
    case StopReason::kMaxTokens: return "max_tokens";
    case StopReason::kEndOfSequence: return "eos";
    case StopReason::kStopToken: return "stop_token";
    case StopReason::kStopString: return "stop_string";
    case StopReason::kCancelled: return "cancelled";
    case StopReason::kCallback: return "stopped";
    case StopReason::kContextFull: return "context_full";
  }
  return "unknown";
}

Result<std::unique_ptr<Engine>> Engine::Load(const std::string& model_path, const EngineOptions& options) {
  auto engine = std::make_unique<EngineImpl>();
  GR_RETURN_IF_ERROR(engine->Init(model_path, options));
  return std::unique_ptr<Engine>(std::move(engine));
}

}  // namespace gemmarun
