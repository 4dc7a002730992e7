/// @file
/// kettle/executors/thread_pool.hpp — concurrent.futures.ThreadPoolExecutor.
///
/// @code
/// kettle::ThreadPoolExecutor pool(3);                       // max_workers
/// kettle::Future<int> f = pool.submit(compute, 6, 7);      // fn, args...
/// int v = f.result();                  // from a plain thread, or co_await f from a task
/// for (std::string s : pool.map(greet, names)) ...        // results in input order
/// std::vector<std::string> all = co_await pool.map(greet, names);
/// pool.shutdown();                     // also what the destructor does
/// @endcode
///
/// Work is taken as fn and its arguments, which are copied (or moved) into the pool when
/// submitted. A callable whose first parameter is std::stop_token gets a stop request when
/// the task awaiting its future is cancelled while it runs, or when the pool shuts down
/// with cancel_futures. Threads are started lazily, one at a time while none is idle, up to
/// max_workers, and are named prefix_N. A failing initializer breaks the pool: work
/// pending and submitted later fails with BrokenThreadPool.
#pragma once

#include "kettle/detail/requires_cxx20.hpp"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <exception>
#include <functional>
#include <iterator>
#include <memory>
#include <mutex>
#include <optional>
#include <ranges>
#include <stop_token>
#include <string>
#include <thread>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "kettle/coro.hpp"
#include "kettle/exceptions.hpp"
#include "kettle/futures.hpp"

namespace kettle {

template <class R>
class MapResult;

/// concurrent.futures.ThreadPoolExecutor: runs calls on a pool of threads, each giving a
/// Future. See executors/thread_pool.hpp.
class ThreadPoolExecutor {
 public:
  /// max_workers: default min(32, cores + 4). ValueError if 0. Threads are named
  /// thread_name_prefix_N; initializer runs first in each of them.
  explicit ThreadPoolExecutor(std::optional<std::size_t> max_workers = std::nullopt,
                              std::string thread_name_prefix = {},
                              std::function<void()> initializer = {});
  ThreadPoolExecutor(const ThreadPoolExecutor&) = delete;
  ThreadPoolExecutor& operator=(const ThreadPoolExecutor&) = delete;
  ~ThreadPoolExecutor();  ///< shutdown(wait = true); never from one of its own workers.

  /// Schedules fn(args...) (or fn(stop_token, args...)) and returns its Future.
  /// RuntimeError after shutdown, BrokenThreadPool once an initializer failed.
  template <class F, class... Args>
  auto submit(F&& fn, Args&&... args);

  /// fn over the ranges zipped together (the shortest decides), every call submitted now:
  /// a MapResult of the calls' futures, in input order.
  template <class F, class... Ranges>
  auto map(F&& fn, Ranges&&... ranges);

  /// No new work. cancel_futures: pending work is cancelled and running work asked to stop.
  /// wait: returns once every worker thread has finished (from any number of threads at
  /// once); from one of the pool's own workers it shuts the pool down and then raises
  /// RuntimeError, as Python's ("cannot join current thread").
  void shutdown(bool wait = true, bool cancel_futures = false);

  /// The most threads it runs.
  std::size_t max_workers() const noexcept { return max_workers_; }

  /// Implementation: a call queued in the pool, with its future.
  struct WorkItem {
    virtual ~WorkItem() = default;
    /// Runs the work (unless its future was cancelled) and keeps the outcome...
    virtual void execute() noexcept = 0;
    /// ...which this hands to the future. In two steps so that the worker is counted
    /// available again before anyone can see the result and submit more.
    virtual void complete() noexcept = 0;
    /// Cancels the future of work that will not run (shutdown with cancel_futures).
    virtual void cancel() noexcept = 0;
    /// Fails the future with e (the pool broke) without running the work.
    virtual void fail(std::exception_ptr e) noexcept = 0;
    /// Asks running work to stop, through its std::stop_token.
    virtual void request_stop() noexcept = 0;
  };
  /// Implementation: queues item (what submit() does). RuntimeError after shutdown,
  /// BrokenThreadPool once an initializer failed.
  void submit_item(std::unique_ptr<WorkItem> item);

 private:
  void worker(std::size_t index);

  std::size_t max_workers_;
  std::string prefix_;
  std::function<void()> initializer_;
  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<std::unique_ptr<WorkItem>> queue_;
  std::atomic<std::size_t> queued_{0};  // queue_.size(), readable without the lock
  std::atomic<bool> spinning_{false};   // an idle worker is looking for work before it sleeps
  std::vector<WorkItem*> running_;      // for stop requests on shutdown(cancel_futures)
  std::vector<std::thread> threads_;
  std::size_t available_ = 0;  // workers not running an item
  std::size_t promised_ = 0;   // submits that counted on one of those
  std::string broken_;         // why the pool is broken, if it is
  bool shutdown_ = false;
  bool joining_ = false;  // a shutdown(wait) is joining the threads...
  bool joined_ = false;   // ...and has joined them all
  std::condition_variable joined_cv_;
};

// ---------------------------------------------------------------------------------------
// Implementation

namespace detail {

template <class F, class... Args>
inline constexpr bool takes_stop_token = std::is_invocable_v<F&, std::stop_token, Args&...>;

template <class F, class... Args>
using work_result_t = typename std::conditional_t<takes_stop_token<F, Args...>,
                                                  std::invoke_result<F&, std::stop_token, Args&...>,
                                                  std::invoke_result<F&, Args&...>>::type;

// fn and its arguments, held by value, and the future they complete.
template <class R, class Fn, class... Args>
class BoundWork final : public ThreadPoolExecutor::WorkItem {
 public:
  template <class F, class... A>
  BoundWork(Future<R> f, F&& fn, A&&... args)
      : fut_(std::move(f)), fn_(std::forward<F>(fn)), args_(std::forward<A>(args)...) {}

  void execute() noexcept override {
    if (!fut_.set_running_or_notify_cancel()) return;  // cancelled while pending
    ran_ = true;
    try {
      if constexpr (std::is_void_v<R>)
        call();
      else
        value_.emplace(call());
    } catch (...) {
      error_ = std::current_exception();
    }
  }
  void complete() noexcept override {
    if (!ran_) return;
    try {
      if (error_)
        fut_.set_exception(std::move(error_));
      else if constexpr (std::is_void_v<R>)
        fut_.set_result();
      else
        fut_.set_result(std::move(*value_));
    } catch (...) {
      fut_.set_exception(std::current_exception());  // moving the value out threw
    }
  }
  void cancel() noexcept override { fut_.cancel(); }
  void fail(std::exception_ptr e) noexcept override {
    try {
      if (fut_.set_running_or_notify_cancel()) fut_.set_exception(std::move(e));
    } catch (...) {
    }
  }
  void request_stop() noexcept override { fut_.state()->request_stop(); }

 private:
  decltype(auto) call() {
    if constexpr (takes_stop_token<Fn, Args...>)
      return std::apply(
          [this](Args&... a) -> decltype(auto) {
            return std::invoke(fn_, fut_.stop_token(), a...);
          },
          args_);
    else
      return std::apply(fn_, args_);
  }

  Future<R> fut_;
  Fn fn_;
  std::tuple<Args...> args_;
  struct Empty {};
  [[no_unique_address]] std::conditional_t<std::is_void_v<R>, Empty, std::optional<R>> value_;
  std::exception_ptr error_;
  bool ran_ = false;
};

template <class R>
using map_value_t = std::conditional_t<std::is_void_v<R>, std::monostate, R>;

// Awaits a Coro it owns (for an operator co_await that builds its coroutine on the spot).
template <class T>
class OwningAwaiter {
 public:
  /// How the call graph names it.
  static constexpr const char* kettle_name = "co_await kettle::Future (a thread or process result)";
  explicit OwningAwaiter(Coro<T> c) : c_(std::move(c)), a_(c_.operator co_await()) {}
  OwningAwaiter(const OwningAwaiter&) = delete;
  OwningAwaiter& operator=(const OwningAwaiter&) = delete;
  bool await_ready() { return a_.await_ready(); }
  bool await_suspend(std::coroutine_handle<> h) { return a_.await_suspend(h); }
  T await_resume() { return a_.await_resume(); }

 private:
  Coro<T> c_;
  typename Coro<T>::Awaiter a_;
};

}  // namespace detail

template <class F, class... Args>
auto ThreadPoolExecutor::submit(F&& fn, Args&&... args) {
  using Fn = std::decay_t<F>;
  static_assert(std::is_invocable_v<Fn&, std::decay_t<Args>&...> ||
                    std::is_invocable_v<Fn&, std::stop_token, std::decay_t<Args>&...>,
                "kettle: submit(fn, args...) needs fn callable as fn(args...) or "
                "fn(std::stop_token, args...)");
  using R = detail::work_result_t<Fn, std::decay_t<Args>...>;
  Future<R> f;
  submit_item(std::make_unique<detail::BoundWork<R, Fn, std::decay_t<Args>...>>(
      f, std::forward<F>(fn), std::forward<Args>(args)...));
  return f;
}

/// The futures of a map(), in input order: iterate (blocking), get() them all (blocking,
/// with a timeout counted from the map() call), or co_await them from a task.
template <class R>
class MapResult {
 public:
  /// A call's result: R, or std::monostate for void.
  using value_type = detail::map_value_t<R>;
  /// The clock the timeout is counted on.
  using clock = std::chrono::steady_clock;

  /// The results of the calls fs, from now on (the start of the timeout).
  explicit MapResult(std::vector<Future<R>> fs) : fs_(std::move(fs)), start_(clock::now()) {}

  /// Every call's future, in input order.
  const std::vector<Future<R>>& futures() const noexcept { return fs_; }

  ///@{
  /// Blocking: at most `timeout` from the map() call in all (TimeoutError). On an error
  /// the futures not yet done are cancelled, as concurrent.futures does.
  MapResult& with_timeout(std::chrono::duration<double> timeout) & {
    timeout_ = timeout;
    return *this;
  }
  MapResult with_timeout(std::chrono::duration<double> timeout) && {
    timeout_ = timeout;
    return std::move(*this);  // a prvalue, so that `for (x : pool.map(...).with_timeout(t))` works
  }
  ///@}
  /// Every result in input order (blocking); the first exception is raised, and the calls
  /// not yet done are cancelled.
  std::vector<value_type> get() {
    std::vector<value_type> out;
    for (std::size_t i = 0; i < fs_.size(); ++i)
      out.push_back(wait(i));
    return out;
  }

  /// An input iterator over the results, in input order.
  class iterator {
   public:
    using value_type = MapResult::value_type;  ///< A call's result.
    using difference_type = std::ptrdiff_t;    ///< For std::input_iterator.
    iterator() = default;                      ///< A singular iterator.
    /// The iterator at the i-th call of m.
    iterator(MapResult* m, std::size_t i) noexcept : m_(m), i_(i) {}
    /// The i-th result (blocking, within the timeout); rethrows its exception, after
    /// cancelling the calls not yet done.
    value_type operator*() const { return m_->wait(i_); }
    ///@{
    /// The next call.
    iterator& operator++() noexcept {
      ++i_;
      return *this;
    }
    void operator++(int) noexcept { ++i_; }
    ///@}
    /// Whether both are at the same call.
    friend bool operator==(const iterator& a, const iterator& b) noexcept { return a.i_ == b.i_; }

   private:
    MapResult* m_ = nullptr;
    std::size_t i_ = 0;
  };
  /// The first result.
  iterator begin() noexcept { return iterator(this, 0); }
  /// Past the last result.
  iterator end() noexcept { return iterator(this, fs_.size()); }

  /// From a task: every result in input order; the first exception is raised (and the
  /// calls not yet done are cancelled).
  auto operator co_await() && { return detail::OwningAwaiter<std::vector<value_type>>(collect()); }

 private:
  value_type wait(std::size_t i) {
    try {
      std::optional<std::chrono::duration<double>> left;
      if (timeout_) left = *timeout_ - (clock::now() - start_);
      if (left && left->count() < 0) left = std::chrono::duration<double>(0);
      if constexpr (std::is_void_v<R>) {
        fs_[i].result(left);
        return {};
      } else {
        return fs_[i].result(left);
      }
    } catch (...) {
      cancel_rest(i);
      throw;
    }
  }
  // After an error: the calls not yet done are cancelled, and the errors of the others
  // count as seen (as asyncio's gather marks them), not "never retrieved".
  void cancel_rest(std::size_t from) noexcept {
    for (std::size_t i = from; i < fs_.size(); ++i)
      if (fs_[i].state()) {
        fs_[i].cancel();
        fs_[i].state()->mark_retrieved();
      }
  }
  Coro<std::vector<value_type>> collect() {
    std::vector<value_type> out;
    out.reserve(fs_.size());
    std::size_t i = 0;
    std::exception_ptr err;
    try {
      for (; i < fs_.size(); ++i) {
        if constexpr (std::is_void_v<R>) {
          co_await fs_[i];
          out.emplace_back();
        } else {
          out.push_back(co_await fs_[i]);
        }
      }
    } catch (...) {
      err = std::current_exception();
    }
    if (err) {
      cancel_rest(i);
      std::rethrow_exception(err);
    }
    co_return out;
  }

  std::vector<Future<R>> fs_;
  clock::time_point start_;
  std::optional<std::chrono::duration<double>> timeout_;
};

template <class F, class... Ranges>
auto ThreadPoolExecutor::map(F&& fn, Ranges&&... ranges) {
  static_assert(sizeof...(Ranges) > 0, "kettle: map(fn, ranges...) needs at least one range");
  using Fn = std::decay_t<F>;
  using R =
      detail::work_result_t<Fn, std::remove_cvref_t<std::ranges::range_reference_t<Ranges>>...>;
  std::vector<Future<R>> fs;
  auto its = std::make_tuple(std::ranges::begin(ranges)...);
  auto ends = std::make_tuple(std::ranges::end(ranges)...);
  auto any_at_end = [&]<std::size_t... I>(std::index_sequence<I...>) {
    return ((std::get<I>(its) == std::get<I>(ends)) || ...);
  };
  auto step = [&]<std::size_t... I>(std::index_sequence<I...>) {
    fs.push_back(submit(fn, *std::get<I>(its)...));
    (++std::get<I>(its), ...);
  };
  constexpr auto seq = std::index_sequence_for<Ranges...>{};
  while (!any_at_end(seq))
    step(seq);
  return MapResult<R>(std::move(fs));
}

}  // namespace kettle
