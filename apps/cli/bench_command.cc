// `gemmarun bench`: prefill and decode speed of a model, measured as llama.cpp's
// llama-bench does (pp512 / tg128 on random token ids, one warm-up, mean ± sd
// over --reps runs), plus what decode achieves against the memory system: decode
// reads every weight once per token, so weight bytes × tokens/s is its read
// bandwidth, compared with a streaming read over a large buffer measured here
// with the same thread count.
#if defined(__x86_64__)
#include <immintrin.h>
#endif
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <regex>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "common.h"
#include "gemmarun/scheduler.h"

namespace gemmarun::cli {
namespace {

using Clock = std::chrono::steady_clock;

struct BenchFlags {
  ModelFlags model;
  int prompt_tokens = 512;
  int gen_tokens = 128;
  int reps = 5;
  uint32_t seed = 1;
  int bandwidth_mib = 1024;
  bool bandwidth_only = false;
  bool json = false;
  std::vector<int> batches;  // --batch: aggregate speed of B sequences decoding together
  std::vector<int> depths;   // -d: measure after this many tokens are in the cache
  std::string cpu_target;  // pins the kernel target, as GEMMARUN_CPU_TARGET
  // --temp > 0: every decode run is repeated with these settings, in alternating
  // order, so sampling's cost shows as a ratio to greedy decode of the same moment.
  SamplingOptions sampling;
};

struct Stats {
  std::vector<double> values;
  double mean() const {
    double sum = 0.0;
    for (double v : values) sum += v;
    return values.empty() ? 0.0 : sum / values.size();
  }
  double sd() const {  // sample standard deviation, as llama-bench reports
    if (values.size() < 2) return 0.0;
    const double m = mean();
    double sum = 0.0;
    for (double v : values) sum += (v - m) * (v - m);
    return std::sqrt(sum / (values.size() - 1));
  }
  nlohmann::json Json() const { return {{"mean", mean()}, {"sd", sd()}, {"values", values}}; }
};

double SecondsSince(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

// -t, or every hardware thread when it was not given.
int RequestedThreads(int requested) {
  return requested > 0 ? requested : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}

// ModelInfo::backend reads "cpu (AVX3, 2 threads)" or "cpu (AVX3, 2 threads, bf16 products)".
int ThreadsOf(const ModelInfo& info, int requested) {
  std::smatch match;
  static const std::regex kThreads(R"((\d+) threads?)");
  if (std::regex_search(info.backend, match, kThreads)) return std::stoi(match[1].str());
  return RequestedThreads(requested);
}

// Resident now (/proc/self/statm), 0 where unknown.
size_t CurrentRssBytes() {
  std::FILE* f = std::fopen("/proc/self/statm", "r");
  if (f == nullptr) return 0;
  unsigned long long size = 0, resident = 0;
  const bool ok = std::fscanf(f, "%llu %llu", &size, &resident) == 2;
  std::fclose(f);
  return ok ? static_cast<size_t>(resident) * static_cast<size_t>(sysconf(_SC_PAGESIZE)) : 0;
}

// MemAvailable of /proc/meminfo, 0 where unknown.
size_t AvailableMemoryBytes() {
  std::FILE* f = std::fopen("/proc/meminfo", "r");
  if (f == nullptr) return 0;
  char line[256];
  unsigned long long kib = 0;
  while (std::fgets(line, sizeof(line), f) != nullptr) {
    if (std::sscanf(line, "MemAvailable: %llu kB", &kib) == 1) break;
  }
  std::fclose(f);
  return static_cast<size_t>(kib) * 1024;
}

// "" when a --bandwidth-mib buffer fits in the memory available now, else the error.
std::string CheckBandwidthBuffer(int mib) {
  const size_t available = AvailableMemoryBytes();
  if (available == 0 || (size_t(mib) << 20) <= available) return "";
  return "--bandwidth-mib " + std::to_string(mib) + " is more than the " + std::to_string(available >> 20) +
         " MiB of memory available";
}

size_t PeakRssBytes() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<size_t>(usage.ru_maxrss) * 1024;  // Linux reports KiB
}

// Sum of words[0, count): the portable loop. Compiled for the baseline ISA it
// issues 64- or 128-bit loads, too few per cycle for one core to keep memory
// busy, so it under-reports the bandwidth; only CPUs without AVX2 use it.
uint64_t SumWordsScalar(const uint64_t* words, size_t count) {
  uint64_t acc[8] = {};
  size_t i = 0;
  for (; i + 8 <= count; i += 8) {
    for (int k = 0; k < 8; ++k) acc[k] += words[i + k];
  }
  for (; i < count; ++i) acc[0] += words[i];
  uint64_t total = 0;
  for (uint64_t a : acc) total += a;
  return total;
}

#if defined(__x86_64__)
// The same sum with 256-bit loads into four independent accumulators (as
// bench/micro/matmul_bench.cc's SumWords), the way the engine's kernels read
// weights: on a 2-core AVX-512 VM a vector loop measured 61 GB/s with 2 threads
// where the scalar one said 37. Unaligned loads: a slice starts at any word.
__attribute__((target("avx2"))) uint64_t SumWordsAvx2(const uint64_t* words, size_t count) {
  const auto* p = reinterpret_cast<const __m256i*>(words);
  __m256i s0 = _mm256_setzero_si256(), s1 = s0, s2 = s0, s3 = s0;
  size_t i = 0;
  for (; i + 16 <= count; i += 16, p += 4) {
    s0 = _mm256_add_epi64(s0, _mm256_loadu_si256(p));
    s1 = _mm256_add_epi64(s1, _mm256_loadu_si256(p + 1));
    s2 = _mm256_add_epi64(s2, _mm256_loadu_si256(p + 2));
    s3 = _mm256_add_epi64(s3, _mm256_loadu_si256(p + 3));
  }
  const __m256i s = _mm256_add_epi64(_mm256_add_epi64(s0, s1), _mm256_add_epi64(s2, s3));
  alignas(32) uint64_t lanes[4];
  _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), s);
  return lanes[0] + lanes[1] + lanes[2] + lanes[3] + SumWordsScalar(words + i, count - i);
}
#endif

using SumWordsFn = uint64_t (*)(const uint64_t*, size_t);

SumWordsFn PickSumWords() {
#if defined(__x86_64__)
  if (__builtin_cpu_supports("avx2")) return SumWordsAvx2;
#endif
  return SumWordsScalar;
}

// Read bandwidth of a streaming sum over `bytes` of anonymous memory (huge pages
// where the kernel gives them, like the engine's weights), `threads` threads
// each reading one slice with vector loads where the CPU has them; the best of
// `passes` timed passes after a warm one.
double MeasureReadBandwidth(size_t bytes, int threads, int passes) {
  constexpr size_t kAlign = size_t{2} << 20;
  bytes = bytes / kAlign * kAlign;
  if (bytes == 0) return 0.0;
  void* memory = std::aligned_alloc(kAlign, bytes);
  if (memory == nullptr) return -1.0;  // the caller reports it
  madvise(memory, bytes, MADV_HUGEPAGE);
  std::memset(memory, 1, bytes);
  const auto* words = static_cast<const uint64_t*>(memory);
  const size_t count = bytes / sizeof(uint64_t);
  const SumWordsFn sum_words = PickSumWords();
  std::atomic<uint64_t> sink{0};  // a use of every sum, so the reads stay
  auto read_slice = [&](int t) {
    const size_t begin = count * t / threads, end = count * (t + 1) / threads;
    sink.fetch_add(sum_words(words + begin, end - begin), std::memory_order_relaxed);
  };
  double best = 0.0;
  for (int pass = 0; pass <= passes; ++pass) {
    const auto start = Clock::now();
    std::vector<std::thread> workers;
    for (int t = 1; t < threads; ++t) workers.emplace_back(read_slice, t);
    read_slice(0);
    for (auto& w : workers) w.join();
    const double seconds = SecondsSince(start);
    if (pass > 0) best = std::max(best, bytes / seconds / 1e9);
  }
  std::free(memory);
  return best;
}

// "12.34 ± 0.56" right-aligned in `width` characters ("±" is two bytes).
std::string Format(const Stats& s, int precision, int width) {
  char text[64];
  std::snprintf(text, sizeof(text), "%.*f ± %.*f", precision, s.mean(), precision, s.sd());
  const int chars = static_cast<int>(std::strlen(text)) - 1;
  return std::string(std::max(0, width - chars), ' ') + text;
}

// The two lines above a table of results.
void PrintModelHeader(const ModelInfo& info, const std::string& dtype, double load_seconds, int reps) {
  std::printf("model   %s (%s, %d layers, %.2f GB of weights, %s)\n", info.source.c_str(), info.family.c_str(),
              info.num_layers, info.weight_bytes / 1e9, dtype.c_str());
  std::printf("backend %s; loaded in %.1f s; %d reps after a warm-up\n\n", info.backend.c_str(), load_seconds, reps);
}

// --bandwidth-only: --reps measurements of the read bandwidth, no model. Other
// engines' benchmarks (bench/run_vs_llamacpp.py) call it right before and
// after their own decode runs, to be judged against the same figures as ours.
int RunBandwidthOnly(const BenchFlags& flags) {
  if (!flags.model.model.empty()) return Fail("--bandwidth-only measures the memory alone; drop -m");
  if (flags.bandwidth_mib <= 0) return Fail("--bandwidth-only needs --bandwidth-mib > 0");
  if (const std::string error = CheckBandwidthBuffer(flags.bandwidth_mib); !error.empty()) return Fail(error);
  const int threads = RequestedThreads(CapThreads(flags.model.threads));
  Stats bandwidth;
  for (int rep = 0; rep < flags.reps; ++rep) {
    bandwidth.values.push_back(MeasureReadBandwidth(size_t(flags.bandwidth_mib) << 20, threads, 3));
    if (bandwidth.values.back() < 0) {
      return Fail(ResourceExhausted("--bandwidth-mib " + std::to_string(flags.bandwidth_mib) +
                                    ": cannot allocate the buffer"));
    }
  }
  if (flags.json) {
    nlohmann::json out = {{"threads", threads},
                          {"bandwidth_mib", flags.bandwidth_mib},
                          {"memory_bandwidth_gb_per_second", bandwidth.mean()},
                          {"memory_bandwidth", bandwidth.Json()}};
    std::printf("%s\n", out.dump().c_str());
  } else {
    std::printf("memory read bandwidth %s GB/s (%d threads, %d MiB streaming read, best of 3 per measurement)\n",
                Format(bandwidth, 1, 0).c_str(), threads, flags.bandwidth_mib);
  }
  return 0;
}

// --batch B1,B2,...: for each B, B sequences of -p random prompt tokens are
// prefilled in one pass and then decode -n tokens each, B tokens per forward
// pass, as llama.cpp's llama-batched-bench measures (S_PP and S_TG). Prefill
// tokens/s counts every sequence's prompt; decode tokens/s every sequence's
// tokens, all sequences together.
struct BatchRun {
  int batch = 0;
  Stats prefill_tps, decode_tps;
};

Result<BatchRun> MeasureBatch(Engine& engine, const BenchFlags& flags, int batch,
                              const std::function<int32_t()>& random_id) {
  SchedulerOptions options;
  options.max_sequences = batch;
  options.token_budget = std::max<int64_t>(batch, std::min<int64_t>(int64_t{batch} * std::max(1, flags.prompt_tokens), 8192));
  options.context_length = flags.prompt_tokens + flags.gen_tokens + 2;
  options.prefix_cache = false;
  GR_ASSIGN_OR_RETURN(std::unique_ptr<Scheduler> scheduler, engine.NewScheduler(options));
  BatchRun run;
  run.batch = batch;
  const int prompt_tokens = std::max(1, flags.prompt_tokens);
  for (int rep = 0; rep <= flags.reps; ++rep) {  // rep 0 warms up
    int first_tokens = 0, finished = 0;
    Status failure;
    for (int b = 0; b < batch; ++b) {
      Request request;
      for (int t = 0; t < prompt_tokens; ++t) request.prompt.push_back(random_id());
      request.options.max_new_tokens = flags.gen_tokens + 1;
      request.options.stop_at_eos = false;
      int seen = 0;
      request.options.on_token = [&first_tokens, seen](int32_t, const std::string&) mutable {
        if (seen++ == 0) ++first_tokens;
        return true;
      };
      request.on_finish = [&](RequestId, const Result<GenerateResult>& result) {
        ++finished;
        if (!result.ok()) failure = result.status();
      };
      GR_RETURN_IF_ERROR(scheduler->Submit(std::move(request)).status());
    }
    const auto start = Clock::now();
    Clock::time_point prefilled{};
    while (finished < batch) {
      GR_ASSIGN_OR_RETURN(bool more, scheduler->Step());
      if (first_tokens == batch && prefilled == Clock::time_point{}) prefilled = Clock::now();
      if (!more) break;
    }
    GR_RETURN_IF_ERROR(failure);
    if (rep == 0) continue;
    const double prefill_seconds = std::chrono::duration<double>(prefilled - start).count();
    const double decode_seconds = SecondsSince(prefilled);
    if (flags.prompt_tokens > 0) run.prefill_tps.values.push_back(double(batch) * prompt_tokens / prefill_seconds);
    if (flags.gen_tokens > 0) run.decode_tps.values.push_back(double(batch) * flags.gen_tokens / decode_seconds);
  }
  return run;
}

int RunBatches(const BenchFlags& flags, Engine& engine, const std::function<int32_t()>& random_id,
               double load_seconds) {
  const ModelInfo& info = engine.info();
  std::vector<BatchRun> runs;
  ProgressBar bar("bench --batch");
  for (size_t i = 0; i < flags.batches.size(); ++i) {
    auto run = MeasureBatch(engine, flags, flags.batches[i], random_id);
    if (!run.ok()) return Fail(run.status());
    runs.push_back(std::move(*run));
    bar.Update(i + 1, flags.batches.size());
  }
  bar.Finish();
  const double one = runs.front().batch == 1 ? runs.front().decode_tps.mean() : 0.0;
  if (flags.json) {
    nlohmann::json out;
    out["model"] = info.source;
    out["family"] = info.family;
    out["backend"] = info.backend;
    out["weight_bytes"] = info.weight_bytes;
    out["load_seconds"] = load_seconds;
    out["prompt_tokens"] = flags.prompt_tokens;
    out["gen_tokens"] = flags.gen_tokens;
    out["reps"] = flags.reps;
    out["peak_rss_bytes"] = PeakRssBytes();
    out["batches"] = nlohmann::json::array();
    for (const BatchRun& run : runs) {
      out["batches"].push_back({{"batch", run.batch},
                                {"decode_tokens_per_second", run.decode_tps.mean()},
                                {"decode", run.decode_tps.Json()},
                                {"prefill_tokens_per_second", run.prefill_tps.mean()},
                                {"prefill", run.prefill_tps.Json()}});
    }
    std::printf("%s\n", out.dump(2).c_str());
    return 0;
  }
  std::printf("model   %s (%s, %.2f GB of weights)\nbackend %s; -p %d, -n %d per sequence, %d reps\n\n",
              info.source.c_str(), info.family.c_str(), info.weight_bytes / 1e9, info.backend.c_str(),
              flags.prompt_tokens, flags.gen_tokens, flags.reps);
  std::printf("| batch |  prefill tokens/s (all) |   decode tokens/s (all) | x batch 1 |\n");
  std::printf("| ----: | ----------------------: | ----------------------: | --------: |\n");
  for (const BatchRun& run : runs) {
    std::printf("| %5d | %s | %s | %9.2f |\n", run.batch, Format(run.prefill_tps, 1, 23).c_str(),
                Format(run.decode_tps, 1, 23).c_str(), one > 0 ? run.decode_tps.mean() / one : 0.0);
  }
  std::printf("\npeak RSS %.2f GiB\n", PeakRssBytes() / 1073741824.0);
  return 0;
}

// -d: prefill and decode measured with `depth` random tokens already in the
// cache (llama-bench's -d), where attention over the cache decides the speed.
// Each rep prefills the depth untimed, then decodes -n tokens (timed: decode at
// depth .. depth + n), then prefills -p tokens (timed: prefill after depth + n + 2
// tokens; a fresh depth prefill per test would double the cost of long depths).
int RunDepths(const BenchFlags& flags) {
  for (int depth : flags.depths) {
    if (depth < 0) return Fail("-d/--depth values must be >= 0, got " + std::to_string(depth));
  }
  const auto load_start = Clock::now();
  auto loaded = flags.model.Load();
  if (!loaded.ok()) return Fail(loaded.status());
  const double load_seconds = SecondsSince(load_start);
  std::unique_ptr<Engine> engine = std::move(loaded).value();
  const ModelInfo info = engine->info();
  const int threads = ThreadsOf(info, flags.model.threads);
  int32_t image_token = -1;  // PaliGemma's placeholder needs an image: never drawn
  if (info.takes_image) {
    auto layout = engine->ImagePromptFromIds({});
    if (layout.ok() && !layout->empty()) image_token = layout->front();
  }
  std::mt19937 rng(flags.seed);
  std::uniform_int_distribution<int32_t> uniform(0, info.vocab_size - 1);
  auto random_ids = [&](int count) {
    std::vector<int32_t> ids(count);
    for (int32_t& id : ids) {
      do id = uniform(rng);
      while (id == image_token);
    }
    return ids;
  };
  struct DepthResult {
    int depth;
    Stats prefill, decode;
  };
  std::vector<DepthResult> results;
  ProgressBar bar("bench");
  const size_t total_steps = flags.depths.size() * flags.reps;
  size_t step = 0;
  for (int depth : flags.depths) {
    const int64_t context = int64_t{depth} + flags.gen_tokens + 2 + flags.prompt_tokens;
    if (context > info.max_seq_len) {
      return Fail("the model holds " + std::to_string(info.max_seq_len) + " positions; -d " + std::to_string(depth) +
                  " with -p/-n asks for " + std::to_string(context));
    }
    auto new_session = engine->NewSession(context);
    if (!new_session.ok()) return Fail(new_session.status());
    std::unique_ptr<Session> session = std::move(new_session).value();
    const std::vector<int32_t> history = random_ids(depth);
    const std::vector<int32_t> prompt = random_ids(flags.prompt_tokens);
    const std::vector<int32_t> first_token = random_ids(1);
    DepthResult result{depth, {}, {}};
    // One untimed round first (page faults, caches, thread start), then the reps.
    for (int rep = -1; rep < flags.reps; ++rep) {
      session->Reset();
      if (depth > 0) {
        if (auto logits = session->Prefill(history); !logits.ok()) return Fail(logits.status());
      }
      if (flags.gen_tokens > 0) {
        GenerateOptions options;
        options.max_new_tokens = flags.gen_tokens + 1;  // the first token comes from the prompt's logits
        options.stop_at_eos = false;
        auto generated = session->Generate(first_token, options);
        if (!generated.ok()) return Fail(generated.status());
        if (static_cast<int>(generated->tokens.size()) != flags.gen_tokens + 1) {
          return Fail("decode stopped after " + std::to_string(generated->tokens.size()) + " tokens (" +
                      StopReasonName(generated->stop_reason) + ")");
        }
        if (rep >= 0) result.decode.values.push_back(flags.gen_tokens / generated->decode_seconds);
      }
      if (flags.prompt_tokens > 0) {
        const auto start = Clock::now();
        if (auto logits = session->Prefill(prompt); !logits.ok()) return Fail(logits.status());
        if (rep >= 0) result.prefill.values.push_back(flags.prompt_tokens / SecondsSince(start));
      }
      if (rep >= 0) bar.Update(++step, total_steps);
    }
    results.push_back(std::move(result));
  }
  bar.Finish();

  const std::string dtype = flags.model.dtype.empty() ? "stored" : flags.model.dtype;
  if (flags.json) {
    nlohmann::json out;
    out["model"] = info.source;
    out["family"] = info.family;
    out["backend"] = info.backend;
    out["threads"] = threads;
    out["dtype"] = dtype;
    out["load_seconds"] = load_seconds;
    out["prompt_tokens"] = flags.prompt_tokens;
    out["gen_tokens"] = flags.gen_tokens;
    out["reps"] = flags.reps;
    out["seed"] = flags.seed;
    nlohmann::json depths = nlohmann::json::array();
    for (const DepthResult& r : results) {
      depths.push_back({{"depth", r.depth},
                        {"prefill_tokens_per_second",
                         flags.prompt_tokens > 0 ? r.prefill.Json() : nlohmann::json()},
                        {"decode_tokens_per_second", flags.gen_tokens > 0 ? r.decode.Json() : nlohmann::json()}});
    }
    out["depths"] = depths;
    std::printf("%s\n", out.dump(2).c_str());
    return 0;
  }
  PrintModelHeader(info, dtype, load_seconds, flags.reps);
  std::printf("| test            |             tokens/s |\n");
  std::printf("| --------------- | -------------------: |\n");
  for (const DepthResult& r : results) {
    if (flags.prompt_tokens > 0) {
      std::printf("| pp%-4d @ d%-5d | %s |\n", flags.prompt_tokens, r.depth, Format(r.prefill, 2, 20).c_str());
    }
    if (flags.gen_tokens > 0) {
      std::printf("| tg%-4d @ d%-5d | %s |\n", flags.gen_tokens, r.depth, Format(r.decode, 2, 20).c_str());
    }
  }
  return 0;
}

int Run(const BenchFlags& flags) {
  if (flags.reps < 1) return Fail("--reps must be at least 1");
  if (flags.bandwidth_only) return RunBandwidthOnly(flags);
  if (flags.model.model.empty()) return Fail("bench needs -m MODEL (or --bandwidth-only)");
  if (flags.prompt_tokens < 0 || flags.gen_tokens < 0) return Fail("-p and -n must be >= 0");
  if (flags.prompt_tokens == 0 && flags.gen_tokens == 0) return Fail("nothing to measure: -p and -n are both 0");
  if (flags.bandwidth_mib < 0) return Fail("--bandwidth-mib must be >= 0");
  // The engine reads the pin when it is created (an unknown name fails there).
  if (!flags.cpu_target.empty()) setenv("GEMMARUN_CPU_TARGET", flags.cpu_target.c_str(), 1);
  if (const std::string error = CheckBandwidthBuffer(flags.bandwidth_mib); !error.empty()) return Fail(error);
  if (!flags.depths.empty() && !flags.batches.empty()) return Fail("-d and --batch measure different things: pick one");
  if (flags.sampling.temperature > 0.0f && (!flags.depths.empty() || !flags.batches.empty())) {
    return Fail("--temp (sampled decode next to greedy) works without -d and --batch");
  }
  if (!flags.depths.empty()) return RunDepths(flags);
  const auto load_start = Clock::now();
  auto loaded = flags.model.Load();
  if (!loaded.ok()) return Fail(loaded.status());
  const double load_seconds = SecondsSince(load_start);
  std::unique_ptr<Engine> engine = std::move(loaded).value();
  const ModelInfo info = engine->info();
  const int threads = ThreadsOf(info, flags.model.threads);

  // One session for every run: decode needs its first token + n positions.
  const int64_t context = std::max<int64_t>(flags.prompt_tokens, flags.gen_tokens + 2);
  if (context > info.max_seq_len) {
    return Fail("the model holds " + std::to_string(info.max_seq_len) + " positions; -p/-n ask for " +
                std::to_string(context));
  }
  auto new_session = engine->NewSession(context);
  if (!new_session.ok()) return Fail(new_session.status());
  std::unique_ptr<Session> session = std::move(new_session).value();
  Session& s = *session;

  // PaliGemma: the image placeholder token needs an image; the text decoder is measured without one.
  int32_t image_token = -1;
  if (info.takes_image) {
    auto layout = engine->ImagePromptFromIds({});
    if (layout.ok() && !layout->empty()) image_token = layout->front();
  }
  std::mt19937 rng(flags.seed);
  std::uniform_int_distribution<int32_t> uniform(0, info.vocab_size - 1);
  auto random_id = [&] {
    int32_t id = uniform(rng);
    while (id == image_token) id = uniform(rng);
    return id;
  };
  if (!flags.batches.empty()) return RunBatches(flags, *engine, random_id, load_seconds);
  std::vector<int32_t> prompt(flags.prompt_tokens);
  for (int32_t& id : prompt) id = random_id();
  const int32_t first_token = random_id();

  auto prefill = [&]() -> Result<double> {
    s.Reset();
    const auto start = Clock::now();
    auto logits = s.Prefill(prompt);
    if (!logits.ok()) return logits.status();
    return flags.prompt_tokens / SecondsSince(start);
  };
  // n forward passes: Generate samples its first token from the prompt's logits,
  // then feeds each sampled token, so n + 1 tokens cost n passes.
  auto decode = [&](int n, bool sampled) -> Result<double> {
    s.Reset();
    GenerateOptions options;
    if (sampled) options.sampling = flags.sampling;
    options.max_new_tokens = n + 1;
    options.stop_at_eos = false;  // greedy on random weights may well pick EOS
    auto result = s.Generate(std::span<const int32_t>(&first_token, 1), options);
    if (!result.ok()) return result.status();
    if (static_cast<int>(result->tokens.size()) != n + 1) {
      return Internal("decode stopped after " + std::to_string(result->tokens.size()) + " of " +
                      std::to_string(n + 1) + " tokens (" + StopReasonName(result->stop_reason) + ")");
    }
    return n / result->decode_seconds;
  };

  const bool do_prefill = flags.prompt_tokens > 0, do_decode = flags.gen_tokens > 0;
  const bool do_sampled = do_decode && flags.sampling.temperature > 0.0f;
  const size_t total_steps = 1 + flags.reps * (do_prefill + do_decode + do_sampled);
  size_t step = 0;
  ProgressBar bar("bench");
  // Warm-up: the whole prompt and a few decode steps (page faults, caches, thread start).
  if (do_prefill) {
    if (auto warm = prefill(); !warm.ok()) return Fail(warm.status());
  }
  if (do_decode) {
    if (auto warm = decode(std::min(flags.gen_tokens, 4), do_sampled); !warm.ok()) return Fail(warm.status());
  }
  bar.Update(++step, total_steps);
  // Memory now is what running the model holds; the bandwidth buffers below
  // come after this snapshot (the kernel updates ru_maxrss lazily, so the peak
  // can trail the current figure).
  const size_t rss = CurrentRssBytes();
  const size_t peak_rss = std::max(PeakRssBytes(), rss);
  // The read bandwidth of these shared machines flips between two levels (2x
  // apart) within minutes, sometimes during a run, so it is measured right
  // before and right after every decode run, and each run is compared with the
  // mean of its two measurements.
  // The host's read bandwidth says nothing about a GPU's memory: on a device
  // backend decode GB/s is reported alone (against the GPU's ~4.3 TB/s copy rate).
  const bool host_backend = info.backend.rfind("cpu", 0) == 0;
  const size_t bandwidth_bytes = host_backend ? size_t(flags.bandwidth_mib) << 20 : 0;
  Stats prefill_tps, decode_tps, decode_gbps, bandwidth, bandwidth_after, ratio, sampled_tps;
  for (int rep = 0; rep < flags.reps; ++rep) {
    // Sampled runs go before the greedy one on even reps and after it on odd ones.
    const auto sampled_run = [&]() -> Status {
      auto tps = decode(flags.gen_tokens, true);
      if (!tps.ok()) return tps.status();
      sampled_tps.values.push_back(*tps);
      bar.Update(++step, total_steps);
      return Status::Ok();
    };
    if (do_sampled && rep % 2 == 0) {
      if (Status status = sampled_run(); !status.ok()) return Fail(status);
    }
    if (do_prefill) {
      auto tps = prefill();
      if (!tps.ok()) return Fail(tps.status());
      prefill_tps.values.push_back(*tps);
      bar.Update(++step, total_steps);
    }
    if (do_decode) {
      const double gbps = bandwidth_bytes > 0 ? MeasureReadBandwidth(bandwidth_bytes, threads, 3) : 0.0;
      auto tps = decode(flags.gen_tokens, false);
      if (!tps.ok()) return Fail(tps.status());
      const double gbps_after = bandwidth_bytes > 0 ? MeasureReadBandwidth(bandwidth_bytes, threads, 3) : 0.0;
      decode_tps.values.push_back(*tps);
      decode_gbps.values.push_back(*tps * info.weight_bytes / 1e9);
      if (gbps > 0 && gbps_after > 0) {
        bandwidth.values.push_back(gbps);
        bandwidth_after.values.push_back(gbps_after);
        ratio.values.push_back(decode_gbps.values.back() / (0.5 * (gbps + gbps_after)));
      }
      bar.Update(++step, total_steps);
    }
    if (do_sampled && rep % 2 == 1) {
      if (Status status = sampled_run(); !status.ok()) return Fail(status);
    }
  }
  bar.Finish();
  session.reset();
  engine.reset();
  if (bandwidth_bytes > 0 && !do_decode) bandwidth.values.push_back(MeasureReadBandwidth(bandwidth_bytes, threads, 5));

  const std::string dtype = flags.model.dtype.empty() ? "stored" : flags.model.dtype;
  if (flags.json) {
    nlohmann::json out;
    out["model"] = info.source;
    out["family"] = info.family;
    out["backend"] = info.backend;
    out["threads"] = threads;
    out["dtype"] = dtype;
    out["matmul_precision"] = MatMulPrecisionName(flags.model.matmul_precision);
    out["weight_bytes"] = info.weight_bytes;
    out["load_seconds"] = load_seconds;
    out["prompt_tokens"] = flags.prompt_tokens;
    out["gen_tokens"] = flags.gen_tokens;
    out["reps"] = flags.reps;
    out["seed"] = flags.seed;
    out["prefill_tokens_per_second"] = do_prefill ? prefill_tps.Json() : nlohmann::json();
    out["decode_tokens_per_second"] = do_decode ? decode_tps.Json() : nlohmann::json();
    out["decode_gb_per_second"] = do_decode ? decode_gbps.Json() : nlohmann::json();
    if (do_sampled) {
      out["sampling"] = {{"temperature", flags.sampling.temperature}, {"top_k", flags.sampling.top_k},
                         {"top_p", flags.sampling.top_p}, {"min_p", flags.sampling.min_p}};
      out["sampled_decode_tokens_per_second"] = sampled_tps.Json();
      out["sampled_over_greedy"] = sampled_tps.mean() / decode_tps.mean();
    }
    out["peak_rss_bytes"] = peak_rss;
    out["rss_bytes"] = rss;
    // Means as plain numbers; the per-run figures next to them.
    out["memory_bandwidth_gb_per_second"] =
        bandwidth.values.empty() ? nlohmann::json() : nlohmann::json(bandwidth.mean());
    out["memory_bandwidth"] = bandwidth.values.empty() ? nlohmann::json() : bandwidth.Json();
    out["memory_bandwidth_after"] = bandwidth_after.values.empty() ? nlohmann::json() : bandwidth_after.Json();
    out["decode_bandwidth_ratio"] = ratio.values.empty() ? nlohmann::json() : nlohmann::json(ratio.mean());
    out["decode_bandwidth_ratios"] = ratio.values.empty() ? nlohmann::json() : ratio.Json();
    std::printf("%s\n", out.dump(2).c_str());
    return 0;
  }
  PrintModelHeader(info, dtype, load_seconds, flags.reps);
  std::printf("| test   |             tokens/s |  weight GB/s |\n");
  std::printf("| ------ | -------------------: | -----------: |\n");
  if (do_prefill) {
    std::printf("| pp%-4d | %s |              |\n", flags.prompt_tokens, Format(prefill_tps, 2, 20).c_str());
  }
  if (do_decode) {
    std::printf("| tg%-4d | %s | %s |\n", flags.gen_tokens, Format(decode_tps, 2, 20).c_str(),
                Format(decode_gbps, 1, 12).c_str());
  }
  if (do_sampled) {
    std::printf("| tg%-4d sampled | %s | %.3f x greedy |\n", flags.gen_tokens, Format(sampled_tps, 2, 20).c_str(),
                sampled_tps.mean() / decode_tps.mean());
  }
  std::printf("\nRSS %.2f GiB while running, peak %.2f GiB\n", rss / 1073741824.0, peak_rss / 1073741824.0);
  if (!bandwidth.values.empty()) {
    std::printf("memory read bandwidth %s GB/s (%d threads, %d MiB streaming read%s)\n",
                Format(bandwidth, 1, 0).c_str(), threads, flags.bandwidth_mib,
                do_decode ? ", best of 3 right before each decode run" : ", best of 5");
    if (!bandwidth_after.values.empty()) {
      std::printf("                      %s GB/s right after each decode run\n", Format(bandwidth_after, 1, 0).c_str());
    }
    if (do_decode) {
      std::printf("decode reads weights at %s%% of it (each run against the mean of its two measurements)\n",
                  Format(Stats{[&] {
                           std::vector<double> percent;
                           for (double r : ratio.values) percent.push_back(100.0 * r);
                           return percent;
                         }()},
                         0, 0)
                      .c_str());
    }
  }
  return 0;
}

}  // namespace

void AddBenchCommand(CLI::App& root, int* exit_code) {
  auto flags = std::make_shared<BenchFlags>();
  CLI::App* app = root.add_subcommand("bench", "Measure prefill and decode speed (tokens/s, GB/s, peak memory)");
  flags->model.Add(app, /*model_required=*/false);
  app->add_option("-p,--n-prompt", flags->prompt_tokens, "prompt tokens prefilled in one call (0: skip)")
      ->check(IntIn(0, kMaxContextFlag))->capture_default_str();
  app->add_option("-n,--n-gen", flags->gen_tokens, "tokens decoded one at a time (0: skip)")
      ->check(IntIn(0, kMaxTokensFlag))->capture_default_str();
  app->add_option("-r,--reps", flags->reps, "timed repetitions of each test")->check(IntIn(1, 1000))
      ->capture_default_str();
  app->add_option("--seed", flags->seed, "seed of the random prompt ids")->check(IntIn(0, UINT32_MAX))
      ->capture_default_str();
  app->add_option("-d,--depth", flags->depths,
                  "comma-separated cache depths: measure -p/-n after this many tokens (as llama-bench -d)")
      ->delimiter(',')
      ->check(IntIn(0, kMaxContextFlag));
  app->add_option("--bandwidth-mib", flags->bandwidth_mib, "buffer of the memory bandwidth test (0: skip it)")
      ->check(IntIn(0, 1 << 20))->capture_default_str();
  app->add_flag("--bandwidth-only", flags->bandwidth_only,
                "measure only the memory read bandwidth, --reps times (no model)");
  app->add_flag("--json", flags->json, "print one JSON object");
  app->add_option("--batch", flags->batches,
                  "aggregate speed of B sequences together, e.g. 1,2,4,8,16 (B prompts of -p tokens in one pass, "
                  "then B tokens per decode pass)")
      ->delimiter(',')
      ->check(IntIn(1, 1024));
  AddSamplingFlags(app, &flags->sampling);
  app->add_option("--cpu-target", flags->cpu_target,
                  "run the kernels an older CPU would: a Highway target (avx3_dl, avx3, avx2, sse4, neon, ...; "
                  "as GEMMARUN_CPU_TARGET)");
  app->footer(
      "Prompts are random token ids (no tokenizer needed); decoding is greedy and never stops early.\n"
      "With --temp > 0 every decode run is repeated with those sampling settings (alternating which\n"
      "goes first) and reported next to greedy, as a ratio.\n"
      "Decode GB/s = weight bytes x tokens/s: every weight is read once per token. The bandwidth\n"
      "test streams over a buffer with the same thread count; the ratio says how close decode gets.\n"
      "Examples:\n"
      "  gemmarun bench -m ./gemma-2b -p 512 -n 128 -t 2\n"
      "  gemmarun bench -m model.gguf --dtype q8_0 --reps 3 --json\n"
      "  gemmarun bench -m model-bf16.gguf --matmul-precision bf16   (llama.cpp's bf16 arithmetic)\n"
      "  gemmarun bench -m model.gguf --batch 1,2,4,8,16 -p 128 -n 64   (like llama-batched-bench)\n"
      "  gemmarun bench -m model.gguf -d 0,4096,16384 -p 512 -n 128 --json   (speed at depth)\n"
      "  gemmarun bench -m model.gguf --cpu-target avx2   (what an AVX2-only CPU gets)\n"
      "  gemmarun bench -m model.gguf -p 0 --temp 0.8 --top-p 0.95   (sampling's cost against greedy)\n"
      "  gemmarun bench --bandwidth-only -t 2 --reps 3 --json");
  app->callback([flags, exit_code] { *exit_code = Run(*flags); });
}

}  // namespace gemmarun::cli
