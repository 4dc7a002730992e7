/// @file
/// kettle/runners.hpp — kettle::run, asyncio.run.
///
/// @code
/// kettle::Coro<int> main_() { ... co_return 0; }
/// int main() { return kettle::run(main_()); }
/// @endcode
///
/// run() creates an event loop, runs `main` to completion and returns its value (or
/// rethrows its exception). On the way out it cancels every task still pending, waits for
/// them, reports their errors (other than cancellation) to the exception handler, and
/// closes the loop. RuntimeError if a loop is already running on this thread.
///
/// Ctrl-C, as asyncio.Runner: on the main thread, if SIGINT has its default disposition,
/// the first SIGINT cancels the main task; if that task then ends cancelled (and
/// uncancel() returns 0: the cancellation was not its own business), run() raises
/// KeyboardInterrupt after the usual cleanup, so destructors, catch blocks and TaskGroup
/// cleanup all run. A second SIGINT stops waiting for the main task: the remaining tasks are
/// cancelled and awaited, and KeyboardInterrupt comes out at once. The default disposition
/// is back when run() returns. RunOptions::handle_sigterm treats SIGTERM the same way.
#pragma once

#include "kettle/detail/requires_cxx20.hpp"

#include <cstdint>
#include <optional>
#include <type_traits>
#include <utility>

#include "kettle/coro.hpp"
#include "kettle/event_loop.hpp"
#include "kettle/tasks.hpp"

namespace kettle {

/// How run() sets up its loop (asyncio.run's debug=, and more).
struct RunOptions {
  /// EventLoop::set_debug: true or false; unset keeps what KETTLE_DEBUG says (asyncio.run's
  /// debug=None).
  std::optional<bool> debug = std::nullopt;
  ExceptionHandler exception_handler;  ///< If set, installed on the loop.
  bool handle_sigterm = false;         ///< SIGTERM as SIGINT (containers stop programs so).
  /// When this signal arrives, every pending task is printed to stderr as a tree
  /// (EventLoop::dump_tasks), and the program goes on: ask a stuck program what it waits
  /// for with `kill -USR1 <pid>`. Unset: SIGUSR1 in debug mode, for a run() on the main
  /// thread where nothing else handles SIGUSR1; none otherwise. 0: none. A signal given
  /// here is installed as add_signal_handler() does (main thread only, else RuntimeError).
  std::optional<int> dump_tasks_on = std::nullopt;
};

/// asyncio.run: runs `main` on a new event loop and returns its value (or rethrows its
/// exception), after cancelling and awaiting the tasks left and closing the loop;
/// KeyboardInterrupt after Ctrl-C; RuntimeError if a loop is already running on this
/// thread. See runners.hpp.
template <class T>
T run(Coro<T> main, RunOptions options = {});

// ---------------------------------------------------------------------------------------
// Implementation

namespace detail {
void check_can_start_run();
void prepare_run(EventLoop& loop, RunOptions& options);
// Cancels the tasks left, waits for them, reports their errors, closes the loop.
void finish_run(EventLoop& loop) noexcept;

// asyncio.Runner's SIGINT handling around one run().
class Interrupts {
 public:
  Interrupts(EventLoop& loop, TaskRef main, const RunOptions& options);
  ~Interrupts();
  Interrupts(const Interrupts&) = delete;
  Interrupts& operator=(const Interrupts&) = delete;
  // Once the main task is over: the signals get their default disposition back (as
  // asyncio.Runner), so that a Ctrl-C during the cleanup ends the program instead of
  // stopping the loop under it.
  void disarm(bool interrupted = false) noexcept;
  // Called with run_until_complete's exception in flight: after finish_run(), throws
  // KeyboardInterrupt if a signal is why the main task ended; else returns.
  void raise_if_interrupted();

 private:
  void on_signal(int sig);
  EventLoop& loop_;
  TaskRef main_;
  std::uint64_t tags_[2] = {0, 0};
  int signal_ = 0;
  int count_ = 0;
  bool armed_ = false;
};
}  // namespace detail

template <class T>
T run(Coro<T> main, RunOptions options) {
  detail::check_can_start_run();
  EventLoop loop;
  detail::prepare_run(loop, options);
  Task<T> task = detail::make_task(loop.core(), std::move(main), {});
  detail::Interrupts interrupts(loop, task, options);
  try {
    if constexpr (std::is_void_v<T>) {
      loop.run_until_complete(task);
      interrupts.disarm();
      detail::finish_run(loop);
    } else {
      T result = loop.run_until_complete(task);
      interrupts.disarm();
      detail::finish_run(loop);
      return result;
    }
  } catch (...) {
    interrupts.raise_if_interrupted();
    throw;
  }
}

}  // namespace kettle
