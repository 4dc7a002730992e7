/// @file
/// kettle/executors/process_pool.hpp — concurrent.futures.ProcessPoolExecutor.
///
/// @code
/// int square(int x) { return x * x; }
///
/// kettle::ProcessPoolExecutor pool;                       // one worker per usable core
/// kettle::Future<int> f = pool.submit(square, 5);         // fn, args...
/// int v = co_await f;                                     // or f.result() from a thread
/// std::vector<int> all = co_await pool.map(square, numbers, 256);  // chunksize 256
/// @endcode
///
/// Work runs in other processes, so fn is a plain function or a captureless lambda (a
/// worker cannot receive captured state: pass it as arguments), and its arguments and result
/// travel through cereal: standard types work as they are, a user type once it has a cereal
/// serialize function. Anything else is a compile-time error.
///
/// Workers are started lazily, up to max_workers, by the start method: forkserver (the
/// default: one small single-threaded server process, started from this program's
/// executable, forks each worker), spawn (each worker is this program's executable, started
/// afresh), or fork (a server forked from this process at construction, which must then be
/// single-threaded; workers see this process's state as it was then). spawn and forkserver
/// need the program's main wrapped, which linking with kettle::kettle through CMake does.
///
/// An exception thrown by fn is rethrown by the future: the standard exception types and
/// kettle's ValueError, RuntimeError and TimeoutError as themselves, anything else as
/// kettle::RemoteError (type name, what() and the worker's pid). A worker that dies while
/// running a task (a signal, abort(), exit()) fails only that task, with WorkerCrashedError;
/// a replacement starts and every other task goes on. OnWorkerCrash::break_pool gives
/// Python's meaning instead: the pool breaks and every pending and later task fails with
/// BrokenProcessPool. A worker's death is acted on at once, even if a child it forked still
/// holds its socket; if the fork server itself dies, another is started.
///
/// Cancellation: a task awaiting a submit's Future that is cancelled cancels the work if no
/// worker has it yet; work already sent runs to its end in its worker (another process
/// cannot be interrupted safely) and its result is dropped.
///
/// A worker runs user code, so the parent trusts nothing it sends: a message that breaks the
/// protocol (malformed, a reply to a task it was not running, a result that does not read as
/// fn's result type, a size prefix larger than the message) gets that worker killed, and its
/// task fails with WorkerCrashedError saying why; the parent allocates nothing a worker's
/// lengths claim beyond the bytes it actually sent. One call's arguments (and one result)
/// must fit in 4 GiB - 1 bytes serialized: more fails that future with ValueError.
#pragma once

#include "kettle/detail/requires_cxx20.hpp"

#include <cstddef>
#include <cstring>
#include <memory>
#include <optional>
#include <ranges>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "kettle/detail/process/pool_core.hpp"
#include "kettle/exceptions.hpp"
#include "kettle/executors/thread_pool.hpp"
#include "kettle/futures.hpp"

namespace kettle {

/// How a process pool starts its workers (multiprocessing's start methods).
enum class StartMethod {
  forkserver,  ///< One small single-threaded server, started from this executable, forks each.
  spawn,       ///< Each worker is this program's executable, started afresh.
  fork         ///< A server forked from this process at construction (single-threaded only).
};
/// What a worker that dies while running a task does to the pool.
enum class OnWorkerCrash {
  replace_worker,  ///< Only that task fails (WorkerCrashedError); a new worker starts.
  break_pool       ///< Python's meaning: the pool breaks (BrokenProcessPool).
};

/// ProcessPoolExecutor's keyword arguments.
struct ProcessPoolOptions {
  /// Default: the number of usable cores.
  std::optional<std::size_t> max_workers = std::nullopt;
  StartMethod start_method = StartMethod::forkserver;  ///< How workers start.
  /// A fresh worker after that many tasks (Python's max_tasks_per_child).
  std::optional<unsigned> max_tasks_per_child = std::nullopt;
  /// What a worker's death does to the pool.
  OnWorkerCrash on_worker_crash = OnWorkerCrash::replace_worker;
};

template <class V>
class ChunkedMapResult;

/// concurrent.futures.ProcessPoolExecutor: runs calls in worker processes, each giving a
/// Future. See executors/process_pool.hpp.
class ProcessPoolExecutor {
 public:
  /// ValueError for max_workers 0 or max_tasks_per_child 0; RuntimeError when the start
  /// method cannot work here (fork in a process that has threads; spawn or forkserver in a
  /// program whose main is not wrapped).
  explicit ProcessPoolExecutor(ProcessPoolOptions options = {});
  /// initializer(initargs...) runs first in every worker; if it throws, the pool breaks:
  /// pending and later tasks fail with BrokenProcessPool naming the error.
  template <class F, class... Args>
  ProcessPoolExecutor(ProcessPoolOptions options, F initializer, Args&&... initargs);
  ProcessPoolExecutor(const ProcessPoolExecutor&) = delete;
  ProcessPoolExecutor& operator=(const ProcessPoolExecutor&) = delete;
  ~ProcessPoolExecutor();  ///< shutdown(wait = true).

  /// Schedules fn(args...) in a worker and returns its Future. RuntimeError after shutdown,
  /// BrokenProcessPool once broken. An argument that fails to serialize fails the returned
  /// future.
  template <class F, class... Args>
  auto submit(F fn, Args&&... args);

  /// fn over the range, in input order; chunksize items travel (and run) per message.
  /// Returns a ChunkedMapResult.
  template <class F, class Range>
  auto map(F fn, Range&& range, std::size_t chunksize = 1) {
    return map_impl<false>(fn, std::forward<Range>(range), chunksize);
  }
  /// The same over a range of argument tuples: fn(std::get<0>(t), std::get<1>(t), ...).
  template <class F, class Range>
  auto starmap(F fn, Range&& range, std::size_t chunksize = 1) {
    return map_impl<true>(fn, std::forward<Range>(range), chunksize);
  }

  /// No new work. cancel_futures: tasks not yet sent to a worker are cancelled. wait:
  /// returns once every worker has exited.
  void shutdown(bool wait = true, bool cancel_futures = false);
  ///@{
  /// shutdown(false, true), then SIGTERM (terminate) or SIGKILL (kill) every worker; the
  /// tasks they were running fail with BrokenProcessPool.
  void terminate_workers();
  void kill_workers();
  ///@}

  /// The most worker processes it runs.
  std::size_t max_workers() const noexcept { return core_->max_workers(); }
  /// The live workers' pids.
  std::vector<int> worker_pids() const { return core_->worker_pids(); }

 private:
  void init(ProcessPoolOptions options, std::string init_frame);
  template <bool Star, class F, class Range>
  auto map_impl(F fn, Range&& range, std::size_t chunksize);

  std::shared_ptr<detail::proc::PoolCore> core_;
};

// ---------------------------------------------------------------------------------------
// Implementation

namespace detail::proc {

template <class F>
struct fn_traits;
template <class R, class... P>
struct fn_traits<R (*)(P...)> {
  using result = R;
  using params = std::tuple<P...>;
  static constexpr std::size_t arity = sizeof...(P);
  template <class... A>
  static constexpr bool callable_with = std::is_invocable_v<R (*)(P...), A...>;
  static constexpr Trampoline tramp = &trampoline<R, P...>;
  static constexpr bool all_serializable = (serializable<std::decay_t<P>> && ...);
};
template <class R, class... P>
struct fn_traits<R (*)(P...) noexcept> : fn_traits<R (*)(P...)> {};

template <class F>
auto as_function_pointer(F fn) {
  if constexpr (std::is_pointer_v<F> && std::is_function_v<std::remove_pointer_t<F>>)
    return fn;
  else if constexpr (std::is_function_v<F>)
    return &fn;
  else if constexpr (requires { +fn; })
    return +fn;
  else
    static_assert(sizeof(F) == 0,
                  "kettle: a process pool runs a plain function or a captureless lambda (a "
                  "worker process cannot receive captured state: pass it as arguments)");
}

template <class T>
inline constexpr bool result_serializable = std::is_void_v<T> || serializable<T>;

// Builds a call frame: kind, id (0 for now), count, trampoline, fn, the arguments.
template <class Fp>
std::string call_frame(MessageKind kind, Fp fn, std::uint32_t count) {
  std::string out;
  begin_frame(out, kind);
  Writer w(out);
  w.u64(0);
  w.u32(count);
  write_ref(w, fn_ref(reinterpret_cast<const void*>(fn_traits<Fp>::tramp)));
  write_ref(w, fn_ref(reinterpret_cast<const void*>(fn)));
  return out;
}

// Writes one call's arguments, each converted to its parameter's type.
template <class Fp, class... Args>
void write_args(OutArchive& oa, Args&&... args) {
  using Params = typename fn_traits<Fp>::params;
  static_assert(std::tuple_size_v<Params> == sizeof...(Args),
                "kettle: fn takes a different number of arguments");
  [&]<std::size_t... I>(std::index_sequence<I...>) {
    oa(std::decay_t<std::tuple_element_t<I, Params>>(std::forward<Args>(args))...);
  }
  (std::index_sequence_for<Args...>{});
}
// A whole one-call frame: call_frame, the arguments, the length.
template <class Fp, class... Args>
std::string call_frame_with(MessageKind kind, Fp fn, Args&&... args) {
  std::string out = call_frame(kind, fn, 1);
  {
    OutArchive oa(out);
    write_args<Fp>(oa, std::forward<Args>(args)...);
  }
  end_frame(out, 0);
  return out;
}

// Completes a Future<T> with what read(Reader&) makes of a worker's reply.
template <class T, class Read>
class FutureCompleter final : public Completer {
 public:
  FutureCompleter(Future<T> f, Read read) noexcept : f_(std::move(f)), read_(std::move(read)) {}
  bool start() noexcept override {
    try {
      return f_.set_running_or_notify_cancel();
    } catch (...) {
      return false;
    }
  }
  bool succeed(Reader& in) noexcept override {
    std::optional<std::conditional_t<std::is_void_v<T>, bool, T>> value;
    try {
      if constexpr (std::is_void_v<T>) {
        read_(in);
        value.emplace(true);
      } else {
        value.emplace(read_(in));
      }
    } catch (...) {
      return false;
    }
    if (in.left() != 0) return false;  // more than the result: not what we sent for
    try {
      if constexpr (std::is_void_v<T>)
        f_.set_result();
      else
        f_.set_result(std::move(*value));
    } catch (...) {
      fail(std::current_exception());  // cancelled meanwhile, or moving the value threw
    }
    return true;
  }
  void fail(std::exception_ptr e) noexcept override {
    try {
      f_.set_exception(e);
    } catch (...) {
    }
  }
  void cancel() noexcept override { f_.cancel(); }

 private:
  Future<T> f_;
  Read read_;
};

template <class T, class Read>
std::unique_ptr<Completer> completer(Future<T> f, Read read) {
  return std::make_unique<FutureCompleter<T, Read>>(std::move(f), std::move(read));
}

// One call's result.
template <class R>
std::unique_ptr<Completer> result_completer(Future<R> f) {
  return completer(std::move(f), [](Reader& in) {
    if constexpr (std::is_void_v<R>) {
      return;
    } else {
      R r{};
      InArchive ia(in);
      ia(r);
      return r;
    }
  });
}

// One chunk of a map(): count results, read into one vector.
template <class R>
std::unique_ptr<Completer> chunk_completer(Future<std::vector<map_value_t<R>>> f,
                                           std::uint32_t count) {
  return completer(std::move(f), [count](Reader& in) {
    std::vector<map_value_t<R>> out(count);
    if constexpr (!std::is_void_v<R>) {
      InArchive ia(in);
      for (auto& v : out)
        ia(v);
    }
    return out;
  });
}

// The initializer's call frame, for a pool's workers (process or MPI).
template <class F, class... Args>
std::string init_frame(F initializer, Args&&... initargs) {
  auto fp = as_function_pointer(initializer);
  using Fp = decltype(fp);
  using T = fn_traits<Fp>;
  static_assert(T::arity == sizeof...(Args),
                "kettle: the initializer takes a different number of arguments");
  static_assert(T::all_serializable,
                "kettle: an initializer parameter type cannot be serialized with cereal: give "
                "it a serialize(Archive&) function (or use standard types)");
  return call_frame_with(MessageKind::init, fp, std::forward<Args>(initargs)...);
}

// submit(fn, args...): the call as a task for a worker, and its future. If the arguments
// do not serialize, the future carries that error (as Python's test_error_at_task_pickle)
// and there is no task.
template <class F, class... Args>
auto call_task(F fn, Args&&... args) {
  auto fp = as_function_pointer(fn);
  using Fp = decltype(fp);
  using T = fn_traits<Fp>;
  using R = typename T::result;
  static_assert(T::arity == sizeof...(Args),
                "kettle: submit(fn, args...) needs as many arguments as fn has parameters");
  static_assert(T::all_serializable,
                "kettle: a parameter type of fn cannot be serialized with cereal (or is not "
                "default-constructible): give it a serialize(Archive&) function");
  static_assert(result_serializable<R>,
                "kettle: fn's result type cannot be serialized with cereal (or is not "
                "default-constructible): give it a serialize(Archive&) function");
  std::pair<Future<R>, std::optional<Task>> out;
  Task task;
  try {
    task.frame = call_frame_with(MessageKind::task, fp, std::forward<Args>(args)...);
  } catch (...) {
    out.first.set_exception(std::current_exception());
    return out;
  }
  task.completer = result_completer(out.first);
  out.second.emplace(std::move(task));
  return out;
}

// map(fn, range, chunksize) (Star: starmap): one task per chunk of chunksize items, and each
// chunk's future, in input order. A chunk whose arguments do not serialize (or do not fit
// one message) has a failed future and no task.
template <bool Star, class F, class Range>
auto map_tasks(F fn, Range&& range, std::size_t chunksize) {
  auto fp = as_function_pointer(fn);
  using Fp = decltype(fp);
  using T = fn_traits<Fp>;
  using R = typename T::result;
  using V = map_value_t<R>;
  static_assert(Star || T::arity == 1, "kettle: map(fn, range) needs fn to take one argument");
  static_assert(T::all_serializable && result_serializable<R>,
                "kettle: fn's parameter or result type cannot be serialized with cereal: give "
                "it a serialize(Archive&) function");
  if (chunksize < 1) throw ValueError("kettle: map() needs chunksize >= 1");
  std::pair<std::vector<Future<std::vector<V>>>, std::vector<Task>> out;
  auto& [futures, tasks] = out;
  auto it = std::ranges::begin(range);
  auto end = std::ranges::end(range);
  const std::string head = call_frame(MessageKind::task, fp, 0);
  while (it != end) {
    Future<std::vector<V>> f;
    Task task;
    task.frame = head;
    std::uint32_t n = 0;
    try {
      OutArchive oa(task.frame);
      for (; it != end && n < chunksize; ++it, ++n) {
        if constexpr (Star)
          std::apply([&](auto&&... a) { write_args<Fp>(oa, a...); }, *it);
        else
          write_args<Fp>(oa, *it);
      }
    } catch (...) {
      f.set_exception(std::current_exception());
      futures.push_back(std::move(f));
      for (; it != end && n < chunksize; ++it, ++n) {
      }
      continue;
    }
    std::memcpy(task.frame.data() + 4 + 1 + 8, &n, sizeof n);  // the count
    try {
      end_frame(task.frame, 0);
    } catch (...) {  // too large for one message: that chunk fails
      f.set_exception(std::current_exception());
      futures.push_back(std::move(f));
      continue;
    }
    task.completer = chunk_completer<R>(f, n);
    futures.push_back(std::move(f));
    tasks.push_back(std::move(task));
  }
  return out;
}

}  // namespace detail::proc

/// The results of a process pool's map(): chunks of results, in input order, that read as
/// one sequence: iterate (blocking), get() (blocking, with_timeout counted from the call),
/// or co_await from a task. The first error is raised where its chunk comes.
template <class V>
class ChunkedMapResult {
 public:
  /// The results of the chunks' futures, from now on (the start of the timeout).
  explicit ChunkedMapResult(std::vector<Future<std::vector<V>>> chunks)
      : chunks_(std::move(chunks)) {}

  /// Every chunk's future, in input order.
  const std::vector<Future<std::vector<V>>>& futures() const noexcept { return chunks_.futures(); }

  /// Blocking: at most `timeout` from the map() call in all (TimeoutError); on an error the
  /// chunks not yet done are cancelled.
  ChunkedMapResult with_timeout(std::chrono::duration<double> timeout) && {
    chunks_ = std::move(chunks_).with_timeout(timeout);
    return std::move(*this);
  }
  /// Every result in input order (blocking); the first error is raised.
  std::vector<V> get() { return flatten(chunks_.get()); }
  /// From a task: every result in input order; the first error is raised (and the chunks
  /// not yet done are cancelled).
  auto operator co_await() && { return detail::OwningAwaiter<std::vector<V>>(collect()); }

  /// An input iterator over the results, in input order; it waits for each chunk as it
  /// reaches it (rethrowing the chunk's error).
  class iterator {
   public:
    using value_type = V;                    ///< A result.
    using difference_type = std::ptrdiff_t;  ///< For std::input_iterator.
    iterator() = default;                    ///< A singular iterator.
    /// The iterator at the first item of chunk `chunk` of m (or the next chunk that has one;
    /// blocking).
    iterator(ChunkedMapResult* m, std::size_t chunk) : m_(m), chunk_(chunk) { settle(); }
    /// The current result.
    V operator*() const { return cur_[i_]; }
    ///@{
    /// The next result (blocking when it is in the next chunk).
    iterator& operator++() {
      if (++i_ == cur_.size()) {
        ++chunk_;
        settle();
      }
      return *this;
    }
    void operator++(int) { ++*this; }
    ///@}
    /// Whether both are at the same result.
    friend bool operator==(const iterator& a, const iterator& b) noexcept {
      return a.chunk_ == b.chunk_ && a.i_ == b.i_;
    }

   private:
    void settle() {  // moves to the next chunk that has an item (or the end)
      i_ = 0;
      cur_.clear();
      auto n = m_->chunks_.futures().size();
      while (chunk_ < n) {
        cur_ = *typename MapResult<std::vector<V>>::iterator(&m_->chunks_, chunk_);
        if (!cur_.empty()) return;
        ++chunk_;
      }
    }
    ChunkedMapResult* m_ = nullptr;
    std::size_t chunk_ = 0;
    std::size_t i_ = 0;
    std::vector<V> cur_;
  };
  /// The first result (blocking until the first chunk with one is done).
  iterator begin() { return iterator(this, 0); }
  /// Past the last result.
  iterator end() { return iterator(this, chunks_.futures().size()); }

 private:
  static std::vector<V> flatten(std::vector<std::vector<V>> parts) {
    std::size_t n = 0;
    for (auto& p : parts)
      n += p.size();
    std::vector<V> out;
    out.reserve(n);
    for (auto& p : parts)
      for (V& v : p)
        out.push_back(std::move(v));
    return out;
  }
  Coro<std::vector<V>> collect() {
    std::vector<std::vector<V>> parts = co_await std::move(chunks_);
    co_return flatten(std::move(parts));
  }

  MapResult<std::vector<V>> chunks_;
};

template <class F, class... Args>
ProcessPoolExecutor::ProcessPoolExecutor(ProcessPoolOptions options, F initializer,
                                         Args&&... initargs) {
  init(options, detail::proc::init_frame(initializer, std::forward<Args>(initargs)...));
}

template <class F, class... Args>
auto ProcessPoolExecutor::submit(F fn, Args&&... args) {
  auto [f, task] = detail::proc::call_task(fn, std::forward<Args>(args)...);
  if (task) core_->submit(std::move(*task));
  return f;
}

template <bool Star, class F, class Range>
auto ProcessPoolExecutor::map_impl(F fn, Range&& range, std::size_t chunksize) {
  auto [futures, tasks] = detail::proc::map_tasks<Star>(fn, std::forward<Range>(range), chunksize);
  core_->submit_all(std::move(tasks));
  return ChunkedMapResult(std::move(futures));
}

}  // namespace kettle
