// The batch scheduler: continuous batching over a paged KV cache.
//
// Each Step() builds one forward pass under a token budget: first one token for
// every running sequence that is decoding, then prefill chunks of running
// sequences still reading their prompt, then newly admitted sequences (each
// starting after the longest prefix the block cache already holds). A sequence
// that needs a block when the pool is empty takes it from the most recently
// admitted other sequence, which is preempted: its blocks are freed and it goes
// back to the front of the queue, to be recomputed from its tokens later (the
// same numbers, so its output does not change). Sampling, stop conditions and
// callbacks run per sequence after the pass. ref: vLLM v1 scheduler.py.
#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <unordered_map>
#include <unordered_set>

#include "model/blocks.h"
#include "runtime/engine_core.h"
#include "runtime/generation.h"
#include "runtime/kv_blocks.h"
#include "runtime/logit_checks.h"

namespace gemmarun {
namespace {

using Clock = std::chrono::steady_clock;

double SecondsBetween(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

struct Sequence {
  RequestId id = 0;
  Request request;
  std::vector<int32_t> tokens;  // prompt, then every sampled token
  int64_t computed = 0;         // tokens whose K/V are in the cache
  int64_t prompt_tokens = 0;
  int64_t prefix_end = 0;       // bidirectional prefix (PaliGemma)
  int64_t cached_tokens = 0;    // prompt tokens taken from the prefix cache
  SequenceBlocks blocks;
  int slot = -1;                // recurrent state slot
  Tensor image_features;
  TensorView image_view;
  TensorView image_chunk_view;  // the rows of the chunk being computed
  bool image_encoded = false;
  std::unique_ptr<Generation> generation;
  uint64_t admitted = 0;        // admission order, for choosing whom to preempt
  Clock::time_point submitted, started;
  bool first_token_seen = false;
};

class SchedulerImpl final : public Scheduler {
 public:
  SchedulerImpl(const EngineCore& core, const SchedulerOptions& options, int64_t context, KvPool pool,
                KvBlockManager blocks, std::unique_ptr<Workspace> workspace)
      : core_(core),
        options_(options),
        context_(context),
        pool_(std::move(pool)),
        blocks_(std::move(blocks)),
        workspace_(std::move(workspace)) {
    for (int s = options_.max_sequences - 1; s >= 0; --s) free_slots_.push_back(s);
    PublishStats();
  }

  // Requests still here are dropped without their callbacks, whose captures
  // may already be gone (Shutdown() and a Step() end them with callbacks).
  ~SchedulerImpl() override = default;

  Result<RequestId> Submit(Request request) override {
    GR_RETURN_IF_ERROR(Validate(request));
    std::lock_guard<std::mutex> lock(mu_);
    if (shutdown_) return Unsupported("the scheduler is shutting down");
    // Submitted requests that a free sequence slot will take at the next step
    // are not waiting: two requests arriving together at an idle server with
    // --parallel 1 --max-queue 1 are one running and one queued, not a 429.
    const int free_slots = std::max(0, options_.max_sequences - stats_.running);
    const int queued = static_cast<int>(inbox_.size()) + stats_.waiting - free_slots;
    if (options_.max_queue > 0 && queued >= options_.max_queue) {
      return ResourceExhausted("the queue is full (" + std::to_string(options_.max_queue) + " waiting requests)");
    }
    const RequestId id = ++last_id_;
    auto seq = std::make_unique<Sequence>();
    seq->id = id;
    seq->submitted = Clock::now();
    seq->request = std::move(request);
    inbox_.push_back(std::move(seq));
    cv_.notify_all();
    return id;
  }

  void Cancel(RequestId id) override {
    std::lock_guard<std::mutex> lock(mu_);
    cancelled_.insert(id);
    cv_.notify_all();
  }

  bool WaitForWork(std::chrono::milliseconds timeout) override {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_for(lock, timeout, [&] { return HasWorkLocked(); });
    return HasWorkLocked();
  }

  void Shutdown() override {
    std::lock_guard<std::mutex> lock(mu_);
    shutdown_ = true;
    cv_.notify_all();
  }

  SchedulerStats stats() const override {
    std::lock_guard<std::mutex> lock(mu_);
    SchedulerStats s = stats_;
    s.waiting += static_cast<int>(inbox_.size());
    return s;
  }

  Result<bool> Step() override;

 private:
  bool HasWorkLocked() const {
    return !inbox_.empty() || !cancelled_.empty() || shutdown_ || stats_.running > 0 || stats_.waiting > 0;
  }
  Status Validate(const Request& request) const;
  void TakeInbox();
  // Finishes a sequence: hands back its memory and reports its result.
  void Finish(Sequence* seq, const Status& error);
  void Preempt(Sequence* seq);
  // Blocks for seq to compute up to `end`, preempting later-admitted sequences
  // when the pool is short. False if even that cannot make room.
  bool ReserveOrPreempt(Sequence* seq, int64_t end);
  bool Admit(Sequence* seq, int64_t budget, int64_t* chunk);
  SequenceChunk ChunkOf(Sequence* seq, int64_t count) const;
  void PublishStats();

  const EngineCore core_;
  const SchedulerOptions options_;
  const int64_t context_;
  KvPool pool_;
  KvBlockManager blocks_;
  std::unique_ptr<Workspace> workspace_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::unique_ptr<Sequence>> inbox_;  // guarded by mu_
  std::unordered_set<RequestId> cancelled_;      // guarded by mu_
  bool shutdown_ = false;                        // guarded by mu_
  RequestId last_id_ = 0;                        // guarded by mu_
  SchedulerStats stats_;                         // guarded by mu_

  // Owned by the stepping thread.
  std::unordered_map<RequestId, std::unique_ptr<Sequence>> sequences_;
  std::deque<Sequence*> waiting_;
  std::vector<Sequence*> running_;
  std::vector<int> free_slots_;
  uint64_t admissions_ = 0;
  SchedulerStats totals_;
};

Status SchedulerImpl::Validate(const Request& request) const {
  const ModelConfig& config = core_.model->config();
  const int64_t n = static_cast<int64_t>(request.prompt.size());
  if (n == 0) return InvalidArgument("the prompt is empty");
  for (int64_t i = 0; i < n; ++i) {
    const int32_t id = request.prompt[i];
    if (id < 0 || id >= config.vocab_size) {
      return InvalidArgument("token id " + std::to_string(id) + " at position " + std::to_string(i) +
                             " is outside the vocabulary of " + std::to_string(config.vocab_size));
    }
  }
  if (n > context_) {
    return OutOfRange("the prompt has " + std::to_string(n) + " tokens but the context holds " +
                      std::to_string(context_));
  }
  const int64_t prefix = BidirectionalPrefix(config, n);
  if (prefix > options_.token_budget) {
    return OutOfRange("the image and prompt prefix of " + std::to_string(prefix) +
                      " tokens must run in one pass, but the token budget is " + std::to_string(options_.token_budget));
  }
  if (request.image && config.family != ModelFamily::kPaliGemma) {
    return InvalidArgument(std::string(FamilyName(config.family)) + " models take no image");
  }
  return ValidateGenerateOptions(request.options);
}

void SchedulerImpl::TakeInbox() {
  std::deque<std::unique_ptr<Sequence>> arrived;
  std::unordered_set<RequestId> cancelled;
  bool shutdown;
  {
    std::lock_guard<std::mutex> lock(mu_);
    arrived.swap(inbox_);
    cancelled.swap(cancelled_);
    shutdown = shutdown_;
  }
  for (auto& seq : arrived) {
    Sequence* s = seq.get();
    s->tokens = s->request.prompt;
    s->prompt_tokens = static_cast<int64_t>(s->tokens.size());
    s->prefix_end = BidirectionalPrefix(core_.model->config(), s->prompt_tokens);
    std::span<const int32_t> stop_ids(core_.stop_ids);
    s->generation = std::make_unique<Generation>(s->request.options, core_.tokenizer, stop_ids);
    totals_.prompt_tokens += s->prompt_tokens;
    sequences_.emplace(s->id, std::move(seq));
    waiting_.push_back(s);
  }
  for (RequestId id : cancelled) {
    auto it = sequences_.find(id);
    if (it == sequences_.end()) continue;
    it->second->generation->Stop(StopReason::kCancelled);
    Finish(it->second.get(), Status::Ok());
  }
  if (shutdown) {
    std::vector<Sequence*> all;
    for (auto& [id, seq] : sequences_) all.push_back(seq.get());
    for (Sequence* seq : all) {
      seq->generation->Stop(StopReason::kCancelled);
      Finish(seq, Status::Ok());
    }
  }
}

void SchedulerImpl::Finish(Sequence* seq, const Status& error) {
  blocks_.Free(seq->blocks);
  if (seq->slot >= 0) free_slots_.push_back(seq->slot);
  seq->slot = -1;
  running_.erase(std::remove(running_.begin(), running_.end(), seq), running_.end());
  waiting_.erase(std::remove(waiting_.begin(), waiting_.end(), seq), waiting_.end());
  auto owned = std::move(sequences_.at(seq->id));
  sequences_.erase(seq->id);
  if (!owned->request.on_finish) return;
  if (!error.ok()) {
    owned->request.on_finish(owned->id, error);
    return;
  }
  GenerateResult& result = owned->generation->Finish();
  result.prompt_tokens = owned->prompt_tokens;
  result.cached_tokens = owned->cached_tokens;
  owned->request.on_finish(owned->id, result);
}

void SchedulerImpl::Preempt(Sequence* seq) {
  blocks_.Free(seq->blocks);
  if (seq->slot >= 0) free_slots_.push_back(seq->slot);
  seq->slot = -1;
  seq->computed = 0;
  running_.erase(std::remove(running_.begin(), running_.end(), seq), running_.end());
  waiting_.push_front(seq);
  ++totals_.preemptions;
}

bool SchedulerImpl::ReserveOrPreempt(Sequence* seq, int64_t end) {
  blocks_.ReleaseBehindWindows(seq->blocks, seq->computed);
  while (!blocks_.Reserve(seq->blocks, seq->computed, end)) {
    Sequence* victim = nullptr;
    for (Sequence* other : running_) {
      if (other != seq && (victim == nullptr || other->admitted > victim->admitted)) victim = other;
    }
    if (victim == nullptr || victim->admitted < seq->admitted) return false;
    Preempt(victim);
  }
  return true;
}

bool SchedulerImpl::Admit(Sequence* seq, int64_t budget, int64_t* chunk) {
  const ModelConfig& config = core_.model->config();
  if (seq->request.image && !seq->image_encoded) {
    const Image& image = *seq->request.image;
    const TensorView pixels{const_cast<float*>(image.pixels.data()), DType::kF32,
                            Shape{image.channels, image.height, image.width}};
    auto features = core_.model->EncodeImage(pixels);
    if (!features.ok()) {
      Finish(seq, features.status());
      return false;
    }
    seq->image_features = std::move(*features);
    seq->image_view = seq->image_features.view();
    seq->image_encoded = true;
  }
  if (seq->blocks.tables.empty()) {
    uint64_t first_parent = 0;
    if (seq->prefix_end > 0) {
      // Bidirectional prefix blocks depend on the whole prefix (and image).
      first_parent = HashBytes(0, seq->tokens.data(), seq->prefix_end * sizeof(int32_t));
      if (seq->image_encoded) {
        first_parent = HashBytes(first_parent, seq->image_features.data(), seq->image_features.bytes());
      }
    }
    seq->blocks = blocks_.NewSequence(first_parent, SupportsPrefixCache(config));
  }
  const int64_t cached = blocks_.TakeCachedPrefix(seq->blocks, seq->tokens);
  seq->computed = cached;
  const int64_t remaining = static_cast<int64_t>(seq->tokens.size()) - cached;
  *chunk = std::min(remaining, budget);
  if (seq->prefix_end > cached && cached + *chunk < seq->prefix_end) *chunk = 0;  // the prefix runs whole
  if (*chunk <= 0 || free_slots_.empty() ||
      !blocks_.Reserve(seq->blocks, seq->computed, seq->computed + *chunk)) {
    blocks_.Free(seq->blocks);
    seq->computed = 0;
    return false;
  }
  if (!seq->first_token_seen && seq->cached_tokens == 0) seq->cached_tokens = std::min(cached, seq->prompt_tokens);
  totals_.cached_prompt_tokens += std::min(cached, seq->prompt_tokens);
  seq->slot = free_slots_.back();
  free_slots_.pop_back();
  if (config.family == ModelFamily::kRecurrentGemma) pool_.ResetSlot(seq->slot);
  seq->admitted = ++admissions_;
  if (seq->started == Clock::time_point{}) seq->started = Clock::now();
  return true;
}

SequenceChunk SchedulerImpl::ChunkOf(Sequence* seq, int64_t count) const {
  SequenceChunk chunk;
  chunk.tokens = std::span<const int32_t>(seq->tokens).subspan(seq->computed, count);
  chunk.first_index = seq->computed;
  for (const auto& table : seq->blocks.tables) chunk.block_tables.emplace_back(table);
  chunk.recurrent_slot = seq->slot;
  chunk.prefix_end = seq->prefix_end;
  if (seq->image_encoded && seq->computed < seq->prefix_end) {
    // After a cached start, only the image rows of this chunk's image tokens.
    const int32_t image_token = core_.model->config().image_token_id;
    const auto before = std::count(seq->tokens.begin(), seq->tokens.begin() + seq->computed, image_token);
    const auto inside = std::count(chunk.tokens.begin(), chunk.tokens.end(), image_token);
    seq->image_chunk_view = RowRange(seq->image_view, before, inside);
    chunk.image_features = &seq->image_chunk_view;
  }
  const bool reaches_end = seq->computed + count == static_cast<int64_t>(seq->tokens.size());
  chunk.logits = reaches_end ? SequenceChunk::Logits::kLast : SequenceChunk::Logits::kNone;
  return chunk;
}

Result<bool> SchedulerImpl::Step() {
  TakeInbox();
  int64_t budget = options_.token_budget;
  std::vector<std::pair<Sequence*, int64_t>> planned;  // sequence, tokens this pass
  // 1. Running sequences: decode tokens first, then prefill chunks, oldest first.
  std::vector<Sequence*> by_age = running_;
  const auto remaining_of = [](const Sequence* seq) {
    return static_cast<int64_t>(seq->tokens.size()) - seq->computed;
  };
  std::sort(by_age.begin(), by_age.end(), [&](const Sequence* a, const Sequence* b) {
    const bool a_decodes = remaining_of(a) == 1, b_decodes = remaining_of(b) == 1;
    if (a_decodes != b_decodes) return a_decodes;
    return a->admitted < b->admitted;
  });
  for (Sequence* seq : by_age) {
    if (std::find(running_.begin(), running_.end(), seq) == running_.end()) continue;  // preempted meanwhile
    const int64_t remaining = static_cast<int64_t>(seq->tokens.size()) - seq->computed;
    const int64_t count = std::min(remaining, budget);
    if (count <= 0) continue;
    if (!ReserveOrPreempt(seq, seq->computed + count)) {
      Preempt(seq);
      continue;
    }
    planned.emplace_back(seq, count);
    budget -= count;
  }
  // Drop plans of sequences a later reservation preempted.
  planned.erase(std::remove_if(planned.begin(), planned.end(),
                               [&](const auto& p) {
                                 return std::find(running_.begin(), running_.end(), p.first) == running_.end();
                               }),
                planned.end());
  // 2. Admit waiting sequences in order while there is budget, room and memory.
  while (budget > 0 && !waiting_.empty() && static_cast<int>(running_.size()) < options_.max_sequences) {
    Sequence* seq = waiting_.front();
    int64_t chunk = 0;
    const size_t known = sequences_.size();
    if (!Admit(seq, budget, &chunk)) {
      if (sequences_.size() < known) continue;  // it failed and was finished
      break;
    }
    waiting_.pop_front();
    running_.push_back(seq);
    planned.emplace_back(seq, chunk);
    budget -= chunk;
  }
  if (planned.empty()) {
    PublishStats();
    return !sequences_.empty();
  }

  std::vector<SequenceChunk> chunks;
  chunks.reserve(planned.size());
  for (auto& [seq, count] : planned) chunks.push_back(ChunkOf(seq, count));
  auto logits = core_.model->Forward(chunks, pool_, *workspace_);
  const Status status = logits.ok() ? CheckLogitsFinite(*logits) : logits.status();
  if (!status.ok()) {
    for (auto& [seq, count] : planned) Finish(seq, status);
    PublishStats();
    return !sequences_.empty();
  }
  ++totals_.steps;
  int64_t row = 0;
  const Clock::time_point now = Clock::now();
  for (size_t i = 0; i < planned.size(); ++i) {
    Sequence* seq = planned[i].first;
    seq->computed += planned[i].second;
    blocks_.PublishFullBlocks(seq->blocks, std::span<const int32_t>(seq->tokens).first(seq->computed));
    if (chunks[i].logits == SequenceChunk::Logits::kNone) continue;
    float* values = reinterpret_cast<float*>(logits->row(row++));
    const std::span<float> logit_row(values, static_cast<size_t>(logits->shape.cols()));
    Generation& generation = *seq->generation;
    if (!seq->first_token_seen) {
      seq->first_token_seen = true;
      generation.result().time_to_first_token_seconds = SecondsBetween(seq->submitted, now);
    }
    const int32_t token = generation.Next(logit_row, seq->tokens);
    if (token >= 0) {
      seq->tokens.push_back(token);
      ++totals_.generated_tokens;
      // Like Session: the context ends generation once it is full with the new token.
      if (!generation.finished() && static_cast<int64_t>(seq->tokens.size()) >= context_) {
        generation.Stop(StopReason::kContextFull);
      }
    }
    if (generation.finished()) {
      generation.result().prefill_seconds = generation.result().time_to_first_token_seconds;
      generation.result().decode_seconds = SecondsBetween(seq->started, Clock::now()) -
                                           generation.result().time_to_first_token_seconds;
      Finish(seq, Status::Ok());
    }
  }
  PublishStats();
  return !sequences_.empty();
}

void SchedulerImpl::PublishStats() {
  SchedulerStats s = totals_;
  s.running = static_cast<int>(running_.size());
  s.waiting = static_cast<int>(waiting_.size());
  s.kv_blocks_total = blocks_.total_blocks();
  s.kv_blocks_cached = blocks_.cached_blocks();
  s.kv_blocks_used = blocks_.used_blocks();
  s.kv_bytes = static_cast<int64_t>(pool_.bytes());
  s.block_size = blocks_.block_size();
  std::lock_guard<std::mutex> lock(mu_);
  stats_ = s;
}

}  // namespace

bool SupportsPrefixCache(const ModelConfig& config) { return config.family != ModelFamily::kRecurrentGemma; }

int64_t BidirectionalPrefix(const ModelConfig& config, int64_t prompt_tokens) {
  // HF treats a whole PaliGemma prompt as the bidirectional prefix, image or not.
  return config.family == ModelFamily::kPaliGemma ? prompt_tokens : 0;
}

Result<std::unique_ptr<Scheduler>> CreateScheduler(const EngineCore& core, const SchedulerOptions& options) {
  const ModelConfig& config = core.model->config();
  if (options.max_sequences < 1 || options.max_sequences > 1024) {
    return InvalidArgument("max_sequences must be in 1..1024, got " + std::to_string(options.max_sequences));
  }
  if (options.token_budget < options.max_sequences || options.token_budget > 65536) {
    return InvalidArgument("the token budget must be in max_sequences (" + std::to_string(options.max_sequences) +
                           ")..65536, got " + std::to_string(options.token_budget));
  }
  if (options.max_queue < 0) return InvalidArgument("max_queue must be >= 0");
  const int64_t context = options.context_length > 0 ? options.context_length : core.default_context;
  if (context > config.max_seq_len) {
    return OutOfRange("context of " + std::to_string(context) + " tokens is outside 1.." +
                      std::to_string(config.max_seq_len) + " (max_position_embeddings)");
  }
  GR_RETURN_IF_ERROR(CheckKvCacheType(config, core.cache_type));
  const std::vector<KvGroup> groups = KvGroups(config);
  KvBlockManager probe(groups, std::vector<int64_t>(groups.size(), 0), kKvBlockSize, false);
  const std::vector<int64_t> per_sequence = probe.WorstCaseBlocks(context, options.token_budget);
  KvPoolShape shape;
  shape.dtype = core.cache_type;
  shape.block_size = kKvBlockSize;
  shape.recurrent_slots = config.family == ModelFamily::kRecurrentGemma ? options.max_sequences : 0;
  shape.blocks_per_group.resize(groups.size());
  // Without a memory budget every sequence gets its worst case in every group.
  // A budget buys "sequence equivalents" of that worst case, spread over the
  // groups in the same proportion (windowed groups never need more than
  // max_sequences windows); when a group runs short, the newest sequence waits.
  int64_t sequence_bytes = 0;
  for (size_t g = 0; g < groups.size(); ++g) {
    sequence_bytes += per_sequence[g] * kKvBlockSize * KvBytesPerPosition(config, groups[g], shape.dtype);
  }
  if (options.kv_memory_bytes > 0 && options.kv_memory_bytes < sequence_bytes) {
    return OutOfRange("a KV memory budget of " + std::to_string(options.kv_memory_bytes) +
                      " bytes holds fewer than one sequence of " + std::to_string(context) + " tokens (needs " +
                      std::to_string(sequence_bytes) + ")");
  }
  const double sequences = options.kv_memory_bytes > 0
                               ? static_cast<double>(options.kv_memory_bytes) / sequence_bytes
                               : static_cast<double>(options.max_sequences);
  for (size_t g = 0; g < groups.size(); ++g) {
    int64_t blocks = std::max<int64_t>(per_sequence[g], static_cast<int64_t>(sequences * per_sequence[g]));
    if (groups[g].window > 0) blocks = std::min<int64_t>(blocks, per_sequence[g] * options.max_sequences);
    shape.blocks_per_group[g] = blocks;
  }
  GR_ASSIGN_OR_RETURN(KvPool pool, KvPool::Create(config, shape, core.backend->memory()));
  KvBlockManager blocks(groups, shape.blocks_per_group, kKvBlockSize,
                        options.prefix_cache && SupportsPrefixCache(config));
  GR_ASSIGN_OR_RETURN(std::unique_ptr<Workspace> workspace,
                      core.model->NewWorkspace(options.token_budget, options.max_sequences));
  return std::unique_ptr<Scheduler>(std::make_unique<SchedulerImpl>(core, options, context, std::move(pool),
                                                                    std::move(blocks), std::move(workspace)));
}

}  // namespace gemmarun
