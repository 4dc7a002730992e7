/// @file
/// kettle/event_loop.hpp — the event loop (asyncio.events).
///
/// One loop per thread, as in asyncio. It owns an asio::io_context for everything the
/// kernel reports (sockets, pipes, signals, child exits, cross-thread posts) and keeps its
/// own ready queue and timer heap, so that resuming a task costs a queue push and a pop.
///
/// @code
/// kettle::EventLoop loop;
/// loop.call_soon([] { std::puts("first"); });
/// loop.call_later(std::chrono::milliseconds(10), [&] { loop.stop(); });
/// loop.run_forever();
/// int r = loop.run_until_complete(compute());   // a Coro<int>, a Task<int>, ...
/// loop.close();
/// @endcode
///
/// Most programs never touch a loop directly: kettle::run(main()) makes one, runs main to
/// completion and closes it (runners.hpp).
///
/// A loop is not thread-safe: only call_soon_threadsafe may be called from another thread.
/// With set_debug(true), other calls from a foreign thread raise RuntimeError.
#pragma once

#include "kettle/detail/requires_cxx20.hpp"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <exception>
#include <functional>
#include <iosfwd>
#include <memory>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>

#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>

#include "kettle/detail/durations.hpp"
#include "kettle/detail/loop_core.hpp"
#include "kettle/exceptions.hpp"

namespace kettle {

class EventLoop;
namespace detail {
struct SignalHandlers;
}
class Handle;
class TimerHandle;
class ThreadPoolExecutor;
enum class TaskListing : std::uint8_t;  // graph.hpp
template <class T>
class Coro;
template <class T>
class Future;

/// What the exception handler is told (asyncio's context dict).
struct ExceptionContext {
  std::string message;           ///< What happened, e.g. "Task exception was never retrieved".
  std::exception_ptr exception;  ///< May be null.
  std::string task_name;         ///< The task involved, empty if none.
  /// Where the object involved was created, as Python's "Object created at (most recent call
  /// last):" lines (the task's create_task() call; its whole stack in debug mode).
  std::string source_traceback = {};
};

/// An exception handler (EventLoop::set_exception_handler): asyncio's
/// `handler(loop, context)`.
using ExceptionHandler = std::function<void(EventLoop&, const ExceptionContext&)>;

/// A scheduled callback (call_soon, call_soon_threadsafe): asyncio.Handle. Copies refer to
/// the same callback.
class Handle {
 public:
  /// A handle that refers to no callback.
  Handle() noexcept = default;
  ///@{
  /// Another handle to the same callback (a moved-from handle refers to none).
  Handle(const Handle& o) noexcept;
  Handle(Handle&& o) noexcept : node_(std::exchange(o.node_, nullptr)) {}
  Handle& operator=(Handle o) noexcept {
    std::swap(node_, o.node_);
    return *this;
  }
  ///@}
  /// Drops this reference; the callback still runs unless cancelled.
  ~Handle();

  /// The callback will not run. Safe to call more than once, or after it ran.
  void cancel() noexcept;
  /// True if cancel() was called (false for an empty handle).
  bool cancelled() const noexcept;
  /// Whether this handle refers to a callback at all.
  explicit operator bool() const noexcept { return node_ != nullptr; }

  // Implementation
  class Node;

 protected:
  friend class EventLoop;
  /// Implementation: a handle adopting one reference to node.
  explicit Handle(Node* node) noexcept : node_(node) {}
  /// Implementation: the callback, null for an empty handle.
  Node* node_ = nullptr;
};

/// A callback scheduled at a time (call_later, call_at): asyncio.TimerHandle. cancel()
/// disarms the timer at once. A TimerHandle belongs to its loop's thread.
class TimerHandle : public Handle {
 public:
  /// A handle that refers to no callback.
  TimerHandle() noexcept = default;
  double when() const noexcept;  ///< In the units of EventLoop::time() (0 for an empty handle).

 private:
  friend class EventLoop;
  using Handle::Handle;
};

/// The event loop (asyncio's event loop): runs tasks and callbacks, timers and Asio I/O on
/// the thread that runs it. One loop per thread; see event_loop.hpp.
class EventLoop {
 public:
  /// The clock of call_at(clock::time_point, ...).
  using clock = std::chrono::steady_clock;

  /// A new loop, not running.
  EventLoop();
  ~EventLoop();  ///< Closes the loop if needed; the loop must not be running.
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;

  /// Runs until `aw` (a Coro, Task or any kettle awaitable) completes; returns its result
  /// or rethrows its exception. A Coro is wrapped in a Task first.
  template <class Aw>
  decltype(auto) run_until_complete(Aw&& aw);

  /// Runs until stop() is called. RuntimeError if the loop is closed, or if this or
  /// another loop is running on this thread.
  void run_forever();
  /// Makes run_forever() return; stop() lets the current batch of callbacks finish.
  void stop() noexcept { core_.stopping = true; }

  /// Drops pending callbacks and timers and destroys tasks that never finished.
  /// RuntimeError if the loop is running; closing twice is harmless.
  void close();

  ///@{
  /// Whether the loop is running / closed. Both may be read from any thread.
  bool is_running() const noexcept { return running_.load(std::memory_order_acquire); }
  bool is_closed() const noexcept { return core_.closed.load(std::memory_order_acquire); }
  ///@}

  /// Monotonic time in seconds, as loop.time().
  double time() const noexcept;

  /// Schedules fn() for the next iteration. Callbacks run in the order they were scheduled.
  template <class F>
  Handle call_soon(F&& fn);

  ///@{
  /// Schedules fn() after a delay / at an absolute loop time. Timers fire in deadline
  /// order; equal deadlines fire in the order they were scheduled. A delay or time more
  /// than 100 years away means never; NaN is ValueError.
  template <class Rep, class Period, class F>
  TimerHandle call_later(std::chrono::duration<Rep, Period> delay, F&& fn);
  template <class F>
  TimerHandle call_later(double delay_seconds, F&& fn);
  template <class F>
  TimerHandle call_at(clock::time_point when, F&& fn);
  template <class F>
  TimerHandle call_at(double when_seconds, F&& fn);  // in the units of time()
  ///@}

  /// The one method that may be called from any thread. Wakes a loop blocked in I/O.
  /// RuntimeError if the loop is closed.
  template <class F>
  Handle call_soon_threadsafe(F&& fn);

  /// Errors nobody else can report (a callback that threw, a task exception never
  /// retrieved) go to the exception handler. The default one prints to stderr.
  void set_exception_handler(ExceptionHandler handler) { handler_ = std::move(handler); }
  /// The handler set by set_exception_handler(), empty if none (the default one is used).
  const ExceptionHandler& get_exception_handler() const noexcept { return handler_; }
  /// Reports context to the exception handler (the default one if none is set, or if the
  /// handler throws, which is reported too).
  void call_exception_handler(const ExceptionContext& context) noexcept;
  /// The default handler: prints the message, the task name and the exception to stderr.
  static void default_exception_handler(const ExceptionContext& context) noexcept;

  /// asyncio's loop.add_signal_handler (Unix): fn runs as a callback of this loop each time
  /// `sig` arrives, never inside the signal handler itself. Replaces this loop's previous
  /// handler of sig. Only the main thread's loop may install one (RuntimeError otherwise);
  /// ValueError for a number that is no signal, RuntimeError for one that cannot be caught
  /// (SIGKILL, SIGSTOP). Built on asio::signal_set. close() removes them all.
  void add_signal_handler(int sig, std::function<void()> fn);
  /// Removes the handler and restores the default disposition; false if there was none.
  bool remove_signal_handler(int sig);

  ///@{
  /// Debug mode (asyncio's): foreign-thread calls raise RuntimeError; a step (a task's
  /// resumption or a callback) slower than slow_callback_duration() is reported to the
  /// exception handler ("Executing <Task …> took 0.123 seconds"); tasks keep the stack that
  /// created them, shown in the reports about them; unclosed stream writers are reported.
  /// Also on when the environment variable KETTLE_DEBUG is set and not empty (as
  /// PYTHONASYNCIODEBUG) when the loop is made.
  void set_debug(bool enabled) noexcept { core_.debug = enabled; }
  bool get_debug() const noexcept { return core_.debug; }
  ///@}
  ///@{
  /// asyncio's loop.slow_callback_duration: in debug mode, a step that takes longer is
  /// reported (default 0.1 s). ValueError for a negative or NaN duration.
  void set_slow_callback_duration(double seconds);
  double slow_callback_duration() const noexcept { return slow_ns_ / 1e9; }
  ///@}

  ///@{
  /// Writes every pending task of this loop to `out`, as a tree (the default) or a table
  /// (kettle/graph.hpp). Call it on the loop's thread; kettle::run's dump_tasks_on signal does.
  void dump_tasks(std::ostream& out) const;
  void dump_tasks(std::ostream& out, TaskListing how) const;
  ///@}

  /// The io_context that Asio I/O objects of this loop must use.
  asio::io_context& io_context() noexcept { return io_; }

  /// The executor of to_thread() and run_in_executor(nullptr, ...), created on first use.
  /// RuntimeError if the loop is closed.
  ThreadPoolExecutor& default_executor();
  /// Replaces the default executor (the previous one is shut down without waiting).
  /// ValueError for a null executor, RuntimeError if the loop is closed.
  void set_default_executor(std::unique_ptr<ThreadPoolExecutor> executor);
  /// Shuts the default executor down and waits for its running work, while the loop keeps
  /// running (work may need the loop to finish). kettle::run does this on the way out.
  Coro<void> shutdown_default_executor();

  /// Implementation: the loop's internal state.
  detail::LoopCore& core() noexcept { return core_; }
  void check_open() const;  ///< Implementation: RuntimeError("Event loop is closed").
  /// Implementation: in debug mode, RuntimeError if called from another thread.
  void check_thread() const;
  /// Implementation: RuntimeError if this or another loop runs on this thread.
  void check_can_run() const;
  /// Implementation: queues node from any thread (call_soon_threadsafe); RuntimeError if
  /// the loop is closed.
  void schedule_threadsafe(Handle::Node* node);
  /// Implementation: which add_signal_handler call installed sig's handler (0: none), so
  /// that kettle::run removes only its own.
  std::uint64_t signal_handler_tag(int sig) const noexcept;

 private:
  template <class F>
  TimerHandle call_at_ns(std::int64_t when, F&& fn);
  void run_once();
  void run_batch_debug(std::size_t n);
  static void join_default_executor(ThreadPoolExecutor* executor, Future<void> done);
  void poll_io() noexcept;
  bool spin_io(std::int64_t timeout_ns) noexcept;  // true if something arrived
  void wait_io(std::int64_t timeout_ns) noexcept;  // < 0: until something happens

  asio::io_context io_{1};
  asio::executor_work_guard<asio::io_context::executor_type> work_{io_.get_executor()};
  detail::LoopCore core_{*this};
  std::unique_ptr<ThreadPoolExecutor> default_executor_;
  std::unique_ptr<detail::SignalHandlers> signals_;
  ExceptionHandler handler_;
  std::thread::id thread_{};
  std::atomic<bool> running_{false};
  std::int64_t slow_ns_ = 100'000'000;
};

/// The loop running on this thread; RuntimeError("no running event loop") if none.
EventLoop& get_running_loop();

// ---------------------------------------------------------------------------------------
// Implementation

/// Implementation: a scheduled callback, reference-counted, shared by the loop's queue or
/// timer heap and the handles.
class Handle::Node : public detail::Runnable {
 public:
  virtual ~Node() = default;
  /// Calls the callback.
  virtual void invoke() = 0;
  /// Calls the callback unless it was cancelled (an exception goes to the loop's exception
  /// handler), then drops the queue's reference.
  void run() noexcept override;
  /// The loop closed with the callback still queued: drops the queue's reference.
  void drop() noexcept override { release(); }

  /// Counts one more reference.
  void add_ref() noexcept { refs.fetch_add(1, std::memory_order_relaxed); }
  /// Drops a reference; the last one deletes the node.
  void release() noexcept {
    if (refs.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }

  std::atomic<std::uint32_t> refs{1};  ///< The reference count.
  std::atomic<bool> cancelled{false};  ///< Set by Handle::cancel().
  detail::TimerNode timer;             ///< Armed only for call_later / call_at.
  detail::LoopCore* loop = nullptr;    ///< The loop it was scheduled on.
};

namespace detail {
template <class F>
class CallbackNode final : public Handle::Node {
 public:
  template <class G>
  explicit CallbackNode(G&& g) : fn_(std::forward<G>(g)) {}
  void invoke() override { fn_(); }

 private:
  F fn_;
};

template <class F>
Handle::Node* make_callback_node(F&& fn) {
  static_assert(std::is_invocable_v<std::decay_t<F>&>,
                "kettle: a loop callback must be callable with no arguments; bind its "
                "arguments first, e.g. loop.call_soon([=] { f(x); })");
  return new CallbackNode<std::decay_t<F>>(std::forward<F>(fn));
}
}  // namespace detail

template <class F>
Handle EventLoop::call_soon(F&& fn) {
  check_open();
  check_thread();
  Handle::Node* node = detail::make_callback_node(std::forward<F>(fn));
  node->loop = &core_;
  node->add_ref();  // one for the queue, one for the returned handle
  // What call_soon_threadsafe posted before this goes first: one FIFO for both.
  if (core_.inbox_pending()) [[unlikely]]
    core_.inbox_take([this](detail::Runnable* r) { core_.schedule(r); });
  core_.schedule(node);
  return Handle(node);
}

template <class F>
TimerHandle EventLoop::call_at_ns(std::int64_t when, F&& fn) {
  check_open();
  check_thread();
  Handle::Node* node = detail::make_callback_node(std::forward<F>(fn));
  node->loop = &core_;
  node->timer.when = when;
  node->timer.set_target(node);
  node->add_ref();  // one for the heap, one for the returned handle
  core_.timers.push(&node->timer);
  return TimerHandle(node);
}

template <class F>
TimerHandle EventLoop::call_at(clock::time_point when, F&& fn) {
  return call_at_ns(detail::time_point_ns(when, "call_at()"), std::forward<F>(fn));
}

template <class F>
TimerHandle EventLoop::call_at(double when_seconds, F&& fn) {
  return call_at_ns(detail::seconds_ns(when_seconds, "call_at()"), std::forward<F>(fn));
}

template <class Rep, class Period, class F>
TimerHandle EventLoop::call_later(std::chrono::duration<Rep, Period> delay, F&& fn) {
  return call_at_ns(detail::now_ns() + detail::duration_ns(delay, "call_later()"),
                    std::forward<F>(fn));
}

template <class F>
TimerHandle EventLoop::call_later(double delay_seconds, F&& fn) {
  return call_later(std::chrono::duration<double>(delay_seconds), std::forward<F>(fn));
}

template <class F>
Handle EventLoop::call_soon_threadsafe(F&& fn) {
  check_open();
  Handle::Node* node = detail::make_callback_node(std::forward<F>(fn));
  node->loop = &core_;
  node->add_ref();
  schedule_threadsafe(node);
  return Handle(node);
}

}  // namespace kettle

// run_until_complete needs tasks (kept in two blocks: the order matters).
#include "kettle/tasks.hpp"

#include "kettle/detail/run_until_complete.hpp"
