// A persistent pool of worker threads. Work is split into contiguous ranges so
// that each thread streams its own rows of a weight matrix; the threads live for
// the whole run, so the decode loop never creates a thread.
//
// A decode step issues ~10 parallel ops per layer, each a few tens of
// microseconds long, so handing out work must cost far less than a futex
// wake-up. Workers and the waiting caller therefore spin on atomics for a short
// while and only then block on a condition variable: back-to-back ops never
// sleep, while an idle pool (between requests, in a server) costs no CPU.
//
// Work is claimed, not assigned: the chunks of a call sit behind one atomic
// cursor, and the caller, once done with its own, takes any chunk no worker has
// started. On a machine shared with other jobs a worker may not get a core for
// milliseconds; the call then finishes on the threads that run instead of
// waiting for it.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace gemmarun {

class ThreadPool {
 public:
  // num_threads counts the calling thread: 1 means no worker threads at all.
  explicit ThreadPool(int num_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int num_threads() const { return static_cast<int>(workers_.size()) + 1; }

  // Calls body(begin, end, index) over [0, count) split into at most
  // num_threads() chunks whose sizes are multiples of `grain` (except the last),
  // and returns when all are done. `index` is the chunk's number (chunk 0 is the
  // first range): no two chunks of a call share it, so it can pick per-thread
  // scratch. Chunks are claimed in order by whichever thread comes first (the
  // caller as well, which also takes every chunk no worker has started).
  // Not reentrant: a body must not call the pool.
  void ParallelFor(size_t count, size_t grain,
                   const std::function<void(size_t, size_t, int)>& body);

  // Splits [0, count) into chunks of `chunk` (the last may be shorter), handed
  // out in order to whichever thread asks next; body(begin, end, thread) may run
  // several times on one thread. `thread` is the executing thread (0: the
  // caller), for per-thread scratch. Several chunks per thread balance the load
  // when threads start late or run slower.
  void ParallelForDynamic(size_t count, size_t chunk,
                          const std::function<void(size_t, size_t, int)>& body);

  // Physical cores if they can be told apart from SMT siblings, else logical CPUs.
  static int DefaultThreadCount();

 private:
  using Task = std::function<void(size_t task, int thread)>;

  // Runs task(i, thread) for i in [0, num_tasks) on the pool; returns when all are done.
  void Run(size_t num_tasks, const Task& task);
  // Claims and runs tasks of `generation` until none is left.
  void Work(uint32_t generation, int thread);
  void WorkerLoop(int index);

  std::vector<std::thread> workers_;

  // The current call. task_ and num_tasks_ are written before generation_ is
  // bumped and stay valid while any task of that generation is unfinished.
  const Task* task_ = nullptr;
  std::atomic<size_t> num_tasks_{0};
  // (generation << 32) | next unclaimed task. Claims are compare-and-swaps that
  // check the generation, so a late thread can never take a task of a later call.
  std::atomic<uint64_t> cursor_{0};
  std::atomic<uint32_t> generation_{0};
  std::atomic<size_t> unfinished_{0};
  std::atomic<bool> stopping_{false};

  // The blocking fallback. A side that gives up spinning announces itself in
  // sleeping_workers_ / caller_sleeping_ before its last check (seq_cst), so the
  // other side takes the mutex and notifies only when someone may be asleep.
  std::mutex mutex_;
  std::condition_variable work_ready_;
  std::condition_variable work_done_;
  std::atomic<int> sleeping_workers_{0};
  std::atomic<bool> caller_sleeping_{false};
};

}  // namespace gemmarun
