// The batch scheduler through the public API on the fixtures: greedy results of
// sequences that share passes equal each one run alone (Session), also when the
// pool is too small and sequences are preempted and recomputed; cancelled and
// finished sequences hand their blocks back; a prompt whose start is cached
// prefills only the rest and decodes the same tokens; requests that can never
// run are refused; and many threads may submit and cancel while one steps.
#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "gemmarun/engine.h"
#include "gemmarun/scheduler.h"

namespace gemmarun {
namespace {

std::string FixtureDir(const std::string& name) { return std::string(GR_TEST_DATA_DIR) + "/" + name; }

std::unique_ptr<Engine> LoadEngine(const std::string& name, const std::string& cache_type = "") {
  EngineOptions options;
  options.num_threads = 2;
  options.matmul_precision = "f32";
  options.cache_type = cache_type;
  options.context_length = 128;
  auto engine = Engine::Load(FixtureDir(name), options);
  EXPECT_TRUE(engine.ok()) << engine.status().message();
  return engine.ok() ? std::move(*engine) : nullptr;
}

std::vector<int32_t> Prompt(const Engine& engine, int length, int salt) {
  std::vector<int32_t> ids = {2};
  const int vocab = engine.info().vocab_size;
  for (int t = 1; t < length; ++t) {
    int32_t id = (t * 97 + salt * 31 + 7) % vocab;
    if (engine.info().takes_image && id == vocab - 1) id = 3;  // keep clear of the image token
    ids.push_back(id);
  }
  return ids;
}

std::vector<int32_t> SoloGreedy(Engine& engine, const std::vector<int32_t>& prompt, int max_new_tokens) {
  auto session = engine.NewSession();
  EXPECT_TRUE(session.ok()) << session.status().message();
  GenerateOptions options;
  options.max_new_tokens = max_new_tokens;
  options.stop_at_eos = false;
  auto result = (*session)->Generate(prompt, options);
  EXPECT_TRUE(result.ok()) << result.status().message();
  return result.ok() ? result->tokens : std::vector<int32_t>();
}

struct Outcome {
  std::map<RequestId, GenerateResult> results;
  std::map<RequestId, Status> errors;
};

Request GreedyRequest(std::vector<int32_t> prompt, int max_new_tokens, Outcome* outcome) {
  Request request;
  request.prompt = std::move(prompt);
  request.options.max_new_tokens = max_new_tokens;
  request.options.stop_at_eos = false;
  request.on_finish = [outcome](RequestId id, const Result<GenerateResult>& result) {
    if (result.ok()) {
      outcome->results[id] = *result;
    } else {
      outcome->errors[id] = result.status();
    }
  };
  return request;
}

void RunUntilIdle(Scheduler& scheduler, int max_steps = 10000) {
  for (int i = 0; i < max_steps; ++i) {
    auto more = scheduler.Step();
    ASSERT_TRUE(more.ok()) << more.status().message();
    if (!*more) return;
  }
  FAIL() << "the scheduler did not finish in " << max_steps << " steps";
}

class SchedulerFixtureTest : public ::testing::TestWithParam<const char*> {};

TEST_P(SchedulerFixtureTest, BatchedGreedyEqualsEachSequenceAlone) {
  auto engine = LoadEngine(GetParam());
  ASSERT_NE(engine, nullptr);
  SchedulerOptions options;
  options.max_sequences = 4;  // five requests: one waits for a free place
  // Long prompts prefill in several chunks beside decodes (a PaliGemma prompt is
  // one bidirectional prefix, which runs whole).
  options.token_budget = engine->info().takes_image ? 64 : 24;
  auto scheduler = engine->NewScheduler(options);
  ASSERT_TRUE(scheduler.ok()) << scheduler.status().message();
  const int lengths[] = {5, 37, 12, 50, 3};
  std::vector<std::vector<int32_t>> prompts;
  std::map<RequestId, size_t> which;
  Outcome outcome;
  for (int s = 0; s < 5; ++s) {
    prompts.push_back(Prompt(*engine, lengths[s], s));
    auto id = (*scheduler)->Submit(GreedyRequest(prompts.back(), 12, &outcome));
    ASSERT_TRUE(id.ok()) << id.status().message();
    which[*id] = s;
    // Admit the next one a couple of steps later, so prefill and decode mix.
    for (int k = 0; k < 2; ++k) ASSERT_TRUE((*scheduler)->Step().ok());
  }
  RunUntilIdle(**scheduler);
  ASSERT_TRUE(outcome.errors.empty());
  ASSERT_EQ(outcome.results.size(), 5u);
  for (auto& [id, result] : outcome.results) {
    SCOPED_TRACE("sequence " + std::to_string(which[id]));
    EXPECT_EQ(result.tokens, SoloGreedy(*engine, prompts[which[id]], 12));
    EXPECT_EQ(result.prompt_tokens, lengths[which[id]]);
    EXPECT_EQ(result.stop_reason, StopReason::kMaxTokens);
  }
  const SchedulerStats stats = (*scheduler)->stats();
  EXPECT_EQ(stats.running, 0);
  EXPECT_EQ(stats.waiting, 0);
  EXPECT_EQ(stats.kv_blocks_used, 0);
  EXPECT_EQ(stats.generated_tokens, 5 * 12);
}

TEST_P(SchedulerFixtureTest, PreemptedSequencesStillGiveTheirSoloResult) {
  auto engine = LoadEngine(GetParam());
  ASSERT_NE(engine, nullptr);
  SchedulerOptions options;
  options.max_sequences = 4;
  options.token_budget = 32;
  options.context_length = 64;
  // Room for about one and a half sequences of 64 positions: the others wait or
  // are preempted and recomputed.
  auto probe = engine->NewScheduler(SchedulerOptions{.max_sequences = 1, .token_budget = 32, .context_length = 64});
  ASSERT_TRUE(probe.ok());
  options.kv_memory_bytes = (*probe)->stats().kv_bytes * 3 / 2;
  auto scheduler = engine->NewScheduler(options);
  ASSERT_TRUE(scheduler.ok()) << scheduler.status().message();
  Outcome outcome;
  std::vector<std::vector<int32_t>> prompts;
  std::map<RequestId, size_t> which;
  for (int s = 0; s < 4; ++s) {
    prompts.push_back(Prompt(*engine, 20 + 3 * s, s));
    auto id = (*scheduler)->Submit(GreedyRequest(prompts.back(), 30, &outcome));
    ASSERT_TRUE(id.ok()) << id.status().message();
    which[*id] = s;
  }
  RunUntilIdle(**scheduler);
  for (auto& [id, error] : outcome.errors) ADD_FAILURE() << error.message();
  ASSERT_EQ(outcome.results.size(), 4u);
  for (auto& [id, result] : outcome.results) {
    SCOPED_TRACE("sequence " + std::to_string(which[id]));
    EXPECT_EQ(result.tokens, SoloGreedy(*engine, prompts[which[id]], 30));
  }
  const SchedulerStats stats = (*scheduler)->stats();
  const bool windowed_only = std::string(GetParam()) == "recurrentgemma";  // its pool never runs short
  if (!windowed_only) EXPECT_GT(stats.preemptions, 0);
  EXPECT_EQ(stats.kv_blocks_used, 0);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, SchedulerFixtureTest,
                         ::testing::Values("gemma1_mqa", "gemma2", "gemma3", "recurrentgemma", "paligemma"));

TEST(SchedulerTest, CancelledSequencesEndAndFreeTheirBlocks) {
  auto engine = LoadEngine("gemma2");
  ASSERT_NE(engine, nullptr);
  auto scheduler = engine->NewScheduler(SchedulerOptions{});
  ASSERT_TRUE(scheduler.ok());
  Outcome outcome;
  auto keep = (*scheduler)->Submit(GreedyRequest(Prompt(*engine, 30, 1), 20, &outcome));
  auto drop = (*scheduler)->Submit(GreedyRequest(Prompt(*engine, 30, 2), 100, &outcome));
  ASSERT_TRUE(keep.ok() && drop.ok());
  for (int i = 0; i < 3; ++i) ASSERT_TRUE((*scheduler)->Step().ok());
  EXPECT_GT((*scheduler)->stats().kv_blocks_used, 0);
  (*scheduler)->Cancel(*drop);
  ASSERT_TRUE((*scheduler)->Step().ok());
  ASSERT_EQ(outcome.results.count(*drop), 1u);
  EXPECT_EQ(outcome.results[*drop].stop_reason, StopReason::kCancelled);
  EXPECT_EQ((*scheduler)->stats().running, 1);
  RunUntilIdle(**scheduler);
  EXPECT_EQ(outcome.results[*keep].tokens.size(), 20u);
  EXPECT_EQ((*scheduler)->stats().kv_blocks_used, 0);
  (*scheduler)->Cancel(12345);  // unknown ids are ignored
  EXPECT_FALSE(*(*scheduler)->Step());
}

TEST(SchedulerTest, ACachedPrefixIsNotPrefilledAgainAndDecodesTheSame) {
  for (const char* fixture : {"gemma1_mqa", "gemma2"}) {
    SCOPED_TRACE(fixture);
    auto engine = LoadEngine(fixture);
    ASSERT_NE(engine, nullptr);
    const std::vector<int32_t> shared = Prompt(*engine, 70, 5);
    std::vector<int32_t> second = shared;
    for (int t = 0; t < 9; ++t) second.push_back(10 + t);
    auto cold = engine->NewScheduler(SchedulerOptions{.prefix_cache = false});
    auto warm = engine->NewScheduler(SchedulerOptions{});
    ASSERT_TRUE(cold.ok() && warm.ok());
    Outcome cold_out, warm_out;
    ASSERT_TRUE((*warm)->Submit(GreedyRequest(shared, 4, &warm_out)).ok());
    RunUntilIdle(**warm);
    auto id = (*warm)->Submit(GreedyRequest(second, 10, &warm_out));
    ASSERT_TRUE(id.ok());
    RunUntilIdle(**warm);
    auto cold_id = (*cold)->Submit(GreedyRequest(second, 10, &cold_out));
    ASSERT_TRUE(cold_id.ok());
    RunUntilIdle(**cold);
    // 70 shared tokens: four whole blocks of 16 come from the cache.
    EXPECT_EQ(warm_out.results[*id].cached_tokens, 64);
    EXPECT_EQ(cold_out.results[*cold_id].cached_tokens, 0);
    EXPECT_EQ(warm_out.results[*id].tokens, cold_out.results[*cold_id].tokens);
    EXPECT_EQ((*warm)->stats().cached_prompt_tokens, 64);
    EXPECT_GT((*warm)->stats().kv_blocks_cached, 0);
  }
}

TEST(SchedulerTest, ImagePrefixesMatchTheSessionAndReuseTheCache) {
  auto engine = LoadEngine("paligemma");
  ASSERT_NE(engine, nullptr);
  auto image = engine->LoadImage(FixtureDir("paligemma") + "/image.png");
  ASSERT_TRUE(image.ok()) << image.status().message();
  auto shared_image = std::make_shared<const Image>(*image);
  std::vector<int32_t> text = Prompt(*engine, 12, 3);
  auto prompt = engine->ImagePromptFromIds(text);
  ASSERT_TRUE(prompt.ok());
  // Alone: the session prefills image + prompt as one bidirectional prefix.
  auto session = engine->NewSession();
  ASSERT_TRUE(session.ok());
  PrefillOptions prefill;
  prefill.image = image.operator->();
  ASSERT_TRUE((*session)->Prefill(*prompt, prefill).ok());
  GenerateOptions options;
  options.max_new_tokens = 8;
  options.stop_at_eos = false;
  auto alone = (*session)->Generate({}, options);
  ASSERT_TRUE(alone.ok()) << alone.status().message();

  auto scheduler = engine->NewScheduler(SchedulerOptions{.max_sequences = 2});
  ASSERT_TRUE(scheduler.ok());
  Outcome outcome;
  std::vector<RequestId> ids;
  for (int r = 0; r < 2; ++r) {  // the second finds the first's prefix blocks
    Request request = GreedyRequest(*prompt, 8, &outcome);
    request.image = shared_image;
    auto id = (*scheduler)->Submit(std::move(request));
    ASSERT_TRUE(id.ok()) << id.status().message();
    ids.push_back(*id);
    RunUntilIdle(**scheduler);
  }
  for (auto& [id, error] : outcome.errors) ADD_FAILURE() << error.message();
  ASSERT_EQ(outcome.results.size(), 2u);
  EXPECT_EQ(outcome.results[ids[0]].tokens, alone->tokens);
  EXPECT_EQ(outcome.results[ids[1]].tokens, alone->tokens);
  EXPECT_EQ(outcome.results[ids[0]].cached_tokens, 0);
  EXPECT_EQ(outcome.results[ids[1]].cached_tokens, static_cast<int64_t>(prompt->size() - 1) / 16 * 16);
}

TEST(SchedulerTest, RefusesWhatCanNeverRun) {
  auto engine = LoadEngine("gemma1_mqa");
  ASSERT_NE(engine, nullptr);
  EXPECT_FALSE(engine->NewScheduler(SchedulerOptions{.max_sequences = 0}).ok());
  EXPECT_FALSE(engine->NewScheduler(SchedulerOptions{.max_sequences = 8, .token_budget = 4}).ok());
  EXPECT_FALSE(engine->NewScheduler(SchedulerOptions{.kv_memory_bytes = 1}).ok());
  auto scheduler =
      engine->NewScheduler(SchedulerOptions{.max_sequences = 1, .context_length = 32, .max_queue = 1});
  ASSERT_TRUE(scheduler.ok());
  Outcome outcome;
  auto too_long = (*scheduler)->Submit(GreedyRequest(Prompt(*engine, 33, 0), 1, &outcome));
  ASSERT_FALSE(too_long.ok());
  EXPECT_EQ(too_long.status().code(), StatusCode::kOutOfRange);
  EXPECT_FALSE((*scheduler)->Submit(GreedyRequest({}, 1, &outcome)).ok());
  EXPECT_FALSE((*scheduler)->Submit(GreedyRequest({2, 1 << 30}, 1, &outcome)).ok());
  Request bad_sampling = GreedyRequest(Prompt(*engine, 4, 0), 1, &outcome);
  bad_sampling.options.sampling.top_p = 2.0f;
  EXPECT_FALSE((*scheduler)->Submit(std::move(bad_sampling)).ok());
  // Before any step: the first takes the one free slot, the second is the one queued.
  ASSERT_TRUE((*scheduler)->Submit(GreedyRequest(Prompt(*engine, 4, 0), 1, &outcome)).ok());
  ASSERT_TRUE((*scheduler)->Submit(GreedyRequest(Prompt(*engine, 4, 0), 1, &outcome)).ok());
  auto full = (*scheduler)->Submit(GreedyRequest(Prompt(*engine, 4, 0), 1, &outcome));
  ASSERT_FALSE(full.ok());
  EXPECT_EQ(full.status().code(), StatusCode::kResourceExhausted);
}

TEST(SchedulerTest, StopsAtTheContextEnd) {
  auto engine = LoadEngine("gemma3");
  ASSERT_NE(engine, nullptr);
  auto scheduler = engine->NewScheduler(SchedulerOptions{.context_length = 40});
  ASSERT_TRUE(scheduler.ok());
  Outcome outcome;
  auto id = (*scheduler)->Submit(GreedyRequest(Prompt(*engine, 30, 0), -1, &outcome));
  ASSERT_TRUE(id.ok());
  RunUntilIdle(**scheduler);
  EXPECT_EQ(outcome.results[*id].stop_reason, StopReason::kContextFull);
  EXPECT_EQ(outcome.results[*id].tokens.size(), 10u);
}

// Run under ThreadSanitizer in CI: submitters and a canceller race the stepping thread.
TEST(SchedulerTest, ThreadsSubmitAndCancelWhileOneSteps) {
  auto engine = LoadEngine("gemma1_mqa");
  ASSERT_NE(engine, nullptr);
  auto scheduler = engine->NewScheduler(SchedulerOptions{.max_sequences = 6, .token_budget = 64});
  ASSERT_TRUE(scheduler.ok());
  std::mutex mu;
  std::map<RequestId, StopReason> finished;
  std::atomic<int> submitted{0};
  std::atomic<bool> stop{false};
  std::thread stepper([&] {
    while (!stop.load() || (*scheduler)->stats().running + (*scheduler)->stats().waiting > 0) {
      if (!(*scheduler)->WaitForWork(std::chrono::milliseconds(5))) continue;
      ASSERT_TRUE((*scheduler)->Step().ok());
    }
  });
  std::vector<std::thread> clients;
  for (int c = 0; c < 4; ++c) {
    clients.emplace_back([&, c] {
      for (int r = 0; r < 6; ++r) {
        Request request;
        request.prompt = Prompt(*engine, 5 + r + c, c * 10 + r);
        request.options.max_new_tokens = 8;
        int tokens_seen = 0;
        request.options.on_token = [tokens_seen](int32_t, const std::string&) mutable { return ++tokens_seen < 100; };
        request.on_finish = [&](RequestId id, const Result<GenerateResult>& result) {
          std::lock_guard<std::mutex> lock(mu);
          finished[id] = result.ok() ? result->stop_reason : StopReason::kCallback;
        };
        auto id = (*scheduler)->Submit(std::move(request));
        ASSERT_TRUE(id.ok()) << id.status().message();
        ++submitted;
        if (r % 3 == 2) (*scheduler)->Cancel(*id);
      }
    });
  }
  for (auto& t : clients) t.join();
  stop = true;
  stepper.join();
  std::lock_guard<std::mutex> lock(mu);
  EXPECT_EQ(static_cast<int>(finished.size()), submitted.load());
  int cancelled = 0;
  for (auto& [id, reason] : finished) cancelled += reason == StopReason::kCancelled;
  EXPECT_LE(cancelled, 8);
  EXPECT_EQ((*scheduler)->stats().kv_blocks_used, 0);
}

}  // namespace
}  // namespace gemmarun
