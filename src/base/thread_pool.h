// A persistent pool of worker threads. Work is split into contiguous ranges so
// that each thread streams its own rows of a weight matrix; the threads live for
// the whole run, so the decode loop never creates a thread.
//
// A decode step issues ~10 parallel ops per layer, each a few tens of
// microseconds long, so handing out work must cost far less than a futex
// wake-up. Workers and the waiting caller therefore spin on atomics for a short
// while (kSpin below) and only then block on a condition variable: back-to-back
// ops never sleep, while an idle pool (between requests, in a server) costs no CPU.
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

  // Calls body(begin, end, thread_index) over [0, count) split into at most
  // num_threads() chunks whose sizes are multiples of `grain` (except the last),
  // and returns when all are done. The caller runs chunk 0. Not reentrant: a
  // body must not call ParallelFor on the same pool.
  void ParallelFor(size_t count, size_t grain,
                   const std::function<void(size_t, size_t, int)>& body);

  // Physical cores if they can be told apart from SMT siblings, else logical CPUs.
  static int DefaultThreadCount();

 private:
  void WorkerLoop(int index);

  std::vector<std::thread> workers_;
  // Written by ParallelFor before it bumps generation_ (release); read by the
  // workers after they see the bump (acquire).
  const std::function<void(size_t, size_t, int)>* body_ = nullptr;
  std::vector<std::pair<size_t, size_t>> chunks_;
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> pending_{0};  // workers that have not finished this generation
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
