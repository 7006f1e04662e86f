// Engine and Session: the public API over a loaded Model, its tokenizer and a
// backend. The generation loop lives here: prefill the prompt in one batched
// pass, then sample and feed one token at a time through the same state.
#include "gemmarun/engine.h"
#include "gemmarun/scheduler.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>

#include "backend/cpu/cpu_target.h"
#include "backend/cpu/kernels.h"
#include "backend/registry/registry.h"
#include "io/image.h"
#include "runtime/engine_core.h"
#include "runtime/generation.h"
#include "runtime/kv_blocks.h"
#include "runtime/logit_checks.h"
#include "runtime/model_source.h"
#include "runtime/sampler.h"

namespace gemmarun {
namespace {

using Clock = std::chrono::steady_clock;

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// One sequence with a private block pool sized for its context: the batched
// forward pass with a batch of one chunk at a time.
class SessionImpl final : public Session {
 public:
  SessionImpl(const EngineCore* core, int64_t context, int64_t chunk, KvPool pool, KvBlockManager blocks,
              std::unique_ptr<Workspace> workspace)
      : core_(core),
        context_(context),
        chunk_(chunk),
        pool_(std::move(pool)),
        blocks_(std::move(blocks)),
        workspace_(std::move(workspace)) {
    Reset();
  }

  int64_t length() const override { return static_cast<int64_t>(tokens_.size()); }
  int64_t context_length() const override { return context_; }
  const std::vector<int32_t>& tokens() const override { return tokens_; }
  size_t state_bytes() const override { return pool_.bytes(); }
  void Reset() override {
    if (!seq_.tables.empty()) blocks_.Free(seq_);
    seq_ = blocks_.NewSequence(0, /*cacheable=*/false);
    if (pool_.shape().recurrent_slots > 0) pool_.ResetSlot(0);
    computed_ = 0;
    prefix_end_ = 0;
    tokens_.clear();
    last_logits_.clear();
  }

  Result<Logits> Prefill(std::span<const int32_t> tokens, const PrefillOptions& options) override;
  Result<GenerateResult> Generate(std::span<const int32_t> prompt, const GenerateOptions& options) override;

 private:
  // Appends `tokens` and runs the model over every token not yet computed (a
  // sampled one first); `logits` gets the rows of `tokens` when all_logits,
  // and last_logits_ the last row.
  Status Feed(std::span<const int32_t> tokens, const PrefillOptions& options, Logits* logits);
  Status EnsureWorkspace(int64_t tokens, int64_t logit_rows);

  const EngineCore* core_;
  int64_t context_;
  int64_t chunk_;
  KvPool pool_;
  KvBlockManager blocks_;
  std::unique_ptr<Workspace> workspace_;
  SequenceBlocks seq_;
  int64_t computed_ = 0;             // tokens whose K/V (or state) the cache holds
  int64_t prefix_end_ = 0;           // PaliGemma's bidirectional prefix
  std::vector<int32_t> tokens_;      // every token of the sequence, sampled ones included
  std::vector<float> last_logits_;   // logits after the last computed token
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
    GR_ASSIGN_OR_RETURN(backend_, CreateBackend(options.device, BackendOptions{options.num_threads, precision}));
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
    GR_ASSIGN_OR_RETURN(loaded_, LoadModel(path, backend_.get(), options.progress, weight_dtype, options.context_length));
    const ModelConfig& config = loaded_.model->config();
    const int64_t default_context = options.context_length > 0 ? options.context_length
                                                                : std::min<int64_t>(config.max_seq_len, 8192);
    info_.family = FamilyName(config.family);
    info_.model_type = config.model_type;
    info_.source = path;
    info_.vocab_size = config.vocab_size;
    info_.model_dim = config.model_dim;
    info_.num_layers = config.num_layers();
    info_.max_seq_len = config.max_seq_len;
    info_.weight_bytes = loaded_.weight_bytes;
    const std::string products =
        precision == MatMulPrecision::kBF16 && HasBF16Matrices(*loaded_.model) ? ", bf16 products)" : ")";
    if (backend_->device().is_host()) {
      info_.backend = std::string(backend_->name()) + " (" + cpu::SelectedTarget() + ", " +
                      std::to_string(backend_->num_threads()) + " threads" + products;
    } else {
      info_.backend = backend_->device().ToString() + " (" + BackendDeviceName(*backend_) + products;
    }
    info_.takes_image = config.family == ModelFamily::kPaliGemma;
    info_.image_size = config.vision.image_size;
    info_.num_image_tokens = config.num_image_tokens;
    core_.model = loaded_.model.get();
    core_.backend = backend_.get();
    core_.tokenizer = loaded_.tokenizer.get();
    core_.default_context = default_context;
    core_.stop_ids.assign(config.eos_ids.begin(), config.eos_ids.end());
    if (loaded_.tokenizer) {
      core_.stop_ids.push_back(loaded_.tokenizer->eos_id());
      if (auto end_of_turn = loaded_.tokenizer->TokenId("<end_of_turn>")) core_.stop_ids.push_back(*end_of_turn);
    }
    core_.cache_type = DType::kF16;
    if (!options.cache_type.empty() && !ParseDType(options.cache_type, &core_.cache_type)) {
      return InvalidArgument("cache type '" + options.cache_type + "' is not one of f32, f16, bf16, q8_0");
    }
    GR_RETURN_IF_ERROR(CheckKvCacheType(config, core_.cache_type));
    return backend_->CheckKvCache(core_.cache_type, config.head_dim);
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

  Result<std::unique_ptr<Session>> NewSession(int64_t context_length, int64_t prefill_chunk) override;
  Result<std::unique_ptr<Scheduler>> NewScheduler(const SchedulerOptions& options) override {
    return CreateScheduler(core_, options);
  }

  Result<Image> LoadImage(const std::string& path) const override;
  Result<std::vector<int32_t>> ImagePrompt(std::string_view prompt) const override;
  Result<std::vector<int32_t>> ImagePromptFromIds(std::span<const int32_t> text_ids) const override;


 private:
  std::unique_ptr<Backend> backend_;
  LoadedModel loaded_;
  ModelInfo info_;
  EngineCore core_;
};

Result<std::unique_ptr<Session>> EngineImpl::NewSession(int64_t context_length, int64_t prefill_chunk) {
  const ModelConfig& config = loaded_.model->config();
  const int64_t context = context_length > 0 ? context_length : core_.default_context;
  if (context <= 0 || context > config.max_seq_len) {
    return OutOfRange("context of " + std::to_string(context) + " tokens is outside 1.." +
                      std::to_string(config.max_seq_len) + " (max_position_embeddings)");
  }
  // A small chunk means a small cache: sliding-window layers hold window +
  // chunk - 1 positions (in whole blocks).
  constexpr int64_t kDefaultChunk = 256;
  const int64_t chunk = prefill_chunk > 0 ? std::min(prefill_chunk, kDefaultChunk) : kDefaultChunk;
  const std::vector<KvGroup> groups = KvGroups(config);
  KvBlockManager probe(groups, std::vector<int64_t>(groups.size(), 0), kKvBlockSize, false);
  KvPoolShape shape;
  shape.dtype = core_.cache_type;
  shape.block_size = kKvBlockSize;
  shape.blocks_per_group = probe.WorstCaseBlocks(context, chunk);
  shape.recurrent_slots = config.family == ModelFamily::kRecurrentGemma ? 1 : 0;
  GR_ASSIGN_OR_RETURN(KvPool pool, KvPool::Create(config, shape, backend_->memory()));
  KvBlockManager blocks(groups, shape.blocks_per_group, kKvBlockSize, /*prefix_caching=*/false);
  GR_ASSIGN_OR_RETURN(std::unique_ptr<Workspace> workspace, loaded_.model->NewWorkspace(chunk, chunk));
  return std::unique_ptr<Session>(std::make_unique<SessionImpl>(&core_, context, chunk, std::move(pool),
                                                                std::move(blocks), std::move(workspace)));
}

Status SessionImpl::EnsureWorkspace(int64_t tokens, int64_t logit_rows) {
  if (tokens <= workspace_->max_tokens() && logit_rows <= workspace_->max_logit_rows()) return Status::Ok();
  // Only a PaliGemma prefix, which must run in one pass, outgrows the chunk.
  GR_ASSIGN_OR_RETURN(workspace_, core_->model->NewWorkspace(std::max(tokens, workspace_->max_tokens()),
                                                             std::max(logit_rows, workspace_->max_logit_rows())));
  return Status::Ok();
}

Status SessionImpl::Feed(std::span<const int32_t> tokens, const PrefillOptions& options, Logits* logits) {
  const Model& model = *core_->model;
  const ModelConfig& config = model.config();
  const int64_t first_new = static_cast<int64_t>(tokens_.size());
  const int64_t end = first_new + static_cast<int64_t>(tokens.size());
  if (end > context_) {
    return OutOfRange("the sequence needs " + std::to_string(end) + " tokens but the context holds " +
                      std::to_string(context_));
  }
  Tensor features;
  TensorView features_view;
  int64_t prefix_end = 0;
  if (options.image != nullptr || (BidirectionalPrefix(config, end) > 0 && computed_ == 0)) {
    // HF treats a PaliGemma prompt as a bidirectional prefix even without an image.
    if (computed_ != 0 || first_new != 0) return InvalidArgument("a bidirectional prefix must start the sequence");
    prefix_end = end;
    if (options.image != nullptr) {
      const Image& image = *options.image;
      const TensorView pixels{const_cast<float*>(image.pixels.data()), DType::kF32,
                              Shape{image.channels, image.height, image.width}};
      GR_ASSIGN_OR_RETURN(features, model.EncodeImage(pixels));
      features_view = features.view();
    }
    GR_RETURN_IF_ERROR(EnsureWorkspace(end, options.all_logits ? end : 1));
  }
  if (options.all_logits) GR_RETURN_IF_ERROR(CheckLogitsFit(tokens.size(), config.vocab_size));
  const size_t old_size = tokens_.size();
  tokens_.insert(tokens_.end(), tokens.begin(), tokens.end());
  if (logits != nullptr) {
    logits->vocab_size = config.vocab_size;
    logits->rows = 0;
    logits->values.clear();
  }
  while (computed_ < end) {
    const int64_t count = prefix_end > 0 ? end - computed_ : std::min(chunk_, end - computed_);
    blocks_.ReleaseBehindWindows(seq_, computed_);
    if (!blocks_.Reserve(seq_, computed_, computed_ + count)) {
      tokens_.resize(old_size);
      return Internal("the session's block pool is short of blocks");
    }
    SequenceChunk chunk;
    chunk.tokens = std::span<const int32_t>(tokens_).subspan(computed_, count);
    chunk.first_index = computed_;
    for (const auto& table : seq_.tables) chunk.block_tables.emplace_back(table);
    chunk.recurrent_slot = pool_.shape().recurrent_slots > 0 ? 0 : -1;
    chunk.prefix_end = std::max(prefix_end, prefix_end_);
    chunk.image_features = features_view.empty() ? nullptr : &features_view;
    // Rows of the caller's tokens (a sampled token in front is not one of them).
    const int64_t first_wanted = std::max(computed_, first_new);
    const bool all = options.all_logits && computed_ + count > first_new;
    chunk.logits = all ? SequenceChunk::Logits::kAll
                       : (computed_ + count == end ? SequenceChunk::Logits::kLast : SequenceChunk::Logits::kNone);
    auto out = model.Forward(std::span<const SequenceChunk>(&chunk, 1), pool_, *workspace_);
    Status status = out.ok() ? CheckLogitsFinite(*out) : out.status();
    if (!status.ok()) {
      tokens_.resize(old_size);
      return status;
    }
    const int64_t vocab = out->shape.cols();
    if (all && logits != nullptr) {
      const int64_t skip = first_wanted - computed_;
      const float* begin = reinterpret_cast<const float*>(out->row(skip));
      logits->values.insert(logits->values.end(), begin, begin + (count - skip) * vocab);
      logits->rows += count - skip;
    }
    if (computed_ + count == end) {
      const float* last = reinterpret_cast<const float*>(out->row(out->shape.rows() - 1));
      last_logits_.assign(last, last + vocab);
    }
    computed_ += count;
  }
  prefix_end_ = std::max(prefix_end_, prefix_end);
  if (logits != nullptr && !options.all_logits) {
    logits->rows = 1;
    logits->values = last_logits_;
  }
  return Status::Ok();
}

Result<Logits> SessionImpl::Prefill(std::span<const int32_t> tokens, const PrefillOptions& options) {
  if (tokens.empty() && computed_ == static_cast<int64_t>(tokens_.size())) {
    return InvalidArgument("no tokens to process");
  }
  Logits result;
  GR_RETURN_IF_ERROR(Feed(tokens, options, &result));
  return result;
}

Result<GenerateResult> SessionImpl::Generate(std::span<const int32_t> prompt, const GenerateOptions& options) {
  GR_RETURN_IF_ERROR(ValidateGenerateOptions(options));
  const auto prefill_start = Clock::now();
  if (!prompt.empty()) {
    GR_RETURN_IF_ERROR(Feed(prompt, PrefillOptions{}, nullptr));
  } else if (last_logits_.empty() && computed_ == static_cast<int64_t>(tokens_.size())) {
    return InvalidArgument("nothing to generate from: the prompt is empty");
  }
  const double prefill_seconds = SecondsSince(prefill_start);

  Generation generation(options, core_->tokenizer, core_->stop_ids);
  const auto decode_start = Clock::now();
  std::vector<float> logits = last_logits_;
  while (!generation.finished()) {
    if (computed_ < length()) {  // the last sampled token
      if (length() >= context_length()) {
        generation.Stop(StopReason::kContextFull);
        break;
      }
      GR_RETURN_IF_ERROR(Feed({}, PrefillOptions{}, nullptr));
      logits = last_logits_;
    }
    const int32_t id = generation.Next(logits, tokens_);
    if (id >= 0) tokens_.push_back(id);
  }
  GenerateResult result = std::move(generation.Finish());
  result.prompt_tokens = static_cast<int64_t>(prompt.size());
  result.prefill_seconds = prefill_seconds;
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

Status CheckDevice(std::string_view device) { return CheckBackendName(device); }

Result<std::unique_ptr<Engine>> Engine::Load(const std::string& model_path, const EngineOptions& options) {
  auto engine = std::make_unique<EngineImpl>();
  GR_RETURN_IF_ERROR(engine->Init(model_path, options));
  return std::unique_ptr<Engine>(std::move(engine));
}

}  // namespace gemmarun
