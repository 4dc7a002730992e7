#include "kettle/executors/thread_pool.hpp"

#include <pthread.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <exception>

#include "kettle/event_loop.hpp"

namespace kettle {

namespace {
// The pool whose worker this thread is, if any.
thread_local const ThreadPoolExecutor* current_pool = nullptr;

std::string default_prefix() {
  static std::atomic<unsigned> counter{0};
  return "pool-" + std::to_string(counter++);
}
}  // namespace

ThreadPoolExecutor::ThreadPoolExecutor(std::optional<std::size_t> max_workers,
                                       std::string thread_name_prefix,
                                       std::function<void()> initializer)
    : max_workers_(max_workers
                       ? *max_workers
                       : std::min<std::size_t>(32, std::thread::hardware_concurrency() + 4)),
      prefix_(thread_name_prefix.empty() ? default_prefix() : std::move(thread_name_prefix)),
      initializer_(std::move(initializer)) {
  if (max_workers_ == 0) throw ValueError("max_workers must be greater than 0");
}

ThreadPoolExecutor::~ThreadPoolExecutor() {
  if (current_pool == this) {
    // Its last owner was released inside work it runs: the thread cannot join itself, and
    // the pool's state would be freed under it.
    std::fputs(
        "kettle: a ThreadPoolExecutor was destroyed by one of its own worker threads; "
        "release it from another thread\n",
        stderr);
    std::terminate();
  }
  shutdown(true);
}

void ThreadPoolExecutor::submit_item(std::unique_ptr<WorkItem> item) {
  std::unique_lock lock(mutex_);
  if (!broken_.empty()) throw BrokenThreadPool(broken_);
  if (shutdown_) throw RuntimeError("cannot schedule new futures after shutdown");
  queue_.push_back(std::move(item));
  queued_.store(queue_.size(), std::memory_order_release);
  if (available_ > promised_) {  // a worker nobody counted on yet takes it
    ++promised_;
    cv_.notify_one();
  } else if (threads_.size() < max_workers_) {
    std::size_t index = threads_.size();
    threads_.emplace_back([this, index] { worker(index); });
    ++available_;  // the new worker, counted on for this item
    ++promised_;
  }
}

void ThreadPoolExecutor::worker(std::size_t index) {
  current_pool = this;
  std::string name = prefix_ + "_" + std::to_string(index);
  pthread_setname_np(pthread_self(), name.substr(0, 15).c_str());
  if (initializer_) {
    try {
      initializer_();
    } catch (...) {
      EventLoop::default_exception_handler(
          {"Exception in a thread pool initializer", std::current_exception(), name});
      std::deque<std::unique_ptr<WorkItem>> pending;
      {
        std::lock_guard lock(mutex_);
        broken_ = "A thread initializer failed, the thread pool is not usable anymore";
        pending.swap(queue_);
        queued_.store(0, std::memory_order_release);
        --available_;
      }
      for (auto& item : pending)
        item->fail(std::make_exception_ptr(BrokenThreadPool(
            "A thread initializer failed, the thread pool is not usable anymore")));
      cv_.notify_all();
      return;
    }
  }
  std::unique_lock lock(mutex_);
  for (;;) {
    if (queue_.empty() && !shutdown_ && !spinning_.exchange(true, std::memory_order_acquire)) {
      // More work often follows at once (a loop awaiting a reply, then submitting again):
      // one idle worker looks for it for a short while before paying a sleep and a
      // wake-up. Only one, so that idle workers never crowd the cores.
      lock.unlock();
      auto until = std::chrono::steady_clock::now() + std::chrono::microseconds(20);
      while (queued_.load(std::memory_order_acquire) == 0 &&
             std::chrono::steady_clock::now() < until)
        detail::cpu_relax();
      spinning_.store(false, std::memory_order_release);
      lock.lock();
    }
    cv_.wait(lock, [this] { return !queue_.empty() || shutdown_ || !broken_.empty(); });
    if (queue_.empty()) return;  // shut down (or broken) and nothing left
    std::unique_ptr<WorkItem> item = std::move(queue_.front());
    queue_.pop_front();
    queued_.store(queue_.size(), std::memory_order_release);
    --available_;
    if (promised_ > 0) --promised_;
    running_.push_back(item.get());
    lock.unlock();
    item->execute();
    lock.lock();
    running_.erase(std::find(running_.begin(), running_.end(), item.get()));
    ++available_;
    lock.unlock();
    item->complete();
    item.reset();  // free the work (its captures) outside the lock
    lock.lock();
  }
}

void ThreadPoolExecutor::shutdown(bool wait, bool cancel_futures) {
  std::vector<std::thread> to_join;
  std::deque<std::unique_ptr<WorkItem>> cancelled;
  bool joiner = false;
  {
    std::lock_guard lock(mutex_);
    shutdown_ = true;
    if (cancel_futures) {
      cancelled.swap(queue_);
      queued_.store(0, std::memory_order_release);
      for (WorkItem* r : running_)
        r->request_stop();
    }
    // One caller joins the threads; any other that wants to wait waits for that one. A
    // worker cannot wait for its own thread (the pool still shuts down).
    if (wait && !joining_ && current_pool != this) joining_ = joiner = true;
    if (joiner) to_join.swap(threads_);
  }
  cv_.notify_all();
  for (auto& item : cancelled)
    item->cancel();
  cancelled.clear();
  if (wait && current_pool == this)
    throw RuntimeError(
        "cannot join current thread: shutdown(wait=true) was called from one of the pool's "
        "own workers; call shutdown(false) there");
  if (joiner) {
    for (auto& t : to_join)
      t.join();
    std::lock_guard lock(mutex_);
    joined_ = true;
    joined_cv_.notify_all();
  } else if (wait) {
    std::unique_lock lock(mutex_);
    joined_cv_.wait(lock, [this] { return joined_; });
  }
}

}  // namespace kettle
