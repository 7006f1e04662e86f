#include "base/thread_pool.h"

#include <algorithm>
#include <chrono>
#include <fstream>
#include <set>
#include <string>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace gemmarun {
namespace {

// How long a waiting thread polls before it blocks. Longer than the serial work
// between two ops of a decode step (norms, RoPE, sampling: microseconds), short
// enough that an idle pool goes quiet at once for a human observer.
constexpr auto kSpin = std::chrono::microseconds(200);

inline void CpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  _mm_pause();
#endif
}

// Polls `done` for up to kSpin; true if it became true. Yields now and then so
// that on an oversubscribed machine the thread we wait for gets the core.
template <class Done>
bool SpinUntil(Done&& done) {
  const auto deadline = std::chrono::steady_clock::now() + kSpin;
  for (uint32_t i = 1;; ++i) {
    if (done()) return true;
    CpuRelax();
    if (i % 256 == 0) {
      if (std::chrono::steady_clock::now() > deadline) return done();
      if (i % 4096 == 0) std::this_thread::yield();
    }
  }
}

}  // namespace

ThreadPool::ThreadPool(int num_threads) {
  const int workers = std::max(0, num_threads - 1);
  for (int i = 0; i < workers; ++i) {
    workers_.emplace_back([this, i] { WorkerLoop(i + 1); });
  }
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_.store(true);
  }
  work_ready_.notify_all();
  for (auto& worker : workers_) worker.join();
}

void ThreadPool::Work(uint32_t generation, int thread) {
  while (true) {
    uint64_t cursor = cursor_.load();
    // num_tasks_ read next may already be the next call's: Run moves cursor_
    // to the next generation before it touches num_tasks_ or task_, so a claim
    // on this generation's cursor can only succeed while this call is running.
    if (static_cast<uint32_t>(cursor >> 32) != generation) return;
    const size_t task = static_cast<uint32_t>(cursor);
    if (task >= num_tasks_) return;
    if (!cursor_.compare_exchange_weak(cursor, cursor + 1)) continue;
    (*task_)(task, thread);
    if (unfinished_.fetch_sub(1) == 1 && caller_sleeping_.load()) {
      std::lock_guard<std::mutex> lock(mutex_);
      work_done_.notify_one();
    }
  }
}

void ThreadPool::WorkerLoop(int index) {
  uint32_t seen = 0;
  while (true) {
    uint32_t generation = seen;
    auto has_work = [&] {
      generation = generation_.load();  // seq_cst: pairs with sleeping_workers_
      return generation != seen || stopping_.load();
    };
    if (!SpinUntil(has_work)) {
      std::unique_lock<std::mutex> lock(mutex_);
      sleeping_workers_.fetch_add(1);
      work_ready_.wait(lock, has_work);
      sleeping_workers_.fetch_sub(1);
    }
    if (stopping_.load()) return;
    seen = generation;
    Work(generation, index);
  }
}

void ThreadPool::Run(size_t num_tasks, const Task& task) {
  if (num_tasks == 0) return;
  if (workers_.empty() || num_tasks == 1) {
    for (size_t i = 0; i < num_tasks; ++i) task(i, 0);
    return;
  }
  const uint32_t generation = generation_.load() + 1;
  // The cursor first (see Work): a worker still in the previous call's Work
  // could otherwise read this call's num_tasks_ against the old cursor, claim
  // a task of this call before it starts and leave unfinished_ one short of
  // zero forever (seen as a hang under ASan).
  cursor_.store(static_cast<uint64_t>(generation) << 32);
  task_ = &task;
  num_tasks_ = num_tasks;
  unfinished_.store(num_tasks);
  generation_.store(generation);  // seq_cst: publishes the call
  if (sleeping_workers_.load() > 0) {
    std::lock_guard<std::mutex> lock(mutex_);
    work_ready_.notify_all();
  }
  Work(generation, 0);
  // Every task is claimed; wait for those still running elsewhere.
  auto all_done = [&] { return unfinished_.load() == 0; };  // seq_cst: pairs with caller_sleeping_
  if (!SpinUntil(all_done)) {
    std::unique_lock<std::mutex> lock(mutex_);
    caller_sleeping_.store(true);
    work_done_.wait(lock, all_done);
    caller_sleeping_.store(false);
  }
}

void ThreadPool::ParallelFor(size_t count, size_t grain,
                             const std::function<void(size_t, size_t, int)>& body) {
  if (count == 0) return;
  grain = std::max<size_t>(grain, 1);
  const size_t units = (count + grain - 1) / grain;
  const size_t threads = std::min<size_t>(num_threads(), units);
  const size_t per_chunk = (units + threads - 1) / threads * grain;
  const size_t chunks = (count + per_chunk - 1) / per_chunk;
  Run(chunks, [&](size_t i, int) {
    body(i * per_chunk, std::min(count, (i + 1) * per_chunk), static_cast<int>(i));
  });
}

void ThreadPool::ParallelForDynamic(size_t count, size_t chunk,
                                    const std::function<void(size_t, size_t, int)>& body) {
  if (count == 0) return;
  chunk = std::max<size_t>(chunk, 1);
  Run((count + chunk - 1) / chunk,
      [&](size_t i, int thread) { body(i * chunk, std::min(count, (i + 1) * chunk), thread); });
}

int ThreadPool::DefaultThreadCount() {
  // Count distinct (physical id, core id) pairs: SMT siblings share both.
  std::ifstream cpuinfo("/proc/cpuinfo");
  std::set<std::pair<std::string, std::string>> cores;
  std::string line, physical = "0";
  while (std::getline(cpuinfo, line)) {
    const auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    const std::string key = line.substr(0, line.find_first_of(" \t"));
    const std::string value = line.substr(colon + 1);
    if (key == "physical") physical = value;
    if (key == "core") cores.insert({physical, value});
  }
  const int logical = static_cast<int>(std::thread::hardware_concurrency());
  if (cores.empty()) return std::max(1, logical);
  return std::max(1, static_cast<int>(cores.size()));
}

}  // namespace gemmarun
