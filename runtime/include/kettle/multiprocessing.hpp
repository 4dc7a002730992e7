/// @file
/// kettle/multiprocessing.hpp — multiprocessing.Process, multiprocessing.Pool, cpu_count.
///
/// @code
/// void brew_tea(std::string name) { ... }
/// kettle::Process p(brew_tea, std::string("tea-1"));   // target, args...
/// p.start();
/// p.join();                                  // or co_await p.wait() from a task
/// p.exitcode();                              // 0; 1 if it threw; -N if killed by signal N
///
/// kettle::Pool pool;                         // cpu_count() processes
/// std::vector<int> squares = pool.map(compute_square, numbers);
/// for (auto r = pool.imap_unordered(f, xs); auto v = r.next();) ...  // as they complete
/// @endcode
///
/// Both run on ProcessPoolExecutor's machinery (see executors/process_pool.hpp for what a
/// target may be and how arguments travel). A Process runs its target once in a worker of
/// its own; a Pool is a ProcessPoolExecutor with multiprocessing's interface.
#pragma once

#include "kettle/detail/requires_cxx20.hpp"

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <ranges>
#include <string>
#include <vector>

#include "kettle/coro.hpp"
#include "kettle/executors/process_pool.hpp"
#include "kettle/futures.hpp"

namespace kettle {

/// The number of CPUs this process may use (os.process_cpu_count()).
std::size_t cpu_count() noexcept;

/// multiprocessing.Process: runs target(args...) once, in a worker process of its own.
class Process {
 public:
  /// Process(target=target, args=(args...)): target is a plain function or a captureless
  /// lambda; the arguments are converted and serialized now (see
  /// executors/process_pool.hpp). Nothing runs before start().
  template <class F, class... Args>
  explicit Process(F target, Args&&... args);
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;
  ~Process();  ///< Joins a started process.

  void start();  ///< Starts the process. RuntimeError if started twice.
  /// Waits for the process to end (at most timeout); returns whether it has ended.
  /// RuntimeError if it was not started.
  bool join(std::optional<std::chrono::duration<double>> timeout = std::nullopt);
  /// join(), awaited from a task. Cancellation: the process goes on.
  Coro<void> wait();
  /// Whether it was started and has not ended.
  bool is_alive() const;
  /// None (nullopt) while running; 0 after a normal end, 1 if the target threw (the error is
  /// printed to stderr, as Python prints the traceback), the exit status if it called
  /// exit(), -N if a signal N killed it.
  std::optional<int> exitcode() const;
  int pid() const;   ///< The worker's process id; 0 before start.
  void terminate();  ///< SIGTERM (nothing once it has ended).
  void kill();       ///< SIGKILL (nothing once it has ended).
  /// "Process-N", as Python names them.
  const std::string& name() const noexcept { return name_; }

 private:
  std::optional<ProcessPoolExecutor> pool_;
  std::function<Future<void>(ProcessPoolExecutor&, std::shared_ptr<std::exception_ptr>,
                             std::string)>
      launch_;
  std::optional<Future<void>> done_;
  std::shared_ptr<std::exception_ptr> outcome_ = std::make_shared<std::exception_ptr>();
  int signalled_ = 0;
  std::string name_;
  mutable int pid_ = 0;
};

/// Pool.imap_unordered's results: each chunk's items as soon as that chunk is done.
template <class V>
class UnorderedResults {
 public:
  /// Follows the futures of the chunks.
  explicit UnorderedResults(const std::vector<Future<std::vector<V>>>& chunks)
      : state_(std::make_shared<State>()), chunks_(chunks) {
    state_->left = chunks.size();
    for (std::size_t i = 0; i < chunks.size(); ++i)
      chunks[i].add_done_callback([s = state_, i] {
        std::lock_guard lock(s->mutex);
        s->done.push_back(i);
        s->cv.notify_one();
      });
  }
  /// The next result (blocking), or nullopt at the end. Rethrows a chunk's error.
  std::optional<V> next() {
    while (pos_ == cur_.size()) {
      std::size_t i;
      {
        std::unique_lock lock(state_->mutex);
        if (state_->left == 0) return std::nullopt;
        state_->cv.wait(lock, [&] { return !state_->done.empty(); });
        i = state_->done.front();
        state_->done.pop_front();
        --state_->left;
      }
      cur_ = chunks_[i].result();
      pos_ = 0;
    }
    return std::move(cur_[pos_++]);
  }
  /// Every result left, in completion order (blocking); rethrows a chunk's error.
  std::vector<V> get() {
    std::vector<V> out;
    while (auto v = next())
      out.push_back(std::move(*v));
    return out;
  }

 private:
  struct State {
    std::mutex mutex;
    std::condition_variable cv;
    std::deque<std::size_t> done;
    std::size_t left = 0;
  };
  std::shared_ptr<State> state_;
  std::vector<Future<std::vector<V>>> chunks_;
  std::vector<V> cur_;
  std::size_t pos_ = 0;
};

/// multiprocessing.Pool's keyword arguments.
struct PoolOptions {
  std::optional<std::size_t> processes = std::nullopt;      ///< Default: cpu_count().
  std::optional<unsigned> maxtasksperchild = std::nullopt;  ///< A fresh worker after that many.
  StartMethod start_method = StartMethod::forkserver;       ///< How workers start.
};

/// multiprocessing.Pool: a ProcessPoolExecutor with multiprocessing's interface.
class Pool {
 public:
  ///@{
  /// A pool of options.processes (or `processes`) workers.
  explicit Pool(PoolOptions options = {}) : exec_(executor_options(options)) {}
  explicit Pool(std::size_t processes) : Pool(PoolOptions{.processes = processes}) {}
  ///@}
  /// initializer(initargs...) runs first in every worker (Pool(initializer=, initargs=)).
  template <class F, class... Args>
  Pool(PoolOptions options, F initializer, Args&&... initargs)
      : exec_(executor_options(options), initializer, std::forward<Args>(initargs)...) {}
  /// As leaving `with Pool() as pool:`: terminate() (work still running is killed and its
  /// futures fail), then wait for the workers to be gone. close() and join() first to let
  /// the work finish.
  ~Pool() {
    terminate();
    exec_.shutdown(true, true);
  }

  /// Blocking, in input order. chunksize: default len / (4 x processes), rounded up.
  template <class F, class Range>
  auto map(F fn, Range&& items, std::optional<std::size_t> chunksize = std::nullopt) {
    return map_async(fn, std::forward<Range>(items), chunksize).get();
  }
  /// Awaitable (co_await) or blocking (get(), iteration): ChunkedMapResult.
  template <class F, class Range>
  auto map_async(F fn, Range&& items, std::optional<std::size_t> chunksize = std::nullopt) {
    return exec_.map(fn, items, chunk(items, chunksize));
  }
  /// map() for a function of several arguments: each item is a tuple of them (blocking,
  /// in input order).
  template <class F, class Range>
  auto starmap(F fn, Range&& items, std::optional<std::size_t> chunksize = std::nullopt) {
    return exec_.starmap(fn, items, chunk(items, chunksize)).get();
  }
  /// Lazily iterated, in input order (chunksize default 1, as Python's imap).
  template <class F, class Range>
  auto imap(F fn, Range&& items, std::size_t chunksize = 1) {
    return exec_.map(fn, items, chunksize);
  }
  /// Results as they complete (chunk by chunk), not in input order; blocking iteration.
  template <class F, class Range>
  auto imap_unordered(F fn, Range&& items, std::size_t chunksize = 1) {
    return UnorderedResults(exec_.map(fn, items, chunksize).futures());
  }
  /// fn(args...) in a worker; blocks for its result (rethrows its exception).
  template <class F, class... Args>
  auto apply(F fn, Args&&... args) {
    return exec_.submit(fn, std::forward<Args>(args)...).result();
  }
  /// fn(args...) in a worker: its Future (awaitable, or result() to block).
  template <class F, class... Args>
  auto apply_async(F fn, Args&&... args) {
    return exec_.submit(fn, std::forward<Args>(args)...);
  }
  void close() { exec_.shutdown(false, false); }  ///< No new work; what is queued still runs.
  void join() { exec_.shutdown(true, false); }    ///< After close(): wait for the workers.
  void terminate() { exec_.kill_workers(); }      ///< Stop now; unfinished work fails.
  /// The number of worker processes.
  std::size_t processes() const noexcept { return exec_.max_workers(); }

 private:
  template <class Range>
  std::size_t chunk(Range& items, std::optional<std::size_t> chunksize) const {
    if (chunksize) return *chunksize;
    std::size_t n = static_cast<std::size_t>(std::ranges::distance(items));
    std::size_t per = processes() * 4;
    std::size_t c = n / per + (n % per ? 1 : 0);
    return c ? c : 1;
  }
  static ProcessPoolOptions executor_options(const PoolOptions& o) {
    return ProcessPoolOptions{.max_workers = o.processes,
                              .start_method = o.start_method,
                              .max_tasks_per_child = o.maxtasksperchild};
  }
  ProcessPoolExecutor exec_;
};

// ---------------------------------------------------------------------------------------
// Implementation

namespace detail::proc {
std::string next_process_name();
void report_process_error(const std::string& name, std::exception_ptr e) noexcept;
bool is_crash(std::exception_ptr e) noexcept;  // the worker died (not: the target threw)
}  // namespace detail::proc

template <class F, class... Args>
Process::Process(F target, Args&&... args) : name_(detail::proc::next_process_name()) {
  auto fp = detail::proc::as_function_pointer(target);
  using R = typename detail::proc::fn_traits<decltype(fp)>::result;
  static_assert(std::is_void_v<R> || detail::proc::serializable<R>,
                "kettle: a Process target's result type cannot be serialized with cereal");
  // Bound now (the arguments are converted and serialized at construction, as Python
  // pickles them at start), submitted at start().
  launch_ = [fp, tup = std::make_tuple(std::decay_t<Args>(std::forward<Args>(args))...)](
                ProcessPoolExecutor& pool, std::shared_ptr<std::exception_ptr> outcome,
                std::string name) {
    auto f = std::apply([&](const auto&... a) { return pool.submit(fp, a...); }, tup);
    Future<void> done;  // completes normally once the target has ended, however it did
    f.add_done_callback([done, outcome, name](auto& f) {
      if (!f.cancelled() && f.exception()) {
        *outcome = f.exception();
        if (!detail::proc::is_crash(*outcome)) detail::proc::report_process_error(name, *outcome);
      }
      done.set_result();
    });
    return done;
  };
}

}  // namespace kettle
