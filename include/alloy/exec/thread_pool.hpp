// A small persistent thread pool for the host executor: run(n, f) calls f(0..n-1), the caller
// taking part, and returns when all calls are done.
#pragma once

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <type_traits>
#include <vector>

#include "../core/macros.hpp"

ALLOY_NAMESPACE_BEGIN
namespace exec {

class ThreadPool {
 public:
  explicit ThreadPool(unsigned threads) {
    for (unsigned i = 1; i < threads; ++i) workers_.emplace_back([this] { work(); });
  }
  ~ThreadPool() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_ = true;
    }
    wake_.notify_all();
    for (auto& w : workers_) w.join();
  }
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  unsigned size() const { return unsigned(workers_.size()) + 1; }

  /// f(i) for i in [0, tasks). No allocation: the callable is passed by address and invoked
  /// through a function pointer (a step must not allocate, on the host executor too).
  template <class F>
  void run(unsigned tasks, F&& f) {
    if (workers_.empty() || tasks <= 1) {
      for (unsigned i = 0; i < tasks; ++i) f(i);
      return;
    }
    {
      std::lock_guard<std::mutex> lock(mutex_);
      job_ = const_cast<void*>(static_cast<const void*>(&f));
      invoke_ = [](void* job, unsigned i) { (*static_cast<std::remove_reference_t<F>*>(job))(i); };
      tasks_ = tasks;
      next_.store(0);
      pending_ = unsigned(workers_.size());
      ++generation_;
    }
    wake_.notify_all();
    drain();
    std::unique_lock<std::mutex> lock(mutex_);
    done_.wait(lock, [this] { return pending_ == 0; });
    job_ = nullptr;
  }

 private:
  void drain() {
    for (unsigned i; (i = next_.fetch_add(1)) < tasks_;) invoke_(job_, i);
  }
  void work() {
    unsigned seen = 0;
    for (;;) {
      {
        std::unique_lock<std::mutex> lock(mutex_);
        wake_.wait(lock, [&] { return stop_ || generation_ != seen; });
        if (stop_) return;
        seen = generation_;
      }
      drain();
      {
        std::lock_guard<std::mutex> lock(mutex_);
        if (--pending_ == 0) done_.notify_one();
      }
    }
  }

  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::condition_variable wake_, done_;
  void* job_ = nullptr;
  void (*invoke_)(void*, unsigned) = nullptr;
  unsigned tasks_ = 0, pending_ = 0, generation_ = 0;
  std::atomic<unsigned> next_{0};
  bool stop_ = false;
};

}  // namespace exec
ALLOY_NAMESPACE_END
