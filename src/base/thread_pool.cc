#include "base/thread_pool.h"

#include <algorithm>
#include <fstream>
#include <set>
#include <string>

namespace gemmarun {

ThreadPool::ThreadPool(int num_threads) {
  const int workers = std::max(0, num_threads - 1);
  chunks_.resize(workers + 1);
  for (int i = 0; i < workers; ++i) {
    workers_.emplace_back([this, i] { WorkerLoop(i + 1); });
  }
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  work_ready_.notify_all();
  for (auto& worker : workers_) worker.join();
}

void ThreadPool::WorkerLoop(int index) {
  size_t seen_generation = 0;
  while (true) {
    std::unique_lock<std::mutex> lock(mutex_);
    work_ready_.wait(lock, [&] { return stopping_ || generation_ != seen_generation; });
    if (stopping_) return;
    seen_generation = generation_;
    const auto [begin, end] = chunks_[index];
    const auto* body = body_;
    lock.unlock();
    if (begin < end) (*body)(begin, end, index);
    lock.lock();
    if (--pending_ == 0) work_done_.notify_one();
  }
}

void ThreadPool::ParallelFor(size_t count, size_t grain,
                             const std::function<void(size_t, size_t, int)>& body) {
  if (count == 0) return;
  grain = std::max<size_t>(grain, 1);
  const size_t units = (count + grain - 1) / grain;
  const size_t threads = std::min<size_t>(num_threads(), units);
  if (threads <= 1) {
    body(0, count, 0);
    return;
  }
  const size_t units_per_thread = (units + threads - 1) / threads;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    for (size_t t = 0; t < chunks_.size(); ++t) {
      const size_t begin = std::min(count, t * units_per_thread * grain);
      const size_t end = std::min(count, (t + 1) * units_per_thread * grain);
      chunks_[t] = {begin, end};
    }
    body_ = &body;
    pending_ = static_cast<int>(workers_.size());
    ++generation_;
  }
  work_ready_.notify_all();
  if (chunks_[0].first < chunks_[0].second) body(chunks_[0].first, chunks_[0].second, 0);
  std::unique_lock<std::mutex> lock(mutex_);
  work_done_.wait(lock, [&] { return pending_ == 0; });
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
