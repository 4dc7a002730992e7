// kettle/event_loop.hpp — the event loop (asyncio.events).
//
// One loop per thread, as in asyncio. It owns an asio::io_context for everything the
// kernel reports (sockets, pipes, signals, child exits, cross-thread posts) and keeps its
// own ready queue and timer heap, so that resuming a task costs a queue push and a pop.
//
//   kettle::EventLoop loop;
//   loop.call_soon([] { std::puts("first"); });
//   loop.call_later(std::chrono::milliseconds(10), [&] { loop.stop(); });
//   loop.run_forever();
//   int r = loop.run_until_complete(compute());   // a Coro<int>, a Task<int>, ...
//   loop.close();
//
// Most programs never touch a loop directly: kettle::run(main()) makes one, runs main to
// completion and closes it (runners.hpp).
//
// A loop is not thread-safe: only call_soon_threadsafe may be called from another thread.
// With set_debug(true), other calls from a foreign thread raise RuntimeError.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <exception>
#include <functional>
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
template <class T>
class Coro;
template <class T>
class Future;

// What the exception handler is told (asyncio's context dict).
struct ExceptionContext {
  std::string message;           // what happened, e.g. "Task exception was never retrieved"
  std::exception_ptr exception;  // may be null
  std::string task_name;         // the task involved, empty if none
};

using ExceptionHandler = std::function<void(EventLoop&, const ExceptionContext&)>;

// A scheduled callback (call_soon, call_soon_threadsafe).
class Handle {
 public:
  Handle() noexcept = default;
  Handle(const Handle& o) noexcept;
  Handle(Handle&& o) noexcept : node_(std::exchange(o.node_, nullptr)) {}
  Handle& operator=(Handle o) noexcept {
    std::swap(node_, o.node_);
    return *this;
  }
  ~Handle();

  // The callback will not run. Safe to call more than once, or after it ran.
  void cancel() noexcept;
  bool cancelled() const noexcept;
  // Whether this handle refers to a callback at all.
  explicit operator bool() const noexcept { return node_ != nullptr; }

  // Implementation
  class Node;

 protected:
  friend class EventLoop;
  explicit Handle(Node* node) noexcept : node_(node) {}
  Node* node_ = nullptr;
};

// A callback scheduled at a time (call_later, call_at). cancel() disarms the timer at once.
// A TimerHandle belongs to its loop's thread.
class TimerHandle : public Handle {
 public:
  TimerHandle() noexcept = default;
  double when() const noexcept;  // in the units of EventLoop::time()

 private:
  friend class EventLoop;
  using Handle::Handle;
};

class EventLoop {
 public:
  using clock = std::chrono::steady_clock;

  EventLoop();
  ~EventLoop();  // closes the loop if needed; the loop must not be running
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;

  // Runs until `aw` (a Coro, Task or any kettle awaitable) completes; returns its result
  // or rethrows its exception. A Coro is wrapped in a Task first.
  template <class Aw>
  decltype(auto) run_until_complete(Aw&& aw);

  // Runs until stop() is called. stop() lets the current batch of callbacks finish.
  void run_forever();
  void stop() noexcept { core_.stopping = true; }

  // Drops pending callbacks and timers and destroys tasks that never finished.
  // RuntimeError if the loop is running; closing twice is harmless.
  void close();

  // Both may be read from any thread.
  bool is_running() const noexcept { return running_.load(std::memory_order_acquire); }
  bool is_closed() const noexcept { return core_.closed.load(std::memory_order_acquire); }

  // Monotonic time in seconds, as loop.time().
  double time() const noexcept;

  // Schedules fn() for the next iteration. Callbacks run in the order they were scheduled.
  template <class F>
  Handle call_soon(F&& fn);

  // Schedules fn() after a delay / at an absolute loop time. Timers fire in deadline
  // order; equal deadlines fire in the order they were scheduled. A delay or time more
  // than 100 years away means never; NaN is ValueError.
  template <class Rep, class Period, class F>
  TimerHandle call_later(std::chrono::duration<Rep, Period> delay, F&& fn);
  template <class F>
  TimerHandle call_later(double delay_seconds, F&& fn);
  template <class F>
  TimerHandle call_at(clock::time_point when, F&& fn);
  template <class F>
  TimerHandle call_at(double when_seconds, F&& fn);  // in the units of time()

  // The one method that may be called from any thread. Wakes a loop blocked in I/O.
  template <class F>
  Handle call_soon_threadsafe(F&& fn);

  // Errors nobody else can report (a callback that threw, a task exception never
  // retrieved) go to the exception handler. The default one prints to stderr.
  void set_exception_handler(ExceptionHandler handler) { handler_ = std::move(handler); }
  const ExceptionHandler& get_exception_handler() const noexcept { return handler_; }
  void call_exception_handler(const ExceptionContext& context) noexcept;
  static void default_exception_handler(const ExceptionContext& context) noexcept;

  // asyncio's loop.add_signal_handler (Unix): fn runs as a callback of this loop each time
  // `sig` arrives, never inside the signal handler itself. Replaces this loop's previous
  // handler of sig. Only the main thread's loop may install one (RuntimeError otherwise);
  // ValueError for a number that is no signal, RuntimeError for one that cannot be caught
  // (SIGKILL, SIGSTOP). Built on asio::signal_set. close() removes them all.
  void add_signal_handler(int sig, std::function<void()> fn);
  // Removes the handler and restores the default disposition; false if there was none.
  bool remove_signal_handler(int sig);

  // Debug mode: foreign-thread calls raise RuntimeError.
  void set_debug(bool enabled) noexcept { debug_ = enabled; }
  bool get_debug() const noexcept { return debug_; }

  // The io_context that Asio I/O objects of this loop must use.
  asio::io_context& io_context() noexcept { return io_; }

  // The executor of to_thread() and run_in_executor(nullptr, ...), created on first use.
  ThreadPoolExecutor& default_executor();
  void set_default_executor(std::unique_ptr<ThreadPoolExecutor> executor);
  // Shuts the default executor down and waits for its running work, while the loop keeps
  // running (work may need the loop to finish). kettle::run does this on the way out.
  Coro<void> shutdown_default_executor();

  // Implementation
  detail::LoopCore& core() noexcept { return core_; }
  void check_open() const;     // RuntimeError("Event loop is closed")
  void check_thread() const;   // in debug mode, RuntimeError if called from another thread
  void check_can_run() const;  // RuntimeError if this or another loop runs on this thread
  void schedule_threadsafe(Handle::Node* node);
  // Which add_signal_handler call installed sig's handler (0: none), so that kettle::run
  // removes only its own.
  std::uint64_t signal_handler_tag(int sig) const noexcept;

 private:
  template <class F>
  TimerHandle call_at_ns(std::int64_t when, F&& fn);
  void run_once();
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
  bool debug_ = false;
};

// The loop running on this thread; RuntimeError("no running event loop") if none.
EventLoop& get_running_loop();

// ---------------------------------------------------------------------------------------
// Implementation

class Handle::Node : public detail::Runnable {
 public:
  virtual ~Node() = default;
  virtual void invoke() = 0;
  void run() noexcept override;
  void drop() noexcept override { release(); }

  void add_ref() noexcept { refs.fetch_add(1, std::memory_order_relaxed); }
  void release() noexcept {
    if (refs.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }

  std::atomic<std::uint32_t> refs{1};
  std::atomic<bool> cancelled{false};
  detail::TimerNode timer;  // armed only for call_later / call_at
  detail::LoopCore* loop = nullptr;
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
