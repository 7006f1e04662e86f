// A persistent pool of worker threads. Work is split into contiguous ranges so
// that each thread streams its own rows of a weight matrix; the threads live for
// the whole run, so the decode loop never creates a thread.
#pragma once

#include <condition_variable>
#include <cstddef>
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
  // and returns when all are done. The caller runs chunk 0.
  void ParallelFor(size_t count, size_t grain,
                   const std::function<void(size_t, size_t, int)>& body);

  // Physical cores if they can be told apart from SMT siblings, else logical CPUs.
  static int DefaultThreadCount();

 private:
  void WorkerLoop(int index);

  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::condition_variable work_ready_;
  std::condition_variable work_done_;
  const std::function<void(size_t, size_t, int)>* body_ = nullptr;
  std::vector<std::pair<size_t, size_t>> chunks_;
  size_t generation_ = 0;
  int pending_ = 0;
  bool stopping_ = false;
};

}  // namespace gemmarun
